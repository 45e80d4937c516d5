/*
 * test_steps.c -- derivations (--steps) are honest: every line is checked.
 *
 * For each program, md_steps_derive builds the derivation and
 * md_steps_check evaluates every equation line on random data along a
 * random direction: each must equal the directional derivative given by
 * md_gradient within 1e-9 relative error, on several seeds.  The result
 * line must also be the gradient itself, and the text must contain the
 * identities it claims to use.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <stdio.h>
#include <string.h>

#include "md_ast.h"
#include "md_diff.h"
#include "md_print.h"
#include "md_shape.h"
#include "md_steps.h"
#include "md_test.h"

typedef struct prog {
    const char *text;
    const char *wrt;   /* comma-separated */
} prog;

static const prog progs[] = {
    {"scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2", "U,V"},
    {"matrix gamma; norm2(R - P.*(gamma*gamma'))^2", "gamma"},
    {"function f; norm2(vector(1)'*f(X*V))^2", "V"},
    {"vector alpha; function h; norm2(h(X*W)*alpha - y)^2", "W"},
    {"scalar beta; matrix Phi; beta*sum(abs(Phi'*Phi - eye))", "Phi"},
    {"x'*A*x", "x"},
    {"0.5*x'*x", "x"},
    {"logdet(X)", "X"},
    {"tr(A*X*B)", "X"},
    {"det(X)", "X"},
    {"sum(log(1 + exp(-y.*(X*w))))", "w"},
    {"norm2(W2*tanh(W1*x) - y)^2", "W1,W2"},
    {"symmetric S; x'*S*x + tr(S*A)", "S"},
    {"symmetric S; logdet(S) - tr(S*A)", "S"},
    {"norm1(A*x - b)", "x"},
    {"sum(exp(X).*sin(X))", "X"},
    {"tr(inv(X)*A)", "X"},
    {"x'*diag(v)*x", "v"},
    {"sum(diag(X*A))", "X"},
    {"a*sum(x)^2 + a^3", "a"},
    {"norm2(A*x)", "x"},
    {"sum(relu(W*x)) + sum(sqrt(x.^2 + 1))", "W,x"},
};

static void check_prog(const prog *p)
{
    tprog *tp = load(p->text);
    md_ctx *ctx = tp->ctx;
    md_typed t = tp->typed;
    int wrt[8], n = 0;
    char buf[64];
    snprintf(buf, sizeof buf, "%s", p->wrt);
    for (char *s = strtok(buf, ","); s; s = strtok(NULL, ",")) wrt[n++] = md_ctx_find_sym(ctx, s);
    md_derivation d;
    ck_assert_msg(md_steps_derive(ctx, t.f, n, wrt, &d) == 0, "%s: derive", p->text);
    int checked = 0;
    for (unsigned long seed = 1; seed <= 3; seed++) {
        double w = md_steps_check(ctx, t.f, &d, seed);
        if (w < 0) continue;   /* no point in the domain for this seed */
        checked++;
        ck_assert_msg(w <= 1e-9, "%s: a line of the derivation is off by %g (seed %lu)", p->text, w, seed);
    }
    ck_assert_msg(checked > 0, "%s: never checked", p->text);
    /* every step line names its identity; the last line of each block is the result */
    int results = 0;
    for (int i = 0; i < d.nlines; i++) {
        if (d.lines[i].kind == MD_LINE_PAIRS && !d.lines[i].lhs) ck_assert_ptr_nonnull(d.lines[i].why);
        if (d.lines[i].kind == MD_LINE_RESULT) results++;
    }
    ck_assert_int_eq(results, n);
    md_buf out = {0};
    md_steps_text(ctx, &d, &out);
    md_buf want = {0};
    md_buf_printf(&want, "∂%s/∂", d.fname);   /* ℓ when the program has an f */
    ck_assert_ptr_nonnull(strstr(out.s, want.s));
    md_buf_free(&want);
    md_buf_free(&out);
    md_steps_free(&d);
    unload(tp);
}

START_TEST(test_every_line_checks)
{
    check_prog(&progs[_i]);
}
END_TEST

/* The seeds' substitutions: seed 004 names M = P∘γγᵀ - R and ends with
   2(Mᵀ∘Pᵀ + M∘P)γ, the accepted answer up to the order of ∘. */
