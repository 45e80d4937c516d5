/*
 * emit.c -- C code generation (see md_emit.h and docs/codegen.md): the
 * driver of the stage files, and the run-time helpers of the emitted file.
 *
 * The input is the function f and its gradients as one shared DAG.  The
 * output is one C99 translation unit whose main function evaluates that
 * DAG once: every node reachable from the roots becomes one statement (or
 * one loop, or one BLAS call), in a topological order, writing into its
 * own slice of the caller's workspace.  Because the graph is hash-consed,
 * a subexpression shared by f and several gradients is computed once,
 * and the gradients reuse f's values, as reverse mode does.
 *
 * md_emit_c runs the stages in order, each in its own file and all
 * sharing the emitter of emit_internal.h:
 *
 *     costopt.c     with every size known (--size): products bracketed by
 *                   cost, shared sub-products, Gram matrices
 *     emit_plan.c   em_scan: twins, LUs, needs, modes, fusion
 *     emit_names.c  em_names: the C names of the interface
 *     emit_plan.c   em_values: values and workspace slices
 *     emit_code.c   em_body: the statements
 *     emit_text.c   the top comment and the declarations
 *
 * and then assembles the file: the comment, the includes, the
 * declarations, the run-time helpers the statements call, NAME_workspace
 * (the slices and the largest scratch need) and the function, whose
 * prologue voids what it does not read (dims, work, unused inputs), so
 * that the file compiles cleanly under -Wall -Wextra -Wpedantic.
 * md_emit_header and md_emit_dim_fields run only the naming stage.
 *
 * The run-time helpers (md_mm, md_lu, md_sm, md_chain, ...) are string
 * literals below, one per helper, each with a plain-loop and, where it
 * matters, a BLAS or LAPACK variant; md_emit_c picks the ones the
 * statements used, in an order where each comes after what it calls.
 * All helpers are column-major and have the same interface in both
 * backends:
 *
 *  - md_mm: C = alpha op(A) op(B), ddot, dgemv, dsyrk or dgemm by shape;
 *  - LU factorisations: md_lu factors (dgetrf in BLAS mode, through the
 *    Fortran interface: LAPACKE would allocate), md_lu_det reads the
 *    determinant off the factors, md_lu_solve and md_lu_rsolve apply
 *    inv(A) or inv(A') from the left or the right, md_sm is a product
 *    with an inverse factor as a solve, md_lu_inv forms an inverse.  The
 *    pivots live in the double workspace (MD_PIVOTS(n) doubles) and are
 *    read back with memcpy (md_pivot), so no integer lvalue aliases the
 *    caller's doubles;
 *  - md_chain_dp, md_chain_run, md_chain, md_chain_trace: run-time
 *    bracketing of chains of up to MD_CHAIN_MAX factors;
 *  - md_trdot, md_tcopy, md_mpow: traces of products, transposed copies,
 *    matrix powers.
 *
 * Nothing here allocates nodes: emission reads the graph, it never builds
 * (costopt.c does, before).
 */
#include "md_emit.h"
#include "md_costopt.h"

#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"

/* ---- the run-time helpers --------------------------------------------- */

static const char em_helper_mm_blas[] =
    "/* C (m x n) = alpha op(A) op(B), op(A) m x k, op(B) k x n, column-major;\n"
    "   ta, tb: the operand is stored transposed.  Vectors use ddot and dgemv. */\n"
    "static void md_mm(int ta, int tb, long m, long n, long k, double alpha,\n"
    "                  const double *A, const double *B, double *C)\n"
    "{\n"
    "    long lda = ta ? k : m, ldb = tb ? n : k;\n"
    "    if (lda < 1) lda = 1;\n"
    "    if (ldb < 1) ldb = 1;\n"
    "    if (m == 1 && n == 1)\n"
    "        C[0] = alpha * cblas_ddot((int)k, A, 1, B, 1);\n"
    "    else if (n == 1)\n"
    "        cblas_dgemv(CblasColMajor, ta ? CblasTrans : CblasNoTrans, (int)(ta ? k : m), (int)(ta ? m : k),\n"
    "                    alpha, A, (int)lda, B, 1, 0.0, C, 1);\n"
    "    else if (m == 1)\n"
    "        cblas_dgemv(CblasColMajor, tb ? CblasNoTrans : CblasTrans, (int)(tb ? n : k), (int)(tb ? k : n),\n"
    "                    alpha, B, (int)ldb, A, 1, 0.0, C, 1);\n"
    "    else if (A == B && ta != tb) {   /* A A' or A' A: symmetric, half the work */\n"
    "        cblas_dsyrk(CblasColMajor, CblasLower, ta ? CblasTrans : CblasNoTrans, (int)m, (int)k, alpha, A,\n"
    "                    (int)lda, 0.0, C, (int)m);\n"
    "        for (long md_j = 0; md_j < m; md_j++)\n"
    "            for (long md_i = md_j + 1; md_i < m; md_i++) C[md_j + md_i * m] = C[md_i + md_j * m];\n"
    "    } else\n"
    "        cblas_dgemm(CblasColMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,\n"
    "                    (int)m, (int)n, (int)k, alpha, A, (int)lda, B, (int)ldb, 0.0, C, (int)m);\n"
    "}\n\n";

