/*
 * safetensors.c - the safetensors reader (validating, zero-copy) and writer (deterministic).
 */
#include "formats/safetensors.h"

#include "common/error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct safetensors_file {
    const uint8_t *base; /* the whole file or buffer */
    size_t size;
    int mapped; /* base came from mmap and is unmapped on close */
    size_t header_len;
    size_t data_len;
    safetensors_tensor *tensors; /* header order */
    size_t n_tensors;
    size_t *by_name; /* indices into tensors, sorted by name */
    char **meta_keys;
    char **meta_values;
    size_t n_meta;
};

/* ------------------------------------------------------------------------------------------ */
/* dtypes                                                                                      */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t size;
} dtype_table[SAFETENSORS_DTYPE_COUNT] = {
    [SAFETENSORS_BOOL] = {"BOOL", 1}, [SAFETENSORS_U8] = {"U8", 1},
    [SAFETENSORS_I8] = {"I8", 1},     [SAFETENSORS_I16] = {"I16", 2},
    [SAFETENSORS_U16] = {"U16", 2},   [SAFETENSORS_F16] = {"F16", 2},
    [SAFETENSORS_BF16] = {"BF16", 2}, [SAFETENSORS_I32] = {"I32", 4},
    [SAFETENSORS_U32] = {"U32", 4},   [SAFETENSORS_F32] = {"F32", 4},
    [SAFETENSORS_F64] = {"F64", 8},   [SAFETENSORS_I64] = {"I64", 8},
    [SAFETENSORS_U64] = {"U64", 8},
};

size_t safetensors_dtype_size(safetensors_dtype dtype)
{
    if ((unsigned)dtype >= SAFETENSORS_DTYPE_COUNT)
        return 0;
    return dtype_table[dtype].size;
}

const char *safetensors_dtype_name(safetensors_dtype dtype)
{
    if ((unsigned)dtype >= SAFETENSORS_DTYPE_COUNT)
        return "?";
    return dtype_table[dtype].name;
}

int safetensors_dtype_from_name(const char *name, safetensors_dtype *out)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < SAFETENSORS_DTYPE_COUNT; i++) {
        if (strcmp(name, dtype_table[i].name) == 0) {
            *out = (safetensors_dtype)i;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* header validation                                                                           */
/* ------------------------------------------------------------------------------------------ */

/* Largest integer a JSON number (a double in cJSON) holds exactly. */
#define JSON_MAX_EXACT 9007199254740992.0

/* Reads a JSON number that must be a non-negative integer. Returns 0 and sets *out, or -1 and
 * fills err with a message naming what (tensor and field). */
static int json_size(const cJSON *item, const char *tensor, const char *field, uint64_t *out,
                     alkfw_error *err)
{
    if (!cJSON_IsNumber(item)) {
        error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': %s is not a number", tensor, field);
        return -1;
    }
    double v = item->valuedouble;
    if (!(v >= 0)) {
        error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': %s is negative (%g)", tensor, field, v);
        return -1;
    }
    if (v != floor(v)) {
        error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': %s is not an integer (%g)", tensor, field,
                  v);
        return -1;
    }
    if (v > JSON_MAX_EXACT) {
        error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': %s is absurdly large (%g)", tensor, field,
                  v);
        return -1;
    }
    *out = (uint64_t)v;
    return 0;
}

/* Fills t from the JSON description desc of the tensor called name, checking dtype, shape and
 * byte range against the data area of data_len bytes. */
