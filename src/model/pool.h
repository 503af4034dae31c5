/*
 * pool.h - a tiny fork-join thread pool for the element-wise work of the forward pass
 * (weight conversion, norms, softmax, SiLU), which would otherwise run on one core between
 * the multi-threaded matrix products.
 *
 * A pool belongs to one forward session and is driven by one thread at a time.
 */
#ifndef ALKFW_MODEL_POOL_H
#define ALKFW_MODEL_POOL_H

#include "alkfw.h"

#include <stddef.h>

typedef struct model_pool model_pool;

/* A share of the work: items [begin, end) of a range. */
typedef void (*model_pool_fn)(void *ctx, size_t begin, size_t end);

/* Starts n_threads - 1 workers (the calling thread is the last one); n_threads <= 1 gives a
 * pool that runs everything on the caller. Errors: ALKFW_ERR_NOMEM, ALKFW_ERR_INTERNAL (a
 * thread could not be started). */
alkfw_status model_pool_new(int n_threads, model_pool **out, alkfw_error *err);

/* Runs fn over items [0, n) split into contiguous shares, one per thread, and returns when
 * all are done. Ranges shorter than min_per_thread items per thread use fewer threads, so
 * small jobs do not pay for waking workers. This function can't fail. */
void model_pool_run(model_pool *p, model_pool_fn fn, void *ctx, size_t n, size_t min_per_thread);

/* Stops and joins the workers and frees p. p may be NULL. */
void model_pool_free(model_pool *p);

#endif
