/*
 * tokenizer_bpe.c - the BPE model: initial symbols of a word (characters, ByteLevel bytes,
 * byte fallback, unknown token), then merges applied lowest rank first through a binary heap
 * over a linked list of symbols, so a word of n symbols costs O(n log n) whatever its length.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* Frees the scratch buffers. */
void tokenizer_bpe_scratch_free(tokenizer_bpe_scratch *sc)
{
    free(sc->sym);
    free(sc->heap);
    free(sc->word);
    free(sc->last_start);
    free(sc->last_end);
    memset(sc, 0, sizeof *sc);
}

/* Appends a token with its sanitized-input span. Returns 0 or -1 (out of memory). */
int tokenizer_out_push(tokenizer_out *o, int32_t id, size_t start, size_t end)
{
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 64;
        int32_t *ids = realloc(o->ids, cap * sizeof *ids);
        if (ids == NULL)
            return -1;
        o->ids = ids;
        alkfw_span *spans = realloc(o->spans, cap * sizeof *spans);
        if (spans == NULL)
            return -1;
        o->spans = spans;
        o->cap = cap;
    }
    o->ids[o->n] = id;
    o->spans[o->n].start = start;
    o->spans[o->n].end = end;
    o->n++;
    return 0;
}

static uint64_t merge_hash(uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return key;
}

/* Returns the merge of the pair (left, right), or NULL when the pair has none. */
const tokenizer_merge *tokenizer_merge_find(const alkfw_tokenizer *tok, int32_t left, int32_t right)
{
    if (tok->merge_keys == NULL)
        return NULL;
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = merge_hash(key) & tok->merges_mask;
    for (;;) {
        uint64_t k = tok->merge_keys[i];
        if (k == key)
            return &tok->merges[i];
        if (k == UINT64_MAX)
            return NULL;
        i = (i + 1) & tok->merges_mask;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Heap of candidate merges                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Entries are (rank << 32) | position, so one integer comparison orders them by rank and
 * then by position, the order in which Hugging Face applies merges of equal rank. A 4-ary
 * heap keeps the sift paths short and cache friendly for very long words. */

static void heap_push(uint64_t *h, size_t *n, uint64_t it)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (h[parent] <= it)
            break;
        h[i] = h[parent];
        i = parent;
    }
    h[i] = it;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0];
    uint64_t last = h[--(*n)];
    size_t i = 0, size = *n;
    for (;;) {
        size_t c = 4 * i + 1;
        if (c >= size)
            break;
        size_t best = c;
        size_t end = c + 4 < size ? c + 4 : size;
        for (size_t k = c + 1; k < end; k++) {
            if (h[k] < h[best])
                best = k;
        }
        if (h[best] >= last)
            break;
        h[i] = h[best];
        i = best;
    }
    if (size > 0)
        h[i] = last;
    return top;
}

/* Floyd's bottom-up construction of a heap from n unordered entries: O(n), and far kinder
 * to the cache than n pushes when a word has a million symbols. */
static void heap_build(uint64_t *h, size_t n)
{
    for (size_t i = n / 4 + 1; i-- > 0;) {
        uint64_t v = h[i];
        size_t j = i;
        for (;;) {
            size_t c = 4 * j + 1;
            if (c >= n)
                break;
            size_t best = c, end = c + 4 < n ? c + 4 : n;
            for (size_t k = c + 1; k < end; k++) {
                if (h[k] < h[best])
                    best = k;
            }
            if (h[best] >= v)
                break;
            h[j] = h[best];
            j = best;
        }
        h[j] = v;
    }
}

static uint64_t heap_item(int32_t rank, int32_t pos)
{
    return ((uint64_t)(uint32_t)rank << 32) | (uint32_t)pos;
}

/* ---------------------------------------------------------------------------------------- */
/* One word                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Makes room for n symbols and 3n heap entries (n - 1 initial pairs plus at most two new
 * pairs per merge). Returns 0 or -1. */
