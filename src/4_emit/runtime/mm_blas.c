/*
 * runtime/mm_blas.c -- md_mm with CBLAS: C = alpha op(A) op(B), by ddot,
 * dgemv, dsyrk (A A' and A' A) or dgemm as the shapes allow.  Every
 * product of the emitted code goes through md_mm.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_MM_BLAS_C
#define MD_RT_MM_BLAS_C

#include "prelude.h"
#include "blas.h"

/* md:begin */
/* C (m x n) = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n,
   column-major; ta, tb: the operand is stored transposed; beta 0 or 1 (C
   is not read when 0: it may hold anything).  Vectors use ddot and dgemv,
   A A' and A' A dsyrk. */
static void md_mm(int ta, int tb, long m, long n, long k, double alpha,
                  const double *A, const double *B, double beta, double *C)
{
    long lda = ta ? k : m, ldb = tb ? n : k;
    if (lda < 1) lda = 1;
    if (ldb < 1) ldb = 1;
    if (m == 1 && n == 1)
        C[0] = alpha * cblas_ddot((int)k, A, 1, B, 1) + (beta != 0.0 ? beta * C[0] : 0.0);
    else if (n == 1)
        cblas_dgemv(CblasColMajor, ta ? CblasTrans : CblasNoTrans, (int)(ta ? k : m), (int)(ta ? m : k),
                    alpha, A, (int)lda, B, 1, beta, C, 1);
    else if (m == 1)
        cblas_dgemv(CblasColMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? n : k), (int)(tb ? k : n),
                    alpha, B, (int)ldb, A, 1, beta, C, 1);
    else if (A == B && ta != tb && beta == 0.0) {   /* A A' or A' A: symmetric, half the work */
        cblas_dsyrk(CblasColMajor, CblasLower, ta ? CblasTrans : CblasNoTrans, (int)m, (int)k, alpha, A,
                    (int)lda, 0.0, C, (int)m);
        for (long md_j = 0; md_j < m; md_j++)
            for (long md_i = md_j + 1; md_i < m; md_i++) C[md_j + md_i * m] = C[md_i + md_j * m];
    } else
        cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)m);
}

/* md:end */

MD_RUNTIME_KEEP(md_mm)

#endif
