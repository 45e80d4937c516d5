/*
 * test_emit.c -- the C code generator (src/4_emit/emit.c), checked by compiling
 * and running what it emits.
 *
 * For each program of the table: parse, typecheck, take the gradient with
 * respect to every variable, draw data with md_env_random and evaluate f
 * and the gradients with the internal evaluator (the ground truth).  Then
 * emit the code in five variants -- CBLAS and loops, column- and
 * row-major, and CBLAS with emit-time bracketing from size hints -- each
 * under its own function name, together with its --header and a small
 * wrapper that calls it through arrays (and defines the callbacks of
 * generic functions as the evaluator's family; it includes the standard
 * headers a caller may include first, <complex.h>, <stdio.h>, <errno.h>,
 * ..., so that a declared name that is one of their macros fails the
 * compile).  One `cc -shared` invocation per program compiles them all
 * with -std=c99 -Wall -Wextra -Wpedantic -Werror; the test dlopens the
 * result and compares f and every gradient with the evaluator (relative
 * error under 1e-10), once with every gradient requested and once with
 * all but one pointer NULL.  The workspace is exactly the size the
 * emitted NAME_workspace asks for and filled with NaN first, so a read of
 * scratch that was never written shows up as a mismatch.
 *
 * Separate tests: the generated code under AddressSanitizer and
 * UndefinedBehaviorSanitizer (as an executable, since a sanitized shared
 * object cannot be loaded into an uninstrumented process), with clang,
 * the renaming of names that are macros or C++ keywords (and the header
 * compiled as C++), and the emit-time errors.
 *
 * The CBLAS variants are skipped, with a message, when cblas.h or
 * -lopenblas is missing.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <dlfcn.h>
#include <math.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "md_ast.h"
#include "md_diff.h"
#include "md_emit.h"
#include "md_eval.h"
#include "md_shape.h"
#include "md_simplify.h"
#include "md_test.h"

/* ---- the programs ---- */

typedef struct ecase {
    const char *name;
    const char *prog;
    int hints;           /* also emit with emit-time bracketing from size hints */
    int golden;          /* taken from tests/golden/: may be skipped (no domain point) */
} ecase;

static const ecase base_cases[] = {
    {"seed000", "function f; norm2(vector(1)'*f(X*V))^2", 0, 0},
    {"seed001", "vector alpha; function h; norm2(h(X*W)*alpha - y)^2", 1, 0},
    {"seed002", "scalar beta; matrix Phi; beta*sum(abs(Phi'*Phi - eye))", 0, 0},
    {"seed003", "scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2", 1, 0},
    {"seed004", "matrix gamma; norm2(R - P.*(gamma*gamma'))^2", 0, 0},
    {"quadratic", "x'*A*x", 0, 0},
    {"logdet", "logdet(X)", 0, 0},
    {"trace", "tr(A*X*B)", 1, 0},
    {"logistic", "sum(log(1 + exp(-y.*(X*w))))", 0, 0},
    {"twolayer", "norm2(W2*tanh(W1*x) - y)^2", 0, 0},
    /* softmax and logsumexp, also where exp alone would overflow (1000*x
       has entries near 1000: the code shifts by the largest one) */
    {"softmax", "logsumexp(W*x) - y'*W*x + y'*log(softmax(A*z)) + sum(softmax(W*x).*y)", 1, 0},
    {"softmax_large", "logsumexp(1000*x) + y'*softmax(1000*x) - logsumexp(-1000*x)", 0, 0},
    {"invdet", "det(X) + tr(inv(A)*X)", 0, 0},
    {"diag", "sum(diag(X)) + x'*diag(x)*y + tr(diag(diag(X)*x'*X*z))", 0, 0},
    {"symmetric", "symmetric S; x'*S*x + logdet(S) + tr(S*A*S)", 0, 0},
    /* diagonal matrices as scalings of rows and columns, never n x n
       (md_struct_rewrite): left, right, both, inside chains and traces */
    {"diag_scaling", "vector s, u; norm2(diag(s)*X*W - Y)^2 + sum(A*diag(s)*B) + tr(X'*diag(u)*X*C)"
                     " + sum(diag(s)*A*diag(u)) + norm2(diag(s)*(X*w - y))^2 + x'*diag(s)^2*x", 1, 0},
    {"powers", "sum(X.^3) + norm1(X) + tr(X^2) + tr(X^-2) + sum(sqrt(exp(X))) + sum(X.^X)", 0, 0},
    {"scalars", "a^2*b + sin(a) + exp(b)/a", 0, 0},
    {"chain5", "tr(A*B*C*D*E) + x'*A*B*C*D*y", 1, 0},
    {"functions", "sum(sin(x) + cos(x) + tan(x).*arctan(x) + relu(x) + sqrt(abs(x)) + sign(x).*x + step(x).*x"
                  " + arcsin(x/4) + arccos(x/4))", 0, 0},
    {"ridge", "norm2(X*w - y)^2 + c*norm2(w)^2", 0, 0},
    {"quartic", "(x'*x)^2 + x'*A'*A*x + norm2(x'*A)^2", 1, 0},
    {"mpow", "tr(X^3) + sum(inv(X)*x) + sum(X^-1*x)", 0, 0},
    {"unused", "scalar a; matrix B; vector z; a*sum(x) + 0*sum(z)", 0, 0},
    {"rowvec", "norm2(x'*A - y')^2 + x'*A*y", 0, 0},
    {"keywords", "scalar double, md_x; vector for; matrix int; double*for'*int*for + md_x*sum(int)", 0, 0},
    /* inverses as solves from both sides, transposed, between products,
       with the LU shared by det and logdet */
    {"solves", "vector x; vector y; matrix A; matrix X; x'*inv(A)*y + sum(inv(A)*X) + sum(X'*inv(A'))"
               " + sum(inv(A')*X*y) + y'*inv(A')*x + logdet(A) + det(A)", 1, 0},
    /* every side and transpose of the solve, on matrices (m > 1) */
    {"solves_right", "sum(exp(B*inv(A))) + sum(exp(B*inv(A'))) + sum(exp(inv(A)*B)) + sum(exp(inv(A')*B))"
                     " + sum(exp(C'*inv(A))) + sum(exp(inv(A)*C')) + tr(inv(A)*C*inv(A))", 1, 0},
    {"two_inverses", "sum(inv(A)*inv(C)*x) + x'*inv(A)*B*inv(C)*y + tr(3*inv(C)) + sum(inv(A)*inv(C))", 1, 0},
    {"gaussian", "symmetric S; vector m; logdet(S) + (y - m)'*inv(S)*(y - m) + tr(Y'*inv(S)*Y)", 1, 0},
    /* symmetric matrices factored by Cholesky (md_lu_sym) and quadratic
       forms by one triangular solve (md_lu_qf) in f alone: S drawn
       indefinite here (no logdet), so both fall back to the LU; a
       computed symmetric matrix, positive definite; forms from the right
       (tr(Y*inv(S)*Y')) and scaled */
    {"sym_indefinite", "symmetric S; tr(Y'*inv(S)*Y) + x'*inv(S)*x + det(S)", 1, 0},
    {"sym_computed", "matrix A; logdet(A'*A + eye) + 3*tr(Y'*inv(A'*A + eye)*Y)", 1, 0},
    {"sym_inverse", "matrix A; tr(Y'*inv(A'*A + eye)*Y) + sum(inv(A'*A + eye))", 1, 0},
    {"sym_right", "symmetric S; logdet(S) + tr(Z*inv(S)*Z') - 2*x'*inv(S)*x", 1, 0},
    /* traces of products, fused (md_trdot, md_chain_trace): every
       transpose combination, chains, inverses inside */
    {"traces", "tr(A*B) + tr(A'*B') + tr(A*B') + tr(A'*B) + tr(X*Y*Z) + tr(inv(A)*B*C) + tr(C*inv(A))"
               " + 2*tr(X'*W*Y') + tr(B*inv(A)*C*inv(A'))", 1, 0},
    {"inverse_powers", "tr(inv(A)^2) + x'*A^-3*x + sum(inv(A')*x)", 0, 0},
    /* names that are macros of the headers the code includes or sits
       next to (I from <complex.h>, which OpenBLAS's <cblas.h> includes;
       FP_NAN, M_PI from <math.h>; EOF, errno), as variables and as
       declared dimensions, and C++ keywords (the header is C++ too) */
    {"macro_dims", "matrix X(I, K), W(K, J), Y(I, J); norm2(X*W - Y)^2", 1, 0},
    {"macro_identity", "x'*I*x", 0, 0},
    {"macro_math", "scalar M_PI, errno; vector complex; x'*A*x + sum(FP_NAN) + sum(math_errhandling)"
                   " + M_PI*sum(INFINITY) + sum(isnan .* complex) + errno*sum(EOF) + sum(offsetof .* unix)", 0, 0},
    {"cxx_keywords", "scalar new; vector this; matrix class; new*this'*class*this + sum(delete)"
                     " + sum(and .* or)", 0, 0},
    /* eye and u*1' read as md_ri == md_ci, u[md_ri] in a row/column loop,
       also where nothing reads element md_i (norm1(eye): random seed 3) */
    {"eye_loops", "vector x(n); matrix A(n, n); x'*x*norm1(eye(n)) + sum(eye(n))*sum(x) + norm2(A - eye)^2"
                  " + sum(diag(x)*A) + sum(A*diag(x))", 0, 0},
};
enum { NBASE = sizeof base_cases / sizeof base_cases[0] };

/* The cases: the ones above, then every program of a successful gradient
   case in the tests/golden/ case files (the issue asks for every golden
   case). */
static ecase *cases;
static int ncases;
static const char **skipped;   /* skipped[i]: why case i was not compiled, or NULL */
static int *nplans;            /* nplans[i]: plans in case i's code without hints */

/* ---- the golden programs ---- */

static void add_case(const char *name, const char *prog, int hints, int golden)
{
    for (int i = 0; i < ncases; i++)
        if (!strcmp(cases[i].prog, prog)) return;
    cases = realloc(cases, (size_t)(ncases + 1) * sizeof *cases);
    cases[ncases++] = (ecase){strdup(name), strdup(prog), hints, golden};
}

static void add_golden(const char *name, const char *prog, const char *args, void *arg)
{
    (void)args;
    (void)arg;
    char nm[64];
    int m = 0;
    m += snprintf(nm, sizeof nm, "g%d_", ncases);
    for (const char *c = name; *c && m < 40; c++) nm[m++] = (char)(isalnum((unsigned char)*c) ? *c : '_');
    nm[m] = 0;
    add_case(nm, prog, 0, 1);
}

