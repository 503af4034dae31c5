/*
 * test_model_errors.c - malformed or unsupported configs and weights are errors that name the
 * problem: bad JSON, missing or absurd keys, unsupported options, missing tensors, tensors of
 * the wrong shape or dtype, truncated weight files.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>

#include "model/model.h"

#define STORIES ALKFW_SOURCE_DIR "/models/stories260k"

/* A valid Llama config to derive broken ones from. */
static const char *base_config =
    "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":64,"
    "\"intermediate_size\":172,\"num_attention_heads\":8,\"num_key_value_heads\":4,"
    "\"num_hidden_layers\":5,\"vocab_size\":512,\"max_position_embeddings\":512,"
    "\"rms_norm_eps\":1e-05,\"rope_theta\":10000.0,\"tie_word_embeddings\":true}";

/* Returns base_config with the keys of the JSON object members in extra ("\"k\":v,...")
 * set, replacing the base value of a key given again. The caller frees the text. */
static char *config_with(const char *extra)
{
    char obj[1024];
    snprintf(obj, sizeof obj, "{%s}", extra);
    cJSON *base = cJSON_Parse(base_config), *add = cJSON_Parse(obj);
    assert_non_null(base);
    assert_non_null(add);
    for (cJSON *e = add->child; e != NULL; e = e->next) {
        cJSON *copy = cJSON_Duplicate(e, 1);
        if (cJSON_GetObjectItemCaseSensitive(base, e->string) != NULL)
            cJSON_ReplaceItemInObjectCaseSensitive(base, e->string, copy);
        else
            cJSON_AddItemToObject(base, e->string, copy);
    }
    char *text = cJSON_PrintUnformatted(base);
    cJSON_Delete(base);
    cJSON_Delete(add);
    return text;
}

/* Parses the base config with extra keys set (or, when extra starts with '{' or '[' or is
 * empty, extra itself); expects status and a message containing needle. */
static void expect_config(const char *extra, alkfw_status status, const char *needle)
{
    char *text;
    if (extra[0] == '{' || extra[0] == '[' || extra[0] == '\0')
        text = strdup(extra);
    else
        text = config_with(extra);
    model_config c;
    alkfw_error err = {0};
    assert_int_equal(model_config_parse(text, strlen(text), &c, &err), status);
    if (status != ALKFW_OK && strstr(err.message, needle) == NULL)
        fail_msg("message '%s' does not contain '%s'", err.message, needle);
    free(text);
}

static void config_accepts_valid_llama(void **state)
{
    (void)state;
    model_config c;
    assert_int_equal(model_config_parse(base_config, strlen(base_config), &c, NULL), ALKFW_OK);
    assert_int_equal(c.head_dim, 8);
    assert_int_equal(c.arch, MODEL_ARCH_LLAMA);
    assert_false(c.qkv_bias);
}

static void config_non_json_is_error(void **state)
{
    (void)state;
    expect_config("{\"hidden_size\": 64,", ALKFW_ERR_FORMAT, "not valid JSON");
    expect_config("[1]", ALKFW_ERR_FORMAT, "not a JSON object");
    expect_config("", ALKFW_ERR_FORMAT, "not valid JSON");
}

static void config_duplicate_key_is_error(void **state)
{
    (void)state;
    expect_config("{\"model_type\":\"llama\",\"hidden_size\":8,\"hidden_size\":16}",
                  ALKFW_ERR_FORMAT, "duplicate key hidden_size");
}

static void config_missing_key_is_named(void **state)
{
    (void)state;
    expect_config("{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"num_attention_heads\":2,"
                  "\"intermediate_size\":8,\"vocab_size\":8}",
                  ALKFW_ERR_FORMAT, "missing required key hidden_size");
    expect_config("{\"hidden_size\":8}", ALKFW_ERR_FORMAT, "missing model_type");
}

static void config_negative_or_absurd_sizes_are_errors(void **state)
{
    (void)state;
    expect_config("\"hidden_size\":-64", ALKFW_ERR_FORMAT, "hidden_size = -64 is out of range");
    expect_config("\"num_hidden_layers\":1e9", ALKFW_ERR_FORMAT, "num_hidden_layers");
    expect_config("\"vocab_size\":0", ALKFW_ERR_FORMAT, "vocab_size = 0");
    expect_config("\"intermediate_size\":1.5", ALKFW_ERR_FORMAT,
                  "intermediate_size is not an integer");
    expect_config("\"num_attention_heads\":\"8\"", ALKFW_ERR_FORMAT, "num_attention_heads");
    expect_config("\"rope_theta\":-1", ALKFW_ERR_FORMAT, "rope_theta");
    expect_config("\"rms_norm_eps\":0", ALKFW_ERR_FORMAT, "rms_norm_eps");
    expect_config("\"max_position_embeddings\":99999999999", ALKFW_ERR_FORMAT,
                  "max_position_embeddings");
}

