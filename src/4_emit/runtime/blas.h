/*
 * runtime/blas.h -- the CBLAS declarations the BLAS helpers use, for
 * compiling them on their own.  Never emitted: an emitted file that calls
 * CBLAS includes <cblas.h> (md_emit_c).
 *
 * emit.mk defines MD_HAVE_CBLAS_H when the compiler finds <cblas.h>, and
 * then the helpers are checked against the real header; otherwise against
 * the reference CBLAS prototypes below, so that building matdiff never
 * needs a BLAS.
 */
#ifndef MD_RUNTIME_BLAS_H
#define MD_RUNTIME_BLAS_H

#ifdef MD_HAVE_CBLAS_H
#include <cblas.h>
#else
enum CBLAS_ORDER { CblasRowMajor = 101, CblasColMajor = 102 };
enum CBLAS_TRANSPOSE { CblasNoTrans = 111, CblasTrans = 112, CblasConjTrans = 113 };
enum CBLAS_UPLO { CblasUpper = 121, CblasLower = 122 };
enum CBLAS_DIAG { CblasNonUnit = 131, CblasUnit = 132 };
enum CBLAS_SIDE { CblasLeft = 141, CblasRight = 142 };

double cblas_ddot(const int N, const double *X, const int incX, const double *Y, const int incY);
void cblas_dswap(const int N, double *X, const int incX, double *Y, const int incY);
void cblas_dgemv(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE TransA, const int M, const int N,
                 const double alpha, const double *A, const int lda, const double *X, const int incX,
                 const double beta, double *Y, const int incY);
void cblas_dgemm(const enum CBLAS_ORDER Order, const enum CBLAS_TRANSPOSE TransA,
                 const enum CBLAS_TRANSPOSE TransB, const int M, const int N, const int K, const double alpha,
                 const double *A, const int lda, const double *B, const int ldb, const double beta, double *C,
                 const int ldc);
void cblas_dsyrk(const enum CBLAS_ORDER Order, const enum CBLAS_UPLO Uplo, const enum CBLAS_TRANSPOSE Trans,
                 const int N, const int K, const double alpha, const double *A, const int lda, const double beta,
                 double *C, const int ldc);
void cblas_dtrsm(const enum CBLAS_ORDER Order, const enum CBLAS_SIDE Side, const enum CBLAS_UPLO Uplo,
                 const enum CBLAS_TRANSPOSE TransA, const enum CBLAS_DIAG Diag, const int M, const int N,
                 const double alpha, const double *A, const int lda, double *B, const int ldb);
#endif

#endif
