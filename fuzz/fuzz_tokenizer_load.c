/*
 * fuzz_tokenizer_load.c - libFuzzer target: mutated tokenizer.json text through the loader;
 * whatever loads must then encode and decode a few fixed strings without fault.
 */
#include "alkfw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    alkfw_tokenizer *tok = NULL;
    alkfw_error err;
    if (alkfw_tokenizer_load_buffer((const char *)data, size, &tok, &err) != ALKFW_OK)
        return 0;
    static const char *texts[] = {"", "Hello world  it's 123", "<s>a</s> \xE2\x96\x81x",
                                  "\xFF\xC3(\xE2\x82 \t\n\xF0\x9F\x99\x82"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        alkfw_encoding enc;
        if (alkfw_tokenizer_encode(tok, texts[i], strlen(texts[i]), NULL, &enc, NULL) != ALKFW_OK)
            continue;
        char *back = NULL;
        if (alkfw_tokenizer_decode(tok, enc.ids, enc.n_tokens, 0, &back, NULL) == ALKFW_OK)
            free(back);
        alkfw_encoding_free(&enc);
    }
    alkfw_tokenizer_free(tok);
    return 0;
}