static void config_inconsistent_heads_are_errors(void **state)
{
    (void)state;
    expect_config("\"num_key_value_heads\":3", ALKFW_ERR_FORMAT,
                  "num_attention_heads 8 is not a multiple of num_key_value_heads 3");
    expect_config("\"num_attention_heads\":7", ALKFW_ERR_FORMAT, "no head_dim");
    expect_config("\"head_dim\":7", ALKFW_ERR_FORMAT, "head_dim 7 is odd");
}

static void config_unsupported_options_name_the_key(void **state)
{
    (void)state;
    expect_config("\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":8.0}", ALKFW_ERR_UNSUPPORTED,
                  "rope_scaling type 'yarn'");
    expect_config("\"rope_scaling\":{\"type\":\"dynamic\",\"factor\":2.0}", ALKFW_ERR_UNSUPPORTED,
                  "rope_scaling type 'dynamic'");
    expect_config("\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}", ALKFW_ERR_FORMAT,
                  "llama3 needs factor, low_freq_factor");
    expect_config("\"rope_scaling\":{\"type\":\"linear\",\"factor\":-2}", ALKFW_ERR_FORMAT,
                  "rope_scaling: factor is not a positive number");
    expect_config("\"rope_scaling\":{\"factor\":2}", ALKFW_ERR_FORMAT,
                  "rope_scaling has no rope_type");
    expect_config("\"hidden_act\":\"gelu\"", ALKFW_ERR_UNSUPPORTED, "hidden_act");
    expect_config("\"rope_interleaved\":true", ALKFW_ERR_UNSUPPORTED, "rope_interleaved");
    expect_config("\"partial_rotary_factor\":0.5", ALKFW_ERR_UNSUPPORTED, "partial_rotary_factor");
    expect_config("\"sliding_window\":128", ALKFW_ERR_UNSUPPORTED, "sliding_window = 128");
    expect_config("{\"model_type\":\"mistral\",\"hidden_size\":8,\"num_hidden_layers\":1,"
                  "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":8}",
                  ALKFW_ERR_UNSUPPORTED, "sliding_window");
    expect_config("{\"model_type\":\"qwen2\",\"hidden_size\":8,\"num_hidden_layers\":1,"
                  "\"num_attention_heads\":2,\"intermediate_size\":8,\"vocab_size\":8,"
                  "\"use_sliding_window\":true}",
                  ALKFW_ERR_UNSUPPORTED, "use_sliding_window");
    expect_config("{\"model_type\":\"gpt2\",\"hidden_size\":8}", ALKFW_ERR_UNSUPPORTED,
                  "model_type 'gpt2'");
    expect_config("{\"architectures\":[\"PhiForCausalLM\"],\"hidden_size\":8}",
                  ALKFW_ERR_UNSUPPORTED, "PhiForCausalLM");
    /* accepted: unscaled RoPE spelled out, a window as long as the positions */
    expect_config("\"rope_scaling\":{\"rope_type\":\"default\"},\"sliding_window\":512", ALKFW_OK,
                  "");
}

/* ---- weights ---------------------------------------------------------------------------- */

static char tmp[256];

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof tmp, "/tmp/alkfw_test_model_XXXXXX");
    return mkdtemp(tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void write_config(const char *dir, const char *extra)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char *text = config_with(extra);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(text);
}

/* Writes DIR/model.safetensors with stories260k's tensors, leaving out the tensor called
 * drop and giving the tensor called retype dtype I32 (both may be NULL). */
static void write_weights(const char *dir, const char *drop, const char *retype)
{
    safetensors_file *src = NULL;
    assert_int_equal(safetensors_open(STORIES "/model.safetensors", &src, NULL), ALKFW_OK);
    size_t n = safetensors_count(src), k = 0;
    safetensors_write_tensor *w = calloc(n, sizeof *w);
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = safetensors_tensor_at(src, i);
        if (drop != NULL && strcmp(t->name, drop) == 0)
            continue;
        w[k] = (safetensors_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
        if (retype != NULL && strcmp(t->name, retype) == 0)
            w[k].dtype = SAFETENSORS_I32;
        k++;
    }
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(safetensors_write(path, w, k, NULL, NULL, 0, NULL), ALKFW_OK);
    free(w);
    safetensors_close(src);
}

