/*
 * cmd_eval.c - alkfw eval.
 *
 * LIMIT: this subcommand is not built yet; it reports so and exits with status 1.
 */
#include "cli/cli.h"

#include <stdio.h>

int cmd_eval(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "alkfw eval: not available in this build yet\n");
    return CLI_EXIT_ERROR;
}
