/*
 * cmd_send.c - `osconnect send` (not yet implemented).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_send(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: osconnect send [OPTIONS]\n\nNot yet implemented.\n");
        return 0;
    }
    fprintf(stderr, "osconnect send: not yet implemented\n");
    return EX_SOFTWARE;
}
