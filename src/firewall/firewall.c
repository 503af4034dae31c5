/*
 * firewall.c - open a firewall (model + tokenizer + codebook that belong together) and screen
 * text with it: tokenize, forward to the deepest codebook layer, score, raise the alarm.
 */
#include "firewall/firewall.h"

#include "common/error.h"
#include "formats/safetensors.h"

#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------- */
/* Options and ids                                                                           */
/* ---------------------------------------------------------------------------------------- */

void alkfw_options_init(alkfw_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->n_threads = 0;
    opts->backend = ALKFW_BACKEND_AUTO;
    opts->threshold_suspicious = -1.0;
    opts->threshold_dangerous = -1.0;
    opts->smoothing = 1;
    opts->smoothing_window = 0;
    opts->last_token = 0;
    opts->plain_specials = 0;
    opts->max_tokens = 0;
    opts->max_spans = 5;
}

void firewall_model_id(const char *model_dir, char *out, size_t size)
{
    /* "." or "../x/" name the directory through its real path */
    char real[PATH_MAX];
    if (realpath(model_dir, real) != NULL)
        model_dir = real;
    size_t len = strlen(model_dir);
    while (len > 1 && model_dir[len - 1] == '/')
        len--;
    size_t start = len;
    while (start > 0 && model_dir[start - 1] != '/')
        start--;
    size_t n = len - start;
    if (n == 0 || (n == 1 && model_dir[start] == '/')) {
        snprintf(out, size, "%s", "model");
        return;
    }
    snprintf(out, size, "%.*s", (int)(n < 200 ? n : 200), model_dir + start);
}

