/*
 * bench_c5.c -- Hessian-vector products in the C backend benchmark
 * (make bench): NAME_hvp, emitted with --order 2, against hand-written
 * forward-over-reverse CBLAS, for
 *
 *   logreg:  f = sum(log(1 + exp(-y .* z))), z = X w, by w (X n x p):
 *            Hv = X'(s .* (X v)), s = y.^2 .* e ./ (1 + e).^2, e = exp(-y .* z)
 *            (the logistic weights sigma'(-y z) y^2): three dgemv, the
 *            f + gradient two; scratch z and X v, two n-vectors;
 *   mlp:     f = ||r||^2, r = W2 t - y, t = tanh(a), a = W1 x, by W1 (h x d)
 *            and W2 (o x h), directions V1, V2:
 *              dt = (1 - t.^2) .* (V1 x),   dr = V2 t + W2 dt,
 *              Hv_W2 = 2 (dr t' + r dt'),
 *              Hv_W1 = 2 ((V2' r + W2' dr) .* (1 - t.^2) - 2 (W2' r) .* t .* dt) x',
 *            the directional derivatives of grad W2 = 2 r t' and
 *            grad W1 = 2 ((W2' r) .* (1 - t.^2)) x'.  By hand: W2'[dr r] in
 *            one dgemm, Hv_W2 as one rank-2 dgemm, Hv_W1 as one outer
 *            product, so the h x d and o x h arrays are each read or
 *            written once; scratch 4h + 2o.
 *
 * at n = 4000, p = 500 and d = 500, h = 300, o = 100 (default).  Emitted
 * without --size, as users call matdiff (logreg2.c, mlp.c), and with
 * --size (logreg2_sized.c, mlp_sized.c) for comparison.  Besides the
 * lines of bench.h (time against hand-written, NAME_workspace against the
 * hand-written scratch, the largest relative difference of f and of H v),
 * each case prints the emitted H v over the emitted f + gradients (a
 * Hessian-vector product should cost a small multiple of a gradient) and
 * both products against central differences of the emitted gradient, so
 * that the hand-written derivation is checked independently of the
 * emitted one (about 1e-10, the differences' own error: it falls as eps^2
 * for the MLP).  The MLP takes well under a millisecond, so its timings are
 * of K calls.  Single-threaded BLAS, best of R.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include <cblas.h>

#include "logreg2.h"
#include "logreg2_sized.h"
#include "mlp.h"
#include "mlp_sized.h"

/* f and g; scratch: z, n doubles */
static double hand_logreg(long n, long p, const double *X, const double *w, const double *y, double *g,
                          double *z)
{
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, 0.0, z, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) {
        double e = exp(-y[i] * z[i]);
        f += log(1.0 + e);
        z[i] = -y[i] * e / (1.0 + e);
    }
    cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 1.0, X, (int)n, z, 1, 0.0, g, 1);
    return f;
}

/* f and H v; scratch: z and u = X v, 2n doubles */
static double hand_logreg_hvp(long n, long p, const double *X, const double *w, const double *y,
                              const double *v, double *Hv, double *work)
{
    double *z = work, *u = work + n;
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, 0.0, z, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, v, 1, 0.0, u, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) {
        double e = exp(-y[i] * z[i]), q = 1.0 / (1.0 + e);
        f += log(1.0 + e);
        u[i] *= y[i] * y[i] * e * q * q;
    }
    cblas_dgemv(CblasColMajor, CblasTrans, (int)n, (int)p, 1.0, X, (int)n, u, 1, 0.0, Hv, 1);
    return f;
}

/* C (m x n) = a b': dgemm with k = 1, several times faster here than the
   loop gcc -O2 makes of it (it cannot rule out that C overlaps a or b) */
static void outer(long m, long n, const double *a, const double *b, double *C)
{
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, 1, 1.0, a, (int)m, b, (int)n, 0.0, C, (int)m);
}

/* t = tanh(W1 x) and r = W2 t - y; returns ||r||^2 */
static double mlp_forward(long h, long d, long o, const double *W1, const double *W2, const double *x,
                          const double *y, double *t, double *r)
{
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)h, (int)d, 1.0, W1, (int)h, x, 1, 0.0, t, 1);
    for (long i = 0; i < h; i++) t[i] = tanh(t[i]);
    memcpy(r, y, sizeof(double) * (size_t)o);
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)o, (int)h, 1.0, W2, (int)o, t, 1, -1.0, r, 1);
    return cblas_ddot((int)o, r, 1, r, 1);
}

