/*
 * fw_util.h - helpers shared by the firewall subcommands (screen, document, build, eval, info):
 * number parsing, the detector options, reading text and labeled JSONL, progress on stderr,
 * opening the (default) detector, the exit status of a level.
 */
#ifndef ALKFW_CLI_FW_UTIL_H
#define ALKFW_CLI_FW_UTIL_H

#include "alkfw.h"

#include <stddef.h>
#include <stdio.h>

/* Parses a whole string as an integer in [min, max]. Returns 0, or -1 when it is not one. */
int fwu_parse_long(const char *s, long min, long max, long *out);

/* Parses a whole string as a finite double in [min, max]. Returns 0, or -1. */
int fwu_parse_double(const char *s, double min, double max, double *out);

/* Parses a comma-separated list of at most max integers in [min, max_value] into out.
 * Returns the count, or -1 when malformed, empty or too long. */
int fwu_parse_int_list(const char *s, int *out, int max, long min, long max_value);

/* Reads all of f into a malloc'ed buffer (NUL-terminated for convenience; *len excludes the
 * NUL). Returns NULL on a read error or when out of memory. */
char *fwu_read_all(FILE *f, size_t *len);

/* One labeled text of a JSONL file. */
typedef struct fwu_row {
    char *text;
    size_t len;   /* bytes of text (it may hold NUL bytes) */
    char *label;  /* "" when the line has none */
    char *source; /* "" when the line has none */
    size_t line;  /* 1-based line number in the file */
} fwu_row;

typedef struct fwu_dataset {
    fwu_row *rows;
    size_t n;
} fwu_dataset;

/* Parses one JSONL line: a JSON object with a string "text" and optional string "label" and
 * "source". Returns 0 and fills row (the caller frees it with fwu_row_free), or -1 and writes
 * what is wrong into msg (msg_size bytes). */
int fwu_parse_row(const char *line, size_t len, fwu_row *row, char *msg, size_t msg_size);
void fwu_row_free(fwu_row *row);

/* Reads every non-empty line of path ("-" for stdin) as a row; require_label demands a
 * "label". Returns 0, or -1 with "path:line: what is wrong" in msg. */
int fwu_dataset_load(const char *path, int require_label, fwu_dataset *ds, char *msg,
                     size_t msg_size);
void fwu_dataset_free(fwu_dataset *ds);

/* Progress of a long job on stderr: a redrawn bar when stderr is a terminal, otherwise (when
 * always is set) a line every tenth of the way, otherwise nothing. */
typedef struct fwu_progress {
    const char *label;
    size_t total;
    int tty;
    int always;
    int last_tenth;
    double last_draw;
    double start;
} fwu_progress;

void fwu_progress_start(fwu_progress *p, const char *label, size_t total, int always);
void fwu_progress_update(fwu_progress *p, size_t done);
void fwu_progress_end(fwu_progress *p, size_t done);

/* Seconds on the monotonic clock. */
double fwu_now(void);

/* Resolves the model directory and codebook path a command runs with. model NULL means the
 * embedded default detector; codebook NULL means <model dir>/codebook.safetensors. Writes into
 * model_dir and codebook_path (each size bytes) and sets *is_default. Returns ALKFW_OK or the
 * error of alkfw_default_model_dir. */
alkfw_status fwu_resolve(const char *model, const char *codebook, char *model_dir,
                         char *codebook_path, size_t size, int *is_default, alkfw_error *err);

/* Resolves the detector as fwu_resolve does and opens its firewall with opts into *fw (the
 * caller frees it with alkfw_firewall_free). Sets *is_default (may be NULL). Returns ALKFW_OK,
 * or the error of the resolution or of alkfw_firewall_open with *fw left NULL. */
alkfw_status fwu_open_firewall(const char *model, const char *codebook, const alkfw_options *opts,
                               alkfw_firewall **fw, int *is_default, alkfw_error *err);

/* The exit status of a screening command for an alarm level: CLI_EXIT_OK for CLEAR,
 * CLI_EXIT_SUSPICIOUS or CLI_EXIT_DANGEROUS. */
int fwu_exit_for_level(alkfw_level level);

/* The options screen and document share: the detector (--model DIR, --codebook FILE),
 * --threads N, --suspicious X, --dangerous X, --max-spans N and --plain-specials. */
typedef struct fwu_detector_args {
    const char *model;    /* NULL: the embedded default */
    const char *codebook; /* NULL: <model dir>/codebook.safetensors */
    long threads;         /* 0: the default */
} fwu_detector_args;

/* Applies argv[*i] when it is one of the shared options above with a valid value, moving *i
 * onto the value it took. Returns 1 when applied; 0 when argv[*i] is another option or its value
 * is missing or bad (the caller reports it as a bad option). */
int fwu_parse_detector_option(int argc, char **argv, int *i, fwu_detector_args *args,
                              alkfw_options *opts);

/* Writes text to out for display: printable ASCII as is, other bytes and quotes escaped,
 * at most max bytes of input (an ellipsis marks a cut). */
void fwu_print_escaped(FILE *out, const char *text, size_t len, size_t max);

#endif
