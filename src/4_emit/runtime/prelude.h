/*
 * runtime/prelude.h -- what an emitted file has above its helpers, for
 * compiling the helpers on their own.  Never emitted.
 *
 * Every file of src/4_emit/runtime/ but the two headers is one helper of
 * the emitted C (md_mm, md_lu, md_chain, ...), written as the C it is:
 * the build compiles each file alone as C99 with the project's warnings,
 * -Wpedantic and -Werror (src/4_emit/emit.mk), so a typo in a helper
 * fails the build instead of the first user's compiler.  The text between
 * the lines
 *
 *     / * md:begin * /     and     / * md:end * /
 *
 * (without the spaces) is the helper, byte for byte as the emitter writes
 * it: emit.mk turns those lines of every file into one string of
 * $(B)/md_runtime.h (em_runtime[EM_RT_<FILE>]), and the emitter copies the
 * strings it needs (md_emit_c in emit.c).  What stands around the markers
 * is for the compile check only:
 *
 *  - an include guard, this prelude, and the runtime files whose helpers
 *    this one calls (the plain-loop variant when both backends have one:
 *    md_mm, md_pivot, md_lu_solve, ...), each guarded, so that every file
 *    compiles alone;
 *  - MD_RUNTIME_KEEP(md_name) after md:end: a static helper nobody calls
 *    in its own file would be an unused function.
 *
 * Inside the markers, lines between `#if MD_SEL_<FLAG>` (or
 * `#if !MD_SEL_<FLAG>`), `#else // MD_SEL_<FLAG>` and `#endif //
 * MD_SEL_<FLAG>` are kept or dropped by the emitter according to FLAG, and
 * the directive lines themselves are never emitted (em_runtime_put in
 * emit.c); the C preprocessor reads the same lines the same way, so the
 * build checks every variant by compiling with -DMD_SEL_<FLAG>=0 and =1.
 * Those are the flags:
 *
 *  - MD_SEL_SOLVES: the chain helpers with inverses among the factors
 *    (p[i] non-NULL: factor i is inv(A), a[i] and p[i] A's LU factors);
 *  - MD_SEL_GEN: lines that only the generator compiles: chain_dp.c is
 *    also costopt.c's matrix-chain DP (md_cost_chain), and its GEN section
 *    lets the caller mark sub-chains that cost nothing.  Always 0 when
 *    emitting.
 *
 * The directive form with `//` matters: a helper's own comment may hold a
 * selected section (chain_dp.c's), and `*` `/` there would end it.
 */
#ifndef MD_RUNTIME_PRELUDE_H
#define MD_RUNTIME_PRELUDE_H

/* what every emitted file includes before its helpers */
#include <math.h>
#include <stddef.h>
#include <string.h>

/* the emitter defines it above the chain helpers (EM_CHAIN_MAX) */
#ifndef MD_CHAIN_MAX
#define MD_CHAIN_MAX 16
#endif

/* Uses the static helper f, so that its file compiles alone without an
   unused-function warning; nothing in the generator. */
#if MD_SEL_GEN
#define MD_RUNTIME_KEEP(f)
#else
#define MD_RUNTIME_KEEP(f) \
    void md_keep_##f(void); \
    void md_keep_##f(void) { (void)f; }
#endif

#endif
