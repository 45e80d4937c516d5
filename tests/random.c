/*
 * random.c -- the random differential tester: well-typed random programs
 * over the whole language, every output read back and checked.
 *
 *     build/tests/random [N [SEED]] [-j JOBS] [-c EVERY] [-v] [-o DIR]
 *     build/tests/random N SEED -p      (print the programs, run nothing)
 *     build/tests/random -f FILE        (check one program from a file)
 *
 * Hand-picked cases only cover what someone thought of.  This program
 * writes programs nobody picked: declarations (some types by default, some
 * not, symmetric matrices, generic functions), named subexpressions,
 * every operator and built-in, integer, decimal and rational constants,
 * matrix powers, constants with and without explicit sizes, transposes of
 * anything, scalars in every position of a product chain, and
 * parentheses only where the grammar needs them (plus some redundant
 * ones).  Every function is kept inside its domain by construction:
 * logarithms and square roots of positive forms (X.^2 + 1, exp(...)),
 * inverses, determinants and log-determinants of G*G' + eye, arcsin of
 * tanh(...)/2, divisions by positive forms.
 *
 * A program is generated as a small typed tree (gnode) that knows its
 * shape and its precedence level, and printed from it; that tree is also
 * what the minimiser shrinks.  Each program is checked in a forked child
 * (a crash or a hang is a failure, not the end of the run), through
 * md_run -- exactly what the command line runs:
 *
 *   1. the gradients by every variable, text, with --check (the driver
 *      reads the printed text back and compares it with central finite
 *      differences of the input), then independently here: the printed
 *      output parsed again and checked against finite differences at
 *      another random point;
 *   2. the gradient by one variable, with --check, and its output fed to
 *      --simplify (it must read back; a different spelling of its last
 *      line is counted, not failed: the canonical form is not a normal
 *      form, and the values are compared anyway);
 *   3. --simplify of the function: the printed text read back must
 *      evaluate to the input's value, and --simplify of that text must
 *      read back again (also for non-scalar functions);
 *   4. --steps --check, and for every fourth program --steps in LaTeX and
 *      --format latex --check;
 *   5. for every EVERY-th program (-c, default 25; 0: never), the
 *      emitted C compiled with -Wall -Wextra -Wpedantic -Werror, run on
 *      the evaluator's data, and its f and gradients compared with the
 *      evaluator (relative 1e-9); for a non-scalar function (as often),
 *      its F, J v, J' u and dense J (md_emit_c_map) the same way;
 *   6. for a non-scalar function (every fifth program), its derivative
 *      d vec(F)/d vec(X)' by every variable with --check, read back;
 *   7. for every third scalar function, the Hessian (--order 2) by one
 *      or two variables with --check (second differences of f), read
 *      back.
 *
 * A program that the typechecker rejects because the size of a constant
 * is left open, or whose function has no point inside its domain, is a
 * skip (counted), not a failure.  A failure is minimised: nodes are
 * replaced by a same-shaped argument or by a leaf, unused named
 * subexpressions and declarations dropped, as long as the same kind of
 * failure remains.  The run prints every failure with its seed, the
 * program and the minimised program, and ends with
 * "random: N programs, P passed, F failed, S skipped (...)"; the exit
 * status is 1 when a program failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "md_ast.h"
#include "md_builtins.h"
#include "md_diag.h"
#include "md_diff.h"
#include "md_driver.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_readback.h"
#include "md_shape.h"
#include "md_simplify.h"

/* ---- random numbers: splitmix64 --------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ---- the program tree ---------------------------------------------------- */

/* Precedence levels of the grammar, loosest first (as in src/3_print/print.c). */
enum { L_SUM = 1, L_PROD, L_HAD, L_NEG, L_POW, L_POST, L_ATOM };

enum { ONE = -1 };   /* the dimension 1 in a shape */

typedef enum { G_LEAF, G_BIN, G_NEG, G_TRANS, G_POW, G_CALL } gkind;

typedef struct gnode gnode;
struct gnode {
    gkind kind;
    int level;            /* the level its text has without parentheses */
    int r, c;             /* shape: dimension index or ONE */
    char text[40];        /* leaf text, operator, or function name (with primes) */
    int nk;
    gnode *k[3];
    int need[3];          /* the least level each argument may have unparenthesised */
    int paren;            /* redundant parentheses */
    int primes;           /* G_TRANS: number of primes (odd) */
    int var;              /* G_LEAF: the variable (or -1) */
    int bind;             /* G_LEAF: the named subexpression referred to (or -1) */
    int nodim;            /* G_LEAF: a constant whose size must come from around it */
};

enum { MAXDIMS = 4, MAXVARS = 24, MAXBINDS = 4, MAXFUNCS = 2, NODECAP = 4096 };

typedef struct gvar {
    char name[16];
    md_symkind kind;
    int r, c;
    int declare;          /* declared (else its type is its name's default) */
} gvar;

typedef struct gbind {
    char name[16];
    gnode *e;
} gbind;

typedef struct gprog {
    uint64_t rng;
    int ndims;
    const char *dims[MAXDIMS];
    gvar vars[MAXVARS];
    int nvars;
    gbind binds[MAXBINDS];
    int nbinds;
    int nfuncs;
    const char *funcs[MAXFUNCS];
    gnode *f;             /* the function */
    gnode pool[NODECAP];  /* every node, so a program is freed with it */
    int nnodes;
    int budget;           /* nodes left to generate */
    const char *sep;      /* statement separator */
    int comment;          /* a comment line somewhere */
} gprog;

static int rn(gprog *g, int n) { return (int)(rnd(&g->rng) % (uint64_t)n); }
static int chance(gprog *g, int percent) { return rn(g, 100) < percent; }

static gnode *node(gprog *g, gkind kind, int level, int r, int c)
{
    if (g->nnodes == NODECAP) {
        fprintf(stderr, "random: node pool exhausted\n");
        exit(3);
    }
    gnode *n = &g->pool[g->nnodes++];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->level = level;
    n->r = r;
    n->c = c;
    n->var = n->bind = -1;
    return n;
}

static int is_scalar(const gnode *n) { return n->r == ONE && n->c == ONE; }

static gnode *leaf(gprog *g, const char *text, int r, int c)
{
    gnode *n = node(g, G_LEAF, L_ATOM, r, c);
    snprintf(n->text, sizeof n->text, "%s", text);
    return n;
}

/* a op b with the shapes already known to fit; (r, c) is the result. */
static gnode *bin(gprog *g, const char *op, gnode *a, gnode *b, int r, int c)
{
    int level = (!strcmp(op, "+") || !strcmp(op, "-")) ? L_SUM
                : (!strcmp(op, "*") || !strcmp(op, "/")) ? L_PROD
                                                         : L_HAD;
    gnode *n = node(g, G_BIN, level, r, c);
    snprintf(n->text, sizeof n->text, "%s", op);
    n->nk = 2;
    n->k[0] = a;
    n->k[1] = b;
    n->need[0] = level;       /* left-associative chains */
    n->need[1] = level + 1;
    return n;
}

static gnode *neg(gprog *g, gnode *a)
{
    gnode *n = node(g, G_NEG, L_NEG, a->r, a->c);
    n->nk = 1;
    n->k[0] = a;
    n->need[0] = L_NEG;
    return n;
}

static gnode *trans(gprog *g, gnode *a)
{
    if (is_scalar(a) && chance(g, 70)) return a;
    gnode *n = node(g, G_TRANS, L_POST, a->c, a->r);
    n->nk = 1;
    n->k[0] = a;
    n->need[0] = L_ATOM;
    n->primes = chance(g, 90) ? 1 : 3;
    return n;
}

/* base op exponent: op is "^" or ".^" */
static gnode *power(gprog *g, const char *op, gnode *base, gnode *ex)
{
    gnode *n = node(g, G_POW, L_POW, base->r, base->c);
    snprintf(n->text, sizeof n->text, "%s", op);
    n->nk = 2;
    n->k[0] = base;
    n->k[1] = ex;
    n->need[0] = L_POST;
    n->need[1] = L_NEG;
    return n;
}

static gnode *call(gprog *g, const char *fn, int r, int c, int nk, gnode *a0, gnode *a1, gnode *a2)
{
    gnode *n = node(g, G_CALL, L_ATOM, r, c);
    snprintf(n->text, sizeof n->text, "%s", fn);
    n->nk = nk;
    n->k[0] = a0;
    n->k[1] = a1;
    n->k[2] = a2;
    n->need[0] = n->need[1] = n->need[2] = L_SUM;
    return n;
}

static gnode *num(gprog *g, const char *text) { return leaf(g, text, ONE, ONE); }

/* ---- printing ------------------------------------------------------------- */

static void print_node(const gprog *g, const gnode *n, int need, md_buf *b);

static void print_kid(const gprog *g, const gnode *n, int i, md_buf *b) { print_node(g, n->k[i], n->need[i], b); }

static void print_node(const gprog *g, const gnode *n, int need, md_buf *b)
{
    int paren = n->level < need || n->paren;
    if (paren) md_buf_putc(b, '(');
    switch (n->kind) {
    case G_LEAF: md_buf_puts(b, n->text); break;
    case G_BIN: {
        print_kid(g, n, 0, b);
        int spaced = n->level == L_SUM || (n->text[0] == '.' ? 0 : (n->r ^ n->c) & 1);
        md_buf_printf(b, spaced ? " %s " : "%s", n->text);
        print_kid(g, n, 1, b);
        break;
    }
    case G_NEG:
        md_buf_putc(b, '-');
        print_kid(g, n, 0, b);
        break;
    case G_TRANS:
        print_kid(g, n, 0, b);
        for (int i = 0; i < n->primes; i++) md_buf_putc(b, '\'');
        break;
    case G_POW:
        print_kid(g, n, 0, b);
        md_buf_puts(b, n->text);
        print_kid(g, n, 1, b);
        break;
    case G_CALL:
        md_buf_printf(b, "%s(", n->text);
        for (int i = 0; i < n->nk; i++) {
            if (i) md_buf_puts(b, ", ");
            print_kid(g, n, i, b);
        }
        md_buf_putc(b, ')');
        break;
    }
    if (paren) md_buf_putc(b, ')');
}

/* Which variables, bindings and functions the text under n uses. */
static void uses(const gprog *g, const gnode *n, char *vars, char *binds, char *funcs)
{
    if (n->kind == G_LEAF && n->var >= 0) vars[n->var] = 1;
    if (n->kind == G_LEAF && n->bind >= 0 && !binds[n->bind]) {
        binds[n->bind] = 1;
        uses(g, g->binds[n->bind].e, vars, binds, funcs);
    }
    if (n->kind == G_CALL)
        for (int k = 0; k < g->nfuncs; k++)
            if (!strncmp(n->text, g->funcs[k], strlen(g->funcs[k])) &&
                (n->text[strlen(g->funcs[k])] == 0 || n->text[strlen(g->funcs[k])] == '\''))
                funcs[k] = 1;
    for (int i = 0; i < n->nk; i++) uses(g, n->k[i], vars, binds, funcs);
}

static const char *dimname(const gprog *g, int d) { return g->dims[d]; }

