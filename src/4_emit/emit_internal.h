/*
 * emit_internal.h -- what the stage files of the C backend share: the
 * emitter (one per md_emit_c, md_emit_header or md_emit_dim_fields call)
 * and the em_ functions one stage file calls in another.  Private to
 * src/4_emit/; the interface is md_emit.h.
 *
 * The stages, in the order md_emit_c runs them:
 *
 *     emit_plan.c   em_scan: the graph as it will be emitted (twins, LUs,
 *                   uses, needs, modes, fusion)
 *     emit_names.c  em_names: the C names of the interface; em_dim,
 *                   em_size, em_size_t: sizes as C expressions
 *     emit_plan.c   em_values: every node's C value, workspace slices
 *     emit_code.c   em_body: the statements
 *     emit_text.c   em_top_comment, em_decls, em_proto: the interface text
 *     emit.c        the driver: the run-time helpers the statements call
 *                   (runtime/, embedded through $(B)/md_runtime.h), the
 *                   workspace function, the function itself
 *
 * Each stage reads what the earlier ones wrote into the emitter and
 * writes its own fields; no stage builds nodes.
 */
#ifndef MD_EMIT_INTERNAL_H
#define MD_EMIT_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include "md_emit.h"
#include "md_expr.h"

/* The longest chain the emitted md_chain brackets at run time (its
   arrays are MD_CHAIN_MAX square); longer ones are bracketed at emit
   time. */
enum { EM_CHAIN_MAX = 16 };

/* The most plans (bracketings for different size regimes) one emitted
   file holds when sizes are known only at run time (md_cost_plans). */
enum { EM_MAX_PLANS = 6 };

/* How a node's value is held. */
typedef enum {
    EM_LEAF,      /* an input, a number: val names it, no statement */
    EM_COMPUTED,  /* a statement writes val (a local double or a slice) */
    EM_INLINE,    /* elementwise, used once by an elementwise node: val is
                     an expression in md_i, written into that node's loop */
    EM_ALIAS,     /* the transpose of a vector: the argument's memory */
    EM_VIEW,      /* a transpose used only as a product factor: no memory */
    EM_SOLVE,     /* an inverse used only as a product factor: no memory;
                     products apply it by solving with its LU factors */
    EM_TRACED,    /* a product used only by a trace: never formed, the
                     trace is computed from its factors */
    EM_ACCUM,     /* a product of two factors used only as a term of one
                     sum: added into the sum's value by md_mm with beta 1 */
    EM_WEIGHTED,  /* diag(u)*A, used only as the factor of A'*diag(u)*A: never
                     formed, md_wsyrk reads u and A (em_sym_product) */
    EM_APPLIED,   /* kron(A, B) or a commutation matrix, a factor of products
                     with vectors only: never formed, applied (md_kron_mv,
                     md_tcopy) */
    EM_QF         /* inv(S)*B, S symmetric, used only by the quadratic form
                     B'*(inv(S)*B) (a 1 x 1 product, or the trace of one
                     that is not formed): never formed, the form is
                     md_lu_qf of S's factors and B (em_node.qf) */
} em_mode;

/* The LU factorisation of one matrix, shared by the det, logdet and
   inverse nodes of that matrix and of its transpose (inv(A') solves with
   A's factors, transposed). */
typedef struct em_lu {
    md_expr *base;       /* the matrix factored, as stored */
    int first;           /* topo index of the first node that uses it */
    uint64_t *need;      /* the union of its users' needs */
    char *val, *piv;     /* its slices: n*n factors, the pivots */
    int sym;             /* base is symmetric: md_lu_sym (Cholesky first) */
} em_lu;

