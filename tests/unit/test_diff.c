/*
 * test_diff.c -- the differential rules and the identification identities
 * (src/2_core/diff.c), checked numerically.
 *
 * Three groups of tests.
 *
 * rule_*: one test per case of md_differential.  Each runs a small program
 * through parse and typecheck, asks md_gradient for a variable, and
 * compares the gradient with central finite differences (md_check, tol
 * 1e-6) on three random draws.  A few also pin down the printed form
 * where there is an obvious right answer (x'*A*x gives (A' + A)*x).
 *
 * identity_*: one test per row of md_identify's table.  The differential
 * df is built by hand with the raw constructor around md_diff_of (so the
 * node the identity is about is exactly there), identified, and checked
 * against its definition: evaluated with env.dir as the value of dX, df
 * must equal G:dir = sum(G .* dir) to 1e-10 relative.
 *
 * symmetric_*: the gradient with respect to a symmetric matrix is
 * sym(G) = (G + G')/2; the Matrix Cookbook's G + G' - diag(G) is shown
 * to disagree with finite differences along symmetric directions.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_ast.h"
#include "md_diff.h"
#include "md_eval.h"
#include "md_print.h"
#include "md_shape.h"
#include "md_simplify.h"
#include "md_test.h"

/* ---- programs ---- */

/* tprog, load, unload and find come from md_test.h */

/* md_check of G = d f/d var on seeds 1..3. */
static void check_against_fd(tprog *p, int s, md_expr *G, const char *what)
{
    for (unsigned long seed = 1; seed <= 3; seed++) {
        md_check_result r;
        int rc = md_check(p->ctx, p->typed.f, 1, &s, &G, seed, 1e-6, &r, NULL);
        ck_assert_msg(rc == 0 && r.ok, "%s: d/d%s, seed %lu: rc %d, worst relative error %g",
                      what, p->ctx->syms[s].name, seed, rc, r.worst_rel_err);
    }
}

/* The gradient of text's function with respect to var, checked against
   finite differences; if want_a is given, its printed form must be want_a
   or want_b. */
static void rule(const char *text, const char *var, const char *want_a, const char *want_b)
{
    tprog *p = load(text);
    int s = find(p, var);
    md_expr *G = md_gradient(p->ctx, p->typed.f, s);
    ck_assert_msg(G != NULL, "%s: no gradient for %s", text, var);
    ck_assert_int_eq(G->rows, p->ctx->syms[s].rows);
    ck_assert_int_eq(G->cols, p->ctx->syms[s].cols);
    if (want_a) {
        char *got = md_expr_to_string(p->ctx, G);
        ck_assert_msg(!strcmp(got, want_a) || (want_b && !strcmp(got, want_b)),
                      "%s: d/d%s printed '%s', want '%s'%s%s", text, var, got, want_a,
                      want_b ? " or " : "", want_b ? want_b : "");
        free(got);
    }
    check_against_fd(p, s, G, text);
    unload(p);
}

/* Every variable of text. */
static void rule_all(const char *text)
{
    tprog *p = load(text);
    for (int s = 0; s < p->ctx->nsyms; s++) {
        md_expr *G = md_gradient(p->ctx, p->typed.f, s);
        ck_assert_ptr_nonnull(G);
        check_against_fd(p, s, G, text);
    }
    unload(p);
}

/* ---- one test per differential rule ---- */

