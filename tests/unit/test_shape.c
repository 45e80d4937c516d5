/*
 * test_shape.c -- names, types and shape inference (src/1_front/shape.c).
 *
 * Every test runs a whole program through md_parse and md_typecheck, the
 * way the command line does, and then looks at what inference decided:
 * the kind and the dimension ids of each symbol in ctx->syms, the shape of
 * the function, or the exact error report.  Dimension ids are compared
 * with each other ("X's rows are y's rows"), never with literal numbers,
 * and their names with the names the user or the n, m, p, q pool gave
 * them.  Where a shape decides a value (broadcasting, vector(1), eye) the
 * typed function is also evaluated on random data.
 *
 * Error reports go to a memory stream; the tests compare the first line
 * (place and message) in full and, for a few, the caret line too.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_ast.h"
#include "md_eval.h"
#include "md_expr.h"
#include "md_shape.h"
#include "md_test.h"

/* ---- helpers ---- */

/* tprog, load_any, load, unload and find come from md_test.h */

/* A program that must typecheck. */
static tprog *ok(const char *text)
{
    tprog *p = load_any(text);
    ck_assert_msg(p->rc == 0, "'%s' failed: %s", text, p->err);
    ck_assert_ptr_nonnull(p->typed.f);
    return p;
}

static const md_symbol *sym(const tprog *p, const char *name)
{
    int s = md_ctx_find_sym(p->ctx, name);
    ck_assert_msg(s >= 0, "no symbol '%s'", name);
    return &p->ctx->syms[s];
}

static const char *dimname(const tprog *p, int d) { return p->ctx->dims[d].name; }

/* Line k (0-based) of the error report, in a static buffer. */
static const char *err_line(const tprog *p, int k)
{
    static char buf[512];
    const char *s = p->err ? p->err : "";
    for (; k > 0 && *s; k--) {
        const char *nl = strchr(s, '\n');
        s = nl ? nl + 1 : s + strlen(s);
    }
    size_t n = strcspn(s, "\n");
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    return buf;
}

/* The program must fail with exactly this first line. */
static void expect_error(const char *text, const char *first)
{
    tprog *p = load_any(text);
    ck_assert_msg(p->rc == -1, "'%s' should fail", text);
    ck_assert_str_eq(err_line(p, 0), first);
    unload(p);
}

static void expect_kind(const tprog *p, const char *name, md_symkind k)
{
    const md_symbol *s = sym(p, name);
    ck_assert_msg(s->kind == k, "%s: kind %d, want %d", name, (int)s->kind, (int)k);
    switch (k) {
    case MD_SYM_SCALAR:
        ck_assert_int_eq(s->rows, MD_DIM_ONE);
        ck_assert_int_eq(s->cols, MD_DIM_ONE);
        break;
    case MD_SYM_VECTOR:
        ck_assert_int_ne(s->rows, MD_DIM_ONE);
        ck_assert_int_eq(s->cols, MD_DIM_ONE);
        break;
    case MD_SYM_MATRIX:
        ck_assert_int_ne(s->rows, MD_DIM_ONE);
        ck_assert_int_ne(s->cols, MD_DIM_ONE);
        break;
    case MD_SYM_SYMMETRIC:
        ck_assert_int_ne(s->rows, MD_DIM_ONE);
        ck_assert_int_eq(s->rows, s->cols);
        break;
    }
}

/* The value of the typed function at a random point (1x1 only). */
static double eval_f(tprog *p, md_env *env)
{
    md_mat m;
    ck_assert_int_eq(md_eval(env, p->typed.f, &m), 0);
    ck_assert_int_eq(m.rows * m.cols, 1);
    double v = m.v[0];
    md_mat_free(&m);
    return v;
}

static double sum_of(const md_mat *m)
{
    double s = 0;
    for (long i = 0; i < m->rows * m->cols; i++) s += m->v[i];
    return s;
}