typedef struct em_node {
    int seen;
    int scalar;          /* 1x1: a double */
    em_mode mode;
    int other_use;       /* used other than as a factor of a product chain */
    int uses;            /* number of argument slots that use it */
    int root_of;         /* number of roots equal to it (f counts) */
    int dest;            /* >= 0: computed straight into gradient dest */
    int isrep;           /* some other node is computed as its transpose */
    md_expr *tof;        /* non-NULL: this node is tof', computed as a
                            transpose of tof instead of from its arguments */
    md_expr *user;       /* the (last) node that uses it */
    int lu;              /* det, logdet, negative power: 1 + its LU's index */
    int lut;             /* ... of the transpose of the LU's base */
    md_expr *qf;         /* a quadratic form B'*N: N = inv(S)*B (EM_QF), */
    md_expr *qfinv, *qfb;   /* ... its inv(S), the B (or B') in memory, */
    int qfright;         /* ... and whether that is right of inv(S) (em_qf_match) */
    char *val;           /* C expression: the double, or the pointer */
    uint64_t *need;      /* bit 0: f; bit 1 + i: gradient i */
} em_node;

typedef struct em_gen {
    char *name;          /* C identifier of the callback */
    int func, order;
} em_gen;

typedef struct emitter {
    md_ctx *ctx;
    const md_emit_opts *o;
    FILE *err;
    const char *name;    /* NAME: the dims struct, NAME_workspace */
    const char *fname;   /* the public function: NAME, or NAME_hvp */
    char *own_fname;     /* NAME_hvp's storage */
    const char *pfx;     /* its plans' static functions: md_plan, md_hvp_plan */
    const char *oprefix; /* its outputs: d_ (gradients), Hv_ */
    int nin;             /* its inputs: ctx->syms[em_in(E, 0 .. nin)] */
    const int *in;       /* their symbols; NULL: 0 .. nin-1 */
    int map;             /* a non-scalar function's file (md_emit_c_map) */
    const struct emitter *jvpE, *vjpE;   /* NAME's emitter there: NAME_jvp's, NAME_vjp's */
    const md_expr *mapF; /* ... and the function */
    const char *const *onames; /* its outputs' names; NULL: oprefix + wrt's names */
    int hess_expr;       /* NAME_hvp's emitter: NAME_hess is emitted from the
                            Hessian's blocks (o->hess), not from H v */
    const struct emitter *hessE;   /* ... and the blocks' emitter */
    const struct emitter *fonly;   /* NAME's emitter: the first plan of f
                                      alone, which NAME runs when every
                                      gradient pointer is NULL; or NULL */
    int n;               /* its outputs */
    const int *wrt;
    int row;             /* row-major */
    /* names (emit_names.c) */
    char **dimfield;     /* per dim id (0 unused) */
    char **dimnote;      /* what each dimension is, for the comment */
    char **pname;        /* per symbol: the parameter */
    char **gname;        /* per gradient: the parameter */
    char **reserved;
    int nreserved, capreserved;
    em_gen *gens;
    int ngens;
    /* the graph (emit_plan.c) */
    em_node *nd;
    md_expr **topo;
    int ntopo, captopo;
    em_lu *lus;
    int nlus;
    int nwords;          /* of each need bitset */
    /* output pieces (emit_plan.c, emit_code.c) */
    md_buf decl;         /* slice and scalar declarations */
    md_buf body;
    md_buf ws;           /* workspace: slices */
    char **scr;          /* scratch candidates (size expressions) */
    int nscr, capscr;
    /* the run-time helpers the statements call (emit_code.c) */
    int nplans;          /* plans in the file (emit.c), for the comment */
    int use_maxz;        /* a workspace slot holds values of different sizes */
    int use_mm, use_wsyrk, use_kron, use_chain, use_chain_plain, use_chain_trace, use_trdot, use_tcopy, use_det, use_sm, use_inv, use_mpow,
        use_lusym, use_qf;
} emitter;

/* The symbol of input k of E's function. */
static inline int em_in(const emitter *E, int k)
{
    return E->in ? E->in[k] : k;
}

/* ---- emit_names.c: C names and sizes ---------------------------------- */

