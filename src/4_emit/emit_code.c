/*
 * emit_code.c -- the statements of the emitted function: one per node
 * that em_scan marked EM_COMPUTED, in topological order, each writing its
 * value (emit_plan.c) from its arguments' values.
 *
 *  - Elementwise nodes are one loop over md_i, with the inline arguments
 *    (EM_INLINE) written into it as expressions; scalars are one
 *    assignment.  Constants are exact rationals rounded to the nearest
 *    double (%.17g), functions are the table's C (md_builtins.def).
 *
 *  - Layout.  All helpers are column-major.  Row-major memory of an r x c
 *    matrix is column-major memory of its c x r transpose, so row-major
 *    code is the same code on transposed values: elementwise loops, sums,
 *    traces, determinants, inverses and powers need no change (inv(A') =
 *    inv(A)', det(A') = det(A)); a product chain is reversed and each
 *    factor's shape swapped ((AB)' = B'A', em_factors); a transpose copy
 *    swaps its two sizes.  No input is ever converted.
 *
 *  - Products.  A MUL node is alpha * F1 * ... * FL: alpha is the product
 *    of its scalar factors, passed to the BLAS call.  One product of two
 *    operands is md_mm, which picks ddot, dgemv or dgemm at run time from
 *    the sizes (loops with --no-blas); with an inverse factor it is a
 *    solve, md_sm (dgetrs from the left, dtrsm and column swaps from the
 *    right).  Longer chains are bracketed by the matrix-chain dynamic
 *    programme: at run time by the emitted md_chain from dims (so the same
 *    code is fast for every size), or at emit time when every dimension of
 *    the chain has a size hint or the chain is longer than EM_CHAIN_MAX
 *    (then the bracketing is straight-line md_mm and md_sm calls).  Both
 *    run the same DP, runtime/chain_dp.c: the emitted file carries it and
 *    the generator calls it as md_cost_chain (costopt.c).  It prices a
 *    solve like the product it replaces and never pairs two inverses.
 *    Intermediate products live in the scratch area shared by all nodes;
 *    its size bounds every bracketing: the sum of the sizes of all proper
 *    sub-chains.
 *
 *  - Traces of products that were not formed (EM_TRACED) are md_trdot for
 *    two factors and md_chain_trace for longer chains.
 *
 *  - Inverses that must be formed (a gradient, a term of a sum) come from
 *    the LU (md_lu_inv: dgetri in BLAS mode, 64n doubles of scratch);
 *    matrix powers use binary powering (md_mpow); det and logdet read the
 *    LU's diagonal (md_lu_det).
 *
 *  - Conditions.  Consecutive statements with the same needs share one
 *    `if (d_U || d_V) {` block (em_open), and a statement inside one is
 *    indented (em_indent).
 *
 * Every helper a statement calls is noted in E->use_* so that the driver
 * emits exactly those (and what they call).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"
#include "md_builtins.h"
#include "md_costopt.h"

/* ---- elementwise statements ------------------------------------------- */

/* Element md_i of a (scalars broadcast; inline nodes are expressions). */
static char *em_el(const emitter *E, const md_expr *a)
{
    const em_node *x = &E->nd[a->id];
    md_buf b = {0};
    if (x->scalar || x->mode == EM_INLINE) md_buf_puts(&b, x->val);
    else md_buf_printf(&b, "%s[md_i]", x->val);
    return md_buf_take(&b);
}

/* A loop over the elements md_i of an r x c value running stmt; when
   stmt reads an inlined u*1', 1*v (em_outer_ones) or eye (md_ri, md_ci),
   over its rows md_ri and columns md_ci in memory order, md_i computed. */
static void em_elloop(emitter *E, int r, int c, const char *stmt)
{
    md_buf *o = &E->body;
    if (!strstr(stmt, "md_ri") && !strstr(stmt, "md_ci")) {
        char *n = em_size(E, r, c);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s\n", n, stmt);
        free(n);
        return;
    }
    md_buf rb = {0}, cb = {0};
    em_dim(E, r, &rb);
    em_dim(E, c, &cb);
    if (E->row)
        md_buf_printf(o, "    for (long md_ri = 0; md_ri < %s; md_ri++)\n"
                         "        for (long md_ci = 0; md_ci < %s; md_ci++) {\n", rb.s, cb.s);
    else
        md_buf_printf(o, "    for (long md_ci = 0; md_ci < %s; md_ci++)\n"
                         "        for (long md_ri = 0; md_ri < %s; md_ri++) {\n", cb.s, rb.s);
    if (strstr(stmt, "md_i")) {   /* not when only md_ri, md_ci are read: norm1(eye) */
        if (E->row) md_buf_printf(o, "            const long md_i = md_ri * %s + md_ci;\n", cb.s);
        else md_buf_printf(o, "            const long md_i = md_ri + md_ci * %s;\n", rb.s);
    }
    md_buf_printf(o, "            %s\n        }\n", stmt);
    md_buf_free(&rb);
    md_buf_free(&cb);
}

static void em_loop(emitter *E, const md_expr *e, const char *rhs)
{
    md_buf st = {0};
    md_buf_printf(&st, "%s[md_i] = %s;", E->nd[e->id].val, rhs);
    em_elloop(E, e->rows, e->cols, st.s);
    md_buf_free(&st);
}