static void assert_close(double got, double want)
{
    ck_assert_msg(fabs(got - want) <= 1e-12 * (1 + fabs(want)), "got %.17g, want %.17g", got, want);
}

/* ---- default types ---- */

START_TEST(test_default_kind)
{
    const char *scalars[] = {"a", "b", "c", "d", "e", "f", "g", "a1", "gamma_2",
                             "alpha", "beta", "lambda", "mu", "nu", "xi", "pi", "rho",
                             "sigma", "tau", "theta", "phi", "psi", "omega", "varepsilon", NULL};
    const char *vectors[] = {"h", "i", "p", "x", "y", "z", "x1", "theta2", "lambdas", NULL};
    const char *matrices[] = {"A", "M", "X", "Z", "Sigma", "Xtrain", NULL};
    for (int i = 0; scalars[i]; i++)
        ck_assert_msg(md_default_kind(scalars[i]) == MD_SYM_SCALAR, "%s", scalars[i]);
    for (int i = 0; vectors[i]; i++)
        ck_assert_msg(md_default_kind(vectors[i]) == MD_SYM_VECTOR, "%s", vectors[i]);
    for (int i = 0; matrices[i]; i++)
        ck_assert_msg(md_default_kind(matrices[i]) == MD_SYM_MATRIX, "%s", matrices[i]);
}
END_TEST

START_TEST(test_default_kinds_in_program)
{
    tprog *p = ok("a*x'*A*x + lambda*theta + g");
    expect_kind(p, "a", MD_SYM_SCALAR);
    expect_kind(p, "x", MD_SYM_VECTOR);
    expect_kind(p, "A", MD_SYM_MATRIX);
    expect_kind(p, "lambda", MD_SYM_SCALAR);
    expect_kind(p, "theta", MD_SYM_SCALAR);
    expect_kind(p, "g", MD_SYM_SCALAR);
    /* x'*A*x: A is square on x's dimension */
    ck_assert_int_eq(sym(p, "A")->rows, sym(p, "x")->rows);
    ck_assert_int_eq(sym(p, "A")->cols, sym(p, "x")->rows);
    ck_assert(md_is_scalar(p->typed.f));
    /* symbols in order of first appearance */
    ck_assert_int_eq(p->ctx->nsyms, 6);
    ck_assert_str_eq(p->ctx->syms[0].name, "a");
    ck_assert_str_eq(p->ctx->syms[5].name, "g");
    unload(p);
}
END_TEST

START_TEST(test_declarations_override)
{
    tprog *p = ok("vector a(n); matrix x(n, n); scalar X; symmetric s(n)\n"
                  "X*a'*x*a + a'*s*a");
    expect_kind(p, "a", MD_SYM_VECTOR);
    expect_kind(p, "x", MD_SYM_MATRIX);
    expect_kind(p, "X", MD_SYM_SCALAR);
    expect_kind(p, "s", MD_SYM_SYMMETRIC);
    const md_symbol *a = sym(p, "a");
    ck_assert_str_eq(dimname(p, a->rows), "n");
    ck_assert_int_eq(sym(p, "x")->rows, a->rows);
    ck_assert_int_eq(sym(p, "x")->cols, a->rows);
    ck_assert_int_eq(sym(p, "s")->rows, a->rows);
    ck_assert(md_sym_is_symmetric(p->ctx, md_ctx_find_sym(p->ctx, "s")));
    unload(p);
    /* a declaration without dimensions still overrides the kind */
    p = ok("vector b; matrix y; sum(y*b)");
    expect_kind(p, "b", MD_SYM_VECTOR);
    expect_kind(p, "y", MD_SYM_MATRIX);
    ck_assert_int_eq(sym(p, "y")->cols, sym(p, "b")->rows);
    unload(p);
    /* a symmetric matrix is square by construction */
    p = ok("symmetric S; x'*S*x");
    expect_kind(p, "S", MD_SYM_SYMMETRIC);
    ck_assert_int_eq(sym(p, "S")->rows, sym(p, "x")->rows);
    unload(p);
}
END_TEST