START_TEST(rule_sum)
{
    /* d(A + B) = dA + dB */
    rule("sum(A*X + X*B + X)", "X", NULL, NULL);
    rule("x'*y + x'*x + sum(x)", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_product)
{
    /* d(A*B*C) = dA*B*C + A*dB*C + A*B*dC */
    rule("x'*A*x", "x", "(A' + A)*x", "(A + A')*x");
    rule("x'*A*x", "A", "x*x'", NULL);
    rule("tr(A*X*B*X)", "X", NULL, NULL);
    rule("u'*X*W*X'*v", "X", NULL, NULL);
    /* scalar factors: d(s*t) = ds*t + s*dt */
    rule("tr(X)*sum(X)", "X", NULL, NULL);
    rule("a*b*c", "b", "a*c", "c*a");
    rule("(x'*y)*(x'*z)", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_hadamard)
{
    /* d(A .* B) = dA .* B + A .* dB */
    rule("sum(X .* A .* X)", "X", NULL, NULL);
    rule("x'*(y .* x)", "x", NULL, NULL);
    rule("sum(A .* X)", "X", "A", NULL);
}
END_TEST

START_TEST(rule_power_const)
{
    /* d(B.^k) = k*B.^(k-1) .* dB  for a constant scalar k */
    rule("sum(X.^3)", "X", "3*X.^2", NULL);
    rule("sum(x.^-2)", "x", "-2*x.^-3", NULL);
    rule("sum(X.^(1/2))", "X", NULL, NULL);
    rule("a^3", "a", "3*a^2", NULL);
    rule("sum((A*x).^2)", "x", NULL, NULL);
    /* a constant scalar exponent that is a variable of the program */
    rule("sum(X.^b)", "X", NULL, NULL);
}
END_TEST

/* d(B.^K) = K .* B.^(K-1) .* dB for a constant elementwise exponent K.
   Regression: this once multiplied K in with a matrix product, an
   ill-shaped vector*vector that made the evaluator abort
   (matdiff -c -w x 'sum(x.^y)'); fixed in db5f17d. */
START_TEST(rule_power_const_elementwise_exponent)
{
    rule("sum(x.^y)", "x", NULL, NULL);
    rule("sum(X.^Y)", "X", NULL, NULL);
    rule("sum(a .^ X)", "a", NULL, NULL);
}
END_TEST

START_TEST(rule_power_variable)
{
    /* d(B.^X) = B.^X .* (log(B) .* dX + X .* dB ./ B) */
    rule("sum(X.^Y)", "Y", "X.^Y.*log(X)", "log(X).*X.^Y");
    rule("sum(X.^X)", "X", NULL, NULL);
    rule("sum(2 .^ X)", "X", NULL, NULL);
    rule("a^b", "a", NULL, NULL);
    rule("a^b", "b", NULL, NULL);
    rule("a^a", "a", NULL, NULL);
}
END_TEST

START_TEST(rule_matrix_power_positive)
{
    /* d(B^k) = sum_i B^i dB B^(k-1-i) */
    rule("tr(X^3)", "X", "3*X'^2", NULL);
    rule("sum(X^2)", "X", NULL, NULL);
    rule("u'*X^4*v", "X", NULL, NULL);
    rule("sum((A*B)^3)", "A", NULL, NULL);
}
END_TEST

START_TEST(rule_matrix_power_negative)
{
    /* B^-k = inv(B)^k, d inv(B) = -inv(B) dB inv(B) */
    rule("tr(X^-2)", "X", NULL, NULL);
    rule("sum(X^-3)", "X", NULL, NULL);
    rule("u'*X^-2*v", "X", NULL, NULL);
}
END_TEST

START_TEST(rule_inverse)
{
    /* d inv(X) = -inv(X) dX inv(X) */
    rule("sum(inv(X))", "X", NULL, NULL);
    rule("x'*inv(X)*x", "X", "-inv(X')*x*x'*inv(X')", NULL);
    rule("x'*inv(X)*x", "x", "(inv(X') + inv(X))*x", "(inv(X) + inv(X'))*x");
    /* square factors: inv(A*B) with A n x m, B m x n is singular when m < n */
    rule("matrix X(n,n); matrix Y(n,n); tr(inv(X*Y))", "Y", NULL, NULL);
}
END_TEST

START_TEST(rule_transpose)
{
    /* d(A') = dA' */
    rule("sum(X'*A)", "X", "A*matrix(1)", NULL);
    rule("tr(X'*A*X)", "X", NULL, NULL);
    rule("x'*X'*y", "X", "y*x'", NULL);
}
END_TEST

/* d f(A) = f'(A) .* dA, on a matrix argument and on a product inside */
START_TEST(rule_fn_sin)
{
    rule("sum(sin(X))", "X", "cos(X)", NULL);
    rule("sum(sin(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_cos)
{
    rule("sum(cos(X))", "X", "-sin(X)", NULL);
    rule("sum(cos(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_tan)
{
    rule("sum(tan(X))", "X", NULL, NULL);
    rule("sum(tan(a*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_arcsin)
{
    rule("sum(arcsin(X))", "X", "(1 - X.^2).^(-1/2)", NULL);
    rule("sum(arcsin(a*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_arccos)
{
    rule("sum(arccos(X))", "X", "-(1 - X.^2).^(-1/2)", NULL);
    rule("sum(arccos(a*x))", "a", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_arctan)
{
    rule("sum(arctan(X))", "X", NULL, NULL);
    rule("sum(arctan(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_exp)
{
    rule("sum(exp(X))", "X", "exp(X)", NULL);
    rule("sum(exp(A*x))", "A", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_log)
{
    rule("sum(log(X))", "X", "1./X", "X.^-1");
    rule("sum(log(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_tanh)
{
    rule("sum(tanh(X))", "X", NULL, NULL);
    rule("sum(tanh(A*x))", "A", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_sqrt)
{
    rule("sum(sqrt(X))", "X", NULL, NULL);
    rule("sum(sqrt(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_abs)
{
    /* d abs(a) = sign(a) .* da (random data is almost surely away from 0) */
    rule("sum(abs(X))", "X", "sign(X)", NULL);
    rule("sum(abs(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_relu)
{
    /* d relu(a) = step(a) .* da */
    rule("sum(relu(X))", "X", "step(X)", NULL);
    /* w.r.t. x: with seed 2, (A*x)_5 = 7.6e-4 and the finite difference
       w.r.t. A steps across the kink (a test artefact, not an error) */
    rule("sum(relu(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_fn_sign_step)
{
    /* sign and step are locally constant: gradient 0 */
    rule("sum(sign(X))", "X", "matrix(0)", NULL);
    rule("sum(step(X)) + sum(X)", "X", "matrix(1)", NULL);
}
END_TEST

START_TEST(rule_fn_nonsmooth_at_zero)
{
    /* the convention at 0: sign(0) = step(0) = 0, a subgradient */
    tprog *p = load("sum(abs(X)) + sum(relu(X))");
    int s = find(p, "X");
    md_expr *G = md_gradient(p->ctx, p->typed.f, s);
    ck_assert_ptr_nonnull(G);
    md_env env;
    ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 1, &env), 0);
    md_mat *X = &env.val[s];
    long n = X->rows * X->cols;
    for (long i = 0; i < n; i++) X->v[i] = (double)(i % 3) - 1;   /* -1, 0, 1, ... */
    md_mat g;
    ck_assert_int_eq(md_eval(&env, G, &g), 0);
    for (long i = 0; i < n; i++) {
        double want = X->v[i] < 0 ? -1 : X->v[i] > 0 ? 2 : 0;
        ck_assert_msg(g.v[i] == want, "entry %ld at %g: got %g, want %g", i, X->v[i], g.v[i], want);
    }
    md_mat_free(&g);
    md_env_free(&env);
    unload(p);
}
END_TEST

START_TEST(rule_fn_generic)
{
    /* d f^(k)(a) = f^(k+1)(a) .* da */
    rule("function f; sum(f(X))", "X", "f'(X)", NULL);
    rule("function f; sum(f'(X))", "X", "f''(X)", NULL);
    rule("function f; sum(f''(A*x))", "x", NULL, NULL);
    rule("function f, g; sum(g(f(X)))", "X", NULL, NULL);
}
END_TEST

START_TEST(rule_reduction_sum)
{
    /* d sum(A) = sum(dA) */
    rule("sum(X)", "X", "matrix(1)", NULL);
    rule("sum(A*X)", "X", "A'*matrix(1)", NULL);
    rule("sum(x*y')", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_trace)
{
    /* d tr(A) = tr(dA) */
    rule("tr(X)", "X", "eye", NULL);
    rule("tr(A*X)", "X", "A'", NULL);
    rule("tr(X*A*X')", "X", NULL, NULL);
}
END_TEST

START_TEST(rule_diag_matrix)
{
    /* d diag(v) = diag(dv), v a vector */
    rule("sum(diag(x) .* A)", "x", "diag(A)", NULL);
    rule("y'*diag(x)*z", "x", NULL, NULL);
    rule("tr(diag(A*x))", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_diag_vector)
{
    /* d diag(X) = diag(dX), X square */
    rule("x'*diag(X)", "X", "diag(x)", NULL);
    rule("sum(diag(A*X))", "X", NULL, NULL);
    rule("norm2(diag(X))^2", "X", NULL, NULL);
}
END_TEST

START_TEST(rule_norm1)
{
    /* d norm1(A) = sign(A):dA */
    rule("norm1(X)", "X", "sign(X)", NULL);
    rule("norm1(A*x - y)", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_norm2)
{
    /* d norm2(A) = (A:dA)/norm2(A) */
    rule("norm2(X)", "X", "X/norm2(X)", NULL);
    rule("norm2(X)^2", "X", "2*X", NULL);
    rule("norm2(A*x - y)", "x", NULL, NULL);
    rule("norm2(x)", "x", NULL, NULL);
}
END_TEST

START_TEST(rule_det)
{
    /* d det(A) = det(A) tr(inv(A) dA) */
    rule("det(X)", "X", "det(X)*inv(X')", NULL);
    rule("matrix X(n,n); matrix Y(n,n); det(X*Y)", "X", NULL, NULL);
    rule("det(X)^2", "X", NULL, NULL);
}
END_TEST

START_TEST(rule_logdet)
{
    /* d logdet(A) = tr(inv(A) dA) */
    rule("logdet(X)", "X", "inv(X')", NULL);
    rule("logdet(X'*X)", "X", "2*X*inv(X'*X)", NULL);
    rule("matrix X(n,n); matrix Y(n,n); logdet(X*Y)", "Y", NULL, NULL);
}
END_TEST

START_TEST(rule_whole_programs)
{
    /* the brief's example and a few compositions, every variable */
    rule_all("scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2");
    rule_all("sum(log(exp(A*x) + 1)) - y'*A*x");
    rule_all("T = tanh(W*x); sum(tanh(V*T))");
    rule_all("logdet(X'*X) + tr(inv(X'*X)*A)");
}
END_TEST

START_TEST(rule_absent_variable)
{
    /* a variable the function does not contain has gradient 0 of its shape */
    tprog *p = load("matrix A(n, p); sum(A) + a");
    int s = find(p, "a");
    md_expr *G = md_gradient(p->ctx, p->typed.f, s);
    ck_assert(md_is_num(G, 1));
    p->typed.f = md_unary(p->ctx, MD_SUM, md_sym(p->ctx, find(p, "A")));
    G = md_gradient(p->ctx, p->typed.f, s);
    ck_assert(md_is_num(G, 0));
    unload(p);
}
END_TEST

/* ---- the identification identities, one test each ---- */

/*
 * A fixture with dimensions n, m, p and
 *   X: m x p (the usual variable)   A: n x m   B: p x n   C, D: m x p
 *   E: p x p   K, W: m x m          x, y, v: m   z: p   a: scalar
 */
static md_ctx *c;
static int n_, m_, p_;
static int sX, sA, sB, sC, sD, sE, sK, sW, sx, sy, sv, sz, sa;

static void setup(void)
{
    c = md_ctx_new();
    n_ = md_ctx_add_dim(c, "n", 1);
    m_ = md_ctx_add_dim(c, "m", 1);
    p_ = md_ctx_add_dim(c, "p", 1);
    sX = md_ctx_add_sym(c, "X", MD_SYM_MATRIX, m_, p_);
    sA = md_ctx_add_sym(c, "A", MD_SYM_MATRIX, n_, m_);
    sB = md_ctx_add_sym(c, "B", MD_SYM_MATRIX, p_, n_);
    sC = md_ctx_add_sym(c, "C", MD_SYM_MATRIX, m_, p_);
    sD = md_ctx_add_sym(c, "D", MD_SYM_MATRIX, m_, p_);
    sE = md_ctx_add_sym(c, "E", MD_SYM_MATRIX, p_, p_);
    sK = md_ctx_add_sym(c, "K", MD_SYM_MATRIX, m_, m_);
    sW = md_ctx_add_sym(c, "W", MD_SYM_MATRIX, m_, m_);
    sx = md_ctx_add_sym(c, "x", MD_SYM_VECTOR, m_, MD_DIM_ONE);
    sy = md_ctx_add_sym(c, "y", MD_SYM_VECTOR, m_, MD_DIM_ONE);
    sv = md_ctx_add_sym(c, "v", MD_SYM_VECTOR, m_, MD_DIM_ONE);
    sz = md_ctx_add_sym(c, "z", MD_SYM_VECTOR, p_, MD_DIM_ONE);
    sa = md_ctx_add_sym(c, "a", MD_SYM_SCALAR, MD_DIM_ONE, MD_DIM_ONE);
}

static void teardown(void) { md_ctx_free(c); }

static md_expr *S(int s) { return md_sym(c, s); }
static md_expr *dS(int s) { return md_diff_of(c, s); }

/* Raw nodes: kind, shape, arguments; no simplification. */
static md_expr *raw(md_kind k, int r, int cl, int nargs, md_expr **args)
{
    return md_expr_make(c, k, r, cl, 0, 0, 0, nargs, args, NULL);
}
#define RAW(k, r, cl, ...) \
    raw(k, r, cl, (int)(sizeof((md_expr *[]){__VA_ARGS__}) / sizeof(md_expr *)), (md_expr *[]){__VA_ARGS__})

static md_expr *T(md_expr *e) { return RAW(MD_TRANS, e->cols, e->rows, e); }
static md_expr *red(md_kind k, md_expr *e) { return RAW(k, MD_DIM_ONE, MD_DIM_ONE, e); }

/*
 * G = md_identify(df, s) must satisfy df(dir) = G:dir on random data.
 * Returns G.
 */
static md_expr *identify_ok(md_expr *df, int s)
{
    ck_assert(md_is_scalar(df));
    ck_assert(df->has_diff);
    md_expr *G = md_identify(c, df, s);
    ck_assert_ptr_nonnull(G);
    ck_assert_int_eq(G->rows, c->syms[s].rows);
    ck_assert_int_eq(G->cols, c->syms[s].cols);
    for (unsigned long seed = 1; seed <= 3; seed++) {
        md_env env;
        ck_assert_int_eq(md_env_random(c, df, seed, &env), 0);
        md_mat dfv, g;
        ck_assert_int_eq(md_eval(&env, df, &dfv), 0);
        ck_assert_int_eq(md_eval(&env, G, &g), 0);
        const md_mat *d = &env.dir[s];
        ck_assert_int_eq(g.rows, d->rows);
        ck_assert_int_eq(g.cols, d->cols);
        double dot = 0;
        for (long i = 0; i < d->rows * d->cols; i++) dot += g.v[i] * d->v[i];
        double want = dfv.v[0];
        ck_assert_msg(fabs(dot - want) <= 1e-10 * fmax(1.0, fabs(want)),
                      "seed %lu: G:dir = %.17g but df(dir) = %.17g", seed, dot, want);
        md_mat_free(&dfv);
        md_mat_free(&g);
        md_env_free(&env);
    }
    return G;
}

/* G printed. */
static void expect_print(md_expr *G, const char *want_a, const char *want_b)
{
    char *got = md_expr_to_string(c, G);
    ck_assert_msg(!strcmp(got, want_a) || (want_b && !strcmp(got, want_b)),
                  "printed '%s', want '%s'%s%s", got, want_a, want_b ? " or " : "",
                  want_b ? want_b : "");
    free(got);
}

START_TEST(identity_sum)
{
    /* A:(B + C) = A:B + A:C: a sum of scalars, and a sum inside a chain */
    md_expr *dX = dS(sX);
    md_expr *xt = T(S(sx));
    md_expr *df = RAW(MD_ADD, MD_DIM_ONE, MD_DIM_ONE,
                      RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, xt, dX, S(sz)), red(MD_SUM, dX));
    ck_assert_int_eq(df->kind, MD_ADD);
    /* matrix(1) in a sum prints as the broadcast 1 */
    expect_print(identify_ok(df, sX), "x*z' + 1", "1 + x*z'");
    md_expr *inner = RAW(MD_ADD, m_, p_, dX, RAW(MD_MUL, m_, p_, dX, S(sE)));
    identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, xt, inner, S(sz)), sX);
    /* several parents of one node: their adjoints are summed */
    md_expr *shared = RAW(MD_MUL, m_, m_, dS(sW), S(sK));
    identify_ok(RAW(MD_ADD, MD_DIM_ONE, MD_DIM_ONE, red(MD_SUM, shared),
                    red(MD_TR, RAW(MD_MUL, m_, m_, S(sK), shared)),
                    red(MD_TR, shared)), sW);
}
END_TEST

START_TEST(identity_scalar_factor)
{
    /* A:(s*B) = (A:B):s  for a scalar factor s containing dX */
    md_expr *s = RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sx)), dS(sX), S(sz));   /* x'*dX*z */
    md_expr *N = RAW(MD_MUL, n_, m_, s, S(sA));                                  /* s*A */
    md_expr *G = identify_ok(red(MD_SUM, N), sX);
    expect_print(G, "sum(A)*x*z'", NULL);
    /* all factors scalar: a*(x'*dX*z) */
    G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, S(sa), s), sX);
    expect_print(G, "a*x*z'", NULL);
    /* the factor in the middle of three scalars, then a chain: sum(a*s*(3/2)*A*K) */
    identify_ok(red(MD_SUM, RAW(MD_MUL, n_, m_, S(sa), s, md_num_si(c, 3, 2), S(sA), S(sK))), sX);
}
END_TEST

START_TEST(identity_chain_factor)
{
    /* A:(L*F*R) = (L'*A*R'):F */
    md_expr *dX = dS(sX);
    /* F last: tr(B*A*dX) -> (B*A)' = A'*B' */
    md_expr *G = identify_ok(red(MD_TR, RAW(MD_MUL, p_, p_, S(sB), S(sA), dX)), sX);
    expect_print(G, "A'*B'", NULL);
    /* F first: tr(dX*B*A) -> (B*A)' */
    G = identify_ok(red(MD_TR, RAW(MD_MUL, m_, m_, dX, S(sB), S(sA))), sX);
    expect_print(G, "A'*B'", NULL);
    /* F in the middle, adjoint matrix(1): sum(A*dX*B) -> A'*matrix(1)*B' */
    G = identify_ok(red(MD_SUM, RAW(MD_MUL, n_, n_, S(sA), dX, S(sB))), sX);
    expect_print(G, "A'*matrix(1)*B'", NULL);
    /* scalar factors in front of the chain stay with the adjoint */
    identify_ok(red(MD_SUM, RAW(MD_MUL, n_, n_, S(sa), md_num_si(c, -2, 3), S(sA), dX, S(sB))), sX);
    /* a longer chain around a square variable: x'*K*dW*K'*y -> K'*x*y'*K */
    identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sx)), S(sK), dS(sW), T(S(sK)), S(sy)), sW);
}
END_TEST

START_TEST(identity_hadamard)
{
    /* A:(B .* C) = (A .* B):C */
    md_expr *G = identify_ok(red(MD_SUM, RAW(MD_HAD, m_, p_, S(sC), dS(sX), S(sD))), sX);
    expect_print(G, "C.*D", "D.*C");
    /* with an adjoint that is not matrix(1): x'*(y .* dv) -> x .* y */
    G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sx)),
                        RAW(MD_HAD, m_, MD_DIM_ONE, S(sy), dS(sv))), sv);
    expect_print(G, "x.*y", "y.*x");
}
END_TEST

START_TEST(identity_transpose)
{
    /* A:B' = A':B: tr(C*dX') -> C */
    md_expr *G = identify_ok(red(MD_TR, RAW(MD_MUL, m_, m_, S(sC), T(dS(sX)))), sX);
    expect_print(G, "C", NULL);
    /* z'*dX'*x -> x*z' */
    G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sz)), T(dS(sX)), S(sx)), sX);
    expect_print(G, "x*z'", NULL);
}
END_TEST

START_TEST(identity_sum_reduction)
{
    /* a:sum(B) = (a*matrix(1)):B */
    md_expr *G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, S(sa), red(MD_SUM, dS(sX))), sX);
    expect_print(G, "a*matrix(1)", NULL);
    G = identify_ok(red(MD_SUM, dS(sv)), sv);
    expect_print(G, "vector(1)", NULL);
}
END_TEST

START_TEST(identity_trace)
{
    /* a:tr(B) = (a*eye):B */
    md_expr *G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, S(sa), red(MD_TR, dS(sW))), sW);
    expect_print(G, "a*eye", NULL);
}
END_TEST

