/*
 * score.c - the screening math of a codebook (DESIGN §2 steps 3-10, §4 "Exact evaluation"):
 * spline CDFs, copula features, smoothing, direction models, aggregation and the alarm level.
 *
 * Everything is computed in double from the stored float parameters, so an independent
 * implementation that follows DESIGN §4 in double agrees to rounding.
 */
#include "codebook/codebook.h"

#include "common/error.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* 1 - 2^-53, the largest double below 1. */
#define CDF_ONE_MINUS 0.99999999999999988898

const char *codebook_level_name(codebook_level level)
{
    switch (level) {
    case CODEBOOK_CLEAR:
        return "CLEAR";
    case CODEBOOK_SUSPICIOUS:
        return "SUSPICIOUS";
    case CODEBOOK_DANGEROUS:
        return "DANGEROUS";
    }
    return "?";
}

/* ---------------------------------------------------------------------------------------- */
/* Spline CDFs                                                                               */
/* ---------------------------------------------------------------------------------------- */

/* Keeps a CDF value and its complement strictly inside (0,1) in double. The exponential tails
 * underflow for far arguments (z = -1e6 gives exp(-huge) = 0), so F is held at least at
 * DBL_MIN below and at most 1 - 2^-53 above; the complement, which the tail surprise reads,
 * is held at least at DBL_MIN too. */
static void clamp_pair(double *f, double *q)
{
    if (!(*f >= CODEBOOK_CDF_TINY))
        *f = CODEBOOK_CDF_TINY;
    if (*f > CDF_ONE_MINUS)
        *f = CDF_ONE_MINUS;
    if (!(*q >= CODEBOOK_CDF_TINY))
        *q = CODEBOOK_CDF_TINY;
    if (*q > CDF_ONE_MINUS)
        *q = CDF_ONE_MINUS;
}

/* Evaluates a monotone cubic Hermite spline with exponential tails at z (DESIGN §4). Returns
 * F(z) and stores 1 - F(z) in *upper when not NULL. NaN gives NaN. Requires n >= 2 and
 * strictly increasing knots (a validated codebook); never reads outside the n entries. */
double codebook_spline_eval_raw(const float *knots, const float *cdf, const float *slope, int n,
                                double z, double *upper)
{
    double f, q;

    if (isnan(z)) {
        if (upper)
            *upper = NAN;
        return NAN;
    }

    double x0 = knots[0], xn = knots[n - 1];
    if (z < x0) {
        /* lower tail: F = F_0 exp(r (z - x_0)), r = m_0 / F_0 */
        double f0 = cdf[0];
        double r = slope[0] / f0;
        f = f0 * exp(r * (z - x0));
        q = 1.0 - f;
    } else if (z > xn) {
        /* upper tail: 1 - F = (1 - F_{K-1}) exp(-r (z - x_{K-1})), r = m_{K-1} / (1 - F_{K-1}) */
        double qn = 1.0 - (double)cdf[n - 1];
        double r = slope[n - 1] / qn;
        q = qn * exp(-r * (z - xn));
        f = 1.0 - q;
    } else {
        /* inside: the interval [x_j, x_{j+1}] holding z, found by bisection */
        int lo = 0, hi = n - 1;
        while (hi - lo > 1) {
            int mid = lo + (hi - lo) / 2;
            if ((double)knots[mid] <= z)
                lo = mid;
            else
                hi = mid;
        }
        double xa = knots[lo], xb = knots[hi];
        double h = xb - xa;
        double t = (z - xa) / h;
        double t2 = t * t, t3 = t2 * t;
        double h00 = 2 * t3 - 3 * t2 + 1, h10 = t3 - 2 * t2 + t;
        double h01 = -2 * t3 + 3 * t2, h11 = t3 - t2;
        f = h00 * cdf[lo] + h10 * h * slope[lo] + h01 * cdf[hi] + h11 * h * slope[hi];
        q = 1.0 - f;
    }
    clamp_pair(&f, &q);
    if (upper)
        *upper = q;
    return f;
}

double codebook_spline_eval(const codebook *cb, int row, double z, double *upper)
{
    size_t off = (size_t)row * (size_t)cb->n_knots;
    return codebook_spline_eval_raw(cb->knots + off, cb->cdf + off, cb->slope + off, cb->n_knots, z,
                                    upper);
}

/* Inverts spline row `row`: closed form in the tails, bisection inside the knot interval
 * whose CDF values bracket p. p is clamped into (0,1); NaN gives NaN. */