START_TEST(test_seed_004_text)
{
    tprog *tp = load("matrix gamma; norm2(R - P.*(gamma*gamma'))^2");
    md_ctx *ctx = tp->ctx;
    md_typed t = tp->typed;
    int wrt = find(tp, "gamma");
    md_derivation d;
    ck_assert_int_eq(md_steps_derive(ctx, t.f, 1, &wrt, &d), 0);
    md_buf out = {0};
    md_steps_text(ctx, &d, &out);
    ck_assert_ptr_nonnull(strstr(out.s, "M = (γγᵀ)∘P - R\n"));
    ck_assert_ptr_nonnull(strstr(out.s, "f = M : M\n"));
    ck_assert_ptr_nonnull(strstr(out.s, "df = 2M : dM\n"));
    ck_assert_ptr_nonnull(strstr(out.s, "[A:(B∘C) = (A∘B):C]"));
    ck_assert_ptr_nonnull(strstr(out.s, "∂f/∂γ = 2(Mᵀ∘Pᵀ + M∘P)γ\n"));
    md_buf_free(&out);
    md_steps_free(&d);
    unload(tp);
}
END_TEST

/*
 * The derivation and the gradient printer take the same identification
 * steps (md_identify_step), so for every program of the golden cases the
 * derivation's result, with its names expanded, is the very node
 * md_gradient gives.
 */
typedef struct tally {
    int programs, variables, same;
    md_buf differ;
} tally;

static void same_result(const char *name, const char *text, const char *args, void *arg)
{
    tally *t = arg;
    (void)args;
    tprog *p = load_any(text);
    if (p->rc != 0 || !md_is_scalar(p->typed.f) || p->ctx->nsyms == 0) {
        unload(p);
        return;
    }
    md_ctx *ctx = p->ctx;
    int n = ctx->nsyms;
    int *wrt = calloc((size_t)n, sizeof *wrt);
    int through_vec = 0;
    for (int i = 0; i < n; i++) {
        wrt[i] = i;
        through_vec |= !md_gradient(ctx, p->typed.f, i);   /* through vec() or kron(): an input error */
    }
    if (through_vec) {
        free(wrt);
        unload(p);
        return;
    }
    md_derivation d;
    int rc = md_steps_derive(ctx, p->typed.f, n, wrt, &d);
    ck_assert_msg(rc == 0, "%s: the derivation failed", name);
    t->programs++;
    for (int i = 0; i < n; i++) {
        md_expr *want = md_gradient(ctx, p->typed.f, wrt[i]);
        md_expr *got = md_steps_expand(ctx, &d, d.grads[i]);
        t->variables++;
        if (got == want) {
            t->same++;
        } else {
            char *a = md_expr_to_string(ctx, got), *b = md_expr_to_string(ctx, want);
            md_buf_printf(&t->differ, "  %s, d/d%s:\n    steps    %s\n    gradient %s\n", name,
                          ctx->syms[wrt[i]].name, a, b);
            free(a);
            free(b);
        }
    }
    md_steps_free(&d);
    free(wrt);
    unload(p);
}

START_TEST(test_golden_results_are_the_gradients)
{
    static const char *const files[] = {"seeds", "operators", "functions", "shapes", "cli",
                                        "robustness", "regressions", NULL};
    tally t = {0, 0, 0, {0}};
    golden_programs(files, same_result, &t);
    ck_assert_int_gt(t.programs, 100);
    ck_assert_msg(t.same == t.variables, "%d of %d results differ from md_gradient:\n%s",
                  t.variables - t.same, t.variables, t.differ.s ? t.differ.s : "");
    md_buf_free(&t.differ);
}
END_TEST

static Suite *steps_suite(void)
{
    Suite *s = suite_create("steps");
    TCase *tc = tcase_create("steps");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_every_line_checks, 0, (int)(sizeof progs / sizeof progs[0]));
    tcase_add_test(tc, test_seed_004_text);
    tcase_add_test(tc, test_golden_results_are_the_gradients);
    suite_add_tcase(s, tc);
    return s;
}

MD_TEST_MAIN(steps_suite)
