/*
 * cmd_screen.c - alkfw screen: screen one text (argument or stdin) or a JSONL batch and raise
 * the alarm; the exit status is the level (0 CLEAR, 3 SUSPICIOUS, 4 DANGEROUS).
 */
#include "cli/cli.h"
#include "cli/fw_util.h"
#include "cli/screen_stream.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Rows screened together in batch mode before their alarms are printed in input order. */
#define BATCH_CHUNK 64

static void screen_usage(FILE *out)
{
    fprintf(out,
            "usage: alkfw screen [options] [TEXT... | -]\n"
            "       alkfw screen --jsonl [options] [FILE | -]\n"
            "\n"
            "Screens text with a detector model and its codebook and prints the alarm.\n"
            "Without TEXT (or with -) the text is read from stdin. Exit status: 0 CLEAR,\n"
            "3 SUSPICIOUS, 4 DANGEROUS, 1 error, 2 usage.\n"
            "\n"
            "options:\n"
            "  --model DIR        detector model directory (default: the embedded stories260k)\n"
            "  --codebook FILE    codebook (default: DIR/codebook.safetensors)\n"
            "  --json             print the alarm as one JSON object\n"
            "  --jsonl            batch: lines {\"text\": ...} in, one alarm JSON per line out\n"
            "  --last-token       score the last position alone\n"
            "  --threads N        threads (batch: screens at once; else matrix threads)\n"
            "  --suspicious X     override the codebook's suspicious threshold\n"
            "  --dangerous X      override the codebook's dangerous threshold\n"
            "  --no-smoothing     score unsmoothed per-token features\n"
            "  --window N         smoothing window (default: the codebook's)\n"
            "  --max-tokens N     cut longer inputs (default: the model's max positions)\n"
            "  --max-spans N      spans listed per alarm (default 5)\n"
            "  --plain-specials   treat special-token text in the input as plain text\n"
            "  --stream           read stdin as it arrives; one alarm JSON line per piece read\n"
            "  --stream-window N  stream: tokens per window (default min(2048, max positions))\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Human-readable alarm                                                                      */
/* ---------------------------------------------------------------------------------------- */

static void print_human(const alkfw_alarm *a, const char *text, size_t len, int is_default)
{
    printf("%s  score %.4f  (suspicious > %.4f, dangerous > %.4f)\n", alkfw_level_string(a->level),
           a->score, a->threshold_suspicious, a->threshold_dangerous);
    printf("  detector   %s%s, codebook %s\n", a->model, is_default ? " (embedded default)" : "",
           a->codebook);
    if (a->n_directions > 0)
        printf("  %-20s %8s %8s %6s %7s\n", "direction", "mean", "max", "at", "weight");
    for (size_t i = 0; i < a->n_directions; i++) {
        const alkfw_direction_score *d = &a->directions[i];
        printf("  %-20s %8.4f %8.4f %6zu %7.3f\n", d->name, d->mean, d->max, d->max_position,
               d->weight);
    }
    if (a->n_spans > 0)
        printf("  spans (bytes, direction, p):\n");
    for (size_t i = 0; i < a->n_spans; i++) {
        const alkfw_alarm_span *s = &a->spans[i];
        printf("    [%zu, %zu) %-16s %.3f  \"", s->start, s->end, s->direction, s->p);
        if (s->start <= s->end && s->end <= len)
            fwu_print_escaped(stdout, text + s->start, s->end - s->start, 80);
        printf("\"\n");
    }
    printf("  tokens %zu%s, special tokens in text %zu, invalid UTF-8 replaced %zu, %.1f ms\n",
           a->n_tokens, a->truncated ? " (truncated)" : "", a->n_special_tokens, a->n_replaced,
           a->elapsed_ms);
    if (is_default)
        printf("  note: this is the embedded stories260k detector (260K parameters, trained on\n"
               "        children's stories), shipped so the firewall works offline. A production\n"
               "        detector is one build away: alkfw build --model <SmolLM2-135M dir> "
               "--data data/train.jsonl\n"
               "        --val-data data/val.jsonl --out codebook.safetensors (see "
               "docs/firewall.md).\n");
}

/* ---------------------------------------------------------------------------------------- */
/* Batch mode                                                                                */
/* ---------------------------------------------------------------------------------------- */

typedef struct batch_item {
    char *line;
    size_t len;
    size_t lineno;
    char *out; /* the alarm JSON, or an error object */
    int level; /* -1 on error */
} batch_item;

typedef struct batch_work {
    const alkfw_firewall *fw;
    batch_item *items;
    size_t n;
    size_t next;
    pthread_mutex_t lock;
} batch_work;

/* Writes {"line": N, "error": "message"} into a new string (NULL when out of memory). */
static char *error_line(size_t lineno, const char *message)
{
    size_t need = strlen(message) * 6 + 64;
    char *o = malloc(need);
    if (o == NULL)
        return NULL;
    size_t n = (size_t)snprintf(o, need, "{\"line\":%zu,\"error\":\"", lineno);
    for (const char *c = message; *c; c++) {
        unsigned char u = (unsigned char)*c;
        if (u == '"' || u == '\\')
            n += (size_t)snprintf(o + n, need - n, "\\%c", u);
        else if (u < 0x20)
            n += (size_t)snprintf(o + n, need - n, "\\u%04x", u);
        else
            o[n++] = (char)u;
    }
    snprintf(o + n, need - n, "\"}");
    return o;
}

/* Screens one batch line into item->out: the alarm JSON, or an error line naming the line. */
static void batch_screen_one(const alkfw_firewall *fw, batch_item *item)
{
    fwu_row row;
    char why[ALKFW_ERROR_MESSAGE_SIZE];
    alkfw_error err = {0};
    item->level = -1;
    item->out = NULL;
    if (fwu_parse_row(item->line, item->len, &row, why, sizeof why) == 0) {
        alkfw_alarm alarm;
        alkfw_status st = alkfw_screen(fw, row.text, row.len, &alarm, &err);
        if (st == ALKFW_OK)
            st = alkfw_alarm_to_json(&alarm, &item->out, &err);
        if (st == ALKFW_OK)
            item->level = (int)alarm.level;
        else
            snprintf(why, sizeof why, "%s", err.message);
        alkfw_alarm_free(&alarm);
        fwu_row_free(&row);
    }
    if (item->level >= 0)
        return;
    fprintf(stderr, "alkfw screen: line %zu: %s\n", item->lineno, why);
    item->out = error_line(item->lineno, why);
}

/* A worker: takes the next unscreened item until none is left. */
static void *batch_worker(void *arg)
{
    batch_work *w = arg;
    while (1) {
        pthread_mutex_lock(&w->lock);
        size_t i = w->next++;
        pthread_mutex_unlock(&w->lock);
        if (i >= w->n)
            return NULL;
        batch_screen_one(w->fw, &w->items[i]);
    }
}

/* Screens items[0..n) with n_workers threads (the calling one included). */
static void batch_run(const alkfw_firewall *fw, batch_item *items, size_t n, int n_workers)
{
    batch_work w = {fw, items, n, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t tid[64];
    int started = 0;
    for (int i = 1; i < n_workers && i < 64; i++)
        if (pthread_create(&tid[started], NULL, batch_worker, &w) == 0)
            started++;
    batch_worker(&w);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
}

/* Runs the batch mode over path ("-" for stdin). Returns the exit status: 1 when any line
 * failed, else the status of the highest level seen. */
static int screen_jsonl(const alkfw_firewall *fw, const char *path, int n_workers)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "alkfw screen: %s: cannot open\n", path);
        return CLI_EXIT_ERROR;
    }
    /* count lines first when reading a regular file, so the progress bar knows its total (a
     * pipe or a device cannot be read twice) */
    size_t total = 0;
    struct stat sb;
    if (f != stdin && fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode)) {
        int c, last = '\n';
        while ((c = getc(f)) != EOF) {
            if (c == '\n')
                total++;
            last = c;
        }
        if (last != '\n')
            total++;
        rewind(f);
    }
    fwu_progress prog;
    fwu_progress_start(&prog, "screen", total, 0);

    batch_item items[BATCH_CHUNK];
    char *line = NULL;
    size_t cap = 0, lineno = 0, done = 0;
    int worst = -1, failed = 0, eof = 0, read_error = 0;
    while (!eof) {
        size_t n = 0;
        while (n < BATCH_CHUNK) {
            ssize_t got = getline(&line, &cap, f);
            if (got < 0) {
                read_error = ferror(f) ? (errno != 0 ? errno : EIO) : 0;
                eof = 1;
                break;
            }
            lineno++;
            size_t len = (size_t)got;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            size_t blank = 0; /* a line of only spaces and tabs is skipped, as build reads */
            while (blank < len && (line[blank] == ' ' || line[blank] == '\t'))
                blank++;
            if (blank == len)
                continue;
            items[n].line = malloc(len + 1);
            if (items[n].line == NULL) {
                eof = failed = 1;
                break;
            }
            memcpy(items[n].line, line, len);
            items[n].line[len] = '\0';
            items[n].len = len;
            items[n].lineno = lineno;
            n++;
        }
        batch_run(fw, items, n, n_workers);
        for (size_t i = 0; i < n; i++) {
            if (items[i].out != NULL)
                printf("%s\n", items[i].out);
            if (items[i].level < 0)
                failed = 1;
            else if (items[i].level > worst)
                worst = items[i].level;
            free(items[i].out);
            free(items[i].line);
        }
        fflush(stdout);
        done += n;
        if (prog.total < done)
            prog.total = done;
        fwu_progress_update(&prog, done);
    }
    fwu_progress_end(&prog, done);
    free(line);
    if (f != stdin)
        fclose(f);
    if (read_error != 0) {
        fprintf(stderr, "alkfw screen: %s: read error after line %zu: %s\n", path, lineno,
                strerror(read_error));
        return CLI_EXIT_ERROR;
    }
    if (failed)
        return CLI_EXIT_ERROR;
    return worst < 0 ? CLI_EXIT_OK : fwu_exit_for_level((alkfw_level)worst);
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                               */
/* ---------------------------------------------------------------------------------------- */