double codebook_spline_inverse(const codebook *cb, int row, double p)
{
    size_t off = (size_t)row * (size_t)cb->n_knots;
    const float *x = cb->knots + off, *F = cb->cdf + off, *m = cb->slope + off;
    int n = cb->n_knots;

    if (isnan(p))
        return NAN;
    if (p < CODEBOOK_CDF_TINY)
        p = CODEBOOK_CDF_TINY;
    if (p > CDF_ONE_MINUS)
        p = CDF_ONE_MINUS;

    if (p < (double)F[0]) {
        double r = m[0] / (double)F[0];
        return x[0] + log(p / F[0]) / r;
    }
    if (p > (double)F[n - 1]) {
        double qn = 1.0 - (double)F[n - 1];
        double r = m[n - 1] / qn;
        return x[n - 1] - log((1.0 - p) / qn) / r;
    }

    int lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        int mid = lo + (hi - lo) / 2;
        if ((double)F[mid] <= p)
            lo = mid;
        else
            hi = mid;
    }
    double a = x[lo], b = x[hi];
    for (int it = 0; it < 200 && b - a > 1e-15 * (fabs(a) + fabs(b) + 1e-300); it++) {
        double mid = 0.5 * (a + b);
        if (mid <= a || mid >= b)
            break;
        if (codebook_spline_eval_raw(x, F, m, n, mid, NULL) < p)
            a = mid;
        else
            b = mid;
    }
    return 0.5 * (a + b);
}

/* ---------------------------------------------------------------------------------------- */
/* Per-token features                                                                        */
/* ---------------------------------------------------------------------------------------- */

/* logit(clamp(f, 1e-6, 1 - 1e-6)). */
static double clamped_logit(double f)
{
    if (!(f >= CODEBOOK_FEATURE_CLAMP))
        f = isnan(f) ? f : CODEBOOK_FEATURE_CLAMP;
    if (f > 1.0 - CODEBOOK_FEATURE_CLAMP)
        f = 1.0 - CODEBOOK_FEATURE_CLAMP;
    return log(f) - log1p(-f);
}

/* Activations standardized per block in codebook_project (a stack buffer of doubles). */
#define PROJECT_BLOCK 256

/* Projects one token: z_i = sum_l (basis_i,l . (h_l - mu_l)) / sigma_l, which is basis @ a with
 * a = concat_l((h_l - mu_l) / sigma_l), computed per layer and per block of PROJECT_BLOCK
 * values so nothing is allocated: the centered block is formed once in double and every basis
 * row takes its dot product with four partial sums (independent additions the CPU overlaps). */
void codebook_project(const codebook *cb, const float *h, size_t layer_stride, double *z)
{
    size_t hidden = (size_t)cb->hidden, D = (size_t)cb->n_layers * hidden, k = (size_t)cb->k;
    double d[PROJECT_BLOCK], zl[CODEBOOK_MAX_K];

    for (size_t i = 0; i < k; i++)
        z[i] = 0.0;
    for (int l = 0; l < cb->n_layers; l++) {
        const float *hl = h + (size_t)l * layer_stride;
        const float *mu = cb->norm_mean + (size_t)l * hidden;
        for (size_t i = 0; i < k; i++)
            zl[i] = 0.0;
        for (size_t j0 = 0; j0 < hidden; j0 += PROJECT_BLOCK) {
            size_t n = hidden - j0 < PROJECT_BLOCK ? hidden - j0 : PROJECT_BLOCK;
            for (size_t j = 0; j < n; j++)
                d[j] = (double)hl[j0 + j] - (double)mu[j0 + j];
            for (size_t i = 0; i < k; i++) {
                const float *b = cb->basis + i * D + (size_t)l * hidden + j0;
                double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                size_t j = 0;
                for (; j + 4 <= n; j += 4) {
                    a0 += (double)b[j] * d[j];
                    a1 += (double)b[j + 1] * d[j + 1];
                    a2 += (double)b[j + 2] * d[j + 2];
                    a3 += (double)b[j + 3] * d[j + 3];
                }
                for (; j < n; j++)
                    a0 += (double)b[j] * d[j];
                zl[i] += (a0 + a1) + (a2 + a3);
            }
        }
        double sigma = cb->norm_scale[l];
        for (size_t i = 0; i < k; i++)
            z[i] += zl[i] / sigma;
    }
}

