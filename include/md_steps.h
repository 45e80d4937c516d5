/*
 * md_steps.h -- step-by-step derivations in the style of the seeds' best
 * answers.
 *
 * A derivation is a list of lines kept as data: each equation line holds
 * the md_expr nodes it shows, so the test suite can evaluate every line on
 * random data and a random direction and check that it equals the one
 * before (md_steps_check).  Rendering (md_steps_text, and LaTeX later) is
 * separate from deriving.
 *
 * The shape of a derivation, for f = norm2(R - P.*(gamma*gamma'))^2:
 *
 *     γ ∈ ℝ^{n×m}, P ∈ ℝ^{n×n}, R ∈ ℝ^{n×n}
 *     M = P∘γγᵀ - R                          substitutions that keep lines short
 *     f = M : M                              the function in Frobenius form
 *     df = 2M : dM
 *     dM = P∘(dγγᵀ + γdγᵀ)
 *     df = 2M : P∘(dγγᵀ + γdγᵀ)              chain rule
 *        = 2P∘M : dγγᵀ + 2P∘M : γdγᵀ         A:(B∘C) = (A∘B):C, ...
 *        = ...
 *        = 2(P∘M + (P∘M)ᵀ)γ : dγ
 *     ∂f/∂γ = 2(P∘M + (P∘M)ᵀ)γ
 *
 * Each equation line of the df chain is a sum of Frobenius products
 * A_i : E_i with E_i linear in the differential; one line applies one
 * identity to each term that is not yet of the form G : dX, and terms
 * with equal right sides are collected.
 */
#ifndef MD_STEPS_H
#define MD_STEPS_H

#include "md_eval.h"
#include "md_expr.h"

typedef enum md_line_kind {
    MD_LINE_SHAPES,   /* the variables and their shapes */
    MD_LINE_DEF,      /* lhs = expr: a substitution (lhs is a new symbol) */
    MD_LINE_EQ,       /* lhs = expr, expr shown in Frobenius form where it can be */
    MD_LINE_PAIRS,    /* lhs (or a continuation "=") = sum of a_i : e_i */
    MD_LINE_RESULT,   /* ∂f/∂X = expr (a Jacobian's ∂vec f/∂(vec X)ᵀ, a
                         Hessian block's ∂²f/∂vec X∂(vec Y)ᵀ) */
    MD_LINE_TEXT,     /* a sentence: "with V held constant:" */
    MD_LINE_VPAIRS,   /* lhs (or "=") = sum of c_i vec(e_i), e_i linear in
                         the differential: the vec identification */
    MD_LINE_GRADIENT  /* ∂f/∂X = expr: a Hessian's gradient, differentiated next */
} md_line_kind;

typedef struct md_pair {
    md_expr *a, *e;   /* a : e, e linear in differentials */
} md_pair;

typedef struct md_line {
    md_line_kind kind;
    char *lhs;           /* NULL: a continuation line "   = ..." */
    md_expr *expr;
    md_pair *pairs;
    int npairs;
    char *why;           /* the identity used, or NULL */
    int block;           /* index into wrt of the variable this line is about, -1 for shared lines */
    int typed;           /* MD_LINE_EQ: the function as typed, written as it is (not in Frobenius form) */
} md_line;

typedef struct md_subst {
    int sym;             /* the new symbol (M) */
    md_expr *expr;       /* what it stands for */
} md_subst;

typedef struct md_derivation {
    md_line *lines;
    int nlines, cap;
    md_subst *subst;
    int nsubst;
    md_expr **grads;     /* the result for each block */
    int nwrt;
    const int *wrt;
    /* what is derived: 1 gradients (a block per variable), 2 derivatives of
       a vector or matrix function (a block per variable), 3 Hessians (a
       block per pair of variables, i*nwrt + j) */
    int kind;
    md_expr **blockf;    /* kinds 2, 3: the function each block differentiates */
    /* the function's name on the lines (f, df, ∂f/∂X): "f", or "ℓ"
       (LaTeX \ell) when the program has a variable or function f */
    const char *fname, *dfname, *fname_latex;
} md_derivation;

/* Derives f with respect to wrt[0..n).  Adds the substitution symbols to
   ctx.  Returns 0, or -1 when a step falls outside the identities (an
   internal error). */
int md_steps_derive(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_derivation *d);
/* The derivation of d vec(f)/d vec(X)' (hessian == 0, f not a scalar) or
   of the Hessian blocks of a scalar f (hessian == 1): d vec F, then the
   vec identities (md_vec_step) one level per line, then the result; a
   Hessian shows the gradient by X and then its derivative by Y. */
int md_steps_derive_vec(md_ctx *ctx, md_expr *f, int hessian, int n, const int *wrt, md_derivation *d);
void md_steps_free(md_derivation *d);

/* Starts d from the function as the user typed it (md_typed.ftyped, which
   evaluates to f): a line "f = ..." right after the shapes, in the order
   and with the names written, before any rewriting.  The Frobenius form
   that follows is left out when it reads the same.  Checked by
   md_steps_check like the other lines of the function. */
void md_steps_typed(md_ctx *ctx, md_derivation *d, md_expr *typed);

/* e with the substitution names (M, N, ...) replaced by what they stand
   for: the derivation's result, expanded, is md_gradient's node. */
md_expr *md_steps_expand(md_ctx *ctx, const md_derivation *d, md_expr *e);

/* The derivation as Unicode text (∘ : ᵀ ∂), identities in the margin. */
void md_steps_text(md_ctx *ctx, const md_derivation *d, md_buf *out);

/* The derivation in LaTeX: the shapes, then align* environments with the
   identities as \tag*{...} at the right margin, rows broken to the
   text width (md_latex_row).  st may be NULL. */
struct md_latex_style;
void md_steps_latex(md_ctx *ctx, const md_derivation *d, const struct md_latex_style *st, md_buf *out);

/*
 * The numerical check of a derivation: on random data (seed), with the
 * substitution symbols set to the values of what they stand for and their
 * differentials to the matching directional derivatives, every equation
 * line of a variable's df chain must equal the first one, and the result
 * line must match md_gradient's gradient.  Returns the worst relative
 * discrepancy, or a negative value if no point in the domain was found.
 */
double md_steps_check(md_ctx *ctx, md_expr *f, const md_derivation *d, unsigned long seed);

#endif
