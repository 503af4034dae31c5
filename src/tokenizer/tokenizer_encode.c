/*
 * tokenizer_encode.c - the encode pipeline: sanitize the input, split it around added
 * tokens, normalize, pre-tokenize, run BPE on every piece, apply the post-processor, and
 * map every token's span back to the caller's bytes.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>

/* See alkfw.h. */
void alkfw_encode_options_init(alkfw_encode_options *opts)
{
    if (opts == NULL)
        return;
    opts->add_special_tokens = 1;
    opts->plain_specials = 0;
}

/* See alkfw.h. */
void alkfw_encoding_free(alkfw_encoding *enc)
{
    if (enc == NULL)
        return;
    free(enc->ids);
    free(enc->spans);
    memset(enc, 0, sizeof *enc);
}

/* See alkfw.h. */
size_t alkfw_tokenizer_vocab_size(const alkfw_tokenizer *tok)
{
    return tok ? tok->vocab_size : 0;
}

/* Returns the id of a token string (added tokens first, then the model vocabulary), or -1.
 */
int32_t alkfw_tokenizer_token_id(const alkfw_tokenizer *tok, const char *token, size_t len)
{
    if (tok == NULL || token == NULL)
        return -1;
    for (size_t i = 0; i < tok->n_added; i++) {
        if (tok->added[i].len == len && memcmp(tok->added[i].content, token, len) == 0)
            return tok->added[i].id;
    }
    return tokenizer_strmap_get(&tok->vocab, token, len);
}

/* Returns the string of token id (not NUL-terminated; its length in *len), or NULL when the
 * id has no token. */
const char *alkfw_tokenizer_token_string(const alkfw_tokenizer *tok, int32_t id, size_t *len)
{
    if (tok == NULL || id < 0 || (size_t)id >= tok->vocab_size || tok->id_to_token[id] == NULL)
        return NULL;
    if (len != NULL)
        *len = tok->id_len[id];
    return tok->id_to_token[id];
}

/* Returns 1 when id is a special added token. */
int alkfw_tokenizer_is_special(const alkfw_tokenizer *tok, int32_t id)
{
    return tok != NULL && id >= 0 && (size_t)id < tok->vocab_size && tok->is_special[id];
}

/* ---------------------------------------------------------------------------------------- */
/* Added tokens                                                                              */
/* ---------------------------------------------------------------------------------------- */

/* The state of one encode call. */
typedef struct encode_ctx {
    const alkfw_tokenizer *tok;
    const alkfw_encode_options *opts;
    const char *s; /* sanitized input */
    size_t len;
    tokenizer_out out;
    tokenizer_bpe_scratch scratch;
    size_t n_special;
    int cache_read;                 /* holding the cache's shared lock */
    tokenizer_cache_entry *pending; /* words to add to the cache at the end */
    size_t n_pending, cap_pending;
} encode_ctx;

/* ---------------------------------------------------------------------------------------- */
/* Word cache                                                                                */
/* ---------------------------------------------------------------------------------------- */

#define CACHE_PROBES 8
#define CACHE_PENDING_MAX 4096

static uint32_t word_hash(const char *w, size_t n, int bytelevel)
{
    uint32_t h = 2166136261u ^ (uint32_t)bytelevel;
    for (size_t i = 0; i < n; i++) {
        h ^= (uint8_t)w[i];
        h *= 16777619u;
    }
    return h | 1; /* never 0, the mark of an empty slot in cache_hash */
}

/* The memoized entry of a word, or NULL. Called with the shared lock held. */
static const tokenizer_cache_entry *cache_find(const alkfw_tokenizer *tok, const char *w, size_t n,
                                               int bytelevel, uint32_t h)
{
    /* the hashes sit in their own small array, so a miss rarely touches the entries */
    for (size_t k = 0; k < CACHE_PROBES; k++) {
        size_t slot = (h + k) & (TOKENIZER_CACHE_SLOTS - 1);
        uint32_t sh = tok->cache_hash[slot];
        if (sh == 0)
            return NULL;
        if (sh != h)
            continue;
        const tokenizer_cache_entry *e = &tok->cache[slot];
        if (e->len == n && e->bytelevel == bytelevel && memcmp(e->word, w, n) == 0)
            return e;
    }
    return NULL;
}

/* Remembers the tokens (ids) the BPE just produced for word w, to add to the cache at the end
 * of the call. Silently skips when the word or its tokens do not fit an entry. */
