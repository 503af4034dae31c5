/*
 * safetensors.h - reading and writing safetensors files (the Hugging Face tensor format).
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON describing
 * each tensor (dtype, shape, [begin, end) byte range inside the data area) plus an optional
 * "__metadata__" string map, then the data area. Files are untrusted input: the reader
 * validates the whole header before handing out a single pointer (known dtype, every shape
 * product times the dtype size equal to its byte range, ranges inside the data area and not
 * overlapping, a sane header length, no duplicate names). After a successful open every
 * tensor's `data` pointer may be read for `nbytes` bytes.
 *
 * The reader maps files with mmap and copies nothing; tensor data stays in the mapping and is
 * valid until safetensors_close. A safetensors_file is read-only after opening and may be
 * used from many threads at once.
 *
 * The writer produces deterministic bytes: tensors are written in the order given (header
 * entries and data alike), "__metadata__" comes first with its keys in the order given, the
 * JSON has no whitespace, and the header is padded with spaces to a multiple of 8 bytes as
 * the Hugging Face library does, so identical inputs give identical files byte for byte.
 */
#ifndef ALKFW_FORMATS_SAFETENSORS_H
#define ALKFW_FORMATS_SAFETENSORS_H

#include "alkfw.h"

#include <stddef.h>
#include <stdint.h>

/* The element types of the format. */
typedef enum safetensors_dtype {
    SAFETENSORS_BOOL = 0,
    SAFETENSORS_U8,
    SAFETENSORS_I8,
    SAFETENSORS_I16,
    SAFETENSORS_U16,
    SAFETENSORS_F16,
    SAFETENSORS_BF16,
    SAFETENSORS_I32,
    SAFETENSORS_U32,
    SAFETENSORS_F32,
    SAFETENSORS_F64,
    SAFETENSORS_I64,
    SAFETENSORS_U64,
    SAFETENSORS_DTYPE_COUNT
} safetensors_dtype;

/* LIMIT: tensors of more than 8 dimensions are rejected as unsupported. */
#define SAFETENSORS_MAX_DIMS 8

/* Largest header accepted (the Hugging Face library uses the same bound). */
#define SAFETENSORS_MAX_HEADER (100u * 1024u * 1024u)

