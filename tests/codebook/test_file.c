/*
 * test_file.c - the codebook file: reading the fixture, writing deterministic bytes that read
 * back equal, one clear error per malformed field, and the model fingerprint check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "common/test_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codebook/codebook.h"
#include "formats/safetensors.h"

#define FIXTURE ALKFW_SOURCE_DIR "/tests/fixtures/codebook/screen_codebook.safetensors"

static codebook *load_fixture(void)
{
    codebook *cb;
    alkfw_error err;
    if (codebook_load(FIXTURE, &cb, &err) != ALKFW_OK)
        fail_msg("%s", err.message);
    return cb;
}

/* ---- reading and writing ---------------------------------------------------------------- */

static void fixture_codebook_reads_every_field(void **state)
{
    (void)state;
    codebook *cb = load_fixture();
    assert_int_equal(cb->n_layers, 2);
    assert_int_equal(cb->layers[0], 1);
    assert_int_equal(cb->layers[1], 3);
    assert_int_equal(cb->hidden, 24);
    assert_int_equal(cb->k, 3);
    assert_int_equal(cb->n_knots, 9);
    assert_int_equal(cb->n_dirs, 2);
    assert_string_equal(cb->directions[0], "injection");
    assert_string_equal(cb->directions[1], "jailbreak");
    assert_int_equal(cb->smoothing_window, 4);
    assert_true(cb->threshold_suspicious == 0.62);
    assert_true(cb->threshold_dangerous == 0.68);
    assert_true(cb->dir_alpha[1] == 0.8f);
    assert_string_equal(cb->model_id, "fixture");
    assert_string_equal(cb->created_by, "tools/gen_codebook_fixtures.py");
    codebook_free(cb);
}

static void saved_codebook_reads_back_equal_and_bytes_are_deterministic(void **state)
{
    (void)state;
    codebook *cb = load_fixture(), *back;
    alkfw_error err;
    char path[] = "/tmp/alkfw-cb-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(codebook_save(cb, path, &err), ALKFW_OK);
    assert_int_equal(codebook_load(path, &back, &err), ALKFW_OK);

    size_t D = (size_t)cb->n_layers * cb->hidden, R = (size_t)(cb->k + 1) * cb->n_knots;
    assert_memory_equal(cb->layers, back->layers, (size_t)cb->n_layers * 4);
    assert_memory_equal(cb->norm_mean, back->norm_mean, D * 4);
    assert_memory_equal(cb->norm_scale, back->norm_scale, (size_t)cb->n_layers * 4);
    assert_memory_equal(cb->basis, back->basis, (size_t)cb->k * D * 4);
    assert_memory_equal(cb->knots, back->knots, R * 4);
    assert_memory_equal(cb->cdf, back->cdf, R * 4);
    assert_memory_equal(cb->slope, back->slope, R * 4);
    assert_memory_equal(cb->dir_weight, back->dir_weight, (size_t)cb->n_dirs * cb->k * 4);
    assert_memory_equal(cb->dir_bias, back->dir_bias, (size_t)cb->n_dirs * 4);
    assert_memory_equal(cb->dir_alpha, back->dir_alpha, (size_t)(cb->n_dirs + 1) * 4);
    assert_string_equal(back->directions[1], "jailbreak");
    assert_true(back->threshold_suspicious == cb->threshold_suspicious);
    assert_true(back->threshold_dangerous == cb->threshold_dangerous);
    assert_string_equal(back->metrics, cb->metrics);

    /* the file equals the in-memory serialization, and saving again gives the same bytes */
    size_t n1, n2;
    void *file = test_read_file(path, &n1), *mem;
    assert_int_equal(codebook_serialize(back, &mem, &n2, &err), ALKFW_OK);
    assert_int_equal(n1, n2);
    assert_memory_equal(file, mem, n1);
    free(file);
    free(mem);
    codebook_free(back);
    codebook_free(cb);
    unlink(path);
}