START_TEST(identity_diag_matrix)
{
    /* A:diag(v) = diag(A):v */
    md_expr *Dv = RAW(MD_DIAGM, m_, m_, dS(sv));
    md_expr *G = identify_ok(red(MD_SUM, RAW(MD_HAD, m_, m_, S(sK), Dv)), sv);
    expect_print(G, "diag(K)", NULL);
    /* x'*diag(dv)*y -> x .* y */
    identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sx)), Dv, S(sy)), sv);
}
END_TEST

START_TEST(identity_diag_vector)
{
    /* A:diag(B) = diag(A):B */
    md_expr *G = identify_ok(RAW(MD_MUL, MD_DIM_ONE, MD_DIM_ONE, T(S(sy)),
                                 RAW(MD_DIAGV, m_, MD_DIM_ONE, dS(sW))), sW);
    expect_print(G, "diag(y)", NULL);
    /* sum(diag(K*dW)) */
    identify_ok(red(MD_SUM, RAW(MD_DIAGV, m_, MD_DIM_ONE, RAW(MD_MUL, m_, m_, S(sK), dS(sW)))), sW);
}
END_TEST

START_TEST(identity_other_variable)
{
    /* only dX of the variable asked for counts; a df without it gives 0 */
    md_expr *df = RAW(MD_ADD, MD_DIM_ONE, MD_DIM_ONE, red(MD_SUM, dS(sX)), red(MD_TR, dS(sW)));
    md_expr *G = md_identify(c, df, sW);
    ck_assert_ptr_nonnull(G);
    expect_print(G, "eye", NULL);
    G = md_identify(c, red(MD_SUM, dS(sX)), sW);
    ck_assert_ptr_nonnull(G);
    ck_assert(md_is_zero(G));
    ck_assert_int_eq(G->rows, m_);
}
END_TEST