static const char em_helper_mm_loops[] =
    "/* C (m x n) = alpha op(A) op(B), op(A) m x k, op(B) k x n, column-major;\n"
    "   ta, tb: the operand is stored transposed. */\n"
    "static void md_mm(int ta, int tb, long m, long n, long k, double alpha,\n"
    "                  const double *A, const double *B, double *C)\n"
    "{\n"
    "    const long ai = ta ? k : 1, al = ta ? 1 : m;   /* op(A)(i,l) = A[i*ai + l*al] */\n"
    "    const long bl = tb ? n : 1, bj = tb ? 1 : k;   /* op(B)(l,j) = B[l*bl + j*bj] */\n"
    "    if (m == 1 || ta) {\n"
    "        for (long md_j = 0; md_j < n; md_j++)\n"
    "            for (long md_i = 0; md_i < m; md_i++) {\n"
    "                double s = 0.0;\n"
    "                for (long l = 0; l < k; l++) s += A[md_i * ai + l * al] * B[l * bl + md_j * bj];\n"
    "                C[md_i + md_j * m] = alpha * s;\n"
    "            }\n"
    "        return;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < n; md_j++) {\n"
    "        double *c = C + md_j * m;\n"
    "        for (long md_i = 0; md_i < m; md_i++) c[md_i] = 0.0;\n"
    "        for (long l = 0; l < k; l++) {\n"
    "            const double b = B[l * bl + md_j * bj];\n"
    "            const double *a = A + l * m;\n"
    "            for (long md_i = 0; md_i < m; md_i++) c[md_i] += a[md_i] * b;\n"
    "        }\n"
    "        for (long md_i = 0; md_i < m; md_i++) c[md_i] *= alpha;\n"
    "    }\n"
    "}\n\n";

/* The run-time bracketing helpers; with solves, factor i with p[i] is the
   inverse of the matrix whose LU is a[i], p[i]; with chain (md_chain) and
   trace (md_chain_trace) the two entry points used. */
