/*
 * tokenize.c - tokenizer throughput and load time, beside the JavaScript reference
 * (@huggingface/transformers) measured on the same inputs by tools/tokref/bench.mjs.
 *
 * Inputs: every text of labeled.jsonl encoded one by one; a large document made of those
 * texts (all but the "multi"-language rows, mostly English) joined by blank lines and
 * encoded in one call; and two stress inputs, 1 MB of letters without spaces and 1 MB of one
 * repeated character. Each figure is the best of --reps runs (default 3), single-threaded,
 * timed in CPU seconds of the calling thread (the JS side uses process.cpuUsage()).
 *
 * usage: bench_tokenize [--reps N] [--no-js] [--only TOKENIZER.INPUT]
 *   --only smollm2.labeled   runs one row (for profiling); inputs: labeled, document,
 *                            nospace, same
 * Prints a Markdown table to stdout.
 */
#include "alkfw.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SMOL_JSON ALKFW_SHARED_DIR "/models/smollm2-135m/tokenizer.json"
#define STORIES_JSON ALKFW_SOURCE_DIR "/models/stories260k/tokenizer.json"
#define LABELED ALKFW_SHARED_DIR "/data/labeled.jsonl"

/* CPU time of this thread: the machine may be shared, and waiting for a core is not the
 * tokenizer's cost. */
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct texts {
    char **s;
    size_t *len;
    size_t n, bytes;
    char *doc; /* the large document */
    size_t doc_len;
} texts;

/* Reads labeled.jsonl: every text, and the large document. Exits on failure (a benchmark
 * program, not library code). */