/* Makes a fresh model directory under tmp. */
static void make_dir(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "%s/%s", tmp, name);
    assert_int_equal(mkdir(dir, 0755), 0);
}

static void expect_open(const char *dir, alkfw_status status, const char *needle)
{
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    assert_int_equal(alkfw_model_open(dir, NULL, &m, &err), status);
    assert_null(m);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message '%s' does not contain '%s'", err.message, needle);
}

static void rewritten_weights_still_open(void **state)
{
    (void)state;
    char dir[400];
    make_dir(dir, sizeof dir, "ok");
    write_config(dir, "");
    write_weights(dir, NULL, NULL);
    alkfw_model *m = NULL;
    alkfw_error err = {0};
    assert_int_equal(alkfw_model_open(dir, NULL, &m, &err), ALKFW_OK);
    alkfw_model_free(m);
}

/* Checkpoints saved from the bare decoder (LlamaModel) lack the "model." prefix. */
static void weights_without_model_prefix_load_and_agree(void **state)
{
    (void)state;
    char dir[400], path[512];
    make_dir(dir, sizeof dir, "noprefix");
    write_config(dir, "");
    safetensors_file *src = NULL;
    assert_int_equal(safetensors_open(STORIES "/model.safetensors", &src, NULL), ALKFW_OK);
    size_t n = safetensors_count(src);
    safetensors_write_tensor *w = calloc(n, sizeof *w);
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = safetensors_tensor_at(src, i);
        const char *name = strncmp(t->name, "model.", 6) == 0 ? t->name + 6 : t->name;
        w[i] = (safetensors_write_tensor){name, t->dtype, t->ndim, t->shape, t->data};
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(safetensors_write(path, w, n, NULL, NULL, 0, NULL), ALKFW_OK);
    free(w);
    safetensors_close(src);

    alkfw_model *a = NULL, *b = NULL;
    alkfw_error err = {0};
    assert_int_equal(alkfw_model_open(dir, NULL, &a, &err), ALKFW_OK);
    assert_int_equal(alkfw_model_open(STORIES, NULL, &b, &err), ALKFW_OK);
    int32_t ids[4] = {1, 403, 407, 261};
    int idx[2] = {2, 5};
    float oa[2 * 4 * 64], ob[2 * 4 * 64];
    assert_int_equal(alkfw_model_hidden(a, ids, 4, idx, 2, oa, &err), ALKFW_OK);
    assert_int_equal(alkfw_model_hidden(b, ids, 4, idx, 2, ob, &err), ALKFW_OK);
    for (size_t i = 0; i < sizeof oa / sizeof oa[0]; i++)
        assert_true(fabsf(oa[i] - ob[i]) <= 1e-6f * fmaxf(1.0f, fabsf(ob[i])));
    alkfw_model_free(a);
    alkfw_model_free(b);
}

/* NaN weights reach the exponential of softmax and SiLU without undefined behaviour (UBSan
 * checks the float to int conversion) and the states they touch come out NaN, not finite. */
