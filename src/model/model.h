/*
 * model.h - the detector model inside the library: configuration, weights, and forward
 * sessions with a KV cache.
 *
 * A session runs the decoder over tokens in pieces: each call forwards only its new tokens,
 * at positions continuing from the cached length, attending to every cached position. The
 * results of forwarding a sequence in pieces equal those of forwarding it at once (up to
 * float rounding in the order of summation). alkfw_model_hidden is one session per call.
 *
 * Weights stay in the mapped safetensors files. F32 weights whose data is 4-byte aligned are
 * used in place; F16 and BF16 weights (and unaligned F32) are converted one matrix at a time
 * into a scratch buffer of the session, so memory stays close to the bytes of the weights
 * the requested depth uses, and blocks past the deepest requested index are never read.
 */
#ifndef ALKFW_MODEL_MODEL_H
#define ALKFW_MODEL_MODEL_H

#include "alkfw.h"
#include "formats/safetensors.h"
#include "model/config.h"

#include <stddef.h>
#include <stdint.h>

typedef struct model_session model_session;

/* The parsed configuration of an open model (owned by the model). */
const model_config *model_get_config(const alkfw_model *model);

/* The model directory as given to alkfw_model_open (owned by the model). */
const char *model_dir(const alkfw_model *model);

/* The raw stored bytes of model.embed_tokens.weight, for fingerprints: *data points into the
 * mapping (valid while the model is open), *len is its byte count, *dtype its element type.
 * Any out pointer may be NULL. This function can't fail. */
void model_embed_bytes(const alkfw_model *model, const void **data, size_t *len,
                       safetensors_dtype *dtype);

/* Creates a session able to hold capacity_tokens positions (at most max_position_embeddings)
 * that computes hidden states up to index deepest_index (0..n_layers; HF convention). It
 * keeps a KV cache of every block below deepest_index and starts n_threads - 1 worker
 * threads (the model's thread count) for the element-wise steps, stopped by
 * model_session_free. The model must outlive the session; the session is used by one thread
 * at a time. Errors: ALKFW_ERR_ARGUMENT (index out of range, capacity 0), ALKFW_ERR_LIMIT
 * (capacity above max positions), ALKFW_ERR_NOMEM, ALKFW_ERR_INTERNAL (no thread). */
alkfw_status model_session_new(const alkfw_model *model, size_t capacity_tokens, int deepest_index,
                               model_session **out, alkfw_error *err);

/* Forwards n_new token ids at positions length..length+n_new-1 and appends them to the
 * cache. out receives n_indices x n_new x hidden_size floats laid out [index][position]
 * [hidden] in the order of indices (each in 0..deepest_index; repeats allowed); out may be
 * NULL when n_indices is 0. On error the cache is unchanged. Errors: ALKFW_ERR_ARGUMENT (id
 * outside the vocabulary, index above the session's depth), ALKFW_ERR_LIMIT (the capacity
 * would be exceeded), ALKFW_ERR_NOMEM. */
alkfw_status model_session_forward(model_session *s, const int32_t *ids, size_t n_new,
                                   const int *indices, size_t n_indices, float *out,
                                   alkfw_error *err);

/* Forgets cached positions from n_keep on (no effect when n_keep >= the length), so the next
 * forward continues at position n_keep. This function can't fail. */
void model_session_truncate(model_session *s, size_t n_keep);

/* The number of cached positions. */
size_t model_session_length(const model_session *s);

/* The deepest hidden-state index the session computes, and its capacity. */
int model_session_depth(const model_session *s);
size_t model_session_capacity(const model_session *s);

/* Frees s. s may be NULL. */
void model_session_free(model_session *s);

#endif
