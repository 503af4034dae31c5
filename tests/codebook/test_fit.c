/*
 * test_fit.c - fitting a codebook from labeled activations: every step agrees with the numpy /
 * scikit-learn reference (tests/fixtures/codebook/fit_cases.safetensors), the thresholds keep
 * the benign false positive rates at their targets, the fitted splines are proper CDFs, and the
 * same input and seed give the same bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "codebook/codebook.h"
#include "formats/safetensors.h"

#define FIXTURE ALKFW_SOURCE_DIR "/tests/fixtures/codebook/fit_cases.safetensors"

static const char *const DIRECTIONS[] = {"injection", "jailbreak"};

typedef struct fit_fixture {
    safetensors_file *f;
    codebook_fit_input in;
    codebook_fit_options opts;
    float *acts;
    size_t *start, *len;
    int *label, *is_val;
    int32_t layers[2];
    codebook *cb; /* fitted once with the defaults of the fixture */
} fit_fixture;

/* A copy of tensor `name` of n elements of `size` bytes each. */
static void *copy(safetensors_file *f, const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t)
        fail_msg("fixture tensor %s missing", name);
    void *v = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(v, t->data, t->nbytes);
    if (n)
        *n = t->numel;
    return v;
}

static int setup(void **state)
{
    fit_fixture *fx = calloc(1, sizeof *fx);
    alkfw_error err;
    if (safetensors_open(FIXTURE, &fx->f, &err) != ALKFW_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    size_t n_acts, n_texts;
    fx->acts = copy(fx->f, "acts", &n_acts);
    int64_t *start = copy(fx->f, "text_start", &n_texts), *len = copy(fx->f, "text_len", NULL);
    fx->start = malloc(n_texts * sizeof *fx->start);
    fx->len = malloc(n_texts * sizeof *fx->len);
    for (size_t i = 0; i < n_texts; i++) {
        fx->start[i] = (size_t)start[i];
        fx->len[i] = (size_t)len[i];
    }
    free(start);
    free(len);
    fx->label = copy(fx->f, "label", NULL);
    fx->is_val = copy(fx->f, "is_val", NULL);
    memcpy(fx->layers, safetensors_find(fx->f, "layers")->data, sizeof fx->layers);

    fx->in = (codebook_fit_input){.n_layers = 2,
                                  .hidden = 8,
                                  .n_tokens = n_acts / 16,
                                  .acts = fx->acts,
                                  .n_texts = n_texts,
                                  .text_start = fx->start,
                                  .text_len = fx->len,
                                  .label = fx->label,
                                  .is_val = fx->is_val,
                                  .source = NULL};
    codebook_fit_options_init(&fx->opts);
    fx->opts.layers = fx->layers;
    fx->opts.k = atoi(safetensors_metadata_get(fx->f, "k"));
    fx->opts.n_knots = atoi(safetensors_metadata_get(fx->f, "knots"));
    fx->opts.smoothing_window = atoi(safetensors_metadata_get(fx->f, "window"));
    fx->opts.directions = DIRECTIONS;
    fx->opts.n_dirs = 2;
    fx->opts.model_id = "synthetic";
    if (codebook_fit(&fx->in, &fx->opts, &fx->cb, &err) != ALKFW_OK) {
        fprintf(stderr, "fit: %s\n", err.message);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fit_fixture *fx = *state;
    codebook_free(fx->cb);
    safetensors_close(fx->f);
    free(fx->acts);
    free(fx->start);
    free(fx->len);
    free(fx->label);
    free(fx->is_val);
    free(fx);
    return 0;
}

/* Compares the F32 array got with fixture tensor `name` to an absolute tolerance. */
static void expect_f32(const fit_fixture *fx, const char *name, const float *got, double tol)
{
    size_t n;
    float *want = copy(fx->f, name, &n);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs(want[i]))))
            fail_msg("%s[%zu]: fitted %.9g, reference %.9g", name, i, (double)got[i],
                     (double)want[i]);
    free(want);
}

static void standardization_matches_numpy(void **state)
{
    fit_fixture *fx = *state;
    expect_f32(fx, "norm.mean", fx->cb->norm_mean, 1e-6);
    expect_f32(fx, "norm.scale", fx->cb->norm_scale, 1e-6);
}