static void thresholds_are_written_so_they_read_back_exactly(void **state)
{
    (void)state;
    codebook *cb = load_fixture(), *back;
    cb->threshold_suspicious = 0.1 + 0.2; /* 0.30000000000000004 */
    cb->threshold_dangerous = nextafter(1.0, 0.0);
    void *data;
    size_t len;
    assert_int_equal(codebook_serialize(cb, &data, &len, NULL), ALKFW_OK);
    assert_int_equal(codebook_load_buffer(data, len, "mem", &back, NULL), ALKFW_OK);
    assert_true(back->threshold_suspicious == 0.1 + 0.2);
    assert_true(back->threshold_dangerous == nextafter(1.0, 0.0));
    free(data);
    codebook_free(back);
    codebook_free(cb);
}

static void saving_an_invalid_codebook_is_refused(void **state)
{
    (void)state;
    codebook *cb = load_fixture();
    cb->norm_scale[1] = -1.0f;
    alkfw_error err;
    assert_int_equal(codebook_save(cb, "/tmp/alkfw-never-written.safetensors", &err),
                     ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "norm.scale"));
    assert_int_equal(access("/tmp/alkfw-never-written.safetensors", F_OK), -1);
    codebook_free(cb);
}

static void missing_file_is_an_io_error_naming_the_path(void **state)
{
    (void)state;
    codebook *cb;
    alkfw_error err;
    assert_int_equal(codebook_load("/nonexistent/cb.safetensors", &cb, &err), ALKFW_ERR_IO);
    assert_non_null(strstr(err.message, "/nonexistent/cb.safetensors"));
    assert_null(cb);
}

static void truncated_file_is_a_format_error(void **state)
{
    (void)state;
    size_t len;
    void *data = test_read_file(FIXTURE, &len);
    codebook *cb;
    alkfw_error err;
    assert_int_equal(codebook_load_buffer(data, len - 100, "cut", &cb, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "cut"));
    free(data);
}

/* ---- malformed fields ----------------------------------------------------------------------
 * Each case takes the valid fixture, changes one thing in its raw tensors or metadata, writes
 * it with the plain safetensors writer (no validation) and expects a status and a message
 * naming the field. */

typedef struct raw_file {
    codebook *cb;
    int64_t shapes[10][2];
    safetensors_write_tensor t[10];
    int n_tensors;
    const char *keys[13];
    const char *values[13];
    int n_meta;
    char window[16], ts[32], td[32];
} raw_file;

/* Fills r with the fixture's tensors and metadata, pointing into r->cb. */
static void raw_from_fixture(raw_file *r)
{
    memset(r, 0, sizeof *r);
    codebook *cb = r->cb = load_fixture();
    int64_t nl = cb->n_layers, D = nl * cb->hidden, k = cb->k, K = cb->n_knots, nd = cb->n_dirs;
    struct {
        const char *name;
        safetensors_dtype dt;
        int nd;
        int64_t a, b;
        const void *p;
    } s[10] = {{"layers", SAFETENSORS_I32, 1, nl, 0, cb->layers},
               {"norm.mean", SAFETENSORS_F32, 2, nl, cb->hidden, cb->norm_mean},
               {"norm.scale", SAFETENSORS_F32, 1, nl, 0, cb->norm_scale},
               {"basis", SAFETENSORS_F32, 2, k, D, cb->basis},
               {"spline.knots", SAFETENSORS_F32, 2, k + 1, K, cb->knots},
               {"spline.cdf", SAFETENSORS_F32, 2, k + 1, K, cb->cdf},
               {"spline.slope", SAFETENSORS_F32, 2, k + 1, K, cb->slope},
               {"direction.weight", SAFETENSORS_F32, 2, nd, k, cb->dir_weight},
               {"direction.bias", SAFETENSORS_F32, 1, nd, 0, cb->dir_bias},
               {"direction.alpha", SAFETENSORS_F32, 1, nd + 1, 0, cb->dir_alpha}};
    for (int i = 0; i < 10; i++) {
        r->shapes[i][0] = s[i].a;
        r->shapes[i][1] = s[i].b;
        r->t[i] = (safetensors_write_tensor){s[i].name, s[i].dt, s[i].nd, r->shapes[i], s[i].p};
    }
    r->n_tensors = 10;
    const char *kv[13][2] = {{"format", "alkfw-codebook"},
                             {"version", "1"},
                             {"directions", "[\"injection\",\"jailbreak\"]"},
                             {"smoothing_window", "4"},
                             {"threshold_suspicious", "0.62"},
                             {"threshold_dangerous", "0.68"},
                             {"aggregation", "mean"},
                             {"model_id", "fixture"},
                             {"model_revision", "none"},
                             {"model_fingerprint", ""},
                             {"metrics", "{}"},
                             {"training_data", "{}"},
                             {"created_by", "test"}};
    for (int i = 0; i < 13; i++) {
        r->keys[i] = kv[i][0];
        r->values[i] = kv[i][1];
    }
    r->n_meta = 13;
}