static void cache_note(encode_ctx *c, const char *w, size_t n, int bytelevel, uint32_t h,
                       const int32_t *ids)
{
    const tokenizer_bpe_scratch *sc = &c->scratch;
    if (sc->n_last == 0 || sc->n_last > TOKENIZER_CACHE_TOKENS || c->n_pending >= CACHE_PENDING_MAX)
        return;
    if (c->n_pending == c->cap_pending) {
        size_t cap = c->cap_pending ? c->cap_pending * 2 : 64;
        tokenizer_cache_entry *p = realloc(c->pending, cap * sizeof *p);
        if (p == NULL)
            return;
        c->pending = p;
        c->cap_pending = cap;
    }
    tokenizer_cache_entry *e = &c->pending[c->n_pending++];
    memset(e, 0, sizeof *e);
    e->hash = h;
    e->len = (uint8_t)n;
    e->n = (uint8_t)sc->n_last;
    e->bytelevel = (uint8_t)bytelevel;
    memcpy(e->word, w, n);
    for (size_t i = 0; i < sc->n_last; i++) {
        e->ids[i] = ids[i];
        e->start[i] = (uint8_t)sc->last_start[i];
        e->end[i] = (uint8_t)sc->last_end[i];
    }
}

/* Adds the pending words when the exclusive lock is free right now; otherwise drops them. */
static void cache_flush(encode_ctx *c)
{
    alkfw_tokenizer *tok = (alkfw_tokenizer *)c->tok; /* the cache is the one mutable part */
    if (c->n_pending == 0 || pthread_rwlock_trywrlock(&tok->cache_lock) != 0)
        return;
    for (size_t i = 0; i < c->n_pending; i++) {
        const tokenizer_cache_entry *p = &c->pending[i];
        for (size_t k = 0; k < CACHE_PROBES; k++) {
            size_t slot = (p->hash + k) & (TOKENIZER_CACHE_SLOTS - 1);
            tokenizer_cache_entry *e = &tok->cache[slot];
            if (tok->cache_hash[slot] == 0) {
                *e = *p;
                tok->cache_hash[slot] = p->hash;
                break;
            }
            if (e->hash == p->hash && e->len == p->len && e->bytelevel == p->bytelevel &&
                memcmp(e->word, p->word, p->len) == 0)
                break;
        }
    }
    pthread_rwlock_unlock(&tok->cache_lock);
}

/* The character ending right before s[i] (i > 0) and its start. */
static int32_t char_before(const char *s, size_t i, size_t *start)
{
    size_t k = i - 1;
    while (k > 0 && ((uint8_t)s[k] & 0xC0) == 0x80)
        k--;
    int32_t cp;
    tokenizer_utf8_decode(s, i, k, &cp);
    *start = k;
    return cp;
}

/* Finds the leftmost-longest added token in s[from..len) that may match here (normalized
 * selects the pass: tokens matched on normalized text or on the raw text). On a match returns
 * its index with [*ms, *me) already widened by lstrip/rstrip; -1 when none. floor is the
 * lowest offset lstrip may reach (the end of the previous match). */
