/*
 * tokenizer_decode.c - ids back to text through the decoders of tokenizer.json (ByteLevel,
 * ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence), which work on the list of token
 * strings the way Hugging Face's decode_chain does.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* A list of owned byte strings. */
typedef struct str_list {
    char **s;
    size_t *len;
    size_t n, cap;
} str_list;

static void list_free(str_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->s[i]);
    free(l->s);
    free(l->len);
    memset(l, 0, sizeof *l);
}

/* Appends a copy of b[0..n). Returns 0 or -1 (out of memory). */
static int list_push(str_list *l, const char *b, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        char **s = realloc(l->s, cap * sizeof *s);
        if (s == NULL)
            return -1;
        l->s = s;
        size_t *len = realloc(l->len, cap * sizeof *len);
        if (len == NULL)
            return -1;
        l->len = len;
        l->cap = cap;
    }
    char *c = malloc(n + 1);
    if (c == NULL)
        return -1;
    if (n > 0)
        memcpy(c, b, n);
    c[n] = '\0';
    l->s[l->n] = c;
    l->len[l->n] = n;
    l->n++;
    return 0;
}

/* A growing byte buffer. */
typedef struct byte_buf {
    char *b;
    size_t n, cap;
} byte_buf;

static int buf_add(byte_buf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *nb = realloc(b->b, cap);
        if (nb == NULL)
            return -1;
        b->b = nb;
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->b + b->n, p, n);
    b->n += n;
    b->b[b->n] = '\0';
    return 0;
}

/* Replaces invalid UTF-8 in b by U+FFFD (Rust's from_utf8_lossy) and appends to out. */
static int add_lossy(str_list *out, const char *b, size_t n)
{
    char *s;
    size_t slen, *m0, *m1, nrep;
    if (tokenizer_sanitize(b, n, &s, &slen, &m0, &m1, &nrep) != 0)
        return -1;
    free(m0);
    free(m1);
    int r = list_push(out, s, slen);
    free(s);
    return r;
}

/* ---------------------------------------------------------------------------------------- */
/* Decoders                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* ByteLevel: every token's characters back to bytes (a token with a character outside the
 * mapping is kept as it is), all joined and decoded lossily into one string. */
static int dec_bytelevel(const str_list *in, str_list *out)
{
    byte_buf b = {0};
    for (size_t t = 0; t < in->n; t++) {
        size_t mark = b.n;
        int ok = 1;
        for (size_t i = 0; i < in->len[t];) {
            int32_t cp;
            i += tokenizer_utf8_decode(in->s[t], in->len[t], i, &cp);
            int byte = tokenizer_bytelevel_byte(cp);
            if (byte < 0) {
                ok = 0;
                break;
            }
            char c = (char)byte;
            if (buf_add(&b, &c, 1) != 0)
                goto fail;
        }
        if (!ok) {
            b.n = mark;
            if (buf_add(&b, in->s[t], in->len[t]) != 0)
                goto fail;
        }
    }
    int r = add_lossy(out, b.b ? b.b : "", b.n);
    free(b.b);
    return r;
fail:
    free(b.b);
    return -1;
}