static alkfw_status parse_tensor(const char *name, const cJSON *desc, size_t data_len,
                                 safetensors_tensor *t, alkfw_error *err)
{
    if (!cJSON_IsObject(desc))
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': description is not an object", name);

    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(desc, "dtype");
    if (!cJSON_IsString(dtype))
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': missing or non-string dtype", name);
    if (safetensors_dtype_from_name(dtype->valuestring, &t->dtype) != 0)
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': unknown dtype '%.32s'", name,
                         dtype->valuestring);

    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(desc, "shape");
    if (!cJSON_IsArray(shape))
        return error_set(err, ALKFW_ERR_FORMAT, "tensor '%s': missing or non-array shape", name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > SAFETENSORS_MAX_DIMS)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tensor '%s': %d dimensions (at most %d supported)", name, ndim,
                         SAFETENSORS_MAX_DIMS);
    t->ndim = ndim;
    uint64_t numel = 1;
    int overflow = 0;
    int d = 0;
    for (const cJSON *dim = shape->child; dim != NULL; dim = dim->next, d++) {
        uint64_t v;
        char field[32];
        snprintf(field, sizeof field, "shape[%d]", d);
        if (json_size(dim, name, field, &v, err) != 0)
            return err ? err->status : ALKFW_ERR_FORMAT;
        t->shape[d] = (int64_t)v;
        if (v != 0 && numel > UINT64_MAX / v)
            overflow = 1;
        else
            numel *= v;
    }
    size_t esize = safetensors_dtype_size(t->dtype);
    if (overflow || esize == 0 || numel > SIZE_MAX / esize)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor '%s': shape product overflows (absurd shape)", name);

    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(desc, "data_offsets");
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor '%s': data_offsets must be an array of two integers", name);
    uint64_t begin, end;
    if (json_size(offsets->child, name, "data_offsets[0]", &begin, err) != 0 ||
        json_size(offsets->child->next, name, "data_offsets[1]", &end, err) != 0)
        return err ? err->status : ALKFW_ERR_FORMAT;
    if (end < begin)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor '%s': data_offsets end %llu is before begin %llu", name,
                         (unsigned long long)end, (unsigned long long)begin);
    if (end > data_len)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor '%s': data_offsets [%llu, %llu) out of range (data area has "
                         "%zu bytes)",
                         name, (unsigned long long)begin, (unsigned long long)end, data_len);
    if (end - begin != numel * esize)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "tensor '%s': byte range has %llu bytes but dtype %s and shape need "
                         "%llu",
                         name, (unsigned long long)(end - begin), dtype_table[t->dtype].name,
                         (unsigned long long)(numel * esize));
    t->numel = (size_t)numel;
    t->nbytes = (size_t)(end - begin);
    t->offset = (size_t)begin;
    return ALKFW_OK;
}

/* Reads the "__metadata__" object into f: every value must be a string. */
static alkfw_status parse_metadata(const cJSON *meta, safetensors_file *f, alkfw_error *err)
{
    if (!cJSON_IsObject(meta))
        return error_set(err, ALKFW_ERR_FORMAT, "__metadata__ is not an object");
    size_t n = (size_t)cJSON_GetArraySize(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_values = calloc(n ? n : 1, sizeof *f->meta_values);
    if (f->meta_keys == NULL || f->meta_values == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory reading __metadata__");
    for (const cJSON *e = meta->child; e != NULL; e = e->next) {
        if (!cJSON_IsString(e))
            return error_set(err, ALKFW_ERR_FORMAT,
                             "__metadata__: value of '%.64s' is not a "
                             "string",
                             e->string);
        for (size_t j = 0; j < f->n_meta; j++) {
            if (strcmp(f->meta_keys[j], e->string) == 0)
                return error_set(err, ALKFW_ERR_FORMAT, "__metadata__: duplicate key '%.64s'",
                                 e->string);
        }
        f->meta_keys[f->n_meta] = strdup(e->string);
        f->meta_values[f->n_meta] = strdup(e->valuestring);
        f->n_meta++;
        if (f->meta_keys[f->n_meta - 1] == NULL || f->meta_values[f->n_meta - 1] == NULL)
            return error_set(err, ALKFW_ERR_NOMEM, "out of memory reading __metadata__");
    }
    return ALKFW_OK;
}

/* qsort helpers: the tensor index arrays sort by name or by begin offset. The comparison
 * context is passed through a small array of {tensors, index} pairs. */
typedef struct sort_entry {
    const safetensors_tensor *t;
    size_t index;
} sort_entry;

static int cmp_by_name(const void *a, const void *b)
{
    const sort_entry *x = a, *y = b;
    return strcmp(x->t->name, y->t->name);
}

static int cmp_by_offset(const void *a, const void *b)
{
    const sort_entry *x = a, *y = b;
    if (x->t->offset != y->t->offset)
        return x->t->offset < y->t->offset ? -1 : 1;
    if (x->t->nbytes != y->t->nbytes)
        return x->t->nbytes < y->t->nbytes ? -1 : 1;
    return 0;
}

/* Checks names are unique and byte ranges do not overlap, and builds f->by_name. */
static alkfw_status check_layout(safetensors_file *f, alkfw_error *err)
{
    size_t n = f->n_tensors;
    sort_entry *s = malloc((n ? n : 1) * sizeof *s);
    f->by_name = malloc((n ? n : 1) * sizeof *f->by_name);
    if (s == NULL || f->by_name == NULL) {
        free(s);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory indexing %zu tensors", n);
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (sort_entry){&f->tensors[i], i};

    qsort(s, n, sizeof *s, cmp_by_name);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(s[i - 1].t->name, s[i].t->name) == 0) {
            error_set(err, ALKFW_ERR_FORMAT, "duplicate tensor name '%.200s'", s[i].t->name);
            free(s);
            return ALKFW_ERR_FORMAT;
        }
        f->by_name[i] = s[i].index;
    }

    /* Empty tensors occupy no bytes and cannot overlap anything. */
    qsort(s, n, sizeof *s, cmp_by_offset);
    const safetensors_tensor *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = s[i].t;
        if (t->nbytes == 0)
            continue;
        if (prev != NULL && t->offset < prev->offset + prev->nbytes) {
            error_set(err, ALKFW_ERR_FORMAT,
                      "tensors '%.100s' and '%.100s' overlap (bytes [%zu, %zu) and [%zu, %zu))",
                      prev->name, t->name, prev->offset, prev->offset + prev->nbytes, t->offset,
                      t->offset + t->nbytes);
            free(s);
            return ALKFW_ERR_FORMAT;
        }
        prev = t;
    }
    free(s);
    return ALKFW_OK;
}

