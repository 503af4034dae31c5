/*
 * fuzz_document_tokens.c - libFuzzer target, differential: any bytes fed in pieces through
 * the long-document tokenizer (doc_tok) must give the tokens and spans of one whole encode,
 * for the SentencePiece-style stories260k tokenizer and (when its file is present) the
 * byte-level SmolLM2 one. Byte 0 picks the tokenizer, byte 1 seeds the piece sizes (1..64).
 * Texts with a run longer than DOC_TOK_MAX_TAIL_BYTES without whitespace are cut where their
 * tokenization so far says (a documented LIMIT), so there only the span rules are checked.
 */
#include "firewall/document.h"
#include "fuzz_tokenizers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_tokenizers_load("fuzz_document_tokens");
    return 0;
}

/* 1 when text has more than DOC_TOK_MAX_TAIL_BYTES bytes in a row without whitespace. */
static int has_long_run(const uint8_t *t, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        run = t[i] == ' ' || t[i] == '\n' || t[i] == '\t' || t[i] == '\r' ? 0 : run + 1;
        if (run > DOC_TOK_MAX_TAIL_BYTES / 2)
            return 1;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const alkfw_tokenizer *tok = fuzz_tokenizers_pick(data[0]);
    uint32_t rng = data[1] * 2654435761u + 1;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;

    alkfw_encode_options eo;
    alkfw_encode_options_init(&eo);
    eo.add_special_tokens = 0;
    alkfw_encoding whole;
    if (alkfw_tokenizer_encode(tok, text, len, &eo, &whole, NULL) != ALKFW_OK)
        return 0;
    int exact = !has_long_run((const uint8_t *)text, len);

    doc_tok dt;
    doc_tok_init(&dt, tok, 0);
    size_t at = 0, got = 0, prev = 0;
    for (;;) {
        rng = rng * 1103515245u + 12345u;
        size_t n = 1 + (rng >> 16) % 64;
        if (n > len - at)
            n = len - at;
        int final = at + n == len;
        if (doc_tok_push(&dt, text + at, n, final, NULL) != ALKFW_OK)
            abort();
        at += n;
        for (size_t k = 0; k < dt.n_out; k++, got++) {
            alkfw_span s = dt.out_spans[k];
            if (s.start > s.end || s.end > len || s.start < prev)
                abort();
            prev = s.start;
            if (exact && (got >= whole.n_tokens || dt.out_ids[k] != whole.ids[got] ||
                          s.start != whole.spans[got].start || s.end != whole.spans[got].end))
                abort();
        }
        if (final)
            break;
    }
    if (exact && (got != whole.n_tokens || dt.n_replaced_final != whole.n_replaced))
        abort();
    doc_tok_free(&dt);
    alkfw_encoding_free(&whole);
    return 0;
}
