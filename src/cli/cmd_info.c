/*
 * cmd_info.c - alkfw info.
 *
 * LIMIT: this subcommand is not built yet; it reports so and exits with status 1.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_info(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "alkfw info: not available in this build yet\n");
    return CLI_EXIT_ERROR;
}