/* Validates the header of f->base[0..f->size) and fills the tensor and metadata tables. */
static alkfw_status parse_file(safetensors_file *f, alkfw_error *err)
{
    if (f->size < 8)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "file is truncated: %zu bytes, shorter than the 8-byte header length",
                         f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | f->base[i];
    if (hlen > SAFETENSORS_MAX_HEADER)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "header length %llu is absurd (at most %u accepted)",
                         (unsigned long long)hlen, SAFETENSORS_MAX_HEADER);
    if (hlen > f->size - 8)
        return error_set(err, ALKFW_ERR_FORMAT,
                         "header length %llu runs past the end of the file (%zu bytes after "
                         "the length; truncated file?)",
                         (unsigned long long)hlen, f->size - 8);
    if (hlen < 2 || f->base[8] != '{')
        return error_set(err, ALKFW_ERR_FORMAT, "header does not start with a JSON object");
    f->header_len = (size_t)hlen;
    f->data_len = f->size - 8 - f->header_len;

    const char *text = (const char *)f->base + 8;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, f->header_len, &end, 0);
    if (root == NULL) {
        size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
        return error_set(err, ALKFW_ERR_FORMAT, "header is not valid JSON (near byte %zu)", at);
    }
    for (const char *p = end; p != NULL && p < text + f->header_len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0') {
            cJSON_Delete(root);
            return error_set(err, ALKFW_ERR_FORMAT,
                             "header has trailing bytes after the JSON object (byte %zu)",
                             (size_t)(p - text));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return error_set(err, ALKFW_ERR_FORMAT, "header is not a JSON object");
    }

    size_t n = 0;
    int n_metadata = 0;
    for (const cJSON *e = root->child; e != NULL; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0)
            n_metadata++;
        else
            n++;
    }
    alkfw_status st = ALKFW_OK;
    if (n_metadata > 1) {
        st = error_set(err, ALKFW_ERR_FORMAT, "header has __metadata__ twice");
        goto done;
    }
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (f->tensors == NULL) {
        st = error_set(err, ALKFW_ERR_NOMEM, "out of memory for %zu tensors", n);
        goto done;
    }
    for (const cJSON *e = root->child; e != NULL; e = e->next) {
        if (strcmp(e->string, "__metadata__") == 0) {
            st = parse_metadata(e, f, err);
            if (st != ALKFW_OK)
                goto done;
            continue;
        }
        safetensors_tensor *t = &f->tensors[f->n_tensors];
        st = parse_tensor(e->string, e, f->data_len, t, err);
        if (st != ALKFW_OK)
            goto done;
        char *name = strdup(e->string);
        if (name == NULL) {
            st = error_set(err, ALKFW_ERR_NOMEM, "out of memory for tensor names");
            goto done;
        }
        t->name = name;
        t->data = f->base + 8 + f->header_len + t->offset;
        f->n_tensors++;
    }
    st = check_layout(f, err);
done:
    cJSON_Delete(root);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* opening and lookup                                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Validates an already mapped or borrowed f; on failure closes it. */
static alkfw_status finish_open(safetensors_file *f, safetensors_file **out, alkfw_error *err)
{
    alkfw_status st = parse_file(f, err);
    if (st != ALKFW_OK) {
        safetensors_close(f);
        return st;
    }
    *out = f;
    return ALKFW_OK;
}