/* The statement that assigns rhs to e, elementwise or as a scalar. */
static void em_assign(emitter *E, const md_expr *e, const char *rhs)
{
    if (E->nd[e->id].scalar) md_buf_printf(&E->body, "    %s = %s;\n", E->nd[e->id].val, rhs);
    else em_loop(E, e, rhs);
}

static void em_fn(emitter *E, const md_expr *e, const char *x, md_buf *b)
{
    if (e->ival != MD_FN_GENERIC) {
        md_buf_printf(b, md_fns[e->ival].c, x);   /* the table's C, %1$s the argument */
        return;
    }
    for (int i = 0; i < E->ngens; i++)
        if (E->gens[i].func == e->aux && E->gens[i].order == e->order) md_buf_printf(b, "%s(%s)", E->gens[i].name, x);
}

/* a .^ b for the elements a and b; exponent node ex. */
static void em_pow(const md_expr *ex, const char *a, const char *b, md_buf *out)
{
    if (ex->kind == MD_NUM && md_is_num(ex, 2)) md_buf_printf(out, "%s * %s", a, a);
    else if (ex->kind == MD_NUM && md_is_num(ex, 3)) md_buf_printf(out, "%s * %s * %s", a, a, a);
    else if (ex->kind == MD_NUM && md_is_num(ex, 1)) md_buf_printf(out, "%s", a);
    else if (ex->kind == MD_NUM && md_is_num(ex, -1)) md_buf_printf(out, "1.0 / %s", a);
    else if (ex->kind == MD_NUM && md_is_num(ex, -2)) md_buf_printf(out, "1.0 / (%s * %s)", a, a);
    else if (ex->kind == MD_NUM && mpz_cmp_ui(mpq_numref(ex->q), 1) == 0 &&
             mpz_cmp_ui(mpq_denref(ex->q), 2) == 0)
        md_buf_printf(out, "sqrt(%s)", a);
    else md_buf_printf(out, "pow(%s, %s)", a, b);
}

/* The right-hand side of an elementwise node (ADD, HAD, POW, FUNC, or a
   MUL of scalars and one matrix), element md_i. */
void em_rhs(emitter *E, const md_expr *e, md_buf *b)
{
    switch (e->kind) {
    case MD_ADD:
    case MD_HAD:
        for (int i = 0; i < e->nargs; i++) {
            char *el = em_el(E, e->args[i]);
            md_buf_printf(b, "%s%s", i ? (e->kind == MD_ADD ? " + " : " * ") : "", el);
            free(el);
        }
        break;
    case MD_POW: {
        char *x = em_el(E, e->args[0]), *y = em_el(E, e->args[1]);
        em_pow(e->args[1], x, y, b);
        free(x);
        free(y);
        break;
    }
    case MD_FUNC: {
        char *x = em_el(E, e->args[0]);
        em_fn(E, e, x, b);
        free(x);
        break;
    }
    case MD_MUL: {
        int by_col;
        const md_expr *u = em_outer_ones(e, &by_col);
        if (u) {   /* u*1' or 1*v, inlined (em_scan): the loop runs over md_ri, md_ci */
            md_buf_printf(b, "%s[%s]", E->nd[u->id].val, by_col ? "md_ci" : "md_ri");
            break;
        }
        int k = 0;
        for (int i = 0; i < e->nargs; i++) {
            char *el = em_el(E, e->args[i]);
            md_buf_printf(b, "%s%s", k++ ? " * " : "", el);
            free(el);
        }
        break;
    }
    case MD_ONES: md_buf_puts(b, "1.0"); break;   /* a constant matrix, inlined (em_scan) */
    case MD_ZERO: md_buf_puts(b, "0.0"); break;
    case MD_EYE: md_buf_puts(b, "(md_ri == md_ci ? 1.0 : 0.0)"); break;   /* inlined (em_scan) */
    case MD_NUM: case MD_SYM: case MD_DIFF:
    case MD_MPOW: case MD_TRANS: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR:
    case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV: case MD_VEC: case MD_KRON: case MD_COMM:
    case MD_SOFTMAX: case MD_LSE: case MD_NKINDS:
        md_buf_puts(b, "NAN");   /* never: em_elementwise admits only the kinds above */
        break;
    }
}

/* ---- products --------------------------------------------------------- */

/* A factor of a product chain: op(ptr) is r x c (dim ids); with piv, the
   factor is inv(op(A)) and ptr, piv are A's LU factors. */
typedef struct em_fac {
    const char *ptr;
    int t, r, c;
    const char *piv;
} em_fac;

/* md_mm(ta, tb, m, n, k, alpha, A, B, beta, C): C = alpha op(A) op(B) +
   beta C, col-major; beta "0.0" or, accumulating into C, "1.0". */
static void em_mm_beta(emitter *E, const em_fac *a, const em_fac *b, const char *alpha, const char *beta,
                       const char *dst)
{
    md_buf *o = &E->body;
    E->use_mm = 1;
    md_buf_printf(o, "    md_mm(%d, %d, ", a->t, b->t);
    em_dim(E, a->r, o);
    md_buf_puts(o, ", ");
    em_dim(E, b->c, o);
    md_buf_puts(o, ", ");
    em_dim(E, a->c, o);
    md_buf_printf(o, ", %s, %s, %s, %s, %s);\n", alpha, a->ptr, b->ptr, beta, dst);
}