/* The program text: declarations, named subexpressions, the function. */
static char *print_prog(const gprog *g)
{
    char vars[MAXVARS] = {0}, binds[MAXBINDS] = {0}, funcs[MAXFUNCS] = {0};
    uses(g, g->f, vars, binds, funcs);
    if (g->nbinds && !binds[g->nbinds - 1]) {
        /* the last named subexpression is printed even when unused */
        binds[g->nbinds - 1] = 1;
        uses(g, g->binds[g->nbinds - 1].e, vars, binds, funcs);
    }
    md_buf b = {0};
    if (g->comment) md_buf_puts(&b, "# a random program\n");
    static const char *const kw[] = {"scalar", "vector", "matrix", "symmetric"};
    for (int k = 0; k < 4; k++) {
        int first = 1;
        for (int i = 0; i < g->nvars; i++) {
            const gvar *v = &g->vars[i];
            if ((int)v->kind != k || !v->declare || !vars[i]) continue;
            md_buf_printf(&b, "%s%s", first ? kw[k] : ", ", first ? " " : "");
            md_buf_puts(&b, v->name);
            if (k == MD_SYM_VECTOR) md_buf_printf(&b, "(%s)", dimname(g, v->r));
            else if (k == MD_SYM_MATRIX) md_buf_printf(&b, "(%s, %s)", dimname(g, v->r), dimname(g, v->c));
            else if (k == MD_SYM_SYMMETRIC) md_buf_printf(&b, "(%s)", dimname(g, v->r));
            first = 0;
        }
        if (!first) md_buf_puts(&b, g->sep);
    }
    int anyf = 0;
    for (int k = 0; k < g->nfuncs; k++)
        if (funcs[k]) {
            md_buf_printf(&b, "%s%s", anyf ? ", " : "function ", g->funcs[k]);
            anyf = 1;
        }
    if (anyf) md_buf_puts(&b, g->sep);
    for (int i = 0; i < g->nbinds; i++) {
        if (!binds[i] && i != g->nbinds - 1) continue;   /* the last one stays, used or not */
        md_buf_printf(&b, "%s = ", g->binds[i].name);
        print_node(g, g->binds[i].e, 0, &b);
        md_buf_puts(&b, g->sep);
    }
    print_node(g, g->f, 0, &b);
    md_buf_putc(&b, '\n');
    return md_buf_take(&b);
}

/* ---- the generator ---------------------------------------------------------- */

static const char *const scalar_names[] = {"a", "b", "c", "d", "e", "alpha", "beta", "lambda", "mu", "tau", "theta"};
static const char *const vector_names[] = {"x", "y", "z", "u", "v", "w", "p", "q", "r", "s", "t"};
static const char *const matrix_names[] = {"A", "B", "C", "X", "Y", "W", "U", "V", "M", "P", "Q", "R"};
/* names whose default type differs: declared */
static const char *const odd_names[] = {"k", "gamma", "sigma", "h", "x0", "Lam", "g1", "b2"};
#define NELEMS(a) ((int)(sizeof a / sizeof a[0]))

static int name_used(const gprog *g, const char *name)
{
    for (int i = 0; i < g->nvars; i++)
        if (!strcmp(g->vars[i].name, name)) return 1;
    for (int i = 0; i < g->nbinds; i++)
        if (!strcmp(g->binds[i].name, name)) return 1;
    for (int i = 0; i < g->nfuncs; i++)
        if (!strcmp(g->funcs[i], name)) return 1;
    return 0;
}

/* A variable of shape (r, c) (symmetric when sym), made if needed. */
static int var_of(gprog *g, int r, int c, int sym)
{
    int cand[MAXVARS], nc = 0;
    for (int i = 0; i < g->nvars; i++) {
        const gvar *v = &g->vars[i];
        if (v->r == r && v->c == c && (v->kind == MD_SYM_SYMMETRIC) == sym) cand[nc++] = i;
    }
    if (nc && (g->nvars >= MAXVARS || chance(g, 75))) return cand[rn(g, nc)];
    if (g->nvars >= MAXVARS) return -1;
    gvar *v = &g->vars[g->nvars];
    memset(v, 0, sizeof *v);
    md_symkind kind = r == ONE && c == ONE ? MD_SYM_SCALAR : c == ONE ? MD_SYM_VECTOR
                      : sym                ? MD_SYM_SYMMETRIC
                                           : MD_SYM_MATRIX;
    const char *nm = NULL;
    for (int tries = 0; tries < 40 && !nm; tries++) {
        const char *cand_name;
        if (chance(g, 12)) cand_name = odd_names[rn(g, NELEMS(odd_names))];
        else if (kind == MD_SYM_SCALAR) cand_name = scalar_names[rn(g, NELEMS(scalar_names))];
        else if (kind == MD_SYM_VECTOR) cand_name = vector_names[rn(g, NELEMS(vector_names))];
        else cand_name = matrix_names[rn(g, NELEMS(matrix_names))];
        if (!name_used(g, cand_name)) nm = cand_name;
    }
    char buf[16];
    if (!nm) {
        snprintf(buf, sizeof buf, "%c%d", kind == MD_SYM_SCALAR ? 'a' : kind == MD_SYM_VECTOR ? 'x' : 'A', g->nvars);
        nm = buf;
    }
    snprintf(v->name, sizeof v->name, "%s", nm);
    v->kind = kind;
    v->r = r;
    v->c = c;
    /* the default type is kept undeclared a third of the time */
    v->declare = kind == MD_SYM_SYMMETRIC || md_default_kind(v->name) != kind || chance(g, 65);
    return g->nvars++;
}

static gnode *var_leaf(gprog *g, int r, int c, int sym)
{
    if (r == ONE && c != ONE) {
        /* a row vector is a transposed vector */
        gnode *v = var_leaf(g, c, ONE, 0);
        if (!v) return NULL;
        gnode *n = node(g, G_TRANS, L_POST, r, c);
        n->nk = 1;
        n->k[0] = v;
        n->need[0] = L_ATOM;
        n->primes = 1;
        return n;
    }
    int i = var_of(g, r, c, sym && r == c && r != ONE);
    if (i < 0) return NULL;
    gnode *n = leaf(g, g->vars[i].name, r, c);
    n->var = i;
    return n;
}

static gnode *gen(gprog *g, int r, int c, int depth);

static const char *const numbers[] = {"2", "3", "0.5", "1.5", "2.5e-1", "10", "0.1", "1e-1", "7", "4", "1", "1"};

static gnode *number(gprog *g)
{
    if (chance(g, 15)) {
        /* a rational: 1/3, 2/7 as a division */
        static const char *const nums[] = {"1", "2", "3"}, *const dens[] = {"3", "7", "4"};
        return bin(g, "/", num(g, nums[rn(g, 3)]), num(g, dens[rn(g, 3)]), ONE, ONE);
    }
    return num(g, numbers[rn(g, NELEMS(numbers))]);
}

/* A constant of shape (r, c): vector(c), matrix(c), eye -- sized or not. */
static gnode *constant(gprog *g, int r, int c)
{
    int sized = chance(g, 50);
    gnode *v = chance(g, 60) ? num(g, "1") : number(g);
    if (r != ONE && c == ONE) {
        gnode *n = sized ? call(g, "vector", r, c, 2, v, leaf(g, dimname(g, r), ONE, ONE), NULL)
                         : call(g, "vector", r, c, 1, v, NULL, NULL);
        n->nodim = !sized;
        return n;
    }
    if (r == ONE && c != ONE) {
        gnode *t = constant(g, c, ONE);
        gnode *n = node(g, G_TRANS, L_POST, r, c);
        n->nk = 1;
        n->k[0] = t;
        n->need[0] = L_ATOM;
        n->primes = 1;
        return n;
    }
    if (r == c && chance(g, 40)) {
        gnode *e = sized ? call(g, "eye", r, c, 1, leaf(g, dimname(g, r), ONE, ONE), NULL, NULL)
                         : leaf(g, "eye", r, c);
        e->nodim = !sized;
        return chance(g, 50) ? e : bin(g, "*", number(g), e, r, c);
    }
    gnode *n = sized ? call(g, "matrix", r, c, 3, v, leaf(g, dimname(g, r), ONE, ONE),
                            leaf(g, dimname(g, c), ONE, ONE))
                     : call(g, "matrix", r, c, 1, v, NULL, NULL);
    n->nodim = !sized;
    return n;
}

static int rdim(gprog *g) { return rn(g, g->ndims); }
static int rdim1(gprog *g) { return chance(g, 25) ? ONE : rdim(g); }

static gnode *idiom(gprog *g, int r, int c);

static gnode *gleaf(gprog *g, int r, int c, int depth_left)
{
    if (depth_left > 0 && chance(g, 35)) {
        gnode *i = idiom(g, r, c);
        if (i) return i;
    }
    /* a named subexpression of this shape */
    if (g->nbinds && chance(g, 45)) {
        int cand[MAXBINDS], nc = 0;
        for (int i = 0; i < g->nbinds; i++)
            if (g->binds[i].e->r == r && g->binds[i].e->c == c) cand[nc++] = i;
        if (nc) {
            int i = cand[rn(g, nc)];
            gnode *n = leaf(g, g->binds[i].name, r, c);
            n->bind = i;
            return n;
        }
    }
    if (r == ONE && c == ONE) {
        if (depth_left > 0 && chance(g, 30)) {
            /* an inner product x'*y (or x'*A*y) where a scalar is wanted */
            int d = rdim(g);
            gnode *v = var_leaf(g, d, ONE, 0);
            if (!v) return number(g);
            gnode *a = trans(g, v);
            if (chance(g, 60)) return bin(g, "*", a, gleaf(g, d, ONE, 0), ONE, ONE);
            int e = rdim(g);
            return bin(g, "*", bin(g, "*", a, gleaf(g, d, e, 0), ONE, e), gleaf(g, e, ONE, 0), ONE, ONE);
        }
        return chance(g, 55) ? var_leaf(g, r, c, 0) : number(g);
    }
    if (chance(g, 10)) return constant(g, r, c);
    if (r == ONE) {
        gnode *v = var_leaf(g, c, ONE, 0);   /* a row vector is a transposed vector */
        if (!v) return constant(g, r, c);
        gnode *n = node(g, G_TRANS, L_POST, r, c);
        n->nk = 1;
        n->k[0] = v;
        n->need[0] = L_ATOM;
        n->primes = 1;
        return n;
    }
    if (c != ONE && chance(g, 15)) {
        /* X' for an X of the other shape */
        gnode *v = var_leaf(g, c, r, 0);
        if (v) {
            gnode *n = node(g, G_TRANS, L_POST, r, c);
            n->nk = 1;
            n->k[0] = v;
            n->need[0] = L_ATOM;
            n->primes = 1;
            return n;
        }
    }
    gnode *v = var_leaf(g, r, c, r == c && c != ONE && chance(g, 25));
    return v ? v : constant(g, r, c);
}


/* Entrywise positive values of shape (r, c). */
static gnode *positive(gprog *g, int r, int c, int depth)
{
    /* a variable alone: --check draws positive values for a variable
       that occurs under log, sqrt or a fractional power */
    if (chance(g, 30)) {
        gnode *v = var_leaf(g, r, c, 0);
        if (v) return v;
    }
    gnode *x = gen(g, r, c, depth);
    int s = r == ONE && c == ONE;
    switch (rn(g, 5)) {
    case 0: return call(g, "exp", r, c, 1, call(g, chance(g, 50) ? "tanh" : "sin", r, c, 1, x, NULL, NULL), NULL, NULL);
    case 1: return bin(g, "+", power(g, s && chance(g, 50) ? "^" : ".^", x, num(g, "2")), s ? num(g, "1") : number(g), r, c);
    case 2: return bin(g, "+", number(g), call(g, "abs", r, c, 1, x, NULL, NULL), r, c);
    case 3: return call(g, "sqrt", r, c, 1, bin(g, "+", power(g, ".^", x, num(g, "2")), num(g, "1"), r, c), NULL, NULL);
    default:
        if (s) return bin(g, "+", power(g, "^", call(g, "norm2", ONE, ONE, 1, gen(g, rdim(g), rdim1(g), depth), NULL, NULL), num(g, "2")), num(g, "1"), r, c);
        return call(g, "exp", r, c, 1, bin(g, "/", x, num(g, "4"), r, c), NULL, NULL);
    }
}

