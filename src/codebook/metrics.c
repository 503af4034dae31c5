/*
 * metrics.c - detection metrics over scored texts (see metrics.h for the conventions).
 */
#include "codebook/metrics.h"

#include "common/error.h"

#include <math.h>
#include <stdlib.h>

/* One scored example. */
typedef struct scored {
    double score;
    int label;
} scored;

/* Orders by ascending score, NaN first, so sorting is total and deterministic. */
static int cmp_score(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) ? (isnan(b) ? 0 : -1) : 1;
    return a < b ? -1 : a > b ? 1 : 0;
}

static int cmp_scored(const void *pa, const void *pb)
{
    const scored *a = pa, *b = pb;
    int c = cmp_score(a->score, b->score);
    return c ? c : a->label - b->label;
}

static int cmp_double_desc(const void *pa, const void *pb)
{
    return -cmp_score(*(const double *)pa, *(const double *)pb);
}

/* Copies the examples sorted by ascending score; NULL when out of memory. */
static scored *sorted_copy(const double *scores, const int *labels, size_t n, size_t *n_pos)
{
    scored *s = malloc((n ? n : 1) * sizeof *s);
    if (!s)
        return NULL;
    *n_pos = 0;
    for (size_t i = 0; i < n; i++) {
        s[i].score = scores[i];
        s[i].label = labels[i] ? 1 : 0;
        *n_pos += (size_t)s[i].label;
    }
    qsort(s, n, sizeof *s, cmp_scored);
    return s;
}

double metrics_roc_auc(const double *scores, const int *labels, size_t n)
{
    size_t n_pos;
    scored *s = sorted_copy(scores, labels, n, &n_pos);
    if (!s)
        return NAN;
    size_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(s);
        return NAN;
    }

    /* sum of the positives' ranks, tied groups sharing their mean rank */
    double rank_sum = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        size_t pos_in_group = 0;
        while (j < n && cmp_score(s[j].score, s[i].score) == 0) {
            pos_in_group += (size_t)s[j].label;
            j++;
        }
        double mid_rank = 0.5 * ((double)(i + 1) + (double)j);
        rank_sum += mid_rank * (double)pos_in_group;
        i = j;
    }
    free(s);
    double u = rank_sum - 0.5 * (double)n_pos * ((double)n_pos + 1.0);
    return u / ((double)n_pos * (double)n_neg);
}

double metrics_threshold_for_fpr(const double *scores, const int *labels, size_t n,
                                 double target_fpr)
{
    size_t n_neg = 0;
    for (size_t i = 0; i < n; i++)
        n_neg += labels[i] ? 0 : 1;
    if (n_neg == 0)
        return NAN;
    if (!(target_fpr > 0.0))
        target_fpr = 0.0;
    double allowed = floor(target_fpr * (double)n_neg + 1e-9);
    if (allowed >= (double)n_neg)
        return -INFINITY;

    double *neg = malloc(n_neg * sizeof *neg);
    if (!neg)
        return NAN;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (!labels[i])
            neg[m++] = scores[i];
    qsort(neg, n_neg, sizeof *neg, cmp_double_desc);
    /* at most `allowed` negatives lie strictly above the (allowed + 1)-th largest */
    double t = neg[(size_t)allowed];
    free(neg);
    return t;
}

double metrics_recall_at_fpr(const double *scores, const int *labels, size_t n, double target_fpr)
{
    double t = metrics_threshold_for_fpr(scores, labels, n, target_fpr);
    if (isnan(t))
        return NAN;
    metrics_confusion c = metrics_confusion_at(scores, labels, n, t);
    if (c.tp + c.fn == 0)
        return NAN;
    return (double)c.tp / (double)(c.tp + c.fn);
}

metrics_confusion metrics_confusion_at(const double *scores, const int *labels, size_t n,
                                       double threshold)
{
    metrics_confusion c = {0, 0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int flagged = scores[i] > threshold;
        if (labels[i])
            flagged ? c.tp++ : c.fn++;
        else
            flagged ? c.fp++ : c.tn++;
    }
    return c;
}

alkfw_status metrics_roc_curve(const double *scores, const int *labels, size_t n, double **fpr,
                               double **tpr, double **thresholds, size_t *n_points,
                               alkfw_error *err)
{
    *n_points = 0;
    if (fpr)
        *fpr = NULL;
    if (tpr)
        *tpr = NULL;
    if (thresholds)
        *thresholds = NULL;

    size_t n_pos;
    scored *s = sorted_copy(scores, labels, n, &n_pos);
    if (!s)
        return error_set(err, ALKFW_ERR_NOMEM, "roc curve: out of memory");
    size_t n_neg = n - n_pos;
    if (n_pos == 0 || n_neg == 0) {
        free(s);
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "roc curve: needs positives and negatives (%zu and %zu given)", n_pos,
                         n_neg);
    }

    double *f = malloc((n + 1) * sizeof *f), *t = malloc((n + 1) * sizeof *t),
           *th = malloc((n + 1) * sizeof *th);
    if (!f || !t || !th) {
        free(s);
        free(f);
        free(t);
        free(th);
        return error_set(err, ALKFW_ERR_NOMEM, "roc curve: out of memory");
    }

    /* walk from the highest score down; each distinct score adds one point */
    size_t k = 0, tp = 0, fp = 0;
    f[k] = 0.0;
    t[k] = 0.0;
    th[k++] = INFINITY;
    for (size_t i = n; i > 0;) {
        size_t j = i;
        double v = s[i - 1].score;
        while (j > 0 && cmp_score(s[j - 1].score, v) == 0) {
            if (s[j - 1].label)
                tp++;
            else
                fp++;
            j--;
        }
        f[k] = (double)fp / (double)n_neg;
        t[k] = (double)tp / (double)n_pos;
        th[k++] = v;
        i = j;
    }
    free(s);
    *n_points = k;
    if (fpr)
        *fpr = f;
    else
        free(f);
    if (tpr)
        *tpr = t;
    else
        free(t);
    if (thresholds)
        *thresholds = th;
    else
        free(th);
    return ALKFW_OK;
}

double metrics_precision(metrics_confusion c)
{
    return c.tp + c.fp ? (double)c.tp / (double)(c.tp + c.fp) : 0.0;
}

double metrics_recall(metrics_confusion c)
{
    return c.tp + c.fn ? (double)c.tp / (double)(c.tp + c.fn) : 0.0;
}

double metrics_f1(metrics_confusion c)
{
    double p = metrics_precision(c), r = metrics_recall(c);
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}
