/*
 * md_print.h -- text output that is itself a valid matdiff program.
 *
 * md_print_expr writes one expression with the fewest parentheses that
 * keep its meaning under the language's precedence (+ -, then * /, then
 * .* ./, then unary -, then ^ .^, then ').  md_print_program writes several
 * results at once and names every non-trivial subexpression that would
 * otherwise be printed twice (also when it appears once as X and once as
 * X'): `T = ...` lines come first, in dependency order, and the results
 * refer to them.  This is what keeps the printed gradient of a deep
 * network linear in its depth.
 */
#ifndef MD_PRINT_H
#define MD_PRINT_H

#include "md_expr.h"

/*
 * The temporaries of a set of results, shared by every printer (text,
 * LaTeX): which nodes get a name, in dependency order, and which nodes
 * print as the transpose of a named one (T').
 */
typedef struct md_temps {
    uint32_t n;            /* size of name[] and transof[] (node ids) */
    const char **name;     /* name[id]: the temporary's name, or NULL */
    md_expr **transof;     /* transof[id]: the node is the transpose of this one */
    md_expr **defs;        /* the named nodes, each after the ones it uses */
    char **owned;          /* owned[k]: the name of defs[k] */
    int ndefs;
    md_expr **scaled;      /* scaled[id]: the node prints as this one, a
                              number times a value the user named (2Xw - 2y
                              as 2*r for r = X*w - y), or NULL */
} md_temps;

void md_print_expr(md_ctx *ctx, md_expr *e, md_buf *out);

/* Precedence levels of the printed forms, loosest first.  PREFIX is the
   Unicode log det(A), an operator applied without parentheses of its
   own, which reaches over whatever follows it (print.c, md_level). */
enum { MD_LEVEL_SUM = 1, MD_LEVEL_PROD, MD_LEVEL_PREFIX, MD_LEVEL_HAD, MD_LEVEL_NEG,
       MD_LEVEL_POW, MD_LEVEL_POST, MD_LEVEL_ATOM };

/* e in the ASCII or the Unicode style (∘ ᵀ Greek letters, juxtaposed
   products, ‖A‖, X⁻¹) with temporaries t (may be NULL), in parentheses if
   its level is below need.  The Unicode style is for reading, not input. */
void md_print_styled(md_ctx *ctx, md_expr *e, int unicode, const md_temps *t, int need, md_buf *out);
/* The same for e written out (its definition), even when t names it. */
void md_print_styled_def(md_ctx *ctx, md_expr *e, int unicode, const md_temps *t, md_buf *out);
int md_print_level(md_ctx *ctx, md_expr *e);
char *md_expr_to_string(md_ctx *ctx, md_expr *e);   /* malloc'd */

/*
 * Writes temporaries and then, for each root, "names[i] = expr" (or just
 * the expression when names[i] is NULL).  avoid lists names the
 * temporaries must not take (NULL-terminated; may be NULL).
 */
void md_print_program(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                      const char *const *names, const char *const *avoid);

/* Flags of the _ex printers.  MD_PRINT_SIZED writes every constant with
   its size (eye(n), vector(1, n), matrix(0, n, p)) and every vector and
   matrix variable in the declarations with its dimensions, for outputs in
   which nothing else would fix a constant's size (sum(matrix(1)) after
   the variable next to it cancelled). */
enum { MD_PRINT_SIZED = 1 };
void md_print_program_ex(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                         const char *const *names, const char *const *avoid, unsigned flags);
/* The same, with the size written only on the constants whose id has
   sized_ids[id] set (ids below nsized); the declarations then need
   MD_PRINT_SIZED. */
void md_print_program_sized(md_ctx *ctx, md_buf *out, int n, md_expr **roots,
                            const char *const *names, const char *const *avoid, unsigned flags,
                            const char *sized_ids, uint32_t nsized);

/* Temporaries.  A value the user named (ctx->bound: r = X*w - y) is
   named by that name wherever it or its transpose is printed, however
   often, and defined among the temporaries, in dependency order; the
   printer's own names (T, T1, ...) differ from every user name, also by
   more than underscores.  Leaves keep their spelling (a = X), and of
   several names for one value the first is used. */
