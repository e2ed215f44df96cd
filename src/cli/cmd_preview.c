/*
 * cmd_preview.c - `osconnect preview` (not yet implemented).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

int cmd_preview(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("Usage: osconnect preview [OPTIONS]\n\nNot yet implemented.\n");
        return 0;
    }
    fprintf(stderr, "osconnect preview: not yet implemented\n");
    return EX_SOFTWARE;
}
