/*
 * stream.c - screening a text as it arrives (DESIGN §3): chunks split anywhere go through the
 * incremental tokenizer; every window that can still change keeps a model session whose KV
 * cache holds its forwarded tokens, so a chunk costs the forward of its new tokens (plus the
 * few tail tokens the tokenizer re-decided); after each chunk the alarm of the text so far is
 * the max-pooled alarm of the windows, as alkfw_screen_document would give it.
 *
 * Windows are those of the document screener (document.h). A window is retired, its summary
 * folded into the running alarm and its session released, once it is complete and all of its
 * tokens are final; so memory holds the windows that overlap the tail, not the stream.
 */
#include "firewall/document.h"

#include "common/error.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A window that may still change: its session and the features of what it forwarded. */
typedef struct stream_window {
    size_t k;               /* window index */
    model_session *session; /* KV cache of seq_ids[0..n_fwd) */
    int32_t *seq_ids;       /* [W] the forwarded sequence */
    alkfw_span *seq_spans;  /* [W] its spans (refreshed on every update) */
    size_t n_fwd;
    double *features; /* [W][n_features] unsmoothed features of the forwarded positions */
    double *p;        /* [n_outputs][W] per-token P_d(t) of positions 0..n_scored-1 */
    size_t n_scored;
} stream_window;

struct alkfw_stream {
    const alkfw_firewall *fw;
    doc_geometry g;
    doc_tok dt;
    int deepest;
    size_t n_features;

    int32_t *ids; /* content tokens from index `first` on: n_final final ones, then the tail */
    alkfw_span *spans;
    size_t n, n_final, cap, first;

    stream_window *live; /* windows not retired, in order: k = n_retired, n_retired + 1, ... */
    size_t n_live, live_cap;
    size_t n_retired;
    doc_pool pool; /* the retired windows */

    float *states; /* scratch [n_l][W][hidden] */
    int32_t *seq_ids;
    alkfw_span *seq_spans;
    model_session **spare; /* released sessions kept for the next windows */
    size_t n_spare, spare_cap;
    int failed, finished;
};

/* ---------------------------------------------------------------------------------------- */
/* Windows                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Releases a window's arrays and keeps its session for reuse (or frees it). */
static void window_release(alkfw_stream *s, stream_window *w)
{
    if (w->session != NULL) {
        model_session_truncate(w->session, 0);
        if (s->n_spare < s->spare_cap)
            s->spare[s->n_spare++] = w->session;
        else
            model_session_free(w->session);
    }
    free(w->seq_ids);
    free(w->seq_spans);
    free(w->features);
    free(w->p);
    memset(w, 0, sizeof *w);
}

/* Appends window k (empty, with a session) to the live list. */
static alkfw_status window_open(alkfw_stream *s, size_t k, alkfw_error *err)
{
    if (s->n_live == s->live_cap) {
        size_t c = s->live_cap ? 2 * s->live_cap : 4;
        stream_window *g = realloc(s->live, c * sizeof *g);
        model_session **sp = g ? realloc(s->spare, c * sizeof *sp) : NULL;
        if (g != NULL)
            s->live = g;
        if (sp == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "stream: out of memory");
        s->spare = sp;
        s->live_cap = s->spare_cap = c;
    }
    stream_window *w = &s->live[s->n_live];
    memset(w, 0, sizeof *w);
    w->k = k;
    size_t W = s->g.window;
    w->seq_ids = malloc(W * sizeof *w->seq_ids);
    w->seq_spans = malloc(W * sizeof *w->seq_spans);
    w->features = malloc(W * s->n_features * sizeof *w->features);
    w->p = malloc((size_t)(s->fw->cb->n_dirs + 1) * W * sizeof *w->p);
    alkfw_status st = ALKFW_OK;
    if (w->seq_ids == NULL || w->seq_spans == NULL || w->features == NULL || w->p == NULL)
        st = error_set(err, ALKFW_ERR_NOMEM, "stream: out of memory");
    else if (s->n_spare > 0)
        w->session = s->spare[--s->n_spare];
    else
        st = model_session_new(s->fw->model, W, s->deepest, &w->session, err);
    if (st != ALKFW_OK) {
        window_release(s, w);
        return st;
    }
    s->n_live++;
    return ALKFW_OK;
}

