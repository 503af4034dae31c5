/*
 * cmd_build.c - alkfw build: labeled JSONL -> per-token activations of the detector model ->
 * a fitted codebook file (DESIGN §4 "Building one").
 */
#include "cli/cli.h"
#include "cli/fw_util.h"
#include "codebook/codebook.h"
#include "common/error.h"
#include "firewall/firewall.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_LAYERS 64
#define MAX_DIRS CODEBOOK_MAX_DIRECTIONS

static void build_usage(FILE *out)
{
    fprintf(out,
            "usage: alkfw build --model DIR --data FILE.jsonl --out CODEBOOK [options]\n"
            "\n"
            "Builds a codebook for the model in DIR from labeled JSONL lines\n"
            "{\"text\": ..., \"label\": \"benign\" | <direction>, \"source\": ...}.\n"
            "\n"
            "options:\n"
            "  --layers 1,2,4,8        hidden-state indices (HF convention; default 1,2,4,8)\n"
            "  --k N                   projection coordinates, 1..64 (default 3)\n"
            "  --knots N               spline knots (default 32)\n"
            "  --window N              smoothing window stored in the codebook (default 8)\n"
            "  --directions a,b,...    directions to train (default: every non-benign label);\n"
            "                          rows of other labels are skipped\n"
            "  --val-data FILE.jsonl   validation split from a file, instead of --val-fraction\n"
            "  --val-fraction F        validation share per label (default 0.2)\n"
            "  --seed S                seed of the split and the fit (default 1)\n"
            "  --max-tokens N          tokens per text, the rest is cut (default 256)\n"
            "  --max-fit-tokens N      training tokens sampled for SVD and regression\n"
            "                          (default 0: all)\n"
            "  --C X                   inverse L2 strength of the regressions (default 1)\n"
            "  --fpr-dangerous X       benign false-positive rate of DANGEROUS (default 0.01)\n"
            "  --fpr-suspicious X      benign false-positive rate of SUSPICIOUS (default 0.05)\n"
            "  --threads N             texts run through the model at once (default: cores)\n"
            "  --quiet                 no progress on stderr\n");
}

/* ---------------------------------------------------------------------------------------- */
/* The split                                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* splitmix64: a small, well-mixed generator, so the split depends only on the seed. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Marks round(fraction * n) rows of each label as validation, chosen by a seeded shuffle of
 * that label's rows (in file order before the shuffle). label[i] is -1 for benign, else a
 * direction index, -2 for a skipped row. */
static void split_by_label(const int *label, size_t n, int n_dirs, double fraction, uint64_t seed,
                           int *is_val)
{
    size_t *idx = malloc((n ? n : 1) * sizeof *idx);
    uint64_t state = seed ^ 0x5eed5eed5eedULL;
    for (int lab = -1; lab < n_dirs && idx != NULL; lab++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (label[i] == lab)
                idx[m++] = i;
        for (size_t i = m; i > 1; i--) {
            size_t j = (size_t)(splitmix64(&state) % i);
            size_t t = idx[i - 1];
            idx[i - 1] = idx[j];
            idx[j] = t;
        }
        size_t n_val = (size_t)(fraction * (double)m + 0.5);
        for (size_t i = 0; i < m; i++)
            is_val[idx[i]] = i < n_val;
    }
    free(idx);
}

/* ---------------------------------------------------------------------------------------- */
/* Activations                                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef struct act_job {
    const alkfw_model *model;
    const int *layers;
    int n_layers;
    int hidden;
    int32_t **ids;       /* [n_texts] token ids */
    const size_t *start; /* [n_texts] first token in acts */
    const size_t *len;   /* [n_texts] */
    size_t n_texts;
    float *acts; /* [n_tokens][n_layers * hidden] */
    size_t next, done;
    int failed;
    alkfw_error err;
    pthread_mutex_t lock;
    fwu_progress *prog;
} act_job;

/* Runs one text through the model and writes its activations, layer states concatenated per
 * token, into the job's buffer. */
static alkfw_status act_one(act_job *j, size_t i, float *scratch, alkfw_error *err)
{
    size_t T = j->len[i], H = (size_t)j->hidden, L = (size_t)j->n_layers;
    alkfw_status st = alkfw_model_hidden(j->model, j->ids[i], T, j->layers, L, scratch, err);
    if (st != ALKFW_OK)
        return st;
    float *dst = j->acts + j->start[i] * L * H;
    for (size_t t = 0; t < T; t++)
        for (size_t l = 0; l < L; l++)
            memcpy(dst + (t * L + l) * H, scratch + (l * T + t) * H, H * sizeof *dst);
    return ALKFW_OK;
}