/* ---- named dimensions ---- */

START_TEST(test_named_dims_shared)
{
    tprog *p = ok("matrix X(n, p); vector y(n); vector z(p); y'*X*z");
    const md_symbol *X = sym(p, "X"), *y = sym(p, "y"), *z = sym(p, "z");
    ck_assert_int_eq(X->rows, y->rows);
    ck_assert_int_eq(X->cols, z->rows);
    ck_assert_int_ne(X->rows, X->cols);
    ck_assert_str_eq(dimname(p, X->rows), "n");
    ck_assert_str_eq(dimname(p, X->cols), "p");
    unload(p);
    /* the same name is the same dimension even where no operator joins them */
    p = ok("vector u(k); vector v(k); matrix W(k, k); sum(u) + sum(v) + tr(W)");
    ck_assert_int_eq(sym(p, "u")->rows, sym(p, "v")->rows);
    ck_assert_int_eq(sym(p, "W")->rows, sym(p, "u")->rows);
    ck_assert_str_eq(dimname(p, sym(p, "u")->rows), "k");
    unload(p);
    /* an unnamed dimension unifies with a named one and takes its name */
    p = ok("vector y(q); sum(A*y)");
    ck_assert_int_eq(sym(p, "A")->cols, sym(p, "y")->rows);
    ck_assert_str_eq(dimname(p, sym(p, "A")->cols), "q");
    ck_assert_int_ne(sym(p, "A")->rows, sym(p, "A")->cols);
    unload(p);
}
END_TEST

START_TEST(test_named_dims_mismatch)
{
    expect_error("matrix X(n,p); vector y(p); y'*X",
                 "<t>:1:31: error: inner dimensions differ in '*': 'y'' is a row vector (1×p) "
                 "but 'X' is a matrix (n×p)");
    expect_error("matrix X(n, n); vector x(m); X*x",
                 "<t>:1:31: error: inner dimensions differ in '*': 'X' is a matrix (n×n) "
                 "but 'x' is a vector (m)");
    expect_error("matrix X(n,p); matrix Y(n,q); sum(X + Y)",
                 "<t>:1:37: error: cannot add: 'X' is a matrix (n×p) but 'Y' is a matrix (n×q)");
    expect_error("matrix X(n,p); matrix Y(p,n); X + Y",
                 "<t>:1:33: error: cannot add: 'X' is a matrix (n×p) but 'Y' is a matrix (p×n)");
    expect_error("vector x(n); vector y(m); x'*y",
                 "<t>:1:29: error: inner dimensions differ in '*': 'x'' is a row vector (1×n) "
                 "but 'y' is a vector (m)");
}
END_TEST

/* ---- inference ---- */

START_TEST(test_unification_chain)
{
    /* the brief's example: Y - X*U*V' forces four dimensions into place */
    tprog *p = ok("norm2(Y - X*U*V')^2");
    const md_symbol *Y = sym(p, "Y"), *X = sym(p, "X"), *U = sym(p, "U"), *V = sym(p, "V");
    ck_assert_int_eq(X->rows, Y->rows);
    ck_assert_int_eq(X->cols, U->rows);
    ck_assert_int_eq(U->cols, V->cols);
    ck_assert_int_eq(V->rows, Y->cols);
    /* and nothing more: four distinct dimensions, named in order of appearance */
    int d[4] = {Y->rows, Y->cols, X->cols, U->cols};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++) ck_assert_int_ne(d[i], d[j]);
    ck_assert_str_eq(dimname(p, Y->rows), "n");
    ck_assert_str_eq(dimname(p, Y->cols), "m");
    ck_assert_str_eq(dimname(p, X->cols), "p");
    ck_assert_str_eq(dimname(p, U->cols), "q");
    ck_assert(md_is_scalar(p->typed.f));
    unload(p);
    /* through a product and a transpose: tr(A*B') makes A and B the same shape */
    p = ok("tr(A*B')");
    ck_assert_int_eq(sym(p, "A")->rows, sym(p, "B")->rows);
    ck_assert_int_eq(sym(p, "A")->cols, sym(p, "B")->cols);
    ck_assert_int_ne(sym(p, "A")->rows, sym(p, "A")->cols);
    unload(p);
}
END_TEST

