/*
 * matmul.h - the matrix products of the forward pass, behind one small interface.
 *
 * Two backends: OpenBLAS sgemm (when built with ALKFW_WITH_OPENBLAS) and a portable C path.
 * All matrices are row-major F32 with explicit leading dimensions (row strides, in floats),
 * so heads can be addressed inside wider activation rows without copying.
 */
#ifndef ALKFW_MODEL_MATMUL_H
#define ALKFW_MODEL_MATMUL_H

#include "alkfw.h"

#include <stddef.h>

typedef struct matmul_ctx {
    alkfw_backend backend; /* ALKFW_BACKEND_C or ALKFW_BACKEND_OPENBLAS, never AUTO */
    int n_threads;
} matmul_ctx;

/* Whether the library was built with OpenBLAS. */
int matmul_have_openblas(void);

/* Chooses the backend for a request: AUTO picks OpenBLAS when built in, else C. Asking for
 * OpenBLAS without it, or for CUDA, is ALKFW_ERR_BACKEND. n_threads 0 means the number of
 * online cores.
 * LIMIT: OpenBLAS keeps one process-wide thread count; a positive n_threads is applied to it
 * with openblas_set_num_threads at this call, so the last model opened with an explicit count
 * decides it for every model of the process. */
alkfw_status matmul_init(alkfw_backend requested, int n_threads, matmul_ctx *out, alkfw_error *err);

/* C[m,n] = alpha * A[m,k] . B[n,k]^T + beta * C (B is stored row-major as [n,k], the layout
 * of a PyTorch Linear weight). lda, ldb, ldc are row strides. This function can't fail. */
void matmul_abt(const matmul_ctx *ctx, size_t m, size_t n, size_t k, float alpha, const float *a,
                size_t lda, const float *b, size_t ldb, float beta, float *c, size_t ldc);

/* C[m,n] = A[m,k] . B[k,n] (beta 0). This function can't fail. */
void matmul_ab(const matmul_ctx *ctx, size_t m, size_t n, size_t k, const float *a, size_t lda,
               const float *b, size_t ldb, float *c, size_t ldc);

#endif