static void em_mm(emitter *E, const em_fac *a, const em_fac *b, const char *alpha, const char *dst)
{
    em_mm_beta(E, a, b, alpha, "0.0", dst);
}

/* dst = alpha a b: a product, or a solve when a or b is an inverse
   (md_sm(side, tA, tB, m, n, alpha, LU, piv, B, C)); never both. */
static void em_pair(emitter *E, const em_fac *a, const em_fac *b, const char *alpha, const char *dst)
{
    if (!a->piv && !b->piv) {
        em_mm(E, a, b, alpha, dst);
        return;
    }
    const em_fac *inv = a->piv ? a : b, *rhs = a->piv ? b : a;
    md_buf *o = &E->body;
    E->use_sm = 1;
    md_buf_printf(o, "    md_sm(%d, %d, %d, ", a->piv ? 0 : 1, inv->t, rhs->t);
    em_dim(E, a->r, o);
    md_buf_puts(o, ", ");
    em_dim(E, b->c, o);
    md_buf_printf(o, ", %s, %s, %s, %s, %s);\n", alpha, inv->ptr, inv->piv, rhs->ptr, dst);
}

/* Emits factors i..j into dst with the emit-time bracketing; scratch from
   md_scr + *off (off grows by the temporaries used). */
static void em_chain_static(emitter *E, const em_fac *f, const int *split, int L, int i, int j,
                            const char *alpha, const char *dst, md_buf *off)
{
    int k = split[i * L + j];
    em_fac lf = f[i], rf = f[j];
    char *lname = NULL, *rname = NULL;
    if (k > i) {
        md_buf b = {0};
        md_buf_printf(&b, "md_scr + %s", off->s);
        lname = md_buf_take(&b);
        char *sz = em_size(E, f[i].r, f[k].c);
        md_buf_printf(off, " + %s", sz);
        free(sz);
        em_chain_static(E, f, split, L, i, k, "1.0", lname, off);
        lf = (em_fac){lname, 0, f[i].r, f[k].c, NULL};
    }
    if (j > k + 1) {
        md_buf b = {0};
        md_buf_printf(&b, "md_scr + %s", off->s);
        rname = md_buf_take(&b);
        char *sz = em_size(E, f[k + 1].r, f[j].c);
        md_buf_printf(off, " + %s", sz);
        free(sz);
        em_chain_static(E, f, split, L, k + 1, j, "1.0", rname, off);
        rf = (em_fac){rname, 0, f[k + 1].r, f[j].c, NULL};
    }
    em_pair(E, &lf, &rf, alpha, dst);
    free(lname);
    free(rname);
}

/* The factors of product e: its scalars multiplied into alpha ("1.0" if
   none), its matrix factors into f (as stored: row-major code works on
   the transposed chain, (F1...FL)' = FL'...F1').  Returns L. */
static int em_factors(emitter *E, const md_expr *e, md_buf *alpha, em_fac *f)
{
    int L = 0;
    for (int i = 0; i < e->nargs; i++) {
        const md_expr *a = e->args[i];
        const em_node *ax = &E->nd[a->id];
        if (ax->scalar) {
            md_buf_printf(alpha, "%s%s", alpha->len ? " * " : "", ax->val);
        } else if (ax->mode == EM_VIEW) {
            f[L++] = (em_fac){ax->val, 1, a->rows, a->cols, NULL};
        } else if (ax->mode == EM_SOLVE) {
            const em_lu *lu = &E->lus[ax->lu - 1];
            f[L++] = (em_fac){lu->val, ax->lut, a->rows, a->cols, lu->piv};
        } else {
            f[L++] = (em_fac){ax->val, 0, a->rows, a->cols, NULL};
        }
    }
    if (!alpha->len) md_buf_puts(alpha, "1.0");
    if (E->row && L > 1) {
        for (int i = 0; i < L / 2; i++) {
            em_fac t = f[i];
            f[i] = f[L - 1 - i];
            f[L - 1 - i] = t;
        }
        for (int i = 0; i < L; i++) {
            int t = f[i].r;
            f[i].r = f[i].c;
            f[i].c = t;
        }
    }
    return L;
}

/* A chain f[0..L) of L >= 3 factors: its dims (dd[0..L]) and the scratch
   bound of any bracketing, the sizes of all its proper sub-chains. */
static int *em_chain_dims(emitter *E, const em_fac *f, int L)
{
    int *dd = md_xcalloc((size_t)L + 1, sizeof *dd);
    dd[0] = f[0].r;
    for (int i = 0; i < L; i++) dd[i + 1] = f[i].c;
    md_buf sb = {0};
    for (int len = 2; len < L; len++)
        for (int i = 0; i + len <= L; i++) {
            char *s = em_size_t(E, dd[i], dd[i + len]);
            md_buf_printf(&sb, "%s%s", sb.len ? " + " : "", s);
            free(s);
        }
    em_add_scratch(E, md_buf_take(&sb));
    return dd;
}

/* Opens a block declaring the chain's arrays for md_chain and
   md_chain_trace: md_d, md_a, md_p (with solves), md_tr.  Returns "md_p"
   or "NULL". */
