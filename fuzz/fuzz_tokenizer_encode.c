/*
 * fuzz_tokenizer_encode.c - libFuzzer target: any bytes through encode and decode of the two
 * real tokenizers (byte-level SmolLM2 when its file is present, SentencePiece-style
 * stories260k). The first byte picks the tokenizer and the options; the span rules are
 * checked on every result.
 */
#include "alkfw.h"
#include "fuzz_tokenizers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_tokenizers_load("fuzz_tokenizer_encode");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    const alkfw_tokenizer *tok = fuzz_tokenizers_pick(sel);
    alkfw_encode_options opts;
    alkfw_encode_options_init(&opts);
    opts.plain_specials = (sel >> 1) & 1;
    opts.add_special_tokens = (sel >> 2) & 1;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;

    alkfw_encoding enc;
    if (alkfw_tokenizer_encode(tok, text, len, &opts, &enc, NULL) != ALKFW_OK)
        return 0;
    size_t prev = 0, vocab = alkfw_tokenizer_vocab_size(tok);
    for (size_t i = 0; i < enc.n_tokens; i++) {
        if (enc.spans[i].start > enc.spans[i].end || enc.spans[i].end > len ||
            enc.spans[i].start < prev || enc.ids[i] < 0 || (size_t)enc.ids[i] >= vocab)
            abort();
        prev = enc.spans[i].start;
    }
    char *back = NULL;
    if (alkfw_tokenizer_decode(tok, enc.ids, enc.n_tokens, (sel >> 3) & 1, &back, NULL) == ALKFW_OK)
        free(back);
    alkfw_encoding_free(&enc);
    return 0;
}
