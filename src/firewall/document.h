/*
 * document.h - internals of long-document and streaming screening (DESIGN §3) shared by
 * document.c and stream.c: the incremental tokenizer, the window geometry and the running
 * max-pooled alarm of a document.
 *
 * Both screeners see the text as a sequence of content tokens (the tokenizer's output without
 * the post-processor's BOS/EOS). Window k covers content tokens [k*stride, k*stride + C) cut to
 * the tokens that exist, and is screened as its own sequence: prefix (BOS) + content + suffix,
 * at most W positions. A window is the last one when it reaches the last token, so the last
 * window ends at the last token and holds more than the overlap. A document of at most W
 * tokens is one window: exactly what alkfw_screen sees.
 */
#ifndef ALKFW_FIREWALL_DOCUMENT_H
#define ALKFW_FIREWALL_DOCUMENT_H

#include "alkfw.h"
#include "codebook/codebook.h"
#include "firewall/firewall.h"

#include <stddef.h>
#include <stdint.h>

/* ---- incremental tokenizer ---------------------------------------------------------------- */

/* Final tokens kept to re-tokenize the tail with some left context. */
#define DOC_TOK_CONTEXT 4

/* A token boundary is committed only when at least this many bytes follow it. */
#define DOC_TOK_SAFE_BYTES 32

/* A tail longer than this with no boundary next to whitespace is cut at any token boundary. */
#define DOC_TOK_MAX_TAIL_BYTES 1024

/* Tokenizes a text that arrives in pieces so that the tokens equal those of tokenizing the
 * whole text at once, holding only the tail that can still change.
 *
 * The held bytes run from the start of the oldest context token to the end of what arrived.
 * Each update re-tokenizes from that context start; tokens starting before `lo` are already
 * final and only check the re-tokenization (`n_resync` counts disagreements). Tokens of the
 * tail become final once a boundary next to whitespace lies DOC_TOK_SAFE_BYTES before the end
 * (the pre-tokenizers of byte-level BPE and the word structure of SentencePiece never let a
 * token change across such a boundary). An incomplete UTF-8 sequence at the end is held back
 * until it completes (or the text ends, when it becomes U+FFFD like any invalid byte). */
typedef struct doc_tok {
    const alkfw_tokenizer *tok;
    int plain_specials;

    char *buf; /* bytes [base, base + len) of the text */
    size_t base, len, cap;
    size_t lo;     /* bytes before lo are covered by final tokens */
    size_t usable; /* end of the text the current tail covers (incomplete UTF-8 held back) */

    int32_t ctx_ids[DOC_TOK_CONTEXT]; /* the last final tokens, oldest first */
    alkfw_span ctx_spans[DOC_TOK_CONTEXT];
    size_t n_ctx;

    int32_t *tail_ids; /* the tokens of [lo, usable) that may still change */
    alkfw_span *tail_spans;
    size_t n_tail, tail_cap;

    int32_t *out_ids; /* tokens made final by the last update, for the caller to take */
    alkfw_span *out_spans;
    size_t n_out, out_cap;

    size_t n_final;          /* final tokens so far */
    size_t n_replaced_final; /* invalid UTF-8 sequences before lo */
    size_t n_special_final;  /* special-token strings among the final tokens */
    size_t n_resync;         /* re-tokenizations that disagreed with final tokens */
    int finished;
} doc_tok;

/* Prepares dt for a new text. This function can't fail. */
void doc_tok_init(doc_tok *dt, const alkfw_tokenizer *tok, int plain_specials);

/* Releases what dt holds. */
void doc_tok_free(doc_tok *dt);

/* Appends n bytes (any bytes; final = 1 marks the end of the text, n may be 0) and updates
 * the tail and the newly final tokens (out_*, replaced on every call). Errors: ALKFW_ERR_NOMEM,
 * the tokenizer's errors, ALKFW_ERR_ARGUMENT after the end. */
alkfw_status doc_tok_push(doc_tok *dt, const char *bytes, size_t n, int final, alkfw_error *err);

/* Invalid UTF-8 sequences (maximal ill-formed subparts, as the tokenizer's sanitizer counts
 * them) in [lo, usable), for the counts of a prefix. This function can't fail. */
size_t doc_tok_tail_replaced(const doc_tok *dt);

/* Special-token strings among the tail tokens. This function can't fail. */
size_t doc_tok_tail_specials(const doc_tok *dt);

/* ---- geometry ------------------------------------------------------------------------------ */