static void *act_worker(void *arg)
{
    act_job *j = arg;
    size_t max_len = 0;
    for (size_t i = 0; i < j->n_texts; i++)
        if (j->len[i] > max_len)
            max_len = j->len[i];
    float *scratch = malloc(max_len * (size_t)j->n_layers * (size_t)j->hidden * sizeof *scratch);
    while (1) {
        pthread_mutex_lock(&j->lock);
        size_t i = j->next++;
        int stop = j->failed;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n_texts || stop)
            break;
        alkfw_error err = {0};
        alkfw_status st = scratch ? act_one(j, i, scratch, &err)
                                  : error_set(&err, ALKFW_ERR_NOMEM, "out of memory");
        pthread_mutex_lock(&j->lock);
        if (st != ALKFW_OK && !j->failed) {
            j->failed = 1;
            j->err = err;
        }
        j->done++;
        if (j->prog)
            fwu_progress_update(j->prog, j->done);
        pthread_mutex_unlock(&j->lock);
    }
    free(scratch);
    return NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* The training-data summary stored in the codebook                                          */
/* ---------------------------------------------------------------------------------------- */

/* Adds 1 to obj[key] (a number), creating it at 1. */
static void json_count(cJSON *obj, const char *key)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (c == NULL)
        cJSON_AddNumberToObject(obj, key, 1);
    else
        cJSON_SetNumberValue(c, c->valuedouble + 1);
}

/* The base name of a path (no directories, so the summary does not depend on where the build
 * ran). */
static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* The training-data summary stored in the codebook: the fit's own summary (labels, layers,
 * k, seed) extended with what only the command knows (files, sources, token cut). NULL when
 * out of memory. */
static char *training_summary(const char *fit_json, const fwu_dataset *ds, const int *label,
                              const size_t *len, const char *data, const char *val_data,
                              double val_fraction, long max_tokens, size_t n_tokens, size_t skipped)
{
    cJSON *o = fit_json ? cJSON_Parse(fit_json) : NULL;
    if (o == NULL || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        o = cJSON_CreateObject();
    }
    cJSON *files = cJSON_AddArrayToObject(o, "files");
    cJSON_AddItemToArray(files, cJSON_CreateString(base_name(data)));
    if (val_data)
        cJSON_AddItemToArray(files, cJSON_CreateString(base_name(val_data)));
    if (val_data)
        cJSON_AddStringToObject(o, "validation_split", "second file");
    else
        cJSON_AddNumberToObject(o, "val_fraction", val_fraction);
    cJSON_AddNumberToObject(o, "max_tokens", (double)max_tokens);
    cJSON_AddNumberToObject(o, "tokens", (double)n_tokens);
    cJSON_AddNumberToObject(o, "skipped_rows", (double)skipped);
    cJSON *src = cJSON_AddObjectToObject(o, "sources");
    size_t truncated = 0;
    for (size_t i = 0; i < ds->n; i++) {
        if (label[i] < -1)
            continue;
        json_count(src, ds->rows[i].source[0] ? ds->rows[i].source : "(none)");
        if (len[i] >= (size_t)max_tokens)
            truncated++;
    }
    cJSON_AddNumberToObject(o, "texts_at_max_tokens", (double)truncated);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* ---------------------------------------------------------------------------------------- */
/* The command                                                                               */
/* ---------------------------------------------------------------------------------------- */

typedef struct build_args {
    const char *model, *data, *val_data, *out;
    int layers[MAX_LAYERS], n_layers;
    char *dir_names[MAX_DIRS];
    int n_dirs;
    long k, knots, window, max_tokens, threads, max_fit_tokens;
    double val_fraction, C, fpr_dangerous, fpr_suspicious;
    uint64_t seed;
    int quiet;
} build_args;

/* Splits a comma list of names into a->dir_names. Returns 0, or -1 when malformed. */
static int parse_directions(const char *s, build_args *a)
{
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == 0 || a->n_dirs >= MAX_DIRS || (len == 6 && strncmp(p, "benign", 6) == 0) ||
            (len == 7 && strncmp(p, "anomaly", 7) == 0))
            return -1;
        a->dir_names[a->n_dirs] = strndup(p, len);
        if (a->dir_names[a->n_dirs] == NULL)
            return -1;
        a->n_dirs++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return a->n_dirs > 0 ? 0 : -1;
}

