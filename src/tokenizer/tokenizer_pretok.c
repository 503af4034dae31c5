/*
 * tokenizer_pretok.c - the pre-tokenizers of tokenizer.json: Sequence, ByteLevel, Digits,
 * Split, Metaspace, Whitespace and WhitespaceSplit. Each cuts the pieces of a normalized
 * string into smaller pieces (ranges of one aligned buffer) or rewrites the buffer.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* Frees what a pre-tokenizer node owns, children included, but not the node itself. */
static void pretok_clear(tokenizer_pretok *p)
{
    for (size_t i = 0; i < p->n_items; i++)
        pretok_clear(&p->items[i]);
    free(p->items);
    tokenizer_pattern_free(&p->pattern);
}

/* Frees a pre-tokenizer tree, the node itself included. NULL does nothing. */
void tokenizer_pretok_free(tokenizer_pretok *p)
{
    if (p == NULL)
        return;
    pretok_clear(p);
    free(p);
}

/* Frees the buffer and the ranges of p and zeroes it. */
void tokenizer_pieces_free(tokenizer_pieces *p)
{
    tokenizer_nstr_free(&p->buf);
    free(p->start);
    free(p->end);
    memset(p, 0, sizeof *p);
}

/* Appends the range [start, end) of p->buf; empty ranges are dropped, as Hugging Face drops
 * empty splits. Returns 0 or -1 (out of memory). */
int tokenizer_pieces_push(tokenizer_pieces *p, size_t start, size_t end)
{
    if (end <= start)
        return 0;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        size_t *s = realloc(p->start, cap * sizeof *s);
        if (s == NULL)
            return -1;
        p->start = s;
        size_t *e = realloc(p->end, cap * sizeof *e);
        if (e == NULL)
            return -1;
        p->end = e;
        p->cap = cap;
    }
    p->start[p->n] = start;
    p->end[p->n] = end;
    p->n++;
    return 0;
}

static alkfw_status nomem(alkfw_error *err)
{
    return error_set(err, ALKFW_ERR_NOMEM, "pre-tokenizer: out of memory");
}

/* ---------------------------------------------------------------------------------------- */
/* Splitting with a delimiter behavior                                                       */
/* ---------------------------------------------------------------------------------------- */

/* A run of a piece: either a delimiter match or the text between matches. */
typedef struct split_run {
    size_t s, e;
    int is_match;
} split_run;

typedef struct split_runs {
    split_run *v;
    size_t n, cap;
} split_runs;

static int runs_push(split_runs *r, size_t s, size_t e, int is_match)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        split_run *v = realloc(r->v, cap * sizeof *v);
        if (v == NULL)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = (split_run){s, e, is_match};
    return 0;
}

/* Turns the runs of one piece into pieces of out following behavior, with the exact
 * folding rules of Hugging Face's SplitDelimiterBehavior. Runs are rewritten in place. */
static int runs_emit(split_runs *r, tokenizer_split_behavior behavior, tokenizer_pieces *out)
{
    size_t n = r->n, k = 0;
    int prev = 0;
    switch (behavior) {
    case TOKENIZER_SPLIT_REMOVED:
        for (size_t i = 0; i < n; i++) {
            if (!r->v[i].is_match && tokenizer_pieces_push(out, r->v[i].s, r->v[i].e) != 0)
                return -1;
        }
        return 0;
    case TOKENIZER_SPLIT_ISOLATED:
        break;
    case TOKENIZER_SPLIT_MERGED_WITH_PREVIOUS:
        for (size_t i = 0; i < n; i++) {
            int m = r->v[i].is_match;
            if (m && !prev && k > 0)
                r->v[k - 1].e = r->v[i].e;
            else
                r->v[k++] = r->v[i];
            prev = m;
        }
        n = k;
        break;
    case TOKENIZER_SPLIT_MERGED_WITH_NEXT:
        /* fold from the right, then the kept runs are r->v[k..n) in order */
        k = n;
        for (size_t i = n; i-- > 0;) {
            int m = r->v[i].is_match;
            split_run cur = r->v[i];
            if (m && !prev && k < n)
                r->v[k].s = cur.s;
            else
                r->v[--k] = cur;
            prev = m;
        }
        for (size_t i = k; i < n; i++) {
            if (tokenizer_pieces_push(out, r->v[i].s, r->v[i].e) != 0)
                return -1;
        }
        return 0;
    case TOKENIZER_SPLIT_CONTIGUOUS:
        for (size_t i = 0; i < n; i++) {
            int m = r->v[i].is_match;
            if (m == prev && k > 0)
                r->v[k - 1].e = r->v[i].e;
            else
                r->v[k++] = r->v[i];
            prev = m;
        }
        n = k;
        break;
    }
    for (size_t i = 0; i < n; i++) {
        if (tokenizer_pieces_push(out, r->v[i].s, r->v[i].e) != 0)
            return -1;
    }
    return 0;
}