START_TEST(test_scalar_broadcasting)
{
    /* a scalar in + and .* stretches to the other operand's shape */
    static const char *progs[] = {"x + a", "a + x", "X - 1", "2 - X", "a .* X", "X .* a",
                                  "X ./ b", "x'*x + x", NULL};
    for (int i = 0; progs[i]; i++) {
        tprog *p = ok(progs[i]);
        const md_symbol *v = md_ctx_find_sym(p->ctx, "x") >= 0 ? sym(p, "x") : sym(p, "X");
        ck_assert_msg(p->typed.f->rows == v->rows && p->typed.f->cols == v->cols, "%s", progs[i]);
        unload(p);
    }
    /* and the value is the broadcast one: sum(X + a) = sum(X) + a*n*m */
    tprog *p = ok("sum(X + a)");
    md_env env;
    ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 1, &env), 0);
    const md_mat *X = &env.val[md_ctx_find_sym(p->ctx, "X")];
    double a = env.val[md_ctx_find_sym(p->ctx, "a")].v[0];
    assert_close(eval_f(p, &env), sum_of(X) + a * (double)(X->rows * X->cols));
    md_env_free(&env);
    unload(p);
}
END_TEST

START_TEST(test_constants_from_context)
{
    /* eye takes the square shape it is added to */
    tprog *p = ok("x'*(A + eye)*x");
    ck_assert_int_eq(sym(p, "A")->rows, sym(p, "x")->rows);
    ck_assert_int_eq(sym(p, "A")->cols, sym(p, "x")->rows);
    md_env env;
    ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 2, &env), 0);
    const md_mat *x = &env.val[md_ctx_find_sym(p->ctx, "x")];
    const md_mat *A = &env.val[md_ctx_find_sym(p->ctx, "A")];
    double want = 0;
    for (long i = 0; i < x->rows; i++) {
        want += x->v[i] * x->v[i];
        for (long j = 0; j < x->rows; j++) want += x->v[i] * A->v[i + j * A->rows] * x->v[j];
    }
    assert_close(eval_f(p, &env), want);
    md_env_free(&env);
    unload(p);

    /* vector(1) takes x's length: x'*vector(1) = sum(x) */
    p = ok("x'*vector(1)");
    ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 3, &env), 0);
    assert_close(eval_f(p, &env), sum_of(&env.val[md_ctx_find_sym(p->ctx, "x")]));
    md_env_free(&env);
    unload(p);

    /* matrix(2) takes X's shape: sum(X .* matrix(2)) = 2 sum(X) */
    p = ok("sum(X .* matrix(2))");
    ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 4, &env), 0);
    assert_close(eval_f(p, &env), 2 * sum_of(&env.val[md_ctx_find_sym(p->ctx, "X")]));
    md_env_free(&env);
    unload(p);

    /* shapes of the constants themselves */
    p = ok("vector(1)'*X");
    ck_assert_int_eq(p->typed.f->rows, MD_DIM_ONE);
    ck_assert_int_eq(p->typed.f->cols, sym(p, "X")->cols);
    unload(p);
    p = ok("X*eye*x");
    ck_assert_int_eq(sym(p, "X")->cols, sym(p, "x")->rows);
    ck_assert_int_eq(p->typed.f->rows, sym(p, "X")->rows);
    ck_assert_int_eq(p->typed.f->cols, MD_DIM_ONE);
    unload(p);
    /* the argument must be a scalar */
    expect_error("vector(x)",
                 "<t>:1:8: error: the argument of vector must be a scalar, but it is a vector (n). 'x' is a "
                 "vector because undeclared names starting with h-z are vectors; declare 'scalar x' for a scalar");
    expect_error("matrix(X)",
                 "<t>:1:8: error: the argument of matrix must be a scalar, but it is a matrix (n×m). 'X' is a "
                 "matrix because undeclared names starting with A-Z are matrices; declare 'scalar X' for a scalar");
    /* declared: its type is the user's, so no word about first letters */
    expect_error("vector x(n); vector(x)",
                 "<t>:1:21: error: the argument of vector must be a scalar, but it is a vector (n)");
}
END_TEST

