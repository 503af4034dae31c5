/*
 * fw_util.c - helpers shared by the firewall subcommands.
 */
#include "cli/fw_util.h"

#include "cli/cli.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------- */
/* Numbers                                                                                   */
/* ---------------------------------------------------------------------------------------- */

int fwu_parse_long(const char *s, long min, long max, long *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int fwu_parse_double(const char *s, double min, double max, double *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || *end != '\0' || !isfinite(v) || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

int fwu_parse_int_list(const char *s, int *out, int max, long min, long max_value)
{
    if (s == NULL || *s == '\0')
        return -1;
    int n = 0;
    const char *p = s;
    while (1) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        if (len == 0 || len >= sizeof item || n >= max)
            return -1;
        memcpy(item, p, len);
        item[len] = '\0';
        long v;
        if (fwu_parse_long(item, min, max_value, &v) != 0)
            return -1;
        out[n++] = (int)v;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Reading text and JSONL                                                                    */
/* ---------------------------------------------------------------------------------------- */

char *fwu_read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    while (1) {
        if (cap - n < 2) {
            char *g = cap < (SIZE_MAX / 2) ? realloc(buf, cap * 2) : NULL;
            if (g == NULL) {
                free(buf);
                return NULL;
            }
            buf = g;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A copy of a JSON string item's value, or "" when item is NULL. NULL when out of memory or
 * when the item is not a string (*bad is set then). */
static char *json_string_copy(const cJSON *item, size_t *len, int *bad)
{
    if (item == NULL) {
        if (len)
            *len = 0;
        return strdup("");
    }
    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        *bad = 1;
        return NULL;
    }
    /* cJSON decodes \u0000 into a NUL that ends valuestring early: fwu_parse_row refuses
     * lines holding one, so a text is never screened cut short. */
    size_t n = strlen(item->valuestring);
    if (len)
        *len = n;
    return strdup(item->valuestring);
}

/* The byte offset of the first NUL in a valid JSON line, raw or escaped as \u0000, or -1.
 * In valid JSON every backslash opens an escape inside a string, so pairs are skipped. */
static long json_nul_at(const char *line, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (line[i] == '\0')
            return (long)i;
        if (line[i] != '\\' || i + 1 >= len)
            continue;
        if (line[i + 1] == 'u' && i + 5 < len && memcmp(line + i + 2, "0000", 4) == 0)
            return (long)i;
        i++;
    }
    return -1;
}

/* The name of a member that occurs twice among "text", "label" and "source", or NULL. A
 * reader that keeps the last of duplicate keys would see another text than the one screened. */
static const char *json_duplicate_key(const cJSON *o)
{
    static const char *const keys[] = {"text", "label", "source"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        int n = 0;
        for (const cJSON *c = o->child; c != NULL; c = c->next)
            n += c->string != NULL && strcmp(c->string, keys[k]) == 0;
        if (n > 1)
            return keys[k];
    }
    return NULL;
}

int fwu_parse_row(const char *line, size_t len, fwu_row *row, char *msg, size_t msg_size)
{
    memset(row, 0, sizeof *row);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    size_t at = end != NULL && end >= line && end <= line + len ? (size_t)(end - line) : 0;
    if (o == NULL) {
        snprintf(msg, msg_size, "not valid JSON (at byte %zu)", at);
        return -1;
    }
    while (at < len &&
           (line[at] == ' ' || line[at] == '\t' || line[at] == '\r' || line[at] == '\n'))
        at++;
    if (at < len) {
        cJSON_Delete(o);
        snprintf(msg, msg_size, "more than one JSON value (text after byte %zu)", at);
        return -1;
    }
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(msg, msg_size, "not a JSON object");
        return -1;
    }
    const char *dup = json_duplicate_key(o);
    long nul = json_nul_at(line, len);
    if (dup != NULL || nul >= 0) {
        cJSON_Delete(o);
        if (dup != NULL)
            snprintf(msg, msg_size, "key \"%s\" occurs more than once", dup);
        else
            snprintf(msg, msg_size,
                     "a NUL (\\u0000) at byte %ld: a JSON line cannot carry it whole (pipe the raw "
                     "text to alkfw screen instead)",
                     nul);
        return -1;
    }
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(o, "text");
    if (text == NULL || !cJSON_IsString(text)) {
        cJSON_Delete(o);
        snprintf(msg, msg_size, "no string \"text\"");
        return -1;
    }
    int bad = 0;
    row->text = json_string_copy(text, &row->len, &bad);
    row->label = json_string_copy(cJSON_GetObjectItemCaseSensitive(o, "label"), NULL, &bad);
    row->source = json_string_copy(cJSON_GetObjectItemCaseSensitive(o, "source"), NULL, &bad);
    cJSON_Delete(o);
    if (bad || row->text == NULL || row->label == NULL || row->source == NULL) {
        fwu_row_free(row);
        snprintf(msg, msg_size, bad ? "\"label\" and \"source\" must be strings" : "out of memory");
        return -1;
    }
    return 0;
}

void fwu_row_free(fwu_row *row)
{
    if (row == NULL)
        return;
    free(row->text);
    free(row->label);
    free(row->source);
    memset(row, 0, sizeof *row);
}

int fwu_dataset_load(const char *path, int require_label, fwu_dataset *ds, char *msg,
                     size_t msg_size)
{
    memset(ds, 0, sizeof *ds);
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        snprintf(msg, msg_size, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, cap_rows = 0, lineno = 0;
    ssize_t got;
    int rc = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        size_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t'))
            i++;
        if (i == len)
            continue;
        if (ds->n == cap_rows) {
            size_t c = cap_rows ? cap_rows * 2 : 256;
            fwu_row *g = realloc(ds->rows, c * sizeof *g);
            if (g == NULL) {
                snprintf(msg, msg_size, "%s: out of memory", path);
                rc = -1;
                break;
            }
            ds->rows = g;
            cap_rows = c;
        }
        char why[256];
        fwu_row *row = &ds->rows[ds->n];
        if (fwu_parse_row(line, len, row, why, sizeof why) != 0) {
            snprintf(msg, msg_size, "%s:%zu: %s", path, lineno, why);
            rc = -1;
            break;
        }
        row->line = lineno;
        ds->n++;
        if (require_label && row->label[0] == '\0') {
            snprintf(msg, msg_size, "%s:%zu: no string \"label\"", path, lineno);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        snprintf(msg, msg_size, "%s: read error", path);
        rc = -1;
    }
    free(line);
    if (f != stdin)
        fclose(f);
    if (rc != 0)
        fwu_dataset_free(ds);
    return rc;
}

void fwu_dataset_free(fwu_dataset *ds)
{
    if (ds == NULL)
        return;
    for (size_t i = 0; i < ds->n; i++)
        fwu_row_free(&ds->rows[i]);
    free(ds->rows);
    memset(ds, 0, sizeof *ds);
}

/* ---------------------------------------------------------------------------------------- */
/* Progress                                                                                  */
/* ---------------------------------------------------------------------------------------- */

double fwu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void fwu_progress_start(fwu_progress *p, const char *label, size_t total, int always)
{
    p->label = label;
    p->total = total;
    p->tty = isatty(STDERR_FILENO);
    p->always = always;
    p->last_tenth = 0;
    p->last_draw = 0;
    p->start = fwu_now();
}

void fwu_progress_update(fwu_progress *p, size_t done)
{
    double now = fwu_now();
    double frac = p->total ? (double)done / (double)p->total : 1.0;
    if (p->tty) {
        if (now - p->last_draw < 0.1 && done < p->total)
            return;
        p->last_draw = now;
        int width = 30, fill = (int)(frac * width);
        char bar[32];
        for (int i = 0; i < width; i++)
            bar[i] = i < fill ? '#' : '.';
        bar[width] = '\0';
        double rate = now > p->start ? (double)done / (now - p->start) : 0;
        fprintf(stderr, "\r%s [%s] %zu/%zu %.1f/s ", p->label, bar, done, p->total, rate);
        fflush(stderr);
        return;
    }
    if (!p->always)
        return;
    int tenth = (int)(frac * 10);
    if (tenth > p->last_tenth) {
        p->last_tenth = tenth;
        fprintf(stderr, "%s: %zu/%zu (%.0f s)\n", p->label, done, p->total, now - p->start);
    }
}

void fwu_progress_end(fwu_progress *p, size_t done)
{
    if (p->tty) {
        p->last_draw = 0;
        fwu_progress_update(p, done);
        fputc('\n', stderr);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* The detector and display                                                                  */
/* ---------------------------------------------------------------------------------------- */

alkfw_status fwu_resolve(const char *model, const char *codebook, char *model_dir,
                         char *codebook_path, size_t size, int *is_default, alkfw_error *err)
{
    *is_default = model == NULL;
    if (model == NULL) {
        alkfw_status st = alkfw_default_model_dir(model_dir, size, err);
        if (st != ALKFW_OK)
            return st;
    } else {
        snprintf(model_dir, size, "%s", model);
    }
    if (codebook != NULL)
        snprintf(codebook_path, size, "%s", codebook);
    else
        snprintf(codebook_path, size, "%s/codebook.safetensors", model_dir);
    return ALKFW_OK;
}

alkfw_status fwu_open_firewall(const char *model, const char *codebook, const alkfw_options *opts,
                               alkfw_firewall **fw, int *is_default, alkfw_error *err)
{
    char model_dir[PATH_MAX], codebook_path[PATH_MAX];
    int dflt;
    *fw = NULL;
    alkfw_status st =
        fwu_resolve(model, codebook, model_dir, codebook_path, sizeof model_dir, &dflt, err);
    if (st != ALKFW_OK)
        return st;
    if (is_default != NULL)
        *is_default = dflt;
    return alkfw_firewall_open(model_dir, codebook_path, opts, fw, err);
}

int fwu_exit_for_level(alkfw_level level)
{
    if (level == ALKFW_DANGEROUS)
        return CLI_EXIT_DANGEROUS;
    if (level == ALKFW_SUSPICIOUS)
        return CLI_EXIT_SUSPICIOUS;
    return CLI_EXIT_OK;
}

int fwu_parse_detector_option(int argc, char **argv, int *i, fwu_detector_args *args,
                              alkfw_options *opts)
{
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long n;
    double x;

    if (strcmp(a, "--plain-specials") == 0) {
        opts->plain_specials = 1;
        return 1;
    }
    if (v == NULL)
        return 0;
    if (strcmp(a, "--model") == 0)
        args->model = v;
    else if (strcmp(a, "--codebook") == 0)
        args->codebook = v;
    else if (strcmp(a, "--threads") == 0 && fwu_parse_long(v, 1, 64, &n) == 0)
        args->threads = n;
    else if (strcmp(a, "--suspicious") == 0 && fwu_parse_double(v, 0, 1, &x) == 0)
        opts->threshold_suspicious = x;
    else if (strcmp(a, "--dangerous") == 0 && fwu_parse_double(v, 0, 1, &x) == 0)
        opts->threshold_dangerous = x;
    else if (strcmp(a, "--max-spans") == 0 && fwu_parse_long(v, 0, 64, &n) == 0)
        opts->max_spans = (size_t)n;
    else
        return 0;
    (*i)++;
    return 1;
}

void fwu_print_escaped(FILE *out, const char *text, size_t len, size_t max)
{
    size_t n = len < max ? len : max;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", out);
        else if (c == '\t')
            fputs("\\t", out);
        else if (c < 0x20 || c == 0x7f)
            fprintf(out, "\\x%02x", c);
        else
            fputc(c, out); /* UTF-8 sequences pass through */
    }
    if (n < len)
        fputs("...", out);
}
