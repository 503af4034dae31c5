/*
 * tokenizer_internal.h - the parts of a loaded tokenizer.json and the helpers the pipeline
 * stages share. Nothing here is public; the public surface is the tokenizer section of
 * alkfw.h.
 *
 * The encode pipeline follows Hugging Face `tokenizers`:
 *   input bytes -> valid UTF-8 (invalid sequences become U+FFFD)
 *   -> split around added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor.
 * Every byte of every intermediate string carries the span of the (sanitized) input it came
 * from, so each token ends with a byte span of the caller's input.
 */
#ifndef ALKFW_TOKENIZER_INTERNAL_H
#define ALKFW_TOKENIZER_INTERNAL_H

#include "alkfw.h"

#ifndef PCRE2_CODE_UNIT_WIDTH
#define PCRE2_CODE_UNIT_WIDTH 8
#endif
#include <pcre2.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* String -> id hash map (open addressing, keys copied into one arena)                      */
/* ---------------------------------------------------------------------------------------- */

typedef struct tokenizer_strmap {
    uint32_t *slots; /* index+1 into entries, 0 = empty */
    size_t n_slots;  /* power of two */
    struct tokenizer_strmap_entry {
        uint32_t off; /* key offset in arena */
        uint32_t len;
        uint32_t hash;
        int32_t value;
    } * entries;
    size_t n_entries, cap_entries;
    char *arena;
    size_t arena_len, arena_cap;
} tokenizer_strmap;