START_TEST(test_square_needed)
{
    static const char *fns[] = {"det", "tr", "inv", "logdet", NULL};
    for (int i = 0; fns[i]; i++) {
        char prog[64], want[160];
        snprintf(prog, sizeof prog, "sum(%s(X))", fns[i]);
        tprog *p = ok(prog);
        ck_assert_int_eq(sym(p, "X")->rows, sym(p, "X")->cols);
        unload(p);
        snprintf(prog, sizeof prog, "matrix X(n,p); %s(X)", fns[i]);
        snprintf(want, sizeof want,
                 "<t>:1:16: error: %s needs a square matrix, but 'X' is a matrix (n×p)", fns[i]);
        expect_error(prog, want);
    }
    /* tr(A*B): A*B is square, so B's columns are A's rows */
    tprog *p = ok("tr(A*B)");
    ck_assert_int_eq(sym(p, "B")->cols, sym(p, "A")->rows);
    ck_assert_int_ne(sym(p, "A")->rows, sym(p, "A")->cols);
    unload(p);
    expect_error("inv(x)", "<t>:1:1: error: inv needs a square matrix, but 'x' is a vector (n)");
    /* matrix powers too */
    expect_error("matrix X(n,p); X^2",
                 "<t>:1:17: error: a matrix power needs a square matrix, but 'X' is a matrix (n×p)");
    p = ok("tr(X^3)");
    ck_assert_int_eq(sym(p, "X")->rows, sym(p, "X")->cols);
    unload(p);
}
END_TEST

START_TEST(test_diag_both_ways)
{
    /* vector -> square matrix */
    tprog *p = ok("diag(x)");
    ck_assert_int_eq(p->typed.f->kind, MD_DIAGM);
    ck_assert_int_eq(p->typed.f->rows, sym(p, "x")->rows);
    ck_assert_int_eq(p->typed.f->cols, sym(p, "x")->rows);
    unload(p);
    /* square matrix -> vector */
    p = ok("diag(X)");
    ck_assert_int_eq(p->typed.f->kind, MD_DIAGV);
    ck_assert_int_eq(sym(p, "X")->rows, sym(p, "X")->cols);
    ck_assert_int_eq(p->typed.f->rows, sym(p, "X")->rows);
    ck_assert_int_eq(p->typed.f->cols, MD_DIM_ONE);
    unload(p);
    /* used as a vector, diag(X) puts X on x's dimension */
    p = ok("x'*diag(X)");
    ck_assert_int_eq(sym(p, "X")->rows, sym(p, "x")->rows);
    unload(p);
    /* diag of a scalar is the scalar */
    p = ok("diag(a)");
    ck_assert(md_is_scalar(p->typed.f));
    unload(p);
    expect_error("diag(x')",
                 "<t>:1:1: error: diag needs a column vector or a square matrix, but 'x'' is a row vector");
    expect_error("matrix X(n,p); diag(X)",
                 "<t>:1:16: error: diag needs a column vector or a square matrix, "
                 "but 'X' is a matrix (n×p)");
}
END_TEST