/* One tensor of an open file. All pointers are owned by the file. */
typedef struct safetensors_tensor {
    const char *name;
    safetensors_dtype dtype;
    int ndim;                            /* 0 for a scalar */
    int64_t shape[SAFETENSORS_MAX_DIMS]; /* shape[0..ndim-1] */
    size_t numel;                        /* product of the shape (1 for a scalar) */
    size_t nbytes;                       /* numel * dtype size == end - begin */
    size_t offset;                       /* begin, relative to the data area */
    const void *data;                    /* the bytes; no alignment is promised */
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

/* Bytes per element of dtype (BOOL is 1). Returns 0 for an out-of-range value. */
size_t safetensors_dtype_size(safetensors_dtype dtype);

/* The format's name of dtype ("F32", "BF16", ...); "?" for an out-of-range value. */
const char *safetensors_dtype_name(safetensors_dtype dtype);

/* Looks up a dtype by its format name. Returns 0 and sets *out, or -1 when unknown. */
int safetensors_dtype_from_name(const char *name, safetensors_dtype *out);

/* Maps the file at path and validates its header. On success *out owns the mapping; free it
 * with safetensors_close. Errors: ALKFW_ERR_IO (cannot open or map), ALKFW_ERR_FORMAT (any
 * malformation, the message naming the tensor and field), ALKFW_ERR_UNSUPPORTED (too many
 * dimensions), ALKFW_ERR_NOMEM. The message starts with the path. */
alkfw_status safetensors_open(const char *path, safetensors_file **out, alkfw_error *err);

/* Same as safetensors_open over len bytes in memory, without copying them: the caller keeps
 * data alive and unchanged until safetensors_close. */
alkfw_status safetensors_open_buffer(const void *data, size_t len, safetensors_file **out,
                                     alkfw_error *err);

/* Unmaps (when mapped) and frees everything of f. f may be NULL. */
void safetensors_close(safetensors_file *f);

/* The number of tensors, and the i-th in header order (NULL when i is out of range). */
size_t safetensors_count(const safetensors_file *f);
const safetensors_tensor *safetensors_tensor_at(const safetensors_file *f, size_t i);

/* The tensor called name, or NULL when there is none. O(log n). */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

/* The "__metadata__" value of key, or NULL when absent. */
const char *safetensors_metadata_get(const safetensors_file *f, const char *key);

/* The number of metadata entries and the i-th (header order). Returns -1 when i is out of
 * range, else 0 and sets *key and *value (owned by f). */
size_t safetensors_metadata_count(const safetensors_file *f);
int safetensors_metadata_at(const safetensors_file *f, size_t i, const char **key,
                            const char **value);

/* The size of the whole file or buffer in bytes. */
size_t safetensors_file_size(const safetensors_file *f);

/* ---- conversion to F32 ------------------------------------------------------------------ */

/* Converts count elements of dtype F32, F16 or BF16 at src (any alignment) to floats in dst.
 * Returns 0, or -1 (dst untouched) when dtype is another type. This function is the hot path
 * of per-layer weight conversion, so it checks nothing else. */
int safetensors_convert_f32(safetensors_dtype dtype, const void *src, size_t count, float *dst);

/* Copies tensor t, which must hold exactly count elements of F32, F16 or BF16, into dst as
 * floats. Errors: ALKFW_ERR_MISMATCH (element count differs), ALKFW_ERR_UNSUPPORTED (another
 * dtype); the message names the tensor. */
alkfw_status safetensors_read_f32(const safetensors_tensor *t, float *dst, size_t count,
                                  alkfw_error *err);

/* Half-precision helpers, exact conversions (round to nearest even when narrowing). */
float safetensors_f16_to_f32(uint16_t h);
float safetensors_bf16_to_f32(uint16_t b);
uint16_t safetensors_f32_to_f16(float f);
uint16_t safetensors_f32_to_bf16(float f);

/* ---- writing ----------------------------------------------------------------------------- */

/* A tensor to write: data holds numel(shape) * dtype size bytes, native (little-endian)
 * order. Nothing is owned. */
typedef struct safetensors_write_tensor {
    const char *name;
    safetensors_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} safetensors_write_tensor;

/* Builds a complete safetensors file in memory: the n tensors in the given order, metadata
 * entries meta_keys[i] = meta_values[i] in the given order (n_meta may be 0 and the arrays
 * NULL; no "__metadata__" is written then). On success *out_data is malloc'ed, the caller
 * frees it. Errors: ALKFW_ERR_ARGUMENT (empty, duplicate or reserved name, negative
 * dimension, unknown dtype, duplicate metadata key), ALKFW_ERR_NOMEM. */
alkfw_status safetensors_serialize(const safetensors_write_tensor *tensors, size_t n,
                                   const char *const *meta_keys, const char *const *meta_values,
                                   size_t n_meta, void **out_data, size_t *out_len,
                                   alkfw_error *err);

/* Writes the same bytes as safetensors_serialize to path atomically: into a temporary file in
 * the same directory, flushed, then renamed over path, so readers never see half a file.
 * Tensor data is streamed, not copied. Errors as for safetensors_serialize, plus
 * ALKFW_ERR_IO naming the path. */
alkfw_status safetensors_write(const char *path, const safetensors_write_tensor *tensors, size_t n,
                               const char *const *meta_keys, const char *const *meta_values,
                               size_t n_meta, alkfw_error *err);

/* ---- checkpoints (one file or shards) ---------------------------------------------------- */

/* The weights of a Hugging Face model directory: DIR/model.safetensors, or the shards listed
 * by DIR/model.safetensors.index.json ("weight_map": tensor name -> shard file name). */
typedef struct safetensors_checkpoint safetensors_checkpoint;

/* Opens the checkpoint in dir, preferring the index when both exist. Every shard is opened
 * and validated; every name in the weight map must be present in the shard it names, and a
 * shard file name must be a plain name inside dir. Errors: ALKFW_ERR_IO (no weights found or
 * unreadable), ALKFW_ERR_FORMAT (malformed index or shard, missing tensor), ALKFW_ERR_NOMEM. */
alkfw_status safetensors_checkpoint_open(const char *dir, safetensors_checkpoint **out,
                                         alkfw_error *err);
void safetensors_checkpoint_close(safetensors_checkpoint *c);

/* The tensor called name in whichever shard holds it, or NULL. */
const safetensors_tensor *safetensors_checkpoint_find(const safetensors_checkpoint *c,
                                                      const char *name);

/* The number of shard files (1 for a single model.safetensors) and the i-th. */
size_t safetensors_checkpoint_shard_count(const safetensors_checkpoint *c);
const safetensors_file *safetensors_checkpoint_shard(const safetensors_checkpoint *c, size_t i);

#endif
