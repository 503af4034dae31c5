/*
 * test_fixture_models.c - hidden states of the small random models in
 * tests/fixtures/models/ (made by tools/gen_model_fixtures.py) agree with their PyTorch
 * reference: GQA ratios 1 and 3, MQA, untied embeddings, Qwen2 and Llama biases, F16 and
 * BF16 weights, explicit head_dim, sharded weights, odd sizes, llama3 and linear RoPE scaling.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

#define FIXTURES ALKFW_SOURCE_DIR "/tests/fixtures/models"

/* Runs the model in FIXTURES/name at every index on the reference input and compares with
 * expected.safetensors at |diff| <= 1e-4 * max(1, |ref|); also forwards the input in two
 * pieces through a session. Checks the architecture name is arch (when not NULL) and returns
 * the model's info through *info_out (its architecture pointer is not valid afterwards). */
static void check_model(const char *name, alkfw_backend backend, const char *arch,
                        alkfw_model_info *info_out)
{
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/%s", FIXTURES, name);
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    alkfw_model_options opts;
    alkfw_model_options_init(&opts);
    opts.backend = backend;
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    if (alkfw_model_open(dir, &opts, &m, &err) != ALKFW_OK)
        fail_msg("%s: %s", name, err.message);
    alkfw_model_info info;
    alkfw_model_get_info(m, &info);
    if (arch != NULL)
        assert_string_equal(info.architecture, arch);
    if (info_out)
        *info_out = info;

    safetensors_file *exp = NULL;
    assert_int_equal(safetensors_open(path, &exp, &err), ALKFW_OK);
    const safetensors_tensor *ids_t = safetensors_find(exp, "input_ids");
    assert_non_null(ids_t);
    size_t T = ids_t->numel, H = (size_t)info.hidden_size;
    int32_t *ids = malloc(T * sizeof *ids);
    memcpy(ids, ids_t->data, T * sizeof *ids);
    int n_idx = info.n_layers + 1;
    int *indices = malloc((size_t)n_idx * sizeof *indices);
    for (int i = 0; i < n_idx; i++)
        indices[i] = i;
    float *out = malloc((size_t)n_idx * T * H * sizeof(float));
    float *want = malloc(T * H * sizeof(float));
    assert_int_equal(alkfw_model_hidden(m, ids, T, indices, (size_t)n_idx, out, &err), ALKFW_OK);

    double worst = 0;
    for (int i = 0; i < n_idx; i++) {
        char tname[32];
        snprintf(tname, sizeof tname, "hidden.%d", i);
        const safetensors_tensor *t = safetensors_find(exp, tname);
        assert_non_null(t);
        assert_int_equal(safetensors_read_f32(t, want, T * H, &err), ALKFW_OK);
        for (size_t k = 0; k < T * H; k++) {
            double ref = want[k], got = out[(size_t)i * T * H + k];
            double scaled = fabs(got - ref) / fmax(1.0, fabs(ref));
            if (!(scaled <= 1e-4))
                fail_msg("%s index %d position %zu dim %zu: got %.7g, reference %.7g", name, i,
                         k / H, k % H, got, ref);
            worst = fmax(worst, scaled);
        }
    }
    print_message("%s: largest scaled difference %.2e\n", name, worst);

    /* the same through a session fed in two pieces */
    model_session *s = NULL;
    assert_int_equal(model_session_new(m, T, info.n_layers, &s, &err), ALKFW_OK);
    size_t cut = T / 3;
    float *piece = malloc((size_t)n_idx * T * H * sizeof(float));
    assert_int_equal(model_session_forward(s, ids, cut, indices, (size_t)n_idx, piece, &err),
                     ALKFW_OK);
    assert_int_equal(
        model_session_forward(s, ids + cut, T - cut, indices, (size_t)n_idx, piece, &err),
        ALKFW_OK);
    for (int i = 0; i < n_idx; i++) {
        for (size_t k = 0; k < (T - cut) * H; k++) {
            float w = out[(size_t)i * T * H + cut * H + k];
            float p = piece[(size_t)i * (T - cut) * H + k];
            if (fabsf(w - p) > 3e-5f * fmaxf(1.0f, fabsf(w)))
                fail_msg("%s: piece differs at index %d element %zu: %g vs %g", name, i, k, p, w);
        }
    }
    model_session_free(s);
    free(piece);
    free(ids);
    free(indices);
    free(out);
    free(want);
    safetensors_close(exp);
    alkfw_model_free(m);
}

