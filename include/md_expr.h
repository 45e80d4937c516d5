/*
 * md_expr.h -- the typed, hash-consed expression graph.
 *
 * Every stage after parsing works on md_expr nodes.  A node is immutable
 * and unique: all nodes are made through md_expr_make (src/2_core/expr.c), which
 * looks the node up in a hash table first (hash consing, as in yices).  So
 * two structurally equal expressions are the same pointer, common
 * subexpressions are shared for free, and a derivation of depth 1000 does
 * not copy anything.
 *
 * Every node carries its shape as two dimension ids (rows, cols).  Id 0
 * (MD_DIM_ONE) is the constant dimension 1; scalars are 1x1, column
 * vectors n x 1, row vectors 1 x n.  Other ids are symbolic dimensions
 * (ctx->dims) that shape inference found; they have names and, for the
 * numeric evaluator, sizes.
 *
 * Raw construction (md_expr_make) does no simplification.  The simplifying
 * constructors of md_simplify.h (md_add, md_mul, ...) are the only way the
 * rest of the program builds expressions, and they keep every node in the
 * canonical form documented there.
 *
 * Kinds and the fields they use:
 */
#ifndef MD_EXPR_H
#define MD_EXPR_H

#include <gmp.h>
#include <stdint.h>

#include "md_util.h"

typedef enum md_kind {
    MD_NUM,     /* q: a rational scalar constant; 1x1 */
    MD_SYM,     /* ival: index into ctx->syms; a free variable */
    MD_DIFF,    /* ival: index into ctx->syms; the differential dX of that
                   variable, same shape as X */
    MD_ZERO,    /* the zero matrix/vector of shape rows x cols (never 1x1:
                   the scalar 0 is MD_NUM) */
    MD_ONES,    /* all-ones rows x cols: matrix(1), vector(1); never 1x1 */
    MD_EYE,     /* identity, rows == cols, never 1x1 */
    MD_ADD,     /* args[0] + ... + args[n-1], n >= 2, all of the node's shape */
    MD_MUL,     /* args[0] * ... * args[n-1], n >= 2: first the scalar
                   (1x1) factors, then the matrix chain in order; the
                   product of the chain has the node's shape */
    MD_HAD,     /* args[0] .* ... .* args[n-1], n >= 2, all of the node's shape */
    MD_POW,     /* args[0] .^ args[1] elementwise; args[1] is 1x1 or of the
                   node's shape.  For 1x1 args[0] this is the scalar power. */
    MD_MPOW,    /* args[0]^ival, matrix power of a square matrix, ival an
                   integer != 0, 1; ival == -1 is inv(args[0]) */
    MD_TRANS,   /* args[0]' */
    MD_FUNC,    /* elementwise function ival (enum md_fn) of args[0];
                   for MD_FN_GENERIC: aux = index into ctx->funcs, order =
                   number of primes (f''(x) has order 2) */
    MD_SUM,     /* sum of all entries of args[0]; 1x1 */
    MD_NORM1,   /* entrywise 1-norm of args[0]; 1x1 */
    MD_NORM2,   /* Euclidean / Frobenius norm of args[0]; 1x1 */
    MD_TR,      /* trace of square args[0]; 1x1 */
    MD_DET,     /* determinant of square args[0]; 1x1 */
    MD_LOGDET,  /* log(det(args[0])) of square args[0]; 1x1 */
    MD_DIAGM,   /* the n x n diagonal matrix with column vector args[0] (n x 1) */
    MD_DIAGV,   /* the column vector (n x 1) of the diagonal of square args[0] */
    MD_VEC,     /* vec(args[0]): its columns stacked, (rows*cols) x 1 */
    MD_KRON,    /* kron(args[0], args[1]), the Kronecker product: (r0*r1) x (c0*c1) */
    MD_COMM,    /* the commutation matrix K with K*vec(A) = vec(A') for A of
                   shape ival x aux (two dimension ids, neither 1); square of
                   size ival*aux; no args */
    MD_SOFTMAX, /* softmax(args[0]) = exp(a)/sum(exp(a)) of a column vector
                   args[0]; its shape */
    MD_LSE,     /* logsumexp(args[0]) = log(sum(exp(a))) of a column vector
                   args[0]; 1x1 */
    MD_NKINDS
} md_kind;

/* The elementwise functions: one member per line of md_builtins.def
   (MD_FN_SIN, ...), whose table md_fns (md_builtins.h) says everything
   about them; then the declared generic functions. */
typedef enum md_fn {
#define MD_FN(ID, name, unicode, latex, lstyle, c, py, pt, m, eval, domain, at0, at1, fold, flags) MD_FN_##ID,
#define MD_OP(KIND, name, latex, arity, shape, domain)
#include "md_builtins.def"
#undef MD_FN
#undef MD_OP
    MD_FN_GENERIC,
    MD_NFNS
} md_fn;

enum { MD_DIM_ONE = 0 };

typedef struct md_expr md_expr;
struct md_expr {
    md_kind kind;
    int rows, cols;      /* dimension ids */
    int ival;            /* see the kinds */
    int aux;             /* MD_FUNC generic: function index */
    int order;           /* MD_FUNC generic: derivative order */
    int nargs;
    md_expr **args;
    mpq_t q;             /* MD_NUM: the value (initialised for every node) */
    uint32_t id;         /* creation order; index into ctx->nodes */
    uint32_t hash;       /* structural hash: equal structure <=> equal node */
    uint32_t depth;      /* 1 + max depth of args (MD_TRANS adds nothing) */
    uint32_t weight;     /* number of nodes in the expression as a tree,
                            saturating at UINT32_MAX; orders sum terms */
    unsigned has_diff;   /* some MD_DIFF occurs inside */
    const char *name;    /* MD_SYM, MD_DIFF: the variable's name; MD_FUNC
                            generic: the function's (orders them by name) */
};