static void em_helper_chain(md_buf *out, int solves, int chain, int trace)
{
    md_buf_puts(out,
        "/* The matrix-chain dynamic programme on the actual sizes: factor i is\n"
        "   d[i] x d[i+1]");
    if (solves) md_buf_puts(out, " (the inverse of the matrix whose LU factors are a[i],\n"
                                 "   p[i] when p && p[i]; two inverses cannot meet)");
    md_buf_puts(out,
        "; cost[i][j] is the cheapest (i..j), split[i][j]\n"
        "   where it splits. */\n"
        "static void md_chain_dp(int L, const long *d, const double *const *p, double cost[][MD_CHAIN_MAX],\n"
        "                        int split[][MD_CHAIN_MAX])\n"
        "{\n");
    if (!solves) md_buf_puts(out, "    (void)p;\n");
    md_buf_puts(out,
        "    for (int i = 0; i < L; i++) cost[i][i] = 0.0;\n"
        "    for (int len = 2; len <= L; len++)\n"
        "        for (int i = 0; i + len - 1 < L; i++) {\n"
        "            int j = i + len - 1;\n"
        "            cost[i][j] = HUGE_VAL;\n"
        "            split[i][j] = i;\n"
        "            for (int k = i; k < j; k++) {\n"
        "                double c = cost[i][k] + cost[k + 1][j] + (double)d[i] * (double)d[k + 1] * (double)d[j + 1];\n");
    if (solves)
        md_buf_puts(out,
            "                if (p && k == i && k + 1 == j && p[i] && p[j]) c = HUGE_VAL;\n");
    md_buf_puts(out,
        "                if (c < cost[i][j]) {\n"
        "                    cost[i][j] = c;\n"
        "                    split[i][j] = k;\n"
        "                }\n"
        "            }\n"
        "        }\n"
        "}\n\n"
        "/* C = alpha a[i] ... a[j] bracketed by split (stored transposed when\n"
        "   t[k]); scr holds the intermediate products. */\n"
        "static void md_chain_run(const long *d, const double *const *a, const double *const *p, const int *t,\n"
        "                         int split[][MD_CHAIN_MAX], int i, int j, double alpha,\n"
        "                         double *C, double *scr)\n"
        "{\n"
        "    int k = split[i][j];\n"
        "    const double *l = a[i], *r = a[j];\n"
        "    int tl = t[i], tr = t[j];\n"
        "    if (k > i) {\n"
        "        double *q = scr;\n"
        "        scr += d[i] * d[k + 1];\n"
        "        md_chain_run(d, a, p, t, split, i, k, 1.0, q, scr);\n"
        "        l = q;\n"
        "        tl = 0;\n"
        "    }\n"
        "    if (j > k + 1) {\n"
        "        double *q = scr;\n"
        "        scr += d[k + 1] * d[j + 1];\n"
        "        md_chain_run(d, a, p, t, split, k + 1, j, 1.0, q, scr);\n"
        "        r = q;\n"
        "        tr = 0;\n"
        "    }\n");
    if (solves)
        md_buf_puts(out,
            "    if (k == i && p && p[i])\n"
            "        md_sm(0, tl, tr, d[i], d[j + 1], alpha, l, p[i], r, C);\n"
            "    else if (j == k + 1 && p && p[j])\n"
            "        md_sm(1, tr, tl, d[i], d[j + 1], alpha, r, p[j], l, C);\n"
            "    else\n"
            "        md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, C);\n");
    else
        md_buf_puts(out, "    md_mm(tl, tr, d[i], d[j + 1], d[k + 1], alpha, l, r, C);\n");
    md_buf_puts(out, "}\n\n");
    if (chain)
        md_buf_puts(out,
            "/* C = alpha a[0] a[1] ... a[L-1], 3 <= L <= MD_CHAIN_MAX; scr holds the\n"
            "   intermediate products (at most the sizes of all proper sub-chains). */\n"
            "static void md_chain(int L, const long *d, const double *const *a, const double *const *p,\n"
            "                     const int *t, double alpha, double *C, double *scr)\n"
            "{\n"
            "    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX];\n"
            "    int split[MD_CHAIN_MAX][MD_CHAIN_MAX];\n"
            "    md_chain_dp(L, d, p, cost, split);\n"
            "    md_chain_run(d, a, p, t, split, 0, L - 1, alpha, C, scr);\n"
            "}\n\n");
    if (trace) {
        md_buf_puts(out,
            "/* tr(alpha a[0] ... a[L-1]) of a square chain, 3 <= L <= MD_CHAIN_MAX,\n"
            "   without forming it: the cheapest split into P = a[0..k] and Q =\n"
            "   a[k+1..L-1], then sum(P .* Q').  scr as for md_chain. */\n"
            "static double md_chain_trace(int L, const long *d, const double *const *a, const double *const *p,\n"
            "                             const int *t, double alpha, double *scr)\n"
            "{\n"
            "    double cost[MD_CHAIN_MAX][MD_CHAIN_MAX], best = HUGE_VAL;\n"
            "    int split[MD_CHAIN_MAX][MD_CHAIN_MAX], k = 0;\n"
            "    md_chain_dp(L, d, p, cost, split);\n"
            "    for (int s = 0; s < L - 1; s++) {\n"
            "        double c = cost[0][s] + cost[s + 1][L - 1] + (double)d[0] * (double)d[s + 1];\n");
        if (solves)
            md_buf_puts(out,
                "        if (p && ((s == 0 && p[0]) || (s == L - 2 && p[L - 1]))) continue;   /* an inverse */\n");
        md_buf_puts(out,
            "        if (c < best) {\n"
            "            best = c;\n"
            "            k = s;\n"
            "        }\n"
            "    }\n"
            "    const double *P = a[0], *Q = a[L - 1];\n"
            "    int tp = t[0], tq = t[L - 1];\n"
            "    double *q = scr + (k > 0 ? d[0] * d[k + 1] : 0);\n"
            "    if (k > 0) {\n"
            "        md_chain_run(d, a, p, t, split, 0, k, 1.0, scr, q);\n"
            "        P = scr;\n"
            "        tp = 0;\n"
            "    }\n"
            "    if (k < L - 2) {\n"
            "        md_chain_run(d, a, p, t, split, k + 1, L - 1, 1.0, q, q + d[k + 1] * d[0]);\n"
            "        Q = q;\n"
            "        tq = 0;\n"
            "    }\n"
            "    return alpha * md_trdot(tp, tq, d[0], d[k + 1], P, Q);\n"
            "}\n\n");
    }
}

static const char em_helper_trdot_blas[] =
    "/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r: a dot\n"
    "   product, without forming the r x r product. */\n"
    "static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)\n"
    "{\n"
    "    if (ta != tb) return cblas_ddot((int)(r * c), A, 1, B, 1);   /* same layout */\n"
    "    double s = 0.0;\n"
    "    if (ta) {   /* A c x r, B r x c */\n"
    "        const double *T = A;\n"
    "        A = B;\n"
    "        B = T;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < c; md_j++) s += cblas_ddot((int)r, A + md_j * r, 1, B + md_j, (int)c);\n"
    "    return s;\n"
    "}\n\n";

static const char em_helper_trdot_loops[] =
    "/* tr(op(A) op(B)) = sum(op(A) .* op(B)'), op(A) r x c, op(B) c x r,\n"
    "   without forming the r x r product. */\n"
    "static double md_trdot(int ta, int tb, long r, long c, const double *A, const double *B)\n"
    "{\n"
    "    double s = 0.0;\n"
    "    if (ta != tb) {   /* same layout */\n"
    "        for (long md_i = 0; md_i < r * c; md_i++) s += A[md_i] * B[md_i];\n"
    "        return s;\n"
    "    }\n"
    "    if (ta) {   /* A c x r, B r x c */\n"
    "        const double *T = A;\n"
    "        A = B;\n"
    "        B = T;\n"
    "    }\n"
    "    for (long md_j = 0; md_j < c; md_j++)\n"
    "        for (long md_i = 0; md_i < r; md_i++) s += A[md_i + md_j * r] * B[md_j + md_i * c];\n"
    "    return s;\n"
    "}\n\n";

