/*
 * main.c - alkfw, the command-line face of libalkfw: dispatch to a subcommand.
 */
#include "cli/cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} cli_command;

static const cli_command commands[] = {
    {"screen", cmd_screen,
     "screen text and raise an alarm (exit 0 CLEAR, 3 SUSPICIOUS, 4 DANGEROUS)"},
    {"document", cmd_document, "screen a long document window by window"},
    {"build", cmd_build, "build a codebook from labeled JSONL"},
    {"eval", cmd_eval, "measure a codebook on labeled JSONL"},
    {"info", cmd_info, "print model and codebook metadata and whether they match"},
    {"tokenize", cmd_tokenize, "print token ids (and byte offsets) of text"},
    {"hidden", cmd_hidden, "dump hidden states of chosen layers to safetensors or JSON"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: alkfw <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'alkfw <command> --help' for the options of one command.\n");
}

int cli_fail(const char *command, const alkfw_error *err)
{
    fprintf(stderr, "alkfw %s: %s\n", command,
            err->message[0] ? err->message : alkfw_status_string(err->status));
    return CLI_EXIT_ERROR;
}

const char *cli_default_model_dir(void)
{
    /* The library knows where the embedded detector lives (ALKFW_HOME, beside the library or
     * the executable, the install prefix); when none exists the last candidate is returned,
     * so the command's own open reports the missing files by name. */
    static char path[4096];
    alkfw_error err;
    (void)alkfw_default_model_dir(path, sizeof path, &err);
    return path;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("alkfw %s\n", ALKFW_VERSION);
        return CLI_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            int rc = commands[i].run(argc - 1, argv + 1);
            /* output that could not be written (a full disk, a closed stdout) is an error,
             * whatever the verdict */
            errno = 0;
            if (fflush(stdout) != 0 || ferror(stdout)) {
                fprintf(stderr, "alkfw %s: writing the output failed%s%s\n", argv[1],
                        errno ? ": " : "", errno ? strerror(errno) : "");
                return CLI_EXIT_ERROR;
            }
            return rc;
        }
    }
    fprintf(stderr, "alkfw: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return CLI_EXIT_USAGE;
}
