/*
 * fuzz_grad.c -- libFuzzer harness for the default mode: the gradient
 * with respect to every variable, printed as text, checked numerically.
 *
 * This is `matdiff --check` on the input bytes (with --order 2 for every
 * third input length up to 200 bytes; a vector or matrix function gets its Jacobian
 * d vec(F)/d vec(X)'): parse, shapes, the
 * differential and its identification (md_gradient), the printer with its
 * temporaries, the read-back that refuses to print what does not parse
 * back to the same values (md_readback), and the finite-difference check
 * of the printed text.  The whole pipeline a user runs, through md_run
 * (include/md_driver.h), on the same big stack main.c gives it.
 *
 * Two oracles beyond the sanitizers.  Exit status 3 is matdiff admitting
 * an internal error: a bug.  Exit status 4 means the printed gradient
 * disagrees with finite differences at points inside the function's
 * domain ("a gradient disagrees"): also a bug, a wrong answer that
 * matdiff itself caught.  Exit 4 for a function with no point in its
 * domain (log(-exp(x))) or an inconclusive check is not.  The seed is fixed (1), so a failure reproduces from the command
 * line: printf '...' | ./matdiff --check.
 */
#include "fuzz_common.h"

static void one(const uint8_t *data, size_t size)
{
    md_request rq;
    md_request_init(&rq);
    rq.check = 1;
    /* every third input length also asks for the Hessian (--order 2); a
       non-scalar function gets its Jacobian either way */
    int hess = size % 3 == 2 && size <= 200;   /* a Hessian has a block per pair of variables */
    if (hess) rq.order = 2;
    md_buf out = {0};
    fuzz_md_run(&rq, hess ? "--check --order 2" : "--check", 1, data, size, &out);
    md_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_LEN) return 0;
    fuzz_on_big_stack(one, data, size);
    return 0;
}
