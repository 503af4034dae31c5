/*
 * test_score.c - the screening math agrees with the independent numpy reference
 * (tools/ref_screen.py) to 1e-5, splines are strictly increasing CDFs strictly inside (0,1)
 * whose inverse round-trips, and incremental features equal whole-text features.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codebook/codebook.h"
#include "formats/safetensors.h"

#define FIXTURES ALKFW_SOURCE_DIR "/tests/fixtures/codebook/"
#define TOL 1e-5

typedef struct fixture {
    codebook *cb;
    safetensors_file *cases;
    int n_cases;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    alkfw_error err;
    if (codebook_load(FIXTURES "screen_codebook.safetensors", &fx->cb, &err) != ALKFW_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    if (safetensors_open(FIXTURES "screen_cases.safetensors", &fx->cases, &err) != ALKFW_OK) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    fx->n_cases = atoi(safetensors_metadata_get(fx->cases, "n_cases"));
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    codebook_free(fx->cb);
    safetensors_close(fx->cases);
    free(fx);
    return 0;
}

/* The tensor "case<c>.<what>" of the cases file; fails the test when absent. */
static const safetensors_tensor *get(const fixture *fx, int c, const char *what)
{
    char name[96];
    snprintf(name, sizeof name, "case%d.%s", c, what);
    const safetensors_tensor *t = safetensors_find(fx->cases, name);
    if (!t)
        fail_msg("fixture tensor %s missing", name);
    return t;
}

/* Element i of an F64 tensor (the data has no alignment promise). */
static double f64_at(const safetensors_tensor *t, size_t i)
{
    double v;
    assert_true(i < t->numel);
    memcpy(&v, (const char *)t->data + i * 8, 8);
    return v;
}

static int64_t i64_at(const safetensors_tensor *t, size_t i)
{
    int64_t v;
    assert_true(i < t->numel);
    memcpy(&v, (const char *)t->data + i * 8, 8);
    return v;
}

/* Copies the F32 states of case c, returns them and their token count. */
static float *case_states(const fixture *fx, int c, size_t *T)
{
    const safetensors_tensor *t = get(fx, c, "states");
    assert_int_equal(t->ndim, 3);
    assert_int_equal(t->shape[0], fx->cb->n_layers);
    assert_int_equal(t->shape[2], fx->cb->hidden);
    *T = (size_t)t->shape[1];
    float *s = malloc(t->nbytes);
    memcpy(s, t->data, t->nbytes);
    return s;
}

static void assert_close(double got, double want, const char *what, int c, size_t i)
{
    if (!(fabs(got - want) <= TOL))
        fail_msg("case %d %s[%zu]: C %.12g, reference %.12g", c, what, i, got, want);
}

/* Compares one screening mode of every case with the reference. */
static void check_mode(const fixture *fx, const char *mode, int window, int last)
{
    for (int c = 0; c < fx->n_cases; c++) {
        size_t T;
        float *states = case_states(fx, c, &T);
        codebook_score_options opts;
        codebook_score_options_init(&opts);
        opts.smoothing_window = window;
        opts.last_token = last;
        codebook_result res;
        alkfw_error err;
        assert_int_equal(codebook_score(fx->cb, states, T, &opts, &res, &err), ALKFW_OK);

        char key[64];
        int n_out = fx->cb->n_dirs + 1;
        snprintf(key, sizeof key, "%s.p", mode);
        const safetensors_tensor *p = get(fx, c, key);
        assert_int_equal(p->numel, (size_t)n_out * T);
        for (size_t i = 0; i < p->numel; i++)
            assert_close(res.p[i], f64_at(p, i), key, c, i);
        for (int d = 0; d < n_out; d++) {
            snprintf(key, sizeof key, "%s.mean", mode);
            assert_close(res.mean[d], f64_at(get(fx, c, key), (size_t)d), key, c, (size_t)d);
            snprintf(key, sizeof key, "%s.max", mode);
            assert_close(res.max[d], f64_at(get(fx, c, key), (size_t)d), key, c, (size_t)d);
            /* the position of the max: C's is a maximum of the reference's P, and it is the
             * reference's position whenever the maximum is clear of rounding */
            snprintf(key, sizeof key, "%s.argmax", mode);
            int64_t want = i64_at(get(fx, c, key), (size_t)d);
            assert_true(res.argmax[d] < T);
            assert_close(f64_at(p, (size_t)d * T + res.argmax[d]), res.max[d], key, c, (size_t)d);
            int clear = 1;
            for (size_t t = 0; t < T; t++)
                if ((int64_t)t != want && f64_at(p, (size_t)d * T + t) > res.max[d] - TOL)
                    clear = 0;
            if (clear)
                assert_int_equal(res.argmax[d], want);
        }
        snprintf(key, sizeof key, "%s.score", mode);
        assert_close(res.score, f64_at(get(fx, c, key), 0), key, c, 0);
        snprintf(key, sizeof key, "%s.level", mode);
        int32_t level;
        memcpy(&level, get(fx, c, key)->data, 4);
        assert_int_equal(res.level, level);
        codebook_result_free(&res);
        free(states);
    }
}