typedef struct doc_geometry {
    size_t window;  /* W positions per window, prefix and suffix included */
    size_t content; /* C content tokens per window */
    size_t stride;  /* content tokens between window starts */
    const int32_t *prefix, *suffix;
    size_t n_prefix, n_suffix;
} doc_geometry;

/* Works out the geometry for fw and opts (NULL: defaults). Errors: ALKFW_ERR_ARGUMENT naming
 * the option (window above the firewall's max tokens or too small, overlap out of range). */
alkfw_status doc_geometry_init(const alkfw_firewall *fw, const alkfw_document_options *opts,
                               doc_geometry *g, alkfw_error *err);

/* The number of windows for n content tokens: 1 when n <= C, else 1 + ceil((n - C) / stride).
 * This function can't fail. */
size_t doc_geometry_windows(const doc_geometry *g, size_t n_content);

/* Builds window k's sequence from the content tokens ids/spans [first, first + nc) into
 * seq_ids/seq_spans (room for W): prefix, content, suffix (prefix spans are empty at the
 * window's first byte, suffix spans at its last byte). Returns the sequence length. */
size_t doc_geometry_sequence(const doc_geometry *g, const int32_t *ids, const alkfw_span *spans,
                             size_t nc, int32_t *seq_ids, alkfw_span *seq_spans);

/* ---- the max-pooled alarm ------------------------------------------------------------------ */

/* One span candidate: bytes, output index, p. */
typedef struct doc_span {
    size_t start, end;
    int output;
    double p;
} doc_span;

/* What a screened window adds to a document. */
typedef struct doc_window_result {
    alkfw_window window;
    int n_outputs;
    double mean[CODEBOOK_MAX_DIRECTIONS + 1];
    double max[CODEBOOK_MAX_DIRECTIONS + 1];
    size_t argmax[CODEBOOK_MAX_DIRECTIONS + 1]; /* document token index */
    doc_span *spans;
    size_t n_spans;
} doc_window_result;

/* Summarizes a window's codebook result: res is the result of the sequence seq_spans[0..T)
 * whose content starts at document content token `first` and holds nc tokens. On success the
 * caller frees out->spans. Errors: ALKFW_ERR_NOMEM. */
alkfw_status doc_window_summarize(const alkfw_firewall *fw, const doc_geometry *g,
                                  const codebook_result *res, const alkfw_span *seq_spans,
                                  size_t first, size_t nc, doc_window_result *out,
                                  alkfw_error *err);

/* Screens one window sequence with a fresh forward (firewall_screen_window) and summarizes
 * it. Thread-safe. Errors: those of firewall_screen_window, ALKFW_ERR_NOMEM. */
alkfw_status doc_window_screen(const alkfw_firewall *fw, const doc_geometry *g,
                               const int32_t *seq_ids, const alkfw_span *seq_spans, size_t T,
                               size_t first, size_t nc, doc_window_result *out, alkfw_error *err);

/* The running document alarm: per-output max of the window means and of the window maxima,
 * the span candidates and the list of windows, in document order. */
typedef struct doc_pool {
    int n_outputs; /* 0 until the first window */
    double mean[CODEBOOK_MAX_DIRECTIONS + 1];
    double max[CODEBOOK_MAX_DIRECTIONS + 1];
    size_t argmax[CODEBOOK_MAX_DIRECTIONS + 1];
    doc_span *spans;
    size_t n_spans, spans_cap;
    alkfw_window *windows;
    size_t n_windows, windows_cap;
} doc_pool;

void doc_pool_free(doc_pool *p);

/* Copies src into dst (dst empty). Errors: ALKFW_ERR_NOMEM. */
alkfw_status doc_pool_copy(doc_pool *dst, const doc_pool *src, alkfw_error *err);

/* Folds a window (the next in document order) into p: max pooling with earlier windows
 * winning ties, its spans merged with overlapping spans of the same output, and its entry in
 * the window list. keep_spans bounds the candidates kept. Errors: ALKFW_ERR_NOMEM. */
alkfw_status doc_pool_add(doc_pool *p, const doc_window_result *w, size_t keep_spans,
                          alkfw_error *err);

/* Builds the document alarm from p: the alarm fields (level, score, thresholds, directions,
 * the top spans) and the window list, which moves from p into out (p is left without
 * windows). n_tokens, counts and elapsed are the caller's. out must be empty; on failure it
 * is left for alkfw_document_alarm_free. Errors: ALKFW_ERR_NOMEM. */
alkfw_status doc_pool_alarm(const alkfw_firewall *fw, doc_pool *p, alkfw_document_alarm *out,
                            alkfw_error *err);

/* Seconds on the monotonic clock. */
double doc_now(void);

#endif