static safetensors_write_tensor *raw_tensor(raw_file *r, const char *name)
{
    for (int i = 0; i < r->n_tensors; i++)
        if (strcmp(r->t[i].name, name) == 0)
            return &r->t[i];
    fail_msg("no tensor %s", name);
    return NULL;
}

static void raw_drop_tensor(raw_file *r, const char *name)
{
    safetensors_write_tensor *t = raw_tensor(r, name);
    *t = r->t[--r->n_tensors];
}

static void raw_set_meta(raw_file *r, const char *key, const char *value)
{
    for (int i = 0; i < r->n_meta; i++)
        if (strcmp(r->keys[i], key) == 0) {
            if (value) {
                r->values[i] = value;
            } else {
                r->keys[i] = r->keys[--r->n_meta];
                r->values[i] = r->values[r->n_meta];
            }
            return;
        }
    fail_msg("no key %s", key);
}

/* Writes r, loads it, checks the status and that the message holds `want`. */
static void expect_error(raw_file *r, alkfw_status status, const char *want)
{
    void *data;
    size_t len;
    alkfw_error err;
    if (safetensors_serialize(r->t, (size_t)r->n_tensors, r->keys, r->values, (size_t)r->n_meta,
                              &data, &len, &err) != ALKFW_OK)
        fail_msg("test file not written: %s", err.message);
    codebook *cb = NULL;
    alkfw_status st = codebook_load_buffer(data, len, "bad.safetensors", &cb, &err);
    free(data);
    codebook_free(r->cb);
    if (st != status || !strstr(err.message, want) || !strstr(err.message, "bad.safetensors"))
        fail_msg("expected status %d with '%s', got %d: %s", status, want, st,
                 st ? err.message : "(loaded)");
    assert_null(cb);
}

#define MALFORMED(test_name, status, want, ...)                                                    \
    static void test_name(void **state)                                                            \
    {                                                                                              \
        (void)state;                                                                               \
        raw_file r_, *r = &r_;                                                                     \
        raw_from_fixture(r);                                                                       \
        codebook *cb = r->cb;                                                                      \
        (void)cb;                                                                                  \
        __VA_ARGS__;                                                                               \
        expect_error(r, status, want);                                                             \
    }

static float big_basis[65 * 48];

MALFORMED(format_missing_is_refused, ALKFW_ERR_FORMAT, "metadata 'format' is missing",
          raw_set_meta(r, "format", NULL))
MALFORMED(other_format_is_refused, ALKFW_ERR_FORMAT, "metadata 'format' is 'gguf'",
          raw_set_meta(r, "format", "gguf"))
MALFORMED(other_version_is_unsupported, ALKFW_ERR_UNSUPPORTED, "metadata 'version' is '2'",
          raw_set_meta(r, "version", "2"))