static void token_features_match_reference(void **state)
{
    fixture *fx = *state;
    size_t nf = CODEBOOK_N_FEATURES(fx->cb);
    for (int c = 0; c < fx->n_cases; c++) {
        size_t T;
        float *states = case_states(fx, c, &T);
        double *feat = malloc(T * nf * sizeof *feat);
        codebook_features(fx->cb, states, T, feat);
        const safetensors_tensor *want = get(fx, c, "features");
        assert_int_equal(want->numel, T * nf);
        for (size_t i = 0; i < T * nf; i++)
            assert_close(feat[i], f64_at(want, i), "features", c, i);
        free(feat);
        free(states);
    }
}

static void screen_with_codebook_window_matches_reference(void **state)
{
    check_mode(*state, "win", -1, 0);
}

static void screen_without_smoothing_matches_reference(void **state)
{
    check_mode(*state, "off", 0, 0);
}

static void last_token_mode_matches_reference(void **state)
{
    check_mode(*state, "last", -1, 1);
}

/* Features computed token by token from a differently laid out buffer (one token's layers
 * concatenated, as a streaming screener would hold them) equal the whole-text features. */
static void incremental_features_equal_whole_text(void **state)
{
    fixture *fx = *state;
    const codebook *cb = fx->cb;
    size_t nf = CODEBOOK_N_FEATURES(cb), H = (size_t)cb->hidden;
    size_t T;
    float *states = case_states(fx, fx->n_cases - 1, &T);
    double *whole = malloc(T * nf * sizeof *whole), *inc = malloc(T * nf * sizeof *inc);
    float *one = malloc((size_t)cb->n_layers * H * sizeof *one);
    codebook_features(cb, states, T, whole);
    for (size_t t = 0; t < T; t++) {
        for (int l = 0; l < cb->n_layers; l++)
            memcpy(one + (size_t)l * H, states + ((size_t)l * T + t) * H, H * sizeof *one);
        codebook_token_features(cb, one, H, inc + t * nf, NULL);
    }
    for (size_t i = 0; i < T * nf; i++)
        assert_true(whole[i] == inc[i]);

    /* aggregating a growing prefix equals screening that prefix as a whole text */
    codebook_result a, b;
    assert_int_equal(codebook_aggregate(cb, inc, 7, NULL, &a, NULL), ALKFW_OK);
    float *prefix = malloc((size_t)cb->n_layers * 7 * H * sizeof *prefix);
    for (int l = 0; l < cb->n_layers; l++)
        memcpy(prefix + (size_t)l * 7 * H, states + (size_t)l * T * H, 7 * H * sizeof *prefix);
    assert_int_equal(codebook_score(cb, prefix, 7, NULL, &b, NULL), ALKFW_OK);
    for (int d = 0; d <= cb->n_dirs; d++)
        assert_true(fabs(a.mean[d] - b.mean[d]) <= 1e-12);
    assert_true(a.score == b.score);
    codebook_result_free(&a);
    codebook_result_free(&b);
    free(prefix);
    free(one);
    free(inc);
    free(whole);
    free(states);
}

/* ---- splines ---------------------------------------------------------------------------- */