/* f, G1 and G2 (NULL: skipped); scratch: t, r, q, 2h + o doubles */
static double hand_mlp(long h, long d, long o, const double *W1, const double *W2, const double *x,
                       const double *y, double *G1, double *G2, double *work)
{
    double *t = work, *r = work + h, *q = work + h + o;
    double f = mlp_forward(h, d, o, W1, W2, x, y, t, r);
    if (G1) {
        cblas_dgemv(CblasColMajor, CblasTrans, (int)o, (int)h, 2.0, W2, (int)o, r, 1, 0.0, q, 1);
        for (long i = 0; i < h; i++) q[i] *= 1.0 - t[i] * t[i];
        outer(h, d, q, x, G1);
    }
    if (G2) {
        for (long i = 0; i < o; i++) r[i] *= 2.0;
        outer(o, h, r, t, G2);
    }
    return f;
}

/* f, H1 and H2 (the W1 and W2 blocks of H [V1; V2], NULL: skipped);
   scratch: [t dt] (h x 2), [dr r] (o x 2), q = W2'[dr r] (h x 2), 4h + 2o
   doubles */
static double hand_mlp_hvp(long h, long d, long o, const double *W1, const double *W2, const double *x,
                           const double *y, const double *V1, const double *V2, double *H1, double *H2,
                           double *work)
{
    double *t = work, *dt = work + h, *dr = work + 2 * h, *r = dr + o, *q = r + o;
    double f = mlp_forward(h, d, o, W1, W2, x, y, t, r);
    if (!H1 && !H2) return f;
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)h, (int)d, 1.0, V1, (int)h, x, 1, 0.0, dt, 1);
    for (long i = 0; i < h; i++) dt[i] *= 1.0 - t[i] * t[i];
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)o, (int)h, 1.0, V2, (int)o, t, 1, 0.0, dr, 1);
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)o, (int)h, 1.0, W2, (int)o, dt, 1, 1.0, dr, 1);
    if (H2) /* 2 [dr r] [t dt]' = 2 (dr t' + r dt') */
        cblas_dgemm(CblasColMajor, CblasNoTrans, CblasTrans, (int)o, (int)h, 2, 2.0, dr, (int)o, t, (int)h, 0.0, H2,
                    (int)o);
    if (H1) {
        /* q = [W2' dr + V2' r, W2' r] */
        cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)h, 2, (int)o, 1.0, W2, (int)o, dr, (int)o, 0.0, q,
                    (int)h);
        cblas_dgemv(CblasColMajor, CblasTrans, (int)o, (int)h, 1.0, V2, (int)o, r, 1, 1.0, q, 1);
        for (long i = 0; i < h; i++) q[i] = 2.0 * (q[i] * (1.0 - t[i] * t[i]) - 2.0 * q[h + i] * t[i] * dt[i]);
        outer(h, d, q, x, H1);
    }
    return f;
}

/* The emitted and hand-written H v against central differences of the
   emitted gradient, (g(w + eps v) - g(w - eps v)) / (2 eps). */
static void report_fd(double ee, double eh)
{
    printf("  %-22s emitted %.1e   hand %.1e   (central differences of the emitted gradient)\n",
           "H v vs finite diff.", ee, eh);
}

/* The emitted H v over the emitted f + gradients (and the same for
   hand-written code, for comparison). */
static void report_hvp_cost(double te, double tg, double th, double thg, double target)
{
    printf("  %-22s emitted %9.2f x    (target <= %.2f)%s   hand %.2f x\n", "Hv / (f + grad)", te / tg, target,
           flag(te / tg, target), th / thg);
}

/* a + s b, n values, into c */
static void axpy(long n, const double *a, double s, const double *b, double *c)
{
    for (long i = 0; i < n; i++) c[i] = a[i] + s * b[i];
}

