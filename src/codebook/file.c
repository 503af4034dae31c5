/*
 * file.c - the codebook file (DESIGN §4): a safetensors file with fixed tensor names, shapes
 * and dtypes and a fixed set of metadata keys. Reading validates every field; writing is
 * deterministic.
 */
#include "codebook/codebook.h"

#include "common/error.h"
#include "formats/safetensors.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------- */
/* Reading                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Finds tensor `name` and checks its dtype and number of dimensions. */
static alkfw_status get_tensor(const safetensors_file *f, const char *name, safetensors_dtype dtype,
                               int ndim, const safetensors_tensor **out, alkfw_error *err)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s' is missing", name);
    if (t->dtype != dtype)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s' has dtype %s (expected %s)", name,
                         safetensors_dtype_name(t->dtype), safetensors_dtype_name(dtype));
    if (t->ndim != ndim)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s' has %d dimensions (expected %d)", name,
                         t->ndim, ndim);
    *out = t;
    return ALKFW_OK;
}

/* Checks that dimension `dim` of t equals want. */
static alkfw_status check_dim(const safetensors_tensor *t, int dim, int64_t want, const char *what,
                              alkfw_error *err)
{
    if (t->shape[dim] == want)
        return ALKFW_OK;
    error_set(err, ALKFW_ERR_FORMAT, "tensor '%s' has shape[%d] = %lld (expected %lld, %s)",
              t->name, dim, (long long)t->shape[dim], (long long)want, what);
    return ALKFW_ERR_FORMAT;
}

/* Reads dimension `dim` of t as a count in [lo, hi]. */
static alkfw_status read_dim(const safetensors_tensor *t, int dim, int64_t lo, int64_t hi,
                             const char *what, int *out, alkfw_error *err)
{
    int64_t v = t->shape[dim];
    if (v < lo || v > hi) {
        error_set(err, ALKFW_ERR_FORMAT,
                  "tensor '%s': %s = %lld is out of range (expected %lld..%lld)", t->name, what,
                  (long long)v, (long long)lo, (long long)hi);
        return ALKFW_ERR_FORMAT;
    }
    *out = (int)v;
    return ALKFW_OK;
}

/* Returns metadata `key`, or NULL after filling err when it is required and absent. */
static const char *get_meta(const safetensors_file *f, const char *key, int required,
                            alkfw_error *err)
{
    const char *v = safetensors_metadata_get(f, key);
    if (!v && required)
        error_set(err, ALKFW_ERR_FORMAT, "metadata '%s' is missing", key);
    return v;
}

/* Parses a whole decimal integer in [lo, hi]. */
static alkfw_status parse_int(const char *key, const char *s, long lo, long hi, int *out,
                              alkfw_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!s[0] || isspace((unsigned char)s[0]) || *end || errno || v < lo || v > hi)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata '%s': '%.40s' is not an integer in %ld..%ld", key, s, lo, hi);
    *out = (int)v;
    return ALKFW_OK;
}

/* Parses a whole finite decimal number in [0,1]. */
static alkfw_status parse_unit(const char *key, const char *s, double *out, alkfw_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!s[0] || isspace((unsigned char)s[0]) || *end || errno || !isfinite(v))
        return error_set(err, ALKFW_ERR_FORMAT, "metadata '%s': '%.40s' is not a number", key, s);
    if (v < 0.0 || v > 1.0)
        return error_set(err, ALKFW_ERR_FORMAT, "metadata '%s': %g is not in [0,1]", key, v);
    *out = v;
    return ALKFW_OK;
}