static void basis_is_the_signed_top_eigenvectors_of_numpy(void **state)
{
    fit_fixture *fx = *state;
    expect_f32(fx, "basis", fx->cb->basis, 1e-5);
    /* and its rows are orthonormal */
    for (int i = 0; i < fx->cb->k; i++)
        for (int j = 0; j < fx->cb->k; j++) {
            double dot = 0;
            for (int c = 0; c < 16; c++)
                dot += (double)fx->cb->basis[i * 16 + c] * fx->cb->basis[j * 16 + c];
            assert_true(fabs(dot - (i == j)) < 1e-5);
        }
}

static void splines_match_numpy_quantiles_and_fritsch_carlson(void **state)
{
    fit_fixture *fx = *state;
    expect_f32(fx, "spline.knots", fx->cb->knots, 1e-5);
    expect_f32(fx, "spline.cdf", fx->cb->cdf, 0.0);
    expect_f32(fx, "spline.slope", fx->cb->slope, 1e-4);
}

static void direction_models_match_sklearn_liblinear(void **state)
{
    fit_fixture *fx = *state;
    expect_f32(fx, "direction.weight", fx->cb->dir_weight, 2e-3);
    expect_f32(fx, "direction.bias", fx->cb->dir_bias, 2e-3);
    assert_true(fx->cb->dir_alpha[0] == 1.0f && fx->cb->dir_alpha[2] == 1.0f);
}

static void thresholds_match_reference_and_keep_target_fpr(void **state)
{
    fit_fixture *fx = *state;
    const codebook *cb = fx->cb;
    double *want = copy(fx->f, "thresholds", NULL);
    assert_true(fabs(cb->threshold_dangerous - want[0]) < 1e-3);
    assert_true(fabs(cb->threshold_suspicious - want[1]) < 1e-3);
    free(want);
    assert_true(cb->threshold_suspicious <= cb->threshold_dangerous);

    /* screening the benign validation texts flags at most 1% / 5% of them */
    size_t n_benign = 0, over_d = 0, over_s = 0;
    for (size_t i = 0; i < fx->in.n_texts; i++) {
        if (!fx->is_val[i] || fx->label[i] != -1)
            continue;
        size_t T = fx->len[i];
        float *states = malloc(2 * T * 8 * sizeof *states);
        for (size_t t = 0; t < T; t++)
            for (int l = 0; l < 2; l++)
                memcpy(states + ((size_t)l * T + t) * 8, fx->acts + (fx->start[i] + t) * 16 + l * 8,
                       8 * sizeof *states);
        codebook_result res;
        assert_int_equal(codebook_score(cb, states, T, NULL, &res, NULL), ALKFW_OK);
        n_benign++;
        over_d += res.level == CODEBOOK_DANGEROUS;
        over_s += res.level >= CODEBOOK_SUSPICIOUS;
        codebook_result_free(&res);
        free(states);
    }
    assert_true((double)over_d <= 0.01 * (double)n_benign);
    assert_true((double)over_s <= 0.05 * (double)n_benign);
}

static void validation_report_shows_separation(void **state)
{
    fit_fixture *fx = *state;
    cJSON *m = cJSON_Parse(fx->cb->metrics);
    assert_non_null(m);
    cJSON *val = cJSON_GetObjectItem(m, "validation");
    assert_int_equal(cJSON_GetObjectItem(val, "texts")->valueint, 60);
    assert_int_equal(cJSON_GetObjectItem(val, "benign")->valueint, 30);
    assert_true(cJSON_GetObjectItem(val, "roc_auc")->valuedouble > 0.9);
    cJSON *inj = cJSON_GetObjectItem(cJSON_GetObjectItem(val, "by_direction"), "injection");
    assert_int_equal(cJSON_GetObjectItem(inj, "texts")->valueint, 15);
    assert_true(cJSON_GetObjectItem(inj, "roc_auc")->valuedouble > 0.9);
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(val, "by_direction"), "anomaly"));
    cJSON_Delete(m);

    cJSON *t = cJSON_Parse(fx->cb->training_data);
    cJSON *benign = cJSON_GetObjectItem(cJSON_GetObjectItem(t, "labels"), "benign");
    assert_int_equal(cJSON_GetObjectItem(benign, "train_texts")->valueint, 40);
    cJSON_Delete(t);
    assert_string_equal(fx->cb->model_id, "synthetic");
}

