/*
 * md_emit.h -- C code generation: a self-contained C99 translation unit
 * that computes f and its gradients, for other projects to compile and
 * call in their inner loop (see docs/codegen.md).
 *
 * The emitted interface, for a function named NAME:
 *
 *     typedef struct NAME_dims { long n, p, ...; } NAME_dims;
 *     size_t NAME_workspace(const NAME_dims *dims);   doubles of scratch
 *     double NAME(const NAME_dims *dims, <inputs>, <gradients>, double *work);
 *
 * one dims field per dimension (declared names, or X_rows / X_cols / x_len
 * after the first variable that carries an undeclared one), the inputs in
 * the order of ctx->syms (double for scalars, const double * otherwise),
 * the gradients as double *d_<name> in wrt order (NULL skips one).  No
 * allocation, no global state: reentrant.  Generic functions (`function
 * h`) become callbacks the caller defines: double NAME_h(double) and
 * double NAME_h_d1(double), NAME_h_d2, ... for the derivatives used.
 *
 * With o->hvp (--order 2) the file also defines
 *
 *     double NAME_hvp(const NAME_dims *dims, <inputs>, <directions>, <products>, double *work);
 *
 * the directions const double *v_<name> (one per gradient, its
 * variable's shape), the products double *Hv_<name>: block i of H v, H
 * the Hessian of f by all of wrt; NULL skips one.  NAME_workspace covers
 * both functions, and
 *
 *     double NAME_hess(const NAME_dims *dims, <inputs>, double *H, double *work);
 *     size_t NAME_hess_workspace(const NAME_dims *dims);
 *
 * the dense Hessian (N x N, N the sum of the variables' sizes), from its
 * blocks (o->hess; with several variables through the public
 * NAME_hess_blocks, one output H_<x>_<y> per block of the upper
 * triangle) or as N Hessian-vector products.
 */
#ifndef MD_EMIT_H
#define MD_EMIT_H

#include <stdio.h>

#include "md_expr.h"

typedef struct md_emit_opts {
    const char *name;      /* function name, default "f" */
    int row_major;         /* --layout row */
    int blas;              /* 1: CBLAS calls (link -lopenblas), 0: --no-blas portable loops */
    const long *size_hint; /* per dim id, 0 = unknown (run-time bracketing); may be NULL */
    /* --order 2: also NAME_hvp, the Hessian-vector product.  hvp[i] is
       the product's block for wrt[i] (md_hvp); the directions are the
       last n symbols of ctx (v_<name>), inputs of NAME_hvp only.  NULL:
       first order. */
    md_expr *const *hvp;
    /* With hvp: the Hessian's blocks, hess[i*n + j] = d2f/d vec(X_i)
       d vec(X_j)' (md_hessian_block), when every one can be emitted (no
       Kronecker product: scalar and vector variables); NAME_hess is then
       computed from them (products of the data, X'*diag(w)*X as a
       symmetric product) rather than as N calls of NAME_hvp.  NULL: from
       NAME_hvp. */
    md_expr *const *hess;
} md_emit_opts;

/*
 * Emits one self-contained C99 translation unit computing f and its
 * gradients with respect to wrt[0..n) (grads[i] from md_gradient).
 * Returns 0, or -1 with a clear message on err for an unsupported
 * construct (never code that computes a wrong value), or -2 when o->name
 * is not usable as a C name (a usage error).  md_emit_header likewise.
 */
int md_emit_c(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
              const md_emit_opts *o, md_buf *out, FILE *err);

/*
 * A function whose value F is a vector or a matrix (residuals, a layer):
 * what Gauss-Newton and Levenberg-Marquardt call, by wrt[0..n):
 *
 *     double NAME(const NAME_dims *dims, <inputs>, double *F, double *work);
 *     double NAME_jvp(const NAME_dims *dims, <inputs>, <v_X...>, double *F, double *Jv, double *work);
 *     double NAME_vjp(const NAME_dims *dims, <inputs>, const double *u, double *F, <d_X...>,
 *                     double *work);
 *     size_t NAME_workspace(const NAME_dims *dims);       all three
 *     double NAME_jac(const NAME_dims *dims, <inputs>, double *F, double *J, double *work);
 *     size_t NAME_jac_workspace(const NAME_dims *dims);
 *
 * J v the derivative of F along the directions v_X (md_hvp of F), J' u
 * the gradients of u : F (md_gradient), J dense (M x N) from N of the
 * first or M of the second.  Each returns 0 (NaN for sizes it cannot
 * handle).  Returns as md_emit_c does; with header, the declarations
 * (md_emit_header's part).
 */
