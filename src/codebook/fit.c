/*
 * fit.c - fitting a codebook from labeled activations (the library side of `alkfw build`,
 * DESIGN §4 "Building one"):
 *
 *   1. per-layer mean mu_l and scale sigma_l (RMS of the centered values) on training tokens;
 *   2. the basis: top-k eigenvectors of the Gram matrix of standardized training tokens
 *      (BLAS dsyrk, LAPACKE_dsyevd), each signed so its largest component is positive;
 *   3. one spline CDF per coordinate on benign training tokens (K knots at quantiles,
 *      Fritsch-Carlson slopes), then the anomaly statistic's spline the same way;
 *   4. one L2-regularized logistic regression per direction, direction vs benign, on the
 *      per-token smoothed phi of training texts (liblinear, L2R_LR, balanced class weights);
 *   5. thresholds on the validation split for the target benign false positive rates, and a
 *      JSON validation report.
 *
 * Deterministic: no randomness except the seeded token subsample of step 1-2, fixed orders
 * everywhere, and liblinear's primal Newton solver, which draws no random numbers.
 */
#include "codebook/codebook.h"

#include "codebook/metrics.h"
#include "common/error.h"

#include <assert.h>
#include <cjson/cJSON.h>
#include <lapacke.h>
#include <linear.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The Fortran BLAS symmetric rank-k update (always present under LAPACK). The trailing
 * arguments are the hidden lengths of the two character arguments. */
extern void dsyrk_(const char *uplo, const char *trans, const int *n, const int *k,
                   const double *alpha, const double *a, const int *lda, const double *beta,
                   double *c, const int *ldc, size_t uplo_len, size_t trans_len);

/* LIMIT: the Gram matrix is D x D doubles, so activations wider than this are refused (use
 * fewer layers); a randomized or dual SVD would lift it. */
#define FIT_MAX_D 12288

/* Rows converted to double per dsyrk call. */
#define FIT_CHUNK 256

void codebook_fit_options_init(codebook_fit_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->k = CODEBOOK_DEFAULT_K;
    opts->n_knots = CODEBOOK_DEFAULT_KNOTS;
    opts->smoothing_window = CODEBOOK_DEFAULT_WINDOW;
    opts->fpr_dangerous = 0.01;
    opts->fpr_suspicious = 0.05;
    opts->C = 1.0;
}

/* ---------------------------------------------------------------------------------------- */
/* Checking the input                                                                        */
/* ---------------------------------------------------------------------------------------- */

static alkfw_status check_input(const codebook_fit_input *in, const codebook_fit_options *o,
                                alkfw_error *err)
{
    if (!in->acts || !in->text_start || !in->text_len || !in->label || !in->is_val)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: a required input array is NULL");
    if (in->n_layers < 1 || in->n_layers > CODEBOOK_MAX_LAYERS || in->hidden < 1 ||
        in->hidden > CODEBOOK_MAX_HIDDEN)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: %d layers of width %d are out of range",
                         in->n_layers, in->hidden);
    size_t D = (size_t)in->n_layers * (size_t)in->hidden;
    if (D > FIT_MAX_D)
        return error_set(err, ALKFW_ERR_LIMIT,
                         "fit: activations of %zu values per token exceed the %d the fitter "
                         "supports; configure fewer layers",
                         D, FIT_MAX_D);
    if (!o->layers)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: no layer indices given");
    for (int l = 0; l < in->n_layers; l++)
        if (o->layers[l] < 0 || (l > 0 && o->layers[l] <= o->layers[l - 1]))
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "fit: layers must be non-negative and strictly increasing (layer "
                             "%d is %d)",
                             l, (int)o->layers[l]);
    if (o->k < 1 || o->k > CODEBOOK_MAX_K || (size_t)o->k > D)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: k = %d (expected 1..%d and at most %zu)",
                         o->k, CODEBOOK_MAX_K, D);
    if (o->n_knots < 2 || o->n_knots > CODEBOOK_MAX_KNOTS)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: %d knots (expected 2..%d)", o->n_knots,
                         CODEBOOK_MAX_KNOTS);
    if (o->smoothing_window < 0 || o->smoothing_window > 1000000)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: smoothing window %d is out of range",
                         o->smoothing_window);
    if (o->n_dirs < 0 || o->n_dirs > CODEBOOK_MAX_DIRECTIONS || (o->n_dirs && !o->directions))
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: %d directions", o->n_dirs);
    if (!(o->fpr_dangerous >= 0 && o->fpr_dangerous <= 1 && o->fpr_suspicious >= 0 &&
          o->fpr_suspicious <= 1 && o->fpr_dangerous <= o->fpr_suspicious))
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "fit: target false positive rates %g (dangerous) and %g (suspicious) "
                         "must lie in [0,1], dangerous not above suspicious",
                         o->fpr_dangerous, o->fpr_suspicious);
    if (!(o->C > 0) || !isfinite(o->C))
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: C = %g must be positive", o->C);
    if (in->n_texts == 0 || in->n_tokens == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "fit: no texts");

    for (size_t i = 0; i < in->n_texts; i++) {
        if (in->text_len[i] == 0 || in->text_start[i] > in->n_tokens ||
            in->text_len[i] > in->n_tokens - in->text_start[i])
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "fit: text %zu covers tokens [%zu, +%zu) outside the %zu tokens", i,
                             in->text_start[i], in->text_len[i], in->n_tokens);
        if (in->label[i] < -1 || in->label[i] >= o->n_dirs)
            return error_set(err, ALKFW_ERR_ARGUMENT,
                             "fit: text %zu has label %d (expected -1..%d)", i, in->label[i],
                             o->n_dirs - 1);
    }
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Deterministic subsample                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* splitmix64: a small, well-mixed generator; the state is the caller's. */
static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Picks at most max (0: all) of the n indices in idx, uniformly with the seed, keeping them in
 * increasing order. Returns the new count. */
