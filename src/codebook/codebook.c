/*
 * codebook.c - the in-memory codebook: allocation, release and the consistency checks shared
 * by the loader, the writer and the fitter.
 */
#include "codebook/codebook.h"

#include "common/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Allocation                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Duplicates s (NULL gives ""). Returns NULL when out of memory. */
static char *dup_string(const char *s)
{
    if (!s)
        s = "";
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

alkfw_status codebook_set_string(char **field, const char *value, alkfw_error *err)
{
    char *c = dup_string(value);
    if (!c)
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory copying a string");
    free(*field);
    *field = c;
    return ALKFW_OK;
}

void codebook_free(codebook *cb)
{
    if (!cb)
        return;
    free(cb->layers);
    free(cb->norm_mean);
    free(cb->norm_scale);
    free(cb->basis);
    free(cb->knots);
    free(cb->cdf);
    free(cb->slope);
    free(cb->dir_weight);
    free(cb->dir_bias);
    free(cb->dir_alpha);
    if (cb->directions)
        for (int d = 0; d < cb->n_dirs; d++)
            free(cb->directions[d]);
    free(cb->directions);
    free(cb->model_id);
    free(cb->model_revision);
    free(cb->model_fingerprint);
    free(cb->metrics);
    free(cb->training_data);
    free(cb->created_by);
    free(cb);
}

/* calloc of n elements of size bytes, at least one element so 0-sized arrays are not NULL. */
static void *alloc_array(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

alkfw_status codebook_alloc(int n_layers, int hidden, int k, int n_knots, int n_dirs,
                            codebook **out, alkfw_error *err)
{
    *out = NULL;
    if (n_layers < 1 || n_layers > CODEBOOK_MAX_LAYERS)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: %d layers (expected 1..%d)", n_layers,
                         CODEBOOK_MAX_LAYERS);
    if (hidden < 1 || hidden > CODEBOOK_MAX_HIDDEN)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: hidden size %d (expected 1..%d)",
                         hidden, CODEBOOK_MAX_HIDDEN);
    if (k < 1 || k > CODEBOOK_MAX_K)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: k = %d (expected 1..%d)", k,
                         CODEBOOK_MAX_K);
    if (n_knots < 2 || n_knots > CODEBOOK_MAX_KNOTS)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: %d knots (expected 2..%d)", n_knots,
                         CODEBOOK_MAX_KNOTS);
    if (n_dirs < 0 || n_dirs > CODEBOOK_MAX_DIRECTIONS)
        return error_set(err, ALKFW_ERR_ARGUMENT, "codebook: %d directions (expected 0..%d)",
                         n_dirs, CODEBOOK_MAX_DIRECTIONS);

    codebook *cb = calloc(1, sizeof *cb);
    if (!cb)
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory");
    size_t D = (size_t)n_layers * (size_t)hidden, rows = (size_t)k + 1;
    cb->n_layers = n_layers;
    cb->hidden = hidden;
    cb->k = k;
    cb->n_knots = n_knots;
    cb->n_dirs = n_dirs;
    cb->layers = alloc_array((size_t)n_layers, sizeof *cb->layers);
    cb->norm_mean = alloc_array(D, sizeof *cb->norm_mean);
    cb->norm_scale = alloc_array((size_t)n_layers, sizeof *cb->norm_scale);
    cb->basis = alloc_array((size_t)k * D, sizeof *cb->basis);
    cb->knots = alloc_array(rows * (size_t)n_knots, sizeof *cb->knots);
    cb->cdf = alloc_array(rows * (size_t)n_knots, sizeof *cb->cdf);
    cb->slope = alloc_array(rows * (size_t)n_knots, sizeof *cb->slope);
    cb->dir_weight = alloc_array((size_t)n_dirs * (size_t)k, sizeof *cb->dir_weight);
    cb->dir_bias = alloc_array((size_t)n_dirs, sizeof *cb->dir_bias);
    cb->dir_alpha = alloc_array((size_t)n_dirs + 1, sizeof *cb->dir_alpha);
    cb->directions = alloc_array((size_t)n_dirs, sizeof *cb->directions);
    int ok = cb->layers && cb->norm_mean && cb->norm_scale && cb->basis && cb->knots && cb->cdf &&
             cb->slope && cb->dir_weight && cb->dir_bias && cb->dir_alpha && cb->directions;
    for (int d = 0; ok && d < n_dirs; d++)
        ok = (cb->directions[d] = dup_string("")) != NULL;
    char **strings[] = {&cb->model_id, &cb->model_revision, &cb->model_fingerprint,
                        &cb->metrics,  &cb->training_data,  &cb->created_by};
    for (size_t i = 0; ok && i < sizeof strings / sizeof *strings; i++)
        ok = (*strings[i] = dup_string("")) != NULL;
    if (!ok) {
        codebook_free(cb);
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory");
    }
    for (int d = 0; d <= n_dirs; d++)
        cb->dir_alpha[d] = 1.0f;
    cb->smoothing_window = CODEBOOK_DEFAULT_WINDOW;
    cb->threshold_suspicious = 0.3;
    cb->threshold_dangerous = 0.7;
    *out = cb;
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Validation                                                                                */
/* ---------------------------------------------------------------------------------------- */