/* Parses the command line into a. Returns -1 after printing what is wrong. */
static int parse_build_args(int argc, char **argv, build_args *a)
{
    memset(a, 0, sizeof *a);
    a->layers[0] = 1, a->layers[1] = 2, a->layers[2] = 4, a->layers[3] = 8;
    a->n_layers = 4;
    a->k = CODEBOOK_DEFAULT_K;
    a->knots = CODEBOOK_DEFAULT_KNOTS;
    a->window = CODEBOOK_DEFAULT_WINDOW;
    a->max_tokens = 256;
    a->val_fraction = 0.2;
    a->C = 1.0;
    a->fpr_dangerous = 0.01;
    a->fpr_suspicious = 0.05;
    a->seed = 1;
    a->threads = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        int ok = v != NULL;
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            build_usage(stdout);
            return 1;
        } else if (strcmp(o, "--quiet") == 0) {
            a->quiet = 1;
            continue;
        } else if (strcmp(o, "--model") == 0 && ok) {
            a->model = v;
        } else if (strcmp(o, "--data") == 0 && ok) {
            a->data = v;
        } else if (strcmp(o, "--val-data") == 0 && ok) {
            a->val_data = v;
        } else if (strcmp(o, "--out") == 0 && ok) {
            a->out = v;
        } else if (strcmp(o, "--layers") == 0 && ok) {
            a->n_layers = fwu_parse_int_list(v, a->layers, MAX_LAYERS, 0, 100000);
            ok = a->n_layers > 0;
        } else if (strcmp(o, "--directions") == 0 && ok) {
            ok = parse_directions(v, a) == 0;
        } else if (strcmp(o, "--k") == 0 && ok) {
            ok = fwu_parse_long(v, 1, CODEBOOK_MAX_K, &a->k) == 0;
        } else if (strcmp(o, "--knots") == 0 && ok) {
            ok = fwu_parse_long(v, 2, CODEBOOK_MAX_KNOTS, &a->knots) == 0;
        } else if (strcmp(o, "--window") == 0 && ok) {
            ok = fwu_parse_long(v, 0, 4096, &a->window) == 0;
        } else if (strcmp(o, "--max-tokens") == 0 && ok) {
            ok = fwu_parse_long(v, 1, 1L << 20, &a->max_tokens) == 0;
        } else if (strcmp(o, "--max-fit-tokens") == 0 && ok) {
            ok = fwu_parse_long(v, 0, 1L << 40, &a->max_fit_tokens) == 0;
        } else if (strcmp(o, "--threads") == 0 && ok) {
            ok = fwu_parse_long(v, 1, 64, &a->threads) == 0;
        } else if (strcmp(o, "--val-fraction") == 0 && ok) {
            ok = fwu_parse_double(v, 0.01, 0.9, &a->val_fraction) == 0;
        } else if (strcmp(o, "--C") == 0 && ok) {
            ok = fwu_parse_double(v, 1e-6, 1e6, &a->C) == 0;
        } else if (strcmp(o, "--fpr-dangerous") == 0 && ok) {
            ok = fwu_parse_double(v, 0, 1, &a->fpr_dangerous) == 0;
        } else if (strcmp(o, "--fpr-suspicious") == 0 && ok) {
            ok = fwu_parse_double(v, 0, 1, &a->fpr_suspicious) == 0;
        } else if (strcmp(o, "--seed") == 0 && ok) {
            ok = fwu_parse_long(v, 0, LONG_MAX, &n) == 0;
            a->seed = (uint64_t)n;
        } else {
            ok = 0;
        }
        if (!ok) {
            fprintf(stderr, "alkfw build: bad option '%s'%s\n\n", o,
                    v ? " or its value" : " (or its value is missing)");
            build_usage(stderr);
            return -1;
        }
        i++;
    }
    if (a->model == NULL || a->data == NULL || a->out == NULL) {
        fprintf(stderr, "alkfw build: --model, --data and --out are required\n\n");
        build_usage(stderr);
        return -1;
    }
    for (int l = 1; l < a->n_layers; l++)
        if (a->layers[l] <= a->layers[l - 1]) {
            fprintf(stderr, "alkfw build: --layers must be strictly increasing\n");
            return -1;
        }
    return 0;
}