static void spline_is_strictly_increasing_across_knots_and_tails(void **state)
{
    fixture *fx = *state;
    for (int r = 0; r <= fx->cb->k; r++) {
        const float *x = fx->cb->knots + (size_t)r * fx->cb->n_knots;
        double lo = x[0] - 5.0, hi = x[fx->cb->n_knots - 1] + 5.0;
        double prev_q, prev = codebook_spline_eval(fx->cb, r, lo, &prev_q);
        for (int i = 1; i <= 20000; i++) {
            double z = lo + (hi - lo) * i / 20000.0, q;
            double f = codebook_spline_eval(fx->cb, r, z, &q);
            /* near 1, F itself runs out of doubles and the complement 1 - F carries the order;
             * once exp() underflows both are held at DBL_MIN (checked in the next test) */
            int saturated = (f == CODEBOOK_CDF_TINY && prev == f) || q == CODEBOOK_CDF_TINY;
            if (!saturated && !(f > prev || (f == prev && q < prev_q)))
                fail_msg("row %d: F(%.9g) = %.17g (1 - F = %.3g) is not above %.17g", r, z, f, q,
                         prev);
            prev = f;
            prev_q = q;
        }
    }
}

static void spline_stays_strictly_inside_unit_interval_in_far_tails(void **state)
{
    fixture *fx = *state;
    const double zs[] = {-INFINITY, -1e300, -1e6, -1e3, 1e3, 1e6, 1e300, INFINITY};
    for (int r = 0; r <= fx->cb->k; r++)
        for (size_t i = 0; i < sizeof zs / sizeof *zs; i++) {
            double q;
            double f = codebook_spline_eval(fx->cb, r, zs[i], &q);
            assert_true(f > 0.0 && f < 1.0);
            assert_true(q > 0.0 && q < 1.0);
        }
    /* the complement keeps the upper tail's precision: far above, 1 - F is tiny, not 0 */
    double q;
    codebook_spline_eval(fx->cb, 0, 60.0, &q);
    assert_true(q > 0.0 && q < 1e-10);
    assert_true(isnan(codebook_spline_eval(fx->cb, 0, NAN, NULL)));
}

static void spline_tails_are_exponential_and_continuous(void **state)
{
    fixture *fx = *state;
    const codebook *cb = fx->cb;
    int K = cb->n_knots;
    const float *x = cb->knots, *F = cb->cdf, *m = cb->slope;
    /* value continuity at both end knots */
    assert_true(fabs(codebook_spline_eval(cb, 0, x[0] - 1e-9, NULL) - F[0]) < 1e-7);
    assert_true(fabs(codebook_spline_eval(cb, 0, x[K - 1] + 1e-9, NULL) - F[K - 1]) < 1e-7);
    /* the lower tail formula F_0 exp(r (z - x_0)) with r = m_0 / F_0 */
    double z = x[0] - 2.0;
    double want = F[0] * exp((double)m[0] / F[0] * (z - x[0]));
    assert_true(fabs(codebook_spline_eval(cb, 0, z, NULL) - want) <= 1e-15);
}

static void spline_inverse_round_trips(void **state)
{
    fixture *fx = *state;
    for (int r = 0; r <= fx->cb->k; r++) {
        for (int i = 1; i < 1000; i++) {
            double p = i / 1000.0;
            double z = codebook_spline_inverse(fx->cb, r, p);
            double back = codebook_spline_eval(fx->cb, r, z, NULL);
            if (!(fabs(back - p) <= 1e-9))
                fail_msg("row %d: F(F^-1(%g)) = %.17g", r, p, back);
        }
        const double tails[] = {1e-30, 1e-9, 1 - 1e-9};
        for (size_t i = 0; i < 3; i++) {
            double z = codebook_spline_inverse(fx->cb, r, tails[i]);
            double back = codebook_spline_eval(fx->cb, r, z, NULL);
            assert_true(fabs(back - tails[i]) <= 1e-9 * tails[i] + 1e-15);
        }
        for (int i = -100; i <= 100; i++) {
            double z = i * 0.05 + fx->cb->knots[(size_t)r * fx->cb->n_knots];
            double p = codebook_spline_eval(fx->cb, r, z, NULL);
            double back = codebook_spline_inverse(fx->cb, r, p);
            if (!(fabs(back - z) <= 1e-7 * (1 + fabs(z))))
                fail_msg("row %d: F^-1(F(%.9g)) = %.17g", r, z, back);
        }
    }
}