void codebook_token_features(const codebook *cb, const float *h, size_t layer_stride, double *out,
                             double *z_out)
{
    int k = cb->k;
    double z[CODEBOOK_MAX_K], x[CODEBOOK_MAX_K];

    /* standardization and projection */
    codebook_project(cb, h, layer_stride, z);

    /* copula: x_i = F_i(z_i), the scale S and the tail surprise n */
    double S = 0.0, surprise = 0.0;
    for (int i = 0; i < k; i++) {
        double q;
        x[i] = codebook_spline_eval(cb, i, z[i], &q);
        S += x[i];
        surprise += -log(2.0 * (x[i] < q ? x[i] : q));
    }
    surprise /= k;

    /* features f = (S/k, x_1/S, ..., x_{k-1}/S) and their logits */
    out[0] = clamped_logit(S / k);
    for (int i = 1; i < k; i++)
        out[i] = clamped_logit(x[i - 1] / S);

    /* anomaly value through spline row k */
    out[k] = codebook_spline_eval(cb, k, surprise, NULL);

    if (z_out)
        memcpy(z_out, z, (size_t)k * sizeof *z);
}

void codebook_features(const codebook *cb, const float *states, size_t n_tokens, double *out)
{
    size_t hidden = (size_t)cb->hidden, nf = CODEBOOK_N_FEATURES(cb);
    for (size_t t = 0; t < n_tokens; t++)
        codebook_token_features(cb, states + t * hidden, n_tokens * hidden, out + t * nf, NULL);
}

/* ---------------------------------------------------------------------------------------- */
/* Aggregation and the alarm                                                                 */
/* ---------------------------------------------------------------------------------------- */

void codebook_score_options_init(codebook_score_options *opts)
{
    opts->smoothing_window = -1;
    opts->last_token = 0;
    opts->threshold_suspicious = -1.0;
    opts->threshold_dangerous = -1.0;
}

/* The mean of feature rows max(0, t-w+1) .. t into out (nf values), summed oldest first. */
static void window_mean(const double *features, size_t nf, size_t t, size_t w, double *out)
{
    size_t first = t + 1 >= w ? t + 1 - w : 0, count = t - first + 1;
    for (size_t i = 0; i < nf; i++)
        out[i] = 0.0;
    for (size_t s = first; s <= t; s++)
        for (size_t i = 0; i < nf; i++)
            out[i] += features[s * nf + i];
    for (size_t i = 0; i < nf; i++)
        out[i] /= (double)count;
}

void codebook_smooth(const double *features, size_t n_tokens, size_t n_features, int window,
                     double *out)
{
    size_t w = window > 1 ? (size_t)window : 1;
    for (size_t t = 0; t < n_tokens; t++)
        window_mean(features, n_features, t, w, out + t * n_features);
}

