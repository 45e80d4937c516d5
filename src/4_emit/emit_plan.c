/*
 * emit_plan.c -- the plan of the emitted function: which nodes become
 * statements, how each value is held, and where it lives.
 *
 * The input is f and its gradients as one shared DAG (after costopt.c,
 * when every size is known).  em_scan walks it once from the roots and
 * decides everything the statements need, before any text is written;
 * em_values then gives every node its C value.  Nothing here writes a
 * statement (emit_code.c); the only nodes made are the transposes that
 * md_trans builds to look for twins, as the printers do.
 *
 *  - Transposed twins.  Gradients often hold both T and T' built
 *    separately (X'*(X*U*V' - Y) for dU, (V*U'*X' - Y')*X for dV).  Of
 *    each such pair one is computed and the other becomes its transpose,
 *    paired exactly as the text printer pairs them (md_twins_pair).
 *
 *  - Values.  A 1x1 node is a local double (md_s<id>); any other node is a
 *    pointer to rows*cols doubles (md_t<id>), laid out in the workspace
 *    in topological order; offsets are computed at run time from dims.
 *    Inputs are used in place.  The transpose of a vector is the same
 *    memory (EM_ALIAS); the transpose of a matrix that is only ever a
 *    factor of products is a view (EM_VIEW: a transpose flag of the BLAS
 *    call); any other transpose is copied.  A gradient root used nowhere
 *    else is computed straight into d_<name>; the others are copied there
 *    at the end.
 *
 *  - NULL gradients.  Every node knows which roots need it (a bitset over
 *    f and the gradients, propagated from the roots down).  Nodes that f
 *    needs run unconditionally; the others run under `if (d_U || d_V)`, so
 *    a NULL gradient skips all the work that only it needed.
 *
 *  - LU factorisations.  Every matrix that det, logdet or an inverse of it
 *    (or of its transpose) needs is factored once (em_lu), just before
 *    its first user, under the union of its users' conditions.  The
 *    pivots live in the double workspace (MD_PIVOTS), next to the factors.
 *
 *  - Solves.  An inverse used only as a factor of products (EM_SOLVE) is
 *    never formed: a product applies it with its LU.  A solve needs a
 *    right-hand side, so a product of inverses only forms all but one.
 *
 *  - Fusion.  An elementwise node used once, by an elementwise node of its
 *    shape or by a sum, is no statement of its own (EM_INLINE): its value
 *    is an expression in md_i inside its user's loop.
 *
 *  - Accumulation.  A product of two factors (or scalars times one) used
 *    only as a term of a sum is added into the sum's value by md_mm with
 *    beta 1 (EM_ACCUM, em_add_accum): no array of its own, no pass.
 *
 *  - Structure.  diag(u)*A arrives as (u*1') .* A (md_struct_rewrite):
 *    u*1' and eye inline as u[md_ri] and md_ri == md_ci in a row/column
 *    loop; A'*(diag(u)*A) never forms diag(u)*A (EM_WEIGHTED: md_wsyrk
 *    reads u and A).  A Kronecker product or commutation matrix is only
 *    ever applied to a vector (EM_APPLIED: md_kron_mv, md_tcopy); any
 *    other use is refused here, with a message.  vec(A) is A's memory in
 *    column-major (EM_ALIAS).
 *
 *  - Quadratic forms.  B'*inv(S)*B (or B*inv(S)*B', a 1 x 1 product or a
 *    trace) with S symmetric (em_symmetric) never forms inv(S)*B when
 *    nothing else reads it (EM_QF, em_qf_match): md_lu_qf computes the form
 *    from S's factors, which md_lu_sym makes by Cholesky when it can.
 *
 *  - Traces.  A product used only by a trace (EM_TRACED) is not formed:
 *    tr(PQ) = sum(P .* Q') (md_trdot), and a longer chain is split where
 *    its two halves cost least (md_chain_trace), when em_traceable says
 *    both halves can be computed.
 *
 *  - Workspace.  Each computed matrix gets a slot from its statement to
 *    its last read, then the slot serves a later value (em_values says
 *    how); each LU's factors and pivots get a slice of their own (E->decl
 *    declares them, E->ws counts them for NAME_workspace); the statements'
 *    scratch needs (em_add_scratch) share one area, sized by the largest.
 *
 *  - Cost.  em_cost writes the plan's flop count as a C expression in
 *    dims, for choosing among plans at run time.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emit_internal.h"
#include "md_print.h"
#include "md_simplify.h"

/* ---- the graph -------------------------------------------------------- */

/* The graph as emitted: a node that is the transpose of another one
   (E->nd[id].tof) is a transpose of that node, with it as only argument. */
md_kind em_kind(const emitter *E, const md_expr *e)
{
    return E->nd[e->id].tof ? MD_TRANS : e->kind;
}

int em_nargs(const emitter *E, const md_expr *e)
{
    return E->nd[e->id].tof ? 1 : e->nargs;
}

md_expr *em_arg(const emitter *E, const md_expr *e, int i)
{
    const em_node *x = &E->nd[e->id];
    if (x->tof) return x->tof;
    if (x->lu) return E->lus[x->lu - 1].base;   /* the matrix factored */
    return e->args[i];
}

/* Does e work from an LU factorisation of its argument? */
static int em_factored(const md_expr *e)
{
    return (e->kind == MD_DET || e->kind == MD_LOGDET || (e->kind == MD_MPOW && e->ival < 0)) &&
           !md_is_scalar(e->args[0]);
}

/* Is the transpose of a the matrix b (a == b' or b == a')? */
static int em_transposes(const md_expr *a, const md_expr *b)
{
    return (a->kind == MD_TRANS && a->args[0] == b) || (b->kind == MD_TRANS && b->args[0] == a);
}

/* Is e symmetric whatever its inputs (a symmetric variable, eye, diag(v),
   sums, Hadamard products and powers of such, palindromic products like
   A'*S*A)?  No is always safe: depth bounds the walk, and memo (one byte
   per node: 0 not known, 1 no, 2 yes) keeps a shared subgraph from being
   walked once per path. */
static int em_symmetric_at(const md_ctx *ctx, const md_expr *e, int depth, char *memo);

static int em_symmetric(const md_ctx *ctx, const md_expr *e, int depth, char *memo)
{
    if (!memo[e->id]) memo[e->id] = (char)(1 + em_symmetric_at(ctx, e, depth, memo));
    return memo[e->id] == 2;
}