static size_t subsample(size_t *idx, size_t n, size_t max, uint64_t seed)
{
    if (max == 0 || n <= max)
        return n;
    uint64_t s = seed;
    for (size_t i = 0; i < max; i++) {
        size_t j = i + (size_t)(splitmix64(&s) % (uint64_t)(n - i));
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
    qsort(idx, max, sizeof *idx, cmp_size);
    return max;
}

/* ---------------------------------------------------------------------------------------- */
/* Standardization and basis                                                                 */
/* ---------------------------------------------------------------------------------------- */

/* mu_l and sigma_l over the tokens in idx. */
static alkfw_status fit_norm(const codebook_fit_input *in, const size_t *idx, size_t n,
                             codebook *cb, alkfw_error *err)
{
    size_t H = (size_t)cb->hidden, D = (size_t)cb->n_layers * H;
    double *sum = calloc(D, sizeof *sum);
    if (!sum)
        return error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory");
    for (size_t r = 0; r < n; r++) {
        const float *a = in->acts + idx[r] * D;
        for (size_t j = 0; j < D; j++) {
            if (!isfinite(a[j])) {
                free(sum);
                return error_set(err, ALKFW_ERR_ARGUMENT,
                                 "fit: token %zu has a non-finite activation at %zu", idx[r], j);
            }
            sum[j] += a[j];
        }
    }
    for (size_t j = 0; j < D; j++)
        cb->norm_mean[j] = (float)(sum[j] / (double)n);

    /* sigma_l: root mean square of (h - mu_l) over tokens and the layer's dimensions */
    for (int l = 0; l < cb->n_layers; l++) {
        double ss = 0.0;
        for (size_t r = 0; r < n; r++) {
            const float *a = in->acts + idx[r] * D + (size_t)l * H;
            const float *mu = cb->norm_mean + (size_t)l * H;
            for (size_t j = 0; j < H; j++) {
                double d = (double)a[j] - mu[j];
                ss += d * d;
            }
        }
        double sigma = sqrt(ss / ((double)n * (double)H));
        if (!(sigma > 1e-30) || !isfinite(sigma) || !((float)sigma > 0.0f)) {
            free(sum);
            return error_set(err, ALKFW_ERR_FORMAT,
                             "fit: layer %d (hidden state %d) has no variance over the training "
                             "tokens",
                             l, (int)cb->layers[l]);
        }
        cb->norm_scale[l] = (float)sigma;
    }
    free(sum);
    return ALKFW_OK;
}

/* The basis: top-k eigenvectors of G = A^T A over the standardized tokens in idx. */
static alkfw_status fit_basis(const codebook_fit_input *in, const size_t *idx, size_t n,
                              codebook *cb, alkfw_error *err)
{
    size_t H = (size_t)cb->hidden, D = (size_t)cb->n_layers * H;
    double *G = calloc(D * D, sizeof *G), *chunk = malloc(FIT_CHUNK * D * sizeof *chunk),
           *eig = malloc(D * sizeof *eig);
    if (!G || !chunk || !eig) {
        free(G);
        free(chunk);
        free(eig);
        return error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory for the %zux%zu Gram matrix", D,
                         D);
    }

    /* Gram matrix, FIT_CHUNK standardized rows at a time (column-major: each row of chunk is
     * one column of a D x rows matrix X, and G += X X^T fills the upper triangle) */
    int Di = (int)D;
    double one = 1.0;
    for (size_t r0 = 0; r0 < n; r0 += FIT_CHUNK) {
        int rows = (int)(n - r0 < FIT_CHUNK ? n - r0 : FIT_CHUNK);
        for (int r = 0; r < rows; r++) {
            const float *a = in->acts + idx[r0 + (size_t)r] * D;
            for (int l = 0; l < cb->n_layers; l++) {
                double sigma = cb->norm_scale[l];
                for (size_t j = 0; j < H; j++) {
                    size_t c = (size_t)l * H + j;
                    chunk[(size_t)r * D + c] = ((double)a[c] - cb->norm_mean[c]) / sigma;
                }
            }
        }
        dsyrk_("U", "N", &Di, &rows, &one, chunk, &Di, &one, G, &Di, 1, 1);
    }
    free(chunk);

    /* eigenvectors; in column-major G, column j holds eigenvector j, eigenvalues ascending */
    lapack_int info = LAPACKE_dsyevd(LAPACK_COL_MAJOR, 'V', 'U', Di, G, Di, eig);
    if (info != 0) {
        free(G);
        free(eig);
        return error_set(err, ALKFW_ERR_BACKEND, "fit: LAPACKE_dsyevd failed (info %d)", (int)info);
    }
    for (int i = 0; i < cb->k; i++) {
        const double *v = G + (D - 1 - (size_t)i) * D;
        size_t big = 0;
        for (size_t j = 1; j < D; j++)
            if (fabs(v[j]) > fabs(v[big]))
                big = j;
        double sign = v[big] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < D; j++)
            cb->basis[(size_t)i * D + j] = (float)(sign * v[j]);
    }
    free(G);
    free(eig);
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Splines                                                                                   */
/* ---------------------------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Fits one spline row of K knots to n values (sorted in place): knot j at the empirical
 * quantile of level p_j = (j + 1/2) / K (linear interpolation between order statistics), CDF
 * value p_j there, knots pushed apart where values tie so they strictly increase in float, and
 * Fritsch-Carlson slopes on the stored float values. */
