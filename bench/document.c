/*
 * document.c - long documents and streams: screening throughput (MB/s) of alkfw_screen_document,
 * the cost of one streamed chunk against re-screening the prefix, and peak RSS as the document
 * grows.
 *
 * usage: bench_document [options]
 *   --model DIR        detector (default: models/stories260k)
 *   --codebook FILE    codebook (default: DIR/codebook.safetensors, else the firewall test
 *                      fixture tests/fixtures/firewall/reference_codebook.safetensors)
 *   --corpus FILE      text repeated to make documents (default: the benign BIPIA documents of
 *                      ../shared/data/labeled.jsonl, extracted on the fly)
 *   --mb X             size of the throughput document in MB (default 1; 0 skips)
 *   --window W         window of the throughput and streaming runs (default: the default)
 *   --threads N        windows screened at once (default 2)
 *   --context T        tokens already streamed before the measured chunks (default 1000)
 *   --chunk T          tokens per measured chunk (default 16)
 *   --chunks R         measured chunks (default 16; the prefix is re-screened at 4 of them)
 *   --rss LIST         document sizes in MB for the peak-RSS runs (default 1,2,4,8,16; "" skips)
 *   --rss-window W     window of the peak-RSS runs (default 64: the figure is about memory, a
 *                      small window keeps the run short)
 *
 * Every figure is wall time on a machine that may be shared; the streaming figures are medians.
 * Peak RSS comes from wait4() on a fresh process per size (this program re-executed), which
 * generates its document piece by piece, so the document itself is never in memory.
 */
#include "alkfw.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MODEL ALKFW_SOURCE_DIR "/models/stories260k"
#define FALLBACK_CODEBOOK ALKFW_SOURCE_DIR "/tests/fixtures/firewall/reference_codebook.safetensors"
#define LABELED ALKFW_SHARED_DIR "/data/labeled.jsonl"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, compare_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---------------------------------------------------------------------------------------- */
/* The corpus and documents made from it                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Reads a whole file; NULL when it cannot. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 20, n = 0, got;
    char *buf = malloc(cap);
    while (buf != NULL && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *g = realloc(buf, cap *= 2);
            if (g == NULL)
                free(buf);
            buf = g;
        }
    }
    fclose(f);
    *len = n;
    return buf;
}

/* The benign BIPIA documents of labeled.jsonl joined by blank lines. */
static char *bipia_corpus(size_t *len)
{
    size_t n;
    char *all = slurp(LABELED, &n);
    if (all == NULL)
        return NULL;
    char *out = malloc(n + 1);
    size_t o = 0;
    for (char *line = strtok(all, "\n"); out != NULL && line != NULL; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *kind = cJSON_GetObjectItem(j, "kind"), *text = cJSON_GetObjectItem(j, "text");
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "document") == 0 &&
            cJSON_IsString(text)) {
            size_t l = strlen(text->valuestring);
            memcpy(out + o, text->valuestring, l);
            o += l;
            out[o++] = '\n';
            out[o++] = '\n';
        }
        cJSON_Delete(j);
    }
    free(all);
    *len = o;
    return out;
}

/* A document of `size` bytes: the corpus repeated, produced piece by piece. */
typedef struct repeat_reader {
    const char *corpus;
    size_t corpus_len, size, at;
} repeat_reader;

static long repeat_read(void *user, char *buf, size_t cap)
{
    repeat_reader *r = user;
    size_t n = 0;
    while (n < cap && r->at < r->size) {
        size_t off = r->at % r->corpus_len, take = r->corpus_len - off;
        if (take > cap - n)
            take = cap - n;
        if (take > r->size - r->at)
            take = r->size - r->at;
        memcpy(buf + n, r->corpus + off, take);
        n += take;
        r->at += take;
    }
    return (long)n;
}

/* ---------------------------------------------------------------------------------------- */
/* The three measurements                                                                    */
/* ---------------------------------------------------------------------------------------- */