static const char em_helper_tcopy[] =
    "/* B (r x c) = alpha A' for A c x r, column-major. */\n"
    "static void md_tcopy(long r, long c, double alpha, const double *A, double *B)\n"
    "{\n"
    "    for (long md_j = 0; md_j < c; md_j++)\n"
    "        for (long md_i = 0; md_i < r; md_i++) B[md_i + md_j * r] = alpha * A[md_j + md_i * c];\n"
    "}\n\n";

/*
 * LU factorisations.  Both backends have the same interface: md_lu
 * factors, md_lu_det reads the determinant off the factors, md_lu_solve
 * and md_lu_rsolve apply inv(A) or inv(A') from the left or the right,
 * md_lu_inv forms an inverse explicitly.  The pivots live in the workspace
 * (MD_PIVOTS(n) doubles); md_pivot reads the row swapped with row k.
 */
static const char em_helper_lapack[] =
    "/* LAPACK through its Fortran interface, which OpenBLAS provides (LAPACKE\n"
    "   would allocate).  MD_LAPACK_INT is LAPACK's integer: define it as a\n"
    "   64-bit type (long on LP64 systems) for an ILP64 LAPACK. */\n"
    "#ifndef MD_LAPACK_INT\n"
    "#define MD_LAPACK_INT int\n"
    "#endif\n"
    "void dgetrf_(const MD_LAPACK_INT *m, const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda,\n"
    "             MD_LAPACK_INT *ipiv, MD_LAPACK_INT *info);\n"
    "void dgetrs_(const char *trans, const MD_LAPACK_INT *n, const MD_LAPACK_INT *nrhs, const double *a,\n"
    "             const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv, double *b, const MD_LAPACK_INT *ldb,\n"
    "             MD_LAPACK_INT *info, size_t trans_len);\n"
    "void dgetri_(const MD_LAPACK_INT *n, double *a, const MD_LAPACK_INT *lda, const MD_LAPACK_INT *ipiv,\n"
    "             double *work, const MD_LAPACK_INT *lwork, MD_LAPACK_INT *info);\n\n"
    "/* The pivots of an n x n LU: MD_PIVOTS(n) doubles of the workspace hold n\n"
    "   LAPACK integers (read with memcpy, so work may be any double array). */\n"
    "#define MD_PIVOTS(n) (((size_t)(n) * sizeof(MD_LAPACK_INT) + sizeof(double) - 1) / sizeof(double))\n\n"
    "/* LU (n x n) = the LU factors of A with partial pivoting: dgetrf on a copy.\n"
    "   A singular A leaves a zero on U's diagonal. */\n"
    "static void md_lu(long n, const double *A, double *LU, double *piv)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n;\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    memcpy(LU, A, (size_t)(n * n) * sizeof(double));\n"
    "    dgetrf_(&nn, &nn, LU, &nn, (MD_LAPACK_INT *)(void *)piv, &info);\n"
    "}\n\n";

static const char em_helper_pivot_lapack[] =
    "/* The row (0-based) that the LU's pivoting swapped with row k. */\n"
    "static long md_pivot(const double *piv, long k)\n"
    "{\n"
    "    MD_LAPACK_INT p;\n"
    "    memcpy(&p, (const char *)piv + (size_t)k * sizeof p, sizeof p);\n"
    "    return (long)p - 1;\n"
    "}\n\n";

static const char em_helper_lu_loops[] =
    "/* The pivots of an n x n LU: n doubles of the workspace, row indices. */\n"
    "#define MD_PIVOTS(n) ((size_t)(n))\n\n"
    "/* LU (n x n) = the LU factors of A with partial pivoting, on a copy: P A =\n"
    "   L U, L unit lower below the diagonal, U on and above it; piv[k] is the\n"
    "   row swapped with row k at step k.  A column with no nonzero candidate\n"
    "   is skipped (U gets a zero pivot). */\n"
    "static void md_lu(long n, const double *A, double *LU, double *piv)\n"
    "{\n"
    "    memcpy(LU, A, (size_t)(n * n) * sizeof(double));\n"
    "    for (long k = 0; k < n; k++) {\n"
    "        long p = k;\n"
    "        for (long i = k + 1; i < n; i++)\n"
    "            if (fabs(LU[i + k * n]) > fabs(LU[p + k * n])) p = i;\n"
    "        piv[k] = (double)p;\n"
    "        if (p != k)\n"
    "            for (long j = 0; j < n; j++) {\n"
    "                const double s = LU[k + j * n];\n"
    "                LU[k + j * n] = LU[p + j * n];\n"
    "                LU[p + j * n] = s;\n"
    "            }\n"
    "        const double d = LU[k + k * n];\n"
    "        if (d == 0.0) continue;\n"
    "        for (long i = k + 1; i < n; i++) LU[i + k * n] /= d;\n"
    "        for (long j = k + 1; j < n; j++) {\n"
    "            const double u = LU[k + j * n];\n"
    "            if (u == 0.0) continue;\n"
    "            for (long i = k + 1; i < n; i++) LU[i + j * n] -= LU[i + k * n] * u;\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_pivot_loops[] =
    "/* The row that the LU's pivoting swapped with row k. */\n"
    "static long md_pivot(const double *piv, long k)\n"
    "{\n"
    "    return (long)piv[k];\n"
    "}\n\n";