/* The delimiters a pre-tokenizer looks for in a piece. */
typedef enum split_by { BY_PATTERN, BY_NUMERIC_CHAR, BY_WHITESPACE_CHAR, BY_LITERAL } split_by;

/* Splits every piece of p by the delimiters `by` finds, following behavior (inverted when
 * invert is set: the delimiters become the kept text). */
static alkfw_status split_pieces(tokenizer_pieces *p, split_by by, const tokenizer_pattern *pat,
                                 tokenizer_split_behavior behavior, int invert, alkfw_error *err)
{
    tokenizer_pieces out = {0};
    split_runs runs = {0};
    pcre2_match_data *md = NULL;
    alkfw_status st = ALKFW_OK;
    if (by == BY_PATTERN && pat->re != NULL) {
        md = pcre2_match_data_create_from_pattern(pat->re, NULL);
        if (md == NULL)
            return nomem(err);
    }

    const char *s = p->buf.s;
    for (size_t k = 0; k < p->n; k++) {
        size_t a = p->start[k], b = p->end[k], prev = a;
        runs.n = 0;
        if (by == BY_PATTERN || by == BY_LITERAL) {
            size_t ms, me, from = 0;
            int found;
            while ((found = tokenizer_pattern_find(pat, s + a, b - a, from, md, &ms, &me)) == 1) {
                if ((a + ms > prev && runs_push(&runs, prev, a + ms, 0) != 0) ||
                    runs_push(&runs, a + ms, a + me, 1) != 0) {
                    st = nomem(err);
                    goto done;
                }
                prev = a + me;
                from = me;
            }
            if (found < 0) {
                st = error_set(err, ALKFW_ERR_LIMIT, "pre-tokenizer Split: regex matcher failed");
                goto done;
            }
        } else {
            for (size_t i = a; i < b;) {
                int32_t cp;
                size_t l;
                if ((uint8_t)s[i] < 0x80) {
                    cp = (uint8_t)s[i];
                    l = 1;
                    if (by == BY_NUMERIC_CHAR ? (cp < '0' || cp > '9')
                                              : !(cp == ' ' || (cp >= 0x09 && cp <= 0x0D))) {
                        i++;
                        continue;
                    }
                } else {
                    l = tokenizer_utf8_decode(s, b, i, &cp);
                }
                int hit =
                    by == BY_NUMERIC_CHAR ? tokenizer_is_number(cp) : tokenizer_is_whitespace(cp);
                if (hit) {
                    if ((i > prev && runs_push(&runs, prev, i, 0) != 0) ||
                        runs_push(&runs, i, i + l, 1) != 0) {
                        st = nomem(err);
                        goto done;
                    }
                    prev = i + l;
                }
                i += l;
            }
        }
        if (prev < b && runs_push(&runs, prev, b, 0) != 0) {
            st = nomem(err);
            goto done;
        }
        if (invert) {
            for (size_t i = 0; i < runs.n; i++)
                runs.v[i].is_match = !runs.v[i].is_match;
        }
        if (runs_emit(&runs, behavior, &out) != 0) {
            st = nomem(err);
            goto done;
        }
    }
    free(p->start);
    free(p->end);
    p->start = out.start;
    p->end = out.end;
    p->n = out.n;
    p->cap = out.cap;
    out.start = out.end = NULL;
done:
    free(out.start);
    free(out.end);
    free(runs.v);
    if (md != NULL)
        pcre2_match_data_free(md);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* ByteLevel                                                                                 */
/* ---------------------------------------------------------------------------------------- */

enum { CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER };

/* The class of every ASCII character, for the common case. */
static int ascii_class(int32_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return CLS_LETTER;
    if (c >= '0' && c <= '9')
        return CLS_NUMBER;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D))
        return CLS_SPACE;
    return CLS_OTHER;
}

static int char_class(int32_t cp)
{
    if (cp < 0x80)
        return ascii_class(cp);
    if (tokenizer_is_whitespace(cp))
        return CLS_SPACE;
    if (tokenizer_is_letter(cp))
        return CLS_LETTER;
    if (tokenizer_is_number(cp))
        return CLS_NUMBER;
    return CLS_OTHER;
}

/* Decodes one character, with ASCII taken directly. */
static inline size_t decode_fast(const char *s, size_t e, size_t i, int32_t *cp)
{
    if ((uint8_t)s[i] < 0x80) {
        *cp = (uint8_t)s[i];
        return 1;
    }
    return tokenizer_utf8_decode(s, e, i, cp);
}

/* The end of the match of GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * that starts at s[i] (i < e), evaluated by hand: the alternatives in order, with the
 * lookahead resolved by giving the last whitespace character back. */
