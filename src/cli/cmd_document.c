/*
 * cmd_document.c - alkfw document: screen a long document window by window and print the
 * max-pooled alarm with every window; the exit status is the level, as for screen.
 */
#include "cli/cli.h"
#include "cli/fw_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void document_usage(FILE *out)
{
    fprintf(out,
            "usage: alkfw document [options] [FILE | -]\n"
            "\n"
            "Screens a document of any length: token windows of W tokens that overlap, each\n"
            "screened on its own; the document's scores are the max over windows. Reads FILE\n"
            "(or stdin) piece by piece, so memory does not grow with the document. Exit\n"
            "status: 0 CLEAR, 3 SUSPICIOUS, 4 DANGEROUS, 1 error, 2 usage.\n"
            "\n"
            "options:\n"
            "  --model DIR        detector model directory (default: the embedded stories260k)\n"
            "  --codebook FILE    codebook (default: DIR/codebook.safetensors)\n"
            "  --json             print the alarm as one JSON object (with \"windows\")\n"
            "  --window N         tokens per window, BOS included (default min(2048, the\n"
            "                     model's max positions))\n"
            "  --overlap F        fraction of a window shared with the next (default 0.25)\n"
            "  --threads N        windows screened at once (default: the cores)\n"
            "  --suspicious X     override the codebook's suspicious threshold\n"
            "  --dangerous X      override the codebook's dangerous threshold\n"
            "  --max-spans N      spans listed (default 5)\n"
            "  --plain-specials   treat special-token text in the input as plain text\n");
}

/* The errno of the last failed read (file_read runs on the calling thread). */
static int read_errno;

/* alkfw_read_fn over a stdio stream. */
static long file_read(void *user, char *buf, size_t size)
{
    FILE *f = user;
    errno = 0;
    size_t got = fread(buf, 1, size, f);
    if (got == 0 && ferror(f)) {
        read_errno = errno ? errno : EIO;
        return -1;
    }
    return (long)got;
}

/* Prints the bytes [start, end) of the file at path for display (nothing for stdin). */
static void print_file_bytes(const char *path, size_t start, size_t end)
{
    if (path == NULL || end <= start)
        return;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return;
    char buf[96];
    size_t n = end - start < sizeof buf ? end - start : sizeof buf;
    if (fseek(f, (long)start, SEEK_SET) == 0 && (n = fread(buf, 1, n, f)) > 0)
        fwu_print_escaped(stdout, buf, n, 80);
    fclose(f);
}

static void print_human(const alkfw_document_alarm *d, const char *path)
{
    const alkfw_alarm *a = &d->alarm;
    printf("%s  score %.4f  (suspicious > %.4f, dangerous > %.4f)\n", alkfw_level_string(a->level),
           a->score, a->threshold_suspicious, a->threshold_dangerous);
    printf("  detector   %s, codebook %s\n", a->model, a->codebook);
    if (a->n_directions > 0)
        printf("  %-20s %8s %8s %8s %7s\n", "direction", "max mean", "max", "at", "weight");
    for (size_t i = 0; i < a->n_directions; i++) {
        const alkfw_direction_score *s = &a->directions[i];
        printf("  %-20s %8.4f %8.4f %8zu %7.3f\n", s->name, s->mean, s->max, s->max_position,
               s->weight);
    }
    printf("  windows (%zu):\n", d->n_windows);
    for (size_t i = 0; i < d->n_windows; i++) {
        const alkfw_window *w = &d->windows[i];
        printf("    %4zu  bytes [%zu, %zu)  tokens %zu  %-10s %.4f\n", i, w->start, w->end,
               w->n_tokens, alkfw_level_string(w->level), w->score);
    }
    if (a->n_spans > 0)
        printf("  spans (bytes, direction, p):\n");
    for (size_t i = 0; i < a->n_spans; i++) {
        const alkfw_alarm_span *s = &a->spans[i];
        printf("    [%zu, %zu) %-16s %.3f  \"", s->start, s->end, s->direction, s->p);
        print_file_bytes(path, s->start, s->end);
        printf("\"\n");
    }
    printf("  tokens %zu, special tokens in text %zu, replaced bytes %zu, %.1f ms\n", a->n_tokens,
           a->n_special_tokens, a->n_replaced, a->elapsed_ms);
}

int cmd_document(int argc, char **argv)
{
    const char *path = NULL;
    int json = 0;
    fwu_detector_args det = {0};
    alkfw_options opts;
    alkfw_options_init(&opts);
    alkfw_document_options dopts;
    alkfw_document_options_init(&dopts);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        double x;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            document_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (fwu_parse_detector_option(argc, argv, &i, &det, &opts)) {
            continue;
        } else if (strcmp(a, "--window") == 0 && v && fwu_parse_long(v, 2, 1L << 20, &n) == 0) {
            dopts.window = (size_t)n, i++;
        } else if (strcmp(a, "--overlap") == 0 && v && fwu_parse_double(v, 0, 0.9, &x) == 0) {
            dopts.overlap = x, i++;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "alkfw document: bad option '%s'%s\n\n", a,
                    v == NULL ? " (or its value is missing)" : " or its value");
            document_usage(stderr);
            return CLI_EXIT_USAGE;
        } else if (path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "alkfw document: one FILE (or -) at most\n");
            return CLI_EXIT_USAGE;
        }
    }
    if (path != NULL && strcmp(path, "-") == 0)
        path = NULL;
    if (path == NULL && isatty(STDIN_FILENO)) {
        document_usage(stderr);
        return CLI_EXIT_USAGE;
    }

    /* the threads screen different windows; each window's forward then runs on one */
    opts.n_threads = 1;
    dopts.n_threads = (int)det.threads;
    alkfw_error err = {0};
    alkfw_firewall *fw = NULL;
    if (fwu_open_firewall(det.model, det.codebook, &opts, &fw, NULL, &err) != ALKFW_OK)
        return cli_fail("document", &err);

    FILE *f = path ? fopen(path, "rb") : stdin;
    if (f == NULL) {
        fprintf(stderr, "alkfw document: %s: cannot open: %s\n", path, strerror(errno));
        alkfw_firewall_free(fw);
        return CLI_EXIT_ERROR;
    }
    alkfw_document_alarm alarm;
    int rc;
    if (alkfw_screen_document_read(fw, file_read, f, &dopts, &alarm, &err) != ALKFW_OK) {
        if (ferror(f)) /* name the file and the cause */
            fprintf(stderr, "alkfw document: %s: %s\n", path ? path : "stdin",
                    strerror(read_errno));
        rc = cli_fail("document", &err);
    } else if (json) {
        char *out = NULL;
        if (alkfw_document_alarm_to_json(&alarm, &out, &err) != ALKFW_OK) {
            rc = cli_fail("document", &err);
        } else {
            printf("%s\n", out);
            rc = CLI_EXIT_OK;
        }
        free(out);
    } else {
        print_human(&alarm, path);
        rc = CLI_EXIT_OK;
    }
    if (rc == CLI_EXIT_OK)
        rc = fwu_exit_for_level(alarm.alarm.level);
    alkfw_document_alarm_free(&alarm);
    if (f != stdin)
        fclose(f);
    alkfw_firewall_free(fw);
    return rc;
}
