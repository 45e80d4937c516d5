/*
 * fuzz_emit.c -- libFuzzer harness for --format c: the C function that
 * computes f and its gradients.
 *
 * The first input byte is the mode, the rest is the program:
 *
 *     bit 0    --no-blas (plain loops; else CBLAS and LAPACK calls)
 *     bit 1    --layout row (else column-major)
 *     bit 2    --header (the declarations only)
 *     bit 3    --check (the gradients, built without factoring as the
 *              C backend builds them, printed as text, read back and
 *              checked against finite differences)
 *     bits 4-6 k: --size with the first k of n=1000,m=50,p=7,q=300,r=20
 *              (k = 0, 6, 7: no --size)
 *     bit 7    --order 2 (NAME_hvp too: the Hessian-vector product, and
 *              NAME_hess, from the Hessian's blocks for vector variables)
 *
 * A vector or matrix function goes through md_emit_c_map (F, J v, J' u,
 * the dense Jacobian) instead of gradients.
 *
 * With every dimension sized, md_cost_rewrite brackets the product chains
 * by the matrix-chain DP, shares sub-products between chains, reads
 * transposes through BLAS flags and may go through Gram matrices; without
 * sizes the emitted code brackets at run time.  Either way md_emit_c
 * schedules the whole graph, gives every non-scalar a slice of the work
 * array, shares one LU per matrix among det, logdet and inverses, and
 * turns inverses used only in products into solves.  This harness does
 * not compile the emitted code (tests/unit/test_emit.c does that for
 * chosen programs); it finds the emitter's own crashes, leaks, undefined
 * behaviour and internal errors (exit 3).  A --size naming a dimension
 * the program does not have is a usage error (exit 2), which is fine.
 * Exit 4 is not a bug here (the same gradients are judged by fuzz_grad).
 */
#include "fuzz_common.h"

static const char *const sizes[] = {NULL, "n=1000", "n=1000,m=50", "n=1000,m=50,p=7",
                                    "n=1000,m=50,p=7,q=300", "n=1000,m=50,p=7,q=300,r=20", NULL, NULL};

static void one(const uint8_t *data, size_t size)
{
    if (size == 0) return;
    unsigned mode = data[0];
    md_request rq;
    md_request_init(&rq);
    rq.format = MD_FORMAT_C;
    char opts[160] = "--format c";
    if (mode & 1) rq.emit.blas = 0, strcat(opts, " --no-blas");
    if (mode & 2) rq.emit.row_major = 1, strcat(opts, " --layout row");
    if (mode & 4) rq.header = 1, strcat(opts, " --header");
    if (mode & 8) rq.check = 1, strcat(opts, " --check");
    rq.sizes = sizes[(mode >> 4) & 7];
    if (mode & 128) rq.order = 2, strcat(opts, " --order 2");
    if (rq.sizes) strcat(opts, " --size "), strcat(opts, rq.sizes);
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