/* Checks that a fingerprint is empty or "hidden:layers:vocab:<64 hex digits>". */
static alkfw_status check_fingerprint_syntax(const char *fp, alkfw_error *err)
{
    if (!fp[0])
        return ALKFW_OK;
    unsigned a, b, c;
    int n = 0;
    if (sscanf(fp, "%u:%u:%u:%n", &a, &b, &c, &n) != 3 || n == 0 || strlen(fp + n) != 64)
        goto bad;
    for (const char *p = fp; p < fp + n; p++)
        if (!isdigit((unsigned char)*p) && *p != ':')
            goto bad;
    for (const char *p = fp + n; *p; p++)
        if (!isxdigit((unsigned char)*p))
            goto bad;
    return ALKFW_OK;
bad:
    return error_set(err, ALKFW_ERR_FORMAT,
                     "metadata 'model_fingerprint': '%.80s' is not "
                     "hidden:layers:vocab:<sha256 hex>",
                     fp);
}

/* Checks that s is empty or a JSON document. */
static alkfw_status check_json(const char *key, const char *s, alkfw_error *err)
{
    if (!s[0])
        return ALKFW_OK;
    cJSON *j = cJSON_Parse(s);
    if (!j)
        return error_set(err, ALKFW_ERR_FORMAT, "metadata '%s' is not valid JSON", key);
    cJSON_Delete(j);
    return ALKFW_OK;
}

/* Reads the "directions" JSON list into cb->directions (n_d names). */
static alkfw_status read_directions(codebook *cb, const char *s, alkfw_error *err)
{
    cJSON *j = cJSON_Parse(s);
    if (!j || !cJSON_IsArray(j)) {
        cJSON_Delete(j);
        return error_set(err, ALKFW_ERR_FORMAT, "metadata 'directions' is not a JSON list");
    }
    int n = cJSON_GetArraySize(j);
    if (n != cb->n_dirs) {
        cJSON_Delete(j);
        return error_set(err, ALKFW_ERR_FORMAT,
                         "metadata 'directions' lists %d names but tensor 'direction.weight' "
                         "has %d rows",
                         n, cb->n_dirs);
    }
    alkfw_status st = ALKFW_OK;
    int d = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, j)
    {
        if (!cJSON_IsString(item)) {
            st = error_set(err, ALKFW_ERR_FORMAT,
                           "metadata 'directions': entry %d is not a "
                           "string",
                           d);
            break;
        }
        if ((st = codebook_set_string(&cb->directions[d], item->valuestring, err)) != ALKFW_OK)
            break;
        d++;
    }
    cJSON_Delete(j);
    return st;
}

/* Copies tensor t (exactly count elements of 4 bytes) into dst; the file promises no
 * alignment, so memcpy. */
static void copy4(const safetensors_tensor *t, void *dst, size_t count)
{
    if (count)
        memcpy(dst, t->data, count * 4);
}