static const char em_helper_lu_det[] =
    "/* det(A), or log det(A) when logdet, from A's LU (n x n).  log det of a\n"
    "   matrix whose determinant is not positive is NaN. */\n"
    "static double md_lu_det(long n, const double *LU, const double *piv, int logdet)\n"
    "{\n"
    "    double det = 1.0, logabs = 0.0;\n"
    "    int neg = 0;\n"
    "    for (long k = 0; k < n; k++) {\n"
    "        const double d = LU[k + k * n];\n"
    "        neg ^= md_pivot(piv, k) != k;\n"
    "        if (!logdet) {\n"
    "            det *= d;\n"
    "        } else if (d == 0.0) {\n"
    "            return NAN;\n"
    "        } else {\n"
    "            neg ^= d < 0.0;\n"
    "            logabs += log(fabs(d));\n"
    "        }\n"
    "    }\n"
    "    if (!logdet) return neg ? -det : det;\n"
    "    return neg ? NAN : logabs;\n"
    "}\n\n";

static const char em_helper_solve_lapack[] =
    "/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU: dgetrs. */\n"
    "static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, mm = (MD_LAPACK_INT)m;\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    dgetrs_(t ? \"T\" : \"N\", &nn, &mm, LU, &nn, (const MD_LAPACK_INT *)(const void *)piv, B, &nn, &info, 1);\n"
    "}\n\n";

static const char em_helper_rsolve_lapack[] =
    "/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U: the\n"
    "   triangular solves from the right (dtrsm) and the pivots' column swaps\n"
    "   (inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U')). */\n"
    "static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    if (m == 1) {   /* a row: the transposed solve of its column */\n"
    "        md_lu_solve(!t, n, 1, LU, piv, B);\n"
    "        return;\n"
    "    }\n"
    "    if (t) {\n"
    "        for (long k = 0; k < n; k++) {\n"
    "            const long p = md_pivot(piv, k);\n"
    "            if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);\n"
    "        }\n"
    "        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasTrans, CblasUnit, (int)m, (int)n, 1.0, LU,\n"
    "                    (int)n, B, (int)m);\n"
    "        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,\n"
    "                    (int)n, B, (int)m);\n"
    "        return;\n"
    "    }\n"
    "    cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, (int)m, (int)n, 1.0, LU,\n"
    "                (int)n, B, (int)m);\n"
    "    cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit, (int)m, (int)n, 1.0, LU,\n"
    "                (int)n, B, (int)m);\n"
    "    for (long k = n - 1; k >= 0; k--) {\n"
    "        const long p = md_pivot(piv, k);\n"
    "        if (p != k) cblas_dswap((int)m, B + k * m, 1, B + p * m, 1);\n"
    "    }\n"
    "}\n\n";