/* Checks that n floats are finite; names the tensor and the first bad index. */
static alkfw_status check_finite(const float *v, size_t n, const char *name, alkfw_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': element %zu is not finite", name,
                             i);
    return ALKFW_OK;
}

/* Checks one spline row: finite, knots strictly increasing, cdf strictly increasing inside
 * (0,1), slopes positive. */
static alkfw_status check_spline_row(const codebook *cb, int row, alkfw_error *err)
{
    size_t K = (size_t)cb->n_knots, off = (size_t)row * K;
    const float *x = cb->knots + off, *F = cb->cdf + off, *m = cb->slope + off;
    for (size_t j = 0; j < K; j++) {
        if (!isfinite(x[j]) || !isfinite(F[j]) || !isfinite(m[j]))
            return error_set(err, ALKFW_ERR_FORMAT, "spline row %d, knot %zu: value is not finite",
                             row, j);
        if (j > 0 && !(x[j] > x[j - 1]))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'spline.knots' row %d: knots not strictly increasing at "
                             "%zu (%g after %g)",
                             row, j, (double)x[j], (double)x[j - 1]);
        if (!(F[j] > 0.0f && F[j] < 1.0f))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'spline.cdf' row %d, knot %zu: %g is not inside (0,1)", row, j,
                             (double)F[j]);
        if (j > 0 && !(F[j] > F[j - 1]))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'spline.cdf' row %d: not strictly increasing at knot %zu "
                             "(%g after %g)",
                             row, j, (double)F[j], (double)F[j - 1]);
        if (!(m[j] > 0.0f))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'spline.slope' row %d, knot %zu: slope %g is not positive",
                             row, j, (double)m[j]);
    }
    return ALKFW_OK;
}