alkfw_status safetensors_open_buffer(const void *data, size_t len, safetensors_file **out,
                                     alkfw_error *err)
{
    if (out == NULL || (data == NULL && len > 0))
        return error_set(err, ALKFW_ERR_ARGUMENT, "safetensors_open_buffer: NULL argument");
    *out = NULL;
    safetensors_file *f = calloc(1, sizeof *f);
    if (f == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory opening safetensors buffer");
    f->base = data;
    f->size = len;
    return finish_open(f, out, err);
}

alkfw_status safetensors_open(const char *path, safetensors_file **out, alkfw_error *err)
{
    if (path == NULL || out == NULL)
        return error_set(err, ALKFW_ERR_ARGUMENT, "safetensors_open: NULL argument");
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, ALKFW_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return error_set(err, ALKFW_ERR_IO, "%s: not a regular file", path);
    }
    safetensors_file *f = calloc(1, sizeof *f);
    if (f == NULL) {
        close(fd);
        return error_set(err, ALKFW_ERR_NOMEM, "%s: out of memory", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            free(f);
            return error_set(err, ALKFW_ERR_IO, "%s: cannot map: %s", path, strerror(e));
        }
        f->base = m;
        f->mapped = 1;
    }
    close(fd);
    alkfw_status st = finish_open(f, out, err);
    if (st != ALKFW_OK)
        error_prefix(err, "%s", path);
    return st;
}

void safetensors_close(safetensors_file *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_tensors; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    free(f->by_name);
    for (size_t i = 0; i < f->n_meta; i++) {
        free(f->meta_keys[i]);
        free(f->meta_values[i]);
    }
    free(f->meta_keys);
    free(f->meta_values);
    if (f->mapped)
        munmap((void *)f->base, f->size);
    free(f);
}

size_t safetensors_count(const safetensors_file *f)
{
    return f->n_tensors;
}

const safetensors_tensor *safetensors_tensor_at(const safetensors_file *f, size_t i)
{
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    size_t lo = 0, hi = f->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const safetensors_tensor *t = &f->tensors[f->by_name[mid]];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *safetensors_metadata_get(const safetensors_file *f, const char *key)
{
    for (size_t i = 0; i < f->n_meta; i++) {
        if (strcmp(f->meta_keys[i], key) == 0)
            return f->meta_values[i];
    }
    return NULL;
}

size_t safetensors_metadata_count(const safetensors_file *f)
{
    return f->n_meta;
}

int safetensors_metadata_at(const safetensors_file *f, size_t i, const char **key,
                            const char **value)
{
    if (i >= f->n_meta)
        return -1;
    *key = f->meta_keys[i];
    *value = f->meta_values[i];
    return 0;
}

size_t safetensors_file_size(const safetensors_file *f)
{
    return f->size;
}

/* ------------------------------------------------------------------------------------------ */
/* conversion                                                                                  */
/* ------------------------------------------------------------------------------------------ */

float safetensors_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {
            /* subnormal: normalise the mantissa */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float safetensors_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t safetensors_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((bits >> 16) | 0x40u); /* quiet NaN */
    bits += 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)(bits >> 16);
}

uint16_t safetensors_f32_to_f16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    uint32_t abs = bits & 0x7fffffffu;
    if (abs > 0x7f800000u)
        return sign | 0x7e00u; /* NaN */
    if (abs >= 0x477ff000u)    /* rounds to >= 65520: infinity */
        return sign | 0x7c00u;
    if (abs < 0x38800000u) {
        /* result is subnormal or zero: value = abs * 2^24 in units of the f16 subnormal */
        if (abs < 0x33000000u)
            return sign; /* below half the smallest subnormal */
        uint32_t exp = abs >> 23;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t shift = 126 - exp; /* 14 + (112 - exp) */
        uint32_t r = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1u)))
            r++;
        return sign | (uint16_t)r;
    }
    uint32_t r = abs - 0x38000000u; /* rebias exponent 127 -> 15 */
    uint32_t rem = r & 0x1fffu;
    r >>= 13;
    if (rem > 0x1000u || (rem == 0x1000u && (r & 1u)))
        r++;
    return sign | (uint16_t)r;
}