static void load_cases(void)
{
    for (int i = 0; i < NBASE; i++) add_case(base_cases[i].name, base_cases[i].prog, base_cases[i].hints, 0);
    static const char *const files[] = {"seeds", "operators", "functions", "shapes", "cli", "robustness", NULL};
    golden_programs(files, add_golden, NULL);
    skipped = calloc((size_t)ncases + 1, sizeof *skipped);
    nplans = calloc((size_t)ncases + 1, sizeof *nplans);
}

/* ---- loading ---- */

/* A program with its gradients with respect to every variable. */
typedef struct eprog {
    tprog *t;
    md_ctx *ctx;
    md_expr *f;
    int n;
    int *wrt;
    md_expr **grads;
} eprog;

/* Loads text; for a golden program (tolerant) returns NULL instead of
   failing when it does not typecheck or has no point in its domain. */
static eprog *eload_opt(const char *text, int tolerant)
{
    eprog *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    /* the graph the C backend emits: no factoring of sums */
    p->t = load_with(text, 1);
    if (tolerant && (p->t->rc != 0 || !md_is_scalar(p->t->typed.f) || p->t->ctx->nsyms == 0)) {
        unload(p->t);
        free(p);
        return NULL;
    }
    ck_assert_msg(p->t->rc == 0, "'%s' failed: %s", text, p->t->err);
    p->ctx = p->t->ctx;
    p->f = p->t->typed.f;
    p->n = p->ctx->nsyms;
    p->wrt = calloc((size_t)p->n + 1, sizeof *p->wrt);
    p->grads = calloc((size_t)p->n + 1, sizeof *p->grads);
    for (int i = 0; i < p->n; i++) {
        p->wrt[i] = i;
        p->grads[i] = md_gradient(p->ctx, p->f, i);
        if (!p->grads[i] && tolerant) {
            /* a gradient through vec() or kron(): an input error */
            free(p->wrt);
            free(p->grads);
            unload(p->t);
            free(p);
            return NULL;
        }
        ck_assert_ptr_nonnull(p->grads[i]);
    }
    /* the gradients emitted are checked against finite differences too
       (the emitted code is then compared with their values) */
    md_check_result *res = calloc((size_t)p->n + 1, sizeof *res);
    int crc = md_check(p->ctx, p->f, p->n, p->wrt, p->grads, 1, 1e-6, res, NULL);
    ck_assert_msg(crc != 1, "'%s': a gradient disagrees with finite differences", text);
    free(res);
    return p;
}

static eprog *eload(const char *text) { return eload_opt(text, 0); }

static void eunload(eprog *p)
{
    free(p->wrt);
    free(p->grads);
    unload(p->t);
    free(p);
}

/* ---- files ---- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/md_emit_XXXXXX", base && *base ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void remove_tmpdir(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
}

/* Runs a shell command; returns its exit status, its output in *out. */
static int run(const char *cmd, char **out)
{
    char full[4096];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    ck_assert_ptr_nonnull(p);
    md_buf b = {0};
    char chunk[4096];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk - 1, p)) > 0) {
        chunk[k] = 0;
        md_buf_puts(&b, chunk);
    }
    int st = pclose(p);
    if (out) *out = b.s ? md_buf_take(&b) : strdup("");
    else md_buf_free(&b);
    return st;
}

static int have_blas(void)
{
    static int known = -1;
    if (known >= 0) return known;
    make_tmpdir();
    write_file("probe.c", "#include <cblas.h>\nint main(void) { double x = 1; return (int)cblas_ddot(1, &x, 1, &x, 1) - 1; }\n");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cc -o %s/probe %s/probe.c -lopenblas", tmpdir, tmpdir);
    known = run(cmd, NULL) == 0;
    remove_tmpdir();
    if (!known) fprintf(stderr, "test_emit: cblas.h or -lopenblas missing: CBLAS variants skipped\n");
    return known;
}

/* ---- variants ---- */

typedef struct variant {
    const char *name;
    int blas, row, hints;
    int plan;            /* > 0: compiled with MD_FORCE_PLAN=plan (0-based), used
                            when the code without hints has more plans */
} variant;

/* Without size hints the emitted code holds a few plans and runs the one
   its cost model picks for the dims; variants p1 .. p5 force each other
   plan, so that every plan is checked, whatever the sizes pick. */
static const variant variants[] = {
    {"bc", 1, 0, 0, 0}, {"br", 1, 1, 0, 0}, {"lc", 0, 0, 0, 0}, {"lr", 0, 1, 0, 0}, {"bh", 1, 0, 1, 0},
    {"p1", 0, 0, 0, 1}, {"p2", 0, 1, 0, 2}, {"p3", 0, 0, 0, 3}, {"p4", 0, 1, 0, 4}, {"p5", 0, 0, 0, 5},
};
enum { NVARIANTS = sizeof variants / sizeof variants[0] };

/* The evaluator's generic family (md_eval.h): f_k^(m)(x). */
static void write_generic(md_buf *w, const char *cname, int k, int m)
{
    double a = 0.7 + 0.3 * k, b = 0.4 + 0.5 * k;
    static const char *const phase[4] = {"sin(t)", "cos(t)", "-sin(t)", "-cos(t)"};
    md_buf_printf(w, "double %s(double x) { double t = %.17g * x + %.17g; return pow(%.17g, %d) * (%s); }\n",
                  cname, a, b, a, m, phase[m & 3]);
}

/* The wrapper of variant v: call_<v>(dims, in, g, work), ws_<v>(dims). */
static void write_wrapper(md_buf *w, const eprog *p, const char *v)
{
    md_ctx *ctx = p->ctx;
    md_buf_printf(w, "#include \"%s.h\"\n", v);
    md_buf_printf(w, "double call_%s(const long *dims, const double *const *in, double *const *g, double *work)\n{\n"
                     "    %s_dims d;\n    memcpy(&d, dims, sizeof d);\n    return %s(&d", v, v, v);
    for (int s = 0; s < ctx->nsyms; s++) {
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in[%d]%s", s, sc ? "[0]" : "");
    }
    for (int i = 0; i < p->n; i++) md_buf_printf(w, ", g[%d]", i);
    md_buf_puts(w, ", work);\n}\n");
    md_buf_printf(w, "size_t ws_%s(const long *dims)\n{\n    %s_dims d;\n    memcpy(&d, dims, sizeof d);\n"
                     "    return %s_workspace(&d);\n}\n", v, v, v);
    for (int k = 0; k < ctx->nfuncs; k++)
        for (int m = 0; m <= 3; m++) {
            char cname[256];
            if (m) snprintf(cname, sizeof cname, "%s_%s_d%d", v, ctx->funcs[k], m);
            else snprintf(cname, sizeof cname, "%s_%s", v, ctx->funcs[k]);
            write_generic(w, cname, k, m);
        }
}

/* A copy of the column-major r x c m in the other layout when row. */
static double *layout(const double *m, long r, long c, int row)
{
    double *x = malloc((size_t)(r * c) * sizeof *x + 8);
    for (long j = 0; j < c; j++)
        for (long i = 0; i < r; i++) x[row ? i * c + j : i + j * r] = m[i + j * r];
    return x;
}

static double rel_err(const double *got, const double *want, long n)
{
    double e = 0, w = 0;
    for (long i = 0; i < n; i++) {
        e += (got[i] - want[i]) * (got[i] - want[i]);
        w += want[i] * want[i];
    }
    if (isnan(e)) return INFINITY;
    return sqrt(e) / (w > 0 ? sqrt(w) : 1e-200);
}

typedef double (*call_fn)(const long *, const double *const *, double *const *, double *);
typedef size_t (*ws_fn)(const long *);

/* Calls variant v with the gradients in mask and checks against want. */
static void check_call(const eprog *p, const md_env *env, const md_mat *want, const variant *v, call_fn call,
                       ws_fn ws, const char *cname, unsigned long mask)
{
    md_ctx *ctx = p->ctx;
    long dims[64] = {0};
    ck_assert_int_lt(ctx->ndims, 64);
    for (int d = 1; d < ctx->ndims; d++) dims[d - 1] = env->dimsize[d];
    size_t nw = ws(dims);
    double *work = malloc(nw * sizeof(double) + 8);
    for (size_t i = 0; i < nw; i++) work[i] = NAN;
    const double **in = calloc((size_t)ctx->nsyms + 1, sizeof *in);
    for (int s = 0; s < ctx->nsyms; s++)
        in[s] = layout(env->val[s].v, env->val[s].rows, env->val[s].cols, v->row);
    double **g = calloc((size_t)p->n + 1, sizeof *g);
    for (int i = 0; i < p->n; i++)
        if (mask >> i & 1) {
            long sz = want[i + 1].rows * want[i + 1].cols;
            g[i] = malloc((size_t)sz * sizeof(double) + 8);
            for (long k = 0; k < sz; k++) g[i][k] = NAN;
        }
    double fv = call(dims, in, (double *const *)g, work);
    double ef = fabs(fv - want[0].v[0]) / (fabs(want[0].v[0]) > 0 ? fabs(want[0].v[0]) : 1e-200);
    ck_assert_msg(ef < 1e-10, "%s/%s: f = %.17g, evaluator %.17g", cname, v->name, fv, want[0].v[0]);
    for (int i = 0; i < p->n; i++) {
        if (!g[i]) continue;
        const md_mat *m = &want[i + 1];
        double *back = malloc((size_t)(m->rows * m->cols) * sizeof *back + 8);
        /* undo the layout: back[i + j*r] = g[row ? i*c + j : ...] */
        for (long c = 0; c < m->cols; c++)
            for (long r = 0; r < m->rows; r++)
                back[r + c * m->rows] = g[i][v->row ? r * m->cols + c : r + c * m->rows];
        double e = rel_err(back, m->v, m->rows * m->cols);
        ck_assert_msg(e < 1e-10, "%s/%s: d/d%s relative error %.3g (first entry %.17g, evaluator %.17g)", cname,
                      v->name, ctx->syms[p->wrt[i]].name, e, back[0], m->v[0]);
        free(back);
    }
    for (int i = 0; i < p->n; i++) free(g[i]);
    free(g);
    for (int s = 0; s < ctx->nsyms; s++) free((void *)in[s]);
    free(in);
    free(work);
}

/* The data and the evaluator's values for case c. */
typedef struct prepared {
    eprog *p;
    md_env env;
    md_mat *want;      /* want[0] = f, want[1 + i] = gradient i */
} prepared;

