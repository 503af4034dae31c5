/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors header parser: any bytes either
 * open cleanly, with every tensor's bytes readable, or give an error; never a crash or an
 * out-of-bounds read.
 */
#include "formats/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* a private copy, so reads past the end hit the sanitizer's redzone */
    uint8_t *copy = malloc(size ? size : 1);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    safetensors_file *f = NULL;
    alkfw_error err;
    if (safetensors_open_buffer(copy, size, &f, &err) == ALKFW_OK) {
        /* touch every byte of every tensor, look every name up, read the metadata */
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < safetensors_count(f); i++) {
            const safetensors_tensor *t = safetensors_tensor_at(f, i);
            const uint8_t *p = t->data;
            for (size_t k = 0; k < t->nbytes; k++)
                sink ^= p[k];
            if (safetensors_find(f, t->name) != t)
                abort();
            if (t->numel > 0 && t->numel <= 4096 &&
                (t->dtype == SAFETENSORS_F32 || t->dtype == SAFETENSORS_F16 ||
                 t->dtype == SAFETENSORS_BF16)) {
                float buf[4096];
                if (safetensors_read_f32(t, buf, t->numel, &err) != ALKFW_OK)
                    abort();
            }
        }
        for (size_t i = 0; i < safetensors_metadata_count(f); i++) {
            const char *k, *v;
            if (safetensors_metadata_at(f, i, &k, &v) != 0 ||
                safetensors_metadata_get(f, k) == NULL)
                abort();
        }
        (void)sink;
        safetensors_close(f);
    }
    free(copy);
    return 0;
}
