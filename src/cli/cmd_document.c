/*
 * cmd_document.c - alkfw document.
 *
 * LIMIT: this subcommand is not built yet; it reports so and exits with status 1.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_document(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "alkfw document: not available in this build yet\n");
    return CLI_EXIT_ERROR;
}