/* 0, or (golden cases only) -1 with the reason in *why: skip the case. */
static int prepare(const ecase *c, prepared *r, const char **why)
{
    r->p = eload_opt(c->prog, c->golden);
    if (!r->p) {
        *why = "not a program with variables and a scalar function";
        return -1;
    }
    memset(&r->env, 0, sizeof r->env);
    if (md_env_random(r->p->ctx, r->p->f, 1, &r->env) != 0) {
        ck_assert_msg(c->golden, "%s: no point in the domain", c->name);
        eunload(r->p);
        *why = "no point in the domain";
        return -1;
    }
    md_expr **roots = calloc((size_t)r->p->n + 1, sizeof *roots);
    r->want = calloc((size_t)r->p->n + 1, sizeof *r->want);
    roots[0] = r->p->f;
    for (int i = 0; i < r->p->n; i++) roots[i + 1] = r->p->grads[i];
    int erc = md_eval_many(&r->env, r->p->n + 1, roots, r->want);
    free(roots);
    if (erc != 0) {
        ck_assert_msg(c->golden, "%s: the evaluator failed", c->name);
        free(r->want);
        md_env_free(&r->env);
        eunload(r->p);
        *why = "the evaluator failed at the point drawn";
        return -1;
    }
    return 0;
}

static void release(prepared *r)
{
    for (int i = 0; i <= r->p->n; i++) md_mat_free(&r->want[i]);
    free(r->want);
    md_env_free(&r->env);
    eunload(r->p);
}

static int variant_used(const ecase *c, const variant *v, int blas, int plans)
{
    if (v->blas && !blas) return 0;
    if (v->plan) return v->plan < plans;
    return !v->hints || c->hints;
}

/*
 * The fixture: emits every variant of every case into tmpdir/<case>/ and
 * compiles all cases at once with make -j (the compiler's time dominates
 * the suite).  Each case's compiler output is kept in its build.log.
 */
static int suite_blas;
static char suitedir[256];   /* the fixture's directory (tests may make others) */

static void compile_all(void)
{
    suite_blas = have_blas();
    make_tmpdir();
    md_buf mk = {0};
    md_buf_puts(&mk, "all:");
    /* the rules follow the list of targets (mk2) */
    md_buf mk2 = {0};
    for (int i = 0; i < ncases; i++) {
        const ecase *c = &cases[i];
        prepared r;
        if (prepare(c, &r, &skipped[i]) < 0) continue;
        md_buf_printf(&mk, " %s/case.so", c->name);
        md_ctx *ctx = r.p->ctx;
        char dir[64];
        snprintf(dir, sizeof dir, "%s", c->name);
        char path[600];
        snprintf(path, sizeof path, "%s/%s", tmpdir, dir);
        mkdir(path, 0700);
        md_buf cmd = {0}, wrap = {0};
        md_buf_printf(&cmd, "cc -shared -fPIC -O2 -std=c99 -Wall -Wextra -Wpedantic -Werror -o %s/case.so", dir);
        /* the headers a caller may include before the generated one: their
           macros must not meet the names it declares */
        md_buf_puts(&wrap, "#include <assert.h>\n#include <complex.h>\n#include <errno.h>\n#include <math.h>\n"
                           "#include <stdbool.h>\n#include <stdint.h>\n#include <stdio.h>\n#include <stdlib.h>\n"
                           "#include <string.h>\n");
        long *hints = calloc((size_t)ctx->ndims + 1, sizeof *hints);
        for (int d = 1; d < ctx->ndims; d++) hints[d] = r.env.dimsize[d];
        int declined = 0;
        nplans[i] = 1;
        for (int k = 0; k < NVARIANTS && !declined; k++) {
            const variant *v = &variants[k];
            if (!variant_used(c, v, suite_blas, nplans[i])) continue;
            md_emit_opts o = {v->name, v->row, v->blas, v->hints ? hints : NULL, NULL, NULL};
            md_buf code = {0}, hdr = {0};
            if (c->golden && md_emit_c(ctx, r.p->f, r.p->n, r.p->wrt, r.p->grads, &o, &code, NULL) != 0) {
                /* a construct the backend declines, with its message: fine */
                declined = 1;
                md_buf_free(&code);
                break;
            }
            if (c->golden) md_buf_free(&code);
            ck_assert_int_eq(md_emit_c(ctx, r.p->f, r.p->n, r.p->wrt, r.p->grads, &o, &code, stderr), 0);
            ck_assert_int_eq(md_emit_header(ctx, r.p->n, r.p->wrt, &o, &hdr, stderr), 0);
            char fn[128];
            const char *pl = strstr(code.s, " * Products are bracketed and shared by one of ");
            if (!v->hints && !v->plan && pl) nplans[i] = atoi(pl + strlen(" * Products are bracketed and shared by one of "));
            snprintf(fn, sizeof fn, "%s/%s.c", dir, v->name);
            write_file(fn, code.s);
            snprintf(fn, sizeof fn, "%s/%s.h", dir, v->name);
            write_file(fn, hdr.s);
            if (v->plan) {   /* compiled through a file that forces the plan */
                char force[160];
                snprintf(fn, sizeof fn, "%s/%s_force.c", dir, v->name);
                snprintf(force, sizeof force, "#define MD_FORCE_PLAN %d\n#include \"%s.c\"\n", v->plan, v->name);
                write_file(fn, force);
                md_buf_printf(&cmd, " %s/%s_force.c", dir, v->name);
            } else {
                md_buf_printf(&cmd, " %s/%s.c", dir, v->name);
            }
            write_wrapper(&wrap, r.p, v->name);
            md_buf_free(&code);
            md_buf_free(&hdr);
        }
        char fn[128];
        snprintf(fn, sizeof fn, "%s/wrap.c", dir);
        write_file(fn, wrap.s);
        md_buf_printf(&cmd, " %s/wrap.c -lm%s", dir, suite_blas ? " -lopenblas" : "");
        if (declined) skipped[i] = "the C backend declines a construct in it";
        else md_buf_printf(&mk2, "%s/case.so:\n\t@%s > %s/build.log 2>&1\n", dir, cmd.s, dir);
        md_buf_free(&cmd);
        md_buf_free(&wrap);
        free(hints);
        release(&r);
    }
    int nskip = 0, ngolden = 0;
    for (int i = 0; i < ncases; i++) {
        ngolden += cases[i].golden;
        if (skipped[i]) {
            nskip++;
            if (getenv("MD_EMIT_VERBOSE")) fprintf(stderr, "test_emit: skipped %s: %s\n", cases[i].name, skipped[i]);
        }
    }
    fprintf(stderr, "test_emit: %d programs (%d from the golden cases), %d skipped%s\n", ncases, ngolden, nskip,
            nskip ? " (MD_EMIT_VERBOSE=1 lists them)" : "");
    md_buf_printf(&mk, "\n%s", mk2.s ? mk2.s : "");
    md_buf_free(&mk2);
    write_file("Makefile", mk.s);
    md_buf_free(&mk);
    snprintf(suitedir, sizeof suitedir, "%s", tmpdir);
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "make -k -s -j%ld -C %s", ncpu > 0 ? ncpu + 1 : 2, tmpdir);
    run(cmd, NULL);   /* failures show per case */
}

static void cleanup_all(void)
{
    if (getenv("MD_EMIT_KEEP")) {
        fprintf(stderr, "test_emit: kept %s\n", suitedir);
        return;
    }
    snprintf(tmpdir, sizeof tmpdir, "%s", suitedir);
    remove_tmpdir();
}

START_TEST(emitted_code_matches_evaluator)
{
    const ecase *c = &cases[_i];
    if (skipped[_i]) return;   /* a golden program with no point in its domain, or declined */
    char so[600], log[600];
    snprintf(so, sizeof so, "%s/%s/case.so", suitedir, c->name);
    snprintf(log, sizeof log, "%s/%s/build.log", suitedir, c->name);
    void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        char cmd[700], *out = NULL;
        snprintf(cmd, sizeof cmd, "cat %s", log);
        run(cmd, &out);
        /* the start of the log: Check refuses a message over a few kB and
           would report only an early exit */
        ck_abort_msg("%s: the emitted code does not compile (%s):\n%.2000s", c->name, dlerror(), out);
    }
    prepared r;
    const char *why = NULL;
    ck_assert_msg(prepare(c, &r, &why) == 0, "%s: %s", c->name, why);
    for (int k = 0; k < NVARIANTS; k++) {
        const variant *v = &variants[k];
        if (!variant_used(c, v, suite_blas, nplans[_i])) continue;
        char sym[64];
        snprintf(sym, sizeof sym, "call_%s", v->name);
        call_fn call;
        *(void **)&call = dlsym(h, sym);
        snprintf(sym, sizeof sym, "ws_%s", v->name);
        ws_fn ws;
        *(void **)&ws = dlsym(h, sym);
        ck_assert(call && ws);
        int n = r.p->n;
        unsigned long all = n >= 63 ? ~0ul : (1ul << n) - 1;
        check_call(r.p, &r.env, r.want, v, call, ws, c->name, all);
        check_call(r.p, &r.env, r.want, v, call, ws, c->name, n ? 1ul << (n - 1) : 0);   /* only the last */
        check_call(r.p, &r.env, r.want, v, call, ws, c->name, 0);                        /* f alone */
    }
    dlclose(h);
    release(&r);
}
END_TEST

/* ---- sanitizers and clang ---- */

/* The start of a test driver's main.c: the includes, the generic
   functions' callbacks (f_h, f_h_d1, ...), main's dims d (the first
   ndims0 dimensions of ctx, product dimensions skipped: they are no
   fields) and, when h > 0, the step h. */
static void driver_head(md_buf *w, md_ctx *ctx, const md_env *env, int ndims0, double h)
{
    md_buf_puts(w, "#include <math.h>\n#include <stdio.h>\n#include <stdlib.h>\n#include \"f.h\"\n");
    for (int k = 0; k < ctx->nfuncs; k++)
        for (int m = 0; m <= 3; m++) {
            char cname[256];
            if (m) snprintf(cname, sizeof cname, "f_%s_d%d", ctx->funcs[k], m);
            else snprintf(cname, sizeof cname, "f_%s", ctx->funcs[k]);
            write_generic(w, cname, k, m);
        }
    md_buf_puts(w, "int main(void)\n{\n    f_dims d = {");
    int nf = 0;
    for (int dd = 1; dd < ndims0; dd++)
        if (!md_dim_is_product(ctx, dd)) md_buf_printf(w, "%s%ld", nf++ ? ", " : "", env->dimsize[dd]);
    if (!nf) md_buf_puts(w, "0");
    md_buf_puts(w, "};\n");
    if (h > 0) md_buf_printf(w, "    const double h = %g;\n", h);
}

/* A standalone program that runs variant "f" of p on env's data with an
   exactly sized workspace and prints f. */