static int em_symmetric_at(const md_ctx *ctx, const md_expr *e, int depth, char *memo)
{
    if (e->rows != e->cols || depth > 32) return 0;
    switch (e->kind) {
    case MD_SYM: return md_is_scalar(e) || md_sym_is_symmetric(ctx, e->ival);
    case MD_NUM: case MD_EYE: case MD_DIAGM: return 1;
    case MD_ZERO: case MD_ONES: return 1;
    case MD_TRANS: case MD_MPOW: return em_symmetric(ctx, e->args[0], depth + 1, memo);
    case MD_ADD: case MD_HAD:
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(e->args[i]) && !em_symmetric(ctx, e->args[i], depth + 1, memo)) return 0;
        return 1;
    case MD_MUL: {
        const md_expr *f[EM_CHAIN_MAX];
        int L = 0;
        for (int i = 0; i < e->nargs; i++) {
            if (md_is_scalar(e->args[i])) continue;
            if (L == EM_CHAIN_MAX) return 0;
            f[L++] = e->args[i];
        }
        for (int i = 0; i < L / 2; i++)
            if (!em_transposes(f[i], f[L - 1 - i]) &&
                !(f[i] == f[L - 1 - i] && em_symmetric(ctx, f[i], depth + 1, memo)))
                return 0;
        return L % 2 == 0 || em_symmetric(ctx, f[L / 2], depth + 1, memo);
    }
    default: return 0;
    }
}

/* Gives e the LU of its argument, or of the argument's transpose (then
   e->lut: the factors are used transposed), created on first need. */
static void em_assign_lu(emitter *E, md_expr *e)
{
    md_expr *base = e->args[0];
    int t = 0;
    if (em_kind(E, base) == MD_TRANS) {
        base = em_arg(E, base, 0);
        t = 1;
    }
    int k = 0;
    while (k < E->nlus && E->lus[k].base != base) k++;
    if (k == E->nlus) {
        E->lus = md_xrealloc(E->lus, (size_t)(E->nlus + 1) * sizeof *E->lus);
        char *memo = md_xcalloc(E->ctx->nnodes, 1);
        E->lus[E->nlus++] = (em_lu){base, -1, NULL, NULL, NULL, em_symmetric(E->ctx, base, 0, memo)};
        free(memo);
    }
    E->nd[e->id].lu = k + 1;
    E->nd[e->id].lut = t;
}

static void em_collect(emitter *E, md_expr *e)
{
    em_node *x = &E->nd[e->id];
    if (x->seen) return;
    x->seen = 1;
    if (!x->tof && em_factored(e)) em_assign_lu(E, e);
    for (int i = 0; i < em_nargs(E, e); i++) em_collect(E, em_arg(E, e, i));
    if (x->lu && E->lus[x->lu - 1].first < 0) E->lus[x->lu - 1].first = E->ntopo;
    if (E->ntopo == E->captopo) {
        E->captopo = E->captopo ? 2 * E->captopo : 64;
        E->topo = md_xrealloc(E->topo, (size_t)E->captopo * sizeof *E->topo);
    }
    E->topo[E->ntopo++] = e;
}

static int em_is_vector(const md_expr *e)
{
    return e->rows == MD_DIM_ONE || e->cols == MD_DIM_ONE;
}

static void em_reach(md_expr *e, char *seen, md_expr ***order, uint32_t *len, uint32_t *cap)
{
    if (seen[e->id]) return;
    seen[e->id] = 1;
    for (int i = 0; i < e->nargs; i++) em_reach(e->args[i], seen, order, len, cap);
    if (*len == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *order = md_xrealloc(*order, *cap * sizeof **order);
    }
    (*order)[(*len)++] = e;
}


/*
 * Transposed twins: gradients often hold both T and T' built separately
 * (X'*(X*U*V' - Y) for dU, (V*U'*X' - Y')*X for dV).  Of each such pair
 * reachable from the roots, one is computed and the other becomes its
 * transpose (a view, an alias or a copy), as the text printer writes
 * T and T'.  Equal depth (transposes add none) rules out a node that
 * contains its own twin, so the substitution never makes a cycle.
 */
static void em_twins(emitter *E, int nroots, md_expr **roots)
{
    md_ctx *ctx = E->ctx;
    uint32_t n0 = ctx->nnodes, len = 0, cap = 0;
    char *seen = md_xcalloc(n0, 1);
    md_expr **order = NULL;
    for (int i = 0; i < nroots; i++) em_reach(roots[i], seen, &order, &len, &cap);
    md_expr **tr = md_xcalloc(len ? len : 1, sizeof *tr);
    for (uint32_t i = 0; i < len; i++) {
        md_expr *a = order[i];
        int leafish = a->nargs == 0 || (a->kind == MD_TRANS && a->args[0]->nargs == 0);
        /* inv(A) and inv(A') share A's LU instead; a Kronecker product and
           its transpose are each applied, never formed */
        int inverse = a->kind == MD_MPOW && a->ival < 0, applied = a->kind == MD_KRON || a->kind == MD_COMM;
        if (!leafish && !inverse && !applied && !md_is_scalar(a) && !a->has_diff)
            tr[i] = md_trans(ctx, a);   /* may add nodes */
    }
    E->nd = md_xcalloc(ctx->nnodes, sizeof *E->nd);
    for (uint32_t i = 0; i < ctx->nnodes; i++) E->nd[i].dest = -1;
    /* the printers' pairing (md_twins_pair): the same node is written out */
    md_expr **transof = md_xcalloc(ctx->nnodes, sizeof *transof);
    md_twins_pair(ctx, n0, len, order, tr, seen, transof);
    for (uint32_t i = 0; i < ctx->nnodes; i++)
        if (transof[i]) {
            E->nd[i].tof = transof[i];
            E->nd[transof[i]->id].isrep = 1;
        }
    free(transof);
    free(tr);
    free(order);
    free(seen);
}

const md_expr *em_outer_ones(const md_expr *e, int *by_col)
{
    if (e->kind != MD_MUL || e->nargs != 2 || md_is_scalar(e)) return NULL;
    const md_expr *a = e->args[0], *b = e->args[1];
    if (a->cols == MD_DIM_ONE && a->rows != MD_DIM_ONE && b->kind == MD_ONES && b->rows == MD_DIM_ONE) {
        *by_col = 0;
        return a;
    }
    if (a->kind == MD_ONES && a->cols == MD_DIM_ONE && b->rows == MD_DIM_ONE && b->cols != MD_DIM_ONE) {
        *by_col = 1;
        return b;
    }
    return NULL;
}

/* Is D = diag(u)*A (raw, as md_struct_rewrite writes it: (u*1') .* A)? */
static int em_row_scaled(const md_expr *D, const md_expr *A)
{
    int by_col;
    if (D->kind != MD_HAD || D->nargs != 2) return 0;
    for (int i = 0; i < 2; i++)
        if (D->args[i] == A && em_outer_ones(D->args[1 - i], &by_col) && !by_col) return 1;
    return 0;
}

