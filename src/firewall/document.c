/*
 * document.c - long documents (DESIGN §3): the incremental tokenizer, the window geometry,
 * max pooling over windows, and alkfw_screen_document with its windows spread over threads.
 */
#include "firewall/document.h"

#include "common/error.h"
#include "tokenizer/tokenizer_internal.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Most windows screened at once, whatever the caller asks. */
#define DOC_MAX_WORKERS 64

/* Bytes read at a time from a reader. */
#define DOC_READ_SIZE 65536

double doc_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 at the edges of a piece                                                             */
/* ---------------------------------------------------------------------------------------- */

/* For a lead byte: the continuation bytes it needs and the range allowed for the first one
 * (which rules out overlong forms, surrogates and code points above U+10FFFF). Returns 0 for
 * a byte that cannot start a multi-byte sequence. */
static int utf8_lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80, *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        return 1;
    if (b == 0xE0)
        *lo = 0xA0;
    else if (b == 0xED)
        *hi = 0x9F;
    if (b >= 0xE0 && b <= 0xEF)
        return 2;
    if (b == 0xF0)
        *lo = 0x90;
    else if (b == 0xF4)
        *hi = 0x8F;
    if (b >= 0xF0 && b <= 0xF4)
        return 3;
    return 0;
}

/* The length of the longest prefix of s[i..n) that is a well-formed start of one sequence. */
static size_t utf8_prefix(const unsigned char *s, size_t n, size_t i, int *complete)
{
    unsigned char lo, hi;
    *complete = 1;
    if (s[i] < 0x80)
        return 1;
    int need = utf8_lead(s[i], &lo, &hi);
    if (need == 0) {
        *complete = 0;
        return 1;
    }
    size_t j = i + 1;
    for (int c = 0; c < need; c++, j++) {
        if (j >= n || s[j] < (c == 0 ? lo : 0x80) || s[j] > (c == 0 ? hi : 0xBF)) {
            *complete = 0;
            return j - i;
        }
    }
    return j - i;
}

/* Invalid sequences in s[0..n): one per maximal ill-formed subpart, as the sanitizer counts. */
static size_t utf8_count_invalid(const unsigned char *s, size_t n)
{
    size_t count = 0;
    for (size_t i = 0; i < n;) {
        int complete;
        i += utf8_prefix(s, n, i, &complete);
        count += !complete;
    }
    return count;
}