static void write_driver(md_buf *w, const eprog *p, const md_env *env)
{
    md_ctx *ctx = p->ctx;
    driver_head(w, ctx, env, ctx->ndims, 0);
    for (int s = 0; s < ctx->nsyms; s++) {
        long n = env->val[s].rows * env->val[s].cols;
        md_buf_printf(w, "    double *in%d = malloc(%ld * sizeof(double));\n", s, n);
        for (long i = 0; i < n; i++) md_buf_printf(w, "    in%d[%ld] = %.17g;\n", s, i, env->val[s].v[i]);
    }
    for (int i = 0; i < p->n; i++) {
        const md_symbol *sy = &ctx->syms[p->wrt[i]];
        md_buf_printf(w, "    double *g%d = malloc(%ld * sizeof(double));\n", i,
                      env->dimsize[sy->rows] * env->dimsize[sy->cols]);
    }
    md_buf_puts(w, "    double *work = malloc(f_workspace(&d) * sizeof(double) + 1);\n");
    md_buf_puts(w, "    double v = f(&d");
    for (int s = 0; s < ctx->nsyms; s++) {
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in%d%s", s, sc ? "[0]" : "");
    }
    for (int i = 0; i < p->n; i++) md_buf_printf(w, ", g%d", i);
    md_buf_puts(w, ", work);\n    printf(\"%.17g\\n\", v);\n");
    /* f alone (its own plans when the gradients form an inverse) agrees */
    md_buf_puts(w, "    double v0 = f(&d");
    for (int s = 0; s < ctx->nsyms; s++) {
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in%d%s", s, sc ? "[0]" : "");
    }
    for (int i = 0; i < p->n; i++) md_buf_puts(w, ", NULL");
    md_buf_puts(w, ", work);\n    if (isfinite(v) ? !(fabs(v0 - v) <= 1e-9 * (1 + fabs(v))) : isfinite(v0)) {\n"
                   "        fprintf(stderr, \"f alone %.17g, with the gradients %.17g\\n\", v0, v);\n"
                   "        return 3;\n    }\n");
    for (int s = 0; s < ctx->nsyms; s++) md_buf_printf(w, "    free(in%d);\n", s);
    for (int i = 0; i < p->n; i++) md_buf_printf(w, "    free(g%d);\n", i);
    md_buf_puts(w, "    free(work);\n    return 0;\n}\n");
}

/* Compiles case c (variant blas/row) with cc_flags into an executable and
   checks that it runs cleanly and prints f.  With zero set, the variable
   of that name is all zeros (a singular matrix) and f must come out NaN or
   infinite. */
static void run_standalone_at(const ecase *c, int blas, int row, const char *cc_flags, const char *zero)
{
    eprog *p = eload(c->prog);
    md_env env = {0};
    ck_assert_int_eq(md_env_random(p->ctx, p->f, 2, &env), 0);
    md_mat fv = {0};
    if (zero) {
        int s = 0;
        while (s < p->ctx->nsyms && strcmp(p->ctx->syms[s].name, zero) != 0) s++;
        ck_assert_int_lt(s, p->ctx->nsyms);
        memset(env.val[s].v, 0, (size_t)(env.val[s].rows * env.val[s].cols) * sizeof(double));
    } else {
        ck_assert_int_eq(md_eval(&env, p->f, &fv), 0);
    }
    if (row)   /* the driver passes data as is: transpose the matrices */
        for (int s = 0; s < p->ctx->nsyms; s++) {
            md_mat *m = &env.val[s];
            double *t = layout(m->v, m->rows, m->cols, 1);
            memcpy(m->v, t, (size_t)(m->rows * m->cols) * sizeof *t);
            free(t);
        }
    md_emit_opts o = {"f", row, blas, NULL, NULL, NULL};
    md_buf code = {0}, hdr = {0}, drv = {0}, cmd = {0};
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, stderr), 0);
    ck_assert_int_eq(md_emit_header(p->ctx, p->n, p->wrt, &o, &hdr, stderr), 0);
    write_driver(&drv, p, &env);
    make_tmpdir();
    write_file("f.c", code.s);
    write_file("f.h", hdr.s);
    write_file("main.c", drv.s);
    md_buf_printf(&cmd, "%s -std=c99 -Wall -Wextra -Wpedantic -Werror -o %s/prog %s/f.c %s/main.c -lm%s && %s/prog",
                  cc_flags, tmpdir, tmpdir, tmpdir, blas ? " -lopenblas" : "", tmpdir);
    char *out = NULL;
    int st = run(cmd.s, &out);
    ck_assert_msg(st == 0, "%s (%s): failed:\n%s", c->name, cc_flags, out);
    double got = strtod(out, NULL);
    if (zero)
        ck_assert_msg(!isfinite(got), "%s with %s = 0 (%s): f = %.17g, not NaN or infinite", c->name, zero,
                      blas ? "CBLAS" : "loops", got);
    else
        ck_assert_msg(fabs(got - fv.v[0]) <= 1e-10 * fabs(fv.v[0]), "%s: f = %.17g, evaluator %.17g", c->name,
                      got, fv.v[0]);
    free(out);
    remove_tmpdir();
    md_buf_free(&code);
    md_buf_free(&hdr);
    md_buf_free(&drv);
    md_buf_free(&cmd);
    md_mat_free(&fv);
    md_env_free(&env);
    eunload(p);
}

static void run_standalone(const ecase *c, int blas, int row, const char *cc_flags)
{
    run_standalone_at(c, blas, row, cc_flags, NULL);
}

static const ecase *find_case(const char *name)
{
    for (int i = 0; i < ncases; i++)
        if (!strcmp(cases[i].name, name)) return &cases[i];
    return NULL;
}

START_TEST(sanitizers)
{
    /* the executable is built by the compiler, not by this (possibly
       sanitized) process, so this works in every build */
    static const char *const names[] = {"seed003", "mpow", "chain5", "diag", "solves", "solves_right"};
    const char *flags = "cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";
    if (run("echo 'int main(void){return 0;}' | cc -fsanitize=address,undefined -x c -o /dev/null -", NULL) != 0) {
        fprintf(stderr, "test_emit: the compiler cannot build sanitized programs: skipped\n");
        return;
    }
    for (int i = 0; i < 6; i++) run_standalone(find_case(names[i]), i % 2 == 0 && have_blas(), i % 4 >= 2, flags);
    run_standalone(find_case("solves"), 0, 1, flags);
    run_standalone(find_case("solves_right"), have_blas(), 1, flags);
    run_standalone(find_case("traces"), 0, 0, flags);
    run_standalone(find_case("traces"), have_blas(), 1, flags);
    /* Cholesky or LU for symmetric matrices, quadratic forms by md_lu_qf */
    for (int i = 0; i < 4; i++) {
        run_standalone(find_case("sym_right"), i % 2 && have_blas(), i / 2, flags);
        run_standalone(find_case("sym_indefinite"), i % 2 && have_blas(), i / 2, flags);
    }
}
END_TEST

START_TEST(singular)
{
    /* a singular matrix: f is NaN or infinite (never a finite wrong value),
       and the code neither crashes nor reads out of bounds */
    const char *flags = "cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";
    if (run("echo 'int main(void){return 0;}' | cc -fsanitize=address,undefined -x c -o /dev/null -", NULL) != 0)
        flags = "cc -O1";
    static const ecase cs[] = {
        {"singular_logdet", "logdet(X) + x'*inv(X)*x", 0, 0},
        {"singular_inverse", "sum(inv(X)) + det(X)", 0, 0},
        {"singular_solve", "sum(inv(X)*B*y)", 0, 0},
    };
    for (int i = 0; i < 3; i++)
        for (int blas = 0; blas <= have_blas(); blas++) run_standalone_at(&cs[i], blas, i == 1, flags, "X");
}
END_TEST

/* Sizes past what the code can index (issue 11, part 7): NAME_workspace
   returns SIZE_MAX and NAME returns NaN without touching work or the
   gradients -- dimensions under 1, over INT_MAX (BLAS and LAPACK take
   int), arrays whose element count overflows long, and a workspace
   whose size in bytes would wrap size_t.  Under the sanitizers when the
   compiler has them, both backends. */
/* Writes code (f.c), hdr (f.h) and drv (main.c) into a new temporary
   directory, compiles them under flags with the project's warnings
   (-Werror), runs the program and asserts that it succeeded (text and
   what name the case).  Returns its output (malloc'd); the caller removes
   the directory (remove_tmpdir). */
static char *build_run(const char *code, const char *hdr, const char *drv, const char *flags, int blas,
                       const char *text, const char *what)
{
    make_tmpdir();
    write_file("f.c", code);
    write_file("f.h", hdr);
    write_file("main.c", drv);
    md_buf cmd = {0};
    md_buf_printf(&cmd, "%s -std=c99 -Wall -Wextra -Wpedantic -Werror -o %s/prog %s/f.c %s/main.c -lm%s && %s/prog",
                  flags, tmpdir, tmpdir, tmpdir, blas ? " -lopenblas" : "", tmpdir);
    char *out = NULL;
    int st = run(cmd.s, &out);
    ck_assert_msg(st == 0, "%s (%s, %s): exit %d:\n%.2000s", text, what, flags, st, out);
    md_buf_free(&cmd);
    return out;
}

