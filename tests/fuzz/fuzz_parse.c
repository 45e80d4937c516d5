/*
 * fuzz_parse.c -- libFuzzer harness for the front end: md_parse, then
 * md_typecheck, on the input bytes as they are.
 *
 * This is the stage every byte of user input reaches first: the Flex
 * scanner (keywords only at the start of a statement, f'(x) as one token,
 * 2.*x as 2 .* x, UTF-8 decoded into Greek names, Unicode operators and
 * blanks, NUL and invalid UTF-8 as bad characters), the Bison
 * grammar with its hand-stratified precedence and LAC error messages, the
 * n-ary chains that grow in place, the depth limit, then name resolution
 * and shape unification with their "did you mean" hints and their error
 * carets.  Nothing is differentiated, so each input is cheap and the
 * fuzzer explores the syntax quickly.
 *
 * It does what tests/unit/md_test.h's load_with does: md_source_init,
 * messages into a memory stream, md_ctx_new, md_parse, md_typecheck, and
 * frees everything.  Besides the sanitizers it checks the front end's own
 * promise that failure is never silent: md_parse returning NULL or
 * md_typecheck returning -1 must come with a report, and a program that
 * typechecks has a function.
 */
#include "fuzz_common.h"

#include "md_ast.h"
#include "md_expr.h"
#include "md_shape.h"

static void one(const uint8_t *data, size_t size)
{
    fuzz_err e;
    fuzz_err_open(&e);
    md_source src;
    md_source_init(&src, "<stdin>", (const char *)data, size);
    src.err = e.f;
    md_ctx *ctx = md_ctx_new();
    md_typed typed;
    memset(&typed, 0, sizeof typed);
    md_program *prog = md_parse(&src);
    const char *why = NULL;
    if (!prog) {
        if (src.nerrors == 0) why = "md_parse failed without a report";
    } else {
        int before = src.nerrors;
        if (md_typecheck(prog, ctx, &typed) != 0) {
            if (src.nerrors == before) why = "md_typecheck failed without a report";
        } else if (!typed.f || !typed.ftext) {
            why = "md_typecheck succeeded without a function";
        }
    }
    fflush(e.f);
    if (why) fuzz_fail(why, "-s   # the front end fails the same way in every mode", data, size, e.s, NULL);
    md_typed_free(&typed);
    md_program_free(prog);
    md_ctx_free(ctx);
    fuzz_err_close(&e);
    fuzz_err_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FUZZ_MAX_LEN) return 0;
    fuzz_on_big_stack(one, data, size);
    return 0;
}
