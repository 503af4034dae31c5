/*
 * tokenizer_util.c - hash map, aligned strings, UTF-8 sanitizing, character classes and
 * search patterns shared by the tokenizer stages.
 */
#include "tokenizer/tokenizer_internal.h"

#include "common/error.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---------------------------------------------------------------------------------------- */
/* String -> id hash map                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* FNV-1a, 32 bits: short keys (tokens) dominate, so a simple byte loop is fast enough. */
static uint32_t strmap_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)key[i];
        h *= 16777619u;
    }
    return h;
}

/* Sets up an empty map sized for about `expected` keys. Returns 0, or -1 (out of memory). */
int tokenizer_strmap_init(tokenizer_strmap *m, size_t expected)
{
    memset(m, 0, sizeof *m);
    size_t n = 16;
    while (n < expected * 2)
        n <<= 1;
    m->slots = calloc(n, sizeof *m->slots);
    if (m->slots == NULL)
        return -1;
    m->n_slots = n;
    return 0;
}

/* Releases the map's memory; the map may be zeroed or initialized. */
void tokenizer_strmap_free(tokenizer_strmap *m)
{
    free(m->slots);
    free(m->entries);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

/* Doubles the slot table and reinserts every entry. Returns 0 or -1. */
static int strmap_grow(tokenizer_strmap *m)
{
    size_t n = m->n_slots * 2;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (slots == NULL)
        return -1;
    for (size_t e = 0; e < m->n_entries; e++) {
        size_t i = m->entries[e].hash & (n - 1);
        while (slots[i] != 0)
            i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)(e + 1);
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
    return 0;
}

/* Inserts key -> value, overwriting an existing value. Returns 0, or -1 (out of memory or a
 * key arena past 4 GiB). */
int tokenizer_strmap_put(tokenizer_strmap *m, const char *key, size_t len, int32_t value)
{
    uint32_t h = strmap_hash(key, len);
    size_t mask = m->n_slots - 1;
    size_t i = h & mask;
    while (m->slots[i] != 0) {
        struct tokenizer_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == len && memcmp(m->arena + e->off, key, len) == 0) {
            e->value = value;
            return 0;
        }
        i = (i + 1) & mask;
    }

    if (m->arena_len + len > UINT32_MAX || m->n_entries + 1 > UINT32_MAX / 2)
        return -1;
    if (m->n_entries == m->cap_entries) {
        size_t cap = m->cap_entries ? m->cap_entries * 2 : 64;
        void *p = realloc(m->entries, cap * sizeof *m->entries);
        if (p == NULL)
            return -1;
        m->entries = p;
        m->cap_entries = cap;
    }
    if (m->arena_len + len + 1 > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 1024;
        while (cap < m->arena_len + len + 1)
            cap *= 2;
        char *p = realloc(m->arena, cap);
        if (p == NULL)
            return -1;
        m->arena = p;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_len, key, len);
    m->arena[m->arena_len + len] = '\0';
    struct tokenizer_strmap_entry *e = &m->entries[m->n_entries];
    e->off = (uint32_t)m->arena_len;
    e->len = (uint32_t)len;
    e->hash = h;
    e->value = value;
    m->arena_len += len + 1;
    m->n_entries++;
    m->slots[i] = (uint32_t)m->n_entries;
    if (m->n_entries * 2 > m->n_slots)
        return strmap_grow(m);
    return 0;
}