START_TEST(huge_sizes)
{
    const char *flags = "cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";
    if (run("echo 'int main(void){return 0;}' | cc -fsanitize=address,undefined -x c -o /dev/null -", NULL) != 0)
        flags = "cc -O1";
    eprog *p = eload("scalar lambda; matrix Y(n, q), X(n, p), U(p, d), V(q, d); "
                     "norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2 + logdet(U'*U)");
    for (int blas = 0; blas <= have_blas(); blas++) {
        md_emit_opts o = {"f", 0, blas, NULL, NULL, NULL};
        md_buf code = {0}, hdr = {0};
        ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, stderr), 0);
        ck_assert_int_eq(md_emit_header(p->ctx, p->n, p->wrt, &o, &hdr, stderr), 0);
        const char *mainc =
                   "#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include \"f.h\"\n"
                   "static int bad(long n, long q, long p, long d)\n{\n"
                   "    f_dims dm = {n, q, p, d};\n"
                   "    double y = 1, g[5] = {7, 7, 7, 7, 7};\n"
                   "    if (f_workspace(&dm) != SIZE_MAX) return 1;\n"
                   "    double v = f(&dm, 0.5, &y, &y, &y, &y, g, g + 1, g + 2, g + 3, g + 4, NULL);\n"
                   "    return !isnan(v) || g[0] != 7 || g[4] != 7;\n}\n"
                   "int main(void)\n{\n"
                   "    f_dims ok = {3, 3, 3, 2};\n"
                   "    if (f_workspace(&ok) == SIZE_MAX || f_workspace(&ok) > 1000) return 10;\n"
                   "    if (bad(0, 3, 3, 2)) return 11;\n"
                   "    if (bad(3, 3, 3, -1)) return 12;\n"
                   "    if (bad(3000000000L, 3, 3, 2)) return 13;\n"
                   "    if (bad(2147483647L, 2147483647L, 3, 2)) return 14;\n"
                   "    if (bad(1L << 40, 1L << 40, 1L << 40, 1L << 40)) return 15;\n"
                   "    if (bad(2000000000L, 3, 3, 2000000000L)) return 16;\n"
                   "    puts(\"ok\");\n    return 0;\n}\n";
        free(build_run(code.s, hdr.s, mainc, flags, blas, "seed 003", "huge sizes"));
        remove_tmpdir();
        md_buf_free(&code);
        md_buf_free(&hdr);
    }
    eunload(p);
    /* product dimensions (n*p) overflow long before they overflow the
       checks, which multiply in double: kron(A, B)*x by x and y */
    tprog *t = load_with("matrix A(n, m), B(p, q); vector x(m*q), y(n*p); norm2(kron(A, B)*x - y)^2", 1);
    ck_assert_int_eq(t->rc, 0);
    int wrt[2] = {md_ctx_find_sym(t->ctx, "x"), md_ctx_find_sym(t->ctx, "y")};
    md_expr *g[2] = {md_gradient(t->ctx, t->typed.f, wrt[0]), md_gradient(t->ctx, t->typed.f, wrt[1])};
    for (int blas = 0; blas <= have_blas(); blas++) {
        md_emit_opts o = {"f", blas, blas, NULL, NULL, NULL};   /* row-major with CBLAS */
        md_buf code = {0}, hdr = {0};
        ck_assert_int_eq(md_emit_c(t->ctx, t->typed.f, 2, wrt, g, &o, &code, stderr), 0);
        ck_assert_int_eq(md_emit_header(t->ctx, 2, wrt, &o, &hdr, stderr), 0);
        const char *mainc =
                   "#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n#include \"f.h\"\n"
                   "static int bad(long n, long m, long p, long q)\n{\n"
                   "    f_dims dm = {n, m, p, q};\n"
                   "    double a = 1, g[2] = {7, 7};\n"
                   "    if (f_workspace(&dm) != SIZE_MAX) return 1;\n"
                   "    double v = f(&dm, &a, &a, &a, &a, g, g + 1, NULL);\n"
                   "    return !isnan(v) || g[0] != 7 || g[1] != 7;\n}\n"
                   "int main(void)\n{\n"
                   "    f_dims ok = {2, 3, 2, 2};\n"
                   "    if (f_workspace(&ok) == SIZE_MAX || f_workspace(&ok) > 1000) return 10;\n"
                   "    if (bad(2147483647L, 3, 2147483647L, 2)) return 11;\n"
                   "    if (bad(1L << 30, 1L << 30, 1L << 30, 1L << 30)) return 12;\n"
                   "    if (bad(3, 0, 3, 3)) return 13;\n"
                   "    puts(\"ok\");\n    return 0;\n}\n";
        free(build_run(code.s, hdr.s, mainc, flags, blas, "kron", "huge sizes"));
        remove_tmpdir();
        md_buf_free(&code);
        md_buf_free(&hdr);
    }
    unload(t);
}
END_TEST

/* ---- Hessian-vector products (--order 2) ---- */

/* Normwise relative difference of got and want (n entries). */
static double nrel(const double *got, const double *want, long n)
{
    double d = 0, m = 0;
    for (long i = 0; i < n; i++) {
        d = fmax(d, fabs(got[i] - want[i]));
        m = fmax(m, fabs(want[i]));
    }
    return isnan(d) ? INFINITY : d / (m > 0 ? m : 1e-300);
}

/*
 * NAME_hvp and NAME_hess for program text, with respect to every variable:
 * NAME_hess against the Hessian of --order 2 (every block, evaluated); the
 * blocks of H v (md_hvp: directional derivatives of the gradients) are
 * checked
 *  - against the Hessian (md_hessian_block, the vec/Kronecker route, a
 *    derivation of its own) times vec(v), in the evaluator;
 *  - as emitted C, compiled with flags in backend blas and layout row,
 *    against the evaluator (relative 1e-9) and against central
 *    differences of the emitted gradient along v (relative 1e-5).
 */
static int hess_checked;   /* f_hess checks that ran (every block of the Hessian existed) */
static int hess_blocks_checked;   /* ... of an f_hess made from the Hessian's blocks */

static void run_hvp(const char *text, const char *wrtnames, int blas, int row, const char *flags)
{
    eprog *p = eload(text);
    md_ctx *ctx = p->ctx;
    if (wrtnames) {   /* a subset of the variables, space-separated */
        p->n = 0;
        char nm[64];
        for (const char *c = wrtnames; sscanf(c, "%63s", nm) == 1; c = strstr(c, nm) + strlen(nm)) {
            int s = md_ctx_find_sym(ctx, nm);
            ck_assert_int_ge(s, 0);
            p->wrt[p->n] = s;
            p->grads[p->n++] = md_gradient(ctx, p->f, s);
        }
    }
    int n = p->n, nin = ctx->nsyms;
    int *dir = calloc((size_t)n + 1, sizeof *dir);
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[p->wrt[i]];
        md_buf b = {0};
        md_buf_printf(&b, "v_%s", x->name);
        while (md_ctx_find_sym(ctx, b.s) >= 0) md_buf_putc(&b, '_');
        dir[i] = md_ctx_add_sym(ctx, b.s, x->kind, x->rows, x->cols);
        md_buf_free(&b);
    }
    md_expr **hv = calloc((size_t)n + 1, sizeof *hv);
    for (int i = 0; i < n; i++) hv[i] = md_hvp(ctx, p->grads[i], n, p->wrt, dir);
    md_env env = {0};
    ck_assert_int_eq(md_env_random(ctx, p->f, 5, &env), 0);
    md_mat *want = calloc((size_t)n + 1, sizeof *want);
    ck_assert_int_eq(md_eval_many(&env, n, hv, want), 0);
    /* the emitted code */
    md_expr **hb = md_emit_hess_blocks(ctx, p->f, n, p->wrt);   /* as the driver: NULL for a matrix variable */
    if (wrtnames) ck_assert_msg(hb != NULL, "%s by %s: the Hessian's blocks are not emitted", text, wrtnames);
    md_emit_opts o = {"f", row, blas, NULL, hv, hb};
    md_buf code = {0}, hdr = {0}, drv = {0};
    ck_assert_int_eq(md_emit_c(ctx, p->f, n, p->wrt, p->grads, &o, &code, stderr), 0);
    ck_assert_int_eq(md_emit_header(ctx, n, p->wrt, &o, &hdr, stderr), 0);
    int ndims0 = ctx->ndims;   /* the dims fields */
    /* the Hessian route: block a of H v = sum_b H_ab vec(v_b) (after the
       emission: the Kronecker products bring product dimensions, which
       the C backend declines); hfull: the whole Hessian, column-major
       vec order, when every block exists */
    long N = 0, *off = calloc((size_t)n + 1, sizeof *off);
    for (int a = 0; a < n; a++) off[a] = N, N += want[a].rows * want[a].cols;
    double *hfull = calloc((size_t)(N * N) + 1, sizeof *hfull);
    int full = 1;
    for (int a = 0; a < n; a++) {
        long na = want[a].rows * want[a].cols;
        double *acc = calloc((size_t)na + 1, sizeof *acc);
        int ok = 1;
        for (int b = 0; b < n && ok; b++) {
            md_expr *H = md_hessian_block(ctx, p->f, p->wrt[a], p->wrt[b]);
            if (!H) {
                ok = full = 0;
                break;
            }
            md_mat h = {0};
            ck_assert_int_eq(md_eval(&env, H, &h), 0);
            const md_mat *v = &env.val[dir[b]];
            long nb = v->rows * v->cols;
            ck_assert_int_eq(h.rows * h.cols, na * nb);
            for (long i = 0; i < na; i++)
                for (long j = 0; j < nb; j++) {
                    acc[i] += h.v[i + j * na] * v->v[j];
                    hfull[(off[a] + i) + (off[b] + j) * N] = h.v[i + j * na];
                }
            md_mat_free(&h);
        }
        if (ok)
            ck_assert_msg(nrel(want[a].v, acc, na) < 1e-8, "%s: H v block %s: md_hvp and the Hessian differ by %.3g",
                          text, ctx->syms[p->wrt[a]].name, nrel(want[a].v, acc, na));
        free(acc);
    }
    md_buf *w = &drv;
    driver_head(w, ctx, &env, ndims0, 1e-5);
    for (int s = 0; s < nin + n; s++) {
        const md_mat *m = &env.val[s];
        long sz = m->rows * m->cols;
        double *t = layout(m->v, m->rows, m->cols, row);
        md_buf_printf(w, "    static double in%d[%ld] = {", s, sz);
        for (long i = 0; i < sz; i++) md_buf_printf(w, "%s%.17g", i ? ", " : "", t[i]);
        md_buf_puts(w, "};\n");
        free(t);
        if (s < nin) md_buf_printf(w, "    static double xp%d[%ld], xm%d[%ld];\n", s, sz, s, sz);
    }
    for (int i = 0; i < n; i++) {
        long sz = want[i].rows * want[i].cols;
        md_buf_printf(w, "    static double gp%d[%ld], gm%d[%ld], hv%d[%ld];\n", i, sz, i, sz, i, sz);
    }
    /* x +- h v for the variables, x for the others */
    for (int s = 0; s < nin; s++) {
        long sz = env.val[s].rows * env.val[s].cols;
        int i = 0;
        while (i < n && p->wrt[i] != s) i++;
        if (i < n)
            md_buf_printf(w, "    for (int i = 0; i < %ld; i++) xp%d[i] = in%d[i] + h * in%d[i], "
                             "xm%d[i] = in%d[i] - h * in%d[i];\n", sz, s, s, dir[i], s, s, dir[i]);
        else
            md_buf_printf(w, "    for (int i = 0; i < %ld; i++) xp%d[i] = xm%d[i] = in%d[i];\n", sz, s, s, s);
    }
    md_buf_puts(w, "    double *work = malloc(f_workspace(&d) * sizeof(double) + 8);\n    f_hvp(&d");
    for (int s = 0; s < nin + n; s++) {
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in%d%s", s, sc ? "[0]" : "");
    }
    for (int i = 0; i < n; i++) md_buf_printf(w, ", hv%d", i);
    md_buf_puts(w, ", work);\n");
    for (const char *pm = "pm"; *pm; pm++) {
        md_buf_puts(w, "    f(&d");
        for (int s = 0; s < nin; s++) {
            int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
            md_buf_printf(w, ", x%c%d%s", *pm, s, sc ? "[0]" : "");
        }
        for (int i = 0; i < n; i++) md_buf_printf(w, ", g%c%d", *pm, i);
        md_buf_puts(w, ", work);\n");
    }
    for (int i = 0; i < n; i++) {
        long sz = want[i].rows * want[i].cols;
        md_buf_printf(w, "    for (int i = 0; i < %ld; i++) printf(\"%%.17g %%.17g\\n\", hv%d[i], "
                         "(gp%d[i] - gm%d[i]) / (2 * h));\n", sz, i, i, i);
    }
    /* the dense Hessian */
    md_buf_printf(w, "    double *hw = malloc(f_hess_workspace(&d) * sizeof(double) + 8);\n"
                     "    static double H[%ld];\n    f_hess(&d", N * N);
    for (int s = 0; s < nin; s++) {
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in%d%s", s, sc ? "[0]" : "");
    }
    md_buf_printf(w, ", H, hw);\n    for (int i = 0; i < %ld; i++) printf(\"%%.17g\\n\", H[i]);\n"
                     "    free(hw);\n", N * N);
    md_buf_puts(w, "    free(work);\n    return 0;\n}\n");
    char *out = build_run(code.s, hdr.s, drv.s, flags, blas, text, "hvp");
    const char *q = out;
    for (int s = 0; s < n; s++) {
        const md_mat *m = &want[s];
        long sz = m->rows * m->cols;
        double *got = calloc((size_t)sz + 1, sizeof *got), *fd = calloc((size_t)sz + 1, sizeof *fd);
        for (long i = 0; i < sz; i++) {
            char *e;
            got[i] = strtod(q, &e);
            fd[i] = strtod(e, &e);
            q = e;
        }
        double *wl = layout(m->v, m->rows, m->cols, row);
        double e1 = nrel(got, wl, sz), e2 = nrel(got, fd, sz);
        ck_assert_msg(e1 < 1e-9, "%s (%s, %s): Hv_%s differs from the evaluator by %.3g", text,
                      blas ? "CBLAS" : "loops", row ? "row" : "col", ctx->syms[p->wrt[s]].name, e1);
        ck_assert_msg(e2 < 1e-5, "%s (%s, %s): Hv_%s differs from differences of the gradient by %.3g", text,
                      blas ? "CBLAS" : "loops", row ? "row" : "col", ctx->syms[p->wrt[s]].name, e2);
        free(wl);
        free(got);
        free(fd);
    }
    /* H: entry (a, b) of the memory order is entry (perm a, perm b) of the
       column-major vec order */
    long *perm = calloc((size_t)N + 1, sizeof *perm);
    for (int s = 0; s < n; s++) {
        long r = env.val[p->wrt[s]].rows, c = env.val[p->wrt[s]].cols;
        for (long i = 0; i < r; i++)
            for (long j = 0; j < c; j++) perm[off[s] + (row ? i * c + j : i + j * r)] = off[s] + i + j * r;
    }
    double *hgot = calloc((size_t)(N * N) + 1, sizeof *hgot), *hwant = calloc((size_t)(N * N) + 1, sizeof *hwant);
    for (long i = 0; i < N * N; i++) {
        char *e;
        hgot[i] = strtod(q, &e);
        q = e;
        hwant[i] = hfull[perm[i % N] + perm[i / N] * N];
    }
    if (full) hess_checked++;
    if (full && hb) hess_blocks_checked++;
    if (full)
        ck_assert_msg(nrel(hgot, hwant, N * N) < 1e-9, "%s (%s, %s): f_hess differs from the Hessian by %.3g", text,
                      blas ? "CBLAS" : "loops", row ? "row" : "col", nrel(hgot, hwant, N * N));
    free(perm);
    free(hgot);
    free(hwant);
    free(hfull);
    free(off);
    free(out);
    remove_tmpdir();
    md_buf_free(&code);
    md_buf_free(&hdr);
    md_buf_free(&drv);
    for (int i = 0; i < n; i++) md_mat_free(&want[i]);
    free(want);
    md_env_free(&env);
    free(hv);
    free(hb);
    free(dir);
    eunload(p);
}

