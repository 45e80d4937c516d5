/*
 * md_diff.h -- derivatives by the differential method.
 *
 * Two steps, both first-class so that Jacobians and Hessians can reuse
 * them later:
 *
 *   md_differential(f, X)  builds df: an expression linear in the
 *                          differential dX (an MD_DIFF node), by pushing d
 *                          inward with the product, chain, Hadamard,
 *                          inverse and determinant rules;
 *   md_identify(df, X)     finds G with df = G:dX by moving everything off
 *                          dX with the Frobenius-product identities
 *                          (A:BC = B'A:C = AC':B, A:B' = A':B,
 *                          A:(B.*C) = (A.*B):C, A:tr(B) = A*eye:B, ...),
 *                          processed in reverse topological order over the
 *                          shared graph of df (reverse-mode accumulation).
 *
 * md_gradient composes them and, for a symmetric X, returns the gradient
 * on the space of symmetric matrices, sym(G) = (G + G')/2.
 */
#ifndef MD_DIFF_H
#define MD_DIFF_H

#include "md_expr.h"

md_expr *md_differential(md_ctx *ctx, md_expr *f, int sym);

/* Returns G, or NULL if df is not linear in dX in a form the identities
   cover (an internal error: every df that md_differential builds is). */
md_expr *md_identify(md_ctx *ctx, md_expr *df, int sym);

md_expr *md_gradient(md_ctx *ctx, md_expr *f, int sym);

/* One identification step (see diff.c): the term A : N becomes
   sum_i A_i : C_i over the children C_i of N that hold a differential,
   each passed to emit(arg, A_i, C_i).  Returns the identity's name, or
   NULL when N's kind has no rule.  md_identify and --steps share it. */
typedef void (*md_emit_adjoint)(void *arg, md_expr *A, md_expr *child);
const char *md_identify_step(md_ctx *ctx, md_expr *A, md_expr *N, md_emit_adjoint emit, void *arg);

/* sym(G) = (G + G')/2: the gradient for a symmetric variable. */
md_expr *md_sym_part(md_ctx *ctx, md_expr *G);

/*
 * Derivatives of any shape (diff.c, "identification in vec form").
 *
 * md_vec_jacobian: d vec(F) / d vec(X)', the (size of F) x (size of X)
 * matrix of Magnus and Neudecker, for any F (a scalar F gives vec(G)').
 * For a symmetric X the derivative along symmetric directions, J N_n with
 * N_n = (eye + K_nn)/2.
 *
 * md_derivative: what matdiff prints for F by X: the gradient (X's shape)
 * for a scalar F, F's shape for a scalar X, else md_vec_jacobian.
 *
 * md_hessian_block: d^2 f / d vec(X_i) d vec(X_j)', the vec Jacobian of
 * the gradient by X_i with respect to X_j.
 *
 * Each returns NULL when the derivative cannot be written in the
 * language (a Kronecker product or vec above the variable on the gradient
 * path; a Kronecker product above it on the Jacobian path).
 */
md_expr *md_vec_jacobian(md_ctx *ctx, md_expr *f, int sym);

/* One forward identification step (diff.c): vec(N) = sum_i C_i vec(C_i's
   child) over the children of N that hold a differential, each passed to
   emit(arg, C_i, child_i).  Returns the identity's name, or NULL when N's
   kind has no rule (a Kronecker product above dX).  md_vec_jacobian and
   the derivations of --steps both take their steps here. */
const char *md_vec_step(md_ctx *ctx, md_expr *N, md_emit_adjoint emit, void *arg);
md_expr *md_derivative(md_ctx *ctx, md_expr *f, int sym);
md_expr *md_hessian_block(md_ctx *ctx, md_expr *f, int si, int sj);

/* Block of a Hessian-vector product: for the gradient G of f by one
   variable, D G[v] = sum_j dG with dX_j := V_j, X_j = wrt[j] and V_j =
   dir[j] (symbols shaped like X_j).  An expression of G's shape, with no
   Kronecker product (the C backend's NAME_hvp). */
md_expr *md_hvp(md_ctx *ctx, md_expr *G, int n, const int *wrt, const int *dir);

#endif
