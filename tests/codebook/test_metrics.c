/*
 * test_metrics.c - ROC AUC, ROC curve, thresholds and recall at a false positive rate agree
 * with scikit-learn and numpy (tests/fixtures/codebook/metrics_cases.safetensors).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codebook/metrics.h"
#include "formats/safetensors.h"

#define FIXTURE ALKFW_SOURCE_DIR "/tests/fixtures/codebook/metrics_cases.safetensors"

typedef struct cases {
    safetensors_file *f;
    size_t n;
    double *scores;
    int *labels;
} cases;

/* A copy of F64 tensor `name` (n elements stored in *n when not NULL). */
static double *f64(safetensors_file *f, const char *name, size_t *n)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    assert_non_null(t);
    assert_int_equal(t->dtype, SAFETENSORS_F64);
    double *v = malloc(t->nbytes ? t->nbytes : 1);
    memcpy(v, t->data, t->nbytes);
    if (n)
        *n = t->numel;
    return v;
}

static int setup(void **state)
{
    cases *c = calloc(1, sizeof *c);
    if (safetensors_open(FIXTURE, &c->f, NULL) != ALKFW_OK)
        return -1;
    c->scores = f64(c->f, "scores", &c->n);
    const safetensors_tensor *t = safetensors_find(c->f, "labels");
    c->labels = malloc(c->n * sizeof *c->labels);
    memcpy(c->labels, t->data, c->n * 4);
    *state = c;
    return 0;
}

static int teardown(void **state)
{
    cases *c = *state;
    free(c->scores);
    free(c->labels);
    safetensors_close(c->f);
    free(c);
    return 0;
}

static void roc_auc_matches_sklearn_with_ties(void **state)
{
    cases *c = *state;
    double *want = f64(c->f, "auc", NULL);
    assert_true(fabs(metrics_roc_auc(c->scores, c->labels, c->n) - want[0]) < 1e-12);
    free(want);
}

static void roc_auc_of_perfect_inverted_and_tied_scores(void **state)
{
    (void)state;
    double s[] = {0.1, 0.2, 0.8, 0.9};
    int good[] = {0, 0, 1, 1}, bad[] = {1, 1, 0, 0};
    double tied[] = {0.5, 0.5, 0.5, 0.5};
    assert_true(metrics_roc_auc(s, good, 4) == 1.0);
    assert_true(metrics_roc_auc(s, bad, 4) == 0.0);
    assert_true(metrics_roc_auc(tied, good, 4) == 0.5);
    assert_true(isnan(metrics_roc_auc(s, (int[]){0, 0, 0, 0}, 4)));
}

static void roc_curve_matches_sklearn(void **state)
{
    cases *c = *state;
    size_t n_f, n_t, n_th, n;
    double *wf = f64(c->f, "roc.fpr", &n_f), *wt = f64(c->f, "roc.tpr", &n_t);
    double *wth = f64(c->f, "roc.thresholds", &n_th);
    double *f, *t, *th;
    assert_int_equal(metrics_roc_curve(c->scores, c->labels, c->n, &f, &t, &th, &n, NULL),
                     ALKFW_OK);
    assert_int_equal(n, n_f);
    for (size_t i = 0; i < n; i++) {
        assert_true(fabs(f[i] - wf[i]) < 1e-12);
        assert_true(fabs(t[i] - wt[i]) < 1e-12);
        if (i > 0) /* sklearn's first threshold is max + 1, ours +infinity */
            assert_true(th[i] == wth[i]);
    }
    assert_true(isinf(th[0]));
    free(f);
    free(t);
    free(th);
    free(wf);
    free(wt);
    free(wth);
}

static void threshold_and_recall_at_fpr_match_numpy(void **state)
{
    cases *c = *state;
    size_t n;
    double *targets = f64(c->f, "targets", &n);
    double *thr = f64(c->f, "threshold_at", NULL), *rec = f64(c->f, "recall_at", NULL);
    for (size_t i = 0; i < n; i++) {
        double t = metrics_threshold_for_fpr(c->scores, c->labels, c->n, targets[i]);
        assert_true(t == thr[i]);
        assert_true(fabs(metrics_recall_at_fpr(c->scores, c->labels, c->n, targets[i]) - rec[i]) <
                    1e-12);
        /* the promise: at most target * n_neg negatives strictly above the threshold */
        metrics_confusion m = metrics_confusion_at(c->scores, c->labels, c->n, t);
        assert_true((double)m.fp <= targets[i] * (double)(m.fp + m.tn) + 1e-9);
    }
    free(targets);
    free(thr);
    free(rec);
}

static void threshold_for_full_fpr_flags_everything(void **state)
{
    (void)state;
    double s[] = {0.1, 0.2, 0.8};
    int l[] = {0, 0, 1};
    assert_true(isinf(metrics_threshold_for_fpr(s, l, 3, 1.0)));
    assert_true(metrics_threshold_for_fpr(s, l, 3, 0.0) == 0.2);
    assert_true(metrics_threshold_for_fpr(s, l, 3, 0.5) == 0.1);
    assert_true(isnan(metrics_threshold_for_fpr(s, (int[]){1, 1, 1}, 3, 0.1)));
}

static void confusion_precision_recall_f1(void **state)
{
    (void)state;
    double s[] = {0.9, 0.8, 0.4, 0.3, 0.6};
    int l[] = {1, 0, 1, 0, 0};
    metrics_confusion c = metrics_confusion_at(s, l, 5, 0.5);
    assert_int_equal(c.tp, 1);
    assert_int_equal(c.fp, 2);
    assert_int_equal(c.tn, 1);
    assert_int_equal(c.fn, 1);
    assert_true(fabs(metrics_precision(c) - 1.0 / 3) < 1e-15);
    assert_true(fabs(metrics_recall(c) - 0.5) < 1e-15);
    assert_true(fabs(metrics_f1(c) - 0.4) < 1e-15);
    metrics_confusion z = {0, 0, 0, 0};
    assert_true(metrics_f1(z) == 0.0);
}

static void roc_curve_needs_both_classes(void **state)
{
    (void)state;
    double s[] = {0.1, 0.2};
    double *f;
    size_t n;
    alkfw_error err;
    assert_int_equal(metrics_roc_curve(s, (int[]){1, 1}, 2, &f, NULL, NULL, &n, &err),
                     ALKFW_ERR_ARGUMENT);
    assert_null(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(roc_auc_matches_sklearn_with_ties),
        cmocka_unit_test(roc_auc_of_perfect_inverted_and_tied_scores),
        cmocka_unit_test(roc_curve_matches_sklearn),
        cmocka_unit_test(threshold_and_recall_at_fpr_match_numpy),
        cmocka_unit_test(threshold_for_full_fpr_flags_everything),
        cmocka_unit_test(confusion_precision_recall_f1),
        cmocka_unit_test(roc_curve_needs_both_classes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
