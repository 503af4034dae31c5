/*
 * test_cmd_hidden.c - `alkfw hidden` writes the promised safetensors and JSON, agrees with
 * the stories260k reference, and answers bad arguments with usage or error statuses. The
 * subcommand is linked on its own; the two helpers main.c provides are defined here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "formats/safetensors.h"

#define MODEL_DIR ALKFW_SOURCE_DIR "/models/stories260k"

int cli_fail(const char *command, const alkfw_error *err)
{
    fprintf(stderr, "alkfw %s: %s\n", command, err->message);
    return CLI_EXIT_ERROR;
}

const char *cli_default_model_dir(void)
{
    return MODEL_DIR;
}

/* Runs cmd_hidden with the given arguments; stdout goes to out_path when not NULL. */
static int run(char **args, int n, const char *out_path)
{
    fflush(stdout);
    int saved = dup(1);
    if (out_path != NULL) {
        int fd = open(out_path, O_WRONLY | O_TRUNC);
        assert_true(fd >= 0);
        dup2(fd, 1);
        close(fd);
    }
    int rc = cmd_hidden(n, args);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    return rc;
}

/* The first 5 reference ids of ref_0 ("Once upon a time") and the values at index idx. */
static void reference_prefix(int idx, float *want /* [5][64] */)
{
    char *text = test_read_file(MODEL_DIR "/reference/ref_0.json", NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *data =
        idx == 5
            ? cJSON_GetObjectItem(cJSON_GetObjectItem(root, "final_norm_hidden"), "data")
            : cJSON_GetArrayItem(
                  cJSON_GetObjectItem(cJSON_GetObjectItem(root, "hidden_states"), "data"), idx);
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 64; i++)
            want[t * 64 + i] =
                (float)cJSON_GetArrayItem(cJSON_GetArrayItem(data, t), i)->valuedouble;
    cJSON_Delete(root);
}

static void out_file_holds_ids_and_requested_indices(void **state)
{
    (void)state;
    char path[] = "/tmp/alkfw_test_hidden_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *args[] = {"hidden", "--ids", "1,403,407,261,378", "--layers", "5,1,5",
                    "--out",  path,    "--threads",         "1"};
    assert_int_equal(run(args, 9, NULL), CLI_EXIT_OK);

    safetensors_file *f = NULL;
    alkfw_error err = {0};
    assert_int_equal(safetensors_open(path, &f, &err), ALKFW_OK);
    assert_int_equal(safetensors_count(f), 3); /* input_ids, hidden.5, hidden.1 */
    const safetensors_tensor *ids = safetensors_find(f, "input_ids");
    assert_int_equal(ids->dtype, SAFETENSORS_I32);
    assert_int_equal(ids->shape[0], 5);
    assert_int_equal(((const int32_t *)ids->data)[1], 403);
    assert_string_equal(safetensors_metadata_get(f, "format"), "alkfw-hidden");
    float got[5 * 64], want[5 * 64];
    for (int k = 0; k < 2; k++) {
        int idx = k == 0 ? 1 : 5;
        char name[16];
        snprintf(name, sizeof name, "hidden.%d", idx);
        const safetensors_tensor *t = safetensors_find(f, name);
        assert_non_null(t);
        assert_int_equal(t->shape[0], 5);
        assert_int_equal(t->shape[1], 64);
        assert_int_equal(safetensors_read_f32(t, got, 5 * 64, &err), ALKFW_OK);
        reference_prefix(idx, want);
        for (int i = 0; i < 5 * 64; i++)
            assert_true(fabsf(got[i] - want[i]) <= 1e-4f * fmaxf(1.0f, fabsf(want[i])));
    }
    safetensors_close(f);
    unlink(path);
}

static void json_prints_the_same_numbers(void **state)
{
    (void)state;
    char path[] = "/tmp/alkfw_test_hidden_json_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *args[] = {"hidden", "--ids", "1,403,407,261,378", "--layers", "0", "--json"};
    assert_int_equal(run(args, 6, path), CLI_EXIT_OK);
    FILE *fp = fopen(path, "rb");
    char *text = calloc(1, 1 << 20);
    assert_true(fread(text, 1, (1 << 20) - 1, fp) > 0);
    fclose(fp);
    unlink(path);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    assert_int_equal(cJSON_GetObjectItem(root, "n_tokens")->valueint, 5);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "input_ids"), 4)->valueint, 378);
    const cJSON *h0 = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "hidden"), "0");
    assert_int_equal(cJSON_GetArraySize(h0), 5);
    float want[5 * 64];
    reference_prefix(0, want);
    for (int t = 0; t < 5; t++)
        for (int i = 0; i < 64; i++) {
            double v = cJSON_GetArrayItem(cJSON_GetArrayItem(h0, t), i)->valuedouble;
            assert_true(fabs(v - want[t * 64 + i]) <= 1e-6);
        }
    cJSON_Delete(root);
}

