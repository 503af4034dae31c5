/*
 * fuzz_model_config.c - libFuzzer target for the config.json parser: any bytes give a config
 * whose sizes are consistent, or an error; never a crash.
 */
#include "model/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    model_config c;
    alkfw_error err;
    if (model_config_parse(copy, size, &c, &err) == ALKFW_OK) {
        /* what the loader relies on */
        if (c.hidden_size < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 ||
            c.n_heads % c.n_kv_heads != 0 || c.head_dim < 2 || c.head_dim % 2 != 0 ||
            c.vocab_size < 1 || c.max_positions < 1 || !(c.rope_theta > 0) || !(c.rms_norm_eps > 0))
            abort();
    }
    free(copy);
    return 0;
}