static void fit_spline(double *v, size_t n, int K, float *knots, float *cdf, float *slope)
{
    assert(n >= 2 && K >= 2 && K <= CODEBOOK_MAX_KNOTS);
    qsort(v, n, sizeof *v, cmp_double);
    double spread = v[n - 1] - v[0];
    for (int j = 0; j < K; j++) {
        double p = (j + 0.5) / K;
        double pos = p * (double)(n - 1);
        size_t lo = (size_t)pos;
        double frac = pos - (double)lo;
        double x = lo + 1 < n ? v[lo] + frac * (v[lo + 1] - v[lo]) : v[lo];
        if (j > 0) {
            double gap = 1e-6 * fmax(fmax(spread, fabs(x)), 1e-3);
            if (x < (double)knots[j - 1] + gap)
                x = (double)knots[j - 1] + gap;
        }
        knots[j] = (float)x;
        if (j > 0 && !(knots[j] > knots[j - 1]))
            knots[j] = nextafterf(knots[j - 1], INFINITY);
        cdf[j] = (float)p;
    }

    /* Fritsch-Carlson: three-point means of the secants, limited to radius 3 */
    double d[CODEBOOK_MAX_KNOTS], m[CODEBOOK_MAX_KNOTS];
    for (int j = 0; j + 1 < K; j++)
        d[j] = ((double)cdf[j + 1] - cdf[j]) / ((double)knots[j + 1] - knots[j]);
    m[0] = d[0];
    m[K - 1] = d[K - 2];
    for (int j = 1; j + 1 < K; j++)
        m[j] = 0.5 * (d[j - 1] + d[j]);
    for (int j = 0; j + 1 < K; j++) {
        double a = m[j] / d[j], b = m[j + 1] / d[j], r = a * a + b * b;
        if (r > 9.0) {
            double tau = 3.0 / sqrt(r);
            m[j] = tau * a * d[j];
            m[j + 1] = tau * b * d[j];
        }
    }
    for (int j = 0; j < K; j++) {
        slope[j] = (float)m[j];
        if (!(slope[j] > 0.0f)) /* a float underflow of a tiny slope */
            slope[j] = 1e-30f;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* Direction models                                                                          */
/* ---------------------------------------------------------------------------------------- */

static void silent(const char *s)
{
    (void)s;
}

/* Trains direction d vs benign on the smoothed features of training tokens. */
static alkfw_status fit_direction(const codebook_fit_input *in, const double *smoothed, int d,
                                  const char *name, double C, codebook *cb, alkfw_error *err)
{
    int k = cb->k;
    size_t nf = CODEBOOK_N_FEATURES(cb), n_pos = 0, n_neg = 0;
    for (size_t i = 0; i < in->n_texts; i++)
        if (!in->is_val[i] && (in->label[i] == d || in->label[i] == -1))
            *(in->label[i] == d ? &n_pos : &n_neg) += in->text_len[i];
    if (n_pos == 0 || n_neg == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "fit: direction '%s' needs training texts of its own and benign ones "
                         "(%zu and %zu tokens)",
                         name, n_pos, n_neg);

    size_t l = n_pos + n_neg;
    struct feature_node *nodes = malloc(l * (size_t)(k + 2) * sizeof *nodes);
    struct feature_node **x = malloc(l * sizeof *x);
    double *y = malloc(l * sizeof *y);
    if (!nodes || !x || !y) {
        free(nodes);
        free(x);
        free(y);
        return error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory training '%s'", name);
    }
    size_t r = 0;
    for (size_t i = 0; i < in->n_texts; i++) {
        if (in->is_val[i] || (in->label[i] != d && in->label[i] != -1))
            continue;
        for (size_t t = 0; t < in->text_len[i]; t++, r++) {
            const double *phi = smoothed + (in->text_start[i] + t) * nf;
            struct feature_node *row = nodes + r * (size_t)(k + 2);
            for (int j = 0; j < k; j++)
                row[j] = (struct feature_node){j + 1, phi[j]};
            row[k] = (struct feature_node){k + 1, 1.0}; /* the bias feature */
            row[k + 1] = (struct feature_node){-1, 0.0};
            x[r] = row;
            y[r] = in->label[i] == d ? 1.0 : -1.0;
        }
    }

    /* balanced classes: each side weighs as much as the other in total */
    int wl[2] = {1, -1};
    double wv[2] = {(double)l / (2.0 * (double)n_pos), (double)l / (2.0 * (double)n_neg)};
    struct problem prob = {.l = (int)l, .n = k + 1, .y = y, .x = x, .bias = 1.0};
    struct parameter param = {.solver_type = L2R_LR,
                              .eps = 1e-4,
                              .C = C,
                              .nr_weight = 2,
                              .weight_label = wl,
                              .weight = wv,
                              .p = 0.1,
                              .init_sol = NULL};
    alkfw_status st = ALKFW_OK;
    const char *bad = check_parameter(&prob, &param);
    if (bad) {
        st = error_set(err, ALKFW_ERR_BACKEND, "fit: liblinear refused '%s': %s", name, bad);
    } else {
        set_print_string_function(silent);
        struct model *model = train(&prob, &param);
        if (!model) {
            st = error_set(err, ALKFW_ERR_BACKEND, "fit: liblinear failed on '%s'", name);
        } else {
            /* w belongs to model->label[0]: flip it when that is the benign class */
            double sign = model->label[0] == 1 ? 1.0 : -1.0;
            for (int j = 0; j < k; j++)
                cb->dir_weight[(size_t)d * (size_t)k + (size_t)j] = (float)(sign * model->w[j]);
            cb->dir_bias[d] = (float)(sign * model->w[k] * prob.bias);
            free_and_destroy_model(&model);
        }
    }
    free(nodes);
    free(x);
    free(y);
    return st;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation report                                                                         */
/* ---------------------------------------------------------------------------------------- */

/* Adds a number, or null when it is not finite (an empty class). */
static void add_number(cJSON *obj, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(obj, key, v);
    else
        cJSON_AddNullToObject(obj, key);
}

/* Scores of the validation texts: per text the score and every output's mean. */
typedef struct val_scores {
    size_t n;      /* validation texts */
    size_t *text;  /* [n] index into the input */
    double *score; /* [n] */
    double *means; /* [n][n_d + 1] */
    int *positive; /* [n] label != benign */
} val_scores;

/* Releases the arrays of v and empties it, so a second call does nothing. */
static void val_free(val_scores *v)
{
    free(v->text);
    free(v->score);
    free(v->means);
    free(v->positive);
    memset(v, 0, sizeof *v);
}

/* Screens every validation text with cb. */
static alkfw_status score_validation(const codebook_fit_input *in, const double *features,
                                     const codebook *cb, val_scores *v, alkfw_error *err)
{
    size_t nf = CODEBOOK_N_FEATURES(cb), n_out = (size_t)cb->n_dirs + 1;
    memset(v, 0, sizeof *v);
    for (size_t i = 0; i < in->n_texts; i++)
        v->n += in->is_val[i] ? 1 : 0;
    size_t m = v->n ? v->n : 1;
    v->text = malloc(m * sizeof *v->text);
    v->score = malloc(m * sizeof *v->score);
    v->means = malloc(m * n_out * sizeof *v->means);
    v->positive = malloc(m * sizeof *v->positive);
    if (!v->text || !v->score || !v->means || !v->positive) {
        val_free(v);
        return error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory scoring validation texts");
    }
    size_t r = 0;
    for (size_t i = 0; i < in->n_texts; i++) {
        if (!in->is_val[i])
            continue;
        codebook_result res;
        alkfw_status st = codebook_aggregate(cb, features + in->text_start[i] * nf, in->text_len[i],
                                             NULL, &res, err);
        if (st != ALKFW_OK) {
            val_free(v);
            return error_prefix(err, "fit: validation text %zu", i);
        }
        v->text[r] = i;
        v->score[r] = res.score;
        memcpy(v->means + r * n_out, res.mean, n_out * sizeof *res.mean);
        v->positive[r] = in->label[i] != -1;
        codebook_result_free(&res);
        r++;
    }
    return ALKFW_OK;
}

/* The AUC of output d's mean for texts of label `label` (or every positive when label is
 * -2) against benign texts. */
static double output_auc(const val_scores *v, const codebook_fit_input *in, size_t n_out, size_t d,
                         int label, double *buf_s, int *buf_l)
{
    size_t m = 0;
    for (size_t r = 0; r < v->n; r++) {
        int lab = in->label[v->text[r]];
        if (lab != -1 && label != -2 && lab != label)
            continue;
        buf_s[m] = v->means[r * n_out + d];
        buf_l[m++] = lab != -1;
    }
    return metrics_roc_auc(buf_s, buf_l, m);
}

/* Builds the validation report JSON (see docs/codebook.md for its keys). */
static char *build_metrics(const codebook_fit_input *in, const codebook_fit_options *o,
                           const codebook *cb, const val_scores *v)
{
    size_t n_out = (size_t)cb->n_dirs + 1, m = v->n ? v->n : 1;
    double *bs = malloc(m * sizeof *bs);
    int *bl = malloc(m * sizeof *bl);
    cJSON *root = cJSON_CreateObject();
    char *out = NULL;
    if (!bs || !bl || !root)
        goto done;

    size_t n_pos = 0;
    for (size_t r = 0; r < v->n; r++)
        n_pos += (size_t)v->positive[r];
    cJSON *val = cJSON_AddObjectToObject(root, "validation");
    cJSON_AddNumberToObject(val, "texts", (double)v->n);
    cJSON_AddNumberToObject(val, "benign", (double)(v->n - n_pos));
    cJSON_AddNumberToObject(val, "positive", (double)n_pos);
    add_number(val, "roc_auc", metrics_roc_auc(v->score, v->positive, v->n));
    add_number(val, "recall_at_1pct_fpr", metrics_recall_at_fpr(v->score, v->positive, v->n, 0.01));
    add_number(val, "recall_at_5pct_fpr", metrics_recall_at_fpr(v->score, v->positive, v->n, 0.05));
    add_number(val, "target_fpr_dangerous", o->fpr_dangerous);
    add_number(val, "target_fpr_suspicious", o->fpr_suspicious);
    const double thr[2] = {cb->threshold_dangerous, cb->threshold_suspicious};
    const char *names[2] = {"at_dangerous", "at_suspicious"};
    for (int i = 0; i < 2; i++) {
        metrics_confusion c = metrics_confusion_at(v->score, v->positive, v->n, thr[i]);
        cJSON *at = cJSON_AddObjectToObject(val, names[i]);
        add_number(at, "threshold", thr[i]);
        add_number(at, "fpr", c.fp + c.tn ? (double)c.fp / (double)(c.fp + c.tn) : NAN);
        add_number(at, "recall", c.tp + c.fn ? metrics_recall(c) : NAN);
        add_number(at, "precision", metrics_precision(c));
        add_number(at, "f1", metrics_f1(c));
        cJSON *conf = cJSON_AddObjectToObject(at, "confusion");
        cJSON_AddNumberToObject(conf, "tp", (double)c.tp);
        cJSON_AddNumberToObject(conf, "fp", (double)c.fp);
        cJSON_AddNumberToObject(conf, "tn", (double)c.tn);
        cJSON_AddNumberToObject(conf, "fn", (double)c.fn);
    }

    /* per direction: its own mean's AUC on its texts vs benign, and the alarm's recall */
    cJSON *dirs = cJSON_AddObjectToObject(val, "by_direction");
    for (size_t d = 0; d < n_out; d++) {
        int label = d < (size_t)cb->n_dirs ? (int)d : -2;
        cJSON *e = cJSON_AddObjectToObject(dirs, codebook_output_name(cb, (int)d));
        size_t texts = 0, flagged = 0;
        for (size_t r = 0; r < v->n; r++)
            if (v->positive[r] && (label == -2 || in->label[v->text[r]] == label)) {
                texts++;
                flagged += v->score[r] > cb->threshold_dangerous;
            }
        cJSON_AddNumberToObject(e, "texts", (double)texts);
        add_number(e, "roc_auc", output_auc(v, in, n_out, d, label, bs, bl));
        add_number(e, "recall_at_dangerous", texts ? (double)flagged / (double)texts : NAN);
    }

    /* per source, in order of first appearance */
    if (in->source) {
        cJSON *src = cJSON_AddObjectToObject(val, "by_source");
        for (size_t r = 0; r < v->n; r++) {
            const char *name = in->source[v->text[r]] ? in->source[v->text[r]] : "";
            cJSON *e = cJSON_GetObjectItemCaseSensitive(src, name);
            if (!e) {
                e = cJSON_AddObjectToObject(src, name);
                cJSON_AddNumberToObject(e, "texts", 0);
                cJSON_AddNumberToObject(e, "positive", 0);
                cJSON_AddNumberToObject(e, "dangerous", 0);
                cJSON_AddNumberToObject(e, "suspicious_or_worse", 0);
            }
            if (!e)
                goto done;
            cJSON *f;
            f = cJSON_GetObjectItemCaseSensitive(e, "texts");
            cJSON_SetNumberValue(f, f->valuedouble + 1);
            f = cJSON_GetObjectItemCaseSensitive(e, "positive");
            cJSON_SetNumberValue(f, f->valuedouble + v->positive[r]);
            f = cJSON_GetObjectItemCaseSensitive(e, "dangerous");
            cJSON_SetNumberValue(f, f->valuedouble + (v->score[r] > cb->threshold_dangerous));
            f = cJSON_GetObjectItemCaseSensitive(e, "suspicious_or_worse");
            cJSON_SetNumberValue(f, f->valuedouble + (v->score[r] > cb->threshold_suspicious));
        }
    }
    out = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    free(bs);
    free(bl);
    return out;
}

/* The training-data summary JSON: counts per split and label, and the fit settings. */
static char *build_training_data(const codebook_fit_input *in, const codebook_fit_options *o,
                                 size_t n_fit_tokens)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    cJSON *labels = cJSON_AddObjectToObject(root, "labels");
    for (int d = -1; d < o->n_dirs; d++) {
        size_t c[2][2] = {{0, 0}, {0, 0}}; /* [split][texts, tokens] */
        for (size_t i = 0; i < in->n_texts; i++)
            if (in->label[i] == d) {
                c[in->is_val[i] ? 1 : 0][0]++;
                c[in->is_val[i] ? 1 : 0][1] += in->text_len[i];
            }
        cJSON *e = cJSON_AddObjectToObject(labels, d < 0 ? "benign" : o->directions[d]);
        cJSON_AddNumberToObject(e, "train_texts", (double)c[0][0]);
        cJSON_AddNumberToObject(e, "train_tokens", (double)c[0][1]);
        cJSON_AddNumberToObject(e, "validation_texts", (double)c[1][0]);
        cJSON_AddNumberToObject(e, "validation_tokens", (double)c[1][1]);
    }
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    for (int l = 0; l < in->n_layers; l++)
        cJSON_AddItemToArray(layers, cJSON_CreateNumber(o->layers[l]));
    cJSON_AddNumberToObject(root, "k", o->k);
    cJSON_AddNumberToObject(root, "knots", o->n_knots);
    cJSON_AddNumberToObject(root, "C", o->C);
    cJSON_AddNumberToObject(root, "basis_tokens", (double)n_fit_tokens);
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
    cJSON_AddStringToObject(root, "seed", seed);
    char *out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}

/* ---------------------------------------------------------------------------------------- */
/* The whole fit                                                                             */
/* ---------------------------------------------------------------------------------------- */

/* Picks the thresholds on the benign validation texts for the target rates. */
static alkfw_status pick_thresholds(const val_scores *v, const codebook_fit_options *o,
                                    codebook *cb, alkfw_error *err)
{
    size_t n_benign = 0;
    for (size_t r = 0; r < v->n; r++)
        n_benign += !v->positive[r];
    if (n_benign == 0)
        return error_set(err, ALKFW_ERR_ARGUMENT,
                         "fit: the validation split has no benign texts to set thresholds on");
    double td = metrics_threshold_for_fpr(v->score, v->positive, v->n, o->fpr_dangerous);
    double ts = metrics_threshold_for_fpr(v->score, v->positive, v->n, o->fpr_suspicious);
    if (isnan(td) || isnan(ts))
        return error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory choosing thresholds");
    /* scores lie in [0,1]; -infinity (flag everything) becomes 0 */
    cb->threshold_dangerous = fmin(fmax(td, 0.0), 1.0);
    cb->threshold_suspicious = fmin(fmax(ts, 0.0), cb->threshold_dangerous);
    return ALKFW_OK;
}

alkfw_status codebook_fit(const codebook_fit_input *in, const codebook_fit_options *o,
                          codebook **out, alkfw_error *err)
{
    *out = NULL;
    alkfw_status st = check_input(in, o, err);
    if (st != ALKFW_OK)
        return st;

    codebook *cb;
    if ((st = codebook_alloc(in->n_layers, in->hidden, o->k, o->n_knots, o->n_dirs, &cb, err)))
        return st;
    memcpy(cb->layers, o->layers, (size_t)in->n_layers * sizeof *cb->layers);
    for (int d = 0; d < o->n_dirs; d++)
        if ((st = codebook_set_string(&cb->directions[d], o->directions[d], err)))
            goto fail_cb;
    cb->smoothing_window = o->smoothing_window;

    size_t N = in->n_tokens, k = (size_t)o->k, nf = k + 1, K = (size_t)o->n_knots;
    size_t *idx = malloc(N * sizeof *idx);
    double *feat = malloc(N * nf * sizeof *feat), *smooth = malloc(N * nf * sizeof *smooth);
    double *vals = malloc(N * sizeof *vals), *zs = malloc(N * k * sizeof *zs);
    char *metrics = NULL, *training = NULL;
    val_scores v = {0};
    if (!idx || !feat || !smooth || !vals || !zs) {
        st = error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory for %zu tokens", N);
        goto fail;
    }

    /* training tokens (seeded subsample) -> standardization and basis */
    size_t n_train = 0, n_benign = 0;
    for (size_t i = 0; i < in->n_texts; i++)
        if (!in->is_val[i])
            for (size_t t = 0; t < in->text_len[i]; t++)
                idx[n_train++] = in->text_start[i] + t;
    if (n_train < 2) {
        st = error_set(err, ALKFW_ERR_ARGUMENT, "fit: %zu training tokens (need 2 or more)",
                       n_train);
        goto fail;
    }
    size_t n_fit = subsample(idx, n_train, o->max_fit_tokens, o->seed);
    if ((st = fit_norm(in, idx, n_fit, cb, err)) || (st = fit_basis(in, idx, n_fit, cb, err)))
        goto fail;

    /* projections of every token (validation too, and non-finite values are refused) */
    size_t D = (size_t)in->n_layers * (size_t)in->hidden;
    for (size_t t = 0; t < N; t++) {
        codebook_project(cb, in->acts + t * D, (size_t)in->hidden, zs + t * k);
        for (size_t i = 0; i < k; i++)
            if (!isfinite(zs[t * k + i])) {
                st = error_set(err, ALKFW_ERR_ARGUMENT,
                               "fit: token %zu has a non-finite activation", t);
                goto fail;
            }
    }

    /* one spline per coordinate on benign training tokens */
    for (size_t i = 0; i < in->n_texts; i++)
        if (!in->is_val[i] && in->label[i] == -1)
            n_benign += in->text_len[i];
    if (n_benign < 2) {
        st =
            error_set(err, ALKFW_ERR_ARGUMENT,
                      "fit: %zu benign training tokens (need 2 or more for the splines)", n_benign);
        goto fail;
    }
    for (size_t c = 0; c <= k; c++) {
        size_t m = 0;
        for (size_t i = 0; i < in->n_texts; i++) {
            if (in->is_val[i] || in->label[i] != -1)
                continue;
            for (size_t t = 0; t < in->text_len[i]; t++) {
                size_t tok = in->text_start[i] + t;
                if (c < k) {
                    vals[m++] = zs[tok * k + c];
                } else {
                    /* the anomaly statistic needs coordinate splines 0..k-1, fitted above */
                    double n_t = 0.0;
                    for (size_t j = 0; j < k; j++) {
                        double q, x = codebook_spline_eval(cb, (int)j, zs[tok * k + j], &q);
                        n_t += -log(2.0 * (x < q ? x : q));
                    }
                    vals[m++] = n_t / (double)k;
                }
            }
        }
        fit_spline(vals, m, (int)K, cb->knots + c * K, cb->cdf + c * K, cb->slope + c * K);
    }

    /* unsmoothed features of every token, then their trailing means per text */
    for (size_t t = 0; t < N; t++)
        codebook_token_features(cb, in->acts + t * D, (size_t)in->hidden, feat + t * nf, NULL);
    for (size_t i = 0; i < in->n_texts; i++)
        codebook_smooth(feat + in->text_start[i] * nf, in->text_len[i], nf, o->smoothing_window,
                        smooth + in->text_start[i] * nf);

    /* direction models */
    for (int d = 0; d < o->n_dirs; d++)
        if ((st = fit_direction(in, smooth, d, o->directions[d], o->C, cb, err)))
            goto fail;

    /* thresholds and the report on the validation split */
    if ((st = score_validation(in, feat, cb, &v, err)) || (st = pick_thresholds(&v, o, cb, err)))
        goto fail;
    metrics = build_metrics(in, o, cb, &v);
    training = build_training_data(in, o, n_fit);
    if (!metrics || !training) {
        st = error_set(err, ALKFW_ERR_NOMEM, "fit: out of memory writing the report");
        goto fail;
    }
    char created[64];
    snprintf(created, sizeof created, "alkfw %s", ALKFW_VERSION);
    if ((st = codebook_set_string(&cb->metrics, metrics, err)) ||
        (st = codebook_set_string(&cb->training_data, training, err)) ||
        (st = codebook_set_string(&cb->model_id, o->model_id, err)) ||
        (st = codebook_set_string(&cb->model_revision, o->model_revision, err)) ||
        (st = codebook_set_string(&cb->model_fingerprint, o->model_fingerprint, err)) ||
        (st = codebook_set_string(&cb->created_by, o->created_by ? o->created_by : created, err)))
        goto fail;
    if ((st = codebook_validate(cb, err)) != ALKFW_OK) {
        error_prefix(err, "fit: the fitted codebook is inconsistent");
        goto fail;
    }
    *out = cb;
    cb = NULL;

fail:
    val_free(&v);
    free(metrics);
    free(training);
    free(idx);
    free(feat);
    free(smooth);
    free(vals);
    free(zs);
fail_cb:
    codebook_free(cb);
    return st;
}
