/*
 * bench_c.c -- times the C code matdiff emits for seed 003 against the
 * hand-written CBLAS gradient (seed003_hand.c), at n = p = q = N and d = D
 * (default 1000 and 50, as in the issue), single-threaded BLAS.
 *
 * Prints the best of R runs for: the emitted f and both gradients, the
 * emitted f alone (NULL gradients), and the hand-written f and both
 * gradients; then the two ratios the issue sets targets for (emitted /
 * hand <= 1.15, f-and-gradient / f <= 3) and the largest relative
 * difference between the two gradients.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "bench.h"

#include "seed003.h"

size_t hand_workspace(long n, long p, long q, long d);
double hand(long n, long p, long q, long d, double lambda, const double *Y, const double *X,
            const double *U, const double *V, double *dU, double *dV, double *work);

int main(int argc, char **argv)
{
    long N = argc > 1 ? atol(argv[1]) : 1000, D = argc > 2 ? atol(argv[2]) : 50;
    int R = argc > 3 ? atoi(argv[3]) : 5;
    long n = N, p = N, q = N, d = D;
    unsigned s = 7;
    double lambda = 0.5;
    double *Y = rnd(n * q, &s, 1.0), *X = rnd(n * p, &s, 1.0), *U = rnd(p * d, &s, 1.0), *V = rnd(q * d, &s, 1.0);
    double *dU = malloc(sizeof(double) * (size_t)(p * d)), *dV = malloc(sizeof(double) * (size_t)(q * d));
    double *hU = malloc(sizeof(double) * (size_t)(p * d)), *hV = malloc(sizeof(double) * (size_t)(q * d));
    seed003_dims dims = {.n = n, .p = p, .q = q, .d = d};
    double *w1 = malloc(sizeof(double) * seed003_workspace(&dims));
    double *w2 = malloc(sizeof(double) * hand_workspace(n, p, q, d));
    double tg = 1e30, tf = 1e30, th = 1e30, fe = 0, fh = 0;
    for (int r = 0; r < R; r++) {
        double t0 = now();
        fe = seed003(&dims, lambda, Y, X, U, V, dU, dV, w1);
        double t1 = now();
        seed003(&dims, lambda, Y, X, U, V, NULL, NULL, w1);
        double t2 = now();
        fh = hand(n, p, q, d, lambda, Y, X, U, V, hU, hV, w2);
        double t3 = now();
        if (t1 - t0 < tg) tg = t1 - t0;
        if (t2 - t1 < tf) tf = t2 - t1;
        if (t3 - t2 < th) th = t3 - t2;
    }
    double err = fabs(fe - fh) / fabs(fh);
    for (long i = 0; i < p * d; i++) err = fmax(err, fabs(dU[i] - hU[i]) / (fabs(hU[i]) + 1e-300 + 1e-12));
    for (long i = 0; i < q * d; i++) err = fmax(err, fabs(dV[i] - hV[i]) / (fabs(hV[i]) + 1e-300 + 1e-12));
    printf("seed 003, n = p = q = %ld, d = %ld, best of %d, single-threaded BLAS\n", N, D, R);
    printf("  emitted f + dU + dV  %9.1f ms\n", 1e3 * tg);
    printf("  emitted f alone      %9.1f ms\n", 1e3 * tf);
    printf("  hand-written CBLAS   %9.1f ms\n", 1e3 * th);
    printf("  emitted / hand       %9.2f x   (target <= 1.15)\n", tg / th);
    printf("  (f + grad) / f       %9.2f x   (target <= 3)\n", tg / tf);
    printf("  max relative difference emitted vs hand: %.1e\n", err);
    free(Y), free(X), free(U), free(V), free(dU), free(dV), free(hU), free(hV), free(w1), free(w2);
    return 0;
}