/* Values inside (-1, 1): for arcsin and arccos. */
static gnode *unit(gprog *g, int r, int c, int depth)
{
    if (chance(g, 20)) {
        gnode *v = var_leaf(g, r, c, 0);   /* drawn inside (0.1, 0.6) */
        if (v) return v;
    }
    gnode *x = gen(g, r, c, depth);
    return bin(g, "/", call(g, chance(g, 50) ? "tanh" : "sin", r, c, 1, x, NULL, NULL), num(g, "2"), r, c);
}

/* A symmetric positive definite n x n matrix: G*G' + eye and friends. */
static gnode *spd(gprog *g, int d, int depth)
{
    if (chance(g, 20)) {
        gnode *v = var_leaf(g, d, d, chance(g, 50));   /* drawn positive definite */
        if (v) return v;
    }
    int k = rdim1(g);
    gnode *G = gen(g, d, k, depth);
    gnode *gg = bin(g, "*", G, trans(g, G), d, d);
    gnode *id = chance(g, 50) ? leaf(g, "eye", d, d) : call(g, "eye", d, d, 1, leaf(g, dimname(g, d), ONE, ONE), NULL, NULL);
    if (chance(g, 30)) id = bin(g, "*", num(g, "2"), id, d, d);
    if (chance(g, 20)) {
        int sv = var_of(g, d, d, 1);
        if (sv >= 0) {
            /* S*S + eye for a symmetric S */
            gnode *S = leaf(g, g->vars[sv].name, d, d);
            S->var = sv;
            gg = bin(g, "*", S, S, d, d);
        }
    }
    return chance(g, 50) ? bin(g, "+", gg, id, d, d) : bin(g, "+", id, gg, d, d);
}

/*
 * The small forms objectives are made of -- x'*y, sum(log(x)),
 * norm2(A*x - y)^2, log(x), 1./x, A*x, x.*y, inv(S), x*y' -- with plain
 * variables, so that their combinations give the gradients textbooks
 * have (and the printer's trickiest cases: (x'*y)./z, a*inv(S)*x, ...).
 * Variables under log, sqrt, 1./ and inv are drawn inside their domain
 * by --check.  NULL when no idiom fits the shape.
 */
static gnode *idiom(gprog *g, int r, int c)
{
    int s = r == ONE && c == ONE;
    if (s) {
        int d = rdim(g), e = rdim(g);
        gnode *x = var_leaf(g, d, ONE, 0), *y = var_leaf(g, d, ONE, 0);
        if (!x || !y) return NULL;
        switch (rn(g, 10)) {
        case 0: return bin(g, "*", trans(g, x), y, ONE, ONE);
        case 1: {
            gnode *A = var_leaf(g, d, e, 0), *z = var_leaf(g, e, ONE, 0);
            if (!A || !z) return NULL;
            return bin(g, "*", bin(g, "*", trans(g, x), A, ONE, e), z, ONE, ONE);
        }
        case 2: return call(g, "sum", ONE, ONE, 1, call(g, chance(g, 50) ? "log" : "exp", d, ONE, 1, x, NULL, NULL), NULL, NULL);
        case 3: return power(g, "^", call(g, "norm2", ONE, ONE, 1, x, NULL, NULL), num(g, "2"));
        case 4: {
            gnode *A = var_leaf(g, d, e, 0), *z = var_leaf(g, e, ONE, 0);
            if (!A || !z) return NULL;
            return power(g, "^", call(g, "norm2", ONE, ONE, 1, bin(g, "-", bin(g, "*", A, z, d, ONE), x, d, ONE), NULL, NULL), num(g, "2"));
        }
        case 5: {
            gnode *A = var_leaf(g, d, e, 0), *B = var_leaf(g, e, d, 0);
            if (!A || !B) return NULL;
            return call(g, "tr", ONE, ONE, 1, bin(g, "*", A, B, d, d), NULL, NULL);
        }
        case 6: {
            gnode *S = var_leaf(g, d, d, chance(g, 60));
            if (!S) return NULL;
            return call(g, chance(g, 70) ? "logdet" : "det", ONE, ONE, 1, S, NULL, NULL);
        }
        case 7: return call(g, "sum", ONE, ONE, 1, bin(g, "./", x, y, d, ONE), NULL, NULL);
        case 8: {
            gnode *a = var_leaf(g, ONE, ONE, 0), *b = var_leaf(g, ONE, ONE, 0);
            if (!a || !b) return NULL;
            return chance(g, 50) ? bin(g, "*", a, b, ONE, ONE) : call(g, "log", ONE, ONE, 1, a, NULL, NULL);
        }
        default: {
            gnode *a = var_leaf(g, ONE, ONE, 0);
            if (!a) return NULL;
            return bin(g, "/", number(g), a, ONE, ONE);
        }
        }
    }
    if (c == ONE) {
        gnode *x = var_leaf(g, r, ONE, 0), *y = var_leaf(g, r, ONE, 0);
        if (!x || !y) return NULL;
        int e = rdim(g);
        switch (rn(g, 13)) {
        case 11:   /* softmax written out: exp(x)/sum(exp(x)) */
            if (r == ONE) return NULL;
            return bin(g, "/", call(g, "exp", r, c, 1, x, NULL, NULL),
                       call(g, "sum", ONE, ONE, 1, call(g, "exp", r, c, 1, x, NULL, NULL), NULL, NULL), r, c);
        case 12:   /* sigmoid written out: 1./(1 + exp(-x)) */
            return bin(g, "./", num(g, "1"),
                       bin(g, "+", num(g, "1"), call(g, "exp", r, c, 1, neg(g, x), NULL, NULL), r, c), r, c);
        case 0: return call(g, "log", r, c, 1, x, NULL, NULL);
        case 1: return call(g, "exp", r, c, 1, x, NULL, NULL);
        case 2: return bin(g, "./", num(g, "1"), x, r, c);
        case 3: return power(g, ".^", x, num(g, "2"));
        case 4: return call(g, "sqrt", r, c, 1, x, NULL, NULL);
        case 5: {
            gnode *A = var_leaf(g, r, e, 0), *z = var_leaf(g, e, ONE, 0);
            if (!A || !z) return NULL;
            gnode *Az = bin(g, "*", A, z, r, c);
            return chance(g, 50) ? Az : call(g, "tanh", r, c, 1, Az, NULL, NULL);
        }
        case 6: return bin(g, "./", x, y, r, c);
        case 7: return bin(g, ".*", x, y, r, c);
        case 8: {
            gnode *a = var_leaf(g, ONE, ONE, 0);
            if (!a) return NULL;
            return chance(g, 50) ? bin(g, "*", a, x, r, c) : bin(g, "/", x, a, r, c);
        }
        case 9: {
            gnode *S = var_leaf(g, r, r, chance(g, 60));
            if (!S) return NULL;
            return bin(g, "*", call(g, "inv", r, r, 1, S, NULL, NULL), x, r, c);
        }
        default: return bin(g, "*", bin(g, "*", x, trans(g, y), r, r), y, r, c);
        }
    }
    if (r == ONE) return NULL;
    gnode *X = var_leaf(g, r, c, 0), *Y = var_leaf(g, r, c, 0);
    if (!X || !Y) return NULL;
    switch (rn(g, 8)) {
    case 0: {
        int k = rdim(g);
        gnode *A = var_leaf(g, r, k, 0), *B = var_leaf(g, k, c, 0);
        if (!A || !B) return NULL;
        return bin(g, "*", A, B, r, c);
    }
    case 1: return bin(g, ".*", X, Y, r, c);
    case 2: return bin(g, "./", X, Y, r, c);
    case 3: return call(g, "log", r, c, 1, X, NULL, NULL);
    case 4: {
        gnode *x = var_leaf(g, r, ONE, 0), *y = var_leaf(g, c, ONE, 0);
        if (!x || !y) return NULL;
        return bin(g, "*", x, trans(g, y), r, c);
    }
    case 5:
        if (r == c) return call(g, "inv", r, c, 1, var_leaf(g, r, c, chance(g, 60)), NULL, NULL);
        return trans(g, var_leaf(g, c, r, 0));
    case 6:
        if (r == c) {
            gnode *x = var_leaf(g, r, ONE, 0);
            if (!x) return NULL;
            return call(g, "diag", r, c, 1, x, NULL, NULL);
        }
        return bin(g, "-", X, Y, r, c);
    default: return bin(g, "*", var_leaf(g, ONE, ONE, 0) ? var_leaf(g, ONE, ONE, 0) : num(g, "2"), X, r, c);
    }
}

/* A random elementwise function of the table (md_builtins.def), with
   or without a kink at 0. */
static md_fn table_fn(gprog *g, int kink)
{
    for (;;) {
        md_fn fn = (md_fn)rn(g, MD_FN_GENERIC);
        if (((md_fns[fn].flags & MD_FNF_KINK) != 0) == kink) return fn;
    }
}

/*
 * Which production of gen to use: weights per production for scalars and
 * for everything else, so that scalars are mostly what objectives are
 * made of (reductions, inner products, products and quotients of scalars)
 * and vectors and matrices mostly elementwise functions, Hadamard
 * products and products.
 */
static int pick(gprog *g, int scalar)
{
    /*                          sum   prod      /  .*  fn dom kink gen neg  '  ^ inv diag cst reductions */
    static const int ws[22] = {5, 5, 5, 5, 5, 7, 0, 5, 6, 2, 3, 3, 1, 4, 3, 1, 0, 8, 8, 8, 8, 8};
    static const int wm[22] = {6, 6, 6, 6, 6, 4, 12, 8, 10, 3, 4, 3, 5, 5, 4, 3, 3, 1, 1, 0, 0, 0};
    const int *w = scalar ? ws : wm;
    int total = 0;
    for (int i = 0; i < 22; i++) total += w[i];
    int x = rn(g, total);
    for (int i = 0; i < 22; i++) {
        if (x < w[i]) return i;
        x -= w[i];
    }
    return 0;
}