md_expr *em_sym_product(const md_expr *e)
{
    if (e->kind != MD_MUL || e->rows != e->cols || md_is_scalar(e)) return NULL;
    md_expr *m[2];
    int nm = 0;
    for (int i = 0; i < e->nargs; i++)
        if (!md_is_scalar(e->args[i])) {
            if (nm == 2) return NULL;
            m[nm++] = e->args[i];
        }
    if (nm == 2 && m[0]->kind == MD_TRANS && em_row_scaled(m[1], m[0]->args[0])) return m[1];
    return NULL;
}

/* Can e's value be an expression in md_i inside its user's loop? */
static int em_elementwise(const emitter *E, const md_expr *e)
{
    if (E->nd[e->id].tof) return 0;
    switch (e->kind) {
    case MD_ADD:
    case MD_HAD:
    case MD_POW:
    case MD_FUNC: return 1;
    case MD_MUL: {   /* scalars times one matrix factor, not transposed */
        int L = 0;
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(e->args[i])) {
                L++;
                if (E->nd[e->args[i]->id].mode == EM_VIEW || E->nd[e->args[i]->id].mode == EM_SOLVE) return 0;
            }
        return L == 1;
    }
    case MD_NUM: case MD_SYM: case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE:
    case MD_MPOW: case MD_TRANS: case MD_SUM: case MD_NORM1: case MD_NORM2: case MD_TR:
    case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV: case MD_VEC: case MD_KRON: case MD_COMM:
    case MD_SOFTMAX: case MD_LSE: case MD_NKINDS: return 0;
    }
    return 0;
}

/*
 * Can tr(e) for the product e skip forming e?  tr(PQ) = sum(P .* Q') needs
 * P (r x k) and Q (k x r), not the r x r product: two factors that are
 * not inverses (the dot of md_trdot), or a chain of at most EM_CHAIN_MAX
 * that splits into two computable parts (md_chain_trace).  A sub-chain
 * is computable when it is one factor that is not an inverse, or has a
 * factor that is not.
 */
static int em_traceable(const emitter *E, const md_expr *e)
{
    int L = 0, ninv = 0, first_inv = 0, last_inv = 0;
    for (int i = 0; i < e->nargs; i++) {
        const md_expr *a = e->args[i];
        if (md_is_scalar(a)) continue;
        int inv = E->nd[a->id].mode == EM_SOLVE;
        if (L == 0) first_inv = inv;
        last_inv = inv;
        ninv += inv;
        L++;
    }
    if (L < 2 || L > EM_CHAIN_MAX) return 0;
    if (L == 2) return ninv == 0;
    /* some split k: both sides computable (row-major reverses the chain,
       which keeps the condition) */
    for (int k = 0; k < L - 1; k++) {
        int left = k == 0 ? !first_inv : 1, right = k == L - 2 ? !last_inv : 1;
        if (left && right && ninv < L) return 1;
    }
    return 0;
}

/* The two matrix factors of the product e in *a, *b (scalars skipped):
   1, or 0 when it has another number of them. */
static int em_two_factors(const emitter *E, const md_expr *e, md_expr **a, md_expr **b)
{
    md_expr *f[2];
    int L = 0;
    for (int i = 0; i < em_nargs(E, e); i++) {
        md_expr *x = em_arg(E, e, i);
        if (md_is_scalar(x)) continue;
        if (L == 2) return 0;
        f[L++] = x;
    }
    if (L != 2) return 0;
    *a = f[0], *b = f[1];
    return 1;
}

/*
 * The quadratic form B'*inv(S)*B or B*inv(S)*B' in e, with S symmetric: e
 * a 1 x 1 product [B', N] or the trace of an unformed (EM_TRACED) product
 * [B', N] or [N, B'], where N = inv(S)*B or B*inv(S) (scalars allowed in
 * both) is a computed product nothing else uses, inv(S) solved with S's
 * factors (EM_SOLVE, md_lu_sym) and B a value in memory.  Returns N, or
 * NULL; with N, *inv_out is inv(S), *b_out the matrix in memory (B, or
 * B' when the form reads it through a view) and *right whether that
 * matrix is on the right of inv(S) (tr(C*inv(S)*C') for C in memory).
 */
static md_expr *em_qf_match(const emitter *E, const md_expr *e, md_expr **inv_out, md_expr **b_out, int *right)
{
    const em_node *x = &E->nd[e->id];
    const md_expr *p = e;
    if (x->tof || x->mode != EM_COMPUTED) return NULL;
    if (em_kind(E, e) == MD_TR) {
        p = em_arg(E, e, 0);
        if (em_kind(E, p) != MD_MUL || E->nd[p->id].mode != EM_TRACED) return NULL;
    } else if (em_kind(E, e) != MD_MUL || !x->scalar) {
        return NULL;
    }
    md_expr *a, *N, *inv, *B;
    if (!em_two_factors(E, p, &a, &N)) return NULL;
    if (p != e && em_kind(E, N) == MD_TRANS) {   /* tr(N*B') */
        md_expr *t = a;
        a = N, N = t;
    }
    const em_node *y = &E->nd[N->id];
    if (em_kind(E, N) != MD_MUL || y->mode != EM_COMPUTED || y->uses != 1 || y->root_of || y->isrep || y->tof ||
        y->dest >= 0 || !em_two_factors(E, N, &inv, &B))
        return NULL;
    *right = E->nd[B->id].mode == EM_SOLVE;
    if (*right) {   /* N = B*inv(S) */
        md_expr *t = inv;
        inv = B, B = t;
    }
    const em_node *z = &E->nd[inv->id];
    if (z->mode != EM_SOLVE || !E->lus[z->lu - 1].sym) return NULL;
    if (em_kind(E, B) == MD_TRANS && E->nd[B->id].mode == EM_VIEW && em_arg(E, B, 0) == a) {
        B = a;   /* tr(B' * inv(S)*B) read from B' in memory: the other side */
        *right = !*right;
    } else if (em_kind(E, a) != MD_TRANS || em_arg(E, a, 0) != B) {
        return NULL;
    }
    em_mode w = E->nd[B->id].mode;
    if (w != EM_LEAF && w != EM_COMPUTED) return NULL;
    *inv_out = inv, *b_out = B;
    return N;
}

/* Is the product a, scalars times exactly two matrix factors and no
   solve (nor an applied Kronecker product), one md_mm call? */
