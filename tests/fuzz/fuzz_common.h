/*
 * fuzz_common.h -- what the libFuzzer harnesses in tests/fuzz/ share: a
 * big stack, a size cap, and the rule for what counts as a bug.
 *
 * The stages recurse over expressions, and legal inputs nest up to
 * MD_MAX_DEPTH = 10 000 levels; instrumented frames are several times
 * larger than release ones.  So every input runs on one worker thread with
 * a 1 GiB stack, as main.c runs md_run: the stack is reserved address
 * space, not memory used, and one persistent thread costs nothing per
 * input (a fresh 1 GiB thread per input would make ASan clear the shadow
 * of the whole stack every time).  The fuzzer's thread hands the input
 * over and waits; a crash or sanitizer report on the worker is reported
 * by libFuzzer like any other.
 *
 * Inputs longer than FUZZ_MAX_LEN bytes are ignored (return 0), so that
 * the fuzzer spends its time on structure rather than on size; size and
 * depth limits have their own golden cases (tests/golden/robustness.test).
 *
 * What is a bug (fuzz_fail prints the input and matdiff's messages, then
 * aborts, which libFuzzer reports as a crash):
 *
 *   - exit status 3 (MD_EXIT_INTERNAL): matdiff said "internal error";
 *   - an exit status that is none of 0..4;
 *   - exit status 1 with no message: an input error must say where;
 *   - exit status 0 with no output;
 *   - for harnesses that ask for it (fuzz_grad), exit status 4 when the
 *     messages say "a gradient (derivative, second derivative) disagrees"
 *     with finite differences: a wrong
 *     answer.  Exit 4 for a function with no point in its domain
 *     (log(-exp(x))) or an inconclusive check (too steep at every point
 *     tried, a gradient singular at every point, a variable swallowed by a
 *     constant as in sin(a + 1e20)) is not a bug.
 *
 * Plus, as always, anything AddressSanitizer, UndefinedBehaviorSanitizer
 * or LeakSanitizer reports, timeouts (-timeout) and memory blow-ups
 * (-rss_limit_mb).  md_xmalloc's exit(3) on allocation failure shows up as
 * libFuzzer's "fuzz target exited".
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "md_driver.h"

enum { FUZZ_MAX_LEN = 4096 };

/* ---- the worker thread ---------------------------------------------------- */

typedef void (*fuzz_fn)(const uint8_t *data, size_t size);

static pthread_mutex_t fuzz_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fuzz_cv = PTHREAD_COND_INITIALIZER;
static fuzz_fn fuzz_job_fn;
static const uint8_t *fuzz_job_data;
static size_t fuzz_job_size;
static int fuzz_job_pending, fuzz_job_done;

static void *fuzz_worker(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&fuzz_mu);
        while (!fuzz_job_pending) pthread_cond_wait(&fuzz_cv, &fuzz_mu);
        fuzz_job_pending = 0;
        pthread_mutex_unlock(&fuzz_mu);
        fuzz_job_fn(fuzz_job_data, fuzz_job_size);
        pthread_mutex_lock(&fuzz_mu);
        fuzz_job_done = 1;
        pthread_cond_broadcast(&fuzz_cv);
        pthread_mutex_unlock(&fuzz_mu);
    }
    return NULL;
}

/* Runs fn(data, size) on the big-stack worker and waits for it. */
static void fuzz_on_big_stack(fuzz_fn fn, const uint8_t *data, size_t size)
{
    static int have_worker;
    if (!have_worker) {
        pthread_attr_t attr;
        pthread_t th;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, (size_t)1 << 30);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &attr, fuzz_worker, NULL) != 0) {
            fprintf(stderr, "fuzz: cannot create the 1 GiB worker thread\n");
            abort();
        }
        pthread_attr_destroy(&attr);
        have_worker = 1;
    }
    pthread_mutex_lock(&fuzz_mu);
    fuzz_job_fn = fn;
    fuzz_job_data = data;
    fuzz_job_size = size;
    fuzz_job_done = 0;
    fuzz_job_pending = 1;
    pthread_cond_broadcast(&fuzz_cv);
    while (!fuzz_job_done) pthread_cond_wait(&fuzz_cv, &fuzz_mu);
    pthread_mutex_unlock(&fuzz_mu);
}