/* An expression of shape (r, c), about depth levels deep. */
static gnode *gen(gprog *g, int r, int c, int depth)
{
    if (depth <= 0 || g->budget-- <= 0 || chance(g, 12)) return gleaf(g, r, c, depth);
    int s = r == ONE && c == ONE;
    int sq = r == c && r != ONE;
    int d1 = depth - 1;
    for (;;) {
        switch (pick(g, s)) {
        case 0:
        case 1: {   /* sums, with a broadcast scalar now and then */
            const char *op = chance(g, 60) ? "+" : "-";
            gnode *a = !s && chance(g, 12) ? gen(g, ONE, ONE, d1) : gen(g, r, c, d1);
            gnode *b = !s && !is_scalar(a) && chance(g, 12) ? gen(g, ONE, ONE, d1) : gen(g, r, c, d1);
            return bin(g, op, a, b, r, c);
        }
        case 2:
        case 3:
        case 4: {   /* products: inner dimension any, or a scalar factor anywhere */
            int k = rdim1(g);
            if (chance(g, 2)) {
                /* a chain longer than the simplifier splices (32 factors),
                   with a coefficient: leaves only, scaled to stay finite */
                int len = 30 + rn(g, 8);
                gnode *ch = bin(g, "/", gleaf(g, r, k, 0), num(g, "2"), r, k);
                int at = k;
                for (int i = 1; i < len; i++) {
                    int nx = i == len - 1 ? c : (chance(g, 50) ? r : k);
                    gnode *v = var_leaf(g, at, nx, 0);   /* variables: constants such as
                                                           matrix(1) make the chain explode */
                    ch = bin(g, "*", ch, v ? v : gleaf(g, at, nx, 0), r, nx);
                    at = nx;
                }
                return chance(g, 50) ? neg(g, bin(g, "*", num(g, "3"), ch, r, c)) : ch;
            }
            if (chance(g, 35)) {
                gnode *sc = gen(g, ONE, ONE, d1), *m = gen(g, r, c, d1);
                return chance(g, 50) ? bin(g, "*", sc, m, r, c) : bin(g, "*", m, sc, r, c);
            }
            gnode *a = gen(g, r, k, d1), *b = gen(g, k, c, d1);
            return bin(g, "*", a, b, r, c);
        }
        case 5:     /* division by a positive scalar */
            return bin(g, "/", gen(g, r, c, d1), positive(g, ONE, ONE, d1 - 1), r, c);
        case 6:     /* Hadamard products and quotients */
            if (s) continue;
            if (chance(g, 40)) return bin(g, "./", gen(g, r, c, d1), positive(g, r, c, d1 - 1), r, c);
            return bin(g, ".*", gen(g, r, c, d1), gen(g, r, c, d1), r, c);
        case 7:
        case 8: {   /* elementwise functions of the table, inside their domains */
            if (chance(g, 15)) return power(g, ".^", positive(g, r, c, d1), num(g, chance(g, 50) ? "0.5" : "-1"));
            md_fn fn = table_fn(g, 0);
            const char *nm = md_fns[fn].name;
            switch (md_fns[fn].domain) {
            case MD_DOM_POS: return call(g, nm, r, c, 1, positive(g, r, c, d1), NULL, NULL);
            case MD_DOM_UNIT: return call(g, nm, r, c, 1, unit(g, r, c, d1), NULL, NULL);
            case MD_DOM_ANY:
            case MD_DOM_SPD: break;
            }
            return call(g, nm, r, c, 1,
                        chance(g, 50) ? gen(g, r, c, d1) : bin(g, "/", gen(g, r, c, d1), num(g, "3"), r, c), NULL, NULL);
        }
        case 9:     /* functions with a kink at 0 */
            if (chance(g, 50)) continue;
            return call(g, md_fns[table_fn(g, 1)].name, r, c, 1, gen(g, r, c, d1), NULL, NULL);
        case 10: {  /* generic functions and their derivatives */
            if (!g->nfuncs) continue;
            char fn[32];
            int pr = rn(g, 4) == 0 ? 1 + rn(g, 2) : 0;
            snprintf(fn, sizeof fn, "%s%s", g->funcs[rn(g, g->nfuncs)], pr == 0 ? "" : pr == 1 ? "'" : "''");
            return call(g, fn, r, c, 1, gen(g, r, c, d1), NULL, NULL);
        }
        case 11:    /* unary minus */
            return neg(g, gen(g, r, c, d1));
        case 12:    /* transposes */
            return trans(g, gen(g, c, r, d1));
        case 13:    /* integer powers, and powers with an expression as exponent */
            if (chance(g, 25)) {
                gnode *ex = chance(g, 50) ? gen(g, ONE, ONE, d1 - 1) : neg(g, gen(g, ONE, ONE, d1 - 1));
                if (!s && chance(g, 40)) ex = gen(g, r, c, d1 - 1);
                return power(g, s ? "^" : ".^", positive(g, r, c, d1 - 1), ex);
            }
            if (s) return power(g, "^", gen(g, r, c, d1), num(g, chance(g, 50) ? "2" : "3"));
            if (sq && chance(g, 4)) {
                /* powers near the language's limit, nested: (X^9)^8 must
                   not become X^72, which cannot be written */
                gnode *in = power(g, "^", bin(g, "/", gleaf(g, r, c, 0), num(g, "3"), r, c), num(g, "9"));
                return power(g, "^", in, num(g, chance(g, 50) ? "8" : "7"));
            }
            if (sq && chance(g, 50)) return power(g, "^", gen(g, r, c, d1), num(g, chance(g, 70) ? "2" : "3"));
            return power(g, ".^", gen(g, r, c, d1), num(g, chance(g, 70) ? "2" : "3"));
        case 14:    /* inverses */
            if (s) return bin(g, "/", number(g), positive(g, ONE, ONE, d1), ONE, ONE);
            if (!sq) continue;
            if (chance(g, 50)) return call(g, "inv", r, c, 1, spd(g, r, d1 - 1), NULL, NULL);
            return power(g, "^", spd(g, r, d1 - 1), num(g, chance(g, 60) ? "-1" : "-2"));
        case 15:    /* diag both ways */
            if (sq) return call(g, "diag", r, c, 1, gen(g, r, ONE, d1), NULL, NULL);
            if (c == ONE && r != ONE) {
                /* and softmax, a vector of a vector */
                if (chance(g, 30)) return call(g, "softmax", r, c, 1, gen(g, r, ONE, d1), NULL, NULL);
                return call(g, "diag", r, c, 1, gen(g, r, r, d1), NULL, NULL);
            }
            continue;
        case 16:    /* vector(s), matrix(s) of a scalar expression */
            if (s) continue;
            if (chance(g, 50)) {
                gnode *v = gen(g, ONE, ONE, d1);
                int sized = chance(g, 50);
                if (c == ONE) {
                    gnode *n = sized ? call(g, "vector", r, c, 2, v, leaf(g, dimname(g, r), ONE, ONE), NULL)
                                     : call(g, "vector", r, c, 1, v, NULL, NULL);
                    n->nodim = !sized;
                    return n;
                }
                if (r != ONE) {
                    gnode *n = sized ? call(g, "matrix", r, c, 3, v, leaf(g, dimname(g, r), ONE, ONE),
                                            leaf(g, dimname(g, c), ONE, ONE))
                                     : call(g, "matrix", r, c, 1, v, NULL, NULL);
                    n->nodim = !sized;
                    return n;
                }
            }
            return constant(g, r, c);
        default:    /* scalars: reductions, inner products, determinants */
            if (!s) {
                if (chance(g, 70)) continue;
                return gleaf(g, r, c, depth);
            }
            switch (rn(g, 9)) {
            case 0: return call(g, "sum", ONE, ONE, 1, gen(g, rdim1(g), rdim1(g), d1), NULL, NULL);
            case 1: return call(g, "norm1", ONE, ONE, 1, gen(g, rdim(g), rdim1(g), d1), NULL, NULL);
            case 2: {
                gnode *n2 = call(g, "norm2", ONE, ONE, 1, gen(g, rdim(g), rdim1(g), d1), NULL, NULL);
                return chance(g, 60) ? power(g, "^", n2, num(g, "2")) : n2;
            }
            case 3: {
                int d = rdim(g);
                return call(g, "tr", ONE, ONE, 1, gen(g, d, d, d1), NULL, NULL);
            }
            case 4: {
                int d = rdim(g);
                return call(g, "det", ONE, ONE, 1, spd(g, d, d1 - 1), NULL, NULL);
            }
            case 5: {
                int d = rdim(g);
                return call(g, "logdet", ONE, ONE, 1, spd(g, d, d1 - 1), NULL, NULL);
            }
            case 6: {   /* x'*y, x'*A*y */
                int d = rdim(g), e = rdim(g);
                gnode *a = trans(g, gen(g, d, ONE, d1));
                if (chance(g, 50)) return bin(g, "*", a, gen(g, d, ONE, d1), ONE, ONE);
                return bin(g, "*", bin(g, "*", a, gen(g, d, e, d1), ONE, e), gen(g, e, ONE, d1), ONE, ONE);
            }
            case 7:
                if (chance(g, 50)) {
                    int d = rdim(g);
                    if (d != ONE) return call(g, "logsumexp", ONE, ONE, 1, gen(g, d, ONE, d1), NULL, NULL);
                }
                return call(g, "diag", ONE, ONE, 1, gen(g, ONE, ONE, d1), NULL, NULL);
            default: return power(g, "^", positive(g, ONE, ONE, d1), num(g, chance(g, 50) ? "0.5" : "(1/3)"));
            }
        }
    }
}

/* A whole program from seed: a scalar function (or, for --simplify only,
   any shape when nonscalar is set). */
static void gen_prog(gprog *g, uint64_t seed, int nonscalar)
{
    memset(g, 0, offsetof(gprog, pool));
    g->nnodes = 0;
    g->rng = seed * 0x9E3779B97F4A7C15ull + 0x5DEECE66Dull;
    static const char *const dn[] = {"n", "m", "p", "q"};
    g->ndims = 1 + rn(g, MAXDIMS);
    for (int i = 0; i < g->ndims; i++) g->dims[i] = dn[i];
    static const char *const seps[] = {"\n", "; ", ";\n", "\n\n"};
    g->sep = seps[rn(g, 4)];
    g->comment = chance(g, 10);
    g->nfuncs = chance(g, 30) ? 1 + rn(g, MAXFUNCS) : 0;
    static const char *const fnames[] = {"f", "g"};
    for (int i = 0; i < g->nfuncs; i++) g->funcs[i] = fnames[i];
    g->budget = 10 + rn(g, 50);
    int depth = 2 + rn(g, 4);
    int nb = chance(g, 40) ? 1 + rn(g, 2) : 0;
    static const char *const bnames[] = {"E", "h1", "r1", "Z", "t2", "G"};
    for (int i = 0; i < nb; i++) {
        int r = rdim1(g), c = chance(g, 50) ? ONE : rdim1(g);
        gnode *e = gen(g, r, c, depth - 1);
        const char *nm = NULL;
        for (int t = 0; t < 10 && !nm; t++) {
            const char *cand = bnames[rn(g, NELEMS(bnames))];
            if (!name_used(g, cand)) nm = cand;
        }
        if (!nm) break;
        snprintf(g->binds[g->nbinds].name, sizeof g->binds[g->nbinds].name, "%s", nm);
        g->binds[g->nbinds].e = e;
        g->nbinds++;
    }
    int r = ONE, c = ONE;
    if (nonscalar) r = rdim1(g), c = rdim1(g);
    /* a function of at least one variable */
    for (int tries = 0; tries < 20; tries++) {
        int mark = g->nnodes;
        g->budget = 10 + rn(g, 50);
        g->f = gen(g, r, c, depth);
        char vars[MAXVARS] = {0}, binds[MAXBINDS] = {0}, funcs[MAXFUNCS] = {0};
        uses(g, g->f, vars, binds, funcs);
        int any = 0;
        for (int i = 0; i < g->nvars; i++) any |= vars[i];
        /* and not a trivial one: at least 8 nodes */
        if (any && (g->nnodes - mark >= 8 || tries >= 15)) return;
        g->nnodes = mark;
    }
    g->f = bin(g, "+", g->f, call(g, "sum", ONE, ONE, 1, var_leaf(g, rdim(g), ONE, 0), NULL, NULL), ONE, ONE);
}

/* ---- running the checks --------------------------------------------------- */

typedef enum { R_PASS, R_SKIP, R_FAIL } rkind;

/* Things worth counting that are not failures. */
enum {
    /* --simplify of a printed result prints its last line differently:
       the canonical form is not a normal form (no expansion), so a text
       read back may simplify to another, equal spelling.  Equality of
       values is checked (every output is read back and evaluated). */
    NOTE_TEXT = 1,
    /* the emitted C disagreed with the evaluator at one data point only:
       double rounding at an ill-conditioned point */
    NOTE_C_CONDITION = 2
};

typedef struct result {
    int kind;
    char cls[32];         /* the kind of failure or skip */
    char msg[3000];
    unsigned notes;
} result;

typedef struct topts {
    int emit_every;       /* compile the C of every k-th program (0: never) */
    int verbose;
    int nonscalar;        /* this program's function may be non-scalar */
    uint64_t seed;
    const char *tmpdir;
} topts;

static void set(result *res, int kind, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set(result *res, int kind, const char *cls, const char *fmt, ...)
{
    if (res->kind == R_FAIL) return;   /* keep the first failure */
    res->kind = kind;
    snprintf(res->cls, sizeof res->cls, "%s", cls);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->msg, sizeof res->msg, fmt, ap);
    va_end(ap);
}

/* md_run on text; *out and *err are malloc'd. */
static int runmd(const md_request *rq, const char *text, char **out, char **err)
{
    md_buf o = {0};
    size_t elen = 0;
    *err = NULL;
    FILE *ef = open_memstream(err, &elen);
    int rc = md_run(rq, "<random>", text, strlen(text), &o, ef);
    fclose(ef);
    *out = o.s ? md_buf_take(&o) : md_xstrdup("");
    return rc;
}