void md_temps_find(md_ctx *ctx, int n, md_expr **roots, const char *const *avoid, md_temps *t);
/* The index in ctx->bound of the name e prints as, or -1. */
int md_user_name_of(const md_ctx *ctx, const md_expr *e);

/* Names equal but for underscores (W1, W_1): LaTeX's subscript rules would
   spell them alike, so temporaries avoid them and md_latex_name spells
   such names as written. */
int md_names_alike(const char *a, const char *b);
/* Is s alike (md_names_alike) a variable or a generic function of ctx? */
int md_name_alike_taken(const md_ctx *ctx, const char *s);

/*
 * How the identity prints in the styles for reading (Unicode derivations
 * and LaTeX), where the text printer writes eye.  It is I, as a paper
 * writes it, unless a variable or function of the program would print
 * alike (md_name_alike_taken(ctx, "I"): a matrix named I); then it is
 * written with its size, I_n (LaTeX I_{n}), the other usual spelling;
 * and if a name is alike that too (a variable I_n), as I_{n×n}
 * (I_{n\times n}), which no name can spell.  The all-ones 1, 1ᵀ, 11ᵀ
 * (\mathbf{1}) and 0 need no such rule: a name starts with a letter or
 * _, so none prints as a digit.  Dimensions are not compared: they only
 * appear inside ℝ^{n×p} and such subscripts, never as a factor.  cache
 * (may be NULL; 0 at first) keeps the answer that does not depend on
 * dim between the calls of one printer.
 */
typedef enum md_eye_form { MD_EYE_PLAIN, MD_EYE_SIZED, MD_EYE_SQUARE } md_eye_form;
md_eye_form md_eye_form_of(const md_ctx *ctx, int dim, int *cache);

/* op ('^' or '_') and s as a Unicode-text script: bare when s is one
   character (ℝ^n, I_n), in braces otherwise (ℝ^{n_obs}), so that the
   script's end is not left to the reader. */
void md_print_script(md_buf *out, char op, const char *s);

/* What the derivations and LaTeX call the function: "f", or, when the
   program has a variable or function f, "ℓ" (latex: "\ell"). */
const char *md_function_name(const md_ctx *ctx, int latex);

/* ---- the printer core, shared by text, LaTeX and C ---------------------- */

/* Transposes in e, counted to depth budget: of X and X', the one with
   fewer is written out. */
unsigned md_count_trans(const md_expr *e, int budget);

/* Pairs each node with its transpose when both are printed: order[0..len)
   are the reachable nodes (ids below n0, reach[id] set), tr[i] the
   transpose of order[i] or NULL (not to pair); sets transof[id] = rep for
   the node that prints as rep'. */
void md_twins_pair(md_ctx *ctx, uint32_t n0, uint32_t len, md_expr *const *order, md_expr *const *tr,
                   const char *reach, md_expr **transof);

/* The coefficient of a term of a sum (1 when it has none). */
void md_term_coef(const md_expr *e, mpq_t c);

/* The order printers write a sum in: positive terms first, then negative
   ones, each group in the sum's order; a term with named[i] set (printed
   by name) counts as positive, and flip negates every sign.  Fills
   order[] and neg[]; returns the number of terms. */
int md_sum_order(const md_expr *sum, const char *named, int flip, int *order, char *neg);
/* The same, naming only nodes of at least min_weight (tree size), and the
   roots too when name_roots is set (a derivation's lines repeat each
   other's right sides). */
void md_temps_find_ex(md_ctx *ctx, int n, md_expr **roots, const char *const *avoid,
                      uint32_t min_weight, int name_roots, md_temps *t);
void md_temps_free(md_temps *t);

/* "X: n×p, U: p×d, x: n, S: n×n symmetric" for the non-scalar variables. */
void md_print_shapes(md_ctx *ctx, md_buf *out);

/* Declaration lines needed for the output to mean the same when read back:
   variables whose type differs from their name's default, and the
   generic functions. */
void md_print_decls(md_ctx *ctx, md_buf *out);
void md_print_decls_ex(md_ctx *ctx, md_buf *out, unsigned flags);

#endif