static void bench_logreg(long n, long p, int R)
{
    unsigned s = 17;
    double *X = rnd(n * p, &s, 0.05), *w = rnd(p, &s, 1.0), *y = rnd(n, &s, 1.0), *v = rnd(p, &s, 1.0);
    for (long i = 0; i < n; i++) y[i] = y[i] < 0 ? -1.0 : 1.0;
    double *H1 = malloc(sizeof(double) * (size_t)p), *H2 = malloc(sizeof(double) * (size_t)p);
    double *H3 = malloc(sizeof(double) * (size_t)p), *g = malloc(sizeof(double) * (size_t)p);
    logreg2_dims dd = {.n = n, .p = p};
    logreg2_sized_dims sd = {.n = n, .p = p};
    size_t we = logreg2_workspace(&dd), ws = logreg2_sized_workspace(&sd), wh = 2 * (size_t)n;
    double *w1 = malloc(sizeof(double) * we), *w2 = malloc(sizeof(double) * ws);
    double *w3 = malloc(sizeof(double) * wh);
    double te = 1e30, ts = 1e30, th = 1e30, tg = 1e30, thg = 1e30;
    double fe = 0, fs = 0, fh = 0;
    for (int i = 0; i < R; i++) {
        TIME(te, 1, fe = logreg2_hvp(&dd, X, w, y, v, H1, w1));
        TIME(ts, 1, fs = logreg2_sized_hvp(&sd, X, w, y, v, H3, w2));
        TIME(th, 1, fh = hand_logreg_hvp(n, p, X, w, y, v, H2, w3));
        TIME(tg, 1, logreg2(&dd, X, w, y, g, w1));
        TIME(thg, 1, hand_logreg(n, p, X, w, y, g, w3));
    }
    /* central differences of the emitted gradient */
    double eps = 1e-5, *wp = malloc(sizeof(double) * (size_t)p), *gm = malloc(sizeof(double) * (size_t)p);
    axpy(p, w, eps, v, wp);
    logreg2(&dd, X, wp, y, g, w1);
    axpy(p, w, -eps, v, wp);
    logreg2(&dd, X, wp, y, gm, w1);
    for (long i = 0; i < p; i++) g[i] = (g[i] - gm[i]) / (2 * eps);
    printf("logreg H v  sum(log(1 + exp(-y.*(X*w)))) by w;  n = %ld, p = %ld, best of %d\n", n, p, R);
    report_time("H v", te, th, 1.3);
    report_time("H v, --size", ts, th, 1.3);
    report_time("f + dw", tg, thg, 1.15);
    report_hvp_cost(te, tg, th, thg, 4.0);
    report_work(we, ws, wh, 1.5);
    report_diff(fmax(rel(fe, fh), maxrel(H1, H2, p)), fmax(rel(fs, fh), maxrel(H3, H2, p)));
    report_fd(maxrel(H1, g, p), maxrel(H2, g, p));
    free(X), free(w), free(y), free(v), free(H1), free(H2), free(H3), free(g), free(w1), free(w2), free(w3);
    free(wp), free(gm);
}

/* The dense Hessian X' diag(s) X, s = y.^2 .* e ./ (1 + e).^2 >= 0, by
   hand: z = X w, B = sqrt(s) .* X (the rows scaled), dsyrk, the lower
   triangle mirrored; scratch n + n p doubles.  Returns f. */
static double hand_logreg_hess(long n, long p, const double *X, const double *w, const double *y, double *H,
                               double *work)
{
    double *z = work, *B = work + n;
    cblas_dgemv(CblasColMajor, CblasNoTrans, (int)n, (int)p, 1.0, X, (int)n, w, 1, 0.0, z, 1);
    double f = 0.0;
    for (long i = 0; i < n; i++) {
        double e = exp(-y[i] * z[i]), q = 1.0 / (1.0 + e);
        f += log(1.0 + e);
        z[i] = sqrt(y[i] * y[i] * e) * q;
    }
    for (long j = 0; j < p; j++)
        for (long i = 0; i < n; i++) B[i + j * n] = z[i] * X[i + j * n];
    cblas_dsyrk(CblasColMajor, CblasUpper, CblasTrans, (int)p, (int)n, 1.0, B, (int)n, 0.0, H, (int)p);
    for (long j = 0; j < p; j++)
        for (long i = j + 1; i < p; i++) H[i + j * p] = H[j + i * p];
    return f;
}

/* NAME_hess (--order 2, from the Hessian's expression X'*diag(s)*X and
   md_mm_sym) against hand_logreg_hess. */
static void bench_logreg_hess(long n, long p, int R)
{
    unsigned s = 23;
    double *X = rnd(n * p, &s, 0.05), *w = rnd(p, &s, 1.0), *y = rnd(n, &s, 1.0);
    for (long i = 0; i < n; i++) y[i] = y[i] < 0 ? -1.0 : 1.0;
    double *He = malloc(sizeof(double) * (size_t)(p * p)), *Hh = malloc(sizeof(double) * (size_t)(p * p));
    logreg2_dims dd = {.n = n, .p = p};
    size_t we = logreg2_hess_workspace(&dd), wh = (size_t)n + (size_t)(n * p);
    double *w1 = malloc(sizeof(double) * we), *w3 = malloc(sizeof(double) * wh);
    double te = 1e30, th = 1e30, fe = 0, fh = 0;
    for (int i = 0; i < R; i++) {
        TIME(te, 1, fe = logreg2_hess(&dd, X, w, y, He, w1));
        TIME(th, 1, fh = hand_logreg_hess(n, p, X, w, y, Hh, w3));
    }
    printf("logreg H    the dense Hessian X'*diag(s)*X by w;  n = %ld, p = %ld, best of %d\n", n, p, R);
    report_time("H (NAME_hess)", te, th, 1.2);
    report_work(we, we, wh, 1.5);
    report_diff(fmax(rel(fe, fh), maxrel(He, Hh, p * p)), fmax(rel(fe, fh), maxrel(He, Hh, p * p)));
    free(X), free(w), free(y), free(He), free(Hh), free(w1), free(w3);
}