static const char em_helper_solve_loops[] =
    "/* B (n x m) = inv(op(A)) B, op(A) = A' when t, from A's LU = P L U:\n"
    "   the row swaps and the two triangular solves, column by column. */\n"
    "static void md_lu_solve(int t, long n, long m, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    for (long c = 0; c < m; c++) {\n"
    "        double *b = B + c * n;\n"
    "        if (!t) {   /* L U x = P' b */\n"
    "            for (long k = 0; k < n; k++) {\n"
    "                const long p = md_pivot(piv, k);\n"
    "                const double s = b[k];\n"
    "                b[k] = b[p];\n"
    "                b[p] = s;\n"
    "            }\n"
    "            for (long k = 0; k < n; k++)\n"
    "                for (long i = k + 1; i < n; i++) b[i] -= LU[i + k * n] * b[k];\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                b[k] /= LU[k + k * n];\n"
    "                for (long i = 0; i < k; i++) b[i] -= LU[i + k * n] * b[k];\n"
    "            }\n"
    "        } else {    /* U' L' P' x = b */\n"
    "            for (long k = 0; k < n; k++) {\n"
    "                double s = b[k];\n"
    "                for (long i = 0; i < k; i++) s -= LU[i + k * n] * b[i];\n"
    "                b[k] = s / LU[k + k * n];\n"
    "            }\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                double s = b[k];\n"
    "                for (long i = k + 1; i < n; i++) s -= LU[i + k * n] * b[i];\n"
    "                b[k] = s;\n"
    "            }\n"
    "            for (long k = n - 1; k >= 0; k--) {\n"
    "                const long p = md_pivot(piv, k);\n"
    "                const double s = b[k];\n"
    "                b[k] = b[p];\n"
    "                b[p] = s;\n"
    "            }\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_rsolve_loops[] =
    "/* B (m x n) = B inv(op(A)), op(A) = A' when t, from A's LU = P L U, on\n"
    "   columns: inv(A) = inv(U) inv(L) P', inv(A') = P inv(L') inv(U'). */\n"
    "static void md_lu_rsolve(int t, long m, long n, const double *LU, const double *piv, double *B)\n"
    "{\n"
    "    if (!t) {\n"
    "        for (long j = 0; j < n; j++) {              /* B inv(U) */\n"
    "            double *bj = B + j * m;\n"
    "            for (long k = 0; k < j; k++) {\n"
    "                const double u = LU[k + j * n];\n"
    "                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;\n"
    "            }\n"
    "            const double d = LU[j + j * n];\n"
    "            for (long i = 0; i < m; i++) bj[i] /= d;\n"
    "        }\n"
    "        for (long j = n - 1; j >= 0; j--)           /* inv(L) */\n"
    "            for (long k = j + 1; k < n; k++) {\n"
    "                const double l = LU[k + j * n];\n"
    "                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;\n"
    "            }\n"
    "    }\n"
    "    for (long q = 0; q < n; q++) {                  /* the column swaps */\n"
    "        const long k = t ? q : n - 1 - q, p = md_pivot(piv, k);\n"
    "        if (p == k) continue;\n"
    "        for (long i = 0; i < m; i++) {\n"
    "            const double s = B[i + k * m];\n"
    "            B[i + k * m] = B[i + p * m];\n"
    "            B[i + p * m] = s;\n"
    "        }\n"
    "    }\n"
    "    if (t) {\n"
    "        for (long j = 0; j < n; j++)                /* inv(L') */\n"
    "            for (long k = 0; k < j; k++) {\n"
    "                const double l = LU[j + k * n];\n"
    "                for (long i = 0; i < m; i++) B[i + j * m] -= B[i + k * m] * l;\n"
    "            }\n"
    "        for (long j = n - 1; j >= 0; j--) {         /* inv(U') */\n"
    "            double *bj = B + j * m;\n"
    "            for (long k = j + 1; k < n; k++) {\n"
    "                const double u = LU[j + k * n];\n"
    "                for (long i = 0; i < m; i++) bj[i] -= B[i + k * m] * u;\n"
    "            }\n"
    "            const double d = LU[j + j * n];\n"
    "            for (long i = 0; i < m; i++) bj[i] /= d;\n"
    "        }\n"
    "    }\n"
    "}\n\n";

static const char em_helper_sm[] =
    "/* C (m x n) = alpha inv(op(A)) op(B) (side 0, A m x m) or alpha op(B)\n"
    "   inv(op(A)) (side 1, A n x n), from A's LU; op(A) = A' when ta, op(B) =\n"
    "   B' (stored n x m) when tb.  A solve: the inverse is never formed. */\n"
    "static void md_sm(int side, int ta, int tb, long m, long n, double alpha, const double *LU,\n"
    "                  const double *piv, const double *B, double *C)\n"
    "{\n"
    "    if (tb) md_tcopy(m, n, alpha, B, C);\n"
    "    else\n"
    "        for (long md_i = 0; md_i < m * n; md_i++) C[md_i] = alpha * B[md_i];\n"
    "    if (side) md_lu_rsolve(ta, m, n, LU, piv, C);\n"
    "    else md_lu_solve(ta, m, n, LU, piv, C);\n"
    "}\n\n";

static const char em_helper_inv_lapack[] =
    "/* C = inv(op(A)), op(A) = A' when t, from A's LU: dgetri on a copy (scr:\n"
    "   64n doubles, for its blocked code), transposed in place when t.  A\n"
    "   singular A gives NaN. */\n"
    "static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)\n"
    "{\n"
    "    const MD_LAPACK_INT nn = (MD_LAPACK_INT)n, lwork = (MD_LAPACK_INT)(64 * n);\n"
    "    MD_LAPACK_INT info = 0;\n"
    "    memcpy(C, LU, (size_t)(n * n) * sizeof(double));\n"
    "    dgetri_(&nn, C, &nn, (const MD_LAPACK_INT *)(const void *)piv, scr, &lwork, &info);\n"
    "    if (info != 0) {\n"
    "        for (long i = 0; i < n * n; i++) C[i] = NAN;\n"
    "        return;\n"
    "    }\n"
    "    if (t)\n"
    "        for (long j = 0; j < n; j++)\n"
    "            for (long i = j + 1; i < n; i++) {\n"
    "                const double s = C[i + j * n];\n"
    "                C[i + j * n] = C[j + i * n];\n"
    "                C[j + i * n] = s;\n"
    "            }\n"
    "}\n\n";