MALFORMED(missing_tensor_is_named, ALKFW_ERR_FORMAT, "tensor 'spline.slope' is missing",
          raw_drop_tensor(r, "spline.slope"))
MALFORMED(layers_of_wrong_dtype_are_refused, ALKFW_ERR_FORMAT,
          "tensor 'layers' has dtype F32 (expected I32)",
          raw_tensor(r, "layers")->dtype = SAFETENSORS_F32)
MALFORMED(negative_layer_is_refused, ALKFW_ERR_FORMAT, "tensor 'layers': layer 0 is negative",
          cb->layers[0] = -1)
MALFORMED(unsorted_layers_are_refused, ALKFW_ERR_FORMAT, "tensor 'layers': not strictly increasing",
          cb->layers[0] = 5)
MALFORMED(duplicated_layers_are_refused, ALKFW_ERR_FORMAT,
          "tensor 'layers': not strictly increasing", cb->layers[0] = 3)
MALFORMED(norm_mean_of_wrong_shape_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'norm.mean' has shape[0] = 1 (expected 2", r->shapes[1][0] = 1)
MALFORMED(norm_mean_with_nan_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'norm.mean': element 5 is not finite", cb->norm_mean[5] = NAN)
MALFORMED(zero_norm_scale_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'norm.scale': layer 1 scale 0 is not a positive number", cb->norm_scale[1] = 0.0f)
MALFORMED(infinite_norm_scale_is_refused, ALKFW_ERR_FORMAT, "tensor 'norm.scale': layer 0",
          cb->norm_scale[0] = INFINITY)
MALFORMED(basis_of_wrong_width_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'basis' has shape[1] = 47 (expected 48", r->shapes[3][1] = 47)
MALFORMED(basis_with_inf_is_refused, ALKFW_ERR_FORMAT, "tensor 'basis': element 7 is not finite",
          cb->basis[7] = -INFINITY)
MALFORMED(k_above_64_is_refused, ALKFW_ERR_FORMAT, "tensor 'basis': k = 65 is out of range",
          r->shapes[3][0] = 65;
          raw_tensor(r, "basis")->data = big_basis)
MALFORMED(spline_without_anomaly_row_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.knots' has shape[0] = 3 (expected 4", r->shapes[4][0] = 3)
MALFORMED(spline_cdf_with_other_knot_count_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.cdf' has shape[1] = 8 (expected 9", r->shapes[5][1] = 8)
MALFORMED(non_increasing_knots_are_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.knots' row 1: knots not strictly increasing at 4",
          cb->knots[9 + 4] = cb->knots[9 + 3])
MALFORMED(cdf_reaching_one_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.cdf' row 0, knot 8: 1 is not inside (0,1)", cb->cdf[8] = 1.0f)
MALFORMED(cdf_at_zero_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.cdf' row 3, knot 0: 0 is not inside (0,1)", cb->cdf[27] = 0.0f)
MALFORMED(decreasing_cdf_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.cdf' row 2: not strictly increasing at knot 5",
          cb->cdf[18 + 5] = cb->cdf[18 + 4] - 0.01f)
MALFORMED(non_positive_slope_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'spline.slope' row 0, knot 2: slope 0 is not positive", cb->slope[2] = 0.0f)
MALFORMED(nan_slope_is_refused, ALKFW_ERR_FORMAT, "spline row 1, knot 0: value is not finite",
          cb->slope[9] = NAN)
MALFORMED(direction_weight_of_wrong_width_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'direction.weight' has shape[1] = 2 (expected 3", r->shapes[7][1] = 2)
MALFORMED(direction_bias_of_wrong_length_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'direction.bias' has shape[0] = 1 (expected 2", r->shapes[8][0] = 1)
MALFORMED(direction_alpha_without_anomaly_weight_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'direction.alpha' has shape[0] = 2 (expected 3", r->shapes[9][0] = 2)
MALFORMED(negative_alpha_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'direction.alpha': weight 2 is negative", cb->dir_alpha[2] = -1.0f)
MALFORMED(nan_direction_weight_is_refused, ALKFW_ERR_FORMAT,
          "tensor 'direction.weight': element 4 is not finite", cb->dir_weight[4] = NAN)
MALFORMED(directions_not_a_list_are_refused, ALKFW_ERR_FORMAT,
          "metadata 'directions' is not a JSON list", raw_set_meta(r, "directions", "{\"a\":1}"))
MALFORMED(directions_count_mismatch_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'directions' lists 1 names but tensor 'direction.weight' has 2 rows",
          raw_set_meta(r, "directions", "[\"injection\"]"))
MALFORMED(direction_name_not_a_string_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'directions': entry 1 is not a string",
          raw_set_meta(r, "directions", "[\"injection\",7]"))
MALFORMED(duplicate_direction_names_are_refused, ALKFW_ERR_FORMAT,
          "metadata 'directions': 'x' appears twice",
          raw_set_meta(r, "directions", "[\"x\",\"x\"]"))
MALFORMED(reserved_direction_name_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'directions': 'anomaly' is reserved",
          raw_set_meta(r, "directions", "[\"x\",\"anomaly\"]"))
MALFORMED(missing_directions_are_refused, ALKFW_ERR_FORMAT, "metadata 'directions' is missing",
          raw_set_meta(r, "directions", NULL))
MALFORMED(non_integer_window_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'smoothing_window': '8.5' is not an integer",
          raw_set_meta(r, "smoothing_window", "8.5"))
MALFORMED(negative_window_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'smoothing_window': '-1' is not an integer in 0..",
          raw_set_meta(r, "smoothing_window", "-1"))
MALFORMED(threshold_above_one_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'threshold_dangerous': 1.5 is not in [0,1]",
          raw_set_meta(r, "threshold_dangerous", "1.5"))
MALFORMED(threshold_not_a_number_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'threshold_suspicious': 'nan' is not a number",
          raw_set_meta(r, "threshold_suspicious", "nan"))
MALFORMED(suspicious_above_dangerous_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'threshold_suspicious' (0.9) is above 'threshold_dangerous' (0.68)",
          raw_set_meta(r, "threshold_suspicious", "0.9"))
MALFORMED(other_aggregation_is_unsupported, ALKFW_ERR_UNSUPPORTED,
          "metadata 'aggregation' is 'max'", raw_set_meta(r, "aggregation", "max"))
MALFORMED(malformed_fingerprint_is_refused, ALKFW_ERR_FORMAT,
          "metadata 'model_fingerprint': '576:30:abc' is not",
          raw_set_meta(r, "model_fingerprint", "576:30:abc"))
MALFORMED(metrics_not_json_are_refused, ALKFW_ERR_FORMAT, "metadata 'metrics' is not valid JSON",
          raw_set_meta(r, "metrics", "{auc: 1"))

/* ---- fingerprint ------------------------------------------------------------------------- */

static void fingerprint_is_dims_and_sha256_of_embedding_bytes(void **state)
{
    (void)state;
    char fp[CODEBOOK_FINGERPRINT_SIZE];
    assert_int_equal(codebook_fingerprint(576, 30, 49152, "abc", 3, fp, sizeof fp, NULL), ALKFW_OK);
    /* sha256("abc") from FIPS 180-2 */
    assert_string_equal(fp, "576:30:49152:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff6"
                            "1f20015ad");
    alkfw_error err;
    assert_int_equal(codebook_fingerprint(576, 30, 49152, "abc", 3, fp, 20, &err),
                     ALKFW_ERR_ARGUMENT);
}

static void codebook_for_the_same_model_is_accepted(void **state)
{
    (void)state;
    codebook *cb = load_fixture();
    char fp[CODEBOOK_FINGERPRINT_SIZE];
    codebook_fingerprint(24, 4, 512, "weights", 7, fp, sizeof fp, NULL);
    alkfw_error err;
    /* no fingerprint in the codebook: only the shapes are checked */
    assert_int_equal(codebook_check_model(cb, fp, &err), ALKFW_OK);
    codebook_set_string(&cb->model_fingerprint, fp, NULL);
    assert_int_equal(codebook_check_model(cb, fp, &err), ALKFW_OK);
    codebook_free(cb);
}

static void codebook_for_another_model_is_refused_saying_what_differs(void **state)
{
    (void)state;
    codebook *cb = load_fixture();
    char mine[CODEBOOK_FINGERPRINT_SIZE], other[CODEBOOK_FINGERPRINT_SIZE];
    alkfw_error err;
    codebook_fingerprint(24, 4, 512, "weights", 7, mine, sizeof mine, NULL);
    codebook_set_string(&cb->model_fingerprint, mine, NULL);

    codebook_fingerprint(24, 4, 512, "weightz", 7, other, sizeof other, NULL);
    assert_int_equal(codebook_check_model(cb, other, &err), ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "embedding weights differ"));
    assert_non_null(strstr(err.message, mine));
    assert_non_null(strstr(err.message, other));

    codebook_fingerprint(24, 6, 512, "weights", 7, other, sizeof other, NULL);
    assert_int_equal(codebook_check_model(cb, other, &err), ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "layer count differ"));

    codebook_fingerprint(24, 4, 1000, "weights", 7, other, sizeof other, NULL);
    assert_int_equal(codebook_check_model(cb, other, &err), ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "vocabulary size differ"));

    codebook_fingerprint(576, 4, 512, "weights", 7, other, sizeof other, NULL);
    assert_int_equal(codebook_check_model(cb, other, &err), ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "hidden size 24 but the model has 576"));

    /* a model too shallow for the configured layers, even without a stored fingerprint */
    codebook_set_string(&cb->model_fingerprint, "", NULL);
    codebook_fingerprint(24, 2, 512, "weights", 7, other, sizeof other, NULL);
    assert_int_equal(codebook_check_model(cb, other, &err), ALKFW_ERR_MISMATCH);
    assert_non_null(strstr(err.message, "hidden state 3"));

    assert_int_equal(codebook_check_model(cb, "nonsense", &err), ALKFW_ERR_ARGUMENT);
    codebook_free(cb);
}

static void public_api_shows_the_codebook_and_checks_the_model(void **state)
{
    (void)state;
    alkfw_codebook *h;
    alkfw_error err;
    assert_int_equal(alkfw_codebook_load(FIXTURE, &h, &err), ALKFW_OK);
    alkfw_codebook_info info;
    alkfw_codebook_get_info(h, &info);
    assert_int_equal(info.n_layers, 2);
    assert_int_equal(info.layers[1], 3);
    assert_int_equal(info.hidden_size, 24);
    assert_int_equal(info.k, 3);
    assert_int_equal(info.n_directions, 2);
    assert_string_equal(info.directions[0], "injection");
    assert_true(info.weights[1] == 0.8f);
    assert_true(info.threshold_dangerous == 0.68);
    assert_string_equal(info.model_fingerprint, "");
    char fp[CODEBOOK_FINGERPRINT_SIZE];
    codebook_fingerprint(576, 30, 49152, "x", 1, fp, sizeof fp, NULL);
    assert_int_equal(alkfw_codebook_check_model(h, fp, &err), ALKFW_ERR_MISMATCH);
    alkfw_codebook_free(h);
    alkfw_codebook_free(NULL);

    assert_int_equal(alkfw_codebook_load("/nonexistent.safetensors", &h, &err), ALKFW_ERR_IO);
    assert_null(h);
}

/* NULL arguments to the public calls are argument errors, not crashes. */
static void public_api_refuses_null_arguments(void **state)
{
    (void)state;
    alkfw_codebook *h = NULL;
    alkfw_error err;
    assert_int_equal(alkfw_codebook_load(NULL, &h, &err), ALKFW_ERR_ARGUMENT);
    assert_null(h);
    assert_int_equal(alkfw_codebook_load(FIXTURE, NULL, &err), ALKFW_ERR_ARGUMENT);
    assert_int_equal(alkfw_codebook_check_model(NULL, "1:2:3:x", &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "must not be NULL"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_codebook_reads_every_field),
        cmocka_unit_test(saved_codebook_reads_back_equal_and_bytes_are_deterministic),
        cmocka_unit_test(thresholds_are_written_so_they_read_back_exactly),
        cmocka_unit_test(saving_an_invalid_codebook_is_refused),
        cmocka_unit_test(missing_file_is_an_io_error_naming_the_path),
        cmocka_unit_test(truncated_file_is_a_format_error),
        cmocka_unit_test(format_missing_is_refused),
        cmocka_unit_test(other_format_is_refused),
        cmocka_unit_test(other_version_is_unsupported),
        cmocka_unit_test(missing_tensor_is_named),
        cmocka_unit_test(layers_of_wrong_dtype_are_refused),
        cmocka_unit_test(negative_layer_is_refused),
        cmocka_unit_test(unsorted_layers_are_refused),
        cmocka_unit_test(duplicated_layers_are_refused),
        cmocka_unit_test(norm_mean_of_wrong_shape_is_refused),
        cmocka_unit_test(norm_mean_with_nan_is_refused),
        cmocka_unit_test(zero_norm_scale_is_refused),
        cmocka_unit_test(infinite_norm_scale_is_refused),
        cmocka_unit_test(basis_of_wrong_width_is_refused),
        cmocka_unit_test(basis_with_inf_is_refused),
        cmocka_unit_test(k_above_64_is_refused),
        cmocka_unit_test(spline_without_anomaly_row_is_refused),
        cmocka_unit_test(spline_cdf_with_other_knot_count_is_refused),
        cmocka_unit_test(non_increasing_knots_are_refused),
        cmocka_unit_test(cdf_reaching_one_is_refused),
        cmocka_unit_test(cdf_at_zero_is_refused),
        cmocka_unit_test(decreasing_cdf_is_refused),
        cmocka_unit_test(non_positive_slope_is_refused),
        cmocka_unit_test(nan_slope_is_refused),
        cmocka_unit_test(direction_weight_of_wrong_width_is_refused),
        cmocka_unit_test(direction_bias_of_wrong_length_is_refused),
        cmocka_unit_test(direction_alpha_without_anomaly_weight_is_refused),
        cmocka_unit_test(negative_alpha_is_refused),
        cmocka_unit_test(nan_direction_weight_is_refused),
        cmocka_unit_test(directions_not_a_list_are_refused),
        cmocka_unit_test(directions_count_mismatch_is_refused),
        cmocka_unit_test(direction_name_not_a_string_is_refused),
        cmocka_unit_test(duplicate_direction_names_are_refused),
        cmocka_unit_test(reserved_direction_name_is_refused),
        cmocka_unit_test(missing_directions_are_refused),
        cmocka_unit_test(non_integer_window_is_refused),
        cmocka_unit_test(negative_window_is_refused),
        cmocka_unit_test(threshold_above_one_is_refused),
        cmocka_unit_test(threshold_not_a_number_is_refused),
        cmocka_unit_test(suspicious_above_dangerous_is_refused),
        cmocka_unit_test(other_aggregation_is_unsupported),
        cmocka_unit_test(malformed_fingerprint_is_refused),
        cmocka_unit_test(metrics_not_json_are_refused),
        cmocka_unit_test(fingerprint_is_dims_and_sha256_of_embedding_bytes),
        cmocka_unit_test(codebook_for_the_same_model_is_accepted),
        cmocka_unit_test(codebook_for_another_model_is_refused_saying_what_differs),
        cmocka_unit_test(public_api_shows_the_codebook_and_checks_the_model),
        cmocka_unit_test(public_api_refuses_null_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