/* Default directions: every non-benign label of the data, sorted by name. */
static int directions_from_data(const fwu_dataset *ds, build_args *a)
{
    for (size_t i = 0; i < ds->n; i++) {
        const char *lab = ds->rows[i].label;
        if (strcmp(lab, "benign") == 0)
            continue;
        int found = 0;
        for (int d = 0; d < a->n_dirs && !found; d++)
            found = strcmp(a->dir_names[d], lab) == 0;
        if (found)
            continue;
        if (a->n_dirs >= MAX_DIRS || strcmp(lab, "anomaly") == 0)
            return -1;
        int pos = a->n_dirs;
        while (pos > 0 && strcmp(a->dir_names[pos - 1], lab) > 0) {
            a->dir_names[pos] = a->dir_names[pos - 1];
            pos--;
        }
        a->dir_names[pos] = strdup(lab);
        if (a->dir_names[pos] == NULL)
            return -1;
        a->n_dirs++;
    }
    return 0;
}

/* Appends the rows of more to ds, marking them in a parallel flag array. */
static int dataset_append(fwu_dataset *ds, fwu_dataset *more)
{
    fwu_row *g = realloc(ds->rows, (ds->n + more->n + 1) * sizeof *g);
    if (g == NULL)
        return -1;
    ds->rows = g;
    if (more->n > 0) /* an empty file has no rows array */
        memcpy(ds->rows + ds->n, more->rows, more->n * sizeof *g);
    ds->n += more->n;
    free(more->rows);
    more->rows = NULL;
    more->n = 0;
    return 0;
}

/* Everything a build holds, so one function can release it. */
typedef struct build_state {
    fwu_dataset ds;
    int *label, *is_val;
    int32_t **ids;
    size_t *start, *len;
    float *acts;
    const char **sources;
    alkfw_model *model;
    alkfw_tokenizer *tok;
    codebook *cb;
    char *summary;
    int *row_label;  /* [n] labels per row before the fit input compacts them */
    size_t *row_len; /* [n] tokens per row likewise */
} build_state;

static void build_state_free(build_state *b)
{
    if (b->ids)
        for (size_t i = 0; i < b->ds.n; i++)
            free(b->ids[i]);
    free(b->ids);
    fwu_dataset_free(&b->ds);
    free(b->label);
    free(b->is_val);
    free(b->start);
    free(b->len);
    free(b->acts);
    free(b->sources);
    alkfw_model_free(b->model);
    alkfw_tokenizer_free(b->tok);
    codebook_free(b->cb);
    free(b->summary);
    free(b->row_label);
    free(b->row_len);
}

/* Encodes enough of text for its first max_tokens tokens to be those of the whole text, as
 * the screen does (firewall_encode_prefix): a prefix of 16 bytes per token, grown while it
 * gives fewer than max_tokens + 64 tokens. A huge row then costs memory for its prefix only. */
static alkfw_status encode_prefix(const alkfw_tokenizer *tok, const char *text, size_t len,
                                  size_t max_tokens, alkfw_encoding *enc, alkfw_error *err)
{
    size_t want = max_tokens + 64, budget = want * 16;
    while (1) {
        size_t cut = len > budget ? budget : len;
        for (int back = 0; back < 3 && cut < len && cut > 0; back++, cut--)
            if (((unsigned char)text[cut] & 0xC0) != 0x80)
                break; /* no cut inside a UTF-8 sequence */
        alkfw_status st = alkfw_tokenizer_encode(tok, text, cut, NULL, enc, err);
        if (st != ALKFW_OK || cut == len || enc->n_tokens >= want)
            return st;
        alkfw_encoding_free(enc);
        budget = budget > len / 4 ? len : budget * 4;
    }
}

/* Tokenizes every kept row (BOS added, cut at max_tokens) and lays out the activation buffer.
 * Returns the total token count through *n_tokens. */
static alkfw_status tokenize_all(build_state *b, const build_args *a, size_t *n_tokens,
                                 alkfw_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < b->ds.n; i++) {
        b->start[i] = total;
        if (b->label[i] < -1)
            continue;
        alkfw_encoding enc;
        alkfw_status st = encode_prefix(b->tok, b->ds.rows[i].text, b->ds.rows[i].len,
                                        (size_t)a->max_tokens, &enc, err);
        if (st != ALKFW_OK)
            return error_prefix(err, "line %zu", b->ds.rows[i].line);
        size_t n = enc.n_tokens < (size_t)a->max_tokens ? enc.n_tokens : (size_t)a->max_tokens;
        if (n == 0) {
            alkfw_encoding_free(&enc);
            b->label[i] = -2; /* nothing to learn from an empty text without BOS */
            continue;
        }
        b->ids[i] = malloc(n * sizeof *b->ids[i]);
        if (b->ids[i] == NULL) {
            alkfw_encoding_free(&enc);
            return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
        }
        memcpy(b->ids[i], enc.ids, n * sizeof *b->ids[i]);
        alkfw_encoding_free(&enc);
        b->len[i] = n;
        total += n;
    }
    *n_tokens = total;
    return ALKFW_OK;
}