static const char em_helper_inv_loops[] =
    "/* C = inv(op(A)), op(A) = A' when t, from A's LU: the solves of the\n"
    "   identity's columns.  A singular A gives infinities or NaN. */\n"
    "static void md_lu_inv(int t, long n, const double *LU, const double *piv, double *C, double *scr)\n"
    "{\n"
    "    (void)scr;\n"
    "    memset(C, 0, (size_t)(n * n) * sizeof(double));\n"
    "    for (long i = 0; i < n; i++) C[i + i * n] = 1.0;\n"
    "    md_lu_solve(t, n, n, LU, piv, C);\n"
    "}\n\n";

static const char em_helper_mpow[] =
    "/* C = A^k for the n x n A and k >= 1, by binary powering; scr holds\n"
    "   2*n*n doubles. */\n"
    "static void md_mpow(long n, long k, const double *A, double *C, double *scr)\n"
    "{\n"
    "    double *base = scr, *tmp = scr + n * n;\n"
    "    const size_t bytes = (size_t)(n * n) * sizeof(double);\n"
    "    int have = 0;\n"
    "    memcpy(base, A, bytes);\n"
    "    while (k > 0) {\n"
    "        if (k & 1) {\n"
    "            if (!have) {\n"
    "                memcpy(C, base, bytes);\n"
    "                have = 1;\n"
    "            } else {\n"
    "                md_mm(0, 0, n, n, n, 1.0, C, base, tmp);\n"
    "                memcpy(C, tmp, bytes);\n"
    "            }\n"
    "        }\n"
    "        k >>= 1;\n"
    "        if (k > 0) {\n"
    "            md_mm(0, 0, n, n, n, 1.0, base, base, tmp);\n"
    "            memcpy(base, tmp, bytes);\n"
    "        }\n"
    "    }\n"
    "}\n\n";

/* ---- driver ----------------------------------------------------------- */

static void em_free(emitter *E)
{
    if (E->nd) {
        for (int k = 0; k < E->ntopo; k++) {
            em_node *x = &E->nd[E->topo[k]->id];
            free(x->val);
            free(x->need);
        }
    }
    free(E->nd);
    free(E->topo);
    for (int i = 0; i < E->nlus; i++) {
        free(E->lus[i].need);
        free(E->lus[i].val);
        free(E->lus[i].piv);
    }
    free(E->lus);
    for (int i = 0; i < E->nreserved; i++) free(E->reserved[i]);
    free(E->reserved);
    /* dimfield, pname and gname point into reserved (dims were released
       from it, so free those) */
    if (E->dimfield)
        for (int d = 1; d < E->ctx->ndims; d++) free(E->dimfield[d]);
    if (E->dimnote)
        for (int d = 1; d < E->ctx->ndims; d++) free(E->dimnote[d]);
    free(E->dimfield);
    free(E->dimnote);
    free(E->pname);
    free(E->gname);
    for (int i = 0; i < E->ngens; i++) free(E->gens[i].name);
    free(E->gens);
    for (int i = 0; i < E->nscr; i++) free(E->scr[i]);
    free(E->scr);
    md_buf_free(&E->decl);
    md_buf_free(&E->body);
    md_buf_free(&E->ws);
}

static void em_init(emitter *E, md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, FILE *err)
{
    static const md_emit_opts defaults = {NULL, 0, 1, NULL};
    memset(E, 0, sizeof *E);
    E->ctx = ctx;
    E->o = o ? o : &defaults;
    E->err = err ? err : stderr;
    E->name = E->o->name ? E->o->name : "f";
    E->n = n;
    E->wrt = wrt;
    E->row = E->o->row_major;
}

char **md_emit_dim_fields(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, NULL);
    for (uint32_t i = 0; i < ctx->nnodes; i++) {
        const md_expr *e = ctx->nodes[i];
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(&E, e->aux, e->order);
    }
    char **fields = NULL;
    FILE *devnull = fopen("/dev/null", "w");
    E.err = devnull ? devnull : stderr;
    if (em_names(&E) == 0) {
        fields = md_xcalloc((size_t)ctx->ndims + 1, sizeof *fields);
        for (int d = 1; d < ctx->ndims; d++) fields[d] = md_xstrdup(E.dimfield[d]);
    }
    if (devnull) fclose(devnull);
    em_free(&E);
    return fields;
}

int md_emit_header(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o, md_buf *out, FILE *err)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, err);
    for (uint32_t i = 0; i < ctx->nnodes; i++) {
        const md_expr *e = ctx->nodes[i];
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(&E, e->aux, e->order);
    }
    int rc = em_names(&E);
    if (rc == 0) {
        em_top_comment(&E, NULL, NULL, 1, out);
        md_buf_putc(out, '\n');
        em_decls(&E, out);
    }
    em_free(&E);
    return rc;
}