static int scratch_reserve(tokenizer_bpe_scratch *sc, size_t n)
{
    if (n > sc->sym_cap) {
        size_t cap = sc->sym_cap ? sc->sym_cap : 64;
        while (cap < n)
            cap *= 2;
        void *s = realloc(sc->sym, cap * sizeof *sc->sym);
        if (s == NULL)
            return -1;
        sc->sym = s;
        sc->sym_cap = cap;
    }
    if (3 * n > sc->heap_cap) {
        size_t cap = sc->heap_cap ? sc->heap_cap : 64;
        while (cap < 3 * n)
            cap *= 2;
        void *h = realloc(sc->heap, cap * sizeof *sc->heap);
        if (h == NULL)
            return -1;
        sc->heap = h;
        sc->heap_cap = cap;
    }
    return 0;
}

/* See tokenizer_internal.h. */
void tokenizer_piece_span(const tokenizer_nstr *buf, size_t a, size_t b, size_t *s, size_t *e)
{
    size_t i = a, j = b;
    while (i < b && buf->a0[i] == buf->a1[i])
        i++;
    if (i == b) {
        *s = *e = buf->a0[a];
        return;
    }
    while (j > i && buf->a0[j - 1] == buf->a1[j - 1])
        j--;
    *s = buf->a0[i];
    *e = buf->a1[j - 1];
}

/* Builds the initial symbols of the word piece [a, b): one per ByteLevel byte, or one per
 * character (its byte fallback tokens, or the unknown token, when the vocabulary lacks it).
 * Characters with no token and no fallback are dropped, as Hugging Face drops them. Returns
 * the symbol count, or -1 when out of memory. */
static long initial_symbols(const alkfw_tokenizer *tok, const tokenizer_pieces *p, size_t a,
                            size_t b, tokenizer_bpe_scratch *sc)
{
    if (scratch_reserve(sc, b - a + 1) != 0)
        return -1;
    struct tokenizer_symbol *sym = sc->sym;
    const char *s = p->buf.s;
    long n = 0;
    if (p->bytelevel) {
        for (size_t i = a; i < b; i++) {
            int32_t id = tok->byte_level_id[(uint8_t)s[i]];
            if (id < 0) {
                if (tok->unk_id < 0)
                    continue;
                if (tok->fuse_unk && n > 0 && sym[n - 1].id == tok->unk_id) {
                    sym[n - 1].end = (uint32_t)(i + 1 - a);
                    continue;
                }
                id = tok->unk_id;
            }
            sym[n++] =
                (struct tokenizer_symbol){id, -1, -1, (uint32_t)(i - a), (uint32_t)(i + 1 - a)};
        }
        return n;
    }

    int prev_unk = 0;
    for (size_t i = a; i < b;) {
        int32_t cp, id;
        size_t l;
        if ((uint8_t)s[i] < 0x80) {
            l = 1;
            id = tok->ascii_id[(uint8_t)s[i]];
        } else {
            l = tokenizer_utf8_decode(s, b, i, &cp);
            id = tokenizer_strmap_get(&tok->vocab, s + i, l);
        }
        if (id >= 0) {
            sym[n++] =
                (struct tokenizer_symbol){id, -1, -1, (uint32_t)(i - a), (uint32_t)(i + l - a)};
            prev_unk = 0;
            i += l;
            continue;
        }
        if (tok->byte_fallback) {
            int all = 1;
            for (size_t k = 0; k < l; k++)
                all &= tok->byte_fallback_id[(uint8_t)s[i + k]] >= 0;
            if (all) {
                for (size_t k = 0; k < l; k++)
                    sym[n++] =
                        (struct tokenizer_symbol){tok->byte_fallback_id[(uint8_t)s[i + k]], -1, -1,
                                                  (uint32_t)(i + k - a), (uint32_t)(i + k + 1 - a)};
                prev_unk = 0;
                i += l;
                continue;
            }
        }
        if (tok->unk_id >= 0) {
            if (tok->fuse_unk && prev_unk) {
                sym[n - 1].end = (uint32_t)(i + l - a);
            } else {
                sym[n++] = (struct tokenizer_symbol){tok->unk_id, -1, -1, (uint32_t)(i - a),
                                                     (uint32_t)(i + l - a)};
            }
            prev_unk = 1;
        }
        i += l;
    }
    return n;
}

