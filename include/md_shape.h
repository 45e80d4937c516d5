/*
 * md_shape.h -- names, types and shapes: from the syntax tree to the typed
 * expression graph.
 *
 * md_typecheck resolves every name (declared, defaulted from its first
 * letter as on matrixcalculus.org, or bound by `name = expr`), infers the
 * shape of every subexpression by unifying symbolic dimensions across the
 * whole program, reports the first mismatch at its operator, and then
 * builds the function as an md_expr through the simplifying constructors.
 */
#ifndef MD_SHAPE_H
#define MD_SHAPE_H

#include "md_ast.h"
#include "md_expr.h"

typedef struct md_typed {
    md_expr *f;          /* the function: the last expression statement */
    md_expr *ftyped;     /* the same as typed: operands in the order written,
                            no canonical form (for the derivations' first
                            line and LaTeX; evaluates to f); may be NULL */
    md_loc floc;         /* where it is written */
    char *ftext;         /* its source text on one line (malloc'd) */
    int nbound;          /* the named subexpressions (name = expr), in order */
    const char **bound;  /* their names (in the program's arena) */
    md_expr **bval;      /* their values (malloc'd array) */
} md_typed;

/* Returns 0, or -1 after reporting an error through prog->src. */
int md_typecheck(md_program *prog, md_ctx *ctx, md_typed *out);
void md_typed_free(md_typed *t);

/* The value of the named subexpression `name = ...`, or NULL. */
md_expr *md_typed_bound(const md_typed *t, const char *name);

/* The type a name has when nothing declares it: a-g scalar, h-z vector,
   A-Z matrix, lower-case Greek letter names scalar. */
md_symkind md_default_kind(const char *name);

/* The ASCII name of a Greek letter (0x03BB gives "lambda", 0x0393
   "Gamma"), or NULL: the name the lexer reads the letter as. */
const char *md_greek_name(uint32_t cp);

/* The Greek letter name (a scalar by default) within one or two edits of
   name, when name is not one itself: "lambda" for "lamda"; else NULL. */
const char *md_near_greek(const char *name);

/* Is name a built-in function of the language? */
int md_is_builtin(const char *name);

/* Is name unusable as a variable, a named subexpression or a printed name:
   a built-in, eye, or a declaration keyword? */
int md_is_reserved(const char *name);

#endif