/* The conversion loops get a second, AVX2 build chosen at load time on x86-64 CPUs that have
 * it: this runs once per weight matrix per forward. The clones sit on a static function
 * because clang 14 does not export the dispatcher of a cloned external one. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target_clones("avx2", "default")))
#endif
static int
convert_f32(safetensors_dtype dtype, const void *src, size_t count, float *dst)
{
    const uint8_t *p = src;
    switch (dtype) {
    case SAFETENSORS_F32:
        memcpy(dst, src, count * sizeof(float));
        return 0;
    case SAFETENSORS_BF16:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* the file's little-endian halves are native: a plain loop the compiler vectorizes */
        for (size_t i = 0; i < count; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, sizeof h);
            uint32_t bits = (uint32_t)h << 16;
            memcpy(&dst[i], &bits, sizeof bits);
        }
#else
        for (size_t i = 0; i < count; i++) {
            uint32_t bits = ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8) << 16;
            memcpy(&dst[i], &bits, sizeof bits);
        }
#endif
        return 0;
    case SAFETENSORS_F16:
        for (size_t i = 0; i < count; i++)
            dst[i] = safetensors_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    default:
        return -1;
    }
}

int safetensors_convert_f32(safetensors_dtype dtype, const void *src, size_t count, float *dst)
{
    return convert_f32(dtype, src, count, dst);
}

alkfw_status safetensors_read_f32(const safetensors_tensor *t, float *dst, size_t count,
                                  alkfw_error *err)
{
    if (t->numel != count)
        return error_set(err, ALKFW_ERR_MISMATCH, "tensor '%s' has %zu elements, expected %zu",
                         t->name, t->numel, count);
    if (safetensors_convert_f32(t->dtype, t->data, count, dst) != 0)
        return error_set(err, ALKFW_ERR_UNSUPPORTED,
                         "tensor '%s' has dtype %s; only F32, F16 and BF16 convert to F32", t->name,
                         safetensors_dtype_name(t->dtype));
    return ALKFW_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

typedef struct strbuf {
    char *p;
    size_t len, cap;
    int failed;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Appends s as a JSON string literal (quotes included). */
static void sb_json_string(strbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_put(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            sb_str(b, esc);
        } else {
            sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Builds the padded header (without the 8-byte length) for the tensors and metadata, and the
 * byte size of each tensor. */
static alkfw_status build_header(const safetensors_write_tensor *tensors, size_t n,
                                 const char *const *meta_keys, const char *const *meta_values,
                                 size_t n_meta, strbuf *h, size_t *sizes, alkfw_error *err)
{
    for (size_t i = 0; i < n; i++) {
        const safetensors_write_tensor *t = &tensors[i];
        if (t->name == NULL || t->name[0] == '\0' || strcmp(t->name, "__metadata__") == 0)
            return error_set(err, ALKFW_ERR_ARGUMENT, "tensor %zu: empty or reserved name", i);
        if (safetensors_dtype_size(t->dtype) == 0)
            return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': unknown dtype", t->name);
        if (t->ndim < 0 || t->ndim > SAFETENSORS_MAX_DIMS || (t->ndim > 0 && t->shape == NULL))
            return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': bad dimension count %d",
                             t->name, t->ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0)
                return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': negative shape[%d]",
                                 t->name, d);
            uint64_t v = (uint64_t)t->shape[d];
            if (v != 0 && numel > SIZE_MAX / v)
                return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': shape overflows", t->name);
            numel *= (size_t)v;
        }
        if (numel > SIZE_MAX / safetensors_dtype_size(t->dtype))
            return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': shape overflows", t->name);
        sizes[i] = numel * safetensors_dtype_size(t->dtype);
        if (sizes[i] > 0 && t->data == NULL)
            return error_set(err, ALKFW_ERR_ARGUMENT, "tensor '%s': NULL data", t->name);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(tensors[j].name, t->name) == 0)
                return error_set(err, ALKFW_ERR_ARGUMENT, "duplicate tensor name '%s'", t->name);
        }
    }
    for (size_t i = 0; i < n_meta; i++) {
        if (meta_keys[i] == NULL || meta_values[i] == NULL)
            return error_set(err, ALKFW_ERR_ARGUMENT, "metadata entry %zu is NULL", i);
        for (size_t j = 0; j < i; j++) {
            if (strcmp(meta_keys[j], meta_keys[i]) == 0)
                return error_set(err, ALKFW_ERR_ARGUMENT, "duplicate metadata key '%s'",
                                 meta_keys[i]);
        }
    }

    sb_str(h, "{");
    int first = 1;
    if (n_meta > 0) {
        sb_str(h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta; i++) {
            if (i > 0)
                sb_str(h, ",");
            sb_json_string(h, meta_keys[i]);
            sb_str(h, ":");
            sb_json_string(h, meta_values[i]);
        }
        sb_str(h, "}");
        first = 0;
    }
    size_t offset = 0;
    for (size_t i = 0; i < n; i++) {
        const safetensors_write_tensor *t = &tensors[i];
        char num[64];
        if (!first)
            sb_str(h, ",");
        first = 0;
        sb_json_string(h, t->name);
        sb_str(h, ":{\"dtype\":\"");
        sb_str(h, safetensors_dtype_name(t->dtype));
        sb_str(h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            sb_str(h, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%zu,%zu]}", offset, offset + sizes[i]);
        sb_str(h, num);
        offset += sizes[i];
    }
    sb_str(h, "}");
    while (!h->failed && h->len % 8 != 0)
        sb_str(h, " ");
    if (h->failed)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory building safetensors header");
    return ALKFW_OK;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