/* The verdict on md_run's status: 0 when the run is fine. */
static int judge(result *res, const char *what, int rc, const char *out, const char *err)
{
    if (rc == 0 && !strstr(out, "FAILED")) return 0;
    if (rc == MD_EXIT_INPUT && (strstr(err, "cannot be inferred") || strstr(err, "belongs to no variable"))) {
        set(res, R_SKIP, "size", "%s", err);
        return 1;
    }
    if (rc == MD_EXIT_CHECK && (strstr(err, "no point inside") || strstr(err, "no point was found"))) {
        set(res, R_SKIP, "domain", "%s: %s", what, err);
        return 1;
    }
    /* too steep, or a gradient that cannot be evaluated at the points
       tried, is no verdict; a function that does not change in floating
       point is (the generator writes no constant that could swallow a
       variable, so a "flat" f is more likely a gradient that should be 0) */
    if (rc == MD_EXIT_CHECK && strstr(err, "(inconclusive)") && !strstr(out, "does not change in floating point")) {
        set(res, R_SKIP, "steep", "%s: %s", what, err);
        return 1;
    }
    const char *cls = rc == MD_EXIT_INPUT ? "rejected" : rc == MD_EXIT_INTERNAL ? "internal"
                      : rc == MD_EXIT_CHECK                                     ? "check"
                                                                                : "status";
    set(res, R_FAIL, cls, "%s: exit %d\n%s%s", what, rc, out, err);
    return 1;
}

static const char *last_line(const char *s, char *buf, size_t n)
{
    size_t len = strlen(s);
    while (len && s[len - 1] == '\n') len--;
    size_t st = len;
    while (st && s[st - 1] != '\n') st--;
    snprintf(buf, n, "%.*s", (int)(len - st), s + st);
    return buf;
}

/* The input, parsed and typechecked here (the ground truth's context). */
typedef struct input {
    md_source src;
    md_program *prog;
    md_ctx *ctx;
    md_typed typed;
} input;

static int load_input(input *in, const char *text)
{
    memset(in, 0, sizeof *in);
    md_source_init(&in->src, "<random>", text, strlen(text));
    FILE *devnull = fopen("/dev/null", "w");
    in->src.err = devnull;
    in->ctx = md_ctx_new();
    in->prog = md_parse(&in->src);
    int ok = in->prog && md_typecheck(in->prog, in->ctx, &in->typed) == 0;
    fclose(devnull);
    in->src.err = stderr;
    return ok ? 0 : -1;
}

static void free_input(input *in)
{
    md_typed_free(&in->typed);
    md_program_free(in->prog);
    md_ctx_free(in->ctx);
}

/* The gradient names md_run gives several gradients: dX, with '_'
   appended while that is a variable or function name. */
static char **grad_names(md_ctx *ctx, int n)
{
    char **nm = md_xcalloc((size_t)n + 1, sizeof *nm);
    for (int i = 0; i < n; i++) {
        md_buf b = {0};
        md_buf_printf(&b, "d%s", ctx->syms[i].name);
        while (md_ctx_find_sym(ctx, b.s) >= 0 || md_ctx_find_func(ctx, b.s) >= 0) md_buf_putc(&b, '_');
        nm[i] = md_buf_take(&b);
    }
    return nm;
}

/* Check 1b: the printed gradients, read back here, against finite
   differences of the input at another point than --check used. */
static void reread_gradients(result *res, input *in, const char *out, uint64_t seed)
{
    md_ctx *ctx = in->ctx;
    int n = ctx->nsyms;
    char **nm = grad_names(ctx, n);
    md_readback rb;
    if (md_readback_open(&rb, ctx, out, n, n > 1 ? (const char *const *)nm : NULL) < 0) {
        set(res, R_FAIL, "readback", "the gradient output %s:\n%s", rb.why, out);
    } else {
        int *wrt = md_xcalloc((size_t)n + 1, sizeof *wrt);
        for (int i = 0; i < n; i++) wrt[i] = i;
        md_check_result *cr = md_xcalloc((size_t)n + 1, sizeof *cr);
        int crc = md_check_with(ctx, in->typed.f, n, wrt, md_readback_eval, &rb, seed, 1e-6, cr, NULL);
        int steep = crc > 0;
        for (int i = 0; i < n; i++)
            if (!cr[i].ok && (!cr[i].inconclusive || cr[i].inconclusive == MD_INC_FLAT)) steep = 0;
        if (steep) set(res, R_SKIP, "steep", "the finite differences do not settle");
        else if (crc > 0) {
            md_buf b = {0};
            for (int i = 0; i < n; i++)
                md_buf_printf(&b, "d/d%s: %.2g%s\n", ctx->syms[i].name, cr[i].worst_rel_err, cr[i].ok ? "" : " FAILED");
            set(res, R_FAIL, "recheck", "the printed gradients, read back, disagree with finite differences "
                                        "at seed %llu:\n%s%s", (unsigned long long)seed, b.s, out);
            md_buf_free(&b);
        }
        free(cr);
        free(wrt);
    }
    md_readback_close(&rb);
    for (int i = 0; i < n; i++) free(nm[i]);
    free(nm);
}

/* Check 3: the printed --simplify text evaluates to the input's value. */
static void reread_simplified(result *res, input *in, const char *out, uint64_t seed)
{
    md_readback rb;
    if (md_readback_open(&rb, in->ctx, out, 1, NULL) < 0) {
        set(res, R_FAIL, "readback", "the --simplify output %s:\n%s", rb.why, out);
        md_readback_close(&rb);
        return;
    }
    md_env env;
    if (md_env_random(in->ctx, in->typed.f, seed, &env) == 0) {
        md_mat a = {0}, b = {0};
        int ra = md_eval(&env, in->typed.f, &a);
        int rb2 = ra == 0 ? md_readback_eval(&rb, &env, 1, &b) : -1;
        if (ra == 0 && rb2 != 0) {
            set(res, R_FAIL, "simplify", "the --simplify output cannot be evaluated where the input can (%s):\n%s",
                rb2 == MD_EVAL_BUG ? md_eval_bug() : "outside its domain", out);
        } else if (ra == 0) {
            double d = 0, m = 1;
            if (a.rows != b.rows || a.cols != b.cols) d = INFINITY;
            else
                for (long i = 0; i < a.rows * a.cols; i++) {
                    d = fmax(d, fabs(a.v[i] - b.v[i]));
                    m = fmax(m, fmax(fabs(a.v[i]), fabs(b.v[i])));
                }
            if (!(d / m <= 1e-9))
                set(res, R_FAIL, "simplify", "the --simplify output evaluates to something else "
                                             "(relative difference %.2g):\n%s", d / m, out);
        }
        md_mat_free(&a);
        md_mat_free(&b);
    }
    md_env_free(&env);
    md_readback_close(&rb);
}

/* ---- the C backend ---------------------------------------------------------- */