static long find_added(const encode_ctx *c, const char *s, size_t len, size_t from, size_t floor,
                       int normalized, size_t *ms, size_t *me)
{
    const alkfw_tokenizer *tok = c->tok;
    if (normalized && tok->n_norm_added == 0)
        return -1;
    for (size_t i = from; i < len; i++) {
        if (!normalized && !tok->added_first[(uint8_t)s[i]])
            continue;
        long best = -1;
        size_t best_len = 0;
        for (size_t k = 0; k < tok->n_added; k++) {
            const tokenizer_added *t = &tok->added[k];
            int t_norm = t->normalized && tok->normalizer != NULL;
            if (t_norm != normalized || (t->special && c->opts->plain_specials))
                continue;
            const char *content = t_norm ? t->norm_content : t->content;
            size_t n = t_norm ? t->norm_len : t->len;
            if (n > best_len && n <= len - i && memcmp(s + i, content, n) == 0) {
                best = (long)k;
                best_len = n;
            }
        }
        if (best < 0)
            continue;

        const tokenizer_added *t = &tok->added[best];
        size_t a = i, b = i + best_len;
        if (t->single_word) {
            size_t st;
            int32_t cp;
            if (a > 0 && tokenizer_is_alnum(char_before(s, a, &st)))
                continue;
            if (b < len) {
                tokenizer_utf8_decode(s, len, b, &cp);
                if (tokenizer_is_alnum(cp))
                    continue;
            }
        }
        if (t->lstrip) {
            while (a > floor) {
                size_t st;
                if (!tokenizer_is_whitespace(char_before(s, a, &st)))
                    break;
                a = st;
            }
        }
        if (t->rstrip) {
            while (b < len) {
                int32_t cp;
                size_t l = tokenizer_utf8_decode(s, len, b, &cp);
                if (!tokenizer_is_whitespace(cp))
                    break;
                b += l;
            }
        }
        *ms = a;
        *me = b;
        return best;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Text segments                                                                             */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status nomem(alkfw_error *err)
{
    return error_set(err, ALKFW_ERR_NOMEM, "tokenizer: out of memory");
}

/* Pre-tokenizes ns[a, b) and runs the model on every piece. When [a, b) is all of ns, its
 * buffers move into the pieces and ns is left empty. */
static alkfw_status encode_pieces(encode_ctx *c, tokenizer_nstr *ns, size_t a, size_t b,
                                  alkfw_error *err)
{
    if (b <= a)
        return ALKFW_OK;
    tokenizer_pieces p = {0};
    int fail;
    if (a == 0 && b == ns->len) {
        /* the whole string: take its buffers instead of copying them */
        p.buf = *ns;
        memset(ns, 0, sizeof *ns);
        fail = tokenizer_pieces_push(&p, 0, b);
    } else {
        fail = tokenizer_nstr_append_from(&p.buf, ns, a, b) != 0 ||
               tokenizer_pieces_push(&p, 0, b - a) != 0;
    }
    if (fail) {
        tokenizer_pieces_free(&p);
        return nomem(err);
    }
    alkfw_status st = tokenizer_pretokenize(c->tok->pretok, &p, err);
    for (size_t k = 0; st == ALKFW_OK && k < p.n; k++) {
        size_t ws = p.start[k], wn = p.end[k] - p.start[k];
        const char *w = p.buf.s + ws;
        int cacheable = c->cache_read && wn <= TOKENIZER_CACHE_WORD;
        uint32_t h = cacheable ? word_hash(w, wn, p.bytelevel) : 0;
        const tokenizer_cache_entry *e =
            cacheable ? cache_find(c->tok, w, wn, p.bytelevel, h) : NULL;
        if (e != NULL) {
            for (size_t i = 0; i < e->n && st == ALKFW_OK; i++) {
                size_t s0, e0;
                tokenizer_piece_span(&p.buf, ws + e->start[i], ws + e->end[i], &s0, &e0);
                if (tokenizer_out_push(&c->out, e->ids[i], s0, e0) != 0)
                    st = nomem(err);
            }
            continue;
        }
        size_t before = c->out.n;
        st = tokenizer_bpe_word(c->tok, &p, ws, p.end[k], &c->scratch, &c->out, err);
        if (st == ALKFW_OK && cacheable && c->scratch.n_last > 0 &&
            c->out.n - before == c->scratch.n_last)
            cache_note(c, w, wn, p.bytelevel, h, c->out.ids + before);
    }
    tokenizer_pieces_free(&p);
    return st;
}

/* Normalizes the input segment [a, b), splits it around normalized added tokens and encodes
 * the rest. */
static alkfw_status encode_segment(encode_ctx *c, size_t a, size_t b, alkfw_error *err)
{
    tokenizer_nstr ns = {0};
    if (tokenizer_nstr_reserve(&ns, b - a) != 0)
        return nomem(err);
    memcpy(ns.s, c->s + a, b - a);
    for (size_t i = a; i < b; i++) {
        ns.a0[i - a] = (uint32_t)i;
        ns.a1[i - a] = (uint32_t)(i + 1);
    }
    ns.len = b - a;
    ns.s[ns.len] = '\0';

    alkfw_status st = ALKFW_OK;
    if (c->tok->normalizer != NULL)
        st = tokenizer_normalize(c->tok->normalizer, &ns, err);

    size_t pos = 0, ms, me;
    long k;
    while (st == ALKFW_OK && (k = find_added(c, ns.s, ns.len, pos, pos, 1, &ms, &me)) >= 0) {
        st = encode_pieces(c, &ns, pos, ms, err);
        if (st != ALKFW_OK)
            break;
        size_t s0 = ns.a0[ms], e0 = ns.a1[me - 1];
        if (tokenizer_out_push(&c->out, c->tok->added[k].id, s0, e0 > s0 ? e0 : s0) != 0)
            st = nomem(err);
        c->n_special += (size_t)c->tok->added[k].special;
        pos = me;
    }
    if (st == ALKFW_OK)
        st = encode_pieces(c, &ns, pos, ns.len, err);
    tokenizer_nstr_free(&ns);
    return st;
}

/* Maps a span of the sanitized text back to the caller's bytes. */
static alkfw_span unmap_span(alkfw_span sp, const size_t *m0, const size_t *m1, size_t slen,
                             size_t raw_len)
{
    if (m0 == NULL)
        return sp;
    alkfw_span r;
    if (sp.end > sp.start) {
        r.start = m0[sp.start];
        r.end = m1[sp.end - 1];
    } else {
        r.start = r.end = sp.start < slen ? m0[sp.start] : raw_len;
    }
    return r;
}

/* See alkfw.h. Offsets are exact byte spans: a byte-level token covers exactly the input
 * bytes it encodes (even part of a character); a token made from normalized text covers
 * the input bytes its characters came from. */
alkfw_status alkfw_tokenizer_encode(const alkfw_tokenizer *tok, const char *text, size_t len,
                                    const alkfw_encode_options *opts, alkfw_encoding *out,
                                    alkfw_error *err)
{
    if (out != NULL)
        memset(out, 0, sizeof *out);
    if (tok == NULL || out == NULL || (text == NULL && len > 0))
        return error_set(err, ALKFW_ERR_ARGUMENT, "tokenizer encode: NULL argument");
    /* sanitizing can triple the length; alignments are 32-bit */
    if (len > (size_t)UINT32_MAX / 4)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "tokenizer encode: input of %zu bytes is over "
                         "the 1 GiB limit",
                         len);
    alkfw_encode_options defaults;
    alkfw_encode_options_init(&defaults);
    encode_ctx c = {0};
    c.tok = tok;
    c.opts = opts ? opts : &defaults;

    char *s;
    size_t slen, *m0, *m1, n_replaced;
    if (tokenizer_sanitize(text ? text : "", len, &s, &slen, &m0, &m1, &n_replaced) != 0)
        return nomem(err);
    c.s = s;
    c.len = slen;
    if (tok->cache != NULL && pthread_rwlock_rdlock((pthread_rwlock_t *)&tok->cache_lock) == 0)
        c.cache_read = 1;

    /* BOS and other template tokens in front */
    alkfw_status st = ALKFW_OK;
    if (c.opts->add_special_tokens) {
        for (size_t i = 0; i < tok->n_post_prefix && st == ALKFW_OK; i++) {
            if (tokenizer_out_push(&c.out, tok->post_prefix[i], 0, 0) != 0)
                st = nomem(err);
        }
    }
    size_t first_text = c.out.n;

    /* added tokens matched on the raw text split it into segments */
    size_t pos = 0, ms, me;
    long k;
    while (st == ALKFW_OK && (k = find_added(&c, s, slen, pos, pos, 0, &ms, &me)) >= 0) {
        if (ms > pos)
            st = encode_segment(&c, pos, ms, err);
        if (st != ALKFW_OK)
            break;
        if (tokenizer_out_push(&c.out, tok->added[k].id, ms, me) != 0)
            st = nomem(err);
        c.n_special += (size_t)tok->added[k].special;
        pos = me;
    }
    if (st == ALKFW_OK && pos < slen)
        st = encode_segment(&c, pos, slen, err);

    size_t last_text = c.out.n;
    if (st == ALKFW_OK && c.opts->add_special_tokens) {
        for (size_t i = 0; i < tok->n_post_suffix && st == ALKFW_OK; i++) {
            if (tokenizer_out_push(&c.out, tok->post_suffix[i], slen, slen) != 0)
                st = nomem(err);
        }
    }

    if (st == ALKFW_OK) {
        for (size_t i = first_text; i < last_text; i++) {
            alkfw_span *sp = &c.out.spans[i];
            if (tok->post_trim_offsets) {
                while (sp->start < sp->end && s[sp->start] == ' ')
                    sp->start++;
                while (sp->end > sp->start && s[sp->end - 1] == ' ')
                    sp->end--;
            }
            *sp = unmap_span(*sp, m0, m1, slen, len);
        }
        for (size_t i = last_text; i < c.out.n; i++)
            c.out.spans[i].start = c.out.spans[i].end = len;
        if (c.out.n == 0 && (c.out.ids = malloc(sizeof *c.out.ids)) == NULL)
            st = nomem(err);
        if (st == ALKFW_OK && c.out.n == 0 && (c.out.spans = malloc(sizeof *c.out.spans)) == NULL)
            st = nomem(err);
    }
    if (c.cache_read) {
        pthread_rwlock_unlock((pthread_rwlock_t *)&tok->cache_lock);
        if (st == ALKFW_OK)
            cache_flush(&c);
    }
    free(c.pending);
    free(s);
    free(m0);
    free(m1);
    tokenizer_bpe_scratch_free(&c.scratch);
    if (st != ALKFW_OK) {
        free(c.out.ids);
        free(c.out.spans);
        return st;
    }
    out->n_tokens = c.out.n;
    out->ids = c.out.ids;
    out->spans = c.out.spans;
    out->n_special_in_text = c.n_special;
    out->n_replaced = n_replaced;
    return ALKFW_OK;
}