static alkfw_firewall *open_fw(const char *model, const char *codebook)
{
    alkfw_options o;
    alkfw_options_init(&o);
    o.n_threads = 1;
    alkfw_firewall *fw = NULL;
    alkfw_error err = {0};
    if (alkfw_firewall_open(model, codebook, &o, &fw, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_document: %s\n", err.message);
        exit(1);
    }
    return fw;
}

static void throughput(const alkfw_firewall *fw, const char *corpus, size_t corpus_len, double mb,
                       size_t window, int threads)
{
    alkfw_document_options o;
    alkfw_document_options_init(&o);
    o.window = window;
    o.n_threads = threads;
    repeat_reader r = {corpus, corpus_len, (size_t)(mb * 1e6), 0};
    alkfw_document_alarm d;
    alkfw_error err = {0};
    double t0 = now();
    if (alkfw_screen_document_read(fw, repeat_read, &r, &o, &d, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_document: %s\n", err.message);
        exit(1);
    }
    double s = now() - t0;
    printf("| throughput | %.2f MB document, window %zu, %d threads | %zu tokens, %zu windows | "
           "%.1f s | **%.3f MB/s** (%.0f tokens/s) |\n",
           mb, d.windows[0].n_tokens, threads, d.alarm.n_tokens, d.n_windows, s, mb / s,
           (double)d.alarm.n_tokens / s);
    alkfw_document_alarm_free(&d);
}

static void streaming(const alkfw_firewall *fw, const char *corpus, size_t corpus_len,
                      size_t window, size_t context, size_t chunk, size_t chunks)
{
    alkfw_error err = {0};
    size_t need = context + chunk * chunks + 8, len = corpus_len < 400000 ? corpus_len : 400000;
    alkfw_document_options o;
    alkfw_document_options_init(&o);
    o.window = window;
    o.n_threads = 1;
    alkfw_stream *s = NULL;
    if (alkfw_stream_open(fw, &o, &s, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_document: %s\n", err.message);
        exit(1);
    }

    /* chunk sizes in bytes from the corpus's bytes per token; the stream's alarms then count
     * the tokens each chunk really added */
    alkfw_document_alarm d;
    size_t probe = len < 20000 ? len : 20000;
    if (alkfw_screen_document(fw, corpus, probe, &o, &d, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_document: %s\n", err.message);
        exit(1);
    }
    double bytes_per_token = (double)probe / (double)d.alarm.n_tokens;
    size_t effective_window = d.windows[0].n_tokens;
    alkfw_document_alarm_free(&d);
    size_t ctx_bytes = (size_t)(bytes_per_token * (double)context);
    size_t chunk_bytes = (size_t)(bytes_per_token * (double)chunk + 0.5);
    if (chunk_bytes == 0)
        chunk_bytes = 1;
    if (ctx_bytes + chunk_bytes * chunks > len || need > len) {
        fprintf(stderr, "bench_document: corpus too short for the streaming run\n");
        exit(1);
    }

    alkfw_document_alarm a;
    if (alkfw_stream_push(s, corpus, ctx_bytes, &a, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_document: %s\n", err.message);
        exit(1);
    }
    size_t ctx_tokens = a.alarm.n_tokens;
    alkfw_document_alarm_free(&a);
    chunk_bytes = (size_t)((double)ctx_bytes / (double)ctx_tokens * (double)chunk + 0.5);
    if (chunk_bytes == 0)
        chunk_bytes = 1;

    double *push_ms = malloc(chunks * sizeof *push_ms), *full_ms = malloc(chunks * sizeof *full_ms);
    size_t n_full = 0, at = ctx_bytes, tokens_before = ctx_tokens, new_tokens = 0;
    for (size_t i = 0; i < chunks; i++) {
        double t0 = now();
        if (alkfw_stream_push(s, corpus + at, chunk_bytes, &a, &err) != ALKFW_OK) {
            fprintf(stderr, "bench_document: %s\n", err.message);
            exit(1);
        }
        push_ms[i] = 1e3 * (now() - t0);
        at += chunk_bytes;
        new_tokens += a.alarm.n_tokens - tokens_before;
        tokens_before = a.alarm.n_tokens;
        alkfw_document_alarm_free(&a);

        if (i % (chunks / 4 ? chunks / 4 : 1) == 0) {
            t0 = now();
            if (alkfw_screen_document(fw, corpus, at, &o, &d, &err) != ALKFW_OK) {
                fprintf(stderr, "bench_document: %s\n", err.message);
                exit(1);
            }
            full_ms[n_full++] = 1e3 * (now() - t0);
            alkfw_document_alarm_free(&d);
        }
    }
    double p = median(push_ms, chunks), f = median(full_ms, n_full);
    printf("| streaming | %zu tokens of context, chunks of %.1f tokens (%zu bytes), window %zu | "
           "push + alarm %.2f ms (median of %zu) | re-screen prefix %.1f ms (median of %zu) | "
           "**%.0fx cheaper** |\n",
           ctx_tokens, (double)new_tokens / (double)chunks, chunk_bytes, effective_window, p,
           chunks, f, n_full, f / p);
    free(push_ms);
    free(full_ms);
    alkfw_stream_free(s);
}

/* Child mode: screen a generated document of mb MB with the given window, print nothing. */
static int rss_child(const char *model, const char *codebook, const char *corpus, size_t corpus_len,
                     double mb, size_t window)
{
    alkfw_firewall *fw = open_fw(model, codebook);
    alkfw_document_options o;
    alkfw_document_options_init(&o);
    o.window = window;
    o.n_threads = 2;
    repeat_reader r = {corpus, corpus_len, (size_t)(mb * 1e6), 0};
    alkfw_document_alarm d;
    alkfw_error err = {0};
    double t0 = now();
    alkfw_status st = alkfw_screen_document_read(fw, repeat_read, &r, &o, &d, &err);
    if (st != ALKFW_OK)
        fprintf(stderr, "bench_document: %s\n", err.message);
    else
        fprintf(stderr, "  %g MB: %zu tokens, %zu windows, %.1f s\n", mb, d.alarm.n_tokens,
                d.n_windows, now() - t0);
    alkfw_document_alarm_free(&d);
    alkfw_firewall_free(fw);
    return st == ALKFW_OK ? 0 : 1;
}

static void rss_runs(char **argv, const char *list, const char *model, const char *codebook,
                     const char *corpus_path, size_t window)
{
    char *copy = strdup(list);
    for (char *item = strtok(copy, ","); item != NULL; item = strtok(NULL, ",")) {
        char win[32];
        snprintf(win, sizeof win, "%zu", window);
        pid_t pid = fork();
        if (pid == 0) {
            char *args[] = {argv[0],
                            "--rss-child",
                            item,
                            "--model",
                            (char *)model,
                            "--codebook",
                            (char *)codebook,
                            "--rss-window",
                            win,
                            corpus_path ? "--corpus" : NULL,
                            (char *)corpus_path,
                            NULL};
            execv("/proc/self/exe", args);
            _exit(127);
        }
        int status = 0;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench_document: the %s MB run failed\n", item);
            continue;
        }
        printf("| peak RSS | %s MB document, window %zu, 2 threads | | | **%.1f MB** |\n", item,
               window, (double)ru.ru_maxrss / 1024.0);
        fflush(stdout);
    }
    free(copy);
}

int main(int argc, char **argv)
{
    const char *model = DEFAULT_MODEL, *codebook = NULL, *corpus_path = NULL;
    const char *rss = "1,2,4,8,16";
    double mb = 1.0, child_mb = -1.0;
    size_t window = 0, rss_window = 64, context = 1000, chunk = 16, chunks = 16;
    int threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL && strcmp(a, "--help") != 0) {
            fprintf(stderr, "bench_document: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--model") == 0)
            model = v, i++;
        else if (strcmp(a, "--codebook") == 0)
            codebook = v, i++;
        else if (strcmp(a, "--corpus") == 0)
            corpus_path = v, i++;
        else if (strcmp(a, "--mb") == 0)
            mb = atof(v), i++;
        else if (strcmp(a, "--window") == 0)
            window = (size_t)atol(v), i++;
        else if (strcmp(a, "--threads") == 0)
            threads = atoi(v), i++;
        else if (strcmp(a, "--context") == 0)
            context = (size_t)atol(v), i++;
        else if (strcmp(a, "--chunk") == 0)
            chunk = (size_t)atol(v), i++;
        else if (strcmp(a, "--chunks") == 0)
            chunks = (size_t)atol(v), i++;
        else if (strcmp(a, "--rss") == 0)
            rss = v, i++;
        else if (strcmp(a, "--rss-window") == 0)
            rss_window = (size_t)atol(v), i++;
        else if (strcmp(a, "--rss-child") == 0)
            child_mb = atof(v), i++;
        else {
            fprintf(stderr, "usage: see the comment at the top of bench/document.c\n");
            return 2;
        }
    }
    char cb_default[4096];
    if (codebook == NULL) {
        snprintf(cb_default, sizeof cb_default, "%s/codebook.safetensors", model);
        codebook = access(cb_default, R_OK) == 0 ? cb_default : FALLBACK_CODEBOOK;
    }
    size_t corpus_len = 0;
    char *corpus = corpus_path ? slurp(corpus_path, &corpus_len) : bipia_corpus(&corpus_len);
    if (corpus == NULL || corpus_len == 0) {
        fprintf(stderr, "bench_document: no corpus (%s)\n", corpus_path ? corpus_path : LABELED);
        return 1;
    }
    if (child_mb >= 0)
        return rss_child(model, codebook, corpus, corpus_len, child_mb, rss_window);

    printf("bench_document: model %s, codebook %s, corpus %zu bytes, %ld cores online\n\n", model,
           codebook, corpus_len, sysconf(_SC_NPROCESSORS_ONLN));
    printf("| measure | setting | work | time | figure |\n|---|---|---|---|---|\n");
    fflush(stdout);
    alkfw_firewall *fw = open_fw(model, codebook);
    if (chunks > 0)
        streaming(fw, corpus, corpus_len, window, context, chunk, chunks);
    fflush(stdout);
    if (mb > 0)
        throughput(fw, corpus, corpus_len, mb, window, threads);
    fflush(stdout);
    alkfw_firewall_free(fw);
    if (rss[0] != '\0')
        rss_runs(argv, rss, model, codebook, corpus_path, rss_window);
    free(corpus);
    return 0;
}