START_TEST(test_transposes)
{
    tprog *p = ok("x'*y");
    ck_assert_int_eq(sym(p, "x")->rows, sym(p, "y")->rows);
    ck_assert(md_is_scalar(p->typed.f));
    unload(p);
    p = ok("X'*y");
    ck_assert_int_eq(sym(p, "X")->rows, sym(p, "y")->rows);
    ck_assert_int_eq(p->typed.f->rows, sym(p, "X")->cols);
    ck_assert_int_eq(p->typed.f->cols, MD_DIM_ONE);
    unload(p);
    p = ok("x'");
    ck_assert_int_eq(p->typed.f->rows, MD_DIM_ONE);
    ck_assert_int_eq(p->typed.f->cols, sym(p, "x")->rows);
    unload(p);
    /* an even number of primes is no transpose */
    p = ok("x''");
    ck_assert_ptr_eq(p->typed.f, md_sym(p->ctx, md_ctx_find_sym(p->ctx, "x")));
    unload(p);
    p = ok("(A*B)'");
    ck_assert_int_eq(p->typed.f->rows, sym(p, "B")->cols);
    ck_assert_int_eq(p->typed.f->cols, sym(p, "A")->rows);
    unload(p);
    expect_error("sum(x' + y)",
                 "<t>:1:8: error: cannot add: 'x'' is a row vector (1×n) but 'y' is a vector (m)");
}
END_TEST

START_TEST(test_assignments)
{
    /* T = X*U binds T's shape; later uses unify with it */
    tprog *p = ok("T = X*U; sum(T*V) + sum(T .* Y)");
    const md_symbol *X = sym(p, "X"), *U = sym(p, "U"), *V = sym(p, "V"), *Y = sym(p, "Y");
    ck_assert_int_eq(X->cols, U->rows);
    ck_assert_int_eq(V->rows, U->cols);
    ck_assert_int_eq(Y->rows, X->rows);
    ck_assert_int_eq(Y->cols, U->cols);
    ck_assert_int_lt(md_ctx_find_sym(p->ctx, "T"), 0);   /* a name, not a variable */
    unload(p);
    /* a bound name keeps its expression's type, whatever its first letter says */
    p = ok("x = A*B; tr(x)");
    ck_assert_int_eq(sym(p, "B")->cols, sym(p, "A")->rows);
    unload(p);
    /* the last assignment is the function when there is no expression */
    p = ok("y = a*b");
    ck_assert(md_is_scalar(p->typed.f));
    unload(p);
    expect_error("T = X*y; T + z'",
                 "<t>:1:12: error: cannot add: 'T' is a vector (n) but 'z'' is a row vector (1×p)");
    expect_error("T = A; T = B; T", "<t>:1:8: error: cannot assign to 'T': it is already defined");
    expect_error("sum(x) + sum(y); x = A",
                 "<t>:1:18: error: cannot assign to 'x': it is a variable of the program");
}
END_TEST

START_TEST(test_function_text)
{
    /* the function is the last expression; its text keeps its parentheses */
    tprog *p = ok("(4*a + 6*b)*A");
    ck_assert_str_eq(p->typed.ftext, "(4*a + 6*b)*A");
    ck_assert_int_eq(p->typed.floc.col, 1);
    unload(p);
    p = ok("T = X*U\nsum(T)   # a comment");
    ck_assert_str_eq(p->typed.ftext, "sum(T)");
    ck_assert_int_eq(p->typed.floc.line, 2);
    unload(p);
}
END_TEST

/* ---- error reports ---- */

