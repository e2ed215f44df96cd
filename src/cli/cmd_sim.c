/*
 * cmd_sim.c - `osconnect sim` (not yet implemented).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_sim(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: osconnect sim [OPTIONS]\n\nNot yet implemented.\n");
        return 0;
    }
    fprintf(stderr, "osconnect sim: not yet implemented\n");
    return EX_SOFTWARE;
}