static void bench_mlp(long h, long d, long o, int R, int K)
{
    unsigned s = 19;
    long n1 = h * d, n2 = o * h, nv = n1 + n2;
    /* W = [W1 W2] and V = [V1 V2] contiguous, so a step along V is one loop */
    double *W = rnd(nv, &s, 0.1), *V = rnd(nv, &s, 1.0), *x = rnd(d, &s, 1.0), *y = rnd(o, &s, 1.0);
    double *W1 = W, *W2 = W + n1, *V1 = V, *V2 = V + n1;
    double *He = malloc(sizeof(double) * (size_t)nv), *Hh = malloc(sizeof(double) * (size_t)nv);
    double *Hs = malloc(sizeof(double) * (size_t)nv), *G = malloc(sizeof(double) * (size_t)nv);
    mlp_dims dd = {.h = h, .d = d, .o = o};
    mlp_sized_dims sd = {.h = h, .d = d, .o = o};
    size_t we = mlp_workspace(&dd), ws = mlp_sized_workspace(&sd), wh = 4 * (size_t)h + 2 * (size_t)o;
    double *w1 = malloc(sizeof(double) * we), *w2 = malloc(sizeof(double) * ws);
    double *w3 = malloc(sizeof(double) * wh);
    double te = 1e30, ts = 1e30, th = 1e30, tg = 1e30, thg = 1e30;
    double fe = 0, fs = 0, fh = 0;
    for (int i = 0; i < R; i++) {
        TIME(te, K, fe = mlp_hvp(&dd, W1, W2, x, y, V1, V2, He, He + n1, w1));
        TIME(ts, K, fs = mlp_sized_hvp(&sd, W1, W2, x, y, V1, V2, Hs, Hs + n1, w2));
        TIME(th, K, fh = hand_mlp_hvp(h, d, o, W1, W2, x, y, V1, V2, Hh, Hh + n1, w3));
        TIME(tg, K, mlp(&dd, W1, W2, x, y, G, G + n1, w1));
        TIME(thg, K, hand_mlp(h, d, o, W1, W2, x, y, G, G + n1, w3));
    }
    /* eps^2 truncation dominates down to here (V is ten times W) */
    double eps = 1e-6, *Wp = malloc(sizeof(double) * (size_t)nv), *Gm = malloc(sizeof(double) * (size_t)nv);
    axpy(nv, W, eps, V, Wp);
    mlp(&dd, Wp, Wp + n1, x, y, G, G + n1, w1);
    axpy(nv, W, -eps, V, Wp);
    mlp(&dd, Wp, Wp + n1, x, y, Gm, Gm + n1, w1);
    for (long i = 0; i < nv; i++) G[i] = (G[i] - Gm[i]) / (2 * eps);
    printf("MLP H v     norm2(W2*tanh(W1*x) - y)^2 by W1, W2;  d = %ld, h = %ld, o = %ld, best of %d (x %d calls)\n",
           d, h, o, R, K);
    report_time("H v", te, th, 1.3);
    report_time("H v, --size", ts, th, 1.3);
    report_time("f + dW1 + dW2", tg, thg, 1.15);
    report_hvp_cost(te, tg, th, thg, 4.0);
    report_work(we, ws, wh, 1.5);
    report_diff(fmax(rel(fe, fh), fmax(maxrel(He, Hh, n1), maxrel(He + n1, Hh + n1, n2))),
                fmax(rel(fs, fh), fmax(maxrel(Hs, Hh, n1), maxrel(Hs + n1, Hh + n1, n2))));
    report_fd(fmax(maxrel(He, G, n1), maxrel(He + n1, G + n1, n2)),
              fmax(maxrel(Hh, G, n1), maxrel(Hh + n1, G + n1, n2)));
    free(W), free(V), free(x), free(y), free(He), free(Hh), free(Hs), free(G), free(w1), free(w2), free(w3);
    free(Wp), free(Gm);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 4000, p = argc > 2 ? atol(argv[2]) : 500;
    long d = argc > 3 ? atol(argv[3]) : 500, h = argc > 4 ? atol(argv[4]) : 300, o = argc > 5 ? atol(argv[5]) : 100;
    int R = argc > 6 ? atoi(argv[6]) : 5, K = argc > 7 ? atoi(argv[7]) : 50;
    bench_logreg(n, p, R);
    bench_logreg_hess(n, p, R > 5 ? R / 2 : R);
    bench_mlp(h, d, o, R, K);
    return 0;
}