static int em_accum_pair(const emitter *E, const md_expr *a)
{
    int L = 0, solve = 0;
    const md_expr *m[2] = {NULL, NULL};
    for (int j = 0; j < a->nargs; j++)
        if (!md_is_scalar(a->args[j])) {
            if (L < 2) m[L] = a->args[j];
            L++;
            solve |= E->nd[a->args[j]->id].mode == EM_SOLVE || E->nd[a->args[j]->id].mode == EM_APPLIED;
        }
    /* nor a Gram product W*W' or W'*W: dsyrk does half the work of the
       dgemm that accumulating would take (the Gaussian's c*inv(S) - W*W') */
    int gram = L == 2 && ((em_kind(E, m[1]) == MD_TRANS && em_arg(E, m[1], 0) == m[0]) ||
                          (em_kind(E, m[0]) == MD_TRANS && em_arg(E, m[0], 0) == m[1]));
    return L == 2 && !solve && !gram && !em_sym_product(a);   /* md_wsyrk has no beta */
}

/* Scans the graph: kinds we cannot emit, uses, modes, generic callbacks. */
int em_scan(emitter *E, md_expr *f, md_expr **grads)
{
    md_ctx *ctx = E->ctx;
    md_expr **roots = md_xcalloc((size_t)E->n + 1, sizeof *roots);
    roots[0] = f;
    for (int i = 0; i < E->n; i++) roots[i + 1] = grads[i];
    em_twins(E, E->n + 1, roots);
    free(roots);
    em_collect(E, f);
    for (int i = 0; i < E->n; i++) em_collect(E, grads[i]);
    E->nwords = (E->n + 1 + 63) / 64;
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        x->scalar = md_is_scalar(e);
        x->need = md_xcalloc((size_t)E->nwords, sizeof(uint64_t));
        if (e->kind == MD_DIFF) {
            fprintf(E->err, "matdiff: internal error: a differential d%s is left in a gradient; "
                            "no C code was emitted\n", ctx->syms[e->ival].name);
            return -1;
        }
        if (e->kind == MD_NUM) {
            double v = mpq_get_d(e->q);
            if (!isfinite(v)) {
                fprintf(E->err, "matdiff: a constant of the function is outside the range of double; "
                                "no C code was emitted\n");
                return -1;
            }
        }
        if (e->kind == MD_FUNC && e->ival == MD_FN_GENERIC) em_add_gen(E, e->aux, e->order);
        for (int i = 0; i < em_nargs(E, e); i++) {
            md_expr *arg = em_arg(E, e, i);
            em_node *a = &E->nd[arg->id];
            a->uses++;
            a->user = e;
            /* a factor of a product, or an argument of a Kronecker product
               (read in place: its transpose is a flag) */
            if (!(em_kind(E, e) == MD_MUL && !md_is_scalar(arg)) && em_kind(E, e) != MD_KRON) a->other_use = 1;
        }
    }
    E->nd[f->id].root_of++;
    E->nd[f->id].other_use = 1;
    for (int i = 0; i < E->n; i++) {
        E->nd[grads[i]->id].root_of++;
        E->nd[grads[i]->id].other_use = 1;
    }
    /* needs, from the roots down; an LU is needed by whatever needs one
       of its users */
    E->nd[f->id].need[0] |= 1;
    for (int i = 0; i < E->n; i++) E->nd[grads[i]->id].need[(i + 1) / 64] |= (uint64_t)1 << ((i + 1) % 64);
    for (int k = E->ntopo - 1; k >= 0; k--) {
        md_expr *e = E->topo[k];
        for (int i = 0; i < em_nargs(E, e); i++)
            for (int w = 0; w < E->nwords; w++) E->nd[em_arg(E, e, i)->id].need[w] |= E->nd[e->id].need[w];
    }
    for (int k = 0; k < E->nlus; k++) E->lus[k].need = md_xcalloc((size_t)E->nwords, sizeof(uint64_t));
    for (int k = 0; k < E->ntopo; k++) {
        const em_node *x = &E->nd[E->topo[k]->id];
        if (x->lu)
            for (int w = 0; w < E->nwords; w++) E->lus[x->lu - 1].need[w] |= x->need[w];
    }
    /* An inverse used only as a product factor is applied by solving with
       its LU.  A solve needs a right-hand side, so a product whose matrix
       factors are all inverses computes all of them but the last (all of
       one) explicitly. */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        if (em_kind(E, e) != MD_MUL) continue;
        int L = 0, ninv = 0, last = -1;
        for (int i = 0; i < e->nargs; i++) {
            const md_expr *a = e->args[i];
            if (md_is_scalar(a)) continue;
            L++;
            if (a->kind == MD_MPOW && a->ival == -1 && E->nd[a->id].lu) ninv++, last = i;
        }
        if (L == 0 || ninv < L) continue;
        for (int i = 0; i < e->nargs; i++)
            if (!md_is_scalar(e->args[i]) && (L == 1 || i != last)) E->nd[e->args[i]->id].other_use = 1;
    }
    /* modes */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        switch (em_kind(E, e)) {
        case MD_NUM:
        case MD_SYM: x->mode = EM_LEAF; break;
        case MD_TRANS:
            if (em_is_vector(e)) x->mode = EM_ALIAS;
            else if (!x->other_use) x->mode = EM_VIEW;
            else x->mode = EM_COMPUTED;
            break;
        case MD_MPOW:
            x->mode = e->ival == -1 && x->lu && !x->other_use ? EM_SOLVE : EM_COMPUTED;
            break;
        case MD_VEC: {   /* column-major: vec(A) is A's memory */
            em_mode am = E->nd[em_arg(E, e, 0)->id].mode;
            x->mode = !E->row && (am == EM_COMPUTED || am == EM_LEAF) ? EM_ALIAS : EM_COMPUTED;
            break;
        }
        case MD_KRON: case MD_COMM: x->mode = EM_APPLIED; break;
        case MD_DIFF: case MD_ZERO: case MD_ONES: case MD_EYE: case MD_ADD: case MD_MUL:
        case MD_HAD: case MD_POW: case MD_FUNC: case MD_SUM: case MD_NORM1: case MD_NORM2:
        case MD_TR: case MD_DET: case MD_LOGDET: case MD_DIAGM: case MD_DIAGV:
        case MD_SOFTMAX: case MD_LSE: case MD_NKINDS: x->mode = EM_COMPUTED; break;
        }
    }
    /* a Kronecker product or commutation matrix is applied to a vector,
       never formed: every user a product of it and one vector (on its
       right, or a row vector on its left), which the bracketing chose */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        for (int i = 0; i < em_nargs(E, e); i++) {
            md_expr *a = em_arg(E, e, i);
            if (E->nd[a->id].mode != EM_APPLIED) continue;
            const md_expr *m[2] = {NULL, NULL};
            int nm = 0, ok = em_kind(E, e) == MD_MUL;
            for (int j = 0; ok && j < e->nargs; j++)
                if (!md_is_scalar(e->args[j])) {
                    if (nm == 2) ok = 0;
                    else m[nm++] = e->args[j];
                }
            ok = ok && nm == 2 && ((m[0] == a && m[1]->cols == MD_DIM_ONE) || (m[1] == a && m[0]->rows == MD_DIM_ONE));
            if (!ok) {
                fprintf(E->err, "matdiff: --format c: %s is emitted only as a factor of a product with a vector "
                                "(kron(A, B)*x is applied as vec(B*X*A'), never formed); here it %s\n",
                        a->kind == MD_KRON ? "a Kronecker product" : "a commutation matrix",
                        em_kind(E, e) == MD_MUL ? "multiplies a matrix" : "is not a factor of a product");
                return -1;
            }
        }
    }
    /* which nodes have a user other than an elementwise node of their
       shape or a sum (those read element md_i in their loop) */
    char *other = md_xcalloc(ctx->nnodes, 1);
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *u = E->topo[k];
        int el = (em_elementwise(E, u) && !E->nd[u->id].scalar) ||
                 (!E->nd[u->id].tof && (u->kind == MD_SUM || u->kind == MD_NORM1));
        for (int i = 0; i < em_nargs(E, u); i++) {
            md_expr *a = em_arg(E, u, i);
            if (!el || (u->kind != MD_SUM && u->kind != MD_NORM1 && (a->rows != u->rows || a->cols != u->cols)))
                other[a->id] = 1;
        }
    }
    /* fusion: an elementwise node used once, by an elementwise node of its
       shape or by a sum, is written inside that node's loop.  So are
       constant matrices (vector(1), zeros) and cheap sums and products of
       at most three computed values or inputs, with every use of that
       kind: recomputing a flop beats storing n doubles and reading them
       back (logistic regression's 1 + exp(...) in log() and in 1./()) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        if (x->mode != EM_COMPUTED || x->scalar || x->root_of || x->tof || other[e->id]) continue;
        if (e->kind == MD_ONES || e->kind == MD_ZERO || e->kind == MD_EYE) {
            x->mode = EM_INLINE;   /* eye: md_ri == md_ci in a row/column loop */
            continue;
        }
        int by_col;
        const md_expr *u = em_outer_ones(e, &by_col);
        if (u && !E->nd[u->id].tof) {
            em_mode m = E->nd[u->id].mode;
            if (m == EM_COMPUTED || m == EM_LEAF || m == EM_ALIAS) x->mode = EM_INLINE;
            continue;
        }
        if (!em_elementwise(E, e)) continue;
        int cheap = (e->kind == MD_ADD || e->kind == MD_HAD || e->kind == MD_MUL) && e->nargs <= 3 && x->uses <= 3;
        for (int i = 0; i < e->nargs && cheap; i++) {
            const em_node *y = &E->nd[e->args[i]->id];
            if (y->mode == EM_INLINE && e->args[i]->kind != MD_ONES && e->args[i]->kind != MD_ZERO) cheap = 0;
        }
        /* a sum with two or more products among its terms is a statement:
           they are added into it by md_mm with beta 1 (EM_ACCUM below)
           instead of each having an array of its own */
        int prods = 0;
        for (int i = 0; e->kind == MD_ADD && i < e->nargs; i++) {
            const md_expr *a = e->args[i];
            const em_node *y = &E->nd[a->id];
            prods += a->kind == MD_MUL && y->mode == EM_COMPUTED && !y->scalar && y->uses == 1 && !y->root_of &&
                     !y->isrep && !y->tof && em_accum_pair(E, a);
        }
        if (prods >= 2) continue;
        if (x->uses == 1 || cheap) x->mode = EM_INLINE;
    }
    free(other);
    /* the row of ones of an inlined u*1' that nothing else reads is never
       written (the loop reads u[md_ri]) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        int by_col;
        if (E->nd[e->id].mode != EM_INLINE || !em_outer_ones(e, &by_col)) continue;
        em_node *y = &E->nd[e->args[by_col ? 0 : 1]->id];
        if (y->mode == EM_COMPUTED && y->uses == 1 && !y->root_of) y->mode = EM_INLINE;
    }
    /* a product used only by a trace is not formed (em_traceable) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        if (em_kind(E, e) != MD_TR) continue;
        md_expr *m = em_arg(E, e, 0);
        em_node *y = &E->nd[m->id];
        if (em_kind(E, m) == MD_MUL && y->mode == EM_COMPUTED && y->uses == 1 && !y->root_of &&
            em_traceable(E, m))
            y->mode = EM_TRACED;
    }
    /* a product of two factors (no solve), used only as a term of one sum
       that is a statement, is added into the sum's value by md_mm with
       beta 1 (em_add_accum): no array of its own, no pass to add it */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        const em_node *x = &E->nd[e->id];
        if (em_kind(E, e) != MD_ADD || x->mode != EM_COMPUTED || x->scalar) continue;
        for (int i = 0; i < em_nargs(E, e); i++) {
            md_expr *a = em_arg(E, e, i);
            em_node *y = &E->nd[a->id];
            /* (a scaled product s * P is fused into the sum's loop by now:
               EM_INLINE) */
            if (em_kind(E, a) != MD_MUL || (y->mode != EM_COMPUTED && y->mode != EM_INLINE) || y->scalar ||
                y->uses != 1 || y->root_of || y->isrep)
                continue;
            if (y->mode == EM_COMPUTED && em_accum_pair(E, a)) {
                y->mode = EM_ACCUM;
                continue;
            }
            /* scalars times such a product (s * (A*B), as costopt brackets
               a scaled chain): both accumulate, alpha the scalars' product */
            md_expr *in = NULL;
            int nm = 0;
            for (int j = 0; j < a->nargs; j++)
                if (!md_is_scalar(a->args[j])) nm++, in = a->args[j];
            em_node *z = in ? &E->nd[in->id] : NULL;
            if (nm == 1 && em_kind(E, in) == MD_MUL && z->mode == EM_COMPUTED && z->uses == 1 && !z->root_of &&
                !z->isrep && em_accum_pair(E, in))
                y->mode = z->mode = EM_ACCUM;
        }
    }
    /* A'*diag(u)*A: diag(u)*A is never formed when nothing else reads it,
       md_wsyrk reads u and A (u a value in memory, A' read in place) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k], *D = em_sym_product(e);
        if (!D || E->nd[e->id].mode != EM_COMPUTED || E->nd[e->id].tof) continue;
        em_node *y = &E->nd[D->id];
        int by_col;
        const md_expr *o = D->args[0]->kind == MD_MUL ? D->args[0] : D->args[1];
        const md_expr *u = em_outer_ones(o, &by_col);
        em_mode um = E->nd[u->id].mode;
        const em_node *t = &E->nd[e->args[e->nargs - 2]->id];   /* A' */
        if (y->mode == EM_COMPUTED && y->uses == 1 && !y->root_of && !y->tof && !y->isrep &&
            (um == EM_COMPUTED || um == EM_LEAF || um == EM_ALIAS) && !E->nd[u->id].tof && t->mode == EM_VIEW)
            y->mode = EM_WEIGHTED;
    }
    /* B'*inv(S)*B with S symmetric (a 1 x 1 product, or the trace of an
       unformed product): inv(S)*B is never formed, md_lu_qf computes the
       form with one triangular solve from S's factors (em_qf_match) */
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k], *inv = NULL, *B = NULL;
        int right = 0;
        md_expr *N = em_qf_match(E, e, &inv, &B, &right);
        if (N) {
            em_node *x = &E->nd[e->id];
            E->nd[N->id].mode = EM_QF;
            x->qf = N, x->qfinv = inv, x->qfb = B, x->qfright = right;
        }
    }
    /* gradient roots used nowhere else are computed into d_<name> */
    for (int i = 0; i < E->n; i++) {
        md_expr *g = grads[i];
        em_node *x = &E->nd[g->id];
        if (x->mode == EM_COMPUTED && !x->scalar && x->uses == 0 && x->root_of == 1) x->dest = i;
    }
    return 0;
}

