/*
 * fuzz_tokenizers.h - the two real tokenizers the tokenizer fuzz targets run: the
 * SentencePiece-style stories260k one (always bundled) and the byte-level SmolLM2 one (when its
 * file is present). Include in one target source only: it holds the loaded tokenizers.
 */
#ifndef ALKFW_FUZZ_TOKENIZERS_H
#define ALKFW_FUZZ_TOKENIZERS_H

#include "alkfw.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* [0] stories260k, [1] SmolLM2 or NULL. */
static alkfw_tokenizer *fuzz_toks[2];

/* Loads both tokenizers from LLVMFuzzerInitialize; aborts, naming target, without stories260k. */
static inline void fuzz_tokenizers_load(const char *target)
{
    alkfw_tokenizer_load(ALKFW_SOURCE_DIR "/models/stories260k/tokenizer.json", &fuzz_toks[0],
                         NULL);
    alkfw_tokenizer_load(ALKFW_SHARED_DIR "/models/smollm2-135m/tokenizer.json", &fuzz_toks[1],
                         NULL);
    if (fuzz_toks[0] == NULL) {
        fprintf(stderr, "%s: cannot load stories260k/tokenizer.json\n", target);
        abort();
    }
}

/* The tokenizer the low bit of sel picks; stories260k when SmolLM2 is absent. */
static inline const alkfw_tokenizer *fuzz_tokenizers_pick(uint8_t sel)
{
    return fuzz_toks[sel & 1] ? fuzz_toks[sel & 1] : fuzz_toks[0];
}

#endif