alkfw_status firewall_codebook_id(const char *path, char *out, size_t size, alkfw_error *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot open", path);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    unsigned char buf[65536];
    size_t got;
    while (ok && (got = fread(buf, 1, sizeof buf, f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, got) == 1;
    ok = ok && !ferror(f);
    fclose(f);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len >= 6;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot read to hash it", path);

    const char *name = strrchr(path, '/');
    name = name ? name + 1 : path;
    snprintf(out, size, "%.200s@%02x%02x%02x%02x%02x%02x", name, md[0], md[1], md[2], md[3], md[4],
             md[5]);
    return ALKFW_OK;
}

alkfw_status firewall_model_fingerprint(const char *model_dir, const alkfw_model_info *info,
                                        char *out, alkfw_error *err)
{
    safetensors_checkpoint *ck = NULL;
    alkfw_status st = safetensors_checkpoint_open(model_dir, &ck, err);
    if (st != ALKFW_OK)
        return st;
    const safetensors_tensor *t = safetensors_checkpoint_find(ck, "model.embed_tokens.weight");
    if (t == NULL) {
        safetensors_checkpoint_close(ck);
        return error_set(err, ALKFW_ERR_FORMAT,
                         "%s: no tensor model.embed_tokens.weight to fingerprint the model",
                         model_dir);
    }
    st = codebook_fingerprint(info->hidden_size, info->n_layers, info->vocab_size, t->data,
                              t->nbytes, out, CODEBOOK_FINGERPRINT_SIZE, err);
    safetensors_checkpoint_close(ck);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Opening and freeing                                                                       */
/* ---------------------------------------------------------------------------------------- */

void alkfw_firewall_free(alkfw_firewall *fw)
{
    if (fw == NULL)
        return;
    alkfw_model_free(fw->model);
    alkfw_tokenizer_free(fw->tokenizer);
    codebook_free(fw->cb);
    free(fw->layers);
    free(fw);
}

/* Checks the caller's options for values no screen could honour. */
static alkfw_status options_check(const alkfw_options *o, alkfw_error *err)
{
    if (o->threshold_suspicious > 1.0 || o->threshold_dangerous > 1.0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "options: thresholds must be at most 1");
    if (o->threshold_suspicious >= 0 && o->threshold_dangerous >= 0 &&
        o->threshold_suspicious > o->threshold_dangerous)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "options: suspicious threshold %g is above dangerous threshold %g",
                         o->threshold_suspicious, o->threshold_dangerous);
    if (o->smoothing_window < 0 || o->smoothing_window > 1 << 20)
        return error_set(err, ALKFW_ERR_ARGUMENT, "options: smoothing window %d out of range",
                         o->smoothing_window);
    if (o->n_threads < 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "options: n_threads must not be negative");
    return ALKFW_OK;
}

/* Loads model, tokenizer and codebook into fw and checks they belong together. */
static alkfw_status firewall_load(alkfw_firewall *fw, const char *model_dir,
                                  const char *codebook_path, alkfw_error *err)
{
    alkfw_model_options mo;
    alkfw_model_options_init(&mo);
    mo.n_threads = fw->opts.n_threads;
    mo.backend = fw->opts.backend;
    alkfw_status st = alkfw_model_open(model_dir, &mo, &fw->model, err);
    if (st != ALKFW_OK)
        return st;
    alkfw_model_get_info(fw->model, &fw->info);

    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/tokenizer.json", model_dir) >= (int)sizeof path)
        return error_set(err, ALKFW_ERR_LIMIT, "%s: path too long", model_dir);
    st = alkfw_tokenizer_load(path, &fw->tokenizer, err);
    if (st != ALKFW_OK)
        return st;
    /* a token the model has no embedding for would fail every text that contains it */
    size_t tok_vocab = alkfw_tokenizer_vocab_size(fw->tokenizer);
    if (tok_vocab > (size_t)fw->info.vocab_size)
        return error_set(err, ALKFW_ERR_MISMATCH,
                         "%s: token ids reach %zu but the model's vocab_size is %d (config.json)",
                         path, tok_vocab - 1, fw->info.vocab_size);

    st = codebook_load(codebook_path, &fw->cb, err);
    if (st != ALKFW_OK)
        return st;
    st = firewall_model_fingerprint(model_dir, &fw->info, fw->fingerprint, err);
    if (st != ALKFW_OK)
        return st;
    st = codebook_check_model(fw->cb, fw->fingerprint, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "%s was not built for the model in %s", codebook_path, model_dir);
    if (fw->cb->hidden != fw->info.hidden_size)
        return error_set(err, ALKFW_ERR_MISMATCH,
                         "%s was not built for the model in %s: hidden size %d, model has %d",
                         codebook_path, model_dir, fw->cb->hidden, fw->info.hidden_size);

    fw->layers = malloc((size_t)fw->cb->n_layers * sizeof *fw->layers);
    if (fw->layers == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "firewall: out of memory");
    for (int l = 0; l < fw->cb->n_layers; l++) {
        if (fw->cb->layers[l] < 0 || fw->cb->layers[l] > fw->info.n_layers)
            return error_set(err, ALKFW_ERR_MISMATCH,
                             "%s: layer %d does not exist in the model in %s (%d layers)",
                             codebook_path, (int)fw->cb->layers[l], model_dir, fw->info.n_layers);
        fw->layers[l] = fw->cb->layers[l];
    }

    size_t max_pos = fw->info.max_positions > 0 ? (size_t)fw->info.max_positions : 2048;
    fw->max_tokens =
        fw->opts.max_tokens > 0 && fw->opts.max_tokens < max_pos ? fw->opts.max_tokens : max_pos;

    firewall_model_id(model_dir, fw->model_id, sizeof fw->model_id);
    return firewall_codebook_id(codebook_path, fw->codebook_id, sizeof fw->codebook_id, err);
}

alkfw_status alkfw_firewall_open(const char *model_dir, const char *codebook_path,
                                 const alkfw_options *opts, alkfw_firewall **out, alkfw_error *err)
{
    if (out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "firewall_open: out must not be NULL");
    *out = NULL;

    char default_dir[PATH_MAX];
    if (model_dir == NULL) {
        alkfw_status st = alkfw_default_model_dir(default_dir, sizeof default_dir, err);
        if (st != ALKFW_OK)
            return error_prefix(err, "the embedded default detector");
        model_dir = default_dir;
    }
    char default_codebook[PATH_MAX];
    if (codebook_path == NULL) {
        if (snprintf(default_codebook, sizeof default_codebook, "%s/codebook.safetensors",
                     model_dir) >= (int)sizeof default_codebook)
            return error_set(err, ALKFW_ERR_LIMIT, "%s: path too long", model_dir);
        codebook_path = default_codebook;
    }

    alkfw_firewall *fw = calloc(1, sizeof *fw);
    if (fw == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "firewall: out of memory");
    if (opts != NULL)
        fw->opts = *opts;
    else
        alkfw_options_init(&fw->opts);
    if (fw->opts.max_spans > FIREWALL_MAX_SPANS)
        fw->opts.max_spans = FIREWALL_MAX_SPANS;

    alkfw_status st = options_check(&fw->opts, err);
    if (st == ALKFW_OK)
        st = firewall_load(fw, model_dir, codebook_path, err);
    if (st != ALKFW_OK) {
        alkfw_firewall_free(fw);
        return st;
    }
    *out = fw;
    return ALKFW_OK;
}

const char *alkfw_firewall_model_id(const alkfw_firewall *fw)
{
    return fw ? fw->model_id : "";
}

const char *alkfw_firewall_codebook_id(const alkfw_firewall *fw)
{
    return fw ? fw->codebook_id : "";
}

/* ---------------------------------------------------------------------------------------- */
/* Screening                                                                                 */
/* ---------------------------------------------------------------------------------------- */

void firewall_thresholds(const alkfw_firewall *fw, double *suspicious, double *dangerous)
{
    *suspicious = fw->opts.threshold_suspicious >= 0 ? fw->opts.threshold_suspicious
                                                     : fw->cb->threshold_suspicious;
    *dangerous = fw->opts.threshold_dangerous >= 0 ? fw->opts.threshold_dangerous
                                                   : fw->cb->threshold_dangerous;
}

void firewall_score_options(const alkfw_firewall *fw, codebook_score_options *so)
{
    codebook_score_options_init(so);
    if (!fw->opts.smoothing)
        so->smoothing_window = 0;
    else if (fw->opts.smoothing_window > 0)
        so->smoothing_window = fw->opts.smoothing_window;
    so->last_token = fw->opts.last_token;
    so->threshold_suspicious = fw->opts.threshold_suspicious;
    so->threshold_dangerous = fw->opts.threshold_dangerous;
}

alkfw_status firewall_screen_window(const alkfw_firewall *fw, const int32_t *ids, size_t n_tokens,
                                    codebook_result *res, alkfw_error *err)
{
    memset(res, 0, sizeof *res);
    if (n_tokens == 0 || n_tokens > fw->max_tokens)
        return error_set(err, ALKFW_ERR_ARGUMENT, "screen: a window of %zu tokens (1..%zu)",
                         n_tokens, fw->max_tokens);

    size_t n_l = (size_t)fw->cb->n_layers, hidden = (size_t)fw->cb->hidden;
    float *states = malloc(n_l * n_tokens * hidden * sizeof *states);
    if (states == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "screen: out of memory for %zu tokens", n_tokens);

    /* forward only as deep as the deepest codebook layer */
    alkfw_status st = alkfw_model_hidden(fw->model, ids, n_tokens, fw->layers, n_l, states, err);

    /* standardize, project, copula features, smoothing, directions, aggregate */
    codebook_score_options so;
    firewall_score_options(fw, &so);
    if (st == ALKFW_OK)
        st = codebook_score(fw->cb, states, n_tokens, &so, res, err);
    free(states);
    return st;
}

alkfw_status firewall_alarm_fill(const alkfw_firewall *fw, const codebook_result *res,
                                 const alkfw_span *token_spans, alkfw_alarm *alarm,
                                 alkfw_error *err)
{
    alarm->score = res->score;
    alarm->threshold_suspicious = res->threshold_suspicious;
    alarm->threshold_dangerous = res->threshold_dangerous;
    alarm->level = firewall_level(res->score, res->threshold_suspicious, res->threshold_dangerous);

    alarm->directions = calloc((size_t)res->n_outputs, sizeof *alarm->directions);
    if (alarm->directions == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "alarm: out of memory");
    for (int d = 0; d < res->n_outputs; d++) {
        alkfw_direction_score *ds = &alarm->directions[d];
        ds->name = strdup(codebook_output_name(fw->cb, d));
        if (ds->name == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "alarm: out of memory");
        alarm->n_directions = (size_t)d + 1;
        ds->mean = res->mean[d];
        ds->max = res->max[d];
        ds->max_position = res->argmax[d];
        ds->weight = fw->cb->dir_alpha[d];
    }

    size_t first = fw->opts.last_token && res->n_tokens > 0 ? res->n_tokens - 1 : 0;
    return firewall_spans(fw->cb, res, token_spans, first, res->threshold_suspicious,
                          fw->opts.max_spans, &alarm->spans, &alarm->n_spans, err);
}

/* The bytes of a long input tokenized in the first attempt per token of the window: generous
 * for natural text (a few bytes per token), and grown when it does not suffice. */
#define FIREWALL_PREFIX_BYTES_PER_TOKEN 16

/* Tokens past the window that a prefix's encoding must reach before its first max_tokens
 * tokens are taken as those of the whole input: a cut changes only the tokens near it. */
#define FIREWALL_PREFIX_MARGIN 64

/* Moves a cut back to the start of a UTF-8 sequence, so cutting adds no replaced bytes. */
static size_t utf8_boundary(const char *text, size_t cut)
{
    for (int back = 0; back < 3 && cut > 0; back++) {
        unsigned char c = (unsigned char)text[cut];
        if ((c & 0xC0) != 0x80)
            break;
        cut--;
    }
    return cut;
}

alkfw_status firewall_encode_prefix(const alkfw_firewall *fw, const char *text, size_t len,
                                    alkfw_encoding *enc, size_t *cut, alkfw_error *err)
{
    alkfw_encode_options eo;
    alkfw_encode_options_init(&eo);
    eo.plain_specials = fw->opts.plain_specials;
    memset(enc, 0, sizeof *enc);

    size_t want = fw->max_tokens + FIREWALL_PREFIX_MARGIN;
    size_t budget = want * FIREWALL_PREFIX_BYTES_PER_TOKEN;
    while (1) {
        *cut = len > budget ? utf8_boundary(text, budget) : len;
        alkfw_status st = alkfw_tokenizer_encode(fw->tokenizer, text, *cut, &eo, enc, err);
        if (st != ALKFW_OK)
            return st;
        if (*cut == len || enc->n_tokens >= want)
            return ALKFW_OK;
        /* the prefix held too few tokens to be sure of the window: take more */
        alkfw_encoding_free(enc);
        memset(enc, 0, sizeof *enc);
        budget = budget > len / 4 ? len : budget * 4;
    }
}

/* Seconds on the monotonic clock. */
static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

alkfw_status alkfw_screen(const alkfw_firewall *fw, const char *text, size_t len,
                          alkfw_alarm *alarm, alkfw_error *err)
{
    if (alarm == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "screen: alarm must not be NULL");
    memset(alarm, 0, sizeof *alarm);
    if (fw == NULL || (text == NULL && len > 0))
        return error_set(err, ALKFW_ERR_ARGUMENT, "screen: firewall and text must not be NULL");
    double t0 = now_seconds();

    /* tokenize, keeping each token's byte span */
    alkfw_encoding enc;
    size_t cut;
    alkfw_status st = firewall_encode_prefix(fw, text ? text : "", len, &enc, &cut, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "screen: tokenize");

    alarm->model = strdup(fw->model_id);
    alarm->codebook = strdup(fw->codebook_id);
    if (alarm->model == NULL || alarm->codebook == NULL) {
        alkfw_encoding_free(&enc);
        alkfw_alarm_free(alarm);
        return error_set(err, ALKFW_ERR_NOMEM, "screen: out of memory");
    }
    alarm->n_special_tokens = enc.n_special_in_text;
    alarm->n_replaced = enc.n_replaced;

    /* LIMIT: one window only; text beyond max_tokens is not screened (the alarm says
     * truncated). The document screener covers long inputs window by window. */
    size_t n = enc.n_tokens;
    if (n > fw->max_tokens || cut < len) {
        n = n < fw->max_tokens ? n : fw->max_tokens;
        alarm->truncated = 1;
    }
    alarm->n_tokens = n;

    if (n == 0) {
        /* nothing to screen (a tokenizer without BOS on empty text): a clear alarm */
        st = ALKFW_OK;
        firewall_thresholds(fw, &alarm->threshold_suspicious, &alarm->threshold_dangerous);
    } else {
        /* LIMIT: spans come from P_d(t) smoothed over the scoring window, so with a long
         * window (the bundled codebook's is 256) a run can sit early in the text, where the
         * trailing mean covers few positions, rather than on the words that raised it. The
         * document screener picks spans the same way; both must change together. */
        codebook_result res;
        st = firewall_screen_window(fw, enc.ids, n, &res, err);
        if (st == ALKFW_OK)
            st = firewall_alarm_fill(fw, &res, enc.spans, alarm, err);
        codebook_result_free(&res);
    }
    alkfw_encoding_free(&enc);
    if (st != ALKFW_OK) {
        alkfw_alarm_free(alarm);
        return st;
    }
    alarm->elapsed_ms = 1e3 * (now_seconds() - t0);
    return ALKFW_OK;
}