/* ---- reporting ------------------------------------------------------------- */

/* The bytes as a printf format (octal escapes for anything unprintable). */
static void fuzz_print_bytes(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c == '\n') fputs("\\n", f);
        else if (c == '\\') fputs("\\\\", f);
        else if (c == '%') fputs("%%", f);
        else if (c == '\'') fputs("'\\''", f);
        else if (c == '-' && i == 0) fputs("\\055", f);   /* printf '-...' would take an option */
        else if (c >= 0x20 && c < 0x7f) fputc(c, f);
        else fprintf(f, "\\%03o", c);
    }
}

/* Prints what went wrong, the options, the program and matdiff's messages;
   then aborts. */
__attribute__((noreturn)) static void fuzz_fail(const char *why, const char *opts, const uint8_t *prog,
                                                size_t len, const char *err, const char *out)
{
    fprintf(stderr, "\n==== fuzz: %s\n", why);
    fprintf(stderr, "==== reproduce: printf '");
    fuzz_print_bytes(stderr, prog, len);
    fprintf(stderr, "' | ./matdiff %s\n", opts);
    fprintf(stderr, "==== messages:\n%s", err && *err ? err : "(none)\n");
    if (out && *out) fprintf(stderr, "==== output:\n%s", out);
    fflush(stderr);
    abort();
}

/* A memory stream for matdiff's messages. */
typedef struct fuzz_err {
    FILE *f;
    char *s;
    size_t len;
} fuzz_err;

static void fuzz_err_open(fuzz_err *e)
{
    e->s = NULL;
    e->len = 0;
    e->f = open_memstream(&e->s, &e->len);
    if (!e->f) abort();
}

/* Closes the stream; e->s stays valid until fuzz_err_free. */
static void fuzz_err_close(fuzz_err *e)
{
    fclose(e->f);
    e->f = NULL;
}

static void fuzz_err_free(fuzz_err *e)
{
    free(e->s);
    e->s = NULL;
}

/*
 * One md_run of rq on the program, judged by the rules above; opts is the
 * matdiff command line that rq stands for (for the reproducer line).
 * check_is_bug: exit 4 with "... disagrees with finite differences" is a bug.  Returns the
 * exit status for harnesses that do more with the result.
 */
static int fuzz_md_run(const md_request *rq, const char *opts, int check_is_bug, const uint8_t *prog,
                       size_t len, md_buf *out)
{
    fuzz_err e;
    fuzz_err_open(&e);
    int rc = md_run(rq, "<stdin>", (const char *)prog, len, out, e.f);
    fuzz_err_close(&e);
    const char *os = out->s ? out->s : "";
    if (rc == MD_EXIT_INTERNAL) fuzz_fail("internal error (exit 3)", opts, prog, len, e.s, os);
    if (rc < 0 || rc > MD_EXIT_CHECK) fuzz_fail("unknown exit status", opts, prog, len, e.s, os);
    if (rc == MD_EXIT_INPUT && e.len == 0) fuzz_fail("input error without a message (exit 1)", opts, prog, len, e.s, os);
    if (rc == MD_EXIT_OK && out->len == 0) fuzz_fail("success without output (exit 0)", opts, prog, len, e.s, os);
    /* "a gradient", "a derivative" (Jacobians), "a second derivative"
       (Hessians) */
    if (rc == MD_EXIT_CHECK && check_is_bug && e.s && strstr(e.s, "disagrees with finite differences"))
        fuzz_fail("--check: a derivative disagrees with finite differences (exit 4)", opts, prog, len, e.s, os);
    fuzz_err_free(&e);
    return rc;
}

#endif