/* See tokenizer_internal.h. */
alkfw_status tokenizer_bpe_word(const alkfw_tokenizer *tok, const tokenizer_pieces *p, size_t a,
                                size_t b, tokenizer_bpe_scratch *sc, tokenizer_out *out,
                                alkfw_error *err)
{
    if (b - a > INT32_MAX)
        return error_set(err, ALKFW_ERR_LIMIT, "tokenizer: a word of %zu bytes is too long", b - a);

    /* ignore_merges: a word that is itself a token is taken whole */
    if (tok->ignore_merges) {
        const char *word = p->buf.s + a;
        size_t wlen = b - a;
        if (p->bytelevel) {
            if (sc->word_cap < 2 * wlen) {
                char *w = realloc(sc->word, 2 * wlen);
                if (w == NULL)
                    return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
                sc->word = w;
                sc->word_cap = 2 * wlen;
            }
            size_t k = 0;
            for (size_t i = a; i < b; i++)
                k += tokenizer_utf8_encode(tokenizer_bytelevel_char((uint8_t)p->buf.s[i]),
                                           sc->word + k);
            word = sc->word;
            wlen = k;
        }
        int32_t id = tokenizer_strmap_get(&tok->vocab, word, wlen);
        if (id >= 0) {
            sc->n_last = 0;
            size_t s, e;
            tokenizer_piece_span(&p->buf, a, b, &s, &e);
            return tokenizer_out_push(out, id, s, e) == 0
                       ? ALKFW_OK
                       : error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
        }
    }

    long n = initial_symbols(tok, p, a, b, sc);
    if (n < 0)
        return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
    struct tokenizer_symbol *sym = sc->sym;
    for (long i = 0; i < n; i++) {
        sym[i].prev = (int32_t)(i - 1);
        sym[i].next = i + 1 < n ? (int32_t)(i + 1) : -1;
    }

    /* candidate merges of adjacent pairs */
    size_t hn = 0;
    for (long i = 0; i + 1 < n; i++) {
        const tokenizer_merge *m = tokenizer_merge_find(tok, sym[i].id, sym[i + 1].id);
        if (m != NULL)
            sc->heap[hn++] = heap_item(m->rank, (int32_t)i);
    }
    heap_build(sc->heap, hn);

    /* lowest rank first; an entry is stale when the pair at its position no longer merges
     * with that rank (one of its symbols changed since it was pushed) */
    while (hn > 0) {
        uint64_t top = heap_pop(sc->heap, &hn);
        int32_t rank = (int32_t)(top >> 32), pos = (int32_t)(uint32_t)top;
        struct tokenizer_symbol *l = &sym[pos];
        if (l->id < 0 || l->next < 0)
            continue;
        struct tokenizer_symbol *r = &sym[l->next];
        const tokenizer_merge *m = tokenizer_merge_find(tok, l->id, r->id);
        if (m == NULL || m->rank != rank)
            continue;

        l->id = m->id;
        l->end = r->end;
        l->next = r->next;
        if (r->next >= 0)
            sym[r->next].prev = pos;
        r->id = -1; /* removed */

        if (l->prev >= 0) {
            const tokenizer_merge *pm = tokenizer_merge_find(tok, sym[l->prev].id, l->id);
            if (pm != NULL)
                heap_push(sc->heap, &hn, heap_item(pm->rank, l->prev));
        }
        if (l->next >= 0) {
            const tokenizer_merge *nm = tokenizer_merge_find(tok, l->id, sym[l->next].id);
            if (nm != NULL)
                heap_push(sc->heap, &hn, heap_item(nm->rank, pos));
        }
    }

    sc->n_last = 0;
    if ((size_t)n > sc->last_cap) {
        uint32_t *ls = realloc(sc->last_start, (size_t)n * sizeof *ls);
        if (ls == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
        sc->last_start = ls;
        uint32_t *le = realloc(sc->last_end, (size_t)n * sizeof *le);
        if (le == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
        sc->last_end = le;
        sc->last_cap = (size_t)n;
    }
    for (long i = n > 0 ? 0 : -1; i >= 0; i = sym[i].next) {
        sc->last_start[sc->n_last] = sym[i].start;
        sc->last_end[sc->n_last++] = sym[i].end;
        size_t s, e;
        tokenizer_piece_span(&p->buf, a + sym[i].start, a + sym[i].end, &s, &e);
        if (tokenizer_out_push(out, sym[i].id, s, e) != 0)
            return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
    }
    return ALKFW_OK;
}