static const char *em_chain_arrays(emitter *E, const em_fac *f, const int *dd, int L)
{
    md_buf *o = &E->body;
    E->use_chain = 1;
    md_buf_printf(o, "    {\n        const long md_d[%d] = {", L + 1);
    for (int i = 0; i <= L; i++) {
        if (i) md_buf_puts(o, ", ");
        em_dim(E, dd[i], o);
    }
    md_buf_printf(o, "};\n        const double *const md_a[%d] = {", L);
    for (int i = 0; i < L; i++) md_buf_printf(o, "%s%s", i ? ", " : "", f[i].ptr);
    int solves = 0;
    for (int i = 0; i < L; i++) solves |= f[i].piv != NULL;
    if (solves) {
        E->use_sm = 1;
        md_buf_printf(o, "};\n        const double *const md_p[%d] = {", L);
        for (int i = 0; i < L; i++) md_buf_printf(o, "%s%s", i ? ", " : "", f[i].piv ? f[i].piv : "NULL");
    }
    md_buf_printf(o, "};\n        static const int md_tr[%d] = {", L);
    for (int i = 0; i < L; i++) md_buf_printf(o, "%s%d", i ? ", " : "", f[i].t);
    md_buf_puts(o, "};\n");
    return solves ? "md_p" : "NULL";
}

/* A product of a Kronecker product or commutation matrix K (never formed,
   EM_APPLIED) and a vector v: y = K v, or y' = v' K (y = K' v, where
   kron(A, B)' = kron(A', B') and K_mn' = K_nm).  K_mn v is vec(X') for X
   the m x n matrix of v (md_tcopy); kron(A, B) v is vec(B X A') for X the
   cB x cA matrix of v (md_kron_mv), the arguments read in place with
   their transposes as flags (row-major memory of A is A'). */
static void em_applied(emitter *E, const md_expr *e)
{
    md_buf alpha = {0}, *o = &E->body;
    const md_expr *K = NULL, *v = NULL;
    int left = 0;
    for (int i = 0; i < e->nargs; i++) {
        const md_expr *a = e->args[i];
        const em_node *ax = &E->nd[a->id];
        if (ax->scalar) md_buf_printf(&alpha, "%s%s", alpha.len ? " * " : "", ax->val);
        else if (ax->mode == EM_APPLIED) K = a, left = v == NULL;
        else v = a;
    }
    if (!alpha.len) md_buf_puts(&alpha, "1.0");
    const char *y = E->nd[e->id].val, *x = E->nd[v->id].val;
    if (K->kind == MD_COMM) {   /* K_{m,n}: m = ival, n = aux; K' = K_{n,m} */
        E->use_tcopy = 1;
        md_buf_puts(o, "    md_tcopy(");
        em_dim(E, left ? K->aux : K->ival, o);
        md_buf_puts(o, ", ");
        em_dim(E, left ? K->ival : K->aux, o);
        md_buf_printf(o, ", %s, %s, %s);\n", alpha.s, x, y);
        md_buf_free(&alpha);
        return;
    }
    const md_expr *arg[2] = {K->args[0], K->args[1]};
    const char *ptr[2];
    int t[2];
    for (int k = 0; k < 2; k++) {   /* a transpose used in place is a flag */
        const em_node *ax = &E->nd[arg[k]->id];
        t[k] = (ax->mode == EM_VIEW) ^ E->row ^ !left;
        ptr[k] = ax->val;
    }
    const md_expr *A = arg[0], *B = arg[1];
    int rA = left ? A->rows : A->cols, cA = left ? A->cols : A->rows;
    int rB = left ? B->rows : B->cols, cB = left ? B->cols : B->rows;
    E->use_kron = E->use_mm = 1;
    md_buf_printf(o, "    md_kron_mv(%d, %d, ", t[0], t[1]);
    int d[4] = {rA, cA, rB, cB};
    for (int k = 0; k < 4; k++) {
        em_dim(E, d[k], o);
        md_buf_puts(o, ", ");
    }
    md_buf_printf(o, "%s, %s, %s, %s, %s, md_scr);\n", alpha.s, ptr[0], ptr[1], x, y);
    em_add_scratch(E, em_size_t(E, rB, cA));
    md_buf_free(&alpha);
}