static size_t gpt2_match(const char *s, size_t i, size_t e)
{
    if (s[i] == '\'' && i + 1 < e) {
        char c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd')
            return i + 2;
        if (i + 2 < e && ((c == 'r' && s[i + 2] == 'e') || (c == 'v' && s[i + 2] == 'e') ||
                          (c == 'l' && s[i + 2] == 'l')))
            return i + 3;
    }

    int32_t cp;
    size_t j = i;
    if (s[i] == ' ' && i + 1 < e) {
        decode_fast(s, e, i + 1, &cp);
        if (char_class(cp) != CLS_SPACE)
            j = i + 1; /* the optional space, followed by a letter, number or other */
    }
    size_t l = decode_fast(s, e, j, &cp);
    int cls = char_class(cp);
    if (cls != CLS_SPACE) {
        j += l;
        while (j < e) {
            l = decode_fast(s, e, j, &cp);
            if (char_class(cp) != cls)
                break;
            j += l;
        }
        return j;
    }

    /* whitespace run [i, j); keep the last character for the next match when a non-space
     * follows and the run has more than one character */
    size_t last = i;
    j = i;
    while (j < e) {
        l = decode_fast(s, e, j, &cp);
        if (!tokenizer_is_whitespace(cp))
            break;
        last = j;
        j += l;
    }
    if (j < e && last > i)
        return last;
    return j;
}

/* Cuts every piece with the GPT-2 pattern (ByteLevel's use_regex). */
static alkfw_status split_gpt2(tokenizer_pieces *p, alkfw_error *err)
{
    tokenizer_pieces out = {0};
    for (size_t k = 0; k < p->n; k++) {
        size_t a = p->start[k], b = p->end[k];
        while (a < b) {
            size_t m = gpt2_match(p->buf.s, a, b);
            if (tokenizer_pieces_push(&out, a, m) != 0) {
                free(out.start);
                free(out.end);
                return nomem(err);
            }
            a = m;
        }
    }
    free(p->start);
    free(p->end);
    p->start = out.start;
    p->end = out.end;
    p->n = out.n;
    p->cap = out.cap;
    return ALKFW_OK;
}

/* Rewrites the buffer piece by piece: `edit` appends the new form of one piece to out.buf
 * and the new ranges replace the old. */
typedef int (*piece_edit)(const tokenizer_pretok *pt, const tokenizer_pieces *in, size_t k,
                          tokenizer_nstr *buf, uint32_t seg_start);

static alkfw_status rewrite_pieces(const tokenizer_pretok *pt, tokenizer_pieces *p, piece_edit edit,
                                   uint32_t seg_start, alkfw_error *err)
{
    tokenizer_pieces out = {0};
    if (tokenizer_nstr_reserve(&out.buf, p->buf.len + p->n + 8) != 0)
        return nomem(err);
    for (size_t k = 0; k < p->n; k++) {
        size_t from = out.buf.len;
        if (edit(pt, p, k, &out.buf, seg_start) != 0 ||
            tokenizer_pieces_push(&out, from, out.buf.len) != 0) {
            tokenizer_pieces_free(&out);
            return nomem(err);
        }
    }
    out.bytelevel = 0;
    tokenizer_pieces_free(p);
    *p = out;
    return ALKFW_OK;
}

/* ByteLevel add_prefix_space: a space in front of a piece that does not start with one. */
static int edit_prefix_space(const tokenizer_pretok *pt, const tokenizer_pieces *in, size_t k,
                             tokenizer_nstr *buf, uint32_t seg_start)
{
    (void)pt;
    (void)seg_start;
    size_t a = in->start[k], b = in->end[k];
    if (in->buf.s[a] != ' ' && tokenizer_nstr_append(buf, " ", 1, in->buf.a0[a], in->buf.a0[a]))
        return -1;
    return tokenizer_nstr_append_from(buf, &in->buf, a, b);
}

/* Applies the ByteLevel byte -> character mapping for real (needed when another
 * pre-tokenizer follows ByteLevel and must see the mapped characters). */
static int edit_bytelevel_map(const tokenizer_pretok *pt, const tokenizer_pieces *in, size_t k,
                              tokenizer_nstr *buf, uint32_t seg_start)
{
    (void)pt;
    (void)seg_start;
    for (size_t i = in->start[k]; i < in->end[k]; i++) {
        char enc[4];
        size_t n = tokenizer_utf8_encode(tokenizer_bytelevel_char((uint8_t)in->buf.s[i]), enc);
        if (tokenizer_nstr_append(buf, enc, n, in->buf.a0[i], in->buf.a1[i]) != 0)
            return -1;
    }
    return 0;
}