/* Adds the callback for generic function func, derivative order. */
void em_add_gen(emitter *E, int func, int order);
/* The names of the interface: callbacks (already collected), dimension
   fields, parameters.  Returns -1 after a message on E->err. */
int em_names(emitter *E);
/* Appends dimension d as C: "dims->n", or "1". */
void em_dim(const emitter *E, int d, md_buf *b);
/* The same as a double that cannot overflow, "(double)dims->n" (a
   product dimension: the product of its factors in double). */
void em_dim_d(const emitter *E, int d, md_buf *b);
/* "dims->n * dims->p", "dims->n" or "1" (as long); malloc'd. */
char *em_size(const emitter *E, int r, int c);
/* The same as a size_t expression. */
char *em_size_t(const emitter *E, int r, int c);

/* ---- emit_plan.c: the graph as emitted, values, workspace ------------- */

/* The graph as emitted: a node that is the transpose of another one
   (E->nd[id].tof) is a transpose of that node, with it as only argument;
   det, logdet and inverses take the matrix their LU factors. */
md_kind em_kind(const emitter *E, const md_expr *e);
int em_nargs(const emitter *E, const md_expr *e);
md_expr *em_arg(const emitter *E, const md_expr *e, int i);
/* Scans the graph: kinds we cannot emit, uses, modes, generic callbacks.
   Returns -1 after a message on E->err. */
int em_scan(emitter *E, md_expr *f, md_expr **grads);
/* Assigns every node its C value: names, slices, aliases. */
void em_values(emitter *E);
/* A scratch need (a size_t expression, owned by E from now on); the
   scratch area is the largest of them. */
void em_add_scratch(emitter *E, char *expr);
/* The flops of the emitted function as a C expression in dims (products
   r*k*c, LUs n^3, other nodes one per element), for choosing among plans
   at run time; malloc'd. */
char *em_cost(const emitter *E);

/* If e is u*1' (u a column vector, 1' a row of ones) or 1*v (v a row
   vector), the vector, and *by_col = 0 for u (element (i, j) is u_i) or 1
   for v (it is v_j); else NULL.  Inlined, it reads u[md_ri] or v[md_ci]
   inside a loop over rows and columns (em_rhs): diag(u)*A scales rows in
   the loop that reads A, without an r x c array of u. */
const md_expr *em_outer_ones(const md_expr *e, int *by_col);

/* Is the product e scalars times A' * D with D = diag(u)*A as
   md_struct_rewrite writes it, (u*1') .* A?  Then D (or NULL). */
md_expr *em_sym_product(const md_expr *e);

/* ---- emit_code.c: statements ------------------------------------------ */

/* The right-hand side of an elementwise node (ADD, HAD, POW, FUNC, or a
   MUL of scalars and one matrix), element md_i. */
void em_rhs(emitter *E, const md_expr *e, md_buf *b);
/* The function's body into E->body: every computed node in topological
   order under its condition, each LU before its first user, then the
   gradients not computed in place, then the return. */
void em_body(emitter *E, md_expr *f, md_expr **grads);

/* ---- emit_text.c: the interface text ---------------------------------- */

/* "double FNAME(const NAME_dims *dims, ..., double *work)", wrapped (E->fname,
   the inputs, the outputs); with fname, "static double fname(...)" (a
   plan's function, emit.c). */
void em_proto(const emitter *E, const char *fname, md_buf *out);
/* "double FNAME(const NAME_dims *dims, <E's inputs>, extra...)", wrapped
   at 96 columns (NAME_hess, NAME_jac: their extra parameters). */
void em_proto_extra(const emitter *E, const char *fname, const char *const *extra, int nextra, md_buf *out);
/* The declarations (the header, and the top of the .c), with guard; H,
   when not NULL, is NAME_hvp's emitter. */
void em_decls(const emitter *E, const emitter *H, md_buf *out);
/* The comment at the top of each emitted file (f == NULL: the header's). */
void em_top_comment(const emitter *E, const emitter *H, md_expr *f, md_expr **grads, int header, md_buf *out);

#endif