static void nan_weights_give_nan_states_without_undefined_behaviour(void **state)
{
    (void)state;
    static const char *const poisoned[] = {"model.layers.0.self_attn.q_proj.weight",
                                           "model.layers.1.mlp.gate_proj.weight"};
    for (int k = 0; k < 2; k++) {
        char dir[400], path[512];
        make_dir(dir, sizeof dir, k == 0 ? "nan_attention" : "nan_mlp");
        write_config(dir, "");
        safetensors_file *src = NULL;
        assert_int_equal(safetensors_open(STORIES "/model.safetensors", &src, NULL), ALKFW_OK);
        size_t n = safetensors_count(src);
        safetensors_write_tensor *w = calloc(n, sizeof *w);
        float *nans = NULL;
        for (size_t i = 0; i < n; i++) {
            const safetensors_tensor *t = safetensors_tensor_at(src, i);
            w[i] = (safetensors_write_tensor){t->name, t->dtype, t->ndim, t->shape, t->data};
            if (strcmp(t->name, poisoned[k]) == 0) {
                assert_int_equal(t->dtype, SAFETENSORS_F32);
                nans = malloc(t->nbytes);
                for (size_t j = 0; j < t->numel; j++)
                    nans[j] = NAN;
                w[i].data = nans;
            }
        }
        assert_non_null(nans);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        assert_int_equal(safetensors_write(path, w, n, NULL, NULL, 0, NULL), ALKFW_OK);
        free(w);
        free(nans);
        safetensors_close(src);

        alkfw_model *m = NULL;
        alkfw_error err = {0};
        assert_int_equal(alkfw_model_open(dir, NULL, &m, &err), ALKFW_OK);
        int32_t ids[4] = {1, 403, 407, 261};
        int idx[2] = {0, 5};
        float out[2 * 4 * 64];
        assert_int_equal(alkfw_model_hidden(m, ids, 4, idx, 2, out, &err), ALKFW_OK);
        for (size_t i = 0; i < 4 * 64; i++) {
            assert_true(isfinite(out[i]));       /* the embeddings */
            assert_true(isnan(out[4 * 64 + i])); /* after the final norm */
        }
        alkfw_model_free(m);
    }
}

static void missing_tensor_is_named(void **state)
{
    (void)state;
    char dir[400];
    make_dir(dir, sizeof dir, "missing");
    write_config(dir, "");
    write_weights(dir, "model.layers.3.mlp.up_proj.weight", NULL);
    expect_open(dir, ALKFW_ERR_FORMAT, "missing tensor model.layers.3.mlp.up_proj.weight");
}

static void wrong_shape_for_config_is_named(void **state)
{
    (void)state;
    char dir[400];
    make_dir(dir, sizeof dir, "shape");
    write_config(dir, "\"intermediate_size\":170");
    write_weights(dir, NULL, NULL);
    expect_open(dir, ALKFW_ERR_FORMAT,
                "model.layers.0.mlp.gate_proj.weight has shape [172, 64] but the config needs "
                "[170, 64]");
}

static void wrong_dtype_is_named(void **state)
{
    (void)state;
    char dir[400];
    make_dir(dir, sizeof dir, "dtype");
    write_config(dir, "");
    write_weights(dir, NULL, "model.norm.weight");
    expect_open(dir, ALKFW_ERR_UNSUPPORTED, "model.norm.weight has dtype I32");
}

static void truncated_weights_are_format_error(void **state)
{
    (void)state;
    char dir[400], path[512];
    make_dir(dir, sizeof dir, "trunc");
    write_config(dir, "");
    write_weights(dir, NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(truncate(path, 500000), 0);
    expect_open(dir, ALKFW_ERR_FORMAT, "out of range");
    expect_open(dir, ALKFW_ERR_FORMAT, "model.safetensors");
}

static void missing_files_are_io_errors(void **state)
{
    (void)state;
    char dir[400];
    make_dir(dir, sizeof dir, "empty");
    expect_open(dir, ALKFW_ERR_IO, "config.json");
    write_config(dir, "");
    expect_open(dir, ALKFW_ERR_IO, "no model.safetensors");
}

static void broken_config_file_names_the_path(void **state)
{
    (void)state;
    char dir[400], path[512];
    make_dir(dir, sizeof dir, "badjson");
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    fputs("not json at all", fp);
    fclose(fp);
    expect_open(dir, ALKFW_ERR_FORMAT, "config.json: not valid JSON");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_accepts_valid_llama),
        cmocka_unit_test(config_non_json_is_error),
        cmocka_unit_test(config_duplicate_key_is_error),
        cmocka_unit_test(config_missing_key_is_named),
        cmocka_unit_test(config_negative_or_absurd_sizes_are_errors),
        cmocka_unit_test(config_inconsistent_heads_are_errors),
        cmocka_unit_test(config_unsupported_options_name_the_key),
        cmocka_unit_test(rewritten_weights_still_open),
        cmocka_unit_test(weights_without_model_prefix_load_and_agree),
        cmocka_unit_test(nan_weights_give_nan_states_without_undefined_behaviour),
        cmocka_unit_test(missing_tensor_is_named),
        cmocka_unit_test(wrong_shape_for_config_is_named),
        cmocka_unit_test(wrong_dtype_is_named),
        cmocka_unit_test(truncated_weights_are_format_error),
        cmocka_unit_test(missing_files_are_io_errors),
        cmocka_unit_test(broken_config_file_names_the_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