/* Brings window w up to date with the content tokens now known: keeps the cached positions
 * that did not change, forwards the rest and computes their features. */
static alkfw_status window_update(alkfw_stream *s, stream_window *w, alkfw_error *err)
{
    const alkfw_firewall *fw = s->fw;
    size_t start = w->k * s->g.stride, total = s->first + s->n;
    size_t nc = total - start < s->g.content ? total - start : s->g.content;
    const int32_t *ids = nc > 0 ? s->ids + (start - s->first) : NULL;
    const alkfw_span *spans = nc > 0 ? s->spans + (start - s->first) : NULL;
    size_t T = doc_geometry_sequence(&s->g, ids, spans, nc, s->seq_ids, s->seq_spans);

    size_t p0 = 0;
    while (p0 < w->n_fwd && p0 < T && w->seq_ids[p0] == s->seq_ids[p0])
        p0++;
    memcpy(w->seq_ids, s->seq_ids, T * sizeof *w->seq_ids);
    memcpy(w->seq_spans, s->seq_spans, T * sizeof *w->seq_spans);
    if (p0 == T && T == w->n_fwd)
        return ALKFW_OK;

    /* forget what changed, forward the new positions through the cache */
    model_session_truncate(w->session, p0);
    w->n_fwd = p0;
    if (w->n_scored > p0)
        w->n_scored = p0;
    if (T > p0) {
        size_t n_new = T - p0, n_l = (size_t)fw->cb->n_layers;
        alkfw_status st = model_session_forward(w->session, s->seq_ids + p0, n_new, fw->layers, n_l,
                                                s->states, err);
        if (st != ALKFW_OK)
            return error_prefix(err, "stream: window %zu", w->k);
        codebook_features(fw->cb, s->states, n_new, w->features + p0 * s->n_features);
    }
    w->n_fwd = T;
    return ALKFW_OK;
}

/* A sigmoid that neither overflows nor loses the small side (as the codebook's). */
static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

/* Computes P_d(t) for the positions of w not scored yet: the trailing mean of the features
 * over the smoothing window (summed oldest first), then each direction's logistic model and
 * the smoothed anomaly value; exactly the arithmetic of codebook_aggregate, so a position
 * scored once keeps its value until the tokens before it change. Errors: ALKFW_ERR_ARGUMENT
 * for a non-finite feature, as codebook_aggregate. */
static alkfw_status window_score_new(const alkfw_stream *s, stream_window *w, alkfw_error *err)
{
    const codebook *cb = s->fw->cb;
    codebook_score_options so;
    firewall_score_options(s->fw, &so);
    size_t nf = s->n_features, W = s->g.window, k = (size_t)cb->k;
    size_t win = (size_t)(so.smoothing_window >= 0 ? so.smoothing_window : cb->smoothing_window);
    if (win < 1)
        win = 1;
    for (size_t t = w->n_scored; t < w->n_fwd; t++) {
        for (size_t i = 0; i < nf; i++)
            if (!isfinite(w->features[t * nf + i]))
                return error_set(err, ALKFW_ERR_ARGUMENT,
                                 "codebook: token %zu has a non-finite feature (non-finite "
                                 "activations?)",
                                 t);
        double phi[CODEBOOK_MAX_K + 1];
        size_t first = t + 1 >= win ? t + 1 - win : 0, count = t - first + 1;
        for (size_t i = 0; i < nf; i++)
            phi[i] = 0.0;
        for (size_t u = first; u <= t; u++)
            for (size_t i = 0; i < nf; i++)
                phi[i] += w->features[u * nf + i];
        for (size_t i = 0; i < nf; i++)
            phi[i] /= (double)count;
        for (int d = 0; d < cb->n_dirs; d++) {
            const float *wd = cb->dir_weight + (size_t)d * k;
            double logit = cb->dir_bias[d];
            for (size_t i = 0; i < k; i++)
                logit += (double)wd[i] * phi[i];
            w->p[(size_t)d * W + t] = sigmoid(logit);
        }
        w->p[(size_t)cb->n_dirs * W + t] = phi[k];
    }
    w->n_scored = w->n_fwd;
    return ALKFW_OK;
}