START_TEST(identity_rejects_nonlinear)
{
    /* log(dX) is not linear in dX: no identity applies */
    md_expr *f = md_expr_make(c, MD_FUNC, m_, p_, MD_FN_LOG, 0, 0, 1, (md_expr *[]){dS(sX)}, NULL);
    ck_assert_ptr_null(md_identify(c, red(MD_SUM, f), sX));
}
END_TEST

/* ---- symmetric variables ---- */

/* G + G' - diag(diag(G)), the Matrix Cookbook's "gradient" for symmetric X */
static md_expr *cookbook(md_ctx *ctx, md_expr *G)
{
    md_expr *dg = md_unary(ctx, MD_DIAGM, md_unary(ctx, MD_DIAGV, G));
    return md_sub(ctx, md_add2(ctx, G, md_trans(ctx, G)), dg);
}

START_TEST(symmetric_gradient_is_sym_G)
{
    static const char *progs[] = {
        "symmetric S(n); x'*S*y",
        "symmetric S(n); logdet(S) + tr(A*S)",
        "symmetric S(n); sum(S*A) + norm2(S*x)^2",
        NULL,
    };
    for (int i = 0; progs[i]; i++) {
        tprog *p = load(progs[i]);
        int s = find(p, "S");
        md_expr *df = md_differential(p->ctx, p->typed.f, s);
        md_expr *G = md_identify(p->ctx, df, s);
        ck_assert_ptr_nonnull(G);
        md_expr *sg = md_gradient(p->ctx, p->typed.f, s);
        /* sym(G) = (G + G')/2, and it is symmetric */
        ck_assert_ptr_eq(sg, md_scale_si(p->ctx, 1, 2, md_add2(p->ctx, G, md_trans(p->ctx, G))));
        ck_assert_ptr_eq(md_trans(p->ctx, sg), sg);
        /* it matches finite differences along symmetric directions */
        check_against_fd(p, s, sg, progs[i]);
        unload(p);
    }
    /* the printed form for x'*S*y */
    tprog *p = load("symmetric S(n); x'*S*y");
    char *got = md_expr_to_string(p->ctx, md_gradient(p->ctx, p->typed.f, find(p, "S")));
    ck_assert_msg(!strcmp(got, "(x*y' + y*x')/2") || !strcmp(got, "(y*x' + x*y')/2"), "%s", got);
    free(got);
    unload(p);
}
END_TEST

