/*
 * bench.h -- what the C benchmark programs (bench_c*.c) share: a
 * monotonic clock, reproducible pseudo-random data, the largest relative
 * difference between two results, and the lines of the report.
 *
 * Every case prints the same lines, each with the target beside its ratio
 * (issue 11: the emitted code, generated without --size as users call it,
 * as fast as hand-written CBLAS/LAPACK and lean in memory):
 *
 *   f + gradients      emitted against hand-written, time ratio
 *   f alone            emitted with NULL gradients against a hand-written f
 *   f + grad, --size   the first line, emitted with --size (for comparison)
 *   (f + grad) / f     the emitted gradient's overhead over f alone
 *   workspace          NAME_workspace(&dims) against the hand-written scratch
 *
 * A ratio over its target is flagged "MISSED", so a run shows at a glance
 * what is left to do.
 */
#ifndef MD_BENCH_H
#define MD_BENCH_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* Seconds on a monotonic clock. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* n values uniform in [-scale, scale), from the generator state *s
   (a linear congruential generator: the same data on every machine). */
static double *rnd(long n, unsigned *s, double scale)
{
    double *v = malloc(sizeof(double) * (size_t)n);
    for (long i = 0; i < n; i++) {
        *s = *s * 1103515245u + 12345u;
        v[i] = scale * (((*s >> 8) & 0xffff) / 32768.0 - 1.0);
    }
    return v;
}

/* The largest difference between a and the reference b (n values),
   relative to b's largest magnitude: entries near zero do not count as
   large relative errors when the rest of b is large. */
static double maxrel(const double *a, const double *b, long n)
{
    double e = 0.0, m = 0.0;
    for (long i = 0; i < n; i++) m = fmax(m, fabs(b[i]));
    for (long i = 0; i < n; i++) e = fmax(e, fabs(a[i] - b[i]) / (m + 1e-300));
    return e;
}

/* The relative difference of two values of f. */
static double rel(double a, double b)
{
    return fabs(a - b) / (fabs(b) + 1e-300);
}

/* Times STMT over k calls and keeps the seconds per call in best when
   lower: best of the runs, each run of k calls (k > 1 for the cases that
   take well under a millisecond, where the clock and the cache dominate one
   call). */
#define TIME(best, k, STMT)                                     \
    do {                                                        \
        double t0_ = now();                                     \
        for (int k_ = 0; k_ < (k); k_++) { STMT; }              \
        double t_ = (now() - t0_) / (k);                        \
        if (t_ < (best)) (best) = t_;                           \
    } while (0)

static const char *flag(double ratio, double target)
{
    return ratio <= target ? "" : "  MISSED";
}

/* A time line: emitted and hand-written seconds per call, their ratio
   and its target. */
static void report_time(const char *what, double te, double th, double target)
{
    printf("  %-22s emitted %9.3f ms   hand %9.3f ms   ratio %5.2f x  (target <= %.2f)%s\n", what, 1e3 * te,
           1e3 * th, te / th, target, flag(te / th, target));
}

/* The gradient's overhead: f and its gradients over f alone, emitted. */
static void report_overhead(double tg, double tf, double target)
{
    printf("  %-22s emitted %9.2f x    (target <= %.2f)%s\n", "(f + grad) / f alone", tg / tf, target,
           flag(tg / tf, target));
}

/* The workspace line: doubles of scratch, emitted (and emitted with
   --size) against hand-written. */
static void report_work(size_t we, size_t ws, size_t wh, double target)
{
    double r = (double)we / (double)wh;
    printf("  %-22s emitted %9zu      hand %9zu      ratio %5.2f x  (target <= %.2f)%s   --size: %zu (%.2f x)\n",
           "workspace (doubles)", we, wh, r, target, flag(r, target), ws, (double)ws / (double)wh);
}

/* The numerical agreement: emitted (without and with --size) against
   hand-written, f and every gradient. */
static void report_diff(double e, double es)
{
    printf("  %-22s %.1e   (--size: %.1e)\n", "max rel. difference", e, es);
}

#endif