typedef struct md_emit_map {
    int nprog;                 /* the program's symbols: ctx->syms[0 .. nprog) */
    const int *dir;            /* n symbols v_<name>, shaped like wrt[i] */
    int u;                     /* the symbol u, shaped like F */
    md_expr *jvp;              /* J v, F's shape */
    md_expr *const *vjp;       /* n: the gradients of u : F */
} md_emit_map;

int md_emit_c_map(md_ctx *ctx, md_expr *F, int n, const int *wrt, const md_emit_map *m, const md_emit_opts *o,
                  int header, md_buf *out, FILE *err);

/*
 * 0 when the C backend can emit roots[0..n) (NULL entries skipped); -1
 * after a message on err (none when err is NULL) when one reaches a
 * Kronecker product or commutation matrix other than as a factor of a
 * product (the emitter applies kron(A, B)*x as vec(B*X*A') and K*x as a
 * transpose; a product with a matrix is refused when the bracketing makes
 * one).  md_emit_c checks its own roots; call this before md_emit_header.
 * Product dimensions (n*p) are products of their factors' fields, never
 * fields of NAME_dims themselves.
 */
int md_emit_check(md_ctx *ctx, int n, md_expr *const *roots, FILE *err);

/*
 * The Hessian's blocks for o->hess (n*n, malloc'd; [i*n + j] is
 * md_hessian_block of wrt[i], wrt[j], the lower ones the transposes of the
 * upper): when every variable is a scalar or a vector (a matrix
 * variable's blocks are Kronecker products) and md_emit_check accepts
 * every block; else NULL (NAME_hess is then made of NAME_hvp calls).
 */
md_expr **md_emit_hess_blocks(md_ctx *ctx, md_expr *f, int n, const int *wrt);

/*
 * The matching declarations (--header): the dims struct, the two
 * prototypes and the callbacks for generic functions.  Call it after
 * md_gradient: the callbacks declared are those of the generic-function
 * nodes in ctx (a derivative that the simplifier made and later dropped
 * may be declared without being called).
 */
int md_emit_header(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o,
                   md_buf *out, FILE *err);

/* The field of each dimension in the emitted NAME_dims struct (n, X_rows,
   x_len, ...): fields[d] for d = 1 .. ctx->ndims - 1, malloc'd, as
   md_emit_c names them; NULL when o->name is not usable.  --size accepts
   these names. */
char **md_emit_dim_fields(md_ctx *ctx, int n, const int *wrt, const md_emit_opts *o);

/*
 * Array code (src/4_emit/emit_array.c, docs/arrays.md): a NumPy or
 * PyTorch module defining NAME, or an Octave/MATLAB function file
 *
 *     def NAME(<inputs>, <callbacks>): ... return value, d_X, ...
 *     function [f, d_X, ...] = NAME(<inputs>, <callbacks>)
 *
 * the inputs ctx->syms[0..nsyms) in order (as the C interface), then one
 * callback per generic function (h(x, k): its k-th derivative, entrywise);
 * it returns roots[0..nroots) (the value, then the derivatives) named
 * rootnames[i].  Vectors are 1-D in Python and columns in Octave.
 */
typedef enum md_array_lang { MD_ARRAY_NUMPY, MD_ARRAY_TORCH, MD_ARRAY_OCTAVE } md_array_lang;
typedef struct md_array_emit {
    md_array_lang lang;
    const char *name;            /* the function's name (default f) */
    int nsyms;                   /* the program's variables */
    int nroots;
    md_expr *const *roots;       /* the value, then the derivatives */
    const char *const *rootnames;
    int nwrt;                    /* the variables differentiated by */
    const int *wrt;
    const char *ftext;           /* the function as written, for the doc comment */
    const char *what;            /* "gradient", "derivative", "gradient and Hessian" */
    int gradient;                /* f is scalar: roots[1..nwrt] are its gradients */
    int second;                  /* Hessian blocks follow the gradients */
    int self_test;               /* --self-test: also check_NAME (Python) */
} md_array_emit;

/* Returns 0, -1 after a message for a construct it cannot write, -2 for
   an unusable name (a usage error). */
int md_emit_array(md_ctx *ctx, const md_array_emit *a, md_buf *out, FILE *err);

#endif