static void load_texts(texts *t)
{
    FILE *f = fopen(LABELED, "rb");
    if (f == NULL) {
        fprintf(stderr, "bench_tokenize: cannot open %s\n", LABELED);
        exit(1);
    }
    memset(t, 0, sizeof *t);
    size_t cap = 0, doc_cap = 1 << 20;
    t->doc = malloc(doc_cap);
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    while ((n = getline(&line, &lcap, f)) > 0) {
        cJSON *o = cJSON_ParseWithLength(line, (size_t)n);
        const cJSON *text = cJSON_GetObjectItem(o, "text");
        const cJSON *lang = cJSON_GetObjectItem(o, "lang");
        if (cJSON_IsString(text)) {
            if (t->n == cap) {
                cap = cap ? cap * 2 : 1024;
                t->s = realloc(t->s, cap * sizeof *t->s);
                t->len = realloc(t->len, cap * sizeof *t->len);
            }
            size_t l = strlen(text->valuestring);
            t->s[t->n] = strdup(text->valuestring);
            t->len[t->n++] = l;
            t->bytes += l;
            if (!cJSON_IsString(lang) || strcmp(lang->valuestring, "multi") != 0) {
                while (t->doc_len + l + 2 > doc_cap)
                    t->doc = realloc(t->doc, doc_cap *= 2);
                if (t->doc_len > 0) {
                    memcpy(t->doc + t->doc_len, "\n\n", 2);
                    t->doc_len += 2;
                }
                memcpy(t->doc + t->doc_len, text->valuestring, l);
                t->doc_len += l;
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
}

/* Encodes every text once; returns seconds. */
static double run_texts(const alkfw_tokenizer *tok, const texts *t, size_t *n_tokens)
{
    double t0 = now_s();
    *n_tokens = 0;
    for (size_t i = 0; i < t->n; i++) {
        alkfw_encoding enc;
        alkfw_error err;
        if (alkfw_tokenizer_encode(tok, t->s[i], t->len[i], NULL, &enc, &err) != ALKFW_OK) {
            fprintf(stderr, "bench_tokenize: %s\n", err.message);
            exit(1);
        }
        *n_tokens += enc.n_tokens;
        alkfw_encoding_free(&enc);
    }
    return now_s() - t0;
}

/* Encodes one buffer; returns seconds. */
static double run_one(const alkfw_tokenizer *tok, const char *s, size_t len, size_t *n_tokens)
{
    double t0 = now_s();
    alkfw_encoding enc;
    alkfw_error err;
    if (alkfw_tokenizer_encode(tok, s, len, NULL, &enc, &err) != ALKFW_OK) {
        fprintf(stderr, "bench_tokenize: %s\n", err.message);
        exit(1);
    }
    *n_tokens = enc.n_tokens;
    alkfw_encoding_free(&enc);
    return now_s() - t0;
}

/* Best load time in milliseconds over reps loads. */
static double load_ms(const char *path, int reps)
{
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        alkfw_tokenizer *tok;
        alkfw_error err;
        double t0 = now_s();
        if (alkfw_tokenizer_load(path, &tok, &err) != ALKFW_OK) {
            fprintf(stderr, "bench_tokenize: %s\n", err.message);
            exit(1);
        }
        double dt = now_s() - t0;
        alkfw_tokenizer_free(tok);
        if (dt < best)
            best = dt;
    }
    return best * 1e3;
}

/* The JavaScript figures: "key value" lines from tools/tokref/bench.mjs, looked up by key. */
typedef struct js_figures {
    char key[64][48];
    double value[64];
    int n;
} js_figures;

static void run_js(js_figures *js, int reps)
{
    js->n = 0;
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cd '%s/tools/tokref' && test -d node_modules && command -v node >/dev/null && "
             "node bench.mjs '%s' %d 2>/dev/null",
             ALKFW_SOURCE_DIR, ALKFW_SHARED_DIR, reps);
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return;
    char line[256];
    while (js->n < 64 && fgets(line, sizeof line, p) != NULL) {
        if (sscanf(line, "%47s %lf", js->key[js->n], &js->value[js->n]) == 2)
            js->n++;
    }
    pclose(p);
}

static double js_get(const js_figures *js, const char *key)
{
    for (int i = 0; i < js->n; i++) {
        if (strcmp(js->key[i], key) == 0)
            return js->value[i];
    }
    return -1;
}

int main(int argc, char **argv)
{
    int reps = 3, with_js = 1;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-js") == 0)
            with_js = 0;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_tokenize [--reps N] [--no-js] [--only TOK.INPUT]\n");
            return 2;
        }
    }
    if (reps < 1)
        reps = 1;

    texts t;
    load_texts(&t);

    /* the stress inputs */
    size_t mb = 1 << 20;
    char *nospace = malloc(mb), *same = malloc(mb);
    unsigned x = 12345;
    for (size_t i = 0; i < mb; i++) {
        x = x * 1103515245u + 12345u;
        nospace[i] = (char)('a' + (x >> 16) % 26);
        same[i] = 'a';
    }

    const char *paths[2] = {SMOL_JSON, STORIES_JSON};
    const char *names[2] = {"smollm2", "stories260k"};
    js_figures js = {0};
    if (with_js && only == NULL)
        run_js(&js, reps);

    printf("| tokenizer | input | bytes | tokens | C MB/s | JS MB/s | C / JS |\n");
    printf("|---|---|---:|---:|---:|---:|---:|\n");
    for (int k = 0; k < 2; k++) {
        alkfw_tokenizer *tok;
        alkfw_error err;
        if (alkfw_tokenizer_load(paths[k], &tok, &err) != ALKFW_OK) {
            fprintf(stderr, "bench_tokenize: %s\n", err.message);
            return 1;
        }
        /* a fresh tokenizer's first pass: its word cache starts empty */
        char cold_key[96];
        snprintf(cold_key, sizeof cold_key, "%s.cold", names[k]);
        if (only == NULL || strcmp(only, cold_key) == 0) {
            alkfw_tokenizer *cold;
            if (alkfw_tokenizer_load(paths[k], &cold, &err) != ALKFW_OK) {
                fprintf(stderr, "bench_tokenize: %s\n", err.message);
                return 1;
            }
            size_t n_tok;
            double dt = run_texts(cold, &t, &n_tok);
            double j = js_get(&js, cold_key);
            printf("| %s | labeled.jsonl, first pass (cold cache) | %zu | %zu | %.1f |", names[k],
                   t.bytes, n_tok, (double)t.bytes / 1e6 / dt);
            if (j > 0)
                printf(" %.2f | %.0fx |\n", j, (double)t.bytes / 1e6 / dt / j);
            else
                printf(" - | - |\n");
            alkfw_tokenizer_free(cold);
        }
        struct {
            const char *input;
            const char *label;
        } rows[4] = {{"labeled", "labeled.jsonl, text by text"},
                     {"document", "one large document"},
                     {"nospace", "1 MB letters, no spaces"},
                     {"same", "1 MB of 'a'"}};
        for (int r = 0; r < 4; r++) {
            char key[96];
            snprintf(key, sizeof key, "%s.%s", names[k], rows[r].input);
            if (only != NULL && strcmp(only, key) != 0)
                continue;
            double best = 1e30;
            size_t n_tok = 0, bytes = 0;
            for (int rep = 0; rep < reps; rep++) {
                double dt;
                if (r == 0) {
                    dt = run_texts(tok, &t, &n_tok);
                    bytes = t.bytes;
                } else {
                    const char *s = r == 1 ? t.doc : r == 2 ? nospace : same;
                    bytes = r == 1 ? t.doc_len : mb;
                    dt = run_one(tok, s, bytes, &n_tok);
                }
                if (dt < best)
                    best = dt;
            }
            double mbps = (double)bytes / 1e6 / best;
            double j = js_get(&js, key);
            printf("| %s | %s | %zu | %zu | %.1f |", names[k], rows[r].label, bytes, n_tok, mbps);
            if (j > 0)
                printf(" %.2f | %.0fx |\n", j, mbps / j);
            else
                printf(" - | - |\n");
        }
        alkfw_tokenizer_free(tok);
    }

    if (only != NULL)
        goto done;
    printf("\n| tokenizer.json | C load ms | JS load ms |\n|---|---:|---:|\n");
    for (int k = 0; k < 2; k++) {
        char key[96];
        snprintf(key, sizeof key, "%s.load_ms", names[k]);
        double j = js_get(&js, key);
        printf("| %s | %.1f |", names[k], load_ms(paths[k], reps * 3));
        if (j > 0)
            printf(" %.1f |\n", j);
        else
            printf(" - |\n");
    }
    if (with_js && js.n == 0)
        printf("\n(JS figures missing: run `cd tools/tokref && npm ci --ignore-scripts` first)\n");

done:
    for (size_t i = 0; i < t.n; i++)
        free(t.s[i]);
    free(t.s);
    free(t.len);
    free(t.doc);
    free(nospace);
    free(same);
    return 0;
}