typedef struct md_dim {
    const char *name;    /* "n", "p", ... as declared or as assigned; a
                            product dimension: its factors' names joined
                            by '*' ("n*q") */
    int declared;        /* named in a declaration by the user */
    long size;           /* evaluator: the size chosen for this dimension */
    int nfac;            /* 0 for a base dimension; >= 2 for a product */
    int *fac;            /* a product's base dimensions, sorted by id,
                            repeated as often as they occur (n*n) */
} md_dim;

typedef enum md_symkind {
    MD_SYM_SCALAR, MD_SYM_VECTOR, MD_SYM_MATRIX, MD_SYM_SYMMETRIC
} md_symkind;

typedef struct md_symbol {
    const char *name;
    md_symkind kind;
    int rows, cols;      /* dimension ids after shape inference */
} md_symbol;

typedef struct md_ctx {
    md_arena arena;          /* names and argument arrays */
    /* hash-consing table */
    md_expr **table;
    uint32_t tcap, tcount;
    md_expr **nodes;         /* nodes[id]; every node ever made */
    uint32_t nnodes, nodecap;
    /* dimensions; dims[0] is the constant 1 */
    md_dim *dims;
    int ndims, dimcap;
    /* free variables, in order of first appearance (declarations count) */
    md_symbol *syms;
    int nsyms, symcap;
    /* declared generic functions */
    const char **funcs;
    int nfuncs, funccap;
    md_strmap symmap, funcmap;   /* name -> index of syms, funcs */
    /* no factoring of sums (A*x + B*x stays): set by the C backend, where
       (A + B)*x can cost far more than A*x + B*x with good bracketing;
       must be set before any node is made */
    int no_factor;
    /* set while md_add tries a sum expanded (src/2_core/simplify.c,
       md_expand_sum): the sums built meanwhile are not expanded again */
    int expanding;
    /* the names the user bound (name = expr), in program order, and their
       values: the printers write such a value by its name and define it
       first, as they do their own temporaries (md_print.h).  Set by the
       driver for text and LaTeX output; nbound is 0 otherwise. */
    int nbound;
    const char *const *bound;
    md_expr *const *bval;
    /* memo tables of the simplifier, indexed by node id (src/2_core/simplify.c) */
    md_expr **memo_trans, **memo_simp;
    uint32_t memocap;
} md_ctx;

md_ctx *md_ctx_new(void);
void md_ctx_free(md_ctx *ctx);

int md_ctx_add_dim(md_ctx *ctx, const char *name, int declared);
/* The dimension a*b: MD_DIM_ONE's neutral, products flattened, factors
   sorted, and the same id for the same multiset (n*q and q*n are one
   dimension: only their sizes matter to shapes).  Product dimensions are
   made by vec, kron, commutation and Jacobians; they are never a
   variable's, and their size is the product of their factors' sizes. */
int md_ctx_dim_mul(md_ctx *ctx, int a, int b);
static inline int md_dim_is_product(const md_ctx *ctx, int d) { return ctx->dims[d].nfac > 0; }
/* The sizes of every product dimension from those of the base dimensions
   (sizes[d] for every d < ctx->ndims). */
void md_ctx_product_sizes(const md_ctx *ctx, long *sizes);
int md_ctx_add_sym(md_ctx *ctx, const char *name, md_symkind kind, int rows, int cols);
int md_ctx_find_sym(const md_ctx *ctx, const char *name);   /* -1 if absent */
int md_ctx_add_func(md_ctx *ctx, const char *name);
int md_ctx_find_func(const md_ctx *ctx, const char *name);  /* -1 if absent */

/*
 * The raw, hash-consing constructor: returns the unique node with these
 * fields (q may be NULL for non-MD_NUM kinds).  No simplification.
 */
md_expr *md_expr_make(md_ctx *ctx, md_kind kind, int rows, int cols, int ival,
                      int aux, int order, int nargs, md_expr *const *args,
                      const mpq_t q);

/* Convenience raw constructors for leaves. */
md_expr *md_num(md_ctx *ctx, mpq_srcptr q);
md_expr *md_num_si(md_ctx *ctx, long num, unsigned long den);
md_expr *md_sym(md_ctx *ctx, int sym);
md_expr *md_diff_of(md_ctx *ctx, int sym);
md_expr *md_zero(md_ctx *ctx, int rows, int cols);   /* MD_NUM 0 when 1x1 */
md_expr *md_ones(md_ctx *ctx, int rows, int cols);   /* MD_NUM 1 when 1x1 */
md_expr *md_eye(md_ctx *ctx, int n);                 /* MD_NUM 1 when n is 1 */

static inline int md_is_scalar(const md_expr *e)
{
    return e->rows == MD_DIM_ONE && e->cols == MD_DIM_ONE;
}
static inline int md_is_num(const md_expr *e, long v)
{
    return e->kind == MD_NUM && mpz_cmp_ui(mpq_denref(e->q), 1) == 0 &&
           mpz_cmp_si(mpq_numref(e->q), v) == 0;
}
static inline int md_is_zero(const md_expr *e)
{
    return e->kind == MD_ZERO || (e->kind == MD_NUM && mpq_sgn(e->q) == 0);
}
int md_sym_is_symmetric(const md_ctx *ctx, int sym);

/* A total order on nodes that depends only on structure and names, never
   on creation order: sorts commutative arguments the same way every run. */
int md_expr_cmp(const md_expr *a, const md_expr *b);

#endif