/* Scores window w as it stands (only its new positions cost anything) and summarizes it for
 * the pool: the codebook_result codebook_aggregate would give for its features. */
static alkfw_status window_result(const alkfw_stream *s, stream_window *w, doc_window_result *out,
                                  alkfw_error *err)
{
    memset(out, 0, sizeof *out);
    const codebook *cb = s->fw->cb;
    alkfw_status st = window_score_new(s, w, err);
    if (st != ALKFW_OK)
        return st;

    int n_out = cb->n_dirs + 1;
    size_t T = w->n_fwd, W = s->g.window;
    codebook_result res;
    memset(&res, 0, sizeof res);
    res.n_tokens = T;
    res.n_outputs = n_out;
    res.mean = calloc((size_t)n_out, sizeof *res.mean);
    res.max = calloc((size_t)n_out, sizeof *res.max);
    res.argmax = calloc((size_t)n_out, sizeof *res.argmax);
    res.p = malloc((size_t)n_out * T * sizeof *res.p);
    if (res.mean == NULL || res.max == NULL || res.argmax == NULL || res.p == NULL) {
        codebook_result_free(&res);
        return error_set(err, ALKFW_ERR_NOMEM, "stream: out of memory scoring a window");
    }

    /* the window's series, then mean, max, argmax, score and thresholds as a screen gives them */
    for (int d = 0; d < n_out; d++)
        memcpy(res.p + (size_t)d * T, w->p + (size_t)d * W, T * sizeof *res.p);
    codebook_score_options so;
    firewall_score_options(s->fw, &so);
    codebook_result_summarize(cb, &so, &res);

    size_t start = w->k * s->g.stride;
    size_t nc = T - s->g.n_prefix - s->g.n_suffix;
    st = doc_window_summarize(s->fw, &s->g, &res, w->seq_spans, start, nc, out, err);
    codebook_result_free(&res);
    return st;
}