START_TEST(symmetric_cookbook_formula_is_wrong)
{
    /* G + G' - diag(G) double-counts the off-diagonal entries */
    static const char *progs[] = {
        "symmetric S(n); x'*S*y",
        "symmetric S(n); logdet(S) + tr(A*S)",
        NULL,
    };
    for (int i = 0; progs[i]; i++) {
        tprog *p = load(progs[i]);
        int s = find(p, "S");
        md_expr *G = md_identify(p->ctx, md_differential(p->ctx, p->typed.f, s), s);
        md_expr *cb = cookbook(p->ctx, G);
        for (unsigned long seed = 1; seed <= 3; seed++) {
            md_check_result r;
            ck_assert_int_eq(md_check(p->ctx, p->typed.f, 1, &s, &cb, seed, 1e-6, &r, NULL), 1);
            ck_assert_msg(r.worst_rel_err > 1e-2, "%s: cookbook error only %g", progs[i],
                          r.worst_rel_err);
        }
        /* What it is instead: entry (i, j) of the cookbook matrix is the
           derivative along E_ij + E_ji (moving the one free entry s_ij),
           so cb:(E_ij + E_ji) is twice that derivative, while
           sym(G):(E_ij + E_ji) is exactly it. */
        md_env env;
        ck_assert_int_eq(md_env_random(p->ctx, p->typed.f, 7, &env), 0);
        md_expr *sg = md_gradient(p->ctx, p->typed.f, s);
        md_mat cbv, sgv;
        ck_assert_int_eq(md_eval(&env, cb, &cbv), 0);
        ck_assert_int_eq(md_eval(&env, sg, &sgv), 0);
        long nn = cbv.rows;
        md_mat *Sv = &env.val[s];
        const double h = 1e-5;
        double fv[2];
        for (int k = 0; k < 2; k++) {   /* central difference along E_01 + E_10 */
            double t = k == 0 ? h : -h;
            Sv->v[1] += t;
            Sv->v[nn] += t;
            md_mat out;
            ck_assert_int_eq(md_eval(&env, p->typed.f, &out), 0);
            fv[k] = out.v[0];
            md_mat_free(&out);
            Sv->v[1] -= t;
            Sv->v[nn] -= t;
        }
        double fd = (fv[0] - fv[1]) / (2 * h);
        double tol = 1e-6 * (1 + fabs(fd));
        ck_assert_msg(fabs(cbv.v[1] - fd) < tol, "cookbook entry %g vs fd %g", cbv.v[1], fd);
        ck_assert_msg(fabs(sgv.v[1] + sgv.v[nn] - fd) < tol, "sym(G):D %g vs fd %g",
                      sgv.v[1] + sgv.v[nn], fd);
        ck_assert_msg(fabs(cbv.v[1] + cbv.v[nn] - 2 * fd) < 2 * tol, "cookbook:D %g vs 2 fd %g",
                      cbv.v[1] + cbv.v[nn], 2 * fd);
        md_mat_free(&cbv);
        md_mat_free(&sgv);
        md_env_free(&env);
        unload(p);
    }
}
END_TEST