static void em_mul(emitter *E, const md_expr *e)
{
    for (int i = 0; i < e->nargs; i++)
        if (E->nd[e->args[i]->id].mode == EM_APPLIED) {
            em_applied(E, e);
            return;
        }
    const em_node *x = &E->nd[e->id];
    md_buf alpha = {0};
    em_fac *f = md_xcalloc((size_t)e->nargs + 1, sizeof *f);
    int L = em_factors(E, e, &alpha, f);
    if (L == 0) {
        md_buf_printf(&E->body, "    %s = %s;\n", x->val, alpha.s);
    } else if (L == 1) {
        if (f[0].t) {
            /* alpha * A' for a matrix A: a scaled transpose copy */
            E->use_tcopy = 1;
            md_buf_puts(&E->body, "    md_tcopy(");
            em_dim(E, E->row ? e->cols : e->rows, &E->body);
            md_buf_puts(&E->body, ", ");
            em_dim(E, E->row ? e->rows : e->cols, &E->body);
            md_buf_printf(&E->body, ", %s, %s, %s);\n", alpha.s, f[0].ptr, x->val);
        } else {
            md_buf rhs = {0};
            em_rhs(E, e, &rhs);
            em_assign(E, e, rhs.s);
            md_buf_free(&rhs);
        }
    } else {
        md_buf dst = {0};
        if (x->scalar) md_buf_printf(&dst, "&%s", x->val);
        else md_buf_puts(&dst, x->val);
        md_expr *D = em_sym_product(e);
        if (L == 2 && D && E->nd[D->id].mode == EM_WEIGHTED) {
            /* alpha A' diag(u) A: md_wsyrk(ta, m, k, alpha, A, u, C, scr);
               row-major stores A' (the col-major view), so C = A diag(u) A' */
            int by_col;
            const md_expr *A = D->args[0]->kind == MD_MUL ? D->args[1] : D->args[0];
            const md_expr *u = em_outer_ones(D->args[0]->kind == MD_MUL ? D->args[0] : D->args[1], &by_col);
            E->use_wsyrk = 1;
            md_buf_printf(&E->body, "    md_wsyrk(%d, ", E->row ? 0 : 1);
            em_dim(E, A->cols, &E->body);
            md_buf_puts(&E->body, ", ");
            em_dim(E, A->rows, &E->body);
            md_buf_printf(&E->body, ", %s, %s, %s, %s, md_scr);\n", alpha.s, E->nd[A->id].val, E->nd[u->id].val,
                          dst.s);
            em_add_scratch(E, em_size_t(E, A->rows, A->cols));
        } else if (L == 2) {
            em_pair(E, &f[0], &f[1], alpha.s, dst.s);
        } else {
            int *dd = em_chain_dims(E, f, L);
            int hinted = 1;
            for (int i = 0; i <= L; i++)
                if (dd[i] != MD_DIM_ONE && !(E->o->size_hint && E->o->size_hint[dd[i]] > 0)) hinted = 0;
            if (hinted || L > EM_CHAIN_MAX) {
                /* the emit-time bracketing: the run-time DP (md_cost_chain)
                   on the hints, 100 for a size without one; a solve costs
                   what the product costs, and two inverses cannot meet (a
                   solve needs a right-hand side) */
                long *d = md_xcalloc((size_t)L + 1, sizeof *d);
                char *inverse = md_xcalloc((size_t)L, 1);
                for (int i = 0; i <= L; i++)
                    d[i] = dd[i] == MD_DIM_ONE ? 1
                           : E->o->size_hint && E->o->size_hint[dd[i]] > 0 ? E->o->size_hint[dd[i]]
                                                                           : 100;
                for (int i = 0; i < L; i++) inverse[i] = f[i].piv != NULL;
                double *cost = md_xcalloc((size_t)(L * L), sizeof *cost);
                int *split = md_xcalloc((size_t)(L * L), sizeof *split);
                md_cost_chain(L, d, inverse, cost, split);
                md_buf off = {0};
                md_buf_puts(&off, "0");
                em_chain_static(E, f, split, L, 0, L - 1, alpha.s, dst.s, &off);
                md_buf_free(&off);
                free(split);
                free(cost);
                free(inverse);
                free(d);
            } else {
                const char *p = em_chain_arrays(E, f, dd, L);
                E->use_chain_plain = 1;
                md_buf_printf(&E->body, "        md_chain(%d, md_d, md_a, %s, md_tr, %s, %s, md_scr);\n    }\n", L, p,
                              alpha.s, dst.s);
            }
            free(dd);
        }
        md_buf_free(&dst);
    }
    md_buf_free(&alpha);
    free(f);
}
/* ---- traces ----------------------------------------------------------- */

/* v = tr(e) for the product e, fused (em_traceable). */
static void em_trace_mul(emitter *E, const char *v, const md_expr *e)
{
    md_buf alpha = {0};
    em_fac *f = md_xcalloc((size_t)e->nargs + 1, sizeof *f);
    int L = em_factors(E, e, &alpha, f);
    md_buf *o = &E->body;
    E->use_trdot = 1;
    if (L == 2) {
        md_buf_printf(o, "    %s = ", v);
        if (strcmp(alpha.s, "1.0") != 0) md_buf_printf(o, "%s * ", alpha.s);
        md_buf_printf(o, "md_trdot(%d, %d, ", f[0].t, f[1].t);
        em_dim(E, f[0].r, o);
        md_buf_puts(o, ", ");
        em_dim(E, f[0].c, o);
        md_buf_printf(o, ", %s, %s);\n", f[0].ptr, f[1].ptr);
    } else {
        int *dd = em_chain_dims(E, f, L);
        const char *p = em_chain_arrays(E, f, dd, L);
        E->use_chain_trace = 1;
        md_buf_printf(o, "        %s = md_chain_trace(%d, md_d, md_a, %s, md_tr, %s, md_scr);\n    }\n", v, L, p,
                      alpha.s);
        free(dd);
    }
    md_buf_free(&alpha);
    free(f);
}

/* ---- one node --------------------------------------------------------- */

/* One node's statement(s). */
/* Has the sum e terms that are products accumulated into it (EM_ACCUM)? */
static int em_has_accum(const emitter *E, const md_expr *e)
{
    for (int i = 0; i < em_nargs(E, e); i++)
        if (E->nd[em_arg(E, e, i)->id].mode == EM_ACCUM) return 1;
    return 0;
}

/* A sum with products among its terms: the other terms elementwise into
   e's value (or the first product, with beta 0), then each product added
   by md_mm with beta 1, so that no product needs an array of its own
   (seed 003's d_U = 2*X'*T*V + 2*lambda*U*(V'*V) is two dgemm calls into
   d_U). */
