/*
 * metrics.h - detection metrics over scored texts: ROC AUC, thresholds for a target false
 * positive rate, recall at that rate, ROC curves and confusion counts.
 *
 * Conventions: labels[i] is 1 for a positive (an attack) and 0 for a negative (benign);
 * a text is flagged when its score is strictly greater than the threshold, as the alarm levels
 * are (DESIGN §2 step 10). Scores should be finite; a NaN score is ordered below every number
 * so the functions stay total and deterministic.
 */
#ifndef ALKFW_CODEBOOK_METRICS_H
#define ALKFW_CODEBOOK_METRICS_H

#include "alkfw.h"

#include <stddef.h>

/* Counts of a confusion matrix at one threshold. */
typedef struct metrics_confusion {
    size_t tp, fp, tn, fn;
} metrics_confusion;

/* The area under the ROC curve as the Mann-Whitney statistic: the probability that a random
 * positive scores higher than a random negative, ties counting one half. Returns NaN when
 * either class is empty or an allocation fails. O(n log n). */
double metrics_roc_auc(const double *scores, const int *labels, size_t n);

/* The smallest threshold t such that the fraction of negatives with score > t is at most
 * target_fpr: the (floor(target_fpr * n_neg) + 1)-th largest negative score. Returns -INFINITY
 * when every negative may be flagged (target_fpr >= 1), and NaN when there are no negatives
 * or an allocation fails. */
double metrics_threshold_for_fpr(const double *scores, const int *labels, size_t n,
                                 double target_fpr);

/* The fraction of positives with score > metrics_threshold_for_fpr(...): the recall at that
 * false positive rate. Returns NaN when either class is empty or an allocation fails. */
double metrics_recall_at_fpr(const double *scores, const int *labels, size_t n, double target_fpr);

/* The confusion counts when flagging score > threshold. Never fails. */
metrics_confusion metrics_confusion_at(const double *scores, const int *labels, size_t n,
                                       double threshold);

/* The ROC curve: one point per distinct score (taken as the threshold, flagging score >= it,
 * as sklearn's roc_curve does), from (0,0) up to (1,1), in increasing FPR. On success *fpr,
 * *tpr and *thresholds (each NULL-able to skip) are malloc'ed arrays of *n_points values the
 * caller frees; thresholds[0] is +infinity. Errors: ALKFW_ERR_ARGUMENT (a class is empty),
 * ALKFW_ERR_NOMEM. */
alkfw_status metrics_roc_curve(const double *scores, const int *labels, size_t n, double **fpr,
                               double **tpr, double **thresholds, size_t *n_points,
                               alkfw_error *err);

/* Precision, recall and F1 from confusion counts (0 where a denominator is 0). */
double metrics_precision(metrics_confusion c);
double metrics_recall(metrics_confusion c);
double metrics_f1(metrics_confusion c);

#endif