/* Folds live window 0 into the pool and releases it. */
static alkfw_status window_retire(alkfw_stream *s, alkfw_error *err)
{
    doc_window_result r;
    alkfw_status st = window_result(s, &s->live[0], &r, err);
    size_t keep = 4 * (s->fw->opts.max_spans > 4 ? s->fw->opts.max_spans : 4);
    if (st == ALKFW_OK)
        st = doc_pool_add(&s->pool, &r, keep, err);
    free(r.spans);
    if (st != ALKFW_OK)
        return st;
    window_release(s, &s->live[0]);
    memmove(s->live, s->live + 1, (s->n_live - 1) * sizeof *s->live);
    s->n_live--;
    s->n_retired++;
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Updating after a chunk                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* Replaces the tail of the token list with the tokenizer's newly final tokens and its tail. */
static alkfw_status take_tokens(alkfw_stream *s, alkfw_error *err)
{
    doc_tok *dt = &s->dt;
    size_t need = s->n_final + dt->n_out + dt->n_tail;
    if (need > s->cap) {
        size_t c = s->cap ? s->cap : 256;
        while (c < need)
            c *= 2;
        int32_t *i = realloc(s->ids, c * sizeof *i);
        if (i != NULL)
            s->ids = i;
        alkfw_span *sp = i ? realloc(s->spans, c * sizeof *sp) : NULL;
        if (sp == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "stream: out of memory for tokens");
        s->spans = sp;
        s->cap = c;
    }
    if (dt->n_out > 0) {
        memcpy(s->ids + s->n_final, dt->out_ids, dt->n_out * sizeof *s->ids);
        memcpy(s->spans + s->n_final, dt->out_spans, dt->n_out * sizeof *s->spans);
    }
    s->n_final += dt->n_out;
    if (dt->n_tail > 0) {
        memcpy(s->ids + s->n_final, dt->tail_ids, dt->n_tail * sizeof *s->ids);
        memcpy(s->spans + s->n_final, dt->tail_spans, dt->n_tail * sizeof *s->spans);
    }
    s->n = s->n_final + dt->n_tail;
    dt->n_out = 0;
    return ALKFW_OK;
}

/* The number of windows the text so far has (0 for a text without any token). */
static size_t window_count(const alkfw_stream *s)
{
    size_t total = s->first + s->n;
    if (total == 0 && s->g.n_prefix + s->g.n_suffix == 0)
        return 0;
    return doc_geometry_windows(&s->g, total);
}

/* Brings every window up to date after the tokens changed, opens new windows, drops windows
 * the text no longer reaches, and retires those that can no longer change. */
static alkfw_status update_windows(alkfw_stream *s, alkfw_error *err)
{
    alkfw_status st = take_tokens(s, err);
    if (st != ALKFW_OK)
        return st;
    size_t K = window_count(s);

    while (s->n_live > 0 && s->live[s->n_live - 1].k >= K)
        window_release(s, &s->live[--s->n_live]);
    for (size_t i = 0; i < s->n_live; i++)
        if ((st = window_update(s, &s->live[i], err)) != ALKFW_OK)
            return st;

    /* new windows open one at a time and retire as soon as they can, so a chunk of many
     * tokens holds the sessions of a few windows, not of every window it reaches */
    size_t final_total = s->first + s->n_final;
    for (size_t k = s->n_retired + s->n_live;; k++) {
        /* a complete window whose tokens are all final no longer changes */
        while (s->n_live > 0) {
            size_t kl = s->live[0].k, end = kl * s->g.stride + s->g.content;
            int complete = kl + 1 < K || s->finished;
            if (!complete || (end > final_total && !s->finished))
                break;
            if ((st = window_retire(s, err)) != ALKFW_OK)
                return st;
        }
        if (k >= K)
            break;
        if ((st = window_open(s, k, err)) != ALKFW_OK ||
            (st = window_update(s, &s->live[s->n_live - 1], err)) != ALKFW_OK)
            return st;
    }

    /* tokens before the first window still alive are no longer needed */
    size_t keep_from = s->n_retired * s->g.stride;
    if (keep_from > s->first + s->n_final)
        keep_from = s->first + s->n_final;
    if (keep_from > s->first) {
        size_t drop = keep_from - s->first;
        memmove(s->ids, s->ids + drop, (s->n - drop) * sizeof *s->ids);
        memmove(s->spans, s->spans + drop, (s->n - drop) * sizeof *s->spans);
        s->n -= drop;
        s->n_final -= drop;
        s->first = keep_from;
    }
    return ALKFW_OK;
}

/* The alarm of the text so far: the retired windows' pool plus every live window. */
static alkfw_status stream_alarm(alkfw_stream *s, double t0, alkfw_document_alarm *out,
                                 alkfw_error *err)
{
    doc_pool pool;
    alkfw_status st = doc_pool_copy(&pool, &s->pool, err);
    if (st != ALKFW_OK)
        return st;
    size_t keep = 4 * (s->fw->opts.max_spans > 4 ? s->fw->opts.max_spans : 4);
    for (size_t i = 0; st == ALKFW_OK && i < s->n_live; i++) {
        doc_window_result r;
        st = window_result(s, &s->live[i], &r, err);
        if (st == ALKFW_OK)
            st = doc_pool_add(&pool, &r, keep, err);
        free(r.spans);
    }
    if (st == ALKFW_OK)
        st = doc_pool_alarm(s->fw, &pool, out, err);
    doc_pool_free(&pool);
    if (st != ALKFW_OK)
        return st;
    size_t total = s->first + s->n;
    out->alarm.n_tokens = total + (window_count(s) > 0 ? s->g.n_prefix + s->g.n_suffix : 0);
    out->alarm.n_special_tokens = s->dt.n_special_final + doc_tok_tail_specials(&s->dt);
    out->alarm.n_replaced = s->dt.n_replaced_final + doc_tok_tail_replaced(&s->dt);
    out->alarm.elapsed_ms = 1e3 * (doc_now() - t0);
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The public calls                                                                          */
/* ---------------------------------------------------------------------------------------- */

alkfw_status alkfw_stream_open(const alkfw_firewall *fw, const alkfw_document_options *opts,
                               alkfw_stream **out, alkfw_error *err)
{
    if (out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream_open: out must not be NULL");
    *out = NULL;
    if (fw == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream_open: firewall must not be NULL");
    alkfw_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "stream_open: out of memory");
    s->fw = fw;
    alkfw_status st = doc_geometry_init(fw, opts, &s->g, err);
    if (st != ALKFW_OK) {
        free(s);
        return st;
    }
    doc_tok_init(&s->dt, fw->tokenizer, fw->opts.plain_specials);
    s->n_features = CODEBOOK_N_FEATURES(fw->cb);
    for (int l = 0; l < fw->cb->n_layers; l++)
        if (fw->layers[l] > s->deepest)
            s->deepest = fw->layers[l];

    size_t W = s->g.window, n_l = (size_t)fw->cb->n_layers, hidden = (size_t)fw->cb->hidden;
    s->states = malloc(n_l * W * hidden * sizeof *s->states);
    s->seq_ids = malloc(W * sizeof *s->seq_ids);
    s->seq_spans = malloc(W * sizeof *s->seq_spans);
    if (s->states == NULL || s->seq_ids == NULL || s->seq_spans == NULL) {
        alkfw_stream_free(s);
        return error_set(err, ALKFW_ERR_NOMEM, "stream_open: out of memory for a window of %zu", W);
    }
    *out = s;
    return ALKFW_OK;
}

/* Pushes bytes (final: the end) and fills alarm when asked. */
static alkfw_status stream_step(alkfw_stream *s, const char *chunk, size_t len, int final,
                                alkfw_document_alarm *alarm, alkfw_error *err)
{
    if (alarm != NULL)
        memset(alarm, 0, sizeof *alarm);
    if (s == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream: NULL stream");
    if (s->failed)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream: an earlier chunk failed");
    if (s->finished)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream: text pushed after the end");
    if (chunk == NULL && len > 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "stream: NULL chunk");
    double t0 = doc_now();

    alkfw_status st = doc_tok_push(&s->dt, chunk, len, final, err);
    s->finished = final;
    if (st == ALKFW_OK)
        st = update_windows(s, err);
    if (st == ALKFW_OK && alarm != NULL)
        st = stream_alarm(s, t0, alarm, err);
    if (st != ALKFW_OK) {
        s->failed = 1;
        if (alarm != NULL)
            alkfw_document_alarm_free(alarm);
    }
    return st;
}

alkfw_status alkfw_stream_push(alkfw_stream *stream, const char *chunk, size_t len,
                               alkfw_document_alarm *alarm, alkfw_error *err)
{
    return stream_step(stream, chunk, len, 0, alarm, err);
}

alkfw_status alkfw_stream_finish(alkfw_stream *stream, alkfw_document_alarm *alarm,
                                 alkfw_error *err)
{
    return stream_step(stream, NULL, 0, 1, alarm, err);
}

void alkfw_stream_free(alkfw_stream *stream)
{
    if (stream == NULL)
        return;
    for (size_t i = 0; i < stream->n_live; i++)
        window_release(stream, &stream->live[i]);
    for (size_t i = 0; i < stream->n_spare; i++)
        model_session_free(stream->spare[i]);
    free(stream->live);
    free(stream->spare);
    doc_tok_free(&stream->dt);
    doc_pool_free(&stream->pool);
    free(stream->ids);
    free(stream->spans);
    free(stream->states);
    free(stream->seq_ids);
    free(stream->seq_spans);
    free(stream);
}