/* Builds a codebook from an open, structurally valid safetensors file. */
static alkfw_status load_from(const safetensors_file *f, codebook **out, alkfw_error *err)
{
    const safetensors_tensor *t_layers = NULL, *t_mean = NULL, *t_scale = NULL, *t_basis = NULL,
                             *t_knots = NULL, *t_cdf = NULL, *t_slope = NULL, *t_w = NULL,
                             *t_b = NULL, *t_alpha = NULL;
    alkfw_status st;
    int n_l = 0, hidden = 0, k = 0, K = 0, n_d = 0;

    /* format and version first, so another file says what it is */
    const char *format = get_meta(f, "format", 1, err);
    if (!format)
        return ALKFW_ERR_FORMAT;
    if (strcmp(format, CODEBOOK_FORMAT) != 0)
        return error_set(err, ALKFW_ERR_FORMAT, "metadata 'format' is '%.40s' (expected '%s')",
                         format, CODEBOOK_FORMAT);
    const char *version = get_meta(f, "version", 1, err);
    if (!version)
        return ALKFW_ERR_FORMAT;
    if (strcmp(version, CODEBOOK_VERSION) != 0)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "metadata 'version' is '%.40s'; this build reads version %s", version,
                         CODEBOOK_VERSION);

    /* shapes: layers gives n_l, norm.mean hidden, basis k, splines K, directions n_d */
    if ((st = get_tensor(f, "layers", SAFETENSORS_I32, 1, &t_layers, err)) ||
        (st = read_dim(t_layers, 0, 1, CODEBOOK_MAX_LAYERS, "layer count", &n_l, err)) ||
        (st = get_tensor(f, "norm.mean", SAFETENSORS_F32, 2, &t_mean, err)) ||
        (st = check_dim(t_mean, 0, n_l, "the layer count", err)) ||
        (st = read_dim(t_mean, 1, 1, CODEBOOK_MAX_HIDDEN, "hidden size", &hidden, err)) ||
        (st = get_tensor(f, "norm.scale", SAFETENSORS_F32, 1, &t_scale, err)) ||
        (st = check_dim(t_scale, 0, n_l, "the layer count", err)) ||
        (st = get_tensor(f, "basis", SAFETENSORS_F32, 2, &t_basis, err)) ||
        (st = read_dim(t_basis, 0, 1, CODEBOOK_MAX_K, "k", &k, err)) ||
        (st = check_dim(t_basis, 1, (int64_t)n_l * hidden, "layers x hidden", err)) ||
        (st = get_tensor(f, "spline.knots", SAFETENSORS_F32, 2, &t_knots, err)) ||
        (st = check_dim(t_knots, 0, k + 1, "k + 1", err)) ||
        (st = read_dim(t_knots, 1, 2, CODEBOOK_MAX_KNOTS, "knot count", &K, err)) ||
        (st = get_tensor(f, "spline.cdf", SAFETENSORS_F32, 2, &t_cdf, err)) ||
        (st = check_dim(t_cdf, 0, k + 1, "k + 1", err)) ||
        (st = check_dim(t_cdf, 1, K, "the knot count", err)) ||
        (st = get_tensor(f, "spline.slope", SAFETENSORS_F32, 2, &t_slope, err)) ||
        (st = check_dim(t_slope, 0, k + 1, "k + 1", err)) ||
        (st = check_dim(t_slope, 1, K, "the knot count", err)) ||
        (st = get_tensor(f, "direction.weight", SAFETENSORS_F32, 2, &t_w, err)) ||
        (st = read_dim(t_w, 0, 0, CODEBOOK_MAX_DIRECTIONS, "direction count", &n_d, err)) ||
        (st = check_dim(t_w, 1, k, "k", err)) ||
        (st = get_tensor(f, "direction.bias", SAFETENSORS_F32, 1, &t_b, err)) ||
        (st = check_dim(t_b, 0, n_d, "the direction count", err)) ||
        (st = get_tensor(f, "direction.alpha", SAFETENSORS_F32, 1, &t_alpha, err)) ||
        (st = check_dim(t_alpha, 0, n_d + 1, "the direction count + 1", err)))
        return st;

    codebook *cb;
    if ((st = codebook_alloc(n_l, hidden, k, K, n_d, &cb, err)) != ALKFW_OK)
        return st;
    size_t D = (size_t)n_l * (size_t)hidden, rows = (size_t)k + 1;
    copy4(t_layers, cb->layers, (size_t)n_l);
    copy4(t_mean, cb->norm_mean, D);
    copy4(t_scale, cb->norm_scale, (size_t)n_l);
    copy4(t_basis, cb->basis, (size_t)k * D);
    copy4(t_knots, cb->knots, rows * (size_t)K);
    copy4(t_cdf, cb->cdf, rows * (size_t)K);
    copy4(t_slope, cb->slope, rows * (size_t)K);
    copy4(t_w, cb->dir_weight, (size_t)n_d * (size_t)k);
    copy4(t_b, cb->dir_bias, (size_t)n_d);
    copy4(t_alpha, cb->dir_alpha, (size_t)n_d + 1);

    /* metadata */
    const char *v;
    if (!(v = get_meta(f, "directions", 1, err)) || (st = read_directions(cb, v, err)))
        goto fail;
    if (!(v = get_meta(f, "smoothing_window", 1, err)) ||
        (st = parse_int("smoothing_window", v, 0, 1000000, &cb->smoothing_window, err)))
        goto fail;
    if (!(v = get_meta(f, "threshold_suspicious", 1, err)) ||
        (st = parse_unit("threshold_suspicious", v, &cb->threshold_suspicious, err)))
        goto fail;
    if (!(v = get_meta(f, "threshold_dangerous", 1, err)) ||
        (st = parse_unit("threshold_dangerous", v, &cb->threshold_dangerous, err)))
        goto fail;
    if (!(v = get_meta(f, "aggregation", 1, err)))
        goto fail;
    if (strcmp(v, "mean") != 0) {
        st = error_set(err, ALKFW_ERR_UNSUPPORTED,
                       "metadata 'aggregation' is '%.40s'; only 'mean' is supported", v);
        goto fail;
    }
    struct {
        const char *key;
        char **field;
    } strings[] = {{"model_id", &cb->model_id},
                   {"model_revision", &cb->model_revision},
                   {"model_fingerprint", &cb->model_fingerprint},
                   {"metrics", &cb->metrics},
                   {"training_data", &cb->training_data},
                   {"created_by", &cb->created_by}};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        v = get_meta(f, strings[i].key, 0, err);
        if (v && (st = codebook_set_string(strings[i].field, v, err)))
            goto fail;
    }
    if ((st = check_fingerprint_syntax(cb->model_fingerprint, err)) ||
        (st = check_json("metrics", cb->metrics, err)) ||
        (st = check_json("training_data", cb->training_data, err)))
        goto fail;

    /* values: finiteness, ordering, ranges */
    if ((st = codebook_validate(cb, err)) != ALKFW_OK)
        goto fail;
    *out = cb;
    return ALKFW_OK;