int cmd_screen(int argc, char **argv)
{
    int json = 0, jsonl = 0;
    int stream = 0; /* --stream: see screen_stream.c */
    alkfw_document_options stream_opts;
    alkfw_document_options_init(&stream_opts);
    fwu_detector_args det = {0};
    alkfw_options opts;
    alkfw_options_init(&opts);
    int first_text = argc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            screen_usage(stdout);
            return CLI_EXIT_OK;
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--jsonl") == 0) {
            jsonl = 1;
        } else if (strcmp(a, "--stream") == 0) {
            stream = 1;
        } else if (strcmp(a, "--stream-window") == 0 && v &&
                   fwu_parse_long(v, 2, 1L << 20, &n) == 0) {
            stream_opts.window = (size_t)n, i++;
        } else if (strcmp(a, "--last-token") == 0) {
            opts.last_token = 1;
        } else if (strcmp(a, "--no-smoothing") == 0) {
            opts.smoothing = 0;
        } else if (fwu_parse_detector_option(argc, argv, &i, &det, &opts)) {
            continue;
        } else if (strcmp(a, "--window") == 0 && v && fwu_parse_long(v, 1, 4096, &n) == 0) {
            opts.smoothing_window = (int)n, i++;
        } else if (strcmp(a, "--max-tokens") == 0 && v && fwu_parse_long(v, 1, 1L << 24, &n) == 0) {
            opts.max_tokens = (size_t)n, i++;
        } else if (strcmp(a, "--") == 0) {
            first_text = i + 1;
            break;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "alkfw screen: bad option '%s'%s\n\n", a,
                    v == NULL ? " (or its value is missing)" : " or its value");
            screen_usage(stderr);
            return CLI_EXIT_USAGE;
        } else {
            first_text = i;
            break;
        }
    }
    int n_text = argc - first_text;
    if (jsonl && n_text > 1) {
        fprintf(stderr, "alkfw screen: --jsonl takes one FILE (or -)\n");
        return CLI_EXIT_USAGE;
    }
    if (stream && (jsonl || n_text > 0)) {
        fprintf(stderr, "alkfw screen: --stream reads stdin only, without --jsonl\n");
        return CLI_EXIT_USAGE;
    }
    if (!jsonl && !stream && n_text == 0 && isatty(STDIN_FILENO)) {
        screen_usage(stderr);
        return CLI_EXIT_USAGE;
    }

    /* in batch mode the threads screen different lines; each forward then runs on one */
    opts.n_threads = jsonl ? 1 : (int)det.threads;
    int is_default = 0;
    alkfw_error err = {0};
    alkfw_firewall *fw = NULL;
    if (fwu_open_firewall(det.model, det.codebook, &opts, &fw, &is_default, &err) != ALKFW_OK)
        return cli_fail("screen", &err);

    if (stream) {
        int rc = cli_screen_stream(fw, &stream_opts);
        alkfw_firewall_free(fw);
        return rc;
    }
    if (jsonl) {
        int rc = screen_jsonl(fw, n_text ? argv[first_text] : "-",
                              det.threads > 0 ? (int)det.threads : 1);
        alkfw_firewall_free(fw);
        return rc;
    }

    /* one text: the arguments joined by spaces, or stdin */
    char *text = NULL;
    size_t len = 0;
    if (n_text == 0 || (n_text == 1 && strcmp(argv[first_text], "-") == 0)) {
        text = fwu_read_all(stdin, &len);
    } else {
        for (int i = first_text; i < argc; i++)
            len += strlen(argv[i]) + 1;
        text = malloc(len + 1);
        if (text != NULL) {
            size_t o = 0;
            for (int i = first_text; i < argc; i++) {
                size_t l = strlen(argv[i]);
                memcpy(text + o, argv[i], l);
                o += l;
                if (i + 1 < argc)
                    text[o++] = ' ';
            }
            text[o] = '\0';
            len = o;
        }
    }
    if (text == NULL) {
        alkfw_firewall_free(fw);
        fprintf(stderr, "alkfw screen: cannot read the text\n");
        return CLI_EXIT_ERROR;
    }

    alkfw_alarm alarm;
    int rc;
    if (alkfw_screen(fw, text, len, &alarm, &err) != ALKFW_OK) {
        rc = cli_fail("screen", &err);
    } else if (json) {
        char *out = NULL;
        if (alkfw_alarm_to_json(&alarm, &out, &err) != ALKFW_OK) {
            rc = cli_fail("screen", &err);
        } else {
            printf("%s\n", out);
            rc = fwu_exit_for_level(alarm.level);
        }
        free(out);
    } else {
        print_human(&alarm, text, len, is_default);
        rc = fwu_exit_for_level(alarm.level);
    }
    alkfw_alarm_free(&alarm);
    free(text);
    alkfw_firewall_free(fw);
    return rc;
}
