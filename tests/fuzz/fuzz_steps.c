/*
 * fuzz_steps.c -- libFuzzer harness for --steps --check: derivations
 * written line by line, and every line verified numerically.
 *
 * The first input byte is the mode, the rest is the program:
 *
 *     bit 0  --format latex (else Unicode text)
 *     bit 1  --standalone (with latex: a whole document)
 *     bit 2  --transpose T (^T instead of ^\top)
 *     bit 3  --hadamard odot
 *     bit 4  --order 2 (the derivation of the Hessian blocks; inputs up to
 *            200 bytes, as fuzz_grad)
 *
 * A vector or matrix function gets the derivation of its Jacobian
 * (d vec F through the vec identities of md_vec_step).
 * --steps has its own machinery (steps.c): it substitutes names for
 * the arguments of the outermost norms, sums and traces, writes the
 * function in Frobenius form, and rewrites `a : e` one identity at a time
 * with the same table as md_identify, collecting terms; md_steps_check
 * evaluates every line along a random direction.  A derivation that
 * leaves the identities it knows is an internal error (exit 3), and so is
 * a gradient whose text does not read back.  Both are bugs here.
 *
 * Exit 4 is not treated as a bug in this harness: the gradients
 * themselves are judged by fuzz_grad, and the line-by-line check is a
 * numeric comparison with its own tolerance, which ill-conditioned points
 * can exceed.  An input that exits 4 here can be run through fuzz_grad
 * (without the mode byte), or `matdiff --check`, to tell a wrong gradient
 * from a derivation line that drifts.
 */
#include "fuzz_common.h"

static void one(const uint8_t *data, size_t size)
{
    if (size == 0) return;
    unsigned mode = data[0];
    md_request rq;
    md_request_init(&rq);
    rq.steps = 1;
    rq.check = 1;
    char opts[128] = "--steps --check";
    if (mode & 1) {
        rq.format = MD_FORMAT_LATEX;
        strcat(opts, " --format latex");
        if (mode & 2) rq.standalone = 1, strcat(opts, " --standalone");
    }
    if (mode & 4) rq.style.transpose_T = 1, strcat(opts, " --transpose T");
    if (mode & 8) rq.style.odot = 1, strcat(opts, " --hadamard odot");
    if (mode & 16) {
        /* the derivation and --check of every Hessian block (n^2 of them)
           is the slowest path: long programs stay within the harness's
           timeout under ASan only up to the length fuzz_grad allows */
        if (size > 200) return;
        rq.order = 2, strcat(opts, " --order 2");
    }
    md_buf out = {0};
    fuzz_md_run(&rq, opts, 0, data + 1, size - 1, &out);
    md_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_LEN + 1) return 0;
    fuzz_on_big_stack(one, data, size);
    return 0;
}
