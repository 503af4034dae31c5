/*
 * matmul.c - OpenBLAS sgemm and a portable C fallback for the forward pass's products.
 */
#include "model/matmul.h"

#include "common/error.h"

#include <string.h>
#include <unistd.h>

#ifdef ALKFW_HAVE_OPENBLAS
#include <cblas.h>
#endif

int matmul_have_openblas(void)
{
#ifdef ALKFW_HAVE_OPENBLAS
    return 1;
#else
    return 0;
#endif
}

alkfw_status matmul_init(alkfw_backend requested, int n_threads, matmul_ctx *out, alkfw_error *err)
{
    if (n_threads < 0)
        return error_set(err, ALKFW_ERR_ARGUMENT, "n_threads is negative (%d)", n_threads);
    switch (requested) {
    case ALKFW_BACKEND_AUTO:
        out->backend = matmul_have_openblas() ? ALKFW_BACKEND_OPENBLAS : ALKFW_BACKEND_C;
        break;
    case ALKFW_BACKEND_C:
        out->backend = ALKFW_BACKEND_C;
        break;
    case ALKFW_BACKEND_OPENBLAS:
        if (!matmul_have_openblas())
            return error_set(err, ALKFW_ERR_BACKEND,
                             "backend openblas was not built in (configure with "
                             "-DALKFW_WITH_OPENBLAS=ON)");
        out->backend = ALKFW_BACKEND_OPENBLAS;
        break;
    case ALKFW_BACKEND_CUDA:
        return error_set(err, ALKFW_ERR_BACKEND, "backend cuda was not built in");
    default:
        return error_set(err, ALKFW_ERR_ARGUMENT, "unknown backend %d", (int)requested);
    }
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 ? (int)cores : 1;
    } else {
#ifdef ALKFW_HAVE_OPENBLAS
        if (out->backend == ALKFW_BACKEND_OPENBLAS)
            openblas_set_num_threads(n_threads);
#endif
    }
    out->n_threads = n_threads;
    return ALKFW_OK;
}

/* ---- portable C ------------------------------------------------------------------------- */

/* LIMIT: the portable path runs on one thread and blocks only over rows of B; it is a
 * correctness fallback, several times slower than OpenBLAS. */
static void c_abt(size_t m, size_t n, size_t k, float alpha, const float *a, size_t lda,
                  const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    enum { NB = 64 };
    for (size_t j0 = 0; j0 < n; j0 += NB) {
        size_t j1 = j0 + NB < n ? j0 + NB : n;
        for (size_t i = 0; i < m; i++) {
            const float *ai = a + i * lda;
            float *ci = c + i * ldc;
            for (size_t j = j0; j < j1; j++) {
                const float *bj = b + j * ldb;
                float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                size_t p = 0;
                for (; p + 4 <= k; p += 4) {
                    s0 += ai[p] * bj[p];
                    s1 += ai[p + 1] * bj[p + 1];
                    s2 += ai[p + 2] * bj[p + 2];
                    s3 += ai[p + 3] * bj[p + 3];
                }
                for (; p < k; p++)
                    s0 += ai[p] * bj[p];
                float s = alpha * ((s0 + s1) + (s2 + s3));
                ci[j] = beta == 0 ? s : s + beta * ci[j];
            }
        }
    }
}

static void c_ab(size_t m, size_t n, size_t k, const float *a, size_t lda, const float *b,
                 size_t ldb, float *c, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *ci = c + i * ldc;
        memset(ci, 0, n * sizeof *ci);
        for (size_t p = 0; p < k; p++) {
            float aip = a[i * lda + p];
            const float *bp = b + p * ldb;
            for (size_t j = 0; j < n; j++)
                ci[j] += aip * bp[j];
        }
    }
}

/* ---- dispatch ---------------------------------------------------------------------------- */

void matmul_abt(const matmul_ctx *ctx, size_t m, size_t n, size_t k, float alpha, const float *a,
                size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc)
{
    if (m == 0 || n == 0)
        return;
#ifdef ALKFW_HAVE_OPENBLAS
    if (ctx->backend == ALKFW_BACKEND_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k,
                    alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
        return;
    }
#endif
    (void)ctx;
    c_abt(m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void matmul_ab(const matmul_ctx *ctx, size_t m, size_t n, size_t k, const float *a, size_t lda,
               const float *b, size_t ldb, float *c, size_t ldc)
{
    if (m == 0 || n == 0)
        return;
#ifdef ALKFW_HAVE_OPENBLAS
    if (ctx->backend == ALKFW_BACKEND_OPENBLAS) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                    1.0f, a, (blasint)lda, b, (blasint)ldb, 0.0f, c, (blasint)ldc);
        return;
    }
#endif
    (void)ctx;
    c_ab(m, n, k, a, lda, b, ldb, c, ldc);
}