static void llama_gqa_ratio_1_f32_matches_reference(void **state)
{
    (void)state;
    alkfw_model_info info;
    check_model("llama_gqa1_f32", ALKFW_BACKEND_AUTO, NULL, &info);
    assert_int_equal(info.n_heads, info.n_kv_heads);
}

static void llama_gqa_ratio_3_bf16_untied_matches_reference(void **state)
{
    (void)state;
    alkfw_model_info info;
    check_model("llama_gqa3_bf16_untied", ALKFW_BACKEND_AUTO, NULL, &info);
    assert_int_equal(info.n_heads, 3 * info.n_kv_heads);
    assert_false(info.tied_embeddings);
}

static void llama_mqa_f16_explicit_head_dim_matches_reference(void **state)
{
    (void)state;
    alkfw_model_info info;
    check_model("llama_mqa_f16_headdim", ALKFW_BACKEND_AUTO, NULL, &info);
    assert_int_equal(info.n_kv_heads, 1);
    assert_int_equal(info.head_dim, 20);
    assert_int_not_equal(info.head_dim * info.n_heads, info.hidden_size);
}

static void qwen2_qkv_biases_match_reference(void **state)
{
    (void)state;
    alkfw_model_info info;
    check_model("qwen2_bias", ALKFW_BACKEND_AUTO, "Qwen2ForCausalLM", &info);
    assert_int_equal(info.n_kv_heads, 2);
}

static void mistral_sharded_odd_sizes_match_reference(void **state)
{
    (void)state;
    alkfw_model_info info;
    check_model("mistral_sharded_odd", ALKFW_BACKEND_AUTO, "MistralForCausalLM", &info);
    assert_int_equal(info.hidden_size, 30);
}

static void llama_attention_and_mlp_biases_match_reference(void **state)
{
    (void)state;
    check_model("llama_biases_f32", ALKFW_BACKEND_AUTO, NULL, NULL);
}

static void llama3_rope_scaling_matches_reference(void **state)
{
    (void)state;
    /* 300 positions: angles up to 300 rad test the float32 RoPE tables, and the wavelengths
     * straddle all three bands of the llama3 rule (kept, smoothed, divided) */
    check_model("llama_rope_llama3", ALKFW_BACKEND_AUTO, NULL, NULL);
}

static void linear_rope_scaling_matches_reference(void **state)
{
    (void)state;
    check_model("llama_rope_linear", ALKFW_BACKEND_AUTO, NULL, NULL);
}

static void portable_c_backend_matches_reference(void **state)
{
    (void)state;
    check_model("llama_gqa3_bf16_untied", ALKFW_BACKEND_C, NULL, NULL);
    check_model("mistral_sharded_odd", ALKFW_BACKEND_C, NULL, NULL);
    check_model("llama_mqa_f16_headdim", ALKFW_BACKEND_C, NULL, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(llama_gqa_ratio_1_f32_matches_reference),
        cmocka_unit_test(llama_gqa_ratio_3_bf16_untied_matches_reference),
        cmocka_unit_test(llama_mqa_f16_explicit_head_dim_matches_reference),
        cmocka_unit_test(qwen2_qkv_biases_match_reference),
        cmocka_unit_test(mistral_sharded_odd_sizes_match_reference),
        cmocka_unit_test(llama_attention_and_mlp_biases_match_reference),
        cmocka_unit_test(llama3_rope_scaling_matches_reference),
        cmocka_unit_test(linear_rope_scaling_matches_reference),
        cmocka_unit_test(portable_c_backend_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