/* ---- non-scalar functions: F, J v, J' u, J ---- */

static int jac_checked;   /* NAME_jac checks that ran (the vec Jacobian existed) */

/* Prints "name[i] = ..." of n doubles of a C array as one line each. */
static void print_arr(md_buf *w, const char *arr, long n)
{
    md_buf_printf(w, "    for (long i = 0; i < %ld; i++) printf(\"%%.17g\\n\", %s[i]);\n", n, arr);
}

/* Reads n doubles from *q. */
static double *read_arr(const char **q, long n)
{
    double *x = calloc((size_t)n + 1, sizeof *x);
    for (long i = 0; i < n; i++) {
        char *e;
        x[i] = strtod(*q, &e);
        *q = e;
    }
    return x;
}

/*
 * md_emit_c_map for the vector or matrix function text by wrtnames (NULL:
 * every variable), as the driver calls it: NAME (F), NAME_jvp, NAME_vjp
 * and NAME_jac compiled with the header, run on random data, and compared
 * with the evaluator (F, J v = md_hvp of F, J' u = the gradients of u : F,
 * J = md_vec_jacobian per variable, in the layout's memory order) and
 * J v with central differences of the emitted F.
 */
static void run_map(const char *text, const char *wrtnames, int blas, int row, const char *flags)
{
    tprog *t = load_with(text, 1);
    ck_assert_msg(t->rc == 0, "'%s' failed: %s", text, t->err);
    md_ctx *ctx = t->ctx;
    md_expr *F = t->typed.f;
    ck_assert(!md_is_scalar(F));
    int nprog = ctx->nsyms, n = 0, *wrt = calloc((size_t)nprog + 1, sizeof *wrt);
    if (wrtnames) {
        char nm[64];
        for (const char *c = wrtnames; sscanf(c, "%63s", nm) == 1; c = strstr(c, nm) + strlen(nm)) {
            wrt[n] = md_ctx_find_sym(ctx, nm);
            ck_assert_int_ge(wrt[n++], 0);
        }
    } else {
        for (int s = 0; s < nprog; s++) wrt[n++] = s;
    }
    int *dir = calloc((size_t)n + 1, sizeof *dir);
    for (int i = 0; i < n; i++) {
        const md_symbol *x = &ctx->syms[wrt[i]];
        md_buf b = {0};
        md_buf_printf(&b, "v_%s", x->name);
        while (md_ctx_find_sym(ctx, b.s) >= 0) md_buf_putc(&b, '_');
        dir[i] = md_ctx_add_sym(ctx, b.s, x->kind, x->rows, x->cols);
        md_buf_free(&b);
    }
    int rowF = F->rows == MD_DIM_ONE;   /* u as the driver makes it: a vector for a row vector F */
    int u = md_ctx_add_sym(ctx, md_ctx_find_sym(ctx, "u") >= 0 ? "u_" : "u",
                           rowF || F->cols == MD_DIM_ONE ? MD_SYM_VECTOR : MD_SYM_MATRIX, rowF ? F->cols : F->rows,
                           rowF ? MD_DIM_ONE : F->cols);
    md_expr *uF = md_frob(ctx, rowF ? md_trans(ctx, md_sym(ctx, u)) : md_sym(ctx, u), F);
    md_expr **roots = calloc((size_t)n + 3, sizeof *roots);
    roots[0] = F;
    roots[1] = md_hvp(ctx, F, n, wrt, dir);
    for (int i = 0; i < n; i++) {
        roots[2 + i] = md_gradient(ctx, uF, wrt[i]);
        ck_assert_ptr_nonnull(roots[2 + i]);
    }
    md_env env = {0};
    ck_assert_int_eq(md_env_random(ctx, F, 7, &env), 0);
    md_mat *want = calloc((size_t)n + 3, sizeof *want);
    ck_assert_int_eq(md_eval_many(&env, n + 2, roots, want), 0);
    md_emit_map m = {nprog, dir, u, roots[1], roots + 2};
    md_emit_opts o = {"f", row, blas, NULL, NULL, NULL};
    md_buf code = {0}, hdr = {0}, drv = {0};
    ck_assert_int_eq(md_emit_c_map(ctx, F, n, wrt, &m, &o, 0, &code, stderr), 0);
    ck_assert_int_eq(md_emit_c_map(ctx, F, n, wrt, &m, &o, 1, &hdr, stderr), 0);
    int ndims0 = ctx->ndims;
    /* the vec Jacobian, column-major vec order (after the emission: its
       Kronecker products bring product dimensions) */
    long M = want[0].rows * want[0].cols, N = 0, *off = calloc((size_t)n + 1, sizeof *off);
    for (int i = 0; i < n; i++) off[i] = N, N += env.val[wrt[i]].rows * env.val[wrt[i]].cols;
    double *jfull = calloc((size_t)(M * N) + 1, sizeof *jfull);
    int full = 1;
    for (int i = 0; i < n && full; i++) {
        md_expr *J = md_vec_jacobian(ctx, F, wrt[i]);
        md_mat h = {0};
        if (!J || md_eval(&env, J, &h) != 0) {
            full = 0;
            break;
        }
        long ni = env.val[wrt[i]].rows * env.val[wrt[i]].cols;
        ck_assert_int_eq(h.rows * h.cols, M * ni);
        for (long r = 0; r < M; r++)
            for (long c = 0; c < ni; c++) jfull[r + (off[i] + c) * M] = h.v[r + c * M];
        md_mat_free(&h);
    }
    md_buf *w = &drv;
    driver_head(w, ctx, &env, ndims0, 1e-6);
    for (int s = 0; s < ctx->nsyms; s++) {
        const md_mat *x = &env.val[s];
        long sz = x->rows * x->cols;
        double *tv = layout(x->v, x->rows, x->cols, row);
        md_buf_printf(w, "    static double in%d[%ld] = {", s, sz);
        for (long i = 0; i < sz; i++) md_buf_printf(w, "%s%.17g", i ? ", " : "", tv[i]);
        md_buf_puts(w, "};\n");
        free(tv);
        if (s < nprog) md_buf_printf(w, "    static double xp%d[%ld], xm%d[%ld];\n", s, sz, s, sz);
    }
    md_buf_printf(w, "    static double F0[%ld], Fp[%ld], Fm[%ld], Jv[%ld], J[%ld];\n", M, M, M, M, M * N);
    for (int i = 0; i < n; i++) md_buf_printf(w, "    static double g%d[%ld];\n", i, want[2 + i].rows * want[2 + i].cols);
    for (int s = 0; s < nprog; s++) {
        long sz = env.val[s].rows * env.val[s].cols;
        int i = 0;
        while (i < n && wrt[i] != s) i++;
        if (i < n)
            md_buf_printf(w, "    for (int i = 0; i < %ld; i++) xp%d[i] = in%d[i] + h * in%d[i], "
                             "xm%d[i] = in%d[i] - h * in%d[i];\n", sz, s, s, dir[i], s, s, dir[i]);
        else
            md_buf_printf(w, "    for (int i = 0; i < %ld; i++) xp%d[i] = xm%d[i] = in%d[i];\n", sz, s, s, s);
    }
    md_buf_puts(w, "    double *work = malloc(f_workspace(&d) * sizeof(double) + 8);\n"
                   "    double *jw = malloc(f_jac_workspace(&d) * sizeof(double) + 8);\n");
#define ARGS(pre)                                                                                 \
    for (int s = 0; s < nprog; s++) {                                                              \
        int sc = ctx->syms[s].rows == MD_DIM_ONE && ctx->syms[s].cols == MD_DIM_ONE;               \
        md_buf_printf(w, ", %s%d%s", pre, s, sc ? "[0]" : "");                                     \
    }
    md_buf_puts(w, "    f(&d");
    ARGS("in")
    md_buf_puts(w, ", F0, work);\n    f(&d");
    ARGS("xp")
    md_buf_puts(w, ", Fp, work);\n    f(&d");
    ARGS("xm")
    md_buf_puts(w, ", Fm, work);\n    f_jvp(&d");
    ARGS("in")
    for (int i = 0; i < n; i++) {
        int sc = ctx->syms[dir[i]].rows == MD_DIM_ONE && ctx->syms[dir[i]].cols == MD_DIM_ONE;
        md_buf_printf(w, ", in%d%s", dir[i], sc ? "[0]" : "");
    }
    md_buf_puts(w, ", NULL, Jv, work);\n    f_vjp(&d");
    ARGS("in")
    md_buf_printf(w, ", in%d, NULL", u);
    for (int i = 0; i < n; i++) md_buf_printf(w, ", g%d", i);
    md_buf_puts(w, ", work);\n    f_jac(&d");
    ARGS("in")
    md_buf_puts(w, ", NULL, J, jw);\n");
#undef ARGS
    print_arr(w, "F0", M);
    print_arr(w, "Jv", M);
    md_buf_printf(w, "    for (long i = 0; i < %ld; i++) printf(\"%%.17g\\n\", (Fp[i] - Fm[i]) / (2 * h));\n", M);
    for (int i = 0; i < n; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "g%d", i);
        print_arr(w, nm, want[2 + i].rows * want[2 + i].cols);
    }
    print_arr(w, "J", M * N);
    md_buf_puts(w, "    free(work);\n    free(jw);\n    return 0;\n}\n");
    char *out = build_run(code.s, hdr.s, drv.s, flags, blas, text, "map");
    const char *q = out;
    const char *how = blas ? (row ? "CBLAS, row" : "CBLAS, col") : (row ? "loops, row" : "loops, col");
    double *F0 = read_arr(&q, M), *Jv = read_arr(&q, M), *fd = read_arr(&q, M);
    double *wF = layout(want[0].v, want[0].rows, want[0].cols, row), *wJ = layout(want[1].v, want[1].rows,
                                                                                   want[1].cols, row);
    ck_assert_msg(nrel(F0, wF, M) < 1e-10, "%s (%s): F differs from the evaluator by %.3g", text, how, nrel(F0, wF, M));
    ck_assert_msg(nrel(Jv, wJ, M) < 1e-9, "%s (%s): J v differs from the evaluator by %.3g", text, how, nrel(Jv, wJ, M));
    ck_assert_msg(nrel(Jv, fd, M) < 1e-5, "%s (%s): J v differs from differences of F by %.3g", text, how,
                  nrel(Jv, fd, M));
    for (int i = 0; i < n; i++) {
        const md_mat *g = &want[2 + i];
        double *got = read_arr(&q, g->rows * g->cols), *wg = layout(g->v, g->rows, g->cols, row);
        ck_assert_msg(nrel(got, wg, g->rows * g->cols) < 1e-9, "%s (%s): J' u by %s differs from the evaluator by %.3g",
                      text, how, ctx->syms[wrt[i]].name, nrel(got, wg, g->rows * g->cols));
        free(got);
        free(wg);
    }
    /* J in memory order: (r, c) is (permF r, permX c) of the vec order */
    double *Jgot = read_arr(&q, M * N), *Jwant = calloc((size_t)(M * N) + 1, sizeof *Jwant);
    long *pf = calloc((size_t)M + 1, sizeof *pf), *px = calloc((size_t)N + 1, sizeof *px);
    for (long i = 0; i < want[0].rows; i++)
        for (long j = 0; j < want[0].cols; j++)
            pf[row ? i * want[0].cols + j : i + j * want[0].rows] = i + j * want[0].rows;
    for (int k = 0; k < n; k++) {
        long r = env.val[wrt[k]].rows, c = env.val[wrt[k]].cols;
        for (long i = 0; i < r; i++)
            for (long j = 0; j < c; j++) px[off[k] + (row ? i * c + j : i + j * r)] = off[k] + i + j * r;
    }
    for (long a = 0; a < M; a++)
        for (long b = 0; b < N; b++) Jwant[a + b * M] = jfull[pf[a] + px[b] * M];
    if (full) {
        jac_checked++;
        ck_assert_msg(nrel(Jgot, Jwant, M * N) < 1e-9, "%s (%s): f_jac differs from the vec Jacobian by %.3g", text,
                      how, nrel(Jgot, Jwant, M * N));
    }
    free(Jgot), free(Jwant), free(pf), free(px), free(F0), free(Jv), free(fd), free(wF), free(wJ);
    free(jfull), free(off), free(out);
    remove_tmpdir();
    md_buf_free(&code), md_buf_free(&hdr), md_buf_free(&drv);
    for (int i = 0; i < n + 2; i++) md_mat_free(&want[i]);
    free(want), free(roots), free(dir), free(wrt);
    md_env_free(&env);
    unload(t);
}