/* ---- values ----------------------------------------------------------- */

/* A constant as a C double: the nearest double of the exact rational,
   with a decimal point, negatives in parentheses. */
static char *em_number(const md_expr *e)
{
    char buf[64];
    double v = mpq_get_d(e->q);
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strpbrk(buf, ".e")) strcat(buf, ".0");
    md_buf b = {0};
    if (v < 0) md_buf_printf(&b, "(%s)", buf);
    else md_buf_puts(&b, buf);
    return md_buf_take(&b);
}

/* An LU's two slices: the factors and the pivots (MD_PIVOTS(n) doubles:
   LAPACK integers in BLAS mode, row indices stored as doubles otherwise). */
static void em_lu_slices(emitter *E, em_lu *lu, int num)
{
    md_buf b = {0};
    md_buf_printf(&b, "md_lu%d", num);
    lu->val = md_buf_take(&b);
    md_buf_printf(&b, "md_piv%d", num);
    lu->piv = md_buf_take(&b);
    char *sz = em_size_t(E, lu->base->rows, lu->base->cols);
    md_buf nn = {0};
    em_dim(E, lu->base->rows, &nn);
    md_buf_printf(&E->decl, "    double *const %s = md_w;\n    md_w += %s;\n", lu->val, sz);
    md_buf_printf(&E->decl, "    double *const %s = md_w;\n    md_w += MD_PIVOTS(%s);\n", lu->piv, nn.s);
    md_buf_printf(&E->ws, "    md_n += %s;   /* %s */\n", sz, lu->val);
    md_buf_printf(&E->ws, "    md_n += MD_PIVOTS(%s);   /* %s */\n", nn.s, lu->piv);
    md_buf_free(&nn);
    free(sz);
}