static void write_generic(md_buf *w, const char *cname, int k, int m)
{
    double a = 0.7 + 0.3 * k, b = 0.4 + 0.5 * k;
    static const char *const phase[4] = {"sin(t)", "cos(t)", "-sin(t)", "-cos(t)"};
    md_buf_printf(w, "double %s(double x) { double t = %.17g * x + %.17g; return pow(%.17g, %d) * (%s); }\n",
                  cname, a, b, a, m, phase[m & 3]);
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

/* One data set for the C driver: the evaluator's values at it. */
typedef struct cdata {
    md_env env;
    md_mat *want;         /* want[0] = f, want[1 + s] = the gradient by s */
    double *tol;          /* tol[k]: how far a double computation of want[k] may be off */
    int ok;
} cdata;

static void cdata_make(cdata *cd, input *in, unsigned long seed)
{
    md_ctx *ctx = in->ctx;
    int n = ctx->nsyms;
    memset(cd, 0, sizeof *cd);
    if (md_env_random(ctx, in->typed.f, seed, &cd->env) < 0) return;
    md_expr **roots = md_xcalloc((size_t)n + 1, sizeof *roots);
    cd->want = md_xcalloc((size_t)n + 1, sizeof *cd->want);
    roots[0] = in->typed.f;
    for (int i = 0; i < n; i++) roots[i + 1] = md_gradient(ctx, in->typed.f, i);
    cd->ok = md_eval_many(&cd->env, n + 1, roots, cd->want) == 0;
    /* how much computing in double moves the results at this point: the
       C code computes in double (in another order), so it may be off by
       a small multiple of that (1e-9 at least) */
    cd->tol = md_xcalloc((size_t)n + 1, sizeof *cd->tol);
    for (int k = 0; k <= n; k++) cd->tol[k] = 1e-9;
    if (cd->ok) {
        md_env e2 = cd->env;
        e2.doubles = 1;
        md_mat *w2 = md_xcalloc((size_t)n + 1, sizeof *w2);
        if (md_eval_many(&e2, n + 1, roots, w2) == 0) {
            for (int k = 0; k <= n; k++) {
                double d = 0, m = 1;
                for (long i = 0; i < w2[k].rows * w2[k].cols; i++) {
                    d = fmax(d, fabs(w2[k].v[i] - cd->want[k].v[i]));
                    m = fmax(m, fabs(cd->want[k].v[i]));
                }
                cd->tol[k] = fmax(1e-9, 1e3 * d / m);
                md_mat_free(&w2[k]);
            }
        }
        free(w2);
    }
    free(roots);
}

static void cdata_free(cdata *cd, int n)
{
    if (cd->want)
        for (int i = 0; i <= n; i++) md_mat_free(&cd->want[i]);
    free(cd->want);
    free(cd->tol);
    md_env_free(&cd->env);
}

/* The driver's code for data set k: one call, every result printed. */
static void write_call(md_buf *w, md_ctx *ctx, const cdata *cd, int k)
{
    int n = ctx->nsyms;
    md_buf_printf(w, "    {\n    f_dims d = {");
    if (ctx->ndims <= 1) md_buf_puts(w, "0");
    for (int dd = 1; dd < ctx->ndims; dd++) md_buf_printf(w, "%s%ld", dd > 1 ? ", " : "", cd->env.dimsize[dd]);
    md_buf_puts(w, "};\n");
    for (int s = 0; s < n; s++) {
        long sz = cd->env.val[s].rows * cd->env.val[s].cols;
        md_buf_printf(w, "    static double in%d_%d[%ld] = {", k, s, sz);
        for (long i = 0; i < sz; i++) md_buf_printf(w, "%s%.17g", i ? ", " : "", cd->env.val[s].v[i]);
        md_buf_printf(w, "};\n    static double g%d_%d[%ld];\n", k, s, sz);
    }
    md_buf_puts(w, "    double *work = malloc(f_workspace(&d) * sizeof(double) + 8);\n    double v = f(&d");
    for (int s = 0; s < n; s++)
        md_buf_printf(w, ", in%d_%d%s", k, s, ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE ? "[0]" : "");
    for (int s = 0; s < n; s++) md_buf_printf(w, ", g%d_%d", k, s);
    md_buf_puts(w, ", work);\n    printf(\"%.17g\\n\", v);\n");
    for (int s = 0; s < n; s++)
        md_buf_printf(w, "    for (int i = 0; i < %ld; i++) printf(\"%%.17g\\n\", g%d_%d[i]);\n",
                      cd->env.val[s].rows * cd->env.val[s].cols, k, s);
    /* f alone: every gradient pointer NULL (its own plans, emit.c) */
    md_buf_puts(w, "    printf(\"%.17g\\n\", f(&d");
    for (int s = 0; s < n; s++)
        md_buf_printf(w, ", in%d_%d%s", k, s, ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE ? "[0]" : "");
    for (int s = 0; s < n; s++) md_buf_puts(w, ", NULL");
    md_buf_puts(w, ", work));\n    free(work);\n    }\n");
}

/* The worst relative difference of the printed results of data set k
   with the evaluator's, in units of 1e-9 times the point's conditioning
   (so 1e-9 is the limit); *where names the result. */
static double read_results(FILE *of, md_ctx *ctx, const cdata *cd, const char **where)
{
    double worst = 0;
    *where = "f";
    for (int j = 0; j <= ctx->nsyms + 1; j++) {
        int k = j <= ctx->nsyms ? j : 0;   /* last: f alone (write_call) */
        /* normwise: the largest difference against the largest entry */
        double d = 0, m = 1;
        for (long i = 0; i < cd->want[k].rows * cd->want[k].cols; i++) {
            double v;
            if (!of || fscanf(of, "%lf", &v) != 1) v = NAN;
            double wv = cd->want[k].v[i];
            d = isnan(v) ? INFINITY : fmax(d, fabs(v - wv));
            m = fmax(m, fabs(wv));
        }
        double e = d / m * (1e-9 / cd->tol[k]);
        if (!(e <= worst)) {
            worst = isnan(e) ? INFINITY : e;
            *where = j > ctx->nsyms ? "f alone" : k == 0 ? "f" : ctx->syms[k - 1].name;
        }
    }
    return worst;
}

/* The start of a driver for the emitted C: the includes and the generic
   functions' callbacks that the header hdr declares. */
static void driver_includes(md_buf *w, md_ctx *ctx, const char *hdr)
{
    md_buf_puts(w, "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include \"f.h\"\n");
    for (int k = 0; k < ctx->nfuncs; k++)
        for (int m = 0; m <= 4; m++) {
            char cname[64];
            if (m) snprintf(cname, sizeof cname, "f_%s_d%d", ctx->funcs[k], m);
            else snprintf(cname, sizeof cname, "f_%s", ctx->funcs[k]);
            if (strstr(hdr, cname)) write_generic(w, cname, k, m);
        }
}

/* Writes code (f.c), hdr (f.h) and the driver w (main.c, freed) into a
   directory of the run's own (its name, prefixed by kind, into dir),
   compiles them with the project's warnings and runs the program (out.txt,
   build.log, run.log there).  With several plans (sizes known only at run
   time), the seed forces one of them, whatever the sizes pick, so that
   every plan is run.  Returns system()'s status. */
static int build_and_run(const topts *o, char kind, const char *code, const char *hdr, md_buf *w, int blas,
                         char *dir, size_t dirlen)
{
    char path[600], cmd[2048];
    snprintf(dir, dirlen, "%s/%c%d", o->tmpdir, kind, (int)getpid());
    mkdir(dir, 0700);
    snprintf(path, sizeof path, "%s/f.c", dir);
    write_file(path, code);
    snprintf(path, sizeof path, "%s/f.h", dir);
    write_file(path, hdr);
    snprintf(path, sizeof path, "%s/main.c", dir);
    write_file(path, w->s);
    md_buf_free(w);
    snprintf(cmd, sizeof cmd,
             "cd %s && cc -std=c99 -O1 -Wall -Wextra -Wpedantic -Werror -DMD_FORCE_PLAN=%u -o prog f.c main.c -lm %s "
             "> build.log 2>&1 && ./prog > out.txt 2> run.log",
             dir, (unsigned)(o->seed % 6u), blas ? "-lopenblas" : "");
    return system(cmd);
}

/* --format c of text (blas or --no-blas): the file and the header, each
   with its exit status and messages. */
static void emit_c(const char *text, int blas, int *rc, char **code, char **err, int *rc2, char **hdr, char **err2)
{
    md_request rq;
    md_request_init(&rq);
    rq.format = MD_FORMAT_C;
    rq.emit.blas = blas;
    *rc = runmd(&rq, text, code, err);
    rq.header = 1;
    *rc2 = runmd(&rq, text, hdr, err2);
}

/*
 * Check 5: the emitted C, compiled with the project's warnings and run on
 * two data sets, compared with the evaluator.  The C code computes in
 * double and the evaluator in long double, so at an ill-conditioned point
 * they may differ by more than 1e-9: a disagreement counts only when both
 * data sets show it (one alone is counted as NOTE_C_CONDITION).
 */
static void check_c(result *res, input *in, const char *text, const topts *o, int blas)
{
    char *code, *err, *hdr, *err2;
    int rc, rc2;
    emit_c(text, blas, &rc, &code, &err, &rc2, &hdr, &err2);
    md_ctx *ctx = in->ctx;
    cdata cd[2];
    memset(cd, 0, sizeof cd);
    if (rc || rc2) {
        if (rc == MD_EXIT_INPUT && (strstr(err, "not supported") || strstr(err, "emitted only as a factor")))
            set(res, R_SKIP, "c-declined", "%s", err);
        else set(res, R_FAIL, "c-emit", "--format c: exit %d %d\n%s%s", rc, rc2, err, err2);
        goto out;
    }
    cdata_make(&cd[0], in, o->seed);
    cdata_make(&cd[1], in, o->seed + 17);
    if (!cd[0].ok || !cd[1].ok) goto out;
    md_buf w = {0};
    driver_includes(&w, ctx, hdr);
    md_buf_puts(&w, "int main(void)\n{\n");
    write_call(&w, ctx, &cd[0], 0);
    write_call(&w, ctx, &cd[1], 1);
    md_buf_puts(&w, "    return 0;\n}\n");
    char dir[512], path[600], cmd[2048];
    int src = build_and_run(o, 'c', code, hdr, &w, blas, dir, sizeof dir);
    if (src != 0) {
        char log[4000] = "";
        snprintf(path, sizeof path, "%s/build.log", dir);
        FILE *lf = fopen(path, "r");
        if (lf) {
            size_t k = fread(log, 1, sizeof log - 1, lf);
            log[k] = 0;
            fclose(lf);
        }
        set(res, R_FAIL, "c-build", "the emitted C (%s) does not compile or run (status %d):\n%s",
            blas ? "blas" : "loops", src, log);
    } else {
        snprintf(path, sizeof path, "%s/out.txt", dir);
        FILE *of = fopen(path, "r");
        const char *w0, *w1;
        double e0 = read_results(of, ctx, &cd[0], &w0), e1 = read_results(of, ctx, &cd[1], &w1);
        if (of) fclose(of);
        if (!(e0 <= 1e-9) && !(e1 <= 1e-9))
            set(res, R_FAIL, "c-value", "the emitted C (%s) disagrees with the evaluator on %s and %s "
                                        "(relative %.2g, %.2g)", blas ? "blas" : "loops", w0, w1, e0, e1);
        else if (!(e0 <= 1e-9) || !(e1 <= 1e-9))
            res->notes |= NOTE_C_CONDITION;
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* nothing to do */ }
out:
    cdata_free(&cd[0], ctx->nsyms);
    cdata_free(&cd[1], ctx->nsyms);
    free(code);
    free(err);
    free(hdr);
    free(err2);
}

/*
 * Check 5 for a vector or matrix function: the emitted NAME (F),
 * NAME_jvp, NAME_vjp and NAME_jac (md_emit_c_map), by every variable, run
 * on the evaluator's data and compared with F, J v (md_hvp of F along
 * random directions) and J' u (the gradients of u : F for a random u);
 * NAME_jac times the directions and its transpose times u must give J v
 * and J' u too.  Directions and u are added to the program's context
 * (nothing after this check uses it).
 */
static void check_c_map(result *res, input *in, const char *text, const topts *o, int blas)
{
    char *code, *err, *hdr, *err2;
    int rc, rc2;
    emit_c(text, blas, &rc, &code, &err, &rc2, &hdr, &err2);
    md_ctx *ctx = in->ctx;
    md_expr *F = in->typed.f;
    int n = ctx->nsyms, *dir = md_xcalloc((size_t)n + 1, sizeof *dir), *wrt = md_xcalloc((size_t)n + 1, sizeof *wrt);
    md_env env;
    memset(&env, 0, sizeof env);
    md_mat *want = md_xcalloc((size_t)n + 3, sizeof *want);
    md_expr **roots = md_xcalloc((size_t)n + 3, sizeof *roots);
    double tol[3] = {1e-9, 1e-9, 1e-9};
    if (rc || rc2) {
        if (rc == MD_EXIT_INPUT && strstr(err, "emitted only as a factor")) set(res, R_SKIP, "c-declined", "%s", err);
        else set(res, R_FAIL, "c-emit", "--format c of a non-scalar function: exit %d %d\n%s%s", rc, rc2, err, err2);
        goto out;
    }
    for (int s = 0; s < n; s++) {
        char nm[80];
        snprintf(nm, sizeof nm, "md_v%d", s);
        wrt[s] = s;
        dir[s] = md_ctx_add_sym(ctx, nm, ctx->syms[s].kind, ctx->syms[s].rows, ctx->syms[s].cols);
    }
    int rowF = F->rows == MD_DIM_ONE;   /* u as the driver makes it: a vector for a row vector F */
    int u = md_ctx_add_sym(ctx, "md_u", rowF || F->cols == MD_DIM_ONE ? MD_SYM_VECTOR : MD_SYM_MATRIX,
                           rowF ? F->cols : F->rows, rowF ? MD_DIM_ONE : F->cols);
    md_expr *uF = md_frob(ctx, rowF ? md_trans(ctx, md_sym(ctx, u)) : md_sym(ctx, u), F);
    roots[0] = F;
    roots[1] = md_hvp(ctx, F, n, wrt, dir);
    for (int s = 0; s < n; s++) roots[2 + s] = md_gradient(ctx, uF, s);
    if (md_env_random(ctx, F, o->seed + 23, &env) < 0 || md_eval_many(&env, n + 2, roots, want) != 0) goto out;
    {   /* how far computing in double may move F, J v and J' u (as cdata_make) */
        md_env e2 = env;
        e2.doubles = 1;
        md_mat *w2 = md_xcalloc((size_t)n + 3, sizeof *w2);
        if (md_eval_many(&e2, n + 2, roots, w2) == 0)
            for (int k = 0; k < n + 2; k++) {
                double d = 0, m = 1;
                for (long i = 0; i < w2[k].rows * w2[k].cols; i++) {
                    d = fmax(d, fabs(w2[k].v[i] - want[k].v[i]));
                    m = fmax(m, fabs(want[k].v[i]));
                }
                int t = k < 2 ? k : 2;
                tol[t] = fmax(tol[t], 1e3 * d / m);
            }
        for (int k = 0; k < n + 2; k++) md_mat_free(&w2[k]);
        free(w2);
    }
    long M = want[0].rows * want[0].cols, N = 0;
    for (int s = 0; s < n; s++) N += env.val[s].rows * env.val[s].cols;
    md_buf w = {0};
    driver_includes(&w, ctx, hdr);
    md_buf_puts(&w, "int main(void)\n{\n    f_dims d = {");
    int nf = 0;
    for (int dd = 1; dd < ctx->ndims; dd++)
        if (!md_dim_is_product(ctx, dd)) md_buf_printf(&w, "%s%ld", nf++ ? ", " : "", env.dimsize[dd]);
    if (!nf) md_buf_puts(&w, "0");
    md_buf_puts(&w, "};\n");
    for (int s = 0; s < ctx->nsyms; s++) {
        long sz = env.val[s].rows * env.val[s].cols;
        md_buf_printf(&w, "    static double in%d[%ld] = {", s, sz);
        for (long i = 0; i < sz; i++) md_buf_printf(&w, "%s%.17g", i ? ", " : "", env.val[s].v[i]);
        md_buf_puts(&w, "};\n");
    }
    for (int s = 0; s < n; s++) md_buf_printf(&w, "    static double g%d[%ld];\n", s, env.val[s].rows * env.val[s].cols);
    md_buf_printf(&w, "    static double F[%ld], Jv[%ld], J[%ld], v[%ld];\n    long k = 0;\n", M, M, M * N, N);
    for (int s = 0; s < n; s++)   /* the directions, one after the other (J's columns) */
        md_buf_printf(&w, "    for (long i = 0; i < %ld; i++) v[k++] = in%d[i];\n",
                      env.val[s].rows * env.val[s].cols, dir[s]);
    md_buf_puts(&w, "    double *work = malloc(f_workspace(&d) * sizeof(double) + 8);\n"
                    "    double *jw = malloc(f_jac_workspace(&d) * sizeof(double) + 8);\n");
#define RND_ARGS()                                                                              \
    for (int s = 0; s < n; s++)                                                                 \
        md_buf_printf(&w, ", in%d%s", s,                                                        \
                      ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE ? "[0]" : "");
    md_buf_puts(&w, "    f(&d");
    RND_ARGS()
    md_buf_puts(&w, ", F, work);\n    f_jvp(&d");
    RND_ARGS()
    for (int s = 0; s < n; s++)
        md_buf_printf(&w, ", in%d%s", dir[s], ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE ? "[0]" : "");
    md_buf_puts(&w, ", NULL, Jv, work);\n    f_vjp(&d");
    RND_ARGS()
    md_buf_printf(&w, ", in%d, NULL", u);
    for (int s = 0; s < n; s++) md_buf_printf(&w, ", g%d", s);
    md_buf_puts(&w, ", work);\n    f_jac(&d");
    RND_ARGS()
    md_buf_puts(&w, ", NULL, J, jw);\n");
#undef RND_ARGS
    md_buf_printf(&w, "    for (long i = 0; i < %ld; i++) printf(\"%%.17g\\n\", F[i]);\n"
                      "    for (long i = 0; i < %ld; i++) printf(\"%%.17g\\n\", Jv[i]);\n", M, M);
    for (int s = 0; s < n; s++)
        md_buf_printf(&w, "    for (long i = 0; i < %ld; i++) printf(\"%%.17g\\n\", g%d[i]);\n",
                      env.val[s].rows * env.val[s].cols, s);
    /* J v and J' u from the dense Jacobian */
    md_buf_printf(&w, "    for (long i = 0; i < %ld; i++) {\n        double t = 0;\n"
                      "        for (long c = 0; c < %ld; c++) t += J[i + c * %ldL] * v[c];\n"
                      "        printf(\"%%.17g\\n\", t);\n    }\n", M, N, M);
    md_buf_printf(&w, "    for (long c = 0; c < %ld; c++) {\n        double t = 0;\n"
                      "        for (long i = 0; i < %ld; i++) t += J[i + c * %ldL] * in%d[i];\n"
                      "        printf(\"%%.17g\\n\", t);\n    }\n", N, M, M, u);
    md_buf_puts(&w, "    free(work);\n    free(jw);\n    return 0;\n}\n");
    char dir_[512], path[600], cmd[2048];
    if (build_and_run(o, 'm', code, hdr, &w, blas, dir_, sizeof dir_) != 0) {
        set(res, R_FAIL, "c-build", "the emitted C of a non-scalar function (%s) does not compile or run (see %s)",
            blas ? "blas" : "loops", dir_);
        goto out;   /* the directory is kept for the report */
    }
    snprintf(path, sizeof path, "%s/out.txt", dir_);
    FILE *of = fopen(path, "r");
    /* F, J v, each J' u, then J v and J' u again from J */
    const char *what[5] = {"F", "J v", "J' u", "J v from f_jac", "J' u from f_jac"};
    double worst[5] = {0, 0, 0, 0, 0};
    for (int part = 0; part < 5; part++) {
        int first = part == 0 ? 0 : part == 1 || part == 3 ? 1 : 2, count = first == 2 ? n : 1;
        double t = part == 0 ? tol[0] : part == 1 || part == 3 ? tol[1] : tol[2];
        for (int k = first; k < first + count; k++) {
            double d = 0, m = 1;
            for (long i = 0; i < want[k].rows * want[k].cols; i++) {
                double x;
                if (!of || fscanf(of, "%lf", &x) != 1) x = NAN;
                d = isnan(x) ? INFINITY : fmax(d, fabs(x - want[k].v[i]));
                m = fmax(m, fabs(want[k].v[i]));
            }
            double e = d / m * (1e-9 / t);
            if (!(e <= worst[part])) worst[part] = isnan(e) ? INFINITY : e;
        }
    }
    if (of) fclose(of);
    for (int part = 0; part < 5; part++)
        if (!(worst[part] <= 1e-9 * 1e3)) {   /* three orders above the double rounding */
            set(res, R_FAIL, "c-value", "the emitted C of a non-scalar function (%s): %s disagrees with the evaluator "
                                        "(%.2g in units of its tolerance)", blas ? "blas" : "loops", what[part],
                worst[part] / 1e-9);
            break;
        }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir_);
    if (system(cmd)) { /* nothing to do */ }
out:
    for (int k = 0; k < n + 2; k++) md_mat_free(&want[k]);
    free(want);
    free(roots);
    md_env_free(&env);
    free(dir);
    free(wrt);
    free(code);
    free(err);
    free(hdr);
    free(err2);
}