/* Metaspace: spaces become the replacement character, which is also prepended following
 * the prepend scheme ("first": only to a piece at the start of its text segment). */
static int edit_metaspace(const tokenizer_pretok *pt, const tokenizer_pieces *in, size_t k,
                          tokenizer_nstr *buf, uint32_t seg_start)
{
    size_t a = in->start[k], b = in->end[k];
    int starts_with = (b - a >= pt->replacement_len &&
                       memcmp(in->buf.s + a, pt->replacement, pt->replacement_len) == 0) ||
                      in->buf.s[a] == ' ';
    int prepend = 0;
    if (pt->prepend == TOKENIZER_PREPEND_ALWAYS)
        prepend = !starts_with;
    else if (pt->prepend == TOKENIZER_PREPEND_FIRST)
        prepend = !starts_with && in->buf.a0[a] == seg_start;
    if (prepend && tokenizer_nstr_append(buf, pt->replacement, pt->replacement_len, in->buf.a0[a],
                                         in->buf.a0[a]) != 0)
        return -1;
    for (size_t i = a; i < b; i++) {
        int fail = in->buf.s[i] == ' '
                       ? tokenizer_nstr_append(buf, pt->replacement, pt->replacement_len,
                                               in->buf.a0[i], in->buf.a1[i])
                       : tokenizer_nstr_append_from(buf, &in->buf, i, i + 1);
        if (fail)
            return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Entry point                                                                               */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status pretok_run(const tokenizer_pretok *pt, tokenizer_pieces *p, uint32_t seg_start,
                               alkfw_error *err)
{
    alkfw_status st;
    if (p->bytelevel && pt->kind != TOKENIZER_PRE_SEQUENCE) {
        /* a stage after ByteLevel sees the mapped characters */
        st = rewrite_pieces(pt, p, edit_bytelevel_map, seg_start, err);
        if (st != ALKFW_OK)
            return st;
    }

    switch (pt->kind) {
    case TOKENIZER_PRE_SEQUENCE:
        for (size_t i = 0; i < pt->n_items; i++) {
            st = pretok_run(&pt->items[i], p, seg_start, err);
            if (st != ALKFW_OK)
                return st;
        }
        return ALKFW_OK;
    case TOKENIZER_PRE_BYTELEVEL:
        if (pt->add_prefix_space) {
            st = rewrite_pieces(pt, p, edit_prefix_space, seg_start, err);
            if (st != ALKFW_OK)
                return st;
        }
        if (pt->use_regex) {
            st = split_gpt2(p, err);
            if (st != ALKFW_OK)
                return st;
        }
        p->bytelevel = 1;
        return ALKFW_OK;
    case TOKENIZER_PRE_DIGITS:
        return split_pieces(
            p, BY_NUMERIC_CHAR, NULL,
            pt->individual_digits ? TOKENIZER_SPLIT_ISOLATED : TOKENIZER_SPLIT_CONTIGUOUS, 0, err);
    case TOKENIZER_PRE_SPLIT:
        return split_pieces(p, pt->pattern.re ? BY_PATTERN : BY_LITERAL, &pt->pattern, pt->behavior,
                            pt->invert, err);
    case TOKENIZER_PRE_WHITESPACE:
        /* \w+|[^\w\s]+ kept, everything else removed */
        return split_pieces(p, BY_PATTERN, &pt->pattern, TOKENIZER_SPLIT_REMOVED, 1, err);
    case TOKENIZER_PRE_WHITESPACE_SPLIT:
        return split_pieces(p, BY_WHITESPACE_CHAR, NULL, TOKENIZER_SPLIT_REMOVED, 0, err);
    case TOKENIZER_PRE_METASPACE: {
        st = rewrite_pieces(pt, p, edit_metaspace, seg_start, err);
        if (st != ALKFW_OK || !pt->split)
            return st;
        tokenizer_pattern lit = {0};
        lit.literal = (char *)pt->replacement;
        lit.literal_len = pt->replacement_len;
        return split_pieces(p, BY_LITERAL, &lit, TOKENIZER_SPLIT_MERGED_WITH_NEXT, 0, err);
    }
    }
    return error_set(err, ALKFW_ERR_INTERNAL, "pre-tokenizer: unknown kind %d", (int)pt->kind);
}

/* See tokenizer_internal.h. The first byte's input offset of the first piece is taken as
 * the start of the text segment (Metaspace's "first" scheme compares against it). */
alkfw_status tokenizer_pretokenize(const tokenizer_pretok *pt, tokenizer_pieces *pieces,
                                   alkfw_error *err)
{
    if (pt == NULL || pieces->n == 0)
        return ALKFW_OK;
    uint32_t seg_start = pieces->buf.len > 0 ? pieces->buf.a0[0] : 0;
    return pretok_run(pt, pieces, seg_start, err);
}