fail:
    if (st == ALKFW_OK)
        st = err ? err->status : ALKFW_ERR_FORMAT;
    if (st == ALKFW_OK)
        st = ALKFW_ERR_FORMAT;
    codebook_free(cb);
    return st;
}

alkfw_status codebook_load(const char *path, codebook **out, alkfw_error *err)
{
    *out = NULL;
    safetensors_file *f;
    alkfw_status st = safetensors_open(path, &f, err);
    if (st != ALKFW_OK)
        return st;
    st = load_from(f, out, err);
    safetensors_close(f);
    if (st != ALKFW_OK)
        return error_prefix(err, "%s", path);
    return ALKFW_OK;
}

alkfw_status codebook_load_buffer(const void *data, size_t len, const char *name, codebook **out,
                                  alkfw_error *err)
{
    *out = NULL;
    safetensors_file *f;
    alkfw_status st = safetensors_open_buffer(data, len, &f, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "%s", name ? name : "codebook");
    st = load_from(f, out, err);
    safetensors_close(f);
    if (st != ALKFW_OK)
        return error_prefix(err, "%s", name ? name : "codebook");
    return ALKFW_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* Writing                                                                                   */
/* ---------------------------------------------------------------------------------------- */

/* Formats v with the fewest significant digits that read back to the same double. */
static void format_double(double v, char *buf, size_t size)
{
    for (int digits = 6; digits <= 17; digits++) {
        snprintf(buf, size, "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

/* Everything a file holds, in the writer's terms. */
typedef struct file_parts {
    int64_t shapes[10][2];
    safetensors_write_tensor tensors[10];
    const char *keys[13];
    const char *values[13];
    char window[32], t_susp[40], t_dang[40];
    char *directions;
} file_parts;

/* Fills parts from a validated cb; the caller frees parts->directions. */
static alkfw_status build_parts(const codebook *cb, file_parts *p, alkfw_error *err)
{
    int64_t n_l = cb->n_layers, D = (int64_t)cb->n_layers * cb->hidden, k = cb->k, K = cb->n_knots,
            nd = cb->n_dirs;
    struct {
        const char *name;
        safetensors_dtype dtype;
        int ndim;
        int64_t d0, d1;
        const void *data;
    } spec[10] = {
        {"layers", SAFETENSORS_I32, 1, n_l, 0, cb->layers},
        {"norm.mean", SAFETENSORS_F32, 2, n_l, cb->hidden, cb->norm_mean},
        {"norm.scale", SAFETENSORS_F32, 1, n_l, 0, cb->norm_scale},
        {"basis", SAFETENSORS_F32, 2, k, D, cb->basis},
        {"spline.knots", SAFETENSORS_F32, 2, k + 1, K, cb->knots},
        {"spline.cdf", SAFETENSORS_F32, 2, k + 1, K, cb->cdf},
        {"spline.slope", SAFETENSORS_F32, 2, k + 1, K, cb->slope},
        {"direction.weight", SAFETENSORS_F32, 2, nd, k, cb->dir_weight},
        {"direction.bias", SAFETENSORS_F32, 1, nd, 0, cb->dir_bias},
        {"direction.alpha", SAFETENSORS_F32, 1, nd + 1, 0, cb->dir_alpha},
    };
    for (int i = 0; i < 10; i++) {
        p->shapes[i][0] = spec[i].d0;
        p->shapes[i][1] = spec[i].d1;
        p->tensors[i] = (safetensors_write_tensor){spec[i].name, spec[i].dtype, spec[i].ndim,
                                                   p->shapes[i], spec[i].data};
    }

    cJSON *names = cJSON_CreateArray();
    for (int d = 0; names && d < cb->n_dirs; d++) {
        cJSON *s = cJSON_CreateString(cb->directions[d]);
        if (!s || !cJSON_AddItemToArray(names, s)) {
            cJSON_Delete(s);
            cJSON_Delete(names);
            names = NULL;
        }
    }
    p->directions = names ? cJSON_PrintUnformatted(names) : NULL;
    cJSON_Delete(names);
    if (!p->directions)
        return error_set(err, ALKFW_ERR_NOMEM, "codebook: out of memory writing 'directions'");

    snprintf(p->window, sizeof p->window, "%d", cb->smoothing_window);
    format_double(cb->threshold_suspicious, p->t_susp, sizeof p->t_susp);
    format_double(cb->threshold_dangerous, p->t_dang, sizeof p->t_dang);
    const char *kv[13][2] = {{"format", CODEBOOK_FORMAT},
                             {"version", CODEBOOK_VERSION},
                             {"directions", p->directions},
                             {"smoothing_window", p->window},
                             {"threshold_suspicious", p->t_susp},
                             {"threshold_dangerous", p->t_dang},
                             {"aggregation", "mean"},
                             {"model_id", cb->model_id},
                             {"model_revision", cb->model_revision},
                             {"model_fingerprint", cb->model_fingerprint},
                             {"metrics", cb->metrics},
                             {"training_data", cb->training_data},
                             {"created_by", cb->created_by}};
    for (int i = 0; i < 13; i++) {
        p->keys[i] = kv[i][0];
        p->values[i] = kv[i][1];
    }
    return ALKFW_OK;
}

alkfw_status codebook_serialize(const codebook *cb, void **out_data, size_t *out_len,
                                alkfw_error *err)
{
    *out_data = NULL;
    *out_len = 0;
    alkfw_status st = codebook_validate(cb, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "codebook not written");
    file_parts p;
    if ((st = build_parts(cb, &p, err)) != ALKFW_OK)
        return st;
    st = safetensors_serialize(p.tensors, 10, p.keys, p.values, 13, out_data, out_len, err);
    free(p.directions);
    return st;
}

alkfw_status codebook_save(const codebook *cb, const char *path, alkfw_error *err)
{
    alkfw_status st = codebook_validate(cb, err);
    if (st != ALKFW_OK)
        return error_prefix(err, "%s: codebook not written", path);
    file_parts p;
    if ((st = build_parts(cb, &p, err)) != ALKFW_OK)
        return st;
    st = safetensors_write(path, p.tensors, 10, p.keys, p.values, 13, err);
    free(p.directions);
    return st;
}