/* ---- the alarm --------------------------------------------------------------------------- */

static void levels_use_strict_greater_than_thresholds(void **state)
{
    fixture *fx = *state;
    size_t T;
    float *states = case_states(fx, 3, &T);
    codebook_result res;
    assert_int_equal(codebook_score(fx->cb, states, T, NULL, &res, NULL), ALKFW_OK);
    double score = res.score;
    codebook_result_free(&res);

    codebook_score_options opts;
    codebook_score_options_init(&opts);
    opts.threshold_suspicious = score; /* equal: not above */
    opts.threshold_dangerous = 1.0;
    assert_int_equal(codebook_score(fx->cb, states, T, &opts, &res, NULL), ALKFW_OK);
    assert_int_equal(res.level, CODEBOOK_CLEAR);
    codebook_result_free(&res);

    opts.threshold_suspicious = nextafter(score, 0.0);
    assert_int_equal(codebook_score(fx->cb, states, T, &opts, &res, NULL), ALKFW_OK);
    assert_int_equal(res.level, CODEBOOK_SUSPICIOUS);
    assert_true(res.threshold_suspicious == opts.threshold_suspicious);
    codebook_result_free(&res);

    opts.threshold_dangerous = nextafter(score, 0.0);
    assert_int_equal(codebook_score(fx->cb, states, T, &opts, &res, NULL), ALKFW_OK);
    assert_int_equal(res.level, CODEBOOK_DANGEROUS);
    assert_string_equal(codebook_level_name(res.level), "DANGEROUS");
    assert_true(res.score == fx->cb->dir_alpha[res.top] * res.mean[res.top]);
    codebook_result_free(&res);
    free(states);
}

static void empty_text_is_an_argument_error(void **state)
{
    fixture *fx = *state;
    codebook_result res;
    alkfw_error err;
    float dummy = 0;
    assert_int_equal(codebook_score(fx->cb, &dummy, 0, NULL, &res, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "0 tokens"));
    assert_null(res.p);
}

static void non_finite_activation_is_reported_not_scored(void **state)
{
    fixture *fx = *state;
    size_t T;
    float *states = case_states(fx, 2, &T);
    states[(size_t)fx->cb->hidden * 3 + 1] = NAN; /* layer 0, token 3 */
    codebook_result res;
    alkfw_error err;
    assert_int_equal(codebook_score(fx->cb, states, T, NULL, &res, &err), ALKFW_ERR_ARGUMENT);
    assert_non_null(strstr(err.message, "token 3"));
    codebook_result_free(&res);
    free(states);
}

static void output_names_end_with_anomaly(void **state)
{
    fixture *fx = *state;
    assert_string_equal(codebook_output_name(fx->cb, 0), "injection");
    assert_string_equal(codebook_output_name(fx->cb, 1), "jailbreak");
    assert_string_equal(codebook_output_name(fx->cb, 2), "anomaly");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_features_match_reference),
        cmocka_unit_test(screen_with_codebook_window_matches_reference),
        cmocka_unit_test(screen_without_smoothing_matches_reference),
        cmocka_unit_test(last_token_mode_matches_reference),
        cmocka_unit_test(incremental_features_equal_whole_text),
        cmocka_unit_test(spline_is_strictly_increasing_across_knots_and_tails),
        cmocka_unit_test(spline_stays_strictly_inside_unit_interval_in_far_tails),
        cmocka_unit_test(spline_tails_are_exponential_and_continuous),
        cmocka_unit_test(spline_inverse_round_trips),
        cmocka_unit_test(levels_use_strict_greater_than_thresholds),
        cmocka_unit_test(empty_text_is_an_argument_error),
        cmocka_unit_test(non_finite_activation_is_reported_not_scored),
        cmocka_unit_test(output_names_end_with_anomaly),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