/* A sigmoid that neither overflows nor loses the small side. */
static double sigmoid(double x)
{
    if (x >= 0)
        return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

void codebook_result_free(codebook_result *res)
{
    if (!res)
        return;
    free(res->mean);
    free(res->max);
    free(res->argmax);
    free(res->p);
    memset(res, 0, sizeof *res);
}

const char *codebook_output_name(const codebook *cb, int d)
{
    if (d >= 0 && d < cb->n_dirs)
        return cb->directions[d];
    return "anomaly";
}

/* Allocates the arrays of res for n_out outputs over T tokens. */
static alkfw_status result_alloc(codebook_result *res, int n_out, size_t T, alkfw_error *err)
{
    memset(res, 0, sizeof *res);
    if (T > SIZE_MAX / sizeof(double) / (size_t)n_out)
        return error_set(err, ALKFW_ERR_LIMIT, "codebook: %zu tokens is too many to score", T);
    res->mean = calloc((size_t)n_out, sizeof *res->mean);
    res->max = calloc((size_t)n_out, sizeof *res->max);
    res->argmax = calloc((size_t)n_out, sizeof *res->argmax);
    res->p = malloc((size_t)n_out * T * sizeof *res->p);
    if (!res->mean || !res->max || !res->argmax || !res->p) {
        codebook_result_free(res);
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory scoring %zu tokens", T);
    }
    res->n_tokens = T;
    res->n_outputs = n_out;
    return ALKFW_OK;
}

alkfw_status codebook_aggregate(const codebook *cb, const double *features, size_t n_tokens,
                                const codebook_score_options *opts, codebook_result *res,
                                alkfw_error *err)
{
    codebook_score_options defaults;
    if (!opts) {
        codebook_score_options_init(&defaults);
        opts = &defaults;
    }
    memset(res, 0, sizeof *res);
    if (n_tokens == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: nothing to score (0 tokens)");

    int k = cb->k, nd = cb->n_dirs, n_out = nd + 1;
    size_t nf = CODEBOOK_N_FEATURES(cb), T = n_tokens;
    for (size_t i = 0; i < T * nf; i++)
        if (!isfinite(features[i]))
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "codebook: token %zu has a non-finite feature (non-finite "
                             "activations?)",
                             i / nf);

    alkfw_status st = result_alloc(res, n_out, T, err);
    if (st != ALKFW_OK)
        return st;

    /* trailing smoothing window: positions max(0, t-w+1) .. t */
    size_t w =
        (size_t)(opts->smoothing_window >= 0 ? opts->smoothing_window : cb->smoothing_window);
    if (w < 1)
        w = 1;

    /* per-token P_d(t) for every direction, then the smoothed anomaly value */
    for (size_t t = 0; t < T; t++) {
        double phi[CODEBOOK_MAX_K + 1];
        window_mean(features, nf, t, w, phi);

        for (int d = 0; d < nd; d++) {
            const float *wd = cb->dir_weight + (size_t)d * (size_t)k;
            double logit = cb->dir_bias[d];
            for (int i = 0; i < k; i++)
                logit += (double)wd[i] * phi[i];
            res->p[(size_t)d * T + t] = sigmoid(logit);
        }
        res->p[(size_t)nd * T + t] = phi[k];
    }

    codebook_result_summarize(cb, opts, res);
    return ALKFW_OK;
}

void codebook_result_summarize(const codebook *cb, const codebook_score_options *opts,
                               codebook_result *res)
{
    assert(res->n_tokens >= 1 && res->n_outputs == cb->n_dirs + 1);
    size_t T = res->n_tokens;
    int n_out = res->n_outputs;

    /* aggregation: mean, max and the first position of the max */
    size_t from = opts->last_token ? T - 1 : 0;
    for (int d = 0; d < n_out; d++) {
        const double *p = res->p + (size_t)d * T;
        double sum = 0.0, best = p[from];
        size_t arg = from;
        for (size_t t = from; t < T; t++) {
            sum += p[t];
            if (p[t] > best) {
                best = p[t];
                arg = t;
            }
        }
        res->mean[d] = sum / (double)(T - from);
        res->max[d] = best;
        res->argmax[d] = arg;
    }

    /* alarm: score = max_d alpha_d m_d, levels by strict > */
    res->top = 0;
    res->score = (double)cb->dir_alpha[0] * res->mean[0];
    for (int d = 1; d < n_out; d++) {
        double s = (double)cb->dir_alpha[d] * res->mean[d];
        if (s > res->score) {
            res->score = s;
            res->top = d;
        }
    }
    res->threshold_suspicious =
        opts->threshold_suspicious >= 0 ? opts->threshold_suspicious : cb->threshold_suspicious;
    res->threshold_dangerous =
        opts->threshold_dangerous >= 0 ? opts->threshold_dangerous : cb->threshold_dangerous;
    if (res->score > res->threshold_dangerous)
        res->level = CODEBOOK_DANGEROUS;
    else if (res->score > res->threshold_suspicious)
        res->level = CODEBOOK_SUSPICIOUS;
    else
        res->level = CODEBOOK_CLEAR;
}

alkfw_status codebook_score(const codebook *cb, const float *states, size_t n_tokens,
                            const codebook_score_options *opts, codebook_result *res,
                            alkfw_error *err)
{
    memset(res, 0, sizeof *res);
    if (n_tokens == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: nothing to score (0 tokens)");
    size_t nf = CODEBOOK_N_FEATURES(cb);
    if (n_tokens > SIZE_MAX / sizeof(double) / nf)
        return error_set(err, ALKFW_ERR_LIMIT, "codebook: %zu tokens is too many to score",
                         n_tokens);
    double *features = malloc(n_tokens * nf * sizeof *features);
    if (!features)
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory scoring %zu tokens",
                         n_tokens);
    codebook_features(cb, states, n_tokens, features);
    alkfw_status st = codebook_aggregate(cb, features, n_tokens, opts, res, err);
    free(features);
    return st;
}
