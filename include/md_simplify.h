/*
 * md_simplify.h -- the simplifying constructors and the canonical form.
 *
 * Every stage after shape inference builds expressions only through these
 * functions, so every node in a derivation is already simplified; the
 * simplifier proper (md_simplify) just rebuilds a tree bottom-up through
 * them.  The canonical form they maintain:
 *
 *  - sums are flat, like terms are collected with exact GMP rational
 *    coefficients (A + A = 2*A), terms are ordered heaviest first, zeros are
 *    dropped; terms that share their last (or first) matrix factor are
 *    factored (A*x + A'*x = (A + A')*x);
 *  - products are flat: one rational coefficient first, then the scalar
 *    factors (any 1x1 expression, such as x'*y, is a scalar and moves to the
 *    front), merged by base (a*a^2 = a^3), then the matrix chain in order;
 *    eye is dropped from chains, X*inv(X) cancels, X*X = X^2;
 *  - a sum used as a factor (of * or .*) is primitive: its coefficients are
 *    coprime integers and the first is positive; the content moves out
 *    (2*A - 2*B as a factor becomes 2*(A - B));
 *  - Hadamard products are flat and sorted; scalars and matrix(1) move out;
 *    equal bases merge into powers (A .* A = A.^2);
 *  - transposes sit only on leaves (X', dX', diag(A)'): (A*B)' = B'*A',
 *    A'' = A, S' = S for symmetric S, eye' = eye;
 *  - the neutral elements 0, 1, eye and matrix(1) disappear where neutral;
 *  - a difference standing alone has no leading minus: -(a - b) is b - a
 *    (as a factor it stays primitive, above);
 *  - a sum whose terms are Hadamard products with a sum factor, or
 *    products with a scalar sum, is expanded and collected again when that
 *    is at most 3/4 of its size ((1 - y).*s - (1 - s).*y = s - y);
 *  - the functions people write out are found: exp(z)/sum(exp(z)) is
 *    softmax(z), log(sum(exp(z))) logsumexp(z), log(softmax(z))
 *    z - logsumexp(z), 1./(1 + exp(-z)) sigmoid(z), log(1 + exp(z))
 *    softplus(z), exp(z).*sigmoid(-z) sigmoid(z), sum(softmax(z)) 1.
 *
 * Shapes are the caller's responsibility: arguments must fit (shape.c
 * checks the user's program; the derivation only builds well-shaped terms).
 */
#ifndef MD_SIMPLIFY_H
#define MD_SIMPLIFY_H

#include "md_expr.h"

md_expr *md_add(md_ctx *ctx, int n, md_expr *const *terms);
md_expr *md_add2(md_ctx *ctx, md_expr *a, md_expr *b);
md_expr *md_sub(md_ctx *ctx, md_expr *a, md_expr *b);
md_expr *md_neg(md_ctx *ctx, md_expr *a);
md_expr *md_scale(md_ctx *ctx, const mpq_t c, md_expr *a);     /* c*a */
md_expr *md_scale_si(md_ctx *ctx, long num, unsigned long den, md_expr *a);

md_expr *md_mul(md_ctx *ctx, int n, md_expr *const *factors);  /* product / scaling */
md_expr *md_mul2(md_ctx *ctx, md_expr *a, md_expr *b);
md_expr *md_mul3(md_ctx *ctx, md_expr *a, md_expr *b, md_expr *c);
md_expr *md_had(md_ctx *ctx, int n, md_expr *const *args);     /* .* */
md_expr *md_had2(md_ctx *ctx, md_expr *a, md_expr *b);

md_expr *md_pow(md_ctx *ctx, md_expr *base, md_expr *exponent); /* .^ (and scalar ^) */
md_expr *md_pow_si(md_ctx *ctx, md_expr *base, long num, unsigned long den);
md_expr *md_mpow(md_ctx *ctx, md_expr *base, int k);           /* square matrix ^ k */

/* The largest |k| of a matrix power X^k, in the language and in the
   canonical form: (X^9)^8 and X^40*X^40 stay as they are written rather
   than becoming powers no one could type (or differentiate in 72 terms). */
enum { MD_MPOW_MAX = 64 };

/* An integer power of a number is folded only while the result has at most
   this many bits (numerator and denominator): the language's numbers have
   up to 10 000 digits, and folding (1e-9999^50)^50 would take minutes. */
enum { MD_NUM_BITS_MAX = 1 << 17 };
md_expr *md_inv(md_ctx *ctx, md_expr *a);
md_expr *md_trans(md_ctx *ctx, md_expr *a);

md_expr *md_func(md_ctx *ctx, md_fn fn, md_expr *a);
md_expr *md_generic(md_ctx *ctx, int func, int order, md_expr *a);
md_expr *md_unary(md_ctx *ctx, md_kind kind, md_expr *a);  /* SUM, NORM1, NORM2, TR,
                                                             DET, LOGDET, DIAGM, DIAGV */

/* vec(a): columns stacked (a column vector is its own vec, a row vector's
   is its transpose); kron(a, b), the Kronecker product; commutation(m, n),
   K with K*vec(A) = vec(A') for A m x n (eye when m or n is 1).  The
   Kronecker algebra the constructors apply: kron(A,B)*kron(C,D) =
   kron(A*C, B*D), kron(A,B)' = kron(A',B'), kron(A,B)^k = kron(A^k,B^k),
   kron(eye,eye) = eye, scalars out, K_mn' = inv(K_mn) = K_nm,
   K_mn*K_nm = eye, diag(vec(A))*vec(B) = vec(A.*B). */
md_expr *md_vec_of(md_ctx *ctx, md_expr *a);
md_expr *md_kron(md_ctx *ctx, md_expr *a, md_expr *b);
md_expr *md_comm(md_ctx *ctx, int m, int n);
/* The m x n matrix M with vec(M) = v (v of length mn): M itself when v
   is vec(M), else (vec(eye(n))' kron eye(m))*kron(eye(n), v), the
   reshape written in the language. */
md_expr *md_unvec(md_ctx *ctx, md_expr *v, int m, int n);

/* The Frobenius product a:b = sum(a .* b), written the way a person would:
   a'*b for vectors, a*b for scalars, sum(b) for matrix(1):b, tr(b) for eye:b. */
md_expr *md_frob(md_ctx *ctx, md_expr *a, md_expr *b);

/* A node of e's kind (and payload) with arguments a, through the
   constructors above. */
md_expr *md_rebuild(md_ctx *ctx, md_expr *e, md_expr *const *a);

/* Rebuilds e bottom-up through the constructors above (memoised). */
md_expr *md_simplify(md_ctx *ctx, md_expr *e);

#endif