/* A model whose weights are NaN still prints valid JSON: its non-finite values as null. */
static void json_prints_non_finite_states_as_null(void **state)
{
    (void)state;
    char dir[] = "/tmp/alkfw_test_hidden_nan_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cmd[600];
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/tokenizer.json %s/", MODEL_DIR, MODEL_DIR, dir);
    assert_int_equal(system(cmd), 0);
    safetensors_file *src = NULL;
    assert_int_equal(safetensors_open(MODEL_DIR "/model.safetensors", &src, NULL), ALKFW_OK);
    size_t n = safetensors_count(src);
    safetensors_write_tensor *w = calloc(n, sizeof *w);
    float **nans = calloc(n, sizeof *nans);
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = safetensors_tensor_at(src, i);
        assert_int_equal(t->dtype, SAFETENSORS_F32);
        nans[i] = malloc(t->nbytes);
        for (size_t j = 0; j < t->numel; j++)
            nans[i][j] = NAN;
        w[i] = (safetensors_write_tensor){t->name, t->dtype, t->ndim, t->shape, nans[i]};
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    assert_int_equal(safetensors_write(path, w, n, NULL, NULL, 0, NULL), ALKFW_OK);
    for (size_t i = 0; i < n; i++)
        free(nans[i]);
    free(nans);
    free(w);
    safetensors_close(src);

    char out[] = "/tmp/alkfw_test_hidden_null_XXXXXX";
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    close(fd);
    char *args[] = {"hidden", "--model", dir, "--ids", "1,403", "--layers", "0,5", "--json"};
    assert_int_equal(run(args, 8, out), CLI_EXIT_OK);
    FILE *fp = fopen(out, "rb");
    char *text = calloc(1, 1 << 20);
    assert_true(fread(text, 1, (1 << 20) - 1, fp) > 0);
    fclose(fp);
    unlink(out);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    const cJSON *h5 = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "hidden"), "5");
    assert_int_equal(cJSON_GetArraySize(h5), 2);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetArrayItem(h5, 1), 63)));
    cJSON_Delete(root);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void text_is_tokenized_with_the_model_tokenizer(void **state)
{
    (void)state;
    char path[] = "/tmp/alkfw_test_hidden_text_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char *args[] = {"hidden", "--text", "Once upon a time", "--layers", "5", "--out", path};
    assert_int_equal(run(args, 7, NULL), CLI_EXIT_OK);
    safetensors_file *f = NULL;
    assert_int_equal(safetensors_open(path, &f, NULL), ALKFW_OK);
    const safetensors_tensor *ids = safetensors_find(f, "input_ids");
    assert_int_equal(ids->numel, 5);
    const int32_t want_ids[5] = {1, 403, 407, 261, 378}; /* ref_0's first five, BOS first */
    assert_memory_equal(ids->data, want_ids, sizeof want_ids);
    float got[5 * 64], want[5 * 64];
    assert_int_equal(safetensors_read_f32(safetensors_find(f, "hidden.5"), got, 5 * 64, NULL),
                     ALKFW_OK);
    reference_prefix(5, want);
    for (int i = 0; i < 5 * 64; i++)
        assert_true(fabsf(got[i] - want[i]) <= 1e-4f * fmaxf(1.0f, fabsf(want[i])));
    safetensors_close(f);
    unlink(path);
}

static void bad_arguments_give_usage_or_error_status(void **state)
{
    (void)state;
    char *no_output[] = {"hidden", "--ids", "1,2"};
    assert_int_equal(run(no_output, 3, NULL), CLI_EXIT_USAGE);
    char *both_inputs[] = {"hidden", "--ids", "1", "--text", "x", "--json"};
    assert_int_equal(run(both_inputs, 6, NULL), CLI_EXIT_USAGE);
    char *bad_ids[] = {"hidden", "--ids", "1,,2", "--json"};
    assert_int_equal(run(bad_ids, 4, NULL), CLI_EXIT_USAGE);
    char *bad_layer[] = {"hidden", "--ids", "1", "--layers", "6", "--json"};
    assert_int_equal(run(bad_layer, 6, NULL), CLI_EXIT_USAGE);
    char *unknown[] = {"hidden", "--frobnicate"};
    assert_int_equal(run(unknown, 2, NULL), CLI_EXIT_USAGE);
    char *big_id[] = {"hidden", "--ids", "1,512", "--json"};
    assert_int_equal(run(big_id, 4, NULL), CLI_EXIT_ERROR);
    char *no_model[] = {"hidden", "--model", "/nonexistent", "--ids", "1", "--json"};
    assert_int_equal(run(no_model, 6, NULL), CLI_EXIT_ERROR);
    char *cuda[] = {"hidden", "--backend", "cuda", "--ids", "1", "--json"};
    assert_int_equal(run(cuda, 6, NULL), CLI_EXIT_ERROR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(out_file_holds_ids_and_requested_indices),
        cmocka_unit_test(json_prints_the_same_numbers),
        cmocka_unit_test(json_prints_non_finite_states_as_null),
        cmocka_unit_test(text_is_tokenized_with_the_model_tokenizer),
        cmocka_unit_test(bad_arguments_give_usage_or_error_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