static void em_add_accum(emitter *E, const md_expr *e)
{
    const em_node *x = &E->nd[e->id];
    md_buf rhs = {0};
    int first = 1;
    for (int i = 0; i < em_nargs(E, e); i++) {
        const md_expr *a = em_arg(E, e, i);
        if (E->nd[a->id].mode == EM_ACCUM) continue;
        char *el = em_el(E, a);
        md_buf_printf(&rhs, "%s%s", rhs.len ? " + " : "", el);
        free(el);
    }
    if (rhs.len) {
        em_loop(E, e, rhs.s);
        first = 0;
    }
    for (int i = 0; i < em_nargs(E, e); i++) {
        const md_expr *a = em_arg(E, e, i);
        if (E->nd[a->id].mode != EM_ACCUM) continue;
        md_buf alpha = {0};
        em_fac f[2];
        /* s * (A*B): the scalars of the outer product, then the inner one's */
        const md_expr *p = a;
        for (int j = 0; j < a->nargs; j++) {
            const em_node *y = &E->nd[a->args[j]->id];
            if (y->scalar) md_buf_printf(&alpha, "%s%s", alpha.len ? " * " : "", y->val);
            else if (y->mode == EM_ACCUM) p = a->args[j];
        }
        if (p == a) md_buf_free(&alpha);
        em_fac *ff = md_xcalloc((size_t)p->nargs + 1, sizeof *ff);
        int L = em_factors(E, p, &alpha, ff);
        f[0] = ff[0], f[1] = ff[1];
        (void)L;   /* 2: em_scan admits no other */
        em_mm_beta(E, &f[0], &f[1], alpha.s, first ? "0.0" : "1.0", x->val);
        first = 0;
        free(ff);
        md_buf_free(&alpha);
    }
    md_buf_free(&rhs);
}

/* v = the quadratic form e (em_node.qf: N = inv(S)*B or B*inv(S),
   EM_QF, matched by em_qf_match): the scalar factors of e's product and
   of N times md_lu_qf of S's factors and the matrix B in memory, whose
   side says how it is stored: m x k column-major for tr(B'*inv(S)*B)
   (side 0), or k x m (side 1: tr(B*inv(S)*B'), and the other form in
   row-major storage, where memory holds B'); m k doubles of scratch. */
static void em_qf_code(emitter *E, const md_expr *e, const char *v)
{
    const em_node *x = &E->nd[e->id];
    const md_expr *p = em_kind(E, e) == MD_TR ? em_arg(E, e, 0) : e, *B = x->qfb, *inv = x->qfinv;
    md_buf alpha = {0};
    for (int pass = 0; pass < 2; pass++) {
        const md_expr *q = pass ? x->qf : p;
        for (int i = 0; i < em_nargs(E, q); i++) {
            const md_expr *a = em_arg(E, q, i);
            if (E->nd[a->id].scalar) md_buf_printf(&alpha, "%s * ", E->nd[a->id].val);
        }
    }
    const em_lu *lu = &E->lus[E->nd[inv->id].lu - 1];
    E->use_qf = 1;
    em_add_scratch(E, em_size_t(E, B->rows, B->cols));
    md_buf *o = &E->body;
    md_buf_printf(o, "    %s = %smd_lu_qf(%d, ", v, alpha.len ? alpha.s : "", x->qfright ^ E->row);
    em_dim(E, inv->rows, o);
    md_buf_puts(o, ", ");
    em_dim(E, x->qfright ? B->rows : B->cols, o);
    md_buf_printf(o, ", %s, %s, %s, md_scr);\n", lu->val, lu->piv, E->nd[B->id].val);
    md_buf_free(&alpha);
}