alkfw_status codebook_validate(const codebook *cb, alkfw_error *err)
{
    alkfw_status st;
    if (cb->n_layers < 1 || cb->n_layers > CODEBOOK_MAX_LAYERS)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor 'layers': %d layers (expected 1..%d)",
                         cb->n_layers, CODEBOOK_MAX_LAYERS);
    if (cb->hidden < 1 || cb->hidden > CODEBOOK_MAX_HIDDEN)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor 'norm.mean': hidden size %d (expected 1..%d)", cb->hidden,
                         CODEBOOK_MAX_HIDDEN);
    if (cb->k < 1 || cb->k > CODEBOOK_MAX_K)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor 'basis': k = %d (expected 1..%d)", cb->k,
                         CODEBOOK_MAX_K);
    size_t D = (size_t)cb->n_layers * (size_t)cb->hidden;
    if ((size_t)cb->k > D)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor 'basis': k = %d exceeds the activation size %zu", cb->k, D);
    if (cb->n_knots < 2 || cb->n_knots > CODEBOOK_MAX_KNOTS)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor 'spline.knots': %d knots (expected 2..%d)",
                         cb->n_knots, CODEBOOK_MAX_KNOTS);
    if (cb->n_dirs < 0 || cb->n_dirs > CODEBOOK_MAX_DIRECTIONS)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor 'direction.weight': %d directions (expected 0..%d)", cb->n_dirs,
                         CODEBOOK_MAX_DIRECTIONS);

    /* layers: non-negative, strictly increasing (so no duplicates) */
    for (int l = 0; l < cb->n_layers; l++) {
        if (cb->layers[l] < 0)
            return error_set(err, ALKFW_ERR_FORMAT, "tensor 'layers': layer %d is negative (%d)", l,
                             (int)cb->layers[l]);
        if (l > 0 && cb->layers[l] <= cb->layers[l - 1])
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'layers': not strictly increasing (%d after %d)",
                             (int)cb->layers[l], (int)cb->layers[l - 1]);
    }

    /* standardization and basis */
    if ((st = check_finite(cb->norm_mean, D, "norm.mean", err)) != ALKFW_OK)
        return st;
    for (int l = 0; l < cb->n_layers; l++)
        if (!isfinite(cb->norm_scale[l]) || !(cb->norm_scale[l] > 0.0f))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'norm.scale': layer %d scale %g is not a positive number", l,
                             (double)cb->norm_scale[l]);
    if ((st = check_finite(cb->basis, (size_t)cb->k * D, "basis", err)) != ALKFW_OK)
        return st;

    /* splines, the anomaly row included */
    for (int r = 0; r <= cb->k; r++)
        if ((st = check_spline_row(cb, r, err)) != ALKFW_OK)
            return st;

    /* directions */
    size_t nw = (size_t)cb->n_dirs * (size_t)cb->k;
    if ((st = check_finite(cb->dir_weight, nw, "direction.weight", err)) != ALKFW_OK ||
        (st = check_finite(cb->dir_bias, (size_t)cb->n_dirs, "direction.bias", err)) != ALKFW_OK ||
        (st = check_finite(cb->dir_alpha, (size_t)cb->n_dirs + 1, "direction.alpha", err)) !=
            ALKFW_OK)
        return st;
    for (int d = 0; d <= cb->n_dirs; d++)
        if (cb->dir_alpha[d] < 0.0f)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "tensor 'direction.alpha': weight %d is negative (%g)", d,
                             (double)cb->dir_alpha[d]);
    for (int d = 0; d < cb->n_dirs; d++) {
        const char *name = cb->directions[d];
        if (!name || !name[0])
            return error_set(err, ALKFW_ERR_FORMAT, "metadata 'directions': name %d is empty", d);
        if (strcmp(name, "anomaly") == 0 || strcmp(name, "benign") == 0)
            return error_set(err, ALKFW_ERR_FORMAT,
                             "metadata 'directions': '%s' is reserved and cannot name a "
                             "trained direction",
                             name);
        for (int e = 0; e < d; e++)
            if (strcmp(cb->directions[e], name) == 0)
                return error_set(err, ALKFW_ERR_FORMAT, "metadata 'directions': '%s' appears twice",
                                 name);
    }

    /* scalars */
    if (cb->smoothing_window < 0 || cb->smoothing_window > 1000000)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata 'smoothing_window': %d is not in 0..1000000",
                         cb->smoothing_window);
    if (!(cb->threshold_suspicious >= 0.0 && cb->threshold_suspicious <= 1.0))
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata 'threshold_suspicious': %g is not in [0,1]",
                         cb->threshold_suspicious);
    if (!(cb->threshold_dangerous >= 0.0 && cb->threshold_dangerous <= 1.0))
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata 'threshold_dangerous': %g is not in [0,1]",
                         cb->threshold_dangerous);
    if (cb->threshold_suspicious > cb->threshold_dangerous)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata 'threshold_suspicious' (%g) is above 'threshold_dangerous' "
                         "(%g)",
                         cb->threshold_suspicious, cb->threshold_dangerous);
    if (!cb->model_id || !cb->model_revision || !cb->model_fingerprint || !cb->metrics ||
        !cb->training_data || !cb->created_by)
        return error_set(err, ALKFW_ERR_FORMAT, "codebook: a metadata string is missing");
    return ALKFW_OK;
}