/* All checks of one program (in the child). */
static void run_checks(const char *text, const topts *o, result *res)
{
    memset(res, 0, sizeof *res);
    input in;
    if (load_input(&in, text) < 0) {
        md_request rq;
        md_request_init(&rq);
        rq.simplify = 1;
        char *out, *err;
        int rc = runmd(&rq, text, &out, &err);
        judge(res, "parse", rc ? rc : MD_EXIT_INPUT, out, err);
        free(out);
        free(err);
        free_input(&in);
        return;
    }
    md_request rq;
    char *out, *err, *out2, *err2;
    int rc;
    uint64_t seed = o->seed;

    /* 3: --simplify, read back, and again */
    md_request_init(&rq);
    rq.simplify = 1;
    rc = runmd(&rq, text, &out, &err);
    if (!judge(res, "--simplify", rc, out, err)) {
        reread_simplified(res, &in, out, seed + 11);
        rc = runmd(&rq, out, &out2, &err2);
        if (!judge(res, "--simplify of the --simplify output", rc, out2, err2)) {
            char l1[4096], l2[4096];
            if (strcmp(last_line(out, l1, sizeof l1), last_line(out2, l2, sizeof l2))) res->notes |= NOTE_TEXT;
        }
        free(out2);
        free(err2);
    }
    free(out);
    free(err);
    if (res->kind != R_PASS) goto done;
    if (!md_is_scalar(in.typed.f)) {
        /* 6: the derivative of a vector or matrix function (d vec(F)/d
           vec(X)'), by every variable, --check (random weightings of F
           against directional differences), and its output read back */
        md_request_init(&rq);
        rq.check = 1;
        rq.seed = 5 + seed % 983;
        rc = runmd(&rq, text, &out, &err);
        if (!judge(res, "Jacobians --check", rc, out, err)) {
            md_request r2;
            md_request_init(&r2);
            r2.simplify = 1;
            rc = runmd(&r2, out, &out2, &err2);
            judge(res, "--simplify of the Jacobian output", rc, out2, err2);
            free(out2);
            free(err2);
        }
        free(out);
        free(err);
        /* 5 for a non-scalar function: F, J v, J' u and J in C, for every
           fifth non-scalar function at -c 25 (every one at -c 1..5) */
        if (res->kind == R_PASS && o->emit_every &&
            (seed / 5) % (uint64_t)(o->emit_every > 5 ? o->emit_every / 5 : 1) == 0)
            check_c_map(res, &in, text, o, (seed / 5) % 2);
        goto done;
    }

    /* 1: every gradient, checked by the driver and read back here */
    md_request_init(&rq);
    rq.check = 1;
    rq.seed = 1 + seed % 1000;
    rc = runmd(&rq, text, &out, &err);
    if (!judge(res, "gradients --check", rc, out, err)) {
        reread_gradients(res, &in, out, seed + 3);
        /* the output reads back as a program (what the golden runner checks) */
        md_request r2;
        md_request_init(&r2);
        r2.simplify = 1;
        rc = runmd(&r2, out, &out2, &err2);
        judge(res, "--simplify of the gradient output", rc, out2, err2);
        free(out2);
        free(err2);
    }
    free(out);
    free(err);
    if (res->kind != R_PASS) goto done;

    /* 2: one variable */
    {
        const char *v = in.ctx->syms[seed % (uint64_t)in.ctx->nsyms].name;
        md_request_init(&rq);
        rq.check = 1;
        rq.wrt = &v;
        rq.nwrt = 1;
        rq.seed = 7 + seed % 991;
        rc = runmd(&rq, text, &out, &err);
        if (!judge(res, "--wrt one --check", rc, out, err)) {
            md_request r2;
            md_request_init(&r2);
            r2.simplify = 1;
            rc = runmd(&r2, out, &out2, &err2);
            if (!judge(res, "--simplify of the one-gradient output", rc, out2, err2)) {
                char l1[4096], l2[4096];
                if (strcmp(last_line(out, l1, sizeof l1), last_line(out2, l2, sizeof l2))) res->notes |= NOTE_TEXT;
            }
            free(out2);
            free(err2);
        }
        free(out);
        free(err);
    }
    if (res->kind != R_PASS) goto done;

    /* 7: the Hessian (--order 2) by one or two variables, every third
       program: u'Hv against second differences of f */
    if (seed % 3 == 1) {
        const char *v[2] = {in.ctx->syms[seed % (uint64_t)in.ctx->nsyms].name,
                            in.ctx->syms[(seed / 7) % (uint64_t)in.ctx->nsyms].name};
        md_request_init(&rq);
        rq.order = 2;
        rq.check = 1;
        rq.wrt = v;
        rq.nwrt = 2;
        rq.seed = 11 + seed % 977;
        rc = runmd(&rq, text, &out, &err);
        if (!judge(res, "--order 2 --check", rc, out, err)) {
            md_request r2;
            md_request_init(&r2);
            r2.simplify = 1;
            rc = runmd(&r2, out, &out2, &err2);
            judge(res, "--simplify of the Hessian output", rc, out2, err2);
            free(out2);
            free(err2);
        }
        free(out);
        free(err);
        if (res->kind != R_PASS) goto done;
    }

    /* 4: derivations, LaTeX */
    md_request_init(&rq);
    rq.steps = 1;
    rq.check = 1;
    rq.seed = 3 + seed % 997;
    rc = runmd(&rq, text, &out, &err);
    judge(res, "--steps --check", rc, out, err);
    free(out);
    free(err);
    if (res->kind != R_PASS) goto done;
    if (seed % 4 == 0) {
        md_request_init(&rq);
        rq.steps = 1;
        rq.format = MD_FORMAT_LATEX;
        rc = runmd(&rq, text, &out, &err);
        judge(res, "--steps --format latex", rc, out, err);
        free(out);
        free(err);
        md_request_init(&rq);
        rq.format = MD_FORMAT_LATEX;
        rq.check = 1;
        rc = runmd(&rq, text, &out, &err);
        judge(res, "--format latex --check", rc, out, err);
        free(out);
        free(err);
        if (res->kind != R_PASS) goto done;
    }

    /* 5: C */
    /* (seeds that are multiples of 5 have non-scalar functions: 3, not 0) */
    if (o->emit_every && seed % (uint64_t)o->emit_every == 3 % (uint64_t)o->emit_every)
        check_c(res, &in, text, o, (seed / (uint64_t)o->emit_every) % 2);
done:
    free_input(&in);
}