/*
 * Workspace slots.  A computed matrix lives in a slot of the workspace
 * from the statement that writes it to the last statement that reads it
 * (through the fused, aliased, viewed and traced nodes in between); after
 * that the slot is free for a later value.  Liveness is over the
 * statement list as written: a statement skipped at run time (its
 * gradient pointer NULL) writes nothing, so the reuse stays safe.  A
 * slot's size is the largest of its values' (md_maxz at run time, since
 * sizes are only known then); a value takes a free slot of its own size
 * first, then any free slot, then a new one.  An elementwise statement
 * (one loop over md_i) may write into the slot of an argument of its
 * shape that it reads for the last time: element md_i is read before it
 * is written.  LU factors and pivots keep slices of their own.
 */
typedef struct em_slot {
    int (*sz)[2];        /* the distinct sizes of its values, as dimension pairs */
    int nsz;
    int free_at;         /* free for values written at this position or later; -1: busy */
    int nvals;
    uint32_t owner;      /* the node that holds it now */
    char *name;          /* the value's, or md_slotK when several share it */
} em_slot;

/* Moves to pos the last read of every slot value that e's statement reads
   through e (last[id]). */
static void em_reads(const emitter *E, md_expr *a, int pos, int *last)
{
    const em_node *y = &E->nd[a->id];
    switch (y->mode) {
    case EM_COMPUTED:
        if (last[a->id] < pos) last[a->id] = pos;
        return;
    case EM_INLINE:
    case EM_ALIAS:
    case EM_VIEW:
    case EM_TRACED:
    case EM_ACCUM:
    case EM_WEIGHTED:
    case EM_APPLIED:
    case EM_QF:
        for (int i = 0; i < em_nargs(E, a); i++) em_reads(E, em_arg(E, a, i), pos, last);
        return;
    case EM_LEAF:
    case EM_SOLVE: return;
    }
}

/* The slot values e's statement reads at element md_i (elementwise), for
   writing in place: those of its arguments, through fused nodes and
   vector aliases. */
static void em_el_reads(const emitter *E, md_expr *a, md_expr **out, int *n, int cap)
{
    const em_node *y = &E->nd[a->id];
    if (y->mode == EM_COMPUTED && !y->scalar) {
        if (*n < cap) out[(*n)++] = a;
    } else if (y->mode == EM_INLINE || y->mode == EM_ALIAS) {
        for (int i = 0; i < em_nargs(E, a); i++) em_el_reads(E, em_arg(E, a, i), out, n, cap);
    }
}

static int em_slot_has(const em_slot *s, const int *sz)
{
    for (int i = 0; i < s->nsz; i++)
        if (s->sz[i][0] == sz[0] && s->sz[i][1] == sz[1]) return 1;
    return 0;
}

static void em_slot_add(em_slot *s, const int *sz)
{
    s->nvals++;
    if (em_slot_has(s, sz)) return;
    s->sz = md_xrealloc(s->sz, (size_t)(s->nsz + 1) * sizeof *s->sz);
    s->sz[s->nsz][0] = sz[0];
    s->sz[s->nsz++][1] = sz[1];
}

/* The slot's size as a size_t expression. */
static char *em_slot_size(emitter *E, const em_slot *s)
{
    md_buf b = {0};
    for (int i = 0; i < s->nsz; i++) {
        char *z = em_size_t(E, s->sz[i][0], s->sz[i][1]);
        if (i + 1 < s->nsz) md_buf_printf(&b, "md_maxz(%s, ", z);
        else md_buf_puts(&b, z);
        free(z);
    }
    for (int i = 1; i < s->nsz; i++) md_buf_putc(&b, ')');
    if (s->nsz > 1) E->use_maxz = 1;
    return md_buf_take(&b);
}