static Suite *diff_suite(void)
{
    Suite *s = suite_create("diff");
    TCase *r = tcase_create("rules");
    tcase_set_timeout(r, 60);
    tcase_add_test(r, rule_sum);
    tcase_add_test(r, rule_product);
    tcase_add_test(r, rule_hadamard);
    tcase_add_test(r, rule_power_const);
    tcase_add_test(r, rule_power_const_elementwise_exponent);
    tcase_add_test(r, rule_power_variable);
    tcase_add_test(r, rule_matrix_power_positive);
    tcase_add_test(r, rule_matrix_power_negative);
    tcase_add_test(r, rule_inverse);
    tcase_add_test(r, rule_transpose);
    tcase_add_test(r, rule_fn_sin);
    tcase_add_test(r, rule_fn_cos);
    tcase_add_test(r, rule_fn_tan);
    tcase_add_test(r, rule_fn_arcsin);
    tcase_add_test(r, rule_fn_arccos);
    tcase_add_test(r, rule_fn_arctan);
    tcase_add_test(r, rule_fn_exp);
    tcase_add_test(r, rule_fn_log);
    tcase_add_test(r, rule_fn_tanh);
    tcase_add_test(r, rule_fn_sqrt);
    tcase_add_test(r, rule_fn_abs);
    tcase_add_test(r, rule_fn_relu);
    tcase_add_test(r, rule_fn_sign_step);
    tcase_add_test(r, rule_fn_nonsmooth_at_zero);
    tcase_add_test(r, rule_fn_generic);
    tcase_add_test(r, rule_reduction_sum);
    tcase_add_test(r, rule_trace);
    tcase_add_test(r, rule_diag_matrix);
    tcase_add_test(r, rule_diag_vector);
    tcase_add_test(r, rule_norm1);
    tcase_add_test(r, rule_norm2);
    tcase_add_test(r, rule_det);
    tcase_add_test(r, rule_logdet);
    tcase_add_test(r, rule_whole_programs);
    tcase_add_test(r, rule_absent_variable);
    suite_add_tcase(s, r);

    TCase *t = tcase_create("identities");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, identity_sum);
    tcase_add_test(t, identity_scalar_factor);
    tcase_add_test(t, identity_chain_factor);
    tcase_add_test(t, identity_hadamard);
    tcase_add_test(t, identity_transpose);
    tcase_add_test(t, identity_sum_reduction);
    tcase_add_test(t, identity_trace);
    tcase_add_test(t, identity_diag_matrix);
    tcase_add_test(t, identity_diag_vector);
    tcase_add_test(t, identity_other_variable);
    tcase_add_test(t, identity_rejects_nonlinear);
    suite_add_tcase(s, t);

    TCase *y = tcase_create("symmetric");
    tcase_set_timeout(y, 60);
    tcase_add_test(y, symmetric_gradient_is_sym_G);
    tcase_add_test(y, symmetric_cookbook_formula_is_wrong);
    suite_add_tcase(s, y);
    return s;
}

MD_TEST_MAIN(diff_suite)