/* Returns the value of key, or -1 when the key is absent. */
int32_t tokenizer_strmap_get(const tokenizer_strmap *m, const char *key, size_t len)
{
    if (m->n_slots == 0)
        return -1;
    uint32_t h = strmap_hash(key, len);
    size_t mask = m->n_slots - 1;
    size_t i = h & mask;
    while (m->slots[i] != 0) {
        const struct tokenizer_strmap_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->len == len && memcmp(m->arena + e->off, key, len) == 0)
            return e->value;
        i = (i + 1) & mask;
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* Aligned strings                                                                           */
/* ---------------------------------------------------------------------------------------- */

/* Frees the buffers of ns and zeroes it. */
void tokenizer_nstr_free(tokenizer_nstr *ns)
{
    free(ns->s);
    free(ns->a0);
    free(ns->a1);
    memset(ns, 0, sizeof *ns);
}

/* Grows ns so that `extra` more bytes fit (plus a NUL). Returns 0 or -1 (out of memory). */
int tokenizer_nstr_reserve(tokenizer_nstr *ns, size_t extra)
{
    if (ns->len + extra + 1 <= ns->cap)
        return 0;
    size_t cap = ns->cap ? ns->cap : 64;
    while (cap < ns->len + extra + 1)
        cap *= 2;
    char *s = realloc(ns->s, cap);
    if (s == NULL)
        return -1;
    ns->s = s;
    uint32_t *a0 = realloc(ns->a0, cap * sizeof *a0);
    if (a0 == NULL)
        return -1;
    ns->a0 = a0;
    uint32_t *a1 = realloc(ns->a1, cap * sizeof *a1);
    if (a1 == NULL)
        return -1;
    ns->a1 = a1;
    ns->cap = cap;
    return 0;
}

/* Appends n bytes aligned to the input span [a0, a1). Returns 0 or -1 (out of memory). */
int tokenizer_nstr_append(tokenizer_nstr *ns, const char *bytes, size_t n, uint32_t a0, uint32_t a1)
{
    if (tokenizer_nstr_reserve(ns, n) != 0)
        return -1;
    memcpy(ns->s + ns->len, bytes, n);
    for (size_t i = 0; i < n; i++) {
        ns->a0[ns->len + i] = a0;
        ns->a1[ns->len + i] = a1;
    }
    ns->len += n;
    ns->s[ns->len] = '\0';
    return 0;
}

/* Appends src bytes [from, to) with their own alignments. Returns 0 or -1. */
int tokenizer_nstr_append_from(tokenizer_nstr *ns, const tokenizer_nstr *src, size_t from,
                               size_t to)
{
    size_t n = to - from;
    if (tokenizer_nstr_reserve(ns, n) != 0)
        return -1;
    memcpy(ns->s + ns->len, src->s + from, n);
    memcpy(ns->a0 + ns->len, src->a0 + from, n * sizeof *ns->a0);
    memcpy(ns->a1 + ns->len, src->a1 + from, n * sizeof *ns->a1);
    ns->len += n;
    ns->s[ns->len] = '\0';
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* UTF-8                                                                                     */
/* ---------------------------------------------------------------------------------------- */

/* Decodes one character of valid UTF-8 at s[i]; a stray byte (never produced by sanitizing)
 * decodes as itself with length 1 so that callers always advance. */
size_t tokenizer_utf8_decode(const char *s, size_t len, size_t i, int32_t *cp)
{
    const uint8_t *u = (const uint8_t *)s;
    uint8_t c = u[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if ((c & 0xE0) == 0xC0 && i + 1 < len) {
        *cp = ((c & 0x1F) << 6) | (u[i + 1] & 0x3F);
        return 2;
    }
    if ((c & 0xF0) == 0xE0 && i + 2 < len) {
        *cp = ((c & 0x0F) << 12) | ((u[i + 1] & 0x3F) << 6) | (u[i + 2] & 0x3F);
        return 3;
    }
    if ((c & 0xF8) == 0xF0 && i + 3 < len) {
        *cp = ((c & 0x07) << 18) | ((u[i + 1] & 0x3F) << 12) | ((u[i + 2] & 0x3F) << 6) |
              (u[i + 3] & 0x3F);
        return 4;
    }
    *cp = c;
    return 1;
}

/* Encodes a code point (assumed valid) as UTF-8 into out; returns the byte count. */
size_t tokenizer_utf8_encode(int32_t cp, char *out)
{
    uint8_t *o = (uint8_t *)out;
    if (cp < 0x80) {
        o[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (uint8_t)(0xC0 | (cp >> 6));
        o[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (uint8_t)(0xE0 | (cp >> 12));
        o[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | (cp >> 18));
    o[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* The Unicode White_Space property (PropList.txt), which is what Rust's is_whitespace and
 * the \s of the Oniguruma regexes in Hugging Face tokenizers test. */
int tokenizer_is_whitespace(int32_t cp)
{
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

/* \p{L}: general categories Lu, Ll, Lt, Lm, Lo. */
int tokenizer_is_letter(int32_t cp)
{
    if (cp < 0x80)
        return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO;
}

/* \p{N}: general categories Nd, Nl, No (Rust's char::is_numeric uses the same set). */
int tokenizer_is_number(int32_t cp)
{
    if (cp < 0x80)
        return cp >= '0' && cp <= '9';
    utf8proc_category_t c = utf8proc_category(cp);
    return c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO;
}

/* Approximates Rust's char::is_alphanumeric (Alphabetic or Numeric) by letters, marks of
 * the Mc/Mn kind are not included, and numbers. LIMIT: Other_Alphabetic characters (some
 * combining vowel signs) count as not alphanumeric; this only matters for single_word
 * added tokens. */
int tokenizer_is_alnum(int32_t cp)
{
    return tokenizer_is_letter(cp) || tokenizer_is_number(cp);
}

/* Length of the maximal well-formed prefix starting at u[i] (1..4) when it is a complete
 * character, else the negative length of the maximal ill-formed subpart (at least 1). */
static int utf8_check(const uint8_t *u, size_t len, size_t i)
{
    uint8_t c = u[i];
    if (c < 0x80)
        return 1;
    int need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return -1;
    }
    for (int k = 1; k <= need; k++) {
        if (i + (size_t)k >= len)
            return -k;
        uint8_t b = u[i + (size_t)k];
        if (b < lo || b > hi)
            return -k;
        lo = 0x80;
        hi = 0xBF;
    }
    return need + 1;
}

/* See tokenizer_internal.h. */
size_t tokenizer_utf8_valid_prefix(const char *text, size_t len)
{
    const uint8_t *u = (const uint8_t *)text;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int r = utf8_check(u, len, i);
        if (r < 0)
            return i;
        i += (size_t)r;
    }
    return len;
}

/* See tokenizer_internal.h. */
int tokenizer_sanitize(const char *text, size_t len, char **out, size_t *out_len, size_t **map0,
                       size_t **map1, size_t *n_replaced)
{
    const uint8_t *u = (const uint8_t *)text;
    size_t bad = 0, extra = 0;
    for (size_t i = 0; i < len;) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        int r = utf8_check(u, len, i);
        if (r > 0) {
            i += (size_t)r;
        } else {
            bad++;
            extra += 3;
            i += (size_t)(-r);
        }
    }
    *n_replaced = bad;
    *map0 = NULL;
    *map1 = NULL;
    size_t n = bad ? len + extra : len; /* an upper bound when replacing */
    char *s = malloc(n + 1);
    if (s == NULL)
        return -1;
    if (bad == 0) {
        if (len > 0)
            memcpy(s, text, len);
        s[len] = '\0';
        *out = s;
        *out_len = len;
        return 0;
    }

    size_t *m0 = malloc((n + 1) * sizeof *m0), *m1 = malloc((n + 1) * sizeof *m1);
    if (m0 == NULL || m1 == NULL) {
        free(s);
        free(m0);
        free(m1);
        return -1;
    }
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        int r = utf8_check(u, len, i);
        if (r > 0) {
            for (int k = 0; k < r; k++) {
                s[o] = (char)u[i + (size_t)k];
                m0[o] = i + (size_t)k;
                m1[o] = i + (size_t)k + 1;
                o++;
            }
            i += (size_t)r;
        } else {
            static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
            for (int k = 0; k < 3; k++) {
                s[o] = fffd[k];
                m0[o] = i;
                m1[o] = i + (size_t)(-r);
                o++;
            }
            i += (size_t)(-r);
        }
    }
    s[o] = '\0';
    *out = s;
    *out_len = o;
    *map0 = m0;
    *map1 = m1;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* ByteLevel mapping (GPT-2's bytes_to_unicode)                                              */
/* ---------------------------------------------------------------------------------------- */

/* Printable bytes map to themselves; the other 68 bytes (0x00-0x20, 0x7F-0xA0, 0xAD) map,
 * in byte order, to U+0100, U+0101, ... U+0143. */
int32_t tokenizer_bytelevel_char(uint8_t b)
{
    if (b <= 0x20)
        return 256 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 256 + 33 + (b - 0x7F);
    if (b == 0xAD)
        return 256 + 33 + 34;
    return b;
}

/* The inverse of tokenizer_bytelevel_char: the byte a code point stands for, or -1. */
int tokenizer_bytelevel_byte(int32_t cp)
{
    if (cp < 0 || cp > 323)
        return -1;
    if (cp < 256)
        return tokenizer_bytelevel_char((uint8_t)cp) == cp ? cp : -1;
    if (cp < 256 + 33)
        return cp - 256;
    if (cp < 256 + 33 + 34)
        return 0x7F + (cp - 256 - 33);
    return 0xAD;
}

/* ---------------------------------------------------------------------------------------- */
/* Patterns                                                                                  */
/* ---------------------------------------------------------------------------------------- */

/* Compiles pattern with PCRE2 in UTF + UCP mode and JIT-compiles it when JIT is available.
 * Returns NULL with err naming `where` and the PCRE2 message on failure. */
pcre2_code *tokenizer_regex_compile(const char *pattern, size_t len, const char *where,
                                    alkfw_error *err)
{
    int code;
    PCRE2_SIZE off;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        error_set(err, ALKFW_ERR_FORMAT, "%s: regex does not compile at offset %zu: %s", where,
                  (size_t)off, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* failing JIT just means the slower path */
    return re;
}

/* Frees the pattern's storage and zeroes it. */
void tokenizer_pattern_free(tokenizer_pattern *p)
{
    free(p->literal);
    if (p->re != NULL)
        pcre2_code_free(p->re);
    memset(p, 0, sizeof *p);
}

/* See tokenizer_internal.h. Empty matches of a regex are skipped, as the Hugging Face
 * splitter drops empty pieces anyway. */
int tokenizer_pattern_find(const tokenizer_pattern *p, const char *s, size_t len, size_t from,
                           pcre2_match_data *md, size_t *ms, size_t *me)
{
    if (p->re == NULL) {
        size_t n = p->literal_len;
        if (n == 0 || len < n)
            return 0;
        for (size_t i = from; i + n <= len; i++) {
            if (s[i] == p->literal[0] && memcmp(s + i, p->literal, n) == 0) {
                *ms = i;
                *me = i + n;
                return 1;
            }
        }
        return 0;
    }
    while (from <= len) {
        int rc = pcre2_match(p->re, (PCRE2_SPTR)s, len, from, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            return 0;
        if (rc < 0)
            return -1;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        if (ov[1] > ov[0]) {
            *ms = ov[0];
            *me = ov[1];
            return 1;
        }
        /* an empty match: move one character on */
        from = ov[0] + 1;
        while (from < len && ((uint8_t)s[from] & 0xC0) == 0x80)
            from++;
    }
    return 0;
}