/* Assigns every node its C value: names, slots, aliases.  Scalars,
   matrices and LUs are numbered in the order they are computed (md_s1,
   md_t1, md_lu1), not by node id: ids follow the order in which the
   constructors ran, which C leaves unspecified for the arguments of one
   call, so the emitted names would depend on the compiler that built
   matdiff. */
void em_values(emitter *E)
{
    md_ctx *ctx = E->ctx;
    int nscalar = 0, nmatrix = 0, nlu = 0;
    /* last reads, by position (topo index; the final copies of gradients
       not computed in place read at ntopo) */
    int *last = md_xmalloc((size_t)ctx->nnodes * sizeof *last);
    for (uint32_t i = 0; i < ctx->nnodes; i++) last[i] = -1;
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        for (int l = 0; l < E->nlus; l++)
            if (E->lus[l].first == k) em_reads(E, E->lus[l].base, k, last);
        if (E->nd[e->id].mode != EM_COMPUTED) continue;
        if (last[e->id] < k) last[e->id] = k;
        for (int i = 0; i < em_nargs(E, e); i++) em_reads(E, em_arg(E, e, i), k, last);
    }
    /* the roots (gradients not computed in place are copied at the end,
       maybe through an alias) */
    for (int k = 0; k < E->ntopo; k++)
        if (E->nd[E->topo[k]->id].root_of) em_reads(E, E->topo[k], E->ntopo, last);
    /* the values that die at each position: die[k], linked by next[id] */
    int *die = md_xmalloc((size_t)(E->ntopo + 1) * sizeof *die), *next = md_xmalloc((size_t)ctx->nnodes * sizeof *next);
    for (int k = 0; k <= E->ntopo; k++) die[k] = -1;
    for (int k = 0; k < E->ntopo; k++) {
        const md_expr *e = E->topo[k];
        const em_node *x = &E->nd[e->id];
        if (x->mode != EM_COMPUTED || x->scalar || x->dest >= 0) continue;
        next[e->id] = die[last[e->id]];
        die[last[e->id]] = (int)e->id;
    }
    em_slot *slots = NULL;
    int nslots = 0, *slot_of = md_xmalloc((size_t)ctx->nnodes * sizeof *slot_of);
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        em_node *x = &E->nd[e->id];
        md_buf b = {0};
        for (int l = 0; l < E->nlus; l++)
            if (E->lus[l].first == k) em_lu_slices(E, &E->lus[l], ++nlu);
        switch (x->mode) {
        case EM_SOLVE:
            x->val = md_xstrdup(E->lus[x->lu - 1].val);
            break;
        case EM_TRACED: break;   /* never formed */
        case EM_ACCUM: break;    /* added into its sum */
        case EM_WEIGHTED: break; /* read as u and A by md_wsyrk */
        case EM_APPLIED: break;  /* read as its arguments by md_kron_mv */
        case EM_QF: break;       /* read as S's factors and B by md_lu_qf */
        case EM_LEAF:
            if (e->kind == MD_NUM) x->val = em_number(e);
            else x->val = md_xstrdup(E->pname[e->ival]);
            break;
        case EM_ALIAS:
        case EM_VIEW:
            x->val = md_xstrdup(E->nd[em_arg(E, e, 0)->id].val);
            break;
        case EM_INLINE:
            md_buf_putc(&b, '(');
            em_rhs(E, e, &b);
            md_buf_putc(&b, ')');
            x->val = md_buf_take(&b);
            break;
        case EM_COMPUTED:
            if (x->scalar) {
                md_buf_printf(&b, "md_s%d", ++nscalar);
                x->val = md_buf_take(&b);
                md_buf_printf(&E->decl, "    double %s = 0.0;\n", x->val);
            } else if (x->dest >= 0) {
                x->val = md_xstrdup(E->gname[x->dest]);
            } else {
                md_buf_printf(&b, "md_t%d", ++nmatrix);
                x->val = md_buf_take(&b);
                int sz[2] = {e->rows < e->cols ? e->rows : e->cols, e->rows < e->cols ? e->cols : e->rows};
                int s = -1;
                /* in place: an argument read for the last time, element by element */
                md_kind kd = em_kind(E, e);
                int accum = 0;   /* products read after the sum's loop wrote: never in place */
                for (int i = 0; i < em_nargs(E, e); i++) accum |= E->nd[em_arg(E, e, i)->id].mode == EM_ACCUM;
                if ((kd == MD_ADD || kd == MD_HAD || kd == MD_POW || kd == MD_FUNC ||
                     (kd == MD_MUL && em_elementwise(E, e))) && !accum) {
                    md_expr *rd[32];
                    int nr = 0;
                    for (int i = 0; i < em_nargs(E, e); i++) em_el_reads(E, em_arg(E, e, i), rd, &nr, 32);
                    for (int i = 0; i < nr && s < 0; i++) {
                        const em_node *y = &E->nd[rd[i]->id];
                        if (y->dest < 0 && last[rd[i]->id] == k && rd[i]->rows == e->rows &&
                            rd[i]->cols == e->cols)
                            s = slot_of[rd[i]->id];
                    }
                }
                for (int j = 0; j < nslots && s < 0; j++)   /* a free slot of this size */
                    if (slots[j].free_at >= 0 && slots[j].free_at <= k && em_slot_has(&slots[j], sz)) s = j;
                for (int j = 0; j < nslots && s < 0; j++)   /* any free slot */
                    if (slots[j].free_at >= 0 && slots[j].free_at <= k) s = j;
                if (s < 0) {
                    slots = md_xrealloc(slots, (size_t)(nslots + 1) * sizeof *slots);
                    slots[nslots] = (em_slot){NULL, 0, -1, 0, e->id, md_xstrdup(x->val)};
                    s = nslots++;
                }
                em_slot_add(&slots[s], sz);
                slots[s].free_at = -1;
                slots[s].owner = e->id;
                slot_of[e->id] = s;
            }
            break;
        }
        md_buf_free(&b);
        /* the slots of the values read for the last time at k are free
           from k + 1 on (unless written in place at k by the next value) */
        for (int v = die[k]; v >= 0; v = next[v])
            if (slots[slot_of[v]].owner == (uint32_t)v) slots[slot_of[v]].free_at = k + 1;
    }
    /* the declarations: the slots, then the values that share one, then
       the scalars and LU slices E->decl holds */
    md_buf head = {0};
    for (int j = 0; j < nslots; j++) {
        em_slot *sl = &slots[j];
        char *sz = em_slot_size(E, sl);
        if (sl->nvals > 1) {
            free(sl->name);
            md_buf nb = {0};
            md_buf_printf(&nb, "md_slot%d", j + 1);
            sl->name = md_buf_take(&nb);
        }
        md_buf_printf(&head, "    double *const %s = md_w;\n    md_w += %s;\n", sl->name, sz);
        md_buf_printf(&E->ws, "    md_n += %s;   /* %s", sz, sl->nvals > 1 ? "" : sl->name);
        if (sl->nvals > 1) {
            int first = 1;
            for (int k = 0; k < E->ntopo; k++) {
                const md_expr *e = E->topo[k];
                const em_node *x = &E->nd[e->id];
                if (x->mode == EM_COMPUTED && !x->scalar && x->dest < 0 && slot_of[e->id] == j) {
                    md_buf_printf(&E->ws, "%s%s", first ? "" : ", ", x->val);
                    first = 0;
                }
            }
        }
        md_buf_puts(&E->ws, " */\n");
        free(sz);
    }
    for (int k = 0; k < E->ntopo; k++) {
        const md_expr *e = E->topo[k];
        const em_node *x = &E->nd[e->id];
        if (x->mode == EM_COMPUTED && !x->scalar && x->dest < 0 && slots[slot_of[e->id]].nvals > 1)
            md_buf_printf(&head, "    double *const %s = %s;\n", x->val, slots[slot_of[e->id]].name);
    }
    if (E->decl.s) md_buf_puts(&head, E->decl.s);
    md_buf_free(&E->decl);
    E->decl = head;
    for (int j = 0; j < nslots; j++) {
        free(slots[j].sz);
        free(slots[j].name);
    }
    free(slots);
    free(slot_of);
    free(die);
    free(next);
    free(last);
}

