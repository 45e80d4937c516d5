/*
 * runtime/lu_lapack.c -- md_lu with LAPACK (BLAS mode): the Fortran
 * declarations of dgetrf, dgetrs and dgetri, MD_PIVOTS, and the
 * factorisation.  The pivots are LAPACK integers in the double workspace,
 * read with memcpy (md_pivot), so no integer lvalue aliases the caller's
 * doubles.
 * (The helper is the text between the markers; see prelude.h.)
 */
#ifndef MD_RT_LU_LAPACK_C
#define MD_RT_LU_LAPACK_C

#include "prelude.h"

/* md:begin */
/* LAPACK through its Fortran interface, which OpenBLAS provides (LAPACKE
   would allocate).  MD_LAPACK_INT is LAPACK's integer: define it as a
   64-bit type (long on LP64 systems) for an ILP64 LAPACK. */
#ifndef MD_LAPACK_INT
#define MD_LAPACK_INT int
#endif
void dgetrf_(const MD_LAPACK_INT *m, const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda,
             MD_LAPACK_INT *ipiv, MD_LAPACK_INT *info);
void dgetrs_(const char *trans, const MD_LAPACK_INT *n, const MD_LAPACK_INT *nrhs, const double *a,
             const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv, double *b, const MD_LAPACK_INT *ldb,
             MD_LAPACK_INT *info, size_t trans_len);
void dgetri_(const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv,
             double *work, const MD_LAPACK_INT *lwork, MD_LAPACK_INT *info);

/* The pivots of an n x n LU: MD_PIVOTS(n) doubles of the workspace hold n
   LAPACK integers (read with memcpy, so work may be any double array). */
#define MD_PIVOTS(n) (((size_t)(n) * sizeof(MD_LAPACK_INT) + sizeof(double) - 1) / sizeof(double))

/* LU (n x n) = the LU factors of A with partial pivoting: dgetrf on a copy.
   A singular A leaves a zero on U's diagonal. */
static void md_lu(long n, const double *A, double *LU, double *piv)
{
    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n;
    MD_LAPACK_INT info = 0;
    memcpy(LU, A, (size_t)(n * n) * sizeof(double));
    dgetrf_(&nn, &nn, LU, &nn, (MD_LAPACK_INT *)(void *)piv, &info);
}

/* md:end */

MD_RUNTIME_KEEP(md_lu)

#endif