static void em_node_code(emitter *E, const md_expr *e)
{
    const em_node *x = &E->nd[e->id];
    md_buf rhs = {0};
    md_buf *o = &E->body;
    const char *v = x->val;
    if (x->qf) {
        em_qf_code(E, e, v);
        return;
    }
    char *n = em_size(E, e->rows, e->cols);
    const char *a0 = em_nargs(E, e) ? E->nd[em_arg(E, e, 0)->id].val : NULL;
    switch (em_kind(E, e)) {
    case MD_ZERO:
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        break;
    case MD_ONES: em_loop(E, e, "1.0"); break;
    case MD_EYE:
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        md_buf_puts(o, "    for (long md_i = 0; md_i < ");
        em_dim(E, e->rows, o);
        md_buf_puts(o, "; md_i++) ");
        md_buf_printf(o, "%s[md_i * (", v);
        em_dim(E, e->rows, o);
        md_buf_puts(o, " + 1)] = 1.0;\n");
        break;
    case MD_ADD:
        if (em_has_accum(E, e)) {
            em_add_accum(E, e);
            break;
        }
        /* fall through */
    case MD_HAD:
    case MD_POW:
    case MD_FUNC:
        em_rhs(E, e, &rhs);
        em_assign(E, e, rhs.s);
        break;
    case MD_MUL: em_mul(E, e); break;
    case MD_TRANS:
        /* a copy: e is r x c, a0 c x r (row-major: the sizes swap) */
        E->use_tcopy = 1;
        md_buf_puts(o, "    md_tcopy(");
        em_dim(E, E->row ? e->cols : e->rows, o);
        md_buf_puts(o, ", ");
        em_dim(E, E->row ? e->rows : e->cols, o);
        md_buf_printf(o, ", 1.0, %s, %s);\n", a0, v);
        break;
    case MD_MPOW: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        const char *sq = nn.s;
        char *n2 = em_size_t(E, e->rows, e->rows);
        md_buf sb = {0};
        if (e->ival < 0) {
            /* inverse from the LU (dgetri: 64n doubles of scratch) */
            const em_lu *lu = &E->lus[x->lu - 1];
            E->use_inv = 1;
            if (e->ival == -1) {
                md_buf_printf(o, "    md_lu_inv(%d, %s, %s, %s, %s, %s);\n", x->lut, sq, lu->val, lu->piv, v,
                              E->o->blas ? "md_scr" : "NULL");
                if (E->o->blas) md_buf_printf(&sb, "64 * (size_t)%s", sq);
            } else {
                E->use_mpow = 1;
                md_buf_printf(o, "    md_lu_inv(%d, %s, %s, %s, md_scr, md_scr + %s * %s);\n", x->lut, sq, lu->val,
                              lu->piv, sq, sq);
                md_buf_printf(o, "    md_mpow(%s, %d, md_scr, %s, md_scr + %s * %s);\n", sq, -e->ival, v, sq, sq);
                if (E->o->blas) md_buf_printf(&sb, "%s + 64 * (size_t)%s", n2, sq);
                md_buf sb3 = {0};
                md_buf_printf(&sb3, "3 * %s", n2);
                em_add_scratch(E, md_buf_take(&sb3));
            }
        } else if (e->ival == 0) {
            md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
            md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i * (%s + 1)] = 1.0;\n", sq, v, sq);
        } else {
            E->use_mpow = 1;
            md_buf_printf(o, "    md_mpow(%s, %d, %s, %s, md_scr);\n", sq, e->ival, a0, v);
            md_buf_printf(&sb, "2 * %s", n2);
        }
        if (sb.len) em_add_scratch(E, md_buf_take(&sb));
        md_buf_free(&sb);
        free(n2);
        md_buf_free(&nn);
        break;
    }
    case MD_SUM:
    case MD_NORM1:
    case MD_NORM2: {
        const md_expr *a = e->args[0];
        char *an = em_size(E, a->rows, a->cols), *el = em_el(E, a);
        if (E->nd[a->id].scalar)   /* not produced by the simplifier, but harmless */
            md_buf_printf(o, "    %s = %s%s%s;\n", v, e->kind == MD_SUM ? "" : "fabs(", a0,
                          e->kind == MD_SUM ? "" : ")");
        else {
            md_buf st = {0};
            if (e->kind == MD_SUM) md_buf_printf(&st, "%s += %s;", v, el);
            else if (e->kind == MD_NORM1) md_buf_printf(&st, "%s += fabs(%s);", v, el);
            else md_buf_printf(&st, "%s += %s * %s;", v, el, el);
            md_buf_printf(o, "    %s = 0.0;\n", v);
            em_elloop(E, a->rows, a->cols, st.s);
            if (e->kind == MD_NORM2) md_buf_printf(o, "    %s = sqrt(%s);\n", v, v);
            md_buf_free(&st);
        }
        free(an);
        free(el);
        break;
    }
    case MD_TR: {
        if (E->nd[em_arg(E, e, 0)->id].mode == EM_TRACED) {
            em_trace_mul(E, v, em_arg(E, e, 0));
            break;
        }
        md_buf nn = {0};
        em_dim(E, e->args[0]->rows, &nn);
        md_buf_printf(o, "    %s = 0.0;\n", v);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s += %s[md_i * (%s + 1)];\n", nn.s, v, a0,
                      nn.s);
        md_buf_free(&nn);
        break;
    }
    case MD_DET:
    case MD_LOGDET: {
        if (!x->lu) {   /* of a 1x1 matrix: not produced by the simplifier */
            md_buf_printf(o, "    %s = %s%s%s;\n", v, e->kind == MD_LOGDET ? "log(" : "", a0,
                          e->kind == MD_LOGDET ? ")" : "");
            break;
        }
        const em_lu *lu = &E->lus[x->lu - 1];
        md_buf nn = {0};
        em_dim(E, e->args[0]->rows, &nn);
        E->use_det = 1;
        md_buf_printf(o, "    %s = md_lu_det(%s, %s, %s, %d);\n", v, nn.s, lu->val, lu->piv, e->kind == MD_LOGDET);
        md_buf_free(&nn);
        break;
    }
    case MD_DIAGM: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        char *el = em_el(E, e->args[0]);
        md_buf_printf(o, "    memset(%s, 0, (size_t)(%s) * sizeof(double));\n", v, n);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i * (%s + 1)] = %s;\n", nn.s, v, nn.s, el);
        free(el);
        md_buf_free(&nn);
        break;
    }
    case MD_DIAGV: {
        md_buf nn = {0};
        em_dim(E, e->rows, &nn);
        md_buf_printf(o, "    for (long md_i = 0; md_i < %s; md_i++) %s[md_i] = %s[md_i * (%s + 1)];\n", nn.s, v,
                      a0, nn.s);
        md_buf_free(&nn);
        break;
    }
    case MD_VEC: {   /* a copy (column-major: an alias, em_scan), transposed in row-major */
        const md_expr *a = em_arg(E, e, 0);
        if (E->row && a->rows != MD_DIM_ONE && a->cols != MD_DIM_ONE) {
            E->use_tcopy = 1;
            md_buf_puts(o, "    md_tcopy(");
            em_dim(E, a->rows, o);
            md_buf_puts(o, ", ");
            em_dim(E, a->cols, o);
            md_buf_printf(o, ", 1.0, %s, %s);\n", a0, v);
        } else {
            md_buf_printf(o, "    memcpy(%s, %s, (size_t)(%s) * sizeof(double));\n", v, a0, n);
        }
        break;
    }
    case MD_SOFTMAX:
    case MD_LSE: {
        /* shifted by the largest entry, so that no exp overflows:
           logsumexp(a) = m + log(sum(exp(a - m))), softmax(a) = exp(a - m)/sum(exp(a - m));
           the argument is read in full before the first write (its slot may be reused) */
        const md_expr *a = e->args[0];
        char *an = em_size(E, a->rows, a->cols), *el = em_el(E, a);
        md_buf_printf(o, "    {\n        double md_m = -HUGE_VAL, md_s = 0.0;\n"
                         "        for (long md_i = 0; md_i < %s; md_i++) if (%s > md_m) md_m = %s;\n", an, el, el);
        if (e->kind == MD_LSE)
            md_buf_printf(o, "        for (long md_i = 0; md_i < %s; md_i++) md_s += exp(%s - md_m);\n"
                             "        %s = md_m + log(md_s);\n    }\n", an, el, v);
        else
            md_buf_printf(o, "        for (long md_i = 0; md_i < %s; md_i++) md_s += (%s[md_i] = exp(%s - md_m));\n"
                             "        for (long md_i = 0; md_i < %s; md_i++) %s[md_i] /= md_s;\n    }\n",
                          an, v, el, an, v);
        free(an);
        free(el);
        break;
    }
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_KRON: case MD_COMM: case MD_NKINDS:
        md_buf_printf(o, "    /* kind %d */\n", (int)e->kind);   /* leaves, and applied (em_applied) */
        break;
    }
    free(n);
    md_buf_free(&rhs);
}