START_TEST(test_error_messages)
{
    /* the brief's example, with its caret under the operator */
    tprog *p = load_any("norm2(X + y)^2");
    ck_assert_int_eq(p->rc, -1);
    ck_assert_str_eq(err_line(p, 0),
                     "<t>:1:9: error: cannot add: 'X' is a matrix (n×m) but 'y' is a vector (n)");
    ck_assert_str_eq(err_line(p, 1), "norm2(X + y)^2");
    ck_assert_str_eq(err_line(p, 2), "        ^");
    unload(p);
    /* a two-character operator gets a caret and a tilde */
    p = load_any("sum(X .* y)");
    ck_assert_str_eq(err_line(p, 0),
                     "<t>:1:7: error: elementwise operands differ in shape: 'X' is a matrix (n×m) "
                     "but 'y' is a vector (n)");
    ck_assert_str_eq(err_line(p, 2), "      ^~");
    unload(p);
    expect_error("sum(X - y)",
                 "<t>:1:7: error: cannot subtract: 'X' is a matrix (n×m) but 'y' is a vector (n)");
    expect_error("sum(X ./ y)",
                 "<t>:1:7: error: elementwise operands differ in shape: 'X' is a matrix (n×m) "
                 "but 'y' is a vector (n)");
    expect_error("x .^ A",
                 "<t>:1:3: error: elementwise power operands differ in shape: 'x' is a vector (n) "
                 "but 'A' is a matrix (n×m)");
    /* the left operand of a later operator is the whole chain so far */
    expect_error("A*B + x",
                 "<t>:1:5: error: cannot add: 'A*B' is a matrix (n×p) but 'x' is a vector (n)");
    expect_error("sum(A*x + B*x + y*z')",
                 "<t>:1:15: error: cannot add: 'A*x + B*x' is a vector (n) but 'y*z'' is a matrix (n×p)");
    /* on a later line, columns restart */
    expect_error("matrix X(n, p)\nvector y(n)\nsum(X*y)",
                 "<t>:3:6: error: inner dimensions differ in '*': 'X' is a matrix (n×p) "
                 "but 'y' is a vector (n)");
    /* division and powers */
    expect_error("sum(X/Y)",
                 "<t>:1:6: error: division by a matrix: 'Y' is a matrix (p×q); '/' divides by "
                 "scalars only (use './' for elementwise division or inv() for the inverse). 'Y' is a matrix "
                 "because undeclared names starting with A-Z are matrices; declare 'scalar Y' for a scalar");
    /* the example: n is a vector by its first letter */
    expect_error("sum(x.^2)/n",
                 "<t>:1:10: error: division by a vector: 'n' is a vector (m); '/' divides by scalars only "
                 "(use './' for elementwise division). 'n' is a vector because undeclared names starting with "
                 "h-z are vectors; declare 'scalar n' for a scalar");
    expect_error("x^y",
                 "<t>:1:3: error: the exponent of '^' must be a scalar, but it is a vector (m) (use '.^' for "
                 "elementwise powers). 'y' is a vector because undeclared names starting with h-z are vectors; "
                 "declare 'scalar y' for a scalar");
    expect_error("A^1.5",
                 "<t>:1:2: error: a matrix power needs an integer exponent; use '.^' for elementwise powers");
    expect_error("A^x",
                 "<t>:1:3: error: the exponent of '^' must be a scalar, but it is a vector (p) "
                 "(use '.^' for elementwise powers). 'x' is a vector because undeclared names starting with "
                 "h-z are vectors; declare 'scalar x' for a scalar");
    expect_error("symmetric S(n, m); 1",
                 "<t>:1:16: error: a symmetric matrix is square: write 'symmetric S(n)'");
}
END_TEST

static Suite *shape_suite(void)
{
    Suite *s = suite_create("shape");
    TCase *t = tcase_create("shape");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, test_default_kind);
    tcase_add_test(t, test_default_kinds_in_program);
    tcase_add_test(t, test_declarations_override);
    tcase_add_test(t, test_named_dims_shared);
    tcase_add_test(t, test_named_dims_mismatch);
    tcase_add_test(t, test_unification_chain);
    tcase_add_test(t, test_scalar_broadcasting);
    tcase_add_test(t, test_constants_from_context);
    tcase_add_test(t, test_square_needed);
    tcase_add_test(t, test_diag_both_ways);
    tcase_add_test(t, test_transposes);
    tcase_add_test(t, test_assignments);
    tcase_add_test(t, test_function_text);
    tcase_add_test(t, test_error_messages);
    suite_add_tcase(s, t);
    return s;
}

MD_TEST_MAIN(shape_suite)