int md_emit_c(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads, const md_emit_opts *o,
              md_buf *out, FILE *err)
{
    emitter E;
    em_init(&E, ctx, n, wrt, o, err);
    int rc = -1;
    md_expr **roots = NULL;
    if (!md_is_scalar(f)) {
        fprintf(E.err, "matdiff: the function must be scalar-valued to emit C code\n");
        goto done;
    }
    /* with every size known: products bracketed by cost, shared
       sub-products, Gram matrices for norms of products (costopt.c) */
    roots = md_xmalloc((size_t)(n + 1) * sizeof *roots);
    roots[0] = f;
    for (int i = 0; i < n; i++) roots[i + 1] = grads[i];
    md_cost_rewrite(ctx, o ? o->size_hint : NULL, n + 1, roots);
    f = roots[0];
    grads = roots + 1;
    if (em_scan(&E, f, grads) < 0) goto done;
    if (em_names(&E) < 0) goto done;
    em_values(&E);

    em_body(&E, f, grads);

    /* assemble: the helpers the body calls, each after what it calls */
    int blas = E.o->blas;
    E.use_mm |= E.use_mpow | E.use_chain;
    E.use_tcopy |= E.use_sm;
    int use_solve = E.use_sm || (E.use_inv && !blas);
    int use_pivot = E.use_det || E.use_sm || use_solve;
    em_top_comment(&E, f, grads, 0, out);
    md_buf_puts(out, "#include <math.h>\n#include <stddef.h>\n#include <string.h>\n");
    if (blas && (E.use_mm || E.use_sm || E.use_trdot)) md_buf_puts(out, "#include <cblas.h>\n");
    md_buf_putc(out, '\n');
    em_decls(&E, out);
    md_buf_putc(out, '\n');
    if (E.use_mm) md_buf_puts(out, blas ? em_helper_mm_blas : em_helper_mm_loops);
    if (E.use_tcopy) md_buf_puts(out, em_helper_tcopy);
    if (E.nlus) md_buf_puts(out, blas ? em_helper_lapack : em_helper_lu_loops);
    if (E.nlus && use_pivot) md_buf_puts(out, blas ? em_helper_pivot_lapack : em_helper_pivot_loops);
    if (E.use_det) md_buf_puts(out, em_helper_lu_det);
    if (use_solve) md_buf_puts(out, blas ? em_helper_solve_lapack : em_helper_solve_loops);
    if (E.use_sm) md_buf_puts(out, blas ? em_helper_rsolve_lapack : em_helper_rsolve_loops);
    if (E.use_sm) md_buf_puts(out, em_helper_sm);
    if (E.use_inv) md_buf_puts(out, blas ? em_helper_inv_lapack : em_helper_inv_loops);
    if (E.use_trdot) md_buf_puts(out, blas ? em_helper_trdot_blas : em_helper_trdot_loops);
    if (E.use_chain) {
        md_buf_printf(out, "#define MD_CHAIN_MAX %d\n\n", EM_CHAIN_MAX);
        em_helper_chain(out, E.use_sm, E.use_chain_plain, E.use_chain_trace);
    }
    if (E.use_mpow) md_buf_puts(out, em_helper_mpow);


    /* workspace */
    int dims_used = strstr(E.ws.s ? E.ws.s : "", "dims->") != NULL;
    for (int i = 0; i < E.nscr; i++) dims_used |= strstr(E.scr[i], "dims->") != NULL;
    md_buf_printf(out, "size_t %s_workspace(const %s_dims *dims)\n{\n", E.name, E.name);
    md_buf_puts(out, "    size_t md_n = 0;\n");
    if (!dims_used) md_buf_puts(out, "    (void)dims;\n");
    if (E.ws.s) md_buf_puts(out, E.ws.s);
    if (E.nscr) {
        md_buf_puts(out, "    /* scratch for products, inverses and determinants: the largest need */\n");
        md_buf_puts(out, "    size_t md_scr = 0, md_k;\n");
        for (int i = 0; i < E.nscr; i++)
            md_buf_printf(out, "    md_k = %s;\n    if (md_k > md_scr) md_scr = md_k;\n", E.scr[i]);
        md_buf_puts(out, "    md_n += md_scr;\n");
    }
    md_buf_puts(out, "    return md_n;\n}\n\n");

    /* the function */
    em_proto(&E, out);
    md_buf_puts(out, "\n{\n");
    int used_dims = strstr(E.body.s, "dims->") || strstr(E.decl.s ? E.decl.s : "", "dims->");
    if (!used_dims) md_buf_puts(out, "    (void)dims;\n");
    int used_work = E.decl.s && strstr(E.decl.s, "md_w");
    used_work |= E.nscr > 0;
    if (used_work) md_buf_puts(out, "    double *md_w = work;\n");
    else md_buf_puts(out, "    (void)work;\n");
    /* parameters the code never reads */
    for (int s = 0; s < ctx->nsyms; s++) {
        int used = 0;
        for (int k = 0; k < E.ntopo && !used; k++)
            if (E.topo[k]->kind == MD_SYM && E.topo[k]->ival == s) used = 1;
        if (!used) md_buf_printf(out, "    (void)%s;\n", E.pname[s]);
    }
    if (E.decl.s) md_buf_puts(out, E.decl.s);
    if (E.nscr) md_buf_puts(out, "    double *const md_scr = md_w;\n");
    md_buf_puts(out, "\n");
    md_buf_puts(out, E.body.s);
    md_buf_puts(out, "}\n");
    rc = 0;
done:
    free(roots);
    em_free(&E);
    return rc;
}