START_TEST(jacobian_products)
{
    const char *flags = "cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";
    if (run("echo 'int main(void){return 0;}' | cc -fsanitize=address,undefined -x c -o /dev/null -", NULL) != 0)
        flags = "cc -O1";
    static const char *const progs[][2] = {
        {"A*x", NULL},
        {"matrix A; symmetric S; tanh(A*x + b) - S*x", NULL},
        {"scalar lambda; matrix Y(n, q), X(n, p), U(p, d), V(q, d); X*U*V' - Y", "U V"},   /* seed 003's residual */
        {"exp(W*x)/sum(exp(W*x))", NULL},                                                  /* softmax */
        {"inv(A)*B + A'", NULL},
        {"matrix X(n, p); vector w(p), y(n), s(n); diag(s)*(X*w - y)", "w s"},
        {"function h; h(A*x).*x", "A x"},
        {"x'*A*B", NULL},                                                                  /* a row vector */
        {"vector z(m), w(n); (w' + w')./w' + z'*A", NULL},   /* random seed 2940: u : F hung for a row F */
        /* Kronecker products and commutation matrices applied, never formed;
           vec as the matrix's memory (column-major) or a transposed copy */
        {"matrix A(n, m), B(p, q); vector x(m*q), y(n*p); kron(A, B)*x - y.*y", "x y"},
        {"matrix A(n, m), B(p, q), X(q, m); vector y(n*p); vec(B*X*A') + commutation(n, p)*y + 2*exp(y)", "y"},
        {"matrix A(n, m), B(p, q); vector x(m*q), y(n*p); (y'*kron(A, B))' + kron(A', B')*y + x", "y"},
    };
    int np = (int)(sizeof progs / sizeof progs[0]);
    for (int i = 0; i < np; i++)
        for (int v = 0; v < 4; v++) {
            int blas = v & 1, row = v >> 1;
            if (blas && !have_blas()) continue;
            run_map(progs[i][0], progs[i][1], blas, row, v == 0 || i % 2 ? flags : "cc -O1");
        }
    ck_assert_int_ge(jac_checked, np * (1 + have_blas()));
}
END_TEST

START_TEST(hessian_vector_products)
{
    const char *flags = "cc -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer";
    if (run("echo 'int main(void){return 0;}' | cc -fsanitize=address,undefined -x c -o /dev/null -", NULL) != 0)
        flags = "cc -O1";
    static const char *const progs[] = {
        "matrix X(n, p); vector w(p), y(n); sum(log(1 + exp(-y.*(X*w))))",   /* logistic regression */
        "norm2(W2*tanh(W1*x) - y)^2",                                          /* a 2-layer MLP */
        "scalar lambda; norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2",           /* seed 003 */
        "symmetric S; matrix Y(p, N); scalar c; c*logdet(S) + tr(Y'*inv(S)*Y)", /* the Gaussian */
        "function h; x'*A*x + sum(h(B*x)) + a*norm2(x)^2 + a^3",
        "norm2(diag(s)*(X*w - y))^2 + sum(exp(X'*X*w))",
    };
    /* by vectors and scalars only: NAME_hess from the Hessian's blocks
       (X'*diag(w)*X by md_mm_sym, row scalings in the loop) */
    static const char *const sub[][2] = {
        {"matrix X(n, p); vector w(p), y(n); sum(log(1 + exp(-y.*(X*w))))", "w"},
        {"matrix X(n, p); vector w(p), y(n); scalar b, lambda; "
         "sum(softplus(X*w + b)) - y'*(X*w + b) + lambda*w'*w", "w b"},
        {"matrix X(n, p); vector w(p), y(n), s(n); norm2(diag(s)*(X*w - y))^2", "w s"},
        {"norm2(W2*tanh(W1*x) - y)^2", "x"},
        {"symmetric S; vector mu, x; (x - mu)'*inv(S)*(x - mu) + logdet(S)", "mu x"},
    };
    for (int i = 0; i < 6 + 5; i++)
        for (int v = 0; v < 4; v++) {
            int blas = v & 1, row = v >> 1;
            if (blas && !have_blas()) continue;
            if (i < 6) run_hvp(progs[i], NULL, blas, row, v == 0 || i % 2 ? flags : "cc -O1");
            else run_hvp(sub[i - 6][0], sub[i - 6][1], blas, row, v == 0 || i % 2 ? flags : "cc -O1");
        }
    ck_assert_int_ge(hess_checked, 11 * (1 + have_blas()));   /* each program's dense Hessian too */
    ck_assert_int_ge(hess_blocks_checked, 5 * (1 + have_blas()));
}
END_TEST

