/*
 * fuzz_simplify.c -- libFuzzer harness for --simplify: the function
 * itself, any shape, through the simplifying constructors and back out as
 * a program.
 *
 * No derivative is taken, so what this reaches is the canonical form of
 * simplify.c on its own: flat sums with exact rational coefficients,
 * products with merged bases and cancelled inverses, Hadamard products,
 * transposes pushed to the leaves, md_factor_common, exact powers of
 * rationals (GMP), constant folding; then the printer, with temporaries
 * and with sizes on constants that need them, and the read-back that
 * compares the printed program with the graph on random data
 * (print_verified in driver.c).  Non-scalar functions are welcome
 * here, which the gradient harnesses reject early.
 *
 * The oracle is exit status 3 (the printed text did not read back to the
 * same values, or another internal error); --check is not allowed with
 * --simplify, so exit 4 cannot happen.  The output is a program again,
 * and the golden runner feeds it back to --simplify; so does this
 * harness, and the second run must succeed too (exit 0).
 */
#include "fuzz_common.h"

static void one(const uint8_t *data, size_t size)
{
    md_request rq;
    md_request_init(&rq);
    rq.simplify = 1;
    md_buf out = {0};
    int rc = fuzz_md_run(&rq, "--simplify", 0, data, size, &out);
    if (rc == MD_EXIT_OK && out.len <= 4 * FUZZ_MAX_LEN) {
        /* the round trip: what --simplify prints, --simplify reads */
        md_buf again = {0};
        fuzz_err e;
        fuzz_err_open(&e);
        int rc2 = md_run(&rq, "<stdin>", out.s, out.len, &again, e.f);
        fuzz_err_close(&e);
        if (rc2 != MD_EXIT_OK) {
            fprintf(stderr, "\n==== fuzz: the output of --simplify does not go through --simplify (exit %d)\n", rc2);
            fprintf(stderr, "==== first output:\n%s", out.s);
            fuzz_fail("round trip of --simplify failed", "--simplify | ./matdiff --simplify", data, size, e.s,
                      again.s);
        }
        fuzz_err_free(&e);
        md_buf_free(&again);
    }
    md_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_LEN) return 0;
    fuzz_on_big_stack(one, data, size);
    return 0;
}