/* Parses "<0xXX>" into a byte; returns -1 when the token is not of that form. */
static int fallback_byte(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Flushes pending fallback bytes: valid UTF-8 becomes its text, otherwise every byte becomes
 * one U+FFFD (the rule of Hugging Face's ByteFallback decoder). */
static int flush_bytes(byte_buf *pending, str_list *out)
{
    if (pending->n == 0)
        return 0;
    char *s;
    size_t slen, *m0, *m1, nrep;
    if (tokenizer_sanitize(pending->b, pending->n, &s, &slen, &m0, &m1, &nrep) != 0)
        return -1;
    free(m0);
    free(m1);
    int r;
    if (nrep == 0) {
        r = list_push(out, s, slen);
    } else {
        r = 0;
        for (size_t i = 0; i < pending->n && r == 0; i++)
            r = list_push(out, "\xEF\xBF\xBD", 3);
    }
    free(s);
    pending->n = 0;
    return r;
}

static int dec_bytefallback(const str_list *in, str_list *out)
{
    byte_buf pending = {0};
    int r = 0;
    for (size_t t = 0; t < in->n && r == 0; t++) {
        int byte = fallback_byte(in->s[t], in->len[t]);
        if (byte >= 0) {
            char c = (char)byte;
            r = buf_add(&pending, &c, 1);
            continue;
        }
        r = flush_bytes(&pending, out);
        if (r == 0)
            r = list_push(out, in->s[t], in->len[t]);
    }
    if (r == 0)
        r = flush_bytes(&pending, out);
    free(pending.b);
    return r;
}

static int dec_fuse(const str_list *in, str_list *out)
{
    byte_buf b = {0};
    for (size_t t = 0; t < in->n; t++) {
        if (buf_add(&b, in->s[t], in->len[t]) != 0) {
            free(b.b);
            return -1;
        }
    }
    int r = list_push(out, b.b ? b.b : "", b.n);
    free(b.b);
    return r;
}

/* Strip: removes up to `start` leading and `stop` trailing copies of the content character
 * from every token. */
static int dec_strip(const tokenizer_decoder *d, const str_list *in, str_list *out)
{
    size_t cl = d->text_len;
    for (size_t t = 0; t < in->n; t++) {
        size_t a = 0, b = in->len[t];
        for (int k = 0; k < d->start && cl > 0 && b - a >= cl; k++) {
            if (memcmp(in->s[t] + a, d->text, cl) != 0)
                break;
            a += cl;
        }
        for (int k = 0; k < d->stop && cl > 0 && b - a >= cl; k++) {
            if (memcmp(in->s[t] + b - cl, d->text, cl) != 0)
                break;
            b -= cl;
        }
        if (list_push(out, in->s[t] + a, b - a) != 0)
            return -1;
    }
    return 0;
}

static int dec_replace(const tokenizer_decoder *d, const str_list *in, str_list *out)
{
    pcre2_match_data *md = NULL;
    if (d->pattern.re != NULL &&
        (md = pcre2_match_data_create_from_pattern(d->pattern.re, NULL)) == NULL)
        return -1;
    int r = 0;
    for (size_t t = 0; t < in->n && r == 0; t++) {
        byte_buf b = {0};
        size_t pos = 0, ms, me;
        const char *s = in->s[t];
        while (r == 0 &&
               tokenizer_pattern_find(&d->pattern, s, in->len[t], pos, md, &ms, &me) == 1) {
            r = buf_add(&b, s + pos, ms - pos) || buf_add(&b, d->text, d->text_len);
            pos = me;
        }
        if (r == 0)
            r = buf_add(&b, s + pos, in->len[t] - pos);
        if (r == 0)
            r = list_push(out, b.b ? b.b : "", b.n);
        free(b.b);
    }
    if (md != NULL)
        pcre2_match_data_free(md);
    return r;
}

static int dec_metaspace(const tokenizer_decoder *d, const str_list *in, str_list *out)
{
    for (size_t t = 0; t < in->n; t++) {
        byte_buf b = {0};
        const char *s = in->s[t];
        size_t n = in->len[t], rl = d->replacement_len;
        for (size_t i = 0; i < n;) {
            int fail;
            if (i + rl <= n && memcmp(s + i, d->replacement, rl) == 0) {
                fail = buf_add(&b, " ", 1);
                i += rl;
            } else {
                fail = buf_add(&b, s + i, 1);
                i++;
            }
            if (fail) {
                free(b.b);
                return -1;
            }
        }
        size_t skip = (t == 0 && d->prepend_first && b.n > 0 && b.b[0] == ' ') ? 1 : 0;
        int r = list_push(out, b.b ? b.b + skip : "", b.n - skip);
        free(b.b);
        if (r != 0)
            return -1;
    }
    return 0;
}

/* Runs decoder d on *l, replacing its contents. Returns 0 or -1 (out of memory). */
static int decode_chain(const tokenizer_decoder *d, str_list *l)
{
    if (d->kind == TOKENIZER_DEC_SEQUENCE) {
        for (size_t i = 0; i < d->n_items; i++) {
            if (decode_chain(&d->items[i], l) != 0)
                return -1;
        }
        return 0;
    }
    str_list out = {0};
    int r = -1;
    switch (d->kind) {
    case TOKENIZER_DEC_SEQUENCE:
        break;
    case TOKENIZER_DEC_BYTELEVEL:
        r = dec_bytelevel(l, &out);
        break;
    case TOKENIZER_DEC_BYTEFALLBACK:
        r = dec_bytefallback(l, &out);
        break;
    case TOKENIZER_DEC_FUSE:
        r = dec_fuse(l, &out);
        break;
    case TOKENIZER_DEC_STRIP:
        r = dec_strip(d, l, &out);
        break;
    case TOKENIZER_DEC_REPLACE:
        r = dec_replace(d, l, &out);
        break;
    case TOKENIZER_DEC_METASPACE:
        r = dec_metaspace(d, l, &out);
        break;
    }
    if (r != 0) {
        list_free(&out);
        return -1;
    }
    list_free(l);
    *l = out;
    return 0;
}

/* See alkfw.h. Ids that name no token are skipped, as Hugging Face skips them. Without a
 * decoder the tokens are joined with spaces. */
alkfw_status alkfw_tokenizer_decode(const alkfw_tokenizer *tok, const int32_t *ids, size_t n,
                                    int skip_special_tokens, char **out, alkfw_error *err)
{
    if (out != NULL)
        *out = NULL;
    if (tok == NULL || out == NULL || (ids == NULL && n > 0))
        return error_set(err, ALKFW_ERR_ARGUMENT, "tokenizer decode: NULL argument");
    str_list l = {0};
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= tok->vocab_size || tok->id_to_token[id] == NULL)
            continue;
        if (skip_special_tokens && tok->is_special[id])
            continue;
        if (list_push(&l, tok->id_to_token[id], tok->id_len[id]) != 0)
            goto nomem;
    }
    if (tok->decoder != NULL && decode_chain(tok->decoder, &l) != 0)
        goto nomem;

    byte_buf b = {0};
    for (size_t i = 0; i < l.n; i++) {
        if ((i > 0 && tok->decoder == NULL && buf_add(&b, " ", 1) != 0) ||
            buf_add(&b, l.s[i], l.len[i]) != 0) {
            free(b.b);
            goto nomem;
        }
    }
    if (b.b == NULL && buf_add(&b, "", 0) != 0)
        goto nomem;
    list_free(&l);
    *out = b.b;
    return ALKFW_OK;
nomem:
    list_free(&l);
    return error_set(err, ALKFW_ERR_NOMEM, "tokenizer decode: out of memory");
}
