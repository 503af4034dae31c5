/*
 * fuzz_codebook.c - libFuzzer target for the codebook loader: any bytes either load into a
 * codebook that validates, scores and writes back, or give an error; never a crash.
 */
#include "codebook/codebook.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    codebook *cb;
    alkfw_error err;
    if (codebook_load_buffer(data, size, "fuzz", &cb, &err) != ALKFW_OK)
        return 0;

    /* a loaded codebook must validate, score a few tokens and serialize again */
    if (codebook_validate(cb, &err) != ALKFW_OK)
        abort();
    size_t T = 3, D = (size_t)cb->n_layers * (size_t)cb->hidden;
    float *states = calloc(T * D, sizeof *states);
    if (states) {
        for (size_t i = 0; i < T * D; i++)
            states[i] = (float)((int)(i % 7) - 3);
        codebook_result res;
        if (codebook_score(cb, states, T, NULL, &res, &err) == ALKFW_OK)
            codebook_result_free(&res);
        free(states);
    }
    void *out;
    size_t len;
    if (codebook_serialize(cb, &out, &len, &err) != ALKFW_OK)
        abort();
    free(out);
    codebook_free(cb);
    return 0;
}
