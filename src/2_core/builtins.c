/*
 * builtins.c -- the table of built-in functions (md_builtins.h), made
 * from md_builtins.def.
 *
 * Each line of the .def becomes an entry of md_fns (or md_ops) here: the
 * evaluator's long double function is generated from the line's `eval`
 * expression, the exact rational values come from the small md_fold_*
 * functions below, and the derivative rule is md_fprime_<ID> in diff.c.
 * Nothing else in the program lists the elementwise functions.
 */
#include "md_builtins.h"

#include <math.h>
#include <string.h>

/* ---- exact values on rationals ------------------------------------------ */

static int md_fold_none(mpq_t out, const mpq_t x)
{
    (void)out;
    (void)x;
    return 0;
}

static int md_fold_abs(mpq_t out, const mpq_t x)
{
    mpq_abs(out, x);
    return 1;
}

static int md_fold_sign(mpq_t out, const mpq_t x)
{
    mpq_set_si(out, mpq_sgn(x), 1);
    return 1;
}

static int md_fold_relu(mpq_t out, const mpq_t x)
{
    if (mpq_sgn(x) > 0) mpq_set(out, x);
    else mpq_set_ui(out, 0, 1);
    return 1;
}

static int md_fold_step(mpq_t out, const mpq_t x)
{
    mpq_set_ui(out, mpq_sgn(x) > 0, 1);
    return 1;
}

/* sqrt of a rational square: sqrt(9/4) = 3/2 */
static int md_fold_sqrt(mpq_t out, const mpq_t x)
{
    if (mpq_sgn(x) < 0 || !mpz_perfect_square_p(mpq_numref(x)) || !mpz_perfect_square_p(mpq_denref(x)))
        return 0;
    mpz_sqrt(mpq_numref(out), mpq_numref(x));
    mpz_sqrt(mpq_denref(out), mpq_denref(x));
    mpq_canonicalize(out);
    return 1;
}

/* ---- the table ------------------------------------------------------------ */

#define MD_FN(ID, name, unicode, latex, lstyle, c, py, pt, m, ev, domain, at0, at1, fold, flags) \
    static long double md_eval_##ID(long double x) { return (ev); }
#define MD_OP(KIND, name, latex, arity, shape, domain)
#include "md_builtins.def"
#undef MD_FN
#undef MD_OP

const md_fn_info md_fns[MD_NFNS] = {
#define MD_FN(ID, name, unicode, latex, lstyle, c, py, pt, m, ev, domain, at0, at1, fold, flags) \
    [MD_FN_##ID] = {name, unicode, latex, lstyle, c, {py, pt, m}, md_eval_##ID, domain, at0, at1, md_fold_##fold, flags, \
                    md_fprime_##ID},
#define MD_OP(KIND, name, latex, arity, shape, domain)
#include "md_builtins.def"
#undef MD_FN
#undef MD_OP
    /* generic functions have their own rules everywhere; this entry only
       keeps the table total */
    [MD_FN_GENERIC] = {"<generic>", "<generic>", "", MD_LX_CALL, "", {"", "", ""}, NULL, MD_DOM_ANY, NULL, NULL, md_fold_none, 0, NULL},
};

const md_op_info md_ops[] = {
#define MD_FN(ID, name, unicode, latex, lstyle, c, py, pt, m, ev, domain, at0, at1, fold, flags)
#define MD_OP(KIND, name, latex, arity, shape, domain) {MD_##KIND, name, latex, arity, shape, domain},
#include "md_builtins.def"
#undef MD_FN
#undef MD_OP
};

const int md_nops = (int)(sizeof md_ops / sizeof md_ops[0]);

int md_fn_exact(md_fn fn, mpq_t out, const mpq_t x)
{
    const md_fn_info *fi = &md_fns[fn];
    if (fi->fold(out, x)) return 1;
    const char *v = mpq_sgn(x) == 0 ? fi->at0 : mpq_cmp_ui(x, 1, 1) == 0 ? fi->at1 : NULL;
    if (!v) return 0;
    mpq_set_str(out, v, 10);
    mpq_canonicalize(out);
    return 1;
}

md_fn md_fn_by_name(const char *name)
{
    for (int i = 0; i < MD_FN_GENERIC; i++)
        if (strcmp(md_fns[i].name, name) == 0) return (md_fn)i;
    return MD_FN_GENERIC;
}

const md_op_info *md_op_by_name(const char *name)
{
    for (int i = 0; i < md_nops; i++)
        if (strcmp(md_ops[i].name, name) == 0) return &md_ops[i];
    return NULL;
}

md_domain md_kind_domain(md_kind kind)
{
    for (int i = 0; i < md_nops; i++)
        if (md_ops[i].kind == kind) return md_ops[i].domain;
    return MD_DOM_ANY;
}
