/*
 * bench.h -- what the C benchmark programs (bench_c*.c) share: a
 * monotonic clock and reproducible pseudo-random data.
 */
#ifndef MD_BENCH_H
#define MD_BENCH_H

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

#endif