/* Runs the checks in a forked child with a time limit. */
static void run_isolated(const char *text, const topts *o, result *res)
{
    int fd[2];
    memset(res, 0, sizeof *res);
    if (pipe(fd) < 0) {
        perror("random: pipe");
        exit(3);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("random: fork");
        exit(3);
    }
    if (pid == 0) {
        close(fd[0]);
        alarm(60);
        result r;
        run_checks(text, o, &r);
        const char *p = (const char *)&r;
        size_t left = sizeof r;
        while (left) {
            ssize_t k = write(fd[1], p, left);
            if (k <= 0) break;
            p += k;
            left -= (size_t)k;
        }
        _exit(0);
    }
    close(fd[1]);
    char *p = (char *)res;
    size_t got = 0;
    for (;;) {
        ssize_t k = read(fd[0], p + got, sizeof *res - got);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            break;
        }
        got += (size_t)k;
    }
    close(fd[0]);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (got != sizeof *res) {
        memset(res, 0, sizeof *res);
        res->kind = R_FAIL;
        if (WIFSIGNALED(st)) {
            snprintf(res->cls, sizeof res->cls, WTERMSIG(st) == SIGALRM ? "timeout" : "crash");
            snprintf(res->msg, sizeof res->msg, "the checks died with signal %d (%s)", WTERMSIG(st),
                     strsignal(WTERMSIG(st)));
        } else {
            snprintf(res->cls, sizeof res->cls, "crash");
            snprintf(res->msg, sizeof res->msg, "the checks exited with status %d", WEXITSTATUS(st));
        }
    }
}

/* ---- minimising ---------------------------------------------------------- */

/* Every node of the program (the function and the named subexpressions). */
static void list_nodes(gprog *g, gnode *n, gnode ***v, int *nv, int *cap)
{
    if (*nv == *cap) {
        *cap = *cap ? 2 * *cap : 64;
        *v = md_xrealloc(*v, (size_t)*cap * sizeof **v);
    }
    (*v)[(*nv)++] = n;
    for (int i = 0; i < n->nk; i++) list_nodes(g, n->k[i], v, nv, cap);
}

/* Does text fail in the same way? */
static int same_failure(const char *text, const topts *o, const result *want)
{
    result r;
    run_isolated(text, o, &r);
    return r.kind == R_FAIL && !strcmp(r.cls, want->cls);
}

/* Shrinks g while the failure stays; returns the number of steps taken. */
static int minimise(gprog *g, const topts *o, const result *want)
{
    int steps = 0, progress = 1;
    while (progress) {
        progress = 0;
        gnode **v = NULL;
        int nv = 0, cap = 0;
        list_nodes(g, g->f, &v, &nv, &cap);
        for (int i = 0; i < g->nbinds; i++) list_nodes(g, g->binds[i].e, &v, &nv, &cap);
        for (int i = 0; i < nv && !progress; i++) {
            gnode *n = v[i];
            if (n->kind == G_LEAF && n->var >= 0) continue;
            gnode saved = *n;
            /* candidates: a same-shaped argument, then a plain leaf */
            gnode *cands[5];
            int nc = 0;
            for (int k = 0; k < n->nk; k++)
                if (n->k[k]->r == n->r && n->k[k]->c == n->c) cands[nc++] = n->k[k];
            int before = g->nnodes;
            if (g->nnodes + 4 < NODECAP) {
                gnode *l = NULL;
                int vi = -1;
                for (int k = 0; k < g->nvars && vi < 0; k++)
                    if (g->vars[k].r == n->r && g->vars[k].c == n->c) vi = k;
                if (vi >= 0) {
                    l = leaf(g, g->vars[vi].name, n->r, n->c);
                    l->var = vi;
                } else if (n->r == ONE && n->c == ONE) {
                    l = num(g, "2");
                }
                if (l) cands[nc++] = l;
            }
            char *cur = print_prog(g);
            size_t curlen = strlen(cur);
            free(cur);
            for (int k = 0; k < nc && !progress; k++) {
                gnode c = *cands[k];
                c.paren = 0;
                *n = c;
                char *t = print_prog(g);
                /* only a shorter program is progress */
                if (strlen(t) < curlen && same_failure(t, o, want)) {
                    progress = 1;
                    steps++;
                } else {
                    *n = saved;
                }
                free(t);
            }
            if (!progress) g->nnodes = before;
        }
        free(v);
        /* drop named subexpressions nothing uses */
        for (int i = g->nbinds - 1; i >= 0 && !progress; i--) {
            gbind saved[MAXBINDS];
            memcpy(saved, g->binds, sizeof saved);
            int nb = g->nbinds;
            char vars[MAXVARS] = {0}, binds[MAXBINDS] = {0}, funcs[MAXFUNCS] = {0};
            uses(g, g->f, vars, binds, funcs);
            if (binds[i]) continue;
            memmove(&g->binds[i], &g->binds[i + 1], (size_t)(g->nbinds - i - 1) * sizeof *g->binds);
            g->nbinds--;
            /* references into later bindings shift: only drop when none refer past i */
            int ok = 1;
            for (int k = 0; k < g->nnodes; k++)
                if (g->pool[k].bind > i) ok = 0;
            char *t = ok ? print_prog(g) : NULL;
            if (ok && same_failure(t, o, want)) {
                progress = 1;
                steps++;
            } else {
                memcpy(g->binds, saved, sizeof saved);
                g->nbinds = nb;
            }
            free(t);
        }
    }
    return steps;
}

/* ---- main ------------------------------------------------------------------ */

static void indent(FILE *f, const char *text)
{
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(f, "    %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: random [N [SEED]] [-j JOBS] [-c EVERY] [-v] [-o DIR] [-p] | random -f FILE\n");
    return 2;
}

int main(int argc, char **argv)
{
    long n = 200;
    uint64_t seed0 = 1;
    int jobs = 1, verbose = 0, npos = 0, print_only = 0;
    const char *file = NULL, *outdir = NULL;
    topts o = {25, 0, 0, 0, NULL};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-j") && i + 1 < argc) jobs = atoi(argv[++i]);
        else if (!strncmp(argv[i], "-j", 2) && argv[i][2]) jobs = atoi(argv[i] + 2);
        else if (!strcmp(argv[i], "-c") && i + 1 < argc) o.emit_every = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-v")) verbose = 1;
        else if (!strcmp(argv[i], "-p")) print_only = 1;
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(argv[i], "-o") && i + 1 < argc) outdir = argv[++i];
        else if (argv[i][0] != '-' && npos == 0) n = atol(argv[i]), npos++;
        else if (argv[i][0] != '-' && npos == 1) seed0 = strtoull(argv[i], NULL, 10), npos++;
        else return usage();
    }
    if (jobs < 1) jobs = 1;
    char tmpl[] = "/tmp/matdiff-random.XXXXXX";
    o.tmpdir = mkdtemp(tmpl);
    if (!o.tmpdir) {
        perror("random: mkdtemp");
        return 3;
    }
    o.verbose = verbose;

    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            perror(file);
            return 2;
        }
        md_buf b = {0};
        int ch;
        while ((ch = fgetc(f)) != EOF) md_buf_putc(&b, (char)ch);
        fclose(f);
        o.seed = seed0;
        result r;
        run_isolated(b.s ? b.s : "", &o, &r);
        printf("%s [%s]\n%s\n", r.kind == R_PASS ? "pass" : r.kind == R_SKIP ? "skip" : "FAIL", r.cls, r.msg);
        md_buf_free(&b);
        rmdir(o.tmpdir);
        return r.kind == R_FAIL;
    }

    if (print_only) {
        /* the programs only: a look at what the generator writes */
        gprog *pg = md_xmalloc(sizeof *pg);
        for (uint64_t s = seed0; s < seed0 + (uint64_t)n; s++) {
            gen_prog(pg, s, s % 5 == 0);
            char *text = print_prog(pg);
            printf("# seed %llu\n%s\n", (unsigned long long)s, text);
            free(text);
        }
        free(pg);
        rmdir(o.tmpdir);
        return 0;
    }

    time_t t0 = time(NULL);
    long pass = 0, fail = 0, skip = 0, notes_text = 0, notes_c = 0;
    long skipcls[8] = {0};
    static const char *const skipnames[8] = {"size", "domain", "c-declined", "steep", "other"};
    /* jobs children at a time: seeds are handed out in order */
    typedef struct slot {
        pid_t pid;
        int fd;
        uint64_t seed;
    } slot;
    slot *slots = md_xcalloc((size_t)jobs, sizeof *slots);
    uint64_t next = seed0, end = seed0 + (uint64_t)n;
    int running = 0;
    gprog *g = md_xmalloc(sizeof *g);
    while (next < end || running) {
        while (running < jobs && next < end) {
            int fd[2];
            if (pipe(fd) < 0) return 3;
            fflush(NULL);
            pid_t pid = fork();
            if (pid == 0) {
                close(fd[0]);
                uint64_t s = next;
                gen_prog(g, s, s % 5 == 0);
                char *text = print_prog(g);
                topts co = o;
                co.seed = s;
                result r;
                run_isolated(text, &co, &r);
                if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) _exit(3);
                _exit(0);
            }
            close(fd[1]);
            for (int k = 0; k < jobs; k++)
                if (!slots[k].pid) {
                    slots[k] = (slot){pid, fd[0], next};
                    break;
                }
            running++;
            next++;
        }
        int st;
        pid_t done = wait(&st);
        if (done < 0) break;
        for (int k = 0; k < jobs; k++) {
            if (slots[k].pid != done) continue;
            result r;
            memset(&r, 0, sizeof r);
            ssize_t got = 0, kk;
            while (got < (ssize_t)sizeof r && (kk = read(slots[k].fd, (char *)&r + got, sizeof r - (size_t)got)) > 0)
                got += kk;
            close(slots[k].fd);
            uint64_t s = slots[k].seed;
            slots[k].pid = 0;
            running--;
            if (got != (ssize_t)sizeof r) {
                r.kind = R_FAIL;
                snprintf(r.cls, sizeof r.cls, "crash");
                snprintf(r.msg, sizeof r.msg, "the tester's child died");
            }
            if (r.notes & NOTE_TEXT) notes_text++;
            if (r.notes & NOTE_C_CONDITION) notes_c++;
            if (r.kind == R_PASS) {
                pass++;
            } else if (r.kind == R_SKIP) {
                skip++;
                int c = 4;
                for (int q = 0; q < 4; q++)
                    if (!strcmp(r.cls, skipnames[q])) c = q;
                skipcls[c]++;
                if (verbose) printf("skip seed %llu [%s]\n", (unsigned long long)s, r.cls);
            } else {
                fail++;
                gen_prog(g, s, s % 5 == 0);
                char *text = print_prog(g);
                printf("FAIL seed %llu [%s]: %s\n  program:\n", (unsigned long long)s, r.cls, r.msg);
                indent(stdout, text);
                topts co = o;
                co.seed = s;
                int steps = minimise(g, &co, &r);
                char *small = print_prog(g);
                result r2;
                run_isolated(small, &co, &r2);
                printf("  minimised (%d steps):\n", steps);
                indent(stdout, small);
                printf("  which fails with: %s\n", r2.msg);
                if (outdir) {
                    char path[600];
                    mkdir(outdir, 0755);
                    snprintf(path, sizeof path, "%s/fail-%llu.md", outdir, (unsigned long long)s);
                    write_file(path, small);
                }
                fflush(stdout);
                free(text);
                free(small);
            }
        }
    }
    free(g);
    free(slots);
    rmdir(o.tmpdir);
    printf("random: %ld programs, %ld passed, %ld failed, %ld skipped (%ld constant sizes left open, "
           "%ld without a point in the domain, %ld declined by the C backend, %ld too steep or ill-conditioned to check, "
           "%ld other) in %lds\n",
           n, pass, fail, skip, skipcls[0], skipcls[1], skipcls[2], skipcls[3], skipcls[4], (long)(time(NULL) - t0));
    printf("random: notes: %ld outputs read back to an equal value spelled differently, "
           "%ld emitted C results off at one of two data points\n", notes_text, notes_c);
    return fail ? 1 : 0;
}
