/*
 * cli.h - the alkfw command-line tool: one function per subcommand.
 *
 * Each subcommand parses its own arguments (argv[0] is the subcommand name) and returns the
 * process exit status: 0 success (for screen: CLEAR), 1 error, 2 usage, 3 SUSPICIOUS,
 * 4 DANGEROUS. Human text goes to stderr, data to stdout.
 */
#ifndef ALKFW_CLI_H
#define ALKFW_CLI_H

#include "alkfw.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_ERROR = 1,
    CLI_EXIT_USAGE = 2,
    CLI_EXIT_SUSPICIOUS = 3,
    CLI_EXIT_DANGEROUS = 4
};

int cmd_tokenize(int argc, char **argv);
int cmd_hidden(int argc, char **argv);
int cmd_screen(int argc, char **argv);
int cmd_document(int argc, char **argv);
int cmd_build(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);

/* Prints "alkfw <command>: <message>" for a library error to stderr and returns 1. */
int cli_fail(const char *command, const alkfw_error *err);

/* The directory of the embedded default detector, as alkfw_default_model_dir finds it.
 * Returns a static string. */
const char *cli_default_model_dir(void);

#endif
