/*
 * tokenizer_normalize.c - the normalizers of tokenizer.json (Sequence, Prepend, Replace,
 * NFC, NFD, NFKC, NFKD, Lowercase, Strip), each rewriting an aligned string so that every
 * output byte still knows the input span it came from.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* Frees what a normalizer node owns, children included, but not the node itself. */
static void normalizer_clear(tokenizer_normalizer *n)
{
    for (size_t i = 0; i < n->n_items; i++)
        normalizer_clear(&n->items[i]);
    free(n->items);
    free(n->text);
    tokenizer_pattern_free(&n->pattern);
}

/* Frees a normalizer tree, the node itself included. NULL does nothing. */
void tokenizer_normalizer_free(tokenizer_normalizer *n)
{
    if (n == NULL)
        return;
    normalizer_clear(n);
    free(n);
}

static alkfw_status nomem(alkfw_error *err)
{
    return error_set(err, ALKFW_ERR_NOMEM, "normalizer: out of memory");
}

/* Swaps the finished output into ns and frees the old contents. */
static void replace_with(tokenizer_nstr *ns, tokenizer_nstr *out)
{
    tokenizer_nstr_free(ns);
    *ns = *out;
    memset(out, 0, sizeof *out);
}

/* Prepend: adds text in front of a non-empty string; the added bytes have an empty span at
 * the start of the first character. */
static alkfw_status norm_prepend(const tokenizer_normalizer *n, tokenizer_nstr *ns,
                                 alkfw_error *err)
{
    size_t k = n->text_len;
    if (ns->len == 0 || k == 0)
        return ALKFW_OK;
    if (tokenizer_nstr_reserve(ns, k) != 0)
        return nomem(err);
    uint32_t at = ns->a0[0];
    memmove(ns->s + k, ns->s, ns->len + 1);
    memmove(ns->a0 + k, ns->a0, ns->len * sizeof *ns->a0);
    memmove(ns->a1 + k, ns->a1, ns->len * sizeof *ns->a1);
    memcpy(ns->s, n->text, k);
    for (size_t i = 0; i < k; i++)
        ns->a0[i] = ns->a1[i] = at;
    ns->len += k;
    return ALKFW_OK;
}

/* Replace: every match of the pattern becomes content, aligned to the matched span. */
static alkfw_status norm_replace(const tokenizer_normalizer *n, tokenizer_nstr *ns,
                                 alkfw_error *err)
{
    pcre2_match_data *md = NULL;
    if (n->pattern.re != NULL) {
        md = pcre2_match_data_create_from_pattern(n->pattern.re, NULL);
        if (md == NULL)
            return nomem(err);
    }
    tokenizer_nstr out = {0};
    size_t pos = 0, ms, me;
    int found;
    alkfw_status st = ALKFW_OK;
    while ((found = tokenizer_pattern_find(&n->pattern, ns->s, ns->len, pos, md, &ms, &me)) == 1) {
        if (tokenizer_nstr_append_from(&out, ns, pos, ms) != 0 ||
            tokenizer_nstr_append(&out, n->text, n->text_len, ns->a0[ms], ns->a1[me - 1]) != 0) {
            st = nomem(err);
            goto done;
        }
        pos = me;
    }
    if (found < 0) {
        st = error_set(err, ALKFW_ERR_LIMIT, "normalizer Replace: regex matcher failed");
        goto done;
    }
    if (tokenizer_nstr_append_from(&out, ns, pos, ns->len) != 0) {
        st = nomem(err);
        goto done;
    }
    replace_with(ns, &out);
done:
    tokenizer_nstr_free(&out);
    if (md != NULL)
        pcre2_match_data_free(md);
    return st;
}

/* A character before which Unicode normalization can restart: a starter that no composition
 * uses as its second part. Marks and Hangul vowel/trailing jamo can join what precedes. */
static int norm_boundary(int32_t cp)
{
    if (cp < 0x80)
        return 1;
    const utf8proc_property_t *p = utf8proc_get_property(cp);
    if (p->combining_class != 0)
        return 0;
    if (p->category == UTF8PROC_CATEGORY_MN || p->category == UTF8PROC_CATEGORY_MC ||
        p->category == UTF8PROC_CATEGORY_ME)
        return 0;
    if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2))
        return 0;
    return 1;
}

/* NFC/NFD/NFKC/NFKD through utf8proc, one normalization unit (a boundary character and what
 * may join it) at a time. A unit that normalization leaves unchanged keeps its per-byte
 * alignment; a changed unit aligns all its output bytes to the unit's whole input span.
 * LIMIT: offsets inside a changed unit are as coarse as the unit (e.g. "é" decomposed under
 * NFD gives two bytes both covering the whole input character). */
