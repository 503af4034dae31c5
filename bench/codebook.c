/*
 * codebook.c - benchmark of the codebook stage alone (module codebook): the time to turn
 * hidden states into an alarm for SmolLM2-shaped activations (4 layers of 576), at 16, 64 and
 * 256 tokens and k = 3 and 64, next to the multiply-adds of the 8-block forward pass that
 * produces those states; and the time to fit a codebook from synthetic activations.
 *
 *   bench_codebook [--fit-tokens N]   (default 4000; 0 skips the fit)
 *
 * Prints one table row per setting; timings are the median of repeated runs.
 */
#include "codebook/codebook.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HIDDEN 576
#define LAYERS 4
#define D (HIDDEN * LAYERS)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A uniform in (-1, 1) from a caller-held state (xorshift). */
static float uniform(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (float)((double)(*s >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* A random valid codebook of SmolLM2 shape with k coordinates and 2 directions. */
static codebook *random_codebook(int k, uint64_t *rng)
{
    codebook *cb;
    alkfw_error err;
    if (codebook_alloc(LAYERS, HIDDEN, k, 32, 2, &cb, &err) != ALKFW_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    const int32_t layers[LAYERS] = {1, 2, 4, 8};
    memcpy(cb->layers, layers, sizeof layers);
    for (int i = 0; i < D; i++)
        cb->norm_mean[i] = uniform(rng);
    for (int l = 0; l < LAYERS; l++)
        cb->norm_scale[l] = 1.0f + 0.5f * uniform(rng);
    for (int i = 0; i < k * D; i++)
        cb->basis[i] = uniform(rng) / sqrtf((float)D);
    for (int r = 0; r <= k; r++)
        for (int j = 0; j < 32; j++) {
            cb->knots[r * 32 + j] = -3.0f + 6.0f * j / 31.0f + (r == k ? 3.0f : 0.0f);
            cb->cdf[r * 32 + j] = (j + 0.5f) / 32.0f;
            cb->slope[r * 32 + j] = 0.16f;
        }
    for (int i = 0; i < 2 * k; i++)
        cb->dir_weight[i] = uniform(rng);
    codebook_set_string(&cb->directions[0], "injection", NULL);
    codebook_set_string(&cb->directions[1], "jailbreak", NULL);
    if (codebook_validate(cb, &err) != ALKFW_OK) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    return cb;
}

/* Multiply-adds per token of 8 SmolLM2 blocks (q,k,v,o projections and the MLP). */
static double forward_macs_per_token(void)
{
    double attn = 576.0 * 576 * 2 + 576.0 * 192 * 2, mlp = 3.0 * 576 * 1536;
    return 8 * (attn + mlp);
}

static void bench_score(void)
{
    uint64_t rng = 0x243f6a8885a308d3ull;
    printf("| k | tokens | codebook time per screen (ms) | per token (us) | codebook MACs / "
           "forward MACs |\n|---|---|---|---|---|\n");
    const int ks[] = {3, 64};
    const size_t Ts[] = {16, 64, 256};
    for (int ki = 0; ki < 2; ki++) {
        codebook *cb = random_codebook(ks[ki], &rng);
        for (int ti = 0; ti < 3; ti++) {
            size_t T = Ts[ti];
            float *states = malloc(T * D * sizeof *states);
            for (size_t i = 0; i < T * D; i++)
                states[i] = 2.0f * uniform(&rng);
            enum { RUNS = 41 };
            double t[RUNS];
            for (int r = 0; r < RUNS; r++) {
                codebook_result res;
                double t0 = now_ms();
                if (codebook_score(cb, states, T, NULL, &res, NULL) != ALKFW_OK)
                    exit(1);
                t[r] = now_ms() - t0;
                codebook_result_free(&res);
            }
            qsort(t, RUNS, sizeof *t, cmp_double);
            double ratio = (double)ks[ki] * D / forward_macs_per_token();
            printf("| %d | %zu | %.4f | %.2f | %.4f%% |\n", ks[ki], T, t[RUNS / 2],
                   t[RUNS / 2] * 1e3 / (double)T, 100.0 * ratio);
            free(states);
        }
        codebook_free(cb);
    }
}

/* Fits a codebook to n_tokens synthetic tokens (texts of 20) and reports the time. */
static void bench_fit(size_t n_tokens)
{
    uint64_t rng = 0x13198a2e03707344ull;
    size_t n_texts = n_tokens / 20;
    float *acts = malloc(n_tokens * D * sizeof *acts);
    size_t *start = malloc(n_texts * sizeof *start), *len = malloc(n_texts * sizeof *len);
    int *label = malloc(n_texts * sizeof *label), *is_val = malloc(n_texts * sizeof *is_val);
    for (size_t i = 0; i < n_texts; i++) {
        start[i] = i * 20;
        len[i] = 20;
        label[i] = i % 4 == 0 ? 0 : -1;
        is_val[i] = i % 5 == 0;
        for (size_t t = 0; t < 20; t++)
            for (int j = 0; j < D; j++)
                acts[(i * 20 + t) * D + j] =
                    uniform(&rng) * (1.0f + (j % 7)) + (label[i] == 0 && j < 50 ? 1.0f : 0.0f);
    }
    codebook_fit_input in = {LAYERS, HIDDEN, n_texts * 20, acts,   n_texts,
                             start,  len,    label,        is_val, NULL};
    codebook_fit_options o;
    codebook_fit_options_init(&o);
    const int32_t layers[LAYERS] = {1, 2, 4, 8};
    const char *dirs[1] = {"injection"};
    o.layers = layers;
    o.directions = dirs;
    o.n_dirs = 1;
    codebook *cb;
    alkfw_error err;
    double t0 = now_ms();
    if (codebook_fit(&in, &o, &cb, &err) != ALKFW_OK) {
        fprintf(stderr, "fit: %s\n", err.message);
        exit(1);
    }
    printf("\n| fit: tokens | D | k | seconds |\n|---|---|---|---|\n| %zu | %d | %d | %.2f |\n",
           n_texts * 20, D, o.k, (now_ms() - t0) / 1e3);
    codebook_free(cb);
    free(acts);
    free(start);
    free(len);
    free(label);
    free(is_val);
}

int main(int argc, char **argv)
{
    size_t fit_tokens = 4000;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--fit-tokens") == 0)
            fit_tokens = (size_t)strtoull(argv[i + 1], NULL, 10);
    bench_score();
    if (fit_tokens >= 20)
        bench_fit(fit_tokens);
    return 0;
}