/* Bytes at the end of s[0..n) that start a sequence more bytes could still complete. */
static size_t utf8_incomplete_tail(const unsigned char *s, size_t n)
{
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        size_t i = n - back;
        if ((s[i] & 0xC0) == 0x80)
            continue;
        int complete;
        size_t got = utf8_prefix(s, n, i, &complete);
        return !complete && i + got == n && s[i] >= 0xC2 ? back : 0;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Incremental tokenizer                                                                     */
/* ---------------------------------------------------------------------------------------- */

void doc_tok_init(doc_tok *dt, const alkfw_tokenizer *tok, int plain_specials)
{
    memset(dt, 0, sizeof *dt);
    dt->tok = tok;
    dt->plain_specials = plain_specials;
}

void doc_tok_free(doc_tok *dt)
{
    free(dt->buf);
    free(dt->tail_ids);
    free(dt->tail_spans);
    free(dt->out_ids);
    free(dt->out_spans);
    memset(dt, 0, sizeof *dt);
}

/* Grows a pair of token arrays to hold need tokens. Returns 0 or -1. */
static int tokens_reserve(int32_t **ids, alkfw_span **spans, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 64;
    while (c < need)
        c *= 2;
    int32_t *i = realloc(*ids, c * sizeof *i);
    if (i == NULL)
        return -1;
    *ids = i;
    alkfw_span *s = realloc(*spans, c * sizeof *s);
    if (s == NULL)
        return -1;
    *spans = s;
    *cap = c;
    return 0;
}

static int is_space_byte(unsigned char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

/* The byte at absolute offset at, or -1 when it is not held. */
static int byte_at(const doc_tok *dt, size_t at)
{
    if (at < dt->base || at >= dt->base + dt->len)
        return -1;
    return (unsigned char)dt->buf[at - dt->base];
}

/* 1 when a token starting at b begins a whitespace run after a non-space (its leading space
 * may have been trimmed from its span, as byte-level tokenizers with trim_offsets do). */
static int boundary_at_space(const doc_tok *dt, size_t b)
{
    size_t q = b;
    int here = byte_at(dt, b), before = b > 0 ? byte_at(dt, b - 1) : -1;
    if (here >= 0 && !is_space_byte((unsigned char)here) && before == ' ')
        q = b - 1;
    int c = byte_at(dt, q), p = q > 0 ? byte_at(dt, q - 1) : -1;
    return c >= 0 && is_space_byte((unsigned char)c) && p >= 0 && !is_space_byte((unsigned char)p);
}

/* How many tail tokens may become final now. */
static size_t commit_count(const doc_tok *dt)
{
    if (dt->finished)
        return dt->n_tail;
    if (dt->usable < dt->lo + DOC_TOK_SAFE_BYTES)
        return 0;
    size_t limit = dt->usable - DOC_TOK_SAFE_BYTES, good = 0, any = 0;
    for (size_t j = 1; j < dt->n_tail; j++) {
        size_t b = dt->tail_spans[j].start;
        if (b > limit)
            break;
        /* every final token must start before lo and every tail token at or after it (a
         * token with an empty span, like the "▁" a normalizer prepends, counts by its start) */
        if (b < dt->tail_spans[j - 1].end || dt->tail_spans[j - 1].start >= b || b <= dt->lo)
            continue;
        if (boundary_at_space(dt, b))
            good = j;
        int c = byte_at(dt, b);
        if (c >= 0 && (c & 0xC0) != 0x80)
            any = j;
    }
    /* LIMIT: a run of more than DOC_TOK_MAX_TAIL_BYTES without whitespace (a long URL, base64)
     * is cut at a token boundary of its own tokenization so far; the whole-text tokenization
     * may place that boundary elsewhere, and n_resync then counts the disagreement. */
    if (good == 0 && dt->usable - dt->lo > DOC_TOK_MAX_TAIL_BYTES)
        return any;
    return good;
}

/* Makes the first j tail tokens final: hands them out, keeps the last as context, counts. */
static alkfw_status commit(doc_tok *dt, size_t j, alkfw_error *err)
{
    if (j == 0)
        return ALKFW_OK;
    if (tokens_reserve(&dt->out_ids, &dt->out_spans, &dt->out_cap, dt->n_out + j) != 0)
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for tokens");
    memcpy(dt->out_ids + dt->n_out, dt->tail_ids, j * sizeof *dt->out_ids);
    memcpy(dt->out_spans + dt->n_out, dt->tail_spans, j * sizeof *dt->out_spans);
    dt->n_out += j;
    dt->n_final += j;
    for (size_t i = 0; i < j; i++) {
        const alkfw_span *sp = &dt->tail_spans[i];
        dt->n_special_final +=
            sp->end > sp->start && alkfw_tokenizer_is_special(dt->tok, dt->tail_ids[i]);
        if (dt->n_ctx == DOC_TOK_CONTEXT) {
            memmove(dt->ctx_ids, dt->ctx_ids + 1, (DOC_TOK_CONTEXT - 1) * sizeof *dt->ctx_ids);
            memmove(dt->ctx_spans, dt->ctx_spans + 1,
                    (DOC_TOK_CONTEXT - 1) * sizeof *dt->ctx_spans);
            dt->n_ctx--;
        }
        dt->ctx_ids[dt->n_ctx] = dt->tail_ids[i];
        dt->ctx_spans[dt->n_ctx++] = *sp;
    }

    size_t new_lo = j < dt->n_tail ? dt->tail_spans[j].start : dt->usable;
    if (new_lo < dt->lo)
        new_lo = dt->lo;
    if (new_lo > dt->lo)
        dt->n_replaced_final += utf8_count_invalid(
            (const unsigned char *)dt->buf + (dt->lo - dt->base), new_lo - dt->lo);
    dt->lo = new_lo;
    memmove(dt->tail_ids, dt->tail_ids + j, (dt->n_tail - j) * sizeof *dt->tail_ids);
    memmove(dt->tail_spans, dt->tail_spans + j, (dt->n_tail - j) * sizeof *dt->tail_spans);
    dt->n_tail -= j;

    /* keep bytes from the oldest context token on */
    size_t keep = dt->lo;
    for (size_t i = 0; i < dt->n_ctx; i++)
        if (dt->ctx_spans[i].start < keep)
            keep = dt->ctx_spans[i].start;
    if (keep > dt->base) {
        size_t drop = keep - dt->base;
        memmove(dt->buf, dt->buf + drop, dt->len - drop);
        dt->len -= drop;
        dt->base = keep;
    }
    return ALKFW_OK;
}

/* Re-tokenizes [context start, usable) and replaces the tail with its tokens from lo on. */
static alkfw_status retokenize(doc_tok *dt, alkfw_error *err)
{
    size_t c = dt->lo;
    for (size_t i = 0; i < dt->n_ctx; i++)
        if (dt->ctx_spans[i].start < c)
            c = dt->ctx_spans[i].start;
    if (c < dt->base)
        c = dt->base; /* cannot happen: bytes are kept from the oldest context token */

    alkfw_encode_options eo;
    alkfw_encode_options_init(&eo);
    eo.add_special_tokens = 0;
    eo.plain_specials = dt->plain_specials;
    alkfw_encoding enc;
    const char *from = dt->buf != NULL ? dt->buf + (c - dt->base) : "";
    alkfw_status st = alkfw_tokenizer_encode(dt->tok, from, dt->usable - c, &eo, &enc, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "document: tokenize bytes %zu..%zu", c, dt->usable);

    size_t i0 = 0;
    while (i0 < enc.n_tokens && enc.spans[i0].start + c < dt->lo)
        i0++;

    /* the final tokens just before lo must come out the same, and a token must start at lo */
    if (dt->n_ctx > 0) {
        int ok = i0 == enc.n_tokens ? dt->usable == dt->lo : enc.spans[i0].start + c == dt->lo;
        for (size_t back = 1; ok && back <= 2 && back <= dt->n_ctx && back < i0; back++) {
            size_t e = i0 - back, x = dt->n_ctx - back;
            ok = enc.ids[e] == dt->ctx_ids[x] && enc.spans[e].start + c == dt->ctx_spans[x].start &&
                 enc.spans[e].end + c == dt->ctx_spans[x].end;
        }
        dt->n_resync += !ok;
    }

    size_t n = enc.n_tokens - i0;
    if (tokens_reserve(&dt->tail_ids, &dt->tail_spans, &dt->tail_cap, n) != 0) {
        alkfw_encoding_free(&enc);
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for tokens");
    }
    for (size_t i = 0; i < n; i++) {
        dt->tail_ids[i] = enc.ids[i0 + i];
        dt->tail_spans[i].start = enc.spans[i0 + i].start + c;
        dt->tail_spans[i].end = enc.spans[i0 + i].end + c;
    }
    dt->n_tail = n;
    alkfw_encoding_free(&enc);
    return ALKFW_OK;
}

alkfw_status doc_tok_push(doc_tok *dt, const char *bytes, size_t n, int final, alkfw_error *err)
{
    dt->n_out = 0;
    if (dt->finished)
        return error_set(err, ALKFW_ERR_ARGUMENT, "document: text pushed after its end");
    if (bytes == NULL && n > 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "document: NULL text");
    if (dt->len + n < dt->len || dt->len + n > (size_t)UINT32_MAX / 4)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "document: more than %zu bytes without a token boundary",
                         (size_t)UINT32_MAX / 4);
    if (dt->len + n > dt->cap) {
        size_t c = dt->cap ? dt->cap : 4096;
        while (c < dt->len + n)
            c *= 2;
        char *b = realloc(dt->buf, c);
        if (b == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for text");
        dt->buf = b;
        dt->cap = c;
    }
    if (n > 0)
        memcpy(dt->buf + dt->len, bytes, n);
    dt->len += n;
    dt->finished = final;

    size_t held = final ? 0 : utf8_incomplete_tail((const unsigned char *)dt->buf, dt->len);
    size_t usable = dt->base + dt->len - held;
    if (usable == dt->usable && !final && n > 0)
        return ALKFW_OK; /* only held-back bytes arrived: nothing can change */
    dt->usable = usable;

    alkfw_status st = retokenize(dt, err);
    if (st == ALKFW_OK)
        st = commit(dt, commit_count(dt), err);
    return st;
}

size_t doc_tok_tail_replaced(const doc_tok *dt)
{
    if (dt->usable <= dt->lo)
        return 0;
    return utf8_count_invalid((const unsigned char *)dt->buf + (dt->lo - dt->base),
                              dt->usable - dt->lo);
}

size_t doc_tok_tail_specials(const doc_tok *dt)
{
    size_t n = 0;
    for (size_t i = 0; i < dt->n_tail; i++)
        n += dt->tail_spans[i].end > dt->tail_spans[i].start &&
             alkfw_tokenizer_is_special(dt->tok, dt->tail_ids[i]);
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* Geometry                                                                                  */
/* ---------------------------------------------------------------------------------------- */

void alkfw_document_options_init(alkfw_document_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->window = 0;
    opts->overlap = 0.25;
    opts->n_threads = 0;
}

alkfw_status doc_geometry_init(const alkfw_firewall *fw, const alkfw_document_options *opts,
                               doc_geometry *g, alkfw_error *err)
{
    alkfw_document_options defaults;
    if (opts == NULL) {
        alkfw_document_options_init(&defaults);
        opts = &defaults;
    }
    memset(g, 0, sizeof *g);
    size_t W = opts->window ? opts->window : (fw->max_tokens < 2048 ? fw->max_tokens : 2048);
    if (W > fw->max_tokens)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "document: window of %zu tokens is above the firewall's limit of %zu "
                         "(the model's max positions or the max_tokens option)",
                         W, fw->max_tokens);

    /* the post-processor's template tokens (BOS, EOS) go around every window */
    const alkfw_tokenizer *tok = fw->tokenizer;
    g->prefix = tok->post_prefix;
    g->n_prefix = tok->n_post_prefix;
    g->suffix = tok->post_suffix;
    g->n_suffix = tok->n_post_suffix;
    if (W < g->n_prefix + g->n_suffix + 2)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "document: window of %zu tokens leaves fewer than 2 for text (%zu "
                         "template tokens)",
                         W, g->n_prefix + g->n_suffix);
    if (!(opts->overlap >= 0.0 && opts->overlap <= 0.9))
        return error_set(err, ALKFW_ERR_ARGUMENT, "document: overlap %g is outside [0, 0.9]",
                         opts->overlap);
    g->window = W;
    g->content = W - g->n_prefix - g->n_suffix;
    size_t shared = (size_t)(opts->overlap * (double)g->content);
    g->stride = shared < g->content ? g->content - shared : 1;
    return ALKFW_OK;
}

size_t doc_geometry_windows(const doc_geometry *g, size_t n_content)
{
    if (n_content <= g->content)
        return 1;
    return 1 + (n_content - g->content + g->stride - 1) / g->stride;
}

size_t doc_geometry_sequence(const doc_geometry *g, const int32_t *ids, const alkfw_span *spans,
                             size_t nc, int32_t *seq_ids, alkfw_span *seq_spans)
{
    size_t T = 0;
    size_t end = nc > 0 ? spans[nc - 1].end : 0;
    for (size_t i = 0; i < g->n_prefix; i++, T++) {
        seq_ids[T] = g->prefix[i];
        seq_spans[T].start = seq_spans[T].end = 0; /* as the tokenizer places BOS */
    }
    if (nc > 0) {
        memcpy(seq_ids + T, ids, nc * sizeof *ids);
        memcpy(seq_spans + T, spans, nc * sizeof *spans);
    }
    T += nc;
    for (size_t i = 0; i < g->n_suffix; i++, T++) {
        seq_ids[T] = g->suffix[i];
        seq_spans[T].start = seq_spans[T].end = end;
    }
    return T;
}

/* ---------------------------------------------------------------------------------------- */
/* Windows and max pooling                                                                   */
/* ---------------------------------------------------------------------------------------- */

alkfw_status doc_window_summarize(const alkfw_firewall *fw, const doc_geometry *g,
                                  const codebook_result *res, const alkfw_span *seq_spans,
                                  size_t first, size_t nc, doc_window_result *out, alkfw_error *err)
{
    memset(out, 0, sizeof *out);
    size_t T = res->n_tokens;
    out->window.start = nc > 0 ? seq_spans[g->n_prefix].start : 0;
    out->window.end = nc > 0 ? seq_spans[g->n_prefix + nc - 1].end : 0;
    out->window.first_token = first;
    out->window.n_tokens = T;
    out->window.score = res->score;
    out->window.level =
        firewall_level(res->score, res->threshold_suspicious, res->threshold_dangerous);

    /* window positions become document token indices (BOS stays 0).
     * LIMIT: with a template suffix (EOS), a max at the suffix of a window that is not the
     * last is reported just past that window's text, not at the document's end. */
    out->n_outputs = res->n_outputs;
    for (int d = 0; d < res->n_outputs; d++) {
        size_t p = res->argmax[d];
        out->mean[d] = res->mean[d];
        out->max[d] = res->max[d];
        out->argmax[d] = p < g->n_prefix ? p : p + first;
    }

    size_t from = fw->opts.last_token && T > 0 ? T - 1 : 0;
    alkfw_alarm_span *spans = NULL;
    size_t n_spans = 0;
    alkfw_status st = firewall_spans(fw->cb, res, seq_spans, from, res->threshold_suspicious,
                                     fw->opts.max_spans, &spans, &n_spans, err);
    if (st != ALKFW_OK)
        return st;
    if (n_spans > 0 && (out->spans = calloc(n_spans, sizeof *out->spans)) == NULL)
        st = error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for spans");
    for (size_t i = 0; st == ALKFW_OK && i < n_spans; i++) {
        doc_span *s = &out->spans[i];
        s->start = spans[i].start;
        s->end = spans[i].end;
        s->p = spans[i].p;
        s->output = 0;
        for (int d = 0; d < res->n_outputs; d++)
            if (strcmp(codebook_output_name(fw->cb, d), spans[i].direction) == 0)
                s->output = d;
        out->n_spans = i + 1;
    }
    for (size_t i = 0; i < n_spans; i++)
        free(spans[i].direction);
    free(spans);
    return st;
}

alkfw_status doc_window_screen(const alkfw_firewall *fw, const doc_geometry *g,
                               const int32_t *seq_ids, const alkfw_span *seq_spans, size_t T,
                               size_t first, size_t nc, doc_window_result *out, alkfw_error *err)
{
    memset(out, 0, sizeof *out);
    codebook_result res;
    alkfw_status st = firewall_screen_window(fw, seq_ids, T, &res, err);
    if (st == ALKFW_OK)
        st = doc_window_summarize(fw, g, &res, seq_spans, first, nc, out, err);
    codebook_result_free(&res);
    return st;
}

void doc_pool_free(doc_pool *p)
{
    free(p->spans);
    free(p->windows);
    memset(p, 0, sizeof *p);
}

alkfw_status doc_pool_copy(doc_pool *dst, const doc_pool *src, alkfw_error *err)
{
    *dst = *src;
    dst->spans = NULL;
    dst->windows = NULL;
    dst->spans_cap = src->n_spans;
    dst->windows_cap = src->n_windows;
    if ((src->n_spans > 0 && (dst->spans = malloc(src->n_spans * sizeof *dst->spans)) == NULL) ||
        (src->n_windows > 0 &&
         (dst->windows = malloc(src->n_windows * sizeof *dst->windows)) == NULL)) {
        doc_pool_free(dst);
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
    }
    if (src->n_spans > 0)
        memcpy(dst->spans, src->spans, src->n_spans * sizeof *dst->spans);
    if (src->n_windows > 0)
        memcpy(dst->windows, src->windows, src->n_windows * sizeof *dst->windows);
    return ALKFW_OK;
}

/* Orders spans as the firewall does: p highest first, then earlier start, then output. */
static int doc_span_compare(const void *a, const void *b)
{
    const doc_span *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return (x->output > y->output) - (x->output < y->output);
}

alkfw_status doc_pool_add(doc_pool *p, const doc_window_result *w, size_t keep_spans,
                          alkfw_error *err)
{
    /* max pooling; on ties the earlier window stays */
    if (p->n_outputs == 0) {
        p->n_outputs = w->n_outputs;
        for (int d = 0; d < w->n_outputs; d++) {
            p->mean[d] = w->mean[d];
            p->max[d] = w->max[d];
            p->argmax[d] = w->argmax[d];
        }
    } else {
        for (int d = 0; d < p->n_outputs && d < w->n_outputs; d++) {
            if (w->mean[d] > p->mean[d])
                p->mean[d] = w->mean[d];
            if (w->max[d] > p->max[d]) {
                p->max[d] = w->max[d];
                p->argmax[d] = w->argmax[d];
            }
        }
    }

    /* the window's spans: a span overlapping one of the same output (windows overlap) is
     * merged into it */
    for (size_t i = 0; i < w->n_spans; i++) {
        const doc_span *s = &w->spans[i];
        size_t j = 0;
        while (j < p->n_spans && !(p->spans[j].output == s->output && p->spans[j].start < s->end &&
                                   s->start < p->spans[j].end))
            j++;
        if (j < p->n_spans) {
            doc_span *m = &p->spans[j];
            m->start = s->start < m->start ? s->start : m->start;
            m->end = s->end > m->end ? s->end : m->end;
            m->p = s->p > m->p ? s->p : m->p;
            continue;
        }
        if (p->n_spans == p->spans_cap) {
            size_t c = p->spans_cap ? 2 * p->spans_cap : 16;
            doc_span *g = realloc(p->spans, c * sizeof *g);
            if (g == NULL)
                return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for spans");
            p->spans = g;
            p->spans_cap = c;
        }
        p->spans[p->n_spans++] = *s;
    }
    if (p->n_spans > 1)
        qsort(p->spans, p->n_spans, sizeof *p->spans, doc_span_compare);
    /* LIMIT: candidates beyond keep_spans are dropped, so a dropped span can no longer grow
     * by merging with a later window's; the reported top spans are those of the windows. */
    if (p->n_spans > keep_spans)
        p->n_spans = keep_spans;

    if (p->n_windows == p->windows_cap) {
        size_t c = p->windows_cap ? 2 * p->windows_cap : 16;
        alkfw_window *g = realloc(p->windows, c * sizeof *g);
        if (g == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for windows");
        p->windows = g;
        p->windows_cap = c;
    }
    p->windows[p->n_windows++] = w->window;
    return ALKFW_OK;
}

alkfw_status doc_pool_alarm(const alkfw_firewall *fw, doc_pool *p, alkfw_document_alarm *out,
                            alkfw_error *err)
{
    alkfw_alarm *a = &out->alarm;
    firewall_thresholds(fw, &a->threshold_suspicious, &a->threshold_dangerous);
    a->model = strdup(fw->model_id);
    a->codebook = strdup(fw->codebook_id);
    if (a->model == NULL || a->codebook == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");

    /* score = max_d alpha_d * (max over windows of m_d), as codebook_aggregate orders it */
    if (p->n_outputs > 0) {
        a->directions = calloc((size_t)p->n_outputs, sizeof *a->directions);
        if (a->directions == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
        a->score = (double)fw->cb->dir_alpha[0] * p->mean[0];
        for (int d = 0; d < p->n_outputs; d++) {
            alkfw_direction_score *ds = &a->directions[d];
            if ((ds->name = strdup(codebook_output_name(fw->cb, d))) == NULL)
                return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
            a->n_directions = (size_t)d + 1;
            ds->mean = p->mean[d];
            ds->max = p->max[d];
            ds->max_position = p->argmax[d];
            ds->weight = fw->cb->dir_alpha[d];
            double s = (double)fw->cb->dir_alpha[d] * p->mean[d];
            if (s > a->score)
                a->score = s;
        }
        a->level = firewall_level(a->score, a->threshold_suspicious, a->threshold_dangerous);
    }

    size_t n = p->n_spans < fw->opts.max_spans ? p->n_spans : fw->opts.max_spans;
    if (n > 0 && (a->spans = calloc(n, sizeof *a->spans)) == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
    for (size_t i = 0; i < n; i++) {
        a->spans[i].start = p->spans[i].start;
        a->spans[i].end = p->spans[i].end;
        a->spans[i].p = p->spans[i].p;
        if ((a->spans[i].direction = strdup(codebook_output_name(fw->cb, p->spans[i].output))) ==
            NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
        a->n_spans = i + 1;
    }

    /* the window list moves into the alarm: for a long document it is the one part that grows
     * with the length, so it is not copied */
    out->windows = p->windows;
    out->n_windows = p->n_windows;
    p->windows = NULL;
    p->n_windows = p->windows_cap = 0;
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* The document alarm                                                                        */
/* ---------------------------------------------------------------------------------------- */

void alkfw_document_alarm_free(alkfw_document_alarm *alarm)
{
    if (alarm == NULL)
        return;
    alkfw_alarm_free(&alarm->alarm);
    free(alarm->windows);
    alarm->windows = NULL;
    alarm->n_windows = 0;
}

alkfw_status alkfw_document_alarm_to_json(const alkfw_document_alarm *alarm, char **json,
                                          alkfw_error *err)
{
    if (alarm == NULL || json == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "document_alarm_to_json: alarm and json must not be NULL");
    *json = NULL;
    char *base = NULL;
    alkfw_status st = alkfw_alarm_to_json(&alarm->alarm, &base, err);
    if (st != ALKFW_OK)
        return st;
    cJSON *o = cJSON_Parse(base);
    free(base);
    cJSON *list = o ? cJSON_AddArrayToObject(o, "windows") : NULL;
    int ok = list != NULL;
    for (size_t i = 0; ok && i < alarm->n_windows; i++) {
        const alkfw_window *w = &alarm->windows[i];
        cJSON *e = cJSON_CreateObject();
        ok = e != NULL && cJSON_AddItemToArray(list, e) &&
             cJSON_AddNumberToObject(e, "start", (double)w->start) != NULL &&
             cJSON_AddNumberToObject(e, "end", (double)w->end) != NULL &&
             cJSON_AddStringToObject(e, "level", alkfw_level_string(w->level)) != NULL &&
             cJSON_AddNumberToObject(e, "score", w->score) != NULL;
    }
    if (ok)
        *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (*json == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "document_alarm_to_json: out of memory");
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Screening a document                                                                      */
/* ---------------------------------------------------------------------------------------- */

/* A window waiting to be screened and then what it gave. */
typedef struct doc_job {
    int32_t *ids;
    alkfw_span *spans;
    size_t T, first, nc;
    doc_window_result result;
    alkfw_status status;
    alkfw_error err;
} doc_job;

typedef struct doc_batch {
    const alkfw_firewall *fw;
    const doc_geometry *g;
    doc_job *jobs;
    size_t n, next;
    pthread_mutex_t lock;
} doc_batch;

/* A worker: screens the next unscreened window of the batch until none is left. */
static void *doc_worker(void *arg)
{
    doc_batch *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        size_t i = b->next++;
        pthread_mutex_unlock(&b->lock);
        if (i >= b->n)
            return NULL;
        doc_job *j = &b->jobs[i];
        j->status = doc_window_screen(b->fw, b->g, j->ids, j->spans, j->T, j->first, j->nc,
                                      &j->result, &j->err);
    }
}

/* The state of one document screen. */
typedef struct doc_run {
    const alkfw_firewall *fw;
    doc_geometry g;
    doc_tok dt;
    int32_t *ids; /* content tokens from index `first` on (the current window and beyond) */
    alkfw_span *spans;
    size_t n, cap, first;
    doc_job *jobs; /* [n_workers] windows screened together */
    size_t n_jobs, n_workers;
    doc_pool pool;
    size_t keep_spans;
} doc_run;

/* Screens the queued windows (in parallel when there are workers) and folds them in order. */
static alkfw_status run_flush(doc_run *r, alkfw_error *err)
{
    if (r->n_jobs == 0)
        return ALKFW_OK;
    doc_batch b = {r->fw, &r->g, r->jobs, r->n_jobs, 0, PTHREAD_MUTEX_INITIALIZER};
    pthread_t tid[DOC_MAX_WORKERS];
    size_t started = 0;
    for (size_t i = 1; i < r->n_workers && i < r->n_jobs; i++)
        if (pthread_create(&tid[started], NULL, doc_worker, &b) == 0)
            started++;
    doc_worker(&b);
    for (size_t i = 0; i < started; i++)
        pthread_join(tid[i], NULL);

    alkfw_status st = ALKFW_OK;
    for (size_t i = 0; i < r->n_jobs; i++) {
        doc_job *j = &r->jobs[i];
        if (st == ALKFW_OK && j->status != ALKFW_OK) {
            st = j->status;
            if (err != NULL)
                *err = j->err;
            error_prefix(err, "document: window at token %zu", j->first);
        }
        if (st == ALKFW_OK)
            st = doc_pool_add(&r->pool, &j->result, r->keep_spans, err);
        free(j->result.spans);
        memset(&j->result, 0, sizeof j->result);
    }
    r->n_jobs = 0;
    return st;
}

/* Queues the window of content tokens [first, first + nc) held at the front of r->ids. */
static alkfw_status run_queue(doc_run *r, size_t nc, alkfw_error *err)
{
    doc_job *j = &r->jobs[r->n_jobs];
    j->T = doc_geometry_sequence(&r->g, r->ids, r->spans, nc, j->ids, j->spans);
    j->first = r->first;
    j->nc = nc;
    j->status = ALKFW_OK;
    r->n_jobs++;
    return r->n_jobs == r->n_workers ? run_flush(r, err) : ALKFW_OK;
}

/* Takes the tokens the tokenizer made final and queues every window that is now complete: a
 * window is complete when a token beyond it exists (else it may be the last one). */
static alkfw_status run_take(doc_run *r, alkfw_error *err)
{
    doc_tok *dt = &r->dt;
    if (tokens_reserve(&r->ids, &r->spans, &r->cap, r->n + dt->n_out) != 0)
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory for tokens");
    if (dt->n_out > 0) {
        memcpy(r->ids + r->n, dt->out_ids, dt->n_out * sizeof *r->ids);
        memcpy(r->spans + r->n, dt->out_spans, dt->n_out * sizeof *r->spans);
    }
    r->n += dt->n_out;
    dt->n_out = 0;

    size_t C = r->g.content, s = r->g.stride;
    while (r->n > C) {
        alkfw_status st = run_queue(r, C, err);
        if (st != ALKFW_OK)
            return st;
        memmove(r->ids, r->ids + s, (r->n - s) * sizeof *r->ids);
        memmove(r->spans, r->spans + s, (r->n - s) * sizeof *r->spans);
        r->n -= s;
        r->first += s;
    }
    return ALKFW_OK;
}

static void run_free(doc_run *r)
{
    doc_tok_free(&r->dt);
    free(r->ids);
    free(r->spans);
    for (size_t i = 0; r->jobs != NULL && i < r->n_workers; i++) {
        free(r->jobs[i].ids);
        free(r->jobs[i].spans);
        free(r->jobs[i].result.spans);
    }
    free(r->jobs);
    doc_pool_free(&r->pool);
}

/* The number of windows screened at once. */
static size_t workers_for(const alkfw_firewall *fw, const alkfw_document_options *opts)
{
    long n = opts != NULL ? opts->n_threads : 0;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = fw->opts.n_threads == 1 && cores > 0 ? cores : 1;
    }
    return n > DOC_MAX_WORKERS ? DOC_MAX_WORKERS : (size_t)n;
}

static alkfw_status run_open(doc_run *r, const alkfw_firewall *fw,
                             const alkfw_document_options *opts, alkfw_error *err)
{
    memset(r, 0, sizeof *r);
    r->fw = fw;
    alkfw_status st = doc_geometry_init(fw, opts, &r->g, err);
    if (st != ALKFW_OK)
        return st;
    doc_tok_init(&r->dt, fw->tokenizer, fw->opts.plain_specials);
    r->keep_spans = 4 * (fw->opts.max_spans > 4 ? fw->opts.max_spans : 4);
    r->n_workers = workers_for(fw, opts);
    r->jobs = calloc(r->n_workers, sizeof *r->jobs);
    if (r->jobs == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
    for (size_t i = 0; i < r->n_workers; i++) {
        r->jobs[i].ids = malloc(r->g.window * sizeof *r->jobs[i].ids);
        r->jobs[i].spans = malloc(r->g.window * sizeof *r->jobs[i].spans);
        if (r->jobs[i].ids == NULL || r->jobs[i].spans == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "document: out of memory");
    }
    return ALKFW_OK;
}

/* Pushes one piece of the document (final = 1 for the end) through tokenizer and windows. */
static alkfw_status run_push(doc_run *r, const char *bytes, size_t n, int final, alkfw_error *err)
{
    alkfw_status st = doc_tok_push(&r->dt, bytes, n, final, err);
    if (st == ALKFW_OK)
        st = run_take(r, err);
    if (st != ALKFW_OK || !final)
        return st;

    /* the last window ends at the last token; a text with no tokens at all has no window */
    size_t T_total = r->g.n_prefix + r->first + r->n + r->g.n_suffix;
    if (T_total > 0 && (r->n > 0 || r->first == 0))
        st = run_queue(r, r->n, err);
    if (st == ALKFW_OK)
        st = run_flush(r, err);
    return st;
}

/* Builds the alarm once the whole document went through. */
static alkfw_status run_alarm(doc_run *r, double t0, alkfw_document_alarm *out, alkfw_error *err)
{
    alkfw_status st = doc_pool_alarm(r->fw, &r->pool, out, err);
    if (st != ALKFW_OK)
        return st;
    out->alarm.n_tokens = r->g.n_prefix + r->first + r->n + r->g.n_suffix;
    out->alarm.n_special_tokens = r->dt.n_special_final;
    out->alarm.n_replaced = r->dt.n_replaced_final;
    out->alarm.truncated = 0;
    out->alarm.elapsed_ms = 1e3 * (doc_now() - t0);
    return ALKFW_OK;
}

alkfw_status alkfw_screen_document_read(const alkfw_firewall *fw, alkfw_read_fn read, void *user,
                                        const alkfw_document_options *opts,
                                        alkfw_document_alarm *out, alkfw_error *err)
{
    if (out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "screen_document: out must not be NULL");
    memset(out, 0, sizeof *out);
    if (fw == NULL || read == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "screen_document: firewall and reader must not be NULL");
    double t0 = doc_now();
    doc_run r;
    alkfw_status st = run_open(&r, fw, opts, err);
    char *piece = st == ALKFW_OK ? malloc(DOC_READ_SIZE) : NULL;
    if (st == ALKFW_OK && piece == NULL)
        st = error_set(err, ALKFW_ERR_NOMEM, "screen_document: out of memory");
    while (st == ALKFW_OK) {
        long got = read(user, piece, DOC_READ_SIZE);
        if (got < 0 || got > DOC_READ_SIZE) {
            st = error_set(err, ALKFW_ERR_IO, "screen_document: reading the document failed");
            break;
        }
        st = run_push(&r, piece, (size_t)got, got == 0, err);
        if (got == 0)
            break;
    }
    free(piece);
    if (st == ALKFW_OK)
        st = run_alarm(&r, t0, out, err);
    run_free(&r);
    if (st != ALKFW_OK)
        alkfw_document_alarm_free(out);
    return st;
}

/* A reader over a text in memory. */
typedef struct memory_reader {
    const char *text;
    size_t len, at;
} memory_reader;

static long memory_read(void *user, char *buf, size_t size)
{
    memory_reader *m = user;
    size_t n = m->len - m->at < size ? m->len - m->at : size;
    memcpy(buf, m->text + m->at, n);
    m->at += n;
    return (long)n;
}

alkfw_status alkfw_screen_document(const alkfw_firewall *fw, const char *text, size_t len,
                                   const alkfw_document_options *opts, alkfw_document_alarm *out,
                                   alkfw_error *err)
{
    if (text == NULL && len > 0) {
        if (out != NULL)
            memset(out, 0, sizeof *out);
        return error_set(err, ALKFW_ERR_ARGUMENT, "screen_document: text must not be NULL");
    }
    memory_reader m = {text ? text : "", len, 0};
    return alkfw_screen_document_read(fw, memory_read, &m, opts, out, err);
}