static void report_breaks_validation_down_by_source(void **state)
{
    fit_fixture *fx = *state;
    const char **source = malloc(fx->in.n_texts * sizeof *source);
    for (size_t i = 0; i < fx->in.n_texts; i++)
        source[i] = i % 3 == 0 ? "web" : "chat";
    codebook_fit_input in = fx->in;
    in.source = source;
    codebook *cb;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, NULL), ALKFW_OK);
    cJSON *m = cJSON_Parse(cb->metrics);
    cJSON *by = cJSON_GetObjectItem(cJSON_GetObjectItem(m, "validation"), "by_source");
    int web = cJSON_GetObjectItem(cJSON_GetObjectItem(by, "web"), "texts")->valueint;
    int chat = cJSON_GetObjectItem(cJSON_GetObjectItem(by, "chat"), "texts")->valueint;
    size_t want_web = 0;
    for (size_t i = 0; i < fx->in.n_texts; i++)
        want_web += fx->is_val[i] && i % 3 == 0;
    assert_int_equal(web, (int)want_web);
    assert_int_equal(web + chat, 60);
    int dangerous = cJSON_GetObjectItem(cJSON_GetObjectItem(by, "web"), "dangerous")->valueint;
    assert_true(dangerous >= 0 && dangerous <= web);
    cJSON_Delete(m);
    codebook_free(cb);
    free(source);
}

static void fitted_splines_are_increasing_cdfs_with_round_trip_inverse(void **state)
{
    fit_fixture *fx = *state;
    const codebook *cb = fx->cb;
    assert_int_equal(codebook_validate(cb, NULL), ALKFW_OK);
    for (int r = 0; r <= cb->k; r++) {
        const float *x = cb->knots + (size_t)r * cb->n_knots;
        double lo = x[0] - 3, hi = x[cb->n_knots - 1] + 3, pq, prev = -1;
        codebook_spline_eval(cb, r, lo, &pq);
        for (int i = 0; i <= 5000; i++) {
            double z = lo + (hi - lo) * i / 5000.0, q;
            double f = codebook_spline_eval(cb, r, z, &q);
            assert_true(f > 0 && f < 1);
            assert_true(f > prev || (f == prev && q < pq));
            double back = codebook_spline_inverse(cb, r, f);
            assert_true(fabs(codebook_spline_eval(cb, r, back, NULL) - f) < 1e-9);
            prev = f;
            pq = q;
        }
    }
}

static void same_input_and_seed_give_identical_bytes(void **state)
{
    fit_fixture *fx = *state;
    codebook_fit_options o = fx->opts;
    o.max_fit_tokens = 500; /* the seed chooses the basis subsample */
    o.seed = 7;
    codebook *a, *b, *c;
    assert_int_equal(codebook_fit(&fx->in, &o, &a, NULL), ALKFW_OK);
    assert_int_equal(codebook_fit(&fx->in, &o, &b, NULL), ALKFW_OK);
    o.seed = 8;
    assert_int_equal(codebook_fit(&fx->in, &o, &c, NULL), ALKFW_OK);
    void *da, *db, *dc;
    size_t na, nb, nc;
    assert_int_equal(codebook_serialize(a, &da, &na, NULL), ALKFW_OK);
    assert_int_equal(codebook_serialize(b, &db, &nb, NULL), ALKFW_OK);
    assert_int_equal(codebook_serialize(c, &dc, &nc, NULL), ALKFW_OK);
    assert_int_equal(na, nb);
    assert_memory_equal(da, db, na);
    assert_true(na != nc || memcmp(da, dc, na) != 0);
    free(da);
    free(db);
    free(dc);
    codebook_free(a);
    codebook_free(b);
    codebook_free(c);
}