int cmd_build(int argc, char **argv)
{
    build_args a;
    int prc = parse_build_args(argc, argv, &a);
    if (prc != 0)
        return prc > 0 ? CLI_EXIT_OK : CLI_EXIT_USAGE;

    build_state b;
    memset(&b, 0, sizeof b);
    alkfw_error err = {0};
    char msg[1024];
    int rc = CLI_EXIT_ERROR;

    /* the labeled rows, and the validation rows when they come from their own file */
    fwu_dataset val;
    memset(&val, 0, sizeof val);
    size_t n_train_rows = 0;
    if (fwu_dataset_load(a.data, 1, &b.ds, msg, sizeof msg) != 0 ||
        (a.val_data && fwu_dataset_load(a.val_data, 1, &val, msg, sizeof msg) != 0)) {
        fprintf(stderr, "alkfw build: %s\n", msg);
        goto done;
    }
    n_train_rows = b.ds.n;
    if (a.val_data && dataset_append(&b.ds, &val) != 0) {
        fprintf(stderr, "alkfw build: out of memory\n");
        goto done;
    }
    if (a.n_dirs == 0 && directions_from_data(&b.ds, &a) != 0) {
        fprintf(stderr, "alkfw build: too many labels, or a label called 'anomaly'\n");
        goto done;
    }
    if (a.n_dirs == 0) {
        fprintf(stderr, "alkfw build: %s has no attack rows (labels other than benign)\n", a.data);
        goto done;
    }

    size_t n = b.ds.n;
    b.label = calloc(n + 1, sizeof *b.label);
    b.is_val = calloc(n + 1, sizeof *b.is_val);
    b.ids = calloc(n + 1, sizeof *b.ids);
    b.start = calloc(n + 1, sizeof *b.start);
    b.len = calloc(n + 1, sizeof *b.len);
    b.sources = calloc(n + 1, sizeof *b.sources);
    if (!b.label || !b.is_val || !b.ids || !b.start || !b.len || !b.sources) {
        fprintf(stderr, "alkfw build: out of memory\n");
        goto done;
    }
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        const char *lab = b.ds.rows[i].label;
        b.label[i] = -2;
        if (strcmp(lab, "benign") == 0)
            b.label[i] = -1;
        for (int d = 0; d < a.n_dirs; d++)
            if (strcmp(lab, a.dir_names[d]) == 0)
                b.label[i] = d;
        skipped += b.label[i] == -2;
        b.sources[i] = b.ds.rows[i].source;
    }
    if (a.val_data) {
        for (size_t i = 0; i < n; i++)
            b.is_val[i] = i >= n_train_rows;
    } else {
        split_by_label(b.label, n, a.n_dirs, a.val_fraction, a.seed, b.is_val);
    }

    /* the model and its tokenizer */
    alkfw_model_options mo;
    alkfw_model_options_init(&mo);
    mo.n_threads = 1; /* parallel over texts instead */
    if (alkfw_model_open(a.model, &mo, &b.model, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }
    alkfw_model_info info;
    alkfw_model_get_info(b.model, &info);
    for (int l = 0; l < a.n_layers; l++)
        if (a.layers[l] > info.n_layers) {
            fprintf(stderr,
                    "alkfw build: layer %d does not exist: the model in %s has %d layers "
                    "(hidden-state indices 0..%d); choose --layers\n",
                    a.layers[l], a.model, info.n_layers, info.n_layers);
            goto done;
        }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/tokenizer.json", a.model);
    char fingerprint[CODEBOOK_FINGERPRINT_SIZE];
    if (alkfw_tokenizer_load(path, &b.tok, &err) != ALKFW_OK ||
        firewall_model_fingerprint(a.model, &info, fingerprint, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }

    /* tokens, then activations of every text */
    size_t n_tokens = 0;
    if (tokenize_all(&b, &a, &n_tokens, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }
    size_t D = (size_t)a.n_layers * (size_t)info.hidden_size;
    if (!a.quiet)
        fprintf(stderr,
                "alkfw build: %zu texts (%zu skipped), %zu tokens, %.1f MB of activations\n",
                n - skipped, skipped, n_tokens, (double)n_tokens * (double)D * 4 / 1e6);
    b.acts = malloc((n_tokens ? n_tokens : 1) * D * sizeof *b.acts);
    if (b.acts == NULL) {
        fprintf(stderr,
                "alkfw build: out of memory for %zu tokens x %zu activations; lower "
                "--max-tokens\n",
                n_tokens, D);
        goto done;
    }
    fwu_progress prog;
    fwu_progress_start(&prog, "activations", n, !a.quiet);
    act_job job = {b.model,
                   a.layers,
                   a.n_layers,
                   info.hidden_size,
                   b.ids,
                   b.start,
                   b.len,
                   n,
                   b.acts,
                   0,
                   0,
                   0,
                   {0},
                   PTHREAD_MUTEX_INITIALIZER,
                   a.quiet ? NULL : &prog};
    pthread_t tid[64];
    int started = 0;
    for (long t = 1; t < a.threads; t++)
        if (pthread_create(&tid[started], NULL, act_worker, &job) == 0)
            started++;
    act_worker(&job);
    for (int t = 0; t < started; t++)
        pthread_join(tid[t], NULL);
    if (!a.quiet)
        fwu_progress_end(&prog, job.done);
    if (job.failed) {
        rc = cli_fail("build", &job.err);
        goto done;
    }

    /* the row labels and lengths before the fit input compacts them, for the summary */
    b.row_label = malloc((n + 1) * sizeof *b.row_label);
    b.row_len = malloc((n + 1) * sizeof *b.row_len);
    if (b.row_label == NULL || b.row_len == NULL) {
        fprintf(stderr, "alkfw build: out of memory\n");
        goto done;
    }
    memcpy(b.row_label, b.label, n * sizeof *b.row_label);
    memcpy(b.row_len, b.len, n * sizeof *b.row_len);

    /* the fit input: the kept texts only */
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (b.label[i] < -1)
            continue;
        b.start[m] = b.start[i];
        b.len[m] = b.len[i];
        b.label[m] = b.label[i];
        b.is_val[m] = b.is_val[i];
        b.sources[m] = b.sources[i];
        m++;
    }
    codebook_fit_input in = {a.n_layers, info.hidden_size, n_tokens, b.acts,   m, b.start,
                             b.len,      b.label,          b.is_val, b.sources};
    int32_t layers32[MAX_LAYERS];
    for (int l = 0; l < a.n_layers; l++)
        layers32[l] = a.layers[l];
    char model_id[FIREWALL_ID_SIZE];
    firewall_model_id(a.model, model_id, sizeof model_id);
    codebook_fit_options fo;
    codebook_fit_options_init(&fo);
    fo.layers = layers32;
    fo.k = (int)a.k;
    fo.n_knots = (int)a.knots;
    fo.smoothing_window = (int)a.window;
    fo.directions = (const char *const *)a.dir_names;
    fo.n_dirs = a.n_dirs;
    fo.fpr_dangerous = a.fpr_dangerous;
    fo.fpr_suspicious = a.fpr_suspicious;
    fo.C = a.C;
    fo.seed = a.seed;
    fo.max_fit_tokens = (size_t)a.max_fit_tokens;
    fo.model_id = model_id;
    fo.model_revision = "";
    fo.model_fingerprint = fingerprint;
    fo.created_by = "alkfw build " ALKFW_VERSION;
    if (!a.quiet)
        fprintf(stderr, "alkfw build: fitting k=%ld over %d layers, %d directions\n", a.k,
                a.n_layers, a.n_dirs);
    if (codebook_fit(&in, &fo, &b.cb, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }

    b.summary = training_summary(b.cb->training_data, &b.ds, b.row_label, b.row_len, a.data,
                                 a.val_data, a.val_fraction, a.max_tokens, n_tokens, skipped);
    if (b.summary == NULL ||
        codebook_set_string(&b.cb->training_data, b.summary, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }
    if (codebook_save(b.cb, a.out, &err) != ALKFW_OK) {
        rc = cli_fail("build", &err);
        goto done;
    }
    if (!a.quiet)
        fprintf(stderr, "alkfw build: wrote %s\nvalidation: %s\n", a.out, b.cb->metrics);
    rc = CLI_EXIT_OK;

done:
    fwu_dataset_free(&val);
    build_state_free(&b);
    for (int d = 0; d < a.n_dirs; d++)
        free(a.dir_names[d]);
    return rc;
}