alkfw_status safetensors_serialize(const safetensors_write_tensor *tensors, size_t n,
                                   const char *const *meta_keys, const char *const *meta_values,
                                   size_t n_meta, void **out_data, size_t *out_len,
                                   alkfw_error *err)
{
    if (out_data == NULL || out_len == NULL || (n > 0 && tensors == NULL) ||
        (n_meta > 0 && (meta_keys == NULL || meta_values == NULL)))
        return error_set(err, ALKFW_ERR_ARGUMENT, "safetensors_serialize: NULL argument");
    size_t *sizes = malloc((n ? n : 1) * sizeof *sizes);
    if (sizes == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
    strbuf h = {0};
    alkfw_status st = build_header(tensors, n, meta_keys, meta_values, n_meta, &h, sizes, err);
    if (st != ALKFW_OK)
        goto done;
    size_t total = 8 + h.len;
    for (size_t i = 0; i < n; i++)
        total += sizes[i];
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        st =
            error_set(err, ALKFW_ERR_NOMEM, "out of memory for a %zu-byte safetensors file", total);
        goto done;
    }
    put_le64(buf, h.len);
    memcpy(buf + 8, h.p, h.len);
    size_t at = 8 + h.len;
    for (size_t i = 0; i < n; i++) {
        if (sizes[i] > 0)
            memcpy(buf + at, tensors[i].data, sizes[i]);
        at += sizes[i];
    }
    *out_data = buf;
    *out_len = total;
done:
    free(h.p);
    free(sizes);
    return st;
}

/* Writes all n bytes of p to fd. Returns 0, or -1 with errno set. */
static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t w = write(fd, b, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

alkfw_status safetensors_write(const char *path, const safetensors_write_tensor *tensors, size_t n,
                               const char *const *meta_keys, const char *const *meta_values,
                               size_t n_meta, alkfw_error *err)
{
    if (path == NULL || (n > 0 && tensors == NULL) ||
        (n_meta > 0 && (meta_keys == NULL || meta_values == NULL)))
        return error_set(err, ALKFW_ERR_ARGUMENT, "safetensors_write: NULL argument");
    size_t *sizes = malloc((n ? n : 1) * sizeof *sizes);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (sizes == NULL || tmp == NULL) {
        free(sizes);
        free(tmp);
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory");
    }
    strbuf h = {0};
    alkfw_status st = build_header(tensors, n, meta_keys, meta_values, n_meta, &h, sizes, err);
    if (st != ALKFW_OK)
        goto done;

    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = error_set(err, ALKFW_ERR_IO, "%s: cannot create a temporary file: %s", path,
                       strerror(errno));
        goto done;
    }
    uint8_t len8[8];
    put_le64(len8, h.len);
    int bad = write_all(fd, len8, 8) != 0 || write_all(fd, h.p, h.len) != 0;
    for (size_t i = 0; i < n && !bad; i++)
        bad = sizes[i] > 0 && write_all(fd, tensors[i].data, sizes[i]) != 0;
    /* mkstemp creates mode 0600; give the file the usual permissions of a written file
     * (reading the umask would change process state, so 0644 is used as is). */
    if (!bad)
        bad = fchmod(fd, 0644) != 0 || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        e = errno;
    }
    if (bad) {
        unlink(tmp);
        st = error_set(err, ALKFW_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
done:
    free(h.p);
    free(sizes);
    free(tmp);
    return st;
}