int tokenizer_strmap_init(tokenizer_strmap *m, size_t expected);
void tokenizer_strmap_free(tokenizer_strmap *m);
/* Inserts or overwrites key -> value. Returns 0, or -1 when out of memory. */
int tokenizer_strmap_put(tokenizer_strmap *m, const char *key, size_t len, int32_t value);
/* Returns the value stored for key, or -1 when absent. */
int32_t tokenizer_strmap_get(const tokenizer_strmap *m, const char *key, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Normalized strings: bytes plus, per byte, the input span it came from                    */
/* ---------------------------------------------------------------------------------------- */

/* s[0..len) is UTF-8. Byte i came from the input span [a0[i], a1[i]); a byte inserted by a
 * normalizer (a prepended "▁", a prefix space) has an empty span (a0 == a1). */
typedef struct tokenizer_nstr {
    char *s;
    uint32_t *a0, *a1;
    size_t len, cap;
} tokenizer_nstr;

void tokenizer_nstr_free(tokenizer_nstr *ns);
/* Ensures room for extra more bytes. Returns 0 or -1 (out of memory). */
int tokenizer_nstr_reserve(tokenizer_nstr *ns, size_t extra);
/* Appends n bytes, all aligned to [a0, a1). */
int tokenizer_nstr_append(tokenizer_nstr *ns, const char *bytes, size_t n, uint32_t a0,
                          uint32_t a1);
/* Appends src[from..to) with its alignments. */
int tokenizer_nstr_append_from(tokenizer_nstr *ns, const tokenizer_nstr *src, size_t from,
                               size_t to);

/* ---------------------------------------------------------------------------------------- */
/* UTF-8 helpers                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Decodes the character at s[i] of valid UTF-8 (as produced by sanitizing); returns its
 * length and stores the code point in *cp. */
size_t tokenizer_utf8_decode(const char *s, size_t len, size_t i, int32_t *cp);
/* Encodes cp into out (4 bytes room); returns the length. */
size_t tokenizer_utf8_encode(int32_t cp, char *out);
/* Unicode White_Space, as Rust's char::is_whitespace and Oniguruma's \s use it. */
int tokenizer_is_whitespace(int32_t cp);
/* General category letter (L*) / number (N*), as \p{L} and \p{N}. */
int tokenizer_is_letter(int32_t cp);
int tokenizer_is_number(int32_t cp);
/* Rust's char::is_alphanumeric: Alphabetic or Numeric (approximated by L*, Nl, N*). */
int tokenizer_is_alnum(int32_t cp);

/* The length of the longest prefix of text[0..len) that is valid UTF-8. */
size_t tokenizer_utf8_valid_prefix(const char *text, size_t len);

/* Replaces invalid UTF-8 in text[0..len) by U+FFFD, one per maximal ill-formed subpart (the
 * rule of Rust's from_utf8_lossy and of the WHATWG decoder). *out receives a malloc'd copy
 * (NUL-terminated) and *map, when the input was not valid, a malloc'd array of out_len + 1
 * input offsets: byte j of the output came from input bytes [map[j], map[j+1]) folded so
 * that spans map back with tokenizer_unmap_span. *map is NULL for valid input. Returns 0 or
 * -1 (out of memory); *n_replaced counts replacements. */
int tokenizer_sanitize(const char *text, size_t len, char **out, size_t *out_len, size_t **map0,
                       size_t **map1, size_t *n_replaced);

/* ---------------------------------------------------------------------------------------- */
/* Components of a tokenizer.json                                                            */
/* ---------------------------------------------------------------------------------------- */

typedef enum tokenizer_norm_kind {
    TOKENIZER_NORM_SEQUENCE,
    TOKENIZER_NORM_PREPEND,
    TOKENIZER_NORM_REPLACE,
    TOKENIZER_NORM_NFC,
    TOKENIZER_NORM_NFD,
    TOKENIZER_NORM_NFKC,
    TOKENIZER_NORM_NFKD,
    TOKENIZER_NORM_LOWERCASE,
    TOKENIZER_NORM_STRIP
} tokenizer_norm_kind;

/* A search pattern of Replace and Split: a literal string or a PCRE2 regex. */
typedef struct tokenizer_pattern {
    char *literal; /* NULL for a regex */
    size_t literal_len;
    pcre2_code *re;
} tokenizer_pattern;

typedef struct tokenizer_normalizer {
    tokenizer_norm_kind kind;
    struct tokenizer_normalizer *items; /* Sequence */
    size_t n_items;
    char *text; /* Prepend: prepend; Replace: content */
    size_t text_len;
    tokenizer_pattern pattern; /* Replace */
    int left, right;           /* Strip */
} tokenizer_normalizer;

typedef enum tokenizer_pre_kind {
    TOKENIZER_PRE_SEQUENCE,
    TOKENIZER_PRE_BYTELEVEL,
    TOKENIZER_PRE_DIGITS,
    TOKENIZER_PRE_SPLIT,
    TOKENIZER_PRE_METASPACE,
    TOKENIZER_PRE_WHITESPACE,
    TOKENIZER_PRE_WHITESPACE_SPLIT
} tokenizer_pre_kind;

typedef enum tokenizer_split_behavior {
    TOKENIZER_SPLIT_REMOVED,
    TOKENIZER_SPLIT_ISOLATED,
    TOKENIZER_SPLIT_MERGED_WITH_PREVIOUS,
    TOKENIZER_SPLIT_MERGED_WITH_NEXT,
    TOKENIZER_SPLIT_CONTIGUOUS
} tokenizer_split_behavior;

typedef enum tokenizer_prepend_scheme {
    TOKENIZER_PREPEND_ALWAYS,
    TOKENIZER_PREPEND_NEVER,
    TOKENIZER_PREPEND_FIRST
} tokenizer_prepend_scheme;

typedef struct tokenizer_pretok {
    tokenizer_pre_kind kind;
    struct tokenizer_pretok *items; /* Sequence */
    size_t n_items;
    int add_prefix_space, use_regex;   /* ByteLevel */
    int individual_digits;             /* Digits */
    tokenizer_pattern pattern;         /* Split, Whitespace */
    tokenizer_split_behavior behavior; /* Split */
    int invert;                        /* Split */
    char replacement[8];               /* Metaspace: UTF-8 of the replacement char */
    size_t replacement_len;            /* Metaspace */
    tokenizer_prepend_scheme prepend;  /* Metaspace */
    int split;                         /* Metaspace */
} tokenizer_pretok;

typedef enum tokenizer_dec_kind {
    TOKENIZER_DEC_SEQUENCE,
    TOKENIZER_DEC_BYTELEVEL,
    TOKENIZER_DEC_BYTEFALLBACK,
    TOKENIZER_DEC_FUSE,
    TOKENIZER_DEC_STRIP,
    TOKENIZER_DEC_REPLACE,
    TOKENIZER_DEC_METASPACE
} tokenizer_dec_kind;

typedef struct tokenizer_decoder {
    tokenizer_dec_kind kind;
    struct tokenizer_decoder *items;
    size_t n_items;
    tokenizer_pattern pattern; /* Replace */
    char *text;                /* Replace: content; Strip: content char */
    size_t text_len;
    int start, stop;     /* Strip */
    char replacement[8]; /* Metaspace */
    size_t replacement_len;
    int prepend_first; /* Metaspace: strip a leading space of the first token */
} tokenizer_decoder;

typedef struct tokenizer_added {
    char *content;
    size_t len;
    char *norm_content; /* content after the normalizer, for normalized tokens */
    size_t norm_len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} tokenizer_added;

/* The value of the pair -> merge table. */
typedef struct tokenizer_merge {
    int32_t rank;
    int32_t id; /* the merged token */
} tokenizer_merge;

struct alkfw_tokenizer {
    /* model: BPE */
    tokenizer_strmap vocab; /* token string -> id of the BPE model (added tokens apart) */
    char **id_to_token;     /* id -> NUL-terminated string, NULL for holes */
    size_t *id_len;
    size_t vocab_size; /* largest id + 1 */
    /* pair -> merge, open addressing: keys ((left << 32) | right, UINT64_MAX = empty) apart
     * from values so that probing touches half the memory */
    uint64_t *merge_keys;
    tokenizer_merge *merges;
    size_t merges_mask;
    size_t n_merges;
    int32_t unk_id; /* -1 when none */
    int byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_fallback_id[256]; /* id of "<0xXX>", -1 when absent */
    int32_t byte_level_id[256];    /* id of the ByteLevel character of each byte, -1 */
    int32_t ascii_id[128];         /* id of each ASCII character as a token, -1 */

    tokenizer_added *added;
    size_t n_added;
    size_t n_norm_added;  /* added tokens matched on normalized text */
    uint8_t *added_first; /* 256 flags: a non-normalized added token starts with this byte */
    uint8_t *is_special;  /* per id: 1 for a special added token */

    tokenizer_normalizer *normalizer; /* NULL when none */
    tokenizer_pretok *pretok;         /* NULL when none */
    tokenizer_decoder *decoder;       /* NULL when none: tokens joined by spaces */

    /* post-processor (TemplateProcessing single; ByteLevel; none) */
    int32_t *post_prefix, *post_suffix;
    size_t n_post_prefix, n_post_suffix;
    int post_trim_offsets; /* ByteLevel post-processor with trim_offsets */

    /* Memo of BPE results for short words, shared by all threads (see tokenizer_cache_*). */
    struct tokenizer_cache_entry *cache;
    uint32_t *cache_hash; /* per slot: the word's hash, 0 when empty */
    pthread_rwlock_t cache_lock;
    int cache_lock_ready;
};

/* ---------------------------------------------------------------------------------------- */
/* Word cache                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* BPE is a pure function of a word, so results of short words are memoized the way Hugging
 * Face's BPE cache does. The table only grows (no eviction): an encode call reads it under
 * a shared lock and adds its new words at the end when the exclusive lock is free at once,
 * so encoding never waits for another thread and results never depend on the cache. */
#define TOKENIZER_CACHE_SLOTS 65536
#define TOKENIZER_CACHE_WORD 24  /* longest word memoized, in bytes */
#define TOKENIZER_CACHE_TOKENS 8 /* most tokens a memoized word may produce */

typedef struct tokenizer_cache_entry {
    uint32_t hash;
    uint8_t len; /* word length; 0 = empty slot */
    uint8_t n;   /* token count */
    uint8_t bytelevel;
    char word[TOKENIZER_CACHE_WORD];
    int32_t ids[TOKENIZER_CACHE_TOKENS];
    uint8_t start[TOKENIZER_CACHE_TOKENS], end[TOKENIZER_CACHE_TOKENS]; /* within the word */
} tokenizer_cache_entry;

/* ---------------------------------------------------------------------------------------- */
/* Stages                                                                                    */
/* ---------------------------------------------------------------------------------------- */

/* The tables of the ByteLevel mapping: byte -> code point of its printable stand-in, and
 * code point (< 324) -> byte or -1. */
int32_t tokenizer_bytelevel_char(uint8_t b);
int tokenizer_bytelevel_byte(int32_t cp);

/* Compiles a regex with UTF + UCP. Returns NULL and fills err on failure. */
pcre2_code *tokenizer_regex_compile(const char *pattern, size_t len, const char *where,
                                    alkfw_error *err);
void tokenizer_pattern_free(tokenizer_pattern *p);
/* Finds the next match of p in s[0..len) at or after from. Returns 1 with [*ms, *me),
 * 0 when none, -1 on a matcher failure. md is scratch match data (may be NULL for
 * literals). */
int tokenizer_pattern_find(const tokenizer_pattern *p, const char *s, size_t len, size_t from,
                           pcre2_match_data *md, size_t *ms, size_t *me);

void tokenizer_normalizer_free(tokenizer_normalizer *n);
void tokenizer_pretok_free(tokenizer_pretok *p);
void tokenizer_decoder_free(tokenizer_decoder *d);

/* Applies the normalizer to ns in place. */
alkfw_status tokenizer_normalize(const tokenizer_normalizer *n, tokenizer_nstr *ns,
                                 alkfw_error *err);

/* The pieces a pre-tokenizer cuts a normalized string into: ranges of buf. When bytelevel
 * is set, every byte of buf stands for its ByteLevel character (the mapping is applied
 * lazily by the model). */
typedef struct tokenizer_pieces {
    tokenizer_nstr buf;
    size_t *start, *end;
    size_t n, cap;
    int bytelevel;
} tokenizer_pieces;

void tokenizer_pieces_free(tokenizer_pieces *p);
int tokenizer_pieces_push(tokenizer_pieces *p, size_t start, size_t end);

/* Runs the pre-tokenizer (NULL = one piece) on pieces in place. */
alkfw_status tokenizer_pretokenize(const tokenizer_pretok *pt, tokenizer_pieces *pieces,
                                   alkfw_error *err);

/* A growing list of tokens with byte spans of the sanitized input. */
typedef struct tokenizer_out {
    int32_t *ids;
    alkfw_span *spans;
    size_t n, cap;
} tokenizer_out;

int tokenizer_out_push(tokenizer_out *o, int32_t id, size_t start, size_t end);

/* Scratch space of the BPE model, reused across the words of one encode call. */
typedef struct tokenizer_bpe_scratch {
    struct tokenizer_symbol {
        int32_t id;
        int32_t prev, next;  /* -1 at the ends */
        uint32_t start, end; /* byte range within the piece */
    } * sym;
    size_t sym_cap;
    uint64_t *heap; /* candidate merges: (rank << 32) | position of the left symbol */
    size_t heap_cap;
    char *word; /* a ByteLevel word spelled in its mapped characters (ignore_merges) */
    size_t word_cap;
    /* the tokens of the last word, as byte ranges of the word */
    uint32_t *last_start, *last_end;
    size_t n_last, last_cap;
} tokenizer_bpe_scratch;

void tokenizer_bpe_scratch_free(tokenizer_bpe_scratch *sc);

/* Runs BPE on piece [start, end) of pieces->buf and appends its tokens to out. */
alkfw_status tokenizer_bpe_word(const alkfw_tokenizer *tok, const tokenizer_pieces *pieces,
                                size_t start, size_t end, tokenizer_bpe_scratch *sc,
                                tokenizer_out *out, alkfw_error *err);

/* The input span of bytes [a, b) of a piece buffer: from the first byte with a non-empty
 * span to the last one; an all-inserted range gets an empty span where it sits. */
void tokenizer_piece_span(const tokenizer_nstr *buf, size_t a, size_t b, size_t *s, size_t *e);

/* Looks up the merge of (left, right); returns NULL when none. */
const tokenizer_merge *tokenizer_merge_find(const alkfw_tokenizer *tok, int32_t left,
                                            int32_t right);

#endif