/* Counts the occurrences of needle in hay. */
static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)) != NULL; s++) n++;
    return n;
}

START_TEST(lapack_and_solves)
{
    /* f and the gradients for x and y only need inverses applied to
       vectors and matrices: solves with one LU of A, no inverse formed */
    eprog *p = eload("vector x; vector y; matrix A; matrix X; x'*inv(A)*y + sum(inv(A)*X*y) + logdet(A)"
                     " + sum(x'*X'*inv(A'))");
    ck_assert_str_eq(p->ctx->syms[0].name, "x");
    ck_assert_str_eq(p->ctx->syms[1].name, "y");
    for (int blas = 0; blas <= 1; blas++) {
        md_emit_opts o = {"f", 0, blas, NULL, NULL, NULL};
        md_buf code = {0};
        ck_assert_int_eq(md_emit_c(p->ctx, p->f, 2, p->wrt, p->grads, &o, &code, stderr), 0);
        const char *body = NULL;   /* the definition: after the prototype and the helpers */
        for (const char *q = code.s; (q = strstr(q, "\ndouble f(const f_dims")) != NULL; q++) body = q;
        ck_assert_ptr_nonnull(body);
        ck_assert_int_eq(count(body, "md_lu("), 1);        /* one factorisation, shared */
        ck_assert_int_eq(count(body, "md_lu_inv("), 0);    /* no explicit inverse */
        ck_assert_int_ge(count(body, "md_sm(") + count(body, "md_chain("), 3);
        ck_assert_int_eq(count(code.s, "dgetrf_(&nn"), blas);
        ck_assert_int_eq(count(code.s, "dgetrs_(t"), blas);
        if (!blas) ck_assert_ptr_null(strstr(code.s, "cblas"));
        md_buf_free(&code);
    }
    eunload(p);
}
END_TEST

START_TEST(clang)
{
    if (run("clang --version", NULL) != 0) {
        fprintf(stderr, "test_emit: clang is missing: skipped\n");
        return;
    }
    run_standalone(find_case("seed001"), 0, 0, "clang -O2");
    run_standalone(find_case("seed003"), have_blas(), 1, "clang -O2");
}
END_TEST

/* ---- the interface and the errors ---- */

START_TEST(interface_text)
{
    eprog *p = eload("matrix X(n, p); scalar lambda; norm2(X*w - y)^2 + lambda*sum(w)");
    md_emit_opts o = {"lsq", 0, 0, NULL, NULL, NULL};
    md_buf code = {0}, hdr = {0};
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, stderr), 0);
    ck_assert_int_eq(md_emit_header(p->ctx, p->n, p->wrt, &o, &hdr, stderr), 0);
    ck_assert_ptr_nonnull(strstr(hdr.s, "typedef struct lsq_dims {\n    long n;"));
    ck_assert_ptr_nonnull(strstr(hdr.s, "size_t lsq_workspace(const lsq_dims *dims);"));
    /* the prototype, with its line breaks folded */
    char *flat = strdup(hdr.s);
    char *w = flat;
    for (const char *r = hdr.s; *r; r++) {
        if (*r == '\n' || (*r == ' ' && w > flat && w[-1] == ' ')) {
            if (w > flat && w[-1] != ' ') *w++ = ' ';
            continue;
        }
        *w++ = *r;
    }
    *w = 0;
    ck_assert_msg(strstr(flat, "double lsq(const lsq_dims *dims, const double *X, double lambda, const double *w, "
                               "const double *y, double *d_X, double *d_lambda, double *d_w, double *d_y, "
                               "double *work);") != NULL, "%s", flat);
    free(flat);
    ck_assert_ptr_null(strstr(code.s, "cblas"));   /* --no-blas needs no CBLAS */
    ck_assert_ptr_null(strstr(code.s, "malloc"));
    md_buf_free(&code);
    md_buf_free(&hdr);
    eunload(p);
}
END_TEST

START_TEST(auto_named_dimensions)
{
    /* dimensions the program does not name are named after the first
       variable that carries them */
    eprog *p = eload("x'*A*x + sum(B*z)");
    for (int d = 1; d < p->ctx->ndims; d++) p->ctx->dims[d].declared = 0;
    md_buf hdr = {0};
    ck_assert_int_eq(md_emit_header(p->ctx, p->n, p->wrt, NULL, &hdr, stderr), 0);
    ck_assert_ptr_nonnull(strstr(hdr.s, "long x_len;"));
    ck_assert_ptr_nonnull(strstr(hdr.s, "long B_cols;"));
    ck_assert_ptr_null(strstr(hdr.s, "A_rows"));   /* A's rows are x's length */
    md_buf_free(&hdr);
    eunload(p);
}
END_TEST

START_TEST(macro_names)
{
    /* names that are macros of the included headers, or C++ keywords, are
       renamed wherever the interface uses them: a trailing underscore, or
       v_ for a family of names (FP_..., M_PI...) no suffix leaves */
    eprog *p = eload("matrix X(I, K), W(K, J), Y(I, J); scalar FP_NAN, M_PI, new; vector complex;"
                     " norm2(X*W - Y)^2 + FP_NAN*M_PI*new + sum(complex) + sum(INT8_MAX)");
    md_emit_opts o = {"f", 0, 1, NULL, NULL, NULL};
    md_buf hdr = {0};
    ck_assert_int_eq(md_emit_header(p->ctx, p->n, p->wrt, &o, &hdr, stderr), 0);
    static const char *const want[] = {"long I_;", "long K;", "long J;", "double v_FP_NAN", "double v_M_PI",
                                       "double new_", "const double *complex_", "const double *INT8_MAX_",
                                       "long INT8_MAX_rows;", "double *d_FP_NAN", NULL};
    for (int i = 0; want[i]; i++) ck_assert_msg(strstr(hdr.s, want[i]) != NULL, "no '%s' in:\n%s", want[i], hdr.s);
    /* the header compiles as C++, after the C++ headers of the same macros */
    if (run("c++ --version", NULL) == 0) {
        make_tmpdir();
        write_file("f.h", hdr.s);
        write_file("main.cc", "#include <cerrno>\n#include <cmath>\n#include <complex>\n#include <cstdint>\n"
                              "#include <cstdio>\n#include <cstdlib>\n#include \"f.h\"\n"
                              "int main() { f_dims d = {}; return (int)d.I_; }\n");
        char cmd[1024], *out = NULL;
        snprintf(cmd, sizeof cmd, "c++ -Wall -Wextra -Wpedantic -Werror -o %s/prog %s/main.cc", tmpdir, tmpdir);
        ck_assert_msg(run(cmd, &out) == 0, "the header does not compile as C++:\n%s", out);
        free(out);
        remove_tmpdir();
    } else {
        fprintf(stderr, "test_emit: c++ is missing: the header's C++ compile skipped\n");
    }
    md_buf_free(&hdr);
    eunload(p);
}
END_TEST

START_TEST(errors)
{
    eprog *p = eload("x'*A*x");
    md_buf code = {0};
    char *msg = NULL;
    size_t len = 0;
    FILE *err = open_memstream(&msg, &len);
    md_emit_opts o = {"not a name", 0, 1, NULL, NULL, NULL};
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, err), -2);
    o.name = "double";
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, err), -2);
    /* a macro of the headers is refused like a keyword, in the .c and the
       header, and so are C++ keywords and the reserved families */
    static const char *const refused[] = {"complex", "I", "FP_NAN", "math_errhandling", "isnan", "M_PI",
                                          "EOF", "errno", "offsetof", "unix", "new", "md_f", "_f", NULL};
    for (int i = 0; refused[i]; i++) {
        o.name = refused[i];
        ck_assert_msg(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, &o, &code, err) == -2, "%s", refused[i]);
        ck_assert_msg(md_emit_header(p->ctx, p->n, p->wrt, &o, &code, err) == -2, "%s", refused[i]);
    }
    ck_assert_int_eq(code.len, 0);
    fclose(err);
    ck_assert_ptr_nonnull(strstr(msg, "--name 'not a name'"));
    ck_assert_ptr_nonnull(strstr(msg, "--name 'complex' is not usable as a C function name: "
                                      "it is a macro of <complex.h>"));
    ck_assert_ptr_nonnull(strstr(msg, "--name 'FP_NAN' is not usable as a C function name: "
                                      "it is a macro of <math.h>"));
    free(msg);
    md_buf_free(&code);
    eunload(p);

    /* a callback named like the include guard (a macro) */
    p = eload("function MATDIFF_H; sum(MATDIFF_H(x))");
    err = open_memstream(&msg, &len);
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, NULL, &code, err), -1);
    fclose(err);
    ck_assert_ptr_nonnull(strstr(msg, "f_MATDIFF_H"));
    free(msg);
    md_buf_free(&code);
    eunload(p);

    /* a generic function named like the callbacks' own interface names */
    p = eload("function dims; sum(dims(x))");
    err = open_memstream(&msg, &len);
    ck_assert_int_eq(md_emit_c(p->ctx, p->f, p->n, p->wrt, p->grads, NULL, &code, err), -1);
    fclose(err);
    ck_assert_ptr_nonnull(strstr(msg, "clash"));
    free(msg);
    md_buf_free(&code);
    eunload(p);
}
END_TEST

static Suite *emit_suite(void)
{
    Suite *s = suite_create("emit");
    TCase *tc = tcase_create("compile-and-run");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, compile_all, cleanup_all);
    load_cases();
    tcase_add_loop_test(tc, emitted_code_matches_evaluator, 0, ncases);
    suite_add_tcase(s, tc);
    TCase *tx = tcase_create("sanitizers-and-clang");
    tcase_set_timeout(tx, 300);   /* the compiles of the sanitized programs, under load */
    tcase_add_test(tx, sanitizers);
    tcase_add_test(tx, singular);
    tcase_add_test(tx, clang);
    tcase_add_test(tx, huge_sizes);   /* compiles under the sanitizers: the longer timeout */
    tcase_add_test(tx, hessian_vector_products);
    tcase_add_test(tx, jacobian_products);
    suite_add_tcase(s, tx);
    TCase *ti = tcase_create("interface");
    tcase_add_test(ti, interface_text);
    tcase_add_test(ti, auto_named_dimensions);
    tcase_add_test(ti, macro_names);
    tcase_add_test(ti, errors);
    tcase_add_test(ti, lapack_and_solves);
    suite_add_tcase(s, ti);
    return s;
}

MD_TEST_MAIN(emit_suite)