static alkfw_status norm_unicode(utf8proc_option_t opts, tokenizer_nstr *ns, alkfw_error *err)
{
    tokenizer_nstr out = {0};
    size_t i = 0;
    while (i < ns->len) {
        int32_t cp;
        size_t j = i + tokenizer_utf8_decode(ns->s, ns->len, i, &cp);
        while (j < ns->len) {
            size_t l = tokenizer_utf8_decode(ns->s, ns->len, j, &cp);
            if (norm_boundary(cp))
                break;
            j += l;
        }

        utf8proc_uint8_t *res = NULL;
        utf8proc_ssize_t r = utf8proc_map((const utf8proc_uint8_t *)ns->s + i,
                                          (utf8proc_ssize_t)(j - i), &res, opts);
        int fail;
        if (r < 0)
            fail = tokenizer_nstr_append_from(&out, ns, i, j); /* leave it as it was */
        else if ((size_t)r == j - i && memcmp(res, ns->s + i, j - i) == 0)
            fail = tokenizer_nstr_append_from(&out, ns, i, j);
        else
            fail =
                tokenizer_nstr_append(&out, (const char *)res, (size_t)r, ns->a0[i], ns->a1[j - 1]);
        free(res);
        if (fail) {
            tokenizer_nstr_free(&out);
            return nomem(err);
        }
        i = j;
    }
    replace_with(ns, &out);
    return ALKFW_OK;
}

/* Lowercase: each character through the Unicode lowercase mapping, keeping its span. */
static alkfw_status norm_lowercase(tokenizer_nstr *ns, alkfw_error *err)
{
    tokenizer_nstr out = {0};
    if (tokenizer_nstr_reserve(&out, ns->len) != 0)
        return nomem(err);
    for (size_t i = 0; i < ns->len;) {
        int32_t cp;
        size_t l = tokenizer_utf8_decode(ns->s, ns->len, i, &cp);
        char buf[4];
        int32_t lc = utf8proc_tolower(cp);
        size_t bl = tokenizer_utf8_encode(lc, buf);
        int fail = (bl == l && memcmp(buf, ns->s + i, l) == 0)
                       ? tokenizer_nstr_append_from(&out, ns, i, i + l)
                       : tokenizer_nstr_append(&out, buf, bl, ns->a0[i], ns->a1[i + l - 1]);
        if (fail) {
            tokenizer_nstr_free(&out);
            return nomem(err);
        }
        i += l;
    }
    replace_with(ns, &out);
    return ALKFW_OK;
}

/* Strip: removes leading (left) and trailing (right) White_Space characters. */
static alkfw_status norm_strip(const tokenizer_normalizer *n, tokenizer_nstr *ns, alkfw_error *err)
{
    size_t a = 0, b = ns->len;
    if (n->left) {
        while (a < b) {
            int32_t cp;
            size_t l = tokenizer_utf8_decode(ns->s, ns->len, a, &cp);
            if (!tokenizer_is_whitespace(cp))
                break;
            a += l;
        }
    }
    if (n->right) {
        while (b > a) {
            size_t k = b - 1;
            while (k > a && ((uint8_t)ns->s[k] & 0xC0) == 0x80)
                k--;
            int32_t cp;
            tokenizer_utf8_decode(ns->s, ns->len, k, &cp);
            if (!tokenizer_is_whitespace(cp))
                break;
            b = k;
        }
    }
    if (a == 0 && b == ns->len)
        return ALKFW_OK;
    tokenizer_nstr out = {0};
    if (tokenizer_nstr_reserve(&out, b - a) != 0 || tokenizer_nstr_append_from(&out, ns, a, b)) {
        tokenizer_nstr_free(&out);
        return nomem(err);
    }
    replace_with(ns, &out);
    return ALKFW_OK;
}

/* See tokenizer_internal.h. */
alkfw_status tokenizer_normalize(const tokenizer_normalizer *n, tokenizer_nstr *ns,
                                 alkfw_error *err)
{
    switch (n->kind) {
    case TOKENIZER_NORM_SEQUENCE:
        for (size_t i = 0; i < n->n_items; i++) {
            alkfw_status st = tokenizer_normalize(&n->items[i], ns, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    case TOKENIZER_NORM_PREPEND:
        return norm_prepend(n, ns, err);
    case TOKENIZER_NORM_REPLACE:
        return norm_replace(n, ns, err);
    case TOKENIZER_NORM_NFC:
        return norm_unicode(UTF8PROC_STABLE | UTF8PROC_COMPOSE, ns, err);
    case TOKENIZER_NORM_NFD:
        return norm_unicode(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE, ns, err);
    case TOKENIZER_NORM_NFKC:
        return norm_unicode(UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT, ns, err);
    case TOKENIZER_NORM_NFKD:
        return norm_unicode(UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT, ns, err);
    case TOKENIZER_NORM_LOWERCASE:
        return norm_lowercase(ns, err);
    case TOKENIZER_NORM_STRIP:
        return norm_strip(n, ns, err);
    }
    return error_set(err, ALKFW_ERR_INTERNAL, "normalizer: unknown kind %d", (int)n->kind);
}
