/*
 * md_latex.h -- LaTeX output (--format latex).
 *
 * The same expressions as the text printer (md_print.h), written the way a
 * paper would: products by juxtaposition (2X^\top(XUV^\top - Y)V), scalar
 * coefficients first, exact rationals as \frac, transposes as ^\top,
 * Hadamard products as \circ, Hadamard powers as B^{\circ k}, norms as
 * \|A\|_F, named temporaries (md_temps, shared with the text printer) as
 * T or T_{1} and their transposes as T^\top.  Everything compiles with
 * plain amsmath; the conventions are documented at the top of src/3_print/latex.c.
 */
#ifndef MD_LATEX_H
#define MD_LATEX_H

#include "md_expr.h"
#include "md_print.h"

typedef struct md_latex_style {
    int transpose_T;   /* ^T instead of ^\top */
    int odot;          /* \odot instead of \circ (also in Hadamard powers) */
} md_latex_style;

/* One expression.  st may be NULL (the default style).  t (may be NULL)
   names temporaries and transposes of temporaries, as md_temps_find
   computed them; e itself is always written out, never replaced by its
   own name (so a temporary's definition prints with this call too). */
void md_latex_expr(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out);

/* The same, but e too by its name when t names it (h, T_{1}^\top). */
void md_latex_ref(md_ctx *ctx, md_expr *e, const md_latex_style *st, const md_temps *t, md_buf *out);

/* The same, as a malloc'd string, without temporaries. */
char *md_latex_to_string(md_ctx *ctx, md_expr *e, const md_latex_style *st);

/* An identifier: Greek names (alpha..omega, varepsilon, vartheta, varphi,
   and Gamma, Delta, Theta, Lambda, Xi, Pi, Sigma, Upsilon, Phi, Psi,
   Omega) as \alpha, \Phi; trailing digits or a _suffix as a subscript
   (W1 -> W_{1}, x_i -> x_{i}, W_10 -> W_{10}, alpha_2 -> \alpha_{2}); other
   multi-letter names as \mathit{name} (underscores escaped).  Names of
   ctx that those rules would spell alike (W1 and W_1) are spelled as
   written instead (\mathit{W1}, \mathit{W\_1}); ctx may be NULL.
   Dimension names are spelled by the same rules (n_obs -> n_{\mathit{obs}},
   n_a_b -> \mathit{n\_a}_{b}) and count among the names of ctx. */
void md_latex_name(const md_ctx *ctx, const char *name, md_buf *out);

/*
 * The whole answer: an align* environment with the function (f = ...,
 * or \ell = ... when the program uses the name f) and one line
 * \frac{\partial f}{\partial U} &= ... per variable; then, when the
 * gradients share temporaries (md_temps_find over the gradients, avoiding
 * the variables' names), "where $T = ...$." for one or "where" and a
 * second align* for several, in dependency order.  f is the function,
 * grads[i] the gradient with respect to symbol wrt[i].
 */
void md_latex_gradients(md_ctx *ctx, md_expr *f, int n, const int *wrt, md_expr **grads,
                        const md_latex_style *st, md_buf *out);

/* The same for any derivative: order 1 with a non-scalar f writes
   \frac{\partial \operatorname{vec} F}{\partial (\operatorname{vec} X)^\top}
   (F or X a vector or scalar: without vec); order 2 has nv*nv results,
   grads[i*nv + j] the block by wrt[i] and wrt[j], written
   \frac{\partial^2 f}{\partial \operatorname{vec} X\,\partial (\operatorname{vec} Y)^\top}.
   typed (may be NULL) is the function as typed (md_typed.ftyped), shown
   for f.  The values the user named (ctx->bound) are defined first, in
   the align*, and written by their names in f and the results. */
void md_latex_derivatives(md_ctx *ctx, md_expr *f, md_expr *typed, int order, int nv, const int *wrt,
                          md_expr **grads, const md_latex_style *st, md_buf *out);

/* How wide the math-mode LaTeX s sets, estimated in points (10 pt
   Computer Modern, erring wide). */
double md_latex_width(const char *s);

/* One row of an align*: "lhs &= body", broken before a top-level + or -
   of body wherever the row would grow wider than article's text (the
   next line starts "&\quad {}+ ..."), and tag (text-mode LaTeX, may be
   NULL) as \tag*{tag}, which amsmath sets flush right, or on a line of
   its own when the row leaves no room for it.  The caller writes the
   " \\" between rows. */
void md_latex_row(md_buf *out, const char *lhs, const char *body, const char *tag);

/* --standalone: body in a complete document that pdflatex compiles with
   amsmath and amssymb only (\documentclass{article} ... \end{document}). */
void md_latex_document(const char *body, md_buf *out);

#endif
