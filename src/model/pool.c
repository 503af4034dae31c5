/*
 * pool.c - fork-join worker threads with one mutex and two condition variables.
 */
#include "model/pool.h"

#include "common/error.h"

#include <pthread.h>
#include <stdlib.h>

struct model_pool {
    int n_workers;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t work_cv; /* a new job was posted, or stop */
    pthread_cond_t done_cv; /* the last share of a job finished */
    unsigned long generation;
    int stop;
    /* the current job */
    model_pool_fn fn;
    void *ctx;
    size_t n;
    int shares; /* threads taking part, caller included */
    int pending;
};

typedef struct worker_arg {
    model_pool *p;
    int index; /* share index 1..n_workers; the caller takes share 0 */
} worker_arg;

/* Items of share k when n items are split into `shares` contiguous shares. */
static void share_range(size_t n, int shares, int k, size_t *begin, size_t *end)
{
    *begin = n * (size_t)k / (size_t)shares;
    *end = n * (size_t)(k + 1) / (size_t)shares;
}

static void *worker_main(void *arg)
{
    worker_arg *w = arg;
    model_pool *p = w->p;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->work_cv, &p->mu);
        if (p->stop)
            break;
        seen = p->generation;
        if (w->index >= p->shares)
            continue; /* a small job that does not need this worker */
        model_pool_fn fn = p->fn;
        void *ctx = p->ctx;
        size_t begin, end;
        share_range(p->n, p->shares, w->index, &begin, &end);
        pthread_mutex_unlock(&p->mu);
        fn(ctx, begin, end);
        pthread_mutex_lock(&p->mu);
        if (--p->pending == 0)
            pthread_cond_signal(&p->done_cv);
    }
    pthread_mutex_unlock(&p->mu);
    free(w);
    return NULL;
}

alkfw_status model_pool_new(int n_threads, model_pool **out, alkfw_error *err)
{
    *out = NULL;
    model_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return error_set(err, ALKFW_ERR_NOMEM, "out of memory for a thread pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    int want = n_threads > 1 ? n_threads - 1 : 0;
    if (want > 0) {
        p->threads = calloc((size_t)want, sizeof *p->threads);
        if (p->threads == NULL) {
            model_pool_free(p);
            return error_set(err, ALKFW_ERR_NOMEM, "out of memory for a thread pool");
        }
    }
    for (int i = 0; i < want; i++) {
        worker_arg *w = malloc(sizeof *w);
        if (w == NULL) {
            model_pool_free(p);
            return error_set(err, ALKFW_ERR_NOMEM, "out of memory for a thread pool");
        }
        *w = (worker_arg){p, i + 1};
        if (pthread_create(&p->threads[i], NULL, worker_main, w) != 0) {
            free(w);
            model_pool_free(p);
            return error_set(err, ALKFW_ERR_INTERNAL, "cannot start worker thread %d", i + 1);
        }
        p->n_workers++;
    }
    *out = p;
    return ALKFW_OK;
}

void model_pool_run(model_pool *p, model_pool_fn fn, void *ctx, size_t n, size_t min_per_thread)
{
    if (n == 0)
        return;
    size_t most = min_per_thread > 0 ? n / min_per_thread : n;
    int shares = p->n_workers + 1;
    if ((size_t)shares > most)
        shares = most > 0 ? (int)most : 1;
    if (shares <= 1) {
        fn(ctx, 0, n);
        return;
    }

    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    p->shares = shares;
    p->pending = shares - 1;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    size_t begin, end;
    share_range(n, shares, 0, &begin, &end);
    fn(ctx, begin, end);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void model_pool_free(model_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->done_cv);
    free(p);
}