/* ---- conditions ------------------------------------------------------- */

/* The condition under which a statement with needs need runs: "" (always)
   or "d_U || d_V". */
static char *em_cond(const emitter *E, const uint64_t *need)
{
    md_buf b = {0};
    if (need[0] & 1) return md_xstrdup("");
    for (int i = 0; i < E->n; i++)
        if (need[(i + 1) / 64] >> ((i + 1) % 64) & 1)
            md_buf_printf(&b, "%s%s", b.len ? " || " : "", E->gname[i]);
    if (!b.s) return md_xstrdup("");
    return md_buf_take(&b);
}

/* Opens the condition of a statement with needs need (closing the open
   one, *open, if it differs); returns where the statement starts. */
static size_t em_open(emitter *E, char **open, const uint64_t *need)
{
    char *c = em_cond(E, need);
    if (strcmp(c, *open) != 0) {
        if ((*open)[0]) md_buf_puts(&E->body, "    }\n");
        if (c[0]) md_buf_printf(&E->body, "    if (%s) {\n", c);
        free(*open);
        *open = c;
    } else {
        free(c);
    }
    return E->body.len;
}

/* Inside a condition, indents the statement's lines by four more spaces. */
static void em_indent(emitter *E, const char *open, size_t start)
{
    if (!open[0]) return;
    char *chunk = md_xstrdup(E->body.s + start);
    E->body.len = start;
    E->body.s[start] = 0;
    for (char *s = chunk, *nl; *s; s = nl + 1) {
        nl = strchr(s, '\n');
        md_buf_printf(&E->body, "    %.*s\n", (int)(nl - s), s);
    }
    free(chunk);
}

/* ---- the body --------------------------------------------------------- */

void em_body(emitter *E, md_expr *f, md_expr **grads)
{
    /* the body, node by node (each LU just before its first user),
       grouped by condition */
    char *open = md_xstrdup("");
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        for (int l = 0; l < E->nlus; l++) {
            const em_lu *lu = &E->lus[l];
            if (lu->first != k) continue;
            size_t start = em_open(E, &open, lu->need);
            md_buf_puts(&E->body, lu->sym ? "    md_lu_sym(" : "    md_lu(");
            E->use_lusym |= lu->sym;
            em_dim(E, lu->base->rows, &E->body);
            md_buf_printf(&E->body, ", %s, %s, %s);\n", E->nd[lu->base->id].val, lu->val, lu->piv);
            em_indent(E, open, start);
        }
        if (x->mode != EM_COMPUTED) continue;
        size_t start = em_open(E, &open, x->need);
        em_node_code(E, e);
        em_indent(E, open, start);
    }
    if (open[0]) md_buf_puts(&E->body, "    }\n");
    free(open);

    /* gradients that were not computed in place */
    for (int i = 0; i < E->n; i++) {
        const md_expr *g = grads[i];
        const em_node *x = &E->nd[g->id];
        if (x->dest == i) continue;
        if (x->scalar) {
            md_buf_printf(&E->body, "    if (%s) *%s = %s;\n", E->gname[i], E->gname[i], x->val);
        } else {
            char *sz = em_size(E, g->rows, g->cols);
            md_buf_printf(&E->body, "    if (%s) memcpy(%s, %s, (size_t)(%s) * sizeof(double));\n", E->gname[i],
                          E->gname[i], x->val, sz);
            free(sz);
        }
    }
    md_buf_printf(&E->body, "    return %s;\n", E->nd[f->id].val);
}