static void bad_fit_inputs_are_refused_with_reasons(void **state)
{
    fit_fixture *fx = *state;
    codebook *cb;
    alkfw_error err;
    codebook_fit_options o = fx->opts;
    o.k = 65;
    assert_int_equal(codebook_fit(&fx->in, &o, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "k = 65"));

    o = fx->opts;
    o.fpr_dangerous = 0.2; /* above the suspicious rate */
    assert_int_equal(codebook_fit(&fx->in, &o, &cb, &err), ALKFW_ERR_ARGUMENT);

    codebook_fit_input in = fx->in;
    int *label = malloc(in.n_texts * sizeof *label);
    memcpy(label, fx->label, in.n_texts * sizeof *label);
    label[3] = 2; /* no third direction */
    in.label = label;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "text 3 has label 2"));
    free(label);

    /* no jailbreak texts in training */
    int *is_val = malloc(fx->in.n_texts * sizeof *is_val);
    for (size_t i = 0; i < fx->in.n_texts; i++)
        is_val[i] = fx->is_val[i] || fx->label[i] == 1;
    in = fx->in;
    in.is_val = is_val;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "jailbreak"));

    /* no benign validation texts */
    for (size_t i = 0; i < fx->in.n_texts; i++)
        is_val[i] = fx->is_val[i] && fx->label[i] != -1;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "no benign texts"));
    free(is_val);

    /* a text running past the activations */
    size_t *len = malloc(fx->in.n_texts * sizeof *len);
    memcpy(len, fx->len, fx->in.n_texts * sizeof *len);
    len[fx->in.n_texts - 1] += 1;
    in = fx->in;
    in.text_len = len;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "outside"));
    free(len);
}

/* Activations of rank 2 with k = 3: the third coordinate is constant up to rounding, so its
 * quantile knots tie and must be pushed apart into a valid, strictly increasing spline. */
static void rank_deficient_activations_still_give_valid_splines(void **state)
{
    fit_fixture *fx = *state;
    size_t N = fx->in.n_tokens;
    float *acts = malloc(N * 16 * sizeof *acts);
    for (size_t t = 0; t < N; t++)
        for (int j = 0; j < 16; j++) {
            float u = fx->acts[t * 16], v = fx->acts[t * 16 + 1];
            acts[t * 16 + j] = j % 2 ? u + 0.5f * v : (j == 0 ? u : 2.0f * v - 1.0f);
        }
    codebook_fit_input in = fx->in;
    in.acts = acts;
    codebook *cb;
    alkfw_error err;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_OK);
    assert_int_equal(codebook_validate(cb, &err), ALKFW_OK);
    for (int r = 0; r <= cb->k; r++)
        for (int j = 1; j < cb->n_knots; j++)
            assert_true(cb->knots[r * cb->n_knots + j] > cb->knots[r * cb->n_knots + j - 1]);
    codebook_free(cb);
    free(acts);
}

static void constant_layer_is_refused_as_degenerate(void **state)
{
    fit_fixture *fx = *state;
    size_t N = fx->in.n_tokens;
    float *acts = malloc(N * 16 * sizeof *acts);
    memcpy(acts, fx->acts, N * 16 * sizeof *acts);
    for (size_t t = 0; t < N; t++)
        for (int j = 8; j < 16; j++)
            acts[t * 16 + j] = 1.5f; /* layer 1 never varies */
    codebook_fit_input in = fx->in;
    in.acts = acts;
    codebook *cb;
    alkfw_error err;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_FORMAT);
    assert_non_null(strstr(err.message, "layer 1 (hidden state 5) has no variance"));
    acts[5] = NAN;
    assert_int_equal(codebook_fit(&in, &fx->opts, &cb, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "non-finite"));
    free(acts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(standardization_matches_numpy),
        cmocka_unit_test(basis_is_the_signed_top_eigenvectors_of_numpy),
        cmocka_unit_test(splines_match_numpy_quantiles_and_fritsch_carlson),
        cmocka_unit_test(direction_models_match_sklearn_liblinear),
        cmocka_unit_test(thresholds_match_reference_and_keep_target_fpr),
        cmocka_unit_test(validation_report_shows_separation),
        cmocka_unit_test(report_breaks_validation_down_by_source),
        cmocka_unit_test(fitted_splines_are_increasing_cdfs_with_round_trip_inverse),
        cmocka_unit_test(same_input_and_seed_give_identical_bytes),
        cmocka_unit_test(bad_fit_inputs_are_refused_with_reasons),
        cmocka_unit_test(rank_deficient_activations_still_give_valid_splines),
        cmocka_unit_test(constant_layer_is_refused_as_degenerate),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