/* ---- scratch ---------------------------------------------------------- */

/* The scratch area is shared by every statement (each uses it only while
   it runs), so its size is the largest need; equal needs count once. */
void em_add_scratch(emitter *E, char *expr)
{
    for (int i = 0; i < E->nscr; i++)
        if (!strcmp(E->scr[i], expr)) {
            free(expr);
            return;
        }
    if (E->nscr == E->capscr) {
        E->capscr = E->capscr ? 2 * E->capscr : 8;
        E->scr = md_xrealloc(E->scr, (size_t)E->capscr * sizeof *E->scr);
    }
    E->scr[E->nscr++] = expr;
}

/* ---- cost ------------------------------------------------------------- */

/*
 * The flops of the emitted function as a C expression in dims, to choose
 * between plans at run time (emit.c): a product of an r x k and a k x c
 * factor costs r*k*c, a trace of a product r*k, an LU n^3, a formed
 * inverse n^3 more, anything else one operation per element.  Terms are
 * monomials in the dimensions (at most three), equal ones collected.
 */
typedef struct em_term {
    int d[3], n;      /* the dimensions, sorted; MD_DIM_ONE left out */
    double coef;
} em_term;

static void em_term_add(em_term **t, int *nt, double coef, int n, const int *dims)
{
    em_term x = {{0, 0, 0}, 0, coef};
    for (int i = 0; i < n; i++) {
        if (dims[i] == MD_DIM_ONE) continue;
        int j = x.n++;
        while (j > 0 && x.d[j - 1] > dims[i]) x.d[j] = x.d[j - 1], j--;
        x.d[j] = dims[i];
    }
    for (int i = 0; i < *nt; i++)
        if ((*t)[i].n == x.n && !memcmp((*t)[i].d, x.d, sizeof x.d)) {
            (*t)[i].coef += coef;
            return;
        }
    *t = md_xrealloc(*t, (size_t)(*nt + 1) * sizeof **t);
    (*t)[(*nt)++] = x;
}

char *em_cost(const emitter *E)
{
    em_term *t = NULL;
    int nt = 0;
    for (int k = 0; k < E->ntopo; k++) {
        md_expr *e = E->topo[k];
        const em_node *x = &E->nd[e->id];
        if (x->mode != EM_COMPUTED && x->mode != EM_TRACED && x->mode != EM_ACCUM) continue;
        if (em_kind(E, e) == MD_MUL) {
            md_expr *f[EM_CHAIN_MAX + 1];
            int L = 0;
            for (int i = 0; i < em_nargs(E, e) && L <= EM_CHAIN_MAX; i++)
                if (!md_is_scalar(em_arg(E, e, i))) f[L++] = em_arg(E, e, i);
            if (L >= 2 && x->mode == EM_TRACED && L == 2) {
                int d[2] = {f[0]->rows, f[0]->cols};
                em_term_add(&t, &nt, 1.0, 2, d);
                continue;
            }
            /* left to right (a chain left to run time costs at most this) */
            for (int i = 1; i < L; i++) {
                int d[3] = {f[0]->rows, f[i]->rows, f[i]->cols};
                em_term_add(&t, &nt, 1.0, 3, d);
            }
            if (L >= 2) continue;
        }
        if (x->qf) {   /* one triangular solve: m^2 k / 2 */
            const md_expr *B = x->qfb;
            int m = x->qfinv->rows, d[3] = {m, m, x->qfright ? B->rows : B->cols};
            em_term_add(&t, &nt, 0.5, 3, d);
            continue;
        }
        if (em_kind(E, e) == MD_MPOW && e->ival < 0 && !x->scalar) {
            int d[3] = {e->rows, e->rows, e->rows};
            em_term_add(&t, &nt, 1.0, 3, d);
        }
        int d[2] = {e->rows, e->cols};
        em_term_add(&t, &nt, 1.0, 2, d);
    }
    for (int l = 0; l < E->nlus; l++) {
        int n = E->lus[l].base->rows, d[3] = {n, n, n};
        em_term_add(&t, &nt, 2.0 / 3.0, 3, d);
    }
    /* one term after the other, wrapped at 96 columns (under md_c's
       initialiser, indented by 8) */
    md_buf b = {0};
    size_t col = 8;
    for (int i = 0; i < nt; i++) {
        md_buf term = {0};
        char c[32];
        snprintf(c, sizeof c, "%.17g", t[i].coef);
        if (!strpbrk(c, ".e")) strcat(c, ".0");
        if (t[i].coef != 1.0 || !t[i].n) md_buf_puts(&term, c);
        for (int j = 0; j < t[i].n; j++) {
            if (term.len) md_buf_puts(&term, " * ");
            em_dim_d(E, t[i].d[j], &term);
        }
        if (i && col + term.len + 3 > 96) {
            md_buf_puts(&b, "\n        + ");
            col = 10;
        } else if (i) {
            md_buf_puts(&b, " + ");
            col += 3;
        }
        md_buf_puts(&b, term.s);
        col += term.len;
        md_buf_free(&term);
    }
    if (!nt) md_buf_puts(&b, "0.0");
    free(t);
    return md_buf_take(&b);
}
