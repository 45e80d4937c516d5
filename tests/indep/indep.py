#!/usr/bin/python3
"""Independent differential tester for matdiff.

Generates random well-typed programs over the whole matdiff language, runs
`matdiff --wrt ... PROGRAM` and `matdiff -s PROGRAM`, reads the printed text back with an
independent parser/evaluator (lang.py, written from docs/language.md, not from src/), and
compares: gradients against central finite differences (Richardson-extrapolated) of the
input program as *this* evaluator understands it, and the simplified function against the
input's value.

Kinds of test (--kinds, default all, mixed per program; shares in KIND_SHARE):
  grad   scalar functions: gradients and -s (exactly the programs of the first version)
  jac    vector and matrix functions, also with vec, kron, commutation, eye(n*p) and
         product dimensions: the printed d vec(F)/d vec(X)' (F's shape for a scalar X, the
         gradient for a scalar F, vec of a row vector its transpose) column by column
         against central differences of vec(F), along the symmetric basis for a symmetric
         X (whose printed J must be J N, N = (I + K)/2); sometimes -s too
  hess   --order 2 by one or two variables: every block H_X_Y = d2f/d vec(X) d vec(Y)' as
         u'Hv against mixed second differences of f (symmetric u, v for symmetric
         variables, whose blocks must be projected: H = N H N); H_X_Y = H_Y_X'
  vgrad  gradients of scalar functions that use the new built-ins
Derivatives through vec() and kron() are expected to exist (the page says so);
--veckron-errors accepts a clean exit-1 error for them instead (what an earlier page said).

Usage:
  tests/indep/indep.py [--count N] [--seed S] [--matdiff PATH] [--depth D] [--time SEC]
                       [--log FILE] [--no-shrink] [-v] [--kinds grad,jac,hess,vgrad]
                       [--veckron-errors]
  tests/indep/indep.py --program 'TEXT' [--wrt x,A] [--order 2]   # check one program
Each failure is printed with its (shrunk) program, the exact matdiff command line and what
matdiff printed.  A gradient, Jacobian, Hessian or simplified-value disagreement counts only
when it shows at 2 of 3 random points (finite differences that settle; ill-conditioned
points, and printed values that move with a 1e-12 change of the data, give no verdict).
Failure kinds: gradient, jacobian, hessian, simplify, jac-shape / hess-shape (not the
documented layout), jac-sym / hess-sym (a symmetric variable's derivative not projected),
hess-transpose, readback-* / simplify-* (printed text does not read back as the doc says),
rejected (matdiff rejects a program this reader accepts), unclean-error, exitN, timeout,
gradname, hessname, default-wrt, header, absent-var.  Statuses: ok, flaky (a disagreement
at one point only), nodomain, toolarge (a printed intermediate over 1e6 entries, not
evaluated), prefixed jac: / hess: / vgrad: for those kinds.
Exit status: 0 no disagreement, 1 disagreement(s), 2 usage (no matdiff).
Needs Python 3 and numpy only (Debian: python3-numpy).
"""

import argparse
import os
import random
import re
import shlex
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lang  # noqa: E402
from lang import Node, LangError, EvalError, TooLarge  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_MATDIFF = os.path.normpath(os.path.join(HERE, '..', '..', 'matdiff'))

# ================================================================ printer

LEVEL = {'+': 1, '-': 1, '*': 2, '/': 2, '.*': 3, './': 3, 'neg': 4, 'upos': 4,
         '^': 5, '.^': 5, 'T': 6}


def numtext(v, rng):
    v = Fraction(v)
    if v.denominator == 1:
        i = v.numerator
        return rng.choice([str(i), str(i), str(i) + '.', str(i) + '.0', '%de0' % i,
                           '%d0e-1' % i, '%dE+0' % i])
    f = float(v)
    s = repr(f)                       # e.g. 0.5, 1.5, 0.25, 0.1
    cands = [s, s]
    if s.startswith('0.'):
        cands.append(s[1:])            # .5
    mant = s.replace('.', '').lstrip('0')
    dec = len(s.split('.')[1])
    cands.append('%se-%d' % (mant, dec) if s.startswith('0.') else s + '0')
    cands.append(s + 'E+0')
    return rng.choice(cands)


class Printer:
    def __init__(self, rng, spaces=0.5, extra_paren=0.06, newline=0.05):
        self.rng = rng
        self.spaces = spaces
        self.extra = extra_paren
        self.newline = newline

    def pr(self, nd, depth=0):
        s, lvl = self._pr(nd, depth)
        if lvl < 7 and self.rng.random() < self.extra:
            s, lvl = '(' + self.inparen(s) + ')', 7
        return s, lvl

    def inparen(self, s):
        # a newline inside parentheses is a blank
        if self.rng.random() < self.newline:
            return '\n ' + s if self.rng.random() < 0.5 else s + '\n'
        return s

    def par(self, s):
        return '(' + self.inparen(s) + ')'

    def join(self, a, op, b):
        sp = ' ' if self.rng.random() < self.spaces else ''
        if not sp and a.endswith('.') and op[0] in '*/^':
            sp = ' '
        if op in ('^', '.^') and self.rng.random() < 0.8:
            sp2 = ''
            if a.endswith('.') and op[0] in '*/^':
                sp2 = ' '
            return a + sp2 + op + b
        return a + sp + op + sp + b

    def _pr(self, nd, depth):
        op = nd.op
        if op == 'num':
            t = nd.text if nd.text else numtext(nd.val, self.rng)
            return t, 7
        if op in ('var', 'ref'):
            return nd.name, 7
        if op == 'call':
            args = [self.inparen(self.pr(k, depth + 1)[0]) for k in nd.kids]
            args += list(nd.text or [])
            if nd.name == 'eye' and not nd.kids:
                if nd.text:
                    return 'eye(%s)' % nd.text[0], 7
                return 'eye', 7
            sep = ', ' if self.rng.random() < 0.5 else ','
            return '%s%s(%s)' % (nd.name, "'" * nd.nprime, sep.join(args)), 7
        if op == 'T':
            s, l = self.pr(nd.kids[0], depth + 1)
            if l < 6 or s.endswith('.') or nd.kids[0].op == 'num':
                s = self.par(s)
            return s + "'", 6
        if op in ('neg', 'upos'):
            s, l = self.pr(nd.kids[0], depth + 1)
            if l < 4:
                s = self.par(s)
            sign = '-' if op == 'neg' else '+'
            return sign + s, 4
        if op in ('^', '.^'):
            b, lb = self.pr(nd.kids[0], depth + 1)
            if lb < 6:
                b = self.par(b)
            e, le = self.pr(nd.kids[1], depth + 1)
            if le < 4:
                e = self.par(e)
            return self.join(b, op, e), 5
        L = LEVEL[op]
        a, la = self.pr(nd.kids[0], depth + 1)
        if la < L:
            a = self.par(a)
        b, lb = self.pr(nd.kids[1], depth + 1)
        if lb <= L:
            b = self.par(b)
        return self.join(a, op, b), L


# ================================================================ generator

SCALAR_DEF = ['a', 'b', 'c', 'd', 'g', 'alpha', 'beta', 'lambda', 'mu', 'sigma', 'e', 'pi',
              '_s', 'theta', 'xi', 'dx', 'dA', 'c2', 'eta2', 'gamma', 'epsilon', 'omega',
              'delta', 'varepsilon', 'zeta', 'eta', 'vartheta', 'iota', 'kappa', 'nu',
              'omicron', 'rho', 'tau', 'upsilon', 'phi', 'varphi', 'chi', 'psi', '_X', 'dy',
              'du', 'dX', 'dT']
SCALAR_DECL = ['t', 's1', 'Kc', 'omega_', 'y2']
VECTOR_DEF = ['x', 'y', 'z', 'u', 'v', 'w', 'h', 'lambda2', 'q', 'xi2', 'mu_']
VECTOR_DECL = ['beta', 'b1', 'Wv', 'alpha_v', 'rho', 'tau', 'dz']
MATRIX_DEF = ['A', 'B', 'C', 'X', 'Y', 'W', 'Delta', 'T', 'M', 'T1', 'K', 'U', 'V', 'T2',
              'Sigma2', 'Phi']
MATRIX_DECL = ['gamma', 'm1', 'a3', 'kappa', 'omega', 'dW']
SYM_NAMES = ['S', 'P', 'Sigma', 'Q', 's2', 'R']
FUNC_NAMES = ['f', 'g', 'h', 'phi', 'F', 'T3', 'sigma']
ASSIGN_NAMES = ['r', 'R', 'tmp', 'Z', 's', 'L2', 'u9', 'kk', 'e2', 'E', 'res', 'G', 'o1']
DIM_NAMES = ['n', 'm', 'p', 'k', 'q', 'd', 'r', 'j']

POSNUMS = [Fraction(1, 2), Fraction(2), Fraction(3, 2), Fraction(1), Fraction(1, 4),
           Fraction(3), Fraction(1, 10)]
SMALLNUMS = POSNUMS + [Fraction(0), Fraction(5, 2)]


class GVar:
    def __init__(self, name, kind, dims):
        self.name = name
        self.kind = kind      # scalar vector matrix symmetric
        self.dims = dims      # intended dims (tuple of names)
        self.pos = False
        self.declare = None   # None: not declared; 'plain' or 'dims'

    def gshape(self):
        if self.kind == 'scalar':
            return ('1', '1')
        if self.kind == 'vector':
            return (self.dims[0], '1')
        return tuple(self.dims)


def N(op, kids=(), **kw):
    return Node(op, kids, **kw)


def num(v):
    return N('num', val=Fraction(v))


def inum(k):
    """an integer literal printed plainly (matrix power exponents: matdiff rejects X^2.0)"""
    nd = num(k)
    nd.text = str(k)
    return nd


def call(name, *kids, nprime=0):
    return N('call', kids, name=name, nprime=nprime)


def const(name, val, dims=None):
    nd = N('call', [val] if val is not None else [], name=name)
    nd.text = list(dims) if dims else []
    return nd


def is_sc(sh):
    return sh[0] == '1' and sh[1] == '1'


def dmul(*ds):
    """the product of intended dimensions ('n', 'n*p', '1'), canonical: sorted factors"""
    fs = sorted(f for d in ds for f in d.split('*') if f != '1')
    return '*'.join(fs) if fs else '1'


def dsplits(d):
    """ways to write d as a product a*b (ordered; a or b may be 1)"""
    fs = [f for f in d.split('*') if f != '1']
    out = set()
    for mask in range(1 << len(fs)):
        a = [f for i, f in enumerate(fs) if mask >> i & 1]
        b = [f for i, f in enumerate(fs) if not mask >> i & 1]
        out.add((dmul(*a), dmul(*b)))
    return sorted(out)


class Gen:
    def __init__(self, rng, maxdepth=None, newb=False):
        self.rng = rng
        nd = rng.choice([1, 2, 2, 3, 3])
        self.dims = rng.sample(DIM_NAMES, nd)
        self.vars = {}
        self.used = set()
        self.funcs = []
        self.assigns = []      # (name, node)
        self.assigned = {}     # (gshape, need) -> [ref nodes]
        self.depth = maxdepth if maxdepth is not None else rng.choice([2, 3, 4, 4, 5])
        self.p_assign = rng.choice([0.0, 0.05, 0.12])
        # newb: the Magnus-Neudecker built-ins (vec, kron, commutation) and product
        # dimensions (eye(n*p), vector(c, n*p), ...); off for the gradient kind, whose
        # programs stay what they were for a seed
        self.newb = newb
        self.pdims = []
        self.pprob = 0.0
        self.wnew = 0.0
        if newb:
            allp = sorted(set(dmul(a, b) for a in self.dims for b in self.dims))
            self.pdims = rng.sample(allp, min(len(allp), rng.choice([1, 2])))
            self.pprob = rng.choice([0.05, 0.12, 0.2])
            self.wnew = rng.choice([1.5, 2.5, 4.0])

    # ---------------------------------------------------------- names
    def fresh(self, pool):
        cands = [n for n in pool if n not in self.used]
        if not cands:
            base = pool[0]
            i = 2
            while '%s%d' % (base, i) in self.used:
                i += 1
            name = '%s%d' % (base, i)
        else:
            name = self.rng.choice(cands)
        self.used.add(name)
        return name

    def newvar(self, sh, pd=False):
        r, c = sh
        rng = self.rng
        if is_sc(sh):
            if rng.random() < 0.8:
                name, kind = self.fresh(SCALAR_DEF), 'scalar'
            else:
                name, kind = self.fresh(SCALAR_DECL), 'scalar'
            v = GVar(name, kind, ())
        elif c == '1':
            name = self.fresh(VECTOR_DEF if rng.random() < 0.8 else VECTOR_DECL)
            v = GVar(name, 'vector', (r,))
        elif r == c and (pd or rng.random() < 0.3):
            v = GVar(self.fresh(SYM_NAMES), 'symmetric', (r, r))
        else:
            name = self.fresh(MATRIX_DEF if rng.random() < 0.8 else MATRIX_DECL)
            v = GVar(name, 'matrix', (r, c))
        self.vars[v.name] = v
        return v

    def var(self, sh, pos=False, pd=False):
        r, c = sh
        if r == '1' and c != '1':
            nd = N('T', [self.var((c, '1'), pos)])
            nd.gshape = sh
            return nd
        cands = [v for v in self.vars.values() if v.gshape() == sh and
                 (not pd or v.kind == 'symmetric')]
        if cands and self.rng.random() < 0.6:
            v = self.rng.choice(cands)
        else:
            v = self.newvar(sh, pd)
        if pos:
            v.pos = True
        if pd:
            v.pos = v.pos or self.rng.random() < 0.3
        return N('var', name=v.name)

    def func(self):
        if self.funcs and self.rng.random() < 0.6:
            return self.rng.choice(self.funcs)
        if len(self.funcs) < 3:
            f = self.fresh(FUNC_NAMES)
            self.funcs.append(f)
            return f
        return self.rng.choice(self.funcs)

    # ---------------------------------------------------------- helpers
    def rdim(self):
        if self.newb and self.rng.random() < self.pprob:
            return self.rng.choice(self.pdims)
        return self.rng.choice(self.dims)

    def rshape(self):
        r = self.rng.random()
        if r < 0.2:
            return ('1', '1')
        if r < 0.5:
            return (self.rdim(), '1')
        if r < 0.6:
            return ('1', self.rdim())
        return (self.rdim(), self.rdim())

    def posnum(self):
        return num(self.rng.choice(POSNUMS))

    def finish(self, nd, sh, need=None):
        nd.gshape = sh
        nd.need = need
        if nd.op not in ('var', 'num', 'ref') and self.rng.random() < self.p_assign:
            name = self.fresh(ASSIGN_NAMES)
            self.assigns.append((name, nd))
            ref = N('ref', name=name, target=nd)
            ref.gshape = sh
            ref.need = need
            self.assigned.setdefault((sh, need), []).append(ref)
            return ref
        return nd

    def reuse(self, sh, need):
        lst = self.assigned.get((sh, need))
        if lst and self.rng.random() < 0.25:
            r = self.rng.choice(lst)
            nd = N('ref', name=r.name, target=r.target)
            nd.gshape, nd.need = sh, need
            return nd
        return None

    def scalar_const_value(self, d):
        if self.rng.random() < 0.6:
            return num(self.rng.choice(SMALLNUMS))
        return self.gen(('1', '1'), min(d, 1))

    def explicit_const(self, sh, val):
        r, c = sh
        if is_sc(sh):
            return val
        if c == '1':
            return const('vector', val, [r])
        if r == '1':
            return N('T', [const('vector', val, [c])])
        return const('matrix', val, [r, c])

    def inferred_const(self, sh, val):
        r, c = sh
        if c == '1':
            return const('vector', val)
        if r == '1':
            return N('T', [const('vector', val)])
        return const('matrix', val)

    # ---------------------------------------------------------- general
    def leaf(self, sh):
        if is_sc(sh) and self.rng.random() < 0.3:
            return num(self.rng.choice(SMALLNUMS))
        if not is_sc(sh) and self.rng.random() < 0.05:
            return self.explicit_const(sh, self.scalar_const_value(0))
        return self.var(sh)

    def gen(self, sh, d):
        rng = self.rng
        if d <= 0 or rng.random() < 0.12:
            nd = self.leaf(sh)
            nd.gshape = sh
            return nd
        ref = self.reuse(sh, None)
        if ref is not None:
            return ref
        r, c = sh
        sc = is_sc(sh)
        opts = [('add', 3), ('had', 2), ('scale', 2), ('neg', 1), ('ew', 3), ('prod', 3),
                ('T', 1), ('epow', 1.5), ('const', 0.7), ('generic', 1)]
        if r == c:
            opts += [('inv', 1), ('mpow', 1.2), ('diagv', 0.6), ('eye', 0.4)]
        if c == '1' and r != '1':
            opts += [('diagm', 0.8)]
        if c == '1' and r != '1':
            opts += [('layer', 1)]
        if sc:
            opts += [('reduce', 6), ('spow', 2), ('num', 0.5), ('sspecial', 1),
                     ('ones', 0.7), ('det', 1), ('logdet', 1), ('quad', 1.5)]
        if self.newb:
            w = self.wnew
            if c == '1' and r != '1':
                opts += [('vec', w * (1.5 if '*' in r else 0.3))]
            if not sc:
                opts += [('kron', w)]
            if '*' in r:
                opts += [('comm', w * 0.8)]
            if sc:
                opts += [('vecdot', w * 1.5)]
        kind = weighted(rng, opts)
        nd = getattr(self, 'p_' + kind)(sh, d - 1)
        return self.finish(nd, sh)

    def p_add(self, sh, d):
        op = self.rng.choice(['+', '-'])
        if not is_sc(sh) and self.rng.random() < 0.25:
            s = self.gen(('1', '1'), d)
            e = self.gen(sh, d)
            return N(op, [s, e] if self.rng.random() < 0.5 else [e, s])
        return N(op, [self.gen(sh, d), self.gen(sh, d)])

    def p_had(self, sh, d):
        if self.rng.random() < 0.7:
            if not is_sc(sh) and self.rng.random() < 0.25:
                s = self.gen(('1', '1'), d)
                e = self.gen(sh, d)
                return N('.*', [s, e] if self.rng.random() < 0.5 else [e, s])
            return N('.*', [self.gen(sh, d), self.gen(sh, d)])
        if not is_sc(sh) and self.rng.random() < 0.3:
            if self.rng.random() < 0.5:
                return N('./', [self.gen(('1', '1'), d), self.gpos(sh, d)])
            return N('./', [self.gen(sh, d), self.gpos(('1', '1'), d)])
        return N('./', [self.gen(sh, d), self.gpos(sh, d)])

    def p_scale(self, sh, d):
        rng = self.rng
        if rng.random() < 0.3:
            return N('/', [self.gen(sh, d), self.gpos(('1', '1'), d)])
        s = self.gen(('1', '1'), d) if rng.random() < 0.6 else num(rng.choice(SMALLNUMS))
        e = self.gen(sh, d)
        return N('*', [s, e] if rng.random() < 0.6 else [e, s])

    def p_layer(self, sh, d):
        rng = self.rng
        r = sh[0]
        k = rng.choice(self.dims)
        z = N('*', [self.var((r, k)), self.gen((k, '1'), d)])
        if rng.random() < 0.6:
            z = N('+', [z, self.var((r, '1'))])
        act = rng.choice(['tanh', 'sigmoid', 'relu', 'softplus', 'generic', 'sin'])
        if act == 'generic':
            return call(self.func(), z, nprime=rng.choice([0, 0, 1]))
        return call(act, z)

    def p_vec(self, sh, d):
        r = sh[0]
        a, b = self.rng.choice(dsplits(r))
        return call('vec', self.gen((a, b), d))

    def p_kron(self, sh, d):
        r, c = sh
        r1, r2 = self.rng.choice(dsplits(r))
        c1, c2 = self.rng.choice(dsplits(c))
        return call('kron', self.gen((r1, c1), d), self.gen((r2, c2), d))

    def comm(self, r):
        a, b = self.rng.choice([x for x in dsplits(r) if x[0] != '1' and x[1] != '1'])
        nd = const('commutation', None, [a, b])
        nd.gshape = (r, r)
        return nd

    def p_comm(self, sh, d):
        r, c = sh
        K = self.comm(r)
        if r == c and self.rng.random() < 0.3:
            return K
        return N('*', [K, self.gen((r, c), d)])

    def p_vecdot(self, sh, d):
        # vec(A)'*vec(B), vec(A)'*K*vec(B), x'*kron(A, B)*y: scalars through the new built-ins
        rng = self.rng
        k, j = self.rdim(), self.rdim()
        P = dmul(k, j)
        if rng.random() < 0.5:
            a = call('vec', self.gen((k, j), d))
            b = call('vec', self.gen((k, j), d))
            mid = [self.comm(P)] if '*' in P and rng.random() < 0.3 else []
            if mid and rng.random() < 0.5:
                b = call('vec', self.gen((j, k), d))
            e = N('T', [a])
            for m in mid:
                e = N('*', [e, m])
            return N('*', [e, b])
        k2, j2 = self.rdim(), self.rdim()
        M = call('kron', self.gen((k, k2), d), self.gen((j, j2), d))
        x = self.gen((P, '1'), d)
        y = self.gen((dmul(k2, j2), '1'), d)
        return N('*', [N('*', [N('T', [x]), M]), y])

    def p_quad(self, sh, d):
        k = self.rdim()
        j = self.rdim() if self.rng.random() < 0.5 else k
        a = self.gen((k, '1'), d)
        b = self.gen((j, '1'), d) if (j != k or self.rng.random() < 0.5) else a
        M = self.gen((k, j), d) if self.rng.random() < 0.7 else self.gpd(k, d) if j == k else self.gen((k, j), d)
        return N('*', [N('*', [N('T', [a]), M]), b])

    def p_neg(self, sh, d):
        if self.rng.random() < 0.15:
            return N('upos', [self.gen(sh, d)])
        return N('neg', [self.gen(sh, d)])

    def p_T(self, sh, d):
        if self.rng.random() < 0.1:
            return N('T', [N('T', [self.gen(sh, d)])])
        return N('T', [self.gen((sh[1], sh[0]), d)])

    def p_ew(self, sh, d):
        rng = self.rng
        f = rng.choice(['sin', 'cos', 'tanh', 'arctan', 'sigmoid', 'softplus', 'abs', 'relu',
                        'sign', 'step', 'exp', 'log', 'sqrt', 'log1p', 'arcsin', 'arccos',
                        'tan'])
        if f in ('log', 'sqrt', 'log1p'):
            a = self.gpos(sh, d)
        elif f in ('arcsin', 'arccos', 'tan'):
            a = self.gbnd(sh, d)
        elif f == 'exp':
            a = self.gen(sh, min(d, 1))
        else:
            a = self.gen(sh, d)
        return call(f, a)

    def p_generic(self, sh, d):
        f = self.func()
        k = self.rng.choice([0, 0, 1, 1, 2])
        return call(f, self.gen(sh, d), nprime=k)

    def p_prod(self, sh, d):
        r, c = sh
        k = self.rng.choice(self.dims + ['1'])
        if self.newb and self.rng.random() < self.pprob:
            k = self.rng.choice(self.pdims)
        if self.rng.random() < 0.15 and r != '1' and c == '1':
            # A*vector(1) / inferred constant in a product
            a = self.gen((r, k if k != '1' else self.rdim()), d)
            k2 = k if k != '1' else None
            return N('*', [a, const('vector', self.scalar_const_value(d))]) if k2 else \
                N('*', [a, const('vector', num(1))])
        if self.rng.random() < 0.1 and r == '1' and c == '1':
            k = self.rdim()
            return N('*', [N('T', [const('vector', self.scalar_const_value(d))]), self.gen((k, '1'), d)])
        return N('*', [self.gen((r, k), d), self.gen((k, c), d)])

    def p_epow(self, sh, d):
        rng = self.rng
        x = rng.random()
        if x < 0.35:
            return N('.^', [self.gen(sh, d), num(rng.choice([2, 2, 3, 1, 0]))])
        if x < 0.55:
            return N('.^', [self.gpos(sh, d), rng.choice([num(Fraction(1, 2)), num(Fraction(3, 2)),
                                                         N('neg', [num(1)]), N('neg', [num(Fraction(1, 2))])])])
        if x < 0.7:
            return N('.^', [self.posnum(), self.gen(sh, min(d, 1))])
        if x < 0.85:
            return N('.^', [self.gpos(sh, d), self.gen(('1', '1'), min(d, 1))])
        return N('.^', [self.gpos(sh, d), self.gen(sh, min(d, 1))])

    def p_const(self, sh, d):
        if is_sc(sh):
            return num(self.rng.choice(SMALLNUMS))
        val = self.scalar_const_value(d)
        if self.rng.random() < 0.5:
            return self.explicit_const(sh, val)
        e = self.gen(sh, d)
        cst = self.inferred_const(sh, val)
        op = self.rng.choice(['+', '-', '.*'])
        return N(op, [e, cst] if self.rng.random() < 0.6 else [cst, e])

    def p_eye(self, sh, d):
        r = sh[0]
        if r == '1':
            return num(1)
        x = self.rng.random()
        if x < 0.4:
            return const('eye', None, [r])
        e = self.gen(sh, d)
        op = self.rng.choice(['+', '-', '*'])
        eye = const('eye', None)
        return N(op, [e, eye] if self.rng.random() < 0.6 else [eye, e])

    def p_inv(self, sh, d):
        return call('inv', self.ginv(sh[0], d))

    def p_mpow(self, sh, d):
        rng = self.rng
        k = rng.choice([2, 2, 3, 0, 1, -1, -2])
        if sh[0] == '1':
            base = self.gpos(sh, d) if k < 0 else self.gen(sh, d)
        else:
            base = self.ginv(sh[0], d) if k < 0 else self.gen(sh, d)
        e = inum(k) if k >= 0 else N('neg', [inum(-k)])
        return N('^', [base, e])

    def p_diagv(self, sh, d):
        return call('diag', self.gen((sh[0], '1'), d))

    def p_diagm(self, sh, d):
        return call('diag', self.gen((sh[0], sh[0]), d))

    def p_reduce(self, sh, d):
        rng = self.rng
        f = rng.choice(['sum', 'sum', 'norm1', 'norm2', 'norm2sq', 'tr', 'tr'])
        if f == 'tr':
            k = rng.choice(self.dims + ['1'])
            return call('tr', self.gen((k, k), d))
        a = self.gen(self.rshape(), d)
        if f == 'norm2sq':
            return N('^', [call('norm2', a), num(2)])
        return call(f, a)

    def p_det(self, sh, d):
        k = self.rng.choice(self.dims)
        return call('det', self.gen((k, k), min(d, 1)))

    def p_logdet(self, sh, d):
        k = self.rng.choice(self.dims)
        if self.rng.random() < 0.2:
            return call('log', call('det', self.gpd(k, d)))
        return call('logdet', self.gpd(k, d))

    def p_spow(self, sh, d):
        rng = self.rng
        x = rng.random()
        S = ('1', '1')
        if x < 0.4:
            return N('^', [self.gen(S, d), num(rng.choice([2, 3, 2]))])
        if x < 0.6:
            return N('^', [self.gpos(S, d), self.gen(S, min(d, 1))])
        if x < 0.8:
            return N('^', [self.gpos(S, d), rng.choice([num(Fraction(1, 2)), N('neg', [num(1)]),
                                                       N('neg', [num(2)]), num(Fraction(3, 2))])])
        # a^b^c / a^-b^c
        e = N('^', [self.gen(S, 0), self.gen(S, 0)]) if rng.random() < 0.5 else \
            N('neg', [N('^', [self.gen(S, 0), num(2)])])
        return N('^', [self.gpos(S, min(d, 1)), e])

    def p_num(self, sh, d):
        return num(self.rng.choice(SMALLNUMS))

    def p_sspecial(self, sh, d):
        rng = self.rng
        f = rng.choice(['det', 'tr', 'inv', 'logdet', 'diag', 'norm1', 'norm2'])
        S = ('1', '1')
        if f in ('inv', 'logdet'):
            return call(f, self.gpos(S, d))
        return call(f, self.gen(S, d))

    def p_ones(self, sh, d):
        k = self.rdim()
        v = self.gen((k, '1'), d)
        cst = const('vector', num(1) if self.rng.random() < 0.7 else self.scalar_const_value(d))
        if self.rng.random() < 0.5:
            return N('*', [N('T', [cst]), v])
        return N('*', [N('T', [v]), cst])

    # ---------------------------------------------------------- domains
    def gpos(self, sh, d):
        """entries > 0 (and not tiny)"""
        rng = self.rng
        ref = self.reuse(sh, 'pos')
        if ref is not None:
            return ref
        sc = is_sc(sh)
        if d <= 0 or rng.random() < 0.2:
            if sc and rng.random() < 0.5:
                return self.posnum()
            if not sc and rng.random() < 0.1:
                return self.explicit_const(sh, self.posnum())
            nd = self.var(sh, pos=True)
            nd.gshape = sh
            return nd
        opts = ['exp', 'sigmoid', 'softplus', 'sq', 'abs', 'mul', 'div', 'add', 'scale', 'sqrt',
                'pow']
        if sc:
            opts += ['sum', 'det', 'tr', 'norm', 'norm', 'spow']
        k = rng.choice(opts)
        if k in ('exp', 'sigmoid', 'softplus'):
            nd = call(k, self.gen(sh, min(d - 1, 1) if k == 'exp' else d - 1))
        elif k == 'sq':
            nd = N('+', [self.posnum(), N('.^', [self.gen(sh, d - 1), num(2)])])
            if rng.random() < 0.5:
                nd.kids.reverse()
        elif k == 'abs':
            nd = N('+', [call('abs', self.gen(sh, d - 1)), self.posnum()])
        elif k == 'mul':
            nd = N('.*', [self.gpos(sh, d - 1), self.gpos(sh, d - 1)])
        elif k == 'div':
            nd = N('./', [self.gpos(sh, d - 1), self.gpos(sh, d - 1)])
        elif k == 'add':
            nd = N('+', [self.gpos(sh, d - 1), self.gpos(sh, d - 1)])
        elif k == 'scale':
            nd = N('*', [self.posnum(), self.gpos(sh, d - 1)])
        elif k == 'sqrt':
            nd = call('sqrt', self.gpos(sh, d - 1))
        elif k == 'pow':
            nd = N('.^', [self.gpos(sh, d - 1), num(rng.choice([2, 3]))])
        elif k == 'sum':
            nd = call('sum', self.gpos(self.rshape(), d - 1))
        elif k == 'det':
            nd = call('det', self.gpd(self.rdim(), d - 1))
        elif k == 'tr':
            nd = call('tr', self.gpd(self.rdim(), d - 1))
        elif k == 'norm':
            nd = N('+', [call('norm2', self.gen(self.rshape(), d - 1)), self.posnum()])
            if rng.random() < 0.4:
                nd.kids[0] = N('^', [nd.kids[0], num(2)])
        else:
            nd = N('^', [self.gpos(sh, d - 1), num(rng.choice([2, 3]))])
        return self.finish(nd, sh, 'pos')

    def gbnd(self, sh, d):
        """entries in (-0.8, 0.8)"""
        rng = self.rng
        k = rng.choice(['tanh', 'sin', 'sig', 'frac'])
        e = self.gen(sh, d)
        if k == 'tanh':
            nd = N('/', [call('tanh', e), num(2)])
        elif k == 'sin':
            nd = N('*', [num(Fraction(1, 2)), call('sin', e)])
        elif k == 'sig':
            nd = N('-', [call('sigmoid', e), num(Fraction(1, 2))])
        else:
            nd = N('./', [e, N('+', [num(2), call('abs', e)])])
        return self.finish(nd, sh, 'bnd')

    def gpd(self, k, d):
        """symmetric positive definite k x k"""
        rng = self.rng
        sh = (k, k)
        if k == '1':
            return self.gpos(sh, d)
        ref = self.reuse(sh, 'pd')
        if ref is not None:
            return ref
        if d <= 0 or rng.random() < 0.25:
            nd = self.var(sh, pd=True)
            nd.gshape = sh
            return nd
        x = rng.choice(['gram', 'gram', 'gram', 'add', 'scale', 'inv', 'diag', 'schur', 'sq',
                        'conj'])
        if x == 'gram':
            j = rng.choice(self.dims + ['1'])
            if rng.random() < 0.5:
                E = self.gen((k, j), d - 1)
                G = N('*', [E, N('T', [E])])
            else:
                E = self.gen((j, k), d - 1)
                G = N('*', [N('T', [E]), E])
            y = rng.random()
            if y < 0.4:
                I = const('eye', None)
            elif y < 0.7:
                I = const('eye', None, [k])
            else:
                I = N('*', [self.posnum(), const('eye', None, [k])])
            nd = N('+', [G, I] if rng.random() < 0.6 else [I, G])
        elif x == 'add':
            nd = N('+', [self.gpd(k, d - 1), self.gpd(k, d - 1)])
        elif x == 'scale':
            nd = N('*', [self.gpos(('1', '1'), d - 1), self.gpd(k, d - 1)])
        elif x == 'inv':
            nd = call('inv', self.gpd(k, d - 1)) if rng.random() < 0.7 else \
                N('^', [self.gpd(k, d - 1), N('neg', [inum(1)])])
        elif x == 'diag':
            nd = call('diag', self.gpos((k, '1'), d - 1))
        elif x == 'schur':
            nd = N('.*', [self.gpd(k, d - 1), self.gpd(k, d - 1)])
        elif x == 'sq':
            nd = N('^', [self.gpd(k, d - 1), inum(2)])
        else:
            j = rng.choice(self.dims)
            E = self.gen((k, j), d - 1)
            nd = N('+', [N('*', [N('*', [E, self.gpd(j, d - 1)]), N('T', [E])]), const('eye', None)])
        return self.finish(nd, sh, 'pd')

    def ginv(self, k, d):
        rng = self.rng
        if k == '1':
            return self.gpos((k, k), d)
        x = rng.random()
        if x < 0.6 or d <= 0:
            return self.gpd(k, d)
        if x < 0.8:
            return N('*', [self.gpd(k, d - 1), self.gpd(k, d - 1)])
        if x < 0.9:
            return N('T', [self.gpd(k, d - 1)])
        return N('^', [self.gpd(k, d - 1), inum(3)])

    # ---------------------------------------------------------- program
    def program(self, final_shape=('1', '1')):
        rng = self.rng
        terms = rng.choice([1, 1, 2, 3, 4])
        f = self.gen(final_shape, self.depth)
        for _ in range(terms - 1):
            f = N(rng.choice(['+', '+', '-']), [f, self.gen(final_shape, self.depth - 1)])
        extras = []
        if rng.random() < 0.15:
            self.p_assign = 0.0
            self.assigned = {}
            extras.append(call('sum', self.gen(self.rshape(), 1)))
        return GProgram(self, f, extras, final_assign=(not extras and rng.random() < 0.1))


def weighted(rng, opts):
    tot = sum(w for _, w in opts)
    x = rng.random() * tot
    for k, w in opts:
        x -= w
        if x <= 0:
            return k
    return opts[-1][0]


def walk(nd, seen=None):
    """All nodes of nd, not entering refs."""
    out = []
    stack = [nd]
    while stack:
        x = stack.pop()
        out.append(x)
        stack.extend(x.kids)
    return out


class GProgram:
    """A generated program: variables, generic functions, assignments, earlier expression
    statements and the function; rendered to text with random layout."""

    def __init__(self, gen, final, extras, final_assign=False):
        self.vars = gen.vars
        self.funcs = gen.funcs
        self.assigns = gen.assigns
        self.final = final
        self.extras = extras
        self.final_assign = final_assign
        self.decl_seed = gen.rng.random()
        self.newb = gen.newb

    def used_refs(self):
        """assignment names reachable from the function and extras, in definition order"""
        names = set()
        stack = [self.final] + self.extras
        while stack:
            x = stack.pop()
            for y in walk(x):
                if y.op == 'ref' and y.name not in names:
                    names.add(y.name)
                    stack.append(y.target)
        return [(n, e) for n, e in self.assigns if n in names]

    def render(self, seed):
        rng = random.Random(seed)
        pr = Printer(rng)
        assigns = self.used_refs()
        roots = [e for _, e in assigns] + self.extras + [self.final]
        used_vars, used_funcs, exdims = [], [], set()
        for r in roots:
            for y in walk(r):
                if y.op == 'var' and y.name not in used_vars:
                    used_vars.append(y.name)
                if y.op == 'call':
                    if y.name in self.funcs and y.name not in used_funcs:
                        used_funcs.append(y.name)
                    if y.name in ('vector', 'matrix', 'eye', 'commutation') and y.text:
                        for t in y.text:
                            exdims.update(t.split('*'))
        drng = random.Random(self.decl_seed)
        decl = {}
        for n in used_vars:
            v = self.vars[n]
            default = lang.default_kind(n)
            must = v.kind != default
            if v.kind == 'symmetric':
                decl[n] = 'dims' if drng.random() < 0.5 else 'plain'
            elif v.kind == 'scalar':
                if must or drng.random() < 0.15:
                    decl[n] = 'plain'
            elif must or drng.random() < 0.4:
                decl[n] = 'dims' if drng.random() < 0.6 else 'plain'
            if self.newb and v.kind in ('vector', 'matrix') and drng.random() < 0.85:
                # named dimensions keep products of inferred ones from being ambiguous
                decl[n] = 'dims'
            if any('*' in x for x in v.dims) and n in decl and drng.random() < 0.5:
                decl[n] = 'plain'      # a product dimension declared (x(n*p)) or inferred
        extra_decls = []
        for dname in sorted(exdims):
            carriers = [n for n in used_vars if dname in self.vars[n].dims
                        and not any('*' in x for x in self.vars[n].dims)]
            if any(decl.get(n) == 'dims' for n in carriers):
                continue
            if carriers:
                decl[carriers[0]] = 'dims'
            else:
                extra_decls.append('vector v_%s(%s)' % (dname, dname))
        # declaration lines
        groups = {}
        order = list(used_vars)
        drng.shuffle(order)
        for n in order:
            if n not in decl:
                continue
            v = self.vars[n]
            item = n
            if decl[n] == 'dims':
                if v.kind == 'vector':
                    item = '%s(%s)' % (n, v.dims[0])
                elif v.kind == 'matrix':
                    item = '%s(%s, %s)' % (n, v.dims[0], v.dims[1])
                elif v.kind == 'symmetric':
                    item = '%s(%s)' % (n, v.dims[0]) if drng.random() < 0.6 else \
                        '%s(%s, %s)' % (n, v.dims[0], v.dims[0])
            groups.setdefault(v.kind, []).append(item)
        lines = []
        for kind, items in groups.items():
            if drng.random() < 0.5:
                lines.append('%s %s' % (kind, ', '.join(items)))
            else:
                lines.extend('%s %s' % (kind, it) for it in items)
        if used_funcs:
            fs = [f for f in self.funcs if f in used_funcs]
            lines.append('function ' + ', '.join(fs))
        lines.extend(extra_decls)
        body = ['%s = %s' % (n, pr.pr(e)[0]) for n, e in assigns]
        for x in self.extras:
            body.insert(rng.randint(0, len(body)), pr.pr(x)[0])
        ftext = pr.pr(self.final)[0]
        if self.final_assign:
            body.append('%s = %s' % ('loss', ftext))
        else:
            body.append(ftext)
        lines += body
        if rng.random() < 0.2:
            lines.insert(rng.randint(0, len(lines)), '# a comment')
        out = ''
        for i, l in enumerate(lines):
            out += l
            if i < len(lines) - 1:
                if l.startswith('#'):
                    out += '\n'
                else:
                    out += rng.choice(['\n', '\n', '; ', ';', ';;\n', '\n\n', '  # note\n'])
        return out, used_vars, used_funcs


# ================================================================ checking

class Failure(Exception):
    def __init__(self, kind, msg, confirmed=True):
        super().__init__(msg)
        self.kind = kind
        self.msg = msg
        self.confirmed = confirmed


def run_matdiff(matdiff, args, text, timeout=30):
    cmd = [matdiff] + args + ['--', text]
    for attempt in range(10):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            return cmd, None, '', 'timeout'
        except OSError:
            # the binary is being rebuilt (make in another shell): wait for it
            if attempt == 9:
                raise
            time.sleep(1)
    return cmd, p.returncode, p.stdout, p.stderr


def positivity_needs(prog):
    """Variables whose data should be positive / positive definite, from where they occur."""
    pos, pd, bnd = set(), set(), set()
    seen = set()

    def visit(nd, need):
        key = (id(nd), need)
        if key in seen:
            return
        seen.add(key)
        op = nd.op
        if op == 'var':
            if need == 'pos':
                pos.add(nd.name)
            elif need == 'pd':
                pd.add(nd.name)
            elif need == 'bnd':
                bnd.add(nd.name)
            return
        if op == 'ref':
            visit(nd.target, need)
            return
        if op in ('T', 'upos'):
            visit(nd.kids[0], need)
            return
        if op in ('+', '.*', '*') and need in ('pos', 'pd'):
            for k in nd.kids:
                visit(k, need if not prog.is_scalar(k.shape) or need == 'pos' else 'pos')
            return
        if op in ('./', '/'):
            visit(nd.kids[0], need if need == 'pos' else None)
            visit(nd.kids[1], 'pos')
            return
        if op in ('^', '.^'):
            e = lang.const_value(nd.kids[1])
            if op == '^' and not prog.is_scalar(nd.kids[0].shape):
                visit(nd.kids[0], 'pd' if (e is not None and e < 0) or need == 'pd' else None)
            else:
                integral = e is not None and e.denominator == 1 and e >= 0
                visit(nd.kids[0], None if integral and need is None else 'pos')
            visit(nd.kids[1], None)
            return
        if op == 'call':
            f = nd.name
            if f in ('log', 'sqrt', 'log1p'):
                visit(nd.kids[0], 'pos')
                return
            if f in ('arcsin', 'arccos'):
                visit(nd.kids[0], 'bnd')
                return
            if f in ('logdet', 'inv'):
                a = nd.kids[0]
                visit(a, 'pos' if prog.is_scalar(a.shape) else 'pd')
                return
            if f == 'det':
                visit(nd.kids[0], None if need is None else 'pd')
                return
            if f == 'diag' and need in ('pos', 'pd'):
                visit(nd.kids[0], 'pos')
                return
            if f == 'vec' and need:
                visit(nd.kids[0], 'pos')
                return
            if f == 'kron' and need:
                # kron(A, B) is positive (definite) when A and B are
                for k in nd.kids:
                    visit(k, 'pos' if need == 'pos' or prog.is_scalar(k.shape) else 'pd')
                return
            if f == 'sqrt' and need:
                visit(nd.kids[0], 'pos')
                return
        for k in nd.kids:
            visit(k, None)

    roots = list(prog.exprs) + [prog.assigns[a] for a in prog.assign_order]
    for r in roots:
        visit(r, None)
    return pos, pd, bnd


class Point:
    """Random data for the variables of an input program."""

    def __init__(self, prog, rng, scale=1.0, extra_pos=(), extra_pd=(), hi=5):
        self.sizes = lang.assign_sizes(prog, rng, hi=hi)
        pos, pd, bnd = positivity_needs(prog)
        pos |= set(extra_pos)
        pd |= set(extra_pd)
        self.values = {}
        big = 3.0 if rng.random() < 0.15 else 1.0
        for name in prog.var_order:
            v = prog.vars[name]
            sh = lang.shape_of(self.sizes, v.shape)
            square = sh[0] == sh[1]
            if v.kind == 'symmetric' and name not in pd and name not in pos and rng.random() < 0.4:
                B = rng_uniform(rng, sh, -1, 1) * scale * big
                val = (B + B.T) / 2
            elif v.kind == 'symmetric' or (name in pd and square and sh[0] > 1):
                B = rng_uniform(rng, (sh[0], sh[0] + 1), 0.2 if name in pos else -1, 1)
                val = B @ B.T / sh[0] + 0.5 * np.eye(sh[0])
            elif name in pos or name in pd:
                val = rng_uniform(rng, sh, 0.5, 1.5)
            elif name in bnd:
                val = rng_uniform(rng, sh, -0.5, 0.5) * scale
            else:
                val = rng_uniform(rng, sh, -1, 1) * scale * big
            self.values[name] = val


def rng_uniform(rng, sh, lo, hi):
    return np.array([[rng.uniform(lo, hi) for _ in range(sh[1])] for _ in range(sh[0])])


def grad_name(X, prog):
    g = 'd' + X
    while g in prog.vars or g in prog.funcs:
        g += '_'
    return g


class Checker:
    def __init__(self, matdiff, tol=1e-5, verbose=False):
        self.matdiff = matdiff
        self.tol = tol
        self.verbose = verbose
        self.hi = 5            # largest size of a dimension at the points drawn
        self.vk_errors = False  # accept an error for derivatives through vec/kron

    # ------------------------------------------------------------ helpers
    def fvalue(self, prog, pt, values=None):
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        return lang.evaluate(prog, prog.function, pt.sizes, values or pt.values, fidx)

    def draw_point(self, prog, rng, need_grad_finite=True):
        for t in range(12):
            pt = Point(prog, rng, scale=0.6 ** t, hi=self.hi)
            try:
                v = self.fvalue(prog, pt)
            except EvalError:
                raise
            if np.all(np.isfinite(v)):
                return pt
        return None

    def directional(self, prog, pt, X, G, D):
        """-> (status, err, fd, gd)"""
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        base = pt.values[X]
        f0 = lang.evaluate(prog, prog.function, pt.sizes, pt.values, fidx)[0, 0]
        gd = float(np.sum(G * D))
        s = max(1.0, float(np.max(np.abs(base))))
        vals = dict(pt.values)

        def F(h):
            vals[X] = base + h * D
            return lang.evaluate(prog, prog.function, pt.sizes, vals, fidx)[0, 0]

        def g(h):
            return (F(h) - F(-h)) / (2 * h)

        floor = 1e-7 * (1 + abs(f0))
        ests = []
        for j in range(1, 9):
            h = s * 10.0 ** (-j)
            with np.errstate(all='ignore'):
                e = (4 * g(h / 2) - g(h)) / 3
            ests.append(e)
        errs = []
        for e in ests:
            if not np.isfinite(e):
                errs.append(np.inf)
                continue
            errs.append(abs(e - gd) / max(abs(e), abs(gd), floor))
        best = int(np.argmin(errs))
        if errs[best] <= self.tol:
            return 'ok', errs[best], ests[best], gd
        settled = False
        for j in range(len(ests) - 1):
            a, b = ests[j], ests[j + 1]
            if np.isfinite(a) and np.isfinite(b) and abs(a - b) <= 1e-7 * max(abs(a), abs(b), floor) \
                    and errs[j] > self.tol:
                settled = True
                best = j
                break
        return ('fail' if settled else 'inconclusive'), errs[best], ests[best], gd

    # ------------------------------------------------------------ gradient test
    def grad_at(self, prog, out, wrt, pt, rng, gnodes):
        """Check all gradients at one point; -> list of (X, status, detail)"""
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        try:
            sz = lang.bind_sizes(out, pt.values, pt.sizes)
        except EvalError as e:
            raise Failure('readback-shape', 'output variables do not take the input shapes: %s' % e)
        res = []
        values = dict(pt.values)
        for X in wrt:
            if X in prog.vars:
                continue
            # not in the program: its printed gradient must be 0, of the default shape
            kind = out.vars[X].kind if X in out.vars else lang.default_kind(X)
            if kind != lang.default_kind(X):
                raise Failure('absent-var', '%s (not in the program) printed as a %s' % (X, kind))
            if X in out.vars:
                sh = []
                for i, dd in enumerate(out.vars[X].shape):
                    try:
                        sh.append(sz.get(dd))
                    except EvalError:
                        sz.set(dd, 3 + i)
                        sh.append(3 + i)
                values[X] = np.zeros(sh)
            else:
                values[X] = np.zeros((1, 1))
        for X in wrt:
            if X not in prog.vars:
                try:
                    G = lang.evaluate(out, gnodes[X], sz, values, fidx)
                except TooLarge:
                    raise
                except EvalError as e:
                    raise Failure('readback-eval', 'cannot evaluate printed gradient of %s: %s' % (X, e))
                if G.shape != values[X].shape or np.any(G != 0):
                    raise Failure('absent-var', 'gradient of %s (not in the program) is not 0 of shape %s'
                                  % (X, values[X].shape))
                continue
            try:
                G = lang.evaluate(out, gnodes[X], sz, values, fidx)
            except TooLarge:
                raise
            except EvalError as e:
                raise Failure('readback-eval', 'cannot evaluate printed gradient of %s: %s' % (X, e))
            xv = pt.values[X]
            if G.shape != xv.shape:
                raise Failure('grad-shape', 'printed gradient of %s has shape %s, variable has %s'
                              % (X, G.shape, xv.shape))
            if not np.all(np.isfinite(G)):
                res.append((X, 'inconclusive', 'gradient not finite'))
                continue
            sym = prog.vars[X].kind == 'symmetric'
            if sym and np.max(np.abs(G - G.T)) > 1e-9 * (1 + np.max(np.abs(G))):
                res.append((X, 'fail-sym', 'printed gradient of symmetric %s is not symmetric '
                            '(max |G - G\'| = %.3g)' % (X, np.max(np.abs(G - G.T)))))
                continue
            worst = ('ok', 0.0, 0, 0)
            for _ in range(3):
                D = rng_uniform(rng, xv.shape, -1, 1)
                if sym:
                    D = (D + D.T) / 2
                st = self.directional(prog, pt, X, G, D)
                if st[0] == 'fail' or (st[0] == 'inconclusive' and worst[0] == 'ok'):
                    worst = st
                if st[0] == 'fail':
                    break
            res.append((X, worst[0], 'rel err %.3g: finite differences %.12g, printed gradient '
                        'gives %.12g' % (worst[1], worst[2], worst[3])))
        return res

    def check_gradient(self, text, wrt, prog, rng, extra_args=()):
        args = list(extra_args)
        if wrt is not None:
            form = rng.random()
            if form < 0.6:
                args = ['--wrt', ','.join(wrt)] + args
            elif form < 0.8:
                args = ['-w', ','.join(wrt)] + args
            else:
                for x in wrt:
                    args += ['-w', x]
        cmd, rc, out, err = run_matdiff(self.matdiff, args, text)
        self.last_cmd, self.last_out = cmd, out
        info = {'cmd': cmd, 'stdout': out, 'stderr': err}
        if rc is None:
            raise Failure('timeout', 'matdiff timed out', True)
        if rc == 1:
            raise Failure('rejected', 'matdiff rejects a program the independent parser accepts: '
                          + err.strip().splitlines()[0] if err.strip() else '', True)
        if rc != 0:
            errline = [l for l in err.splitlines() if 'error' in l]
            raise Failure('exit%d' % rc, 'matdiff exit %d: %s' % (rc, (errline[0] if errline else err.strip())[:300]))
        try:
            outp = lang.Program(out)
        except LangError as e:
            raise Failure('readback-parse', 'printed gradient does not parse: %s' % e)
        if wrt is None:
            wrt = header_vars(out)
            if wrt != prog.var_order:
                raise Failure('default-wrt', 'default variables %s, expected (order of appearance) %s'
                              % (wrt, prog.var_order))
        gnodes = {}
        if len(wrt) == 1:
            if not outp.exprs:
                raise Failure('readback-form', 'single gradient is not a bare expression')
            gnodes[wrt[0]] = outp.exprs[-1]
        else:
            for X in wrt:
                g = grad_name(X, prog)
                if g not in outp.assigns:
                    raise Failure('gradname', 'no line %s = ... for %s' % (g, X))
                gnodes[X] = outp.assigns[g]
        for name in outp.var_order:
            if name not in prog.vars and name not in wrt:
                raise Failure('readback-var', 'printed text has variable %s not in the input' % name)
            if name in prog.vars and outp.vars[name].kind != prog.vars[name].kind:
                raise Failure('readback-kind', 'printed text reads %s as a %s, the input has a %s'
                              % (name, outp.vars[name].kind, prog.vars[name].kind))
        # first point
        fails = {}
        npts = 0
        for attempt in range(3):
            pt = self.draw_point(prog, rng)
            if pt is None:
                if attempt == 0:
                    return 'nodomain', info
                continue
            npts += 1
            try:
                found = self.grad_at(prog, outp, wrt, pt, rng, gnodes)
            except TooLarge:
                return 'toolarge', info
            for X, st, detail in found:
                if st.startswith('fail'):
                    fails.setdefault(X, []).append(detail)
            if attempt == 0 and not fails:
                return 'ok', info
        bad = {X: d for X, d in fails.items() if len(d) >= 2}
        if bad:
            X = sorted(bad)[0]
            raise Failure('gradient', 'd/d%s wrong at %d of %d points: %s' % (X, len(bad[X]), npts, bad[X][0]))
        if fails:
            return 'flaky', info
        return 'ok', info

    # ------------------------------------------------------------ Jacobians and Hessians
    def run_read(self, args, text, wrt, prog, rng, vk, what):
        """Run matdiff with --wrt in one of its spellings; -> (status or None, outp, wrt, info).
        vk: some variable of wrt occurs inside vec() or kron() of the function.  The page
        says derivatives pass through vec and kron; with --veckron-errors (what an earlier
        page said: 'an error says so') exit 1 with a located error message mentioning
        vec/kron is a pass ('veckron-error') instead."""
        args = list(args)
        if wrt is not None:
            form = rng.random()
            if form < 0.6:
                args = ['--wrt', ','.join(wrt)] + args
            elif form < 0.8:
                args = ['-w', ','.join(wrt)] + args
            else:
                for x in wrt:
                    args += ['-w', x]
        cmd, rc, out, err = run_matdiff(self.matdiff, args, text)
        self.last_cmd, self.last_out = cmd, out + ('\n[stderr]\n' + err if err.strip() and rc != 0 else '')
        info = {'cmd': cmd, 'stdout': out, 'stderr': err}
        if rc is None:
            raise Failure('timeout', 'matdiff timed out', True)
        first = (err.strip().splitlines() or [''])[0]
        errline = ([l for l in err.splitlines() if 'error' in l] or [first])[0]
        if rc == 1 and not re.match(r'^<(cmdline|stdin)>(:\d+:\d+)?: error: ', errline):
            # 'Errors in the program are reported like a compiler does' (name:line:column)
            raise Failure('unclean-error', 'exit 1 without a located error message: ' + errline)
        if rc == 1:
            if vk and self.vk_errors:
                if re.match(r'^<cmdline>:\d+:\d+: error: ', errline) and \
                        ('vec' in errline or 'kron' in errline) and not out.strip():
                    return 'veckron-error', None, wrt, info
                raise Failure('veckron-unclean', 'a derivative through vec/kron: exit 1 but not the '
                              'clean located error the page describes: ' + errline)
            raise Failure('rejected', 'matdiff rejects a program the independent parser accepts%s: %s'
                          % (' (a derivative through vec/kron)' if vk else '', errline))
        if rc != 0:
            raise Failure('exit%d' % rc, 'matdiff exit %d: %s' % (rc, errline.strip()[:300]))
        try:
            outp = lang.Program(out)
        except LangError as e:
            raise Failure('readback-parse', 'printed %s does not parse: %s' % (what, e))
        if wrt is None:
            wrt = header_vars(out)
            if wrt != prog.var_order:
                raise Failure('default-wrt', 'default variables %s, expected (order of appearance) %s'
                              % (wrt, prog.var_order))
        for name in outp.var_order:
            if name not in prog.vars and name not in wrt:
                raise Failure('readback-var', 'printed text has variable %s not in the input' % name)
            if name in prog.vars and outp.vars[name].kind != prog.vars[name].kind:
                raise Failure('readback-kind', 'printed text reads %s as a %s, the input has a %s'
                              % (name, outp.vars[name].kind, prog.vars[name].kind))
        return None, outp, wrt, info

    def points(self, prog, rng, at):
        """The 2-of-3 rule: at(pt) -> {key: [failure details]} at each of up to 3 points;
        -> 'ok' / 'flaky' / 'nodomain', or raises the Failure of a key failing at 2."""
        fails = {}
        npts = 0
        kinds = {}
        for attempt in range(3):
            pt = self.draw_point(prog, rng)
            if pt is None:
                if attempt == 0:
                    return 'nodomain'
                continue
            npts += 1
            try:
                found = at(pt)
            except TooLarge:
                return 'toolarge'
            for key, (fk, detail) in found.items():
                fails.setdefault(key, []).append(detail)
                kinds[key] = fk
            if attempt == 0 and not fails:
                return 'ok'
        bad = {k: d for k, d in fails.items() if len(d) >= 2}
        if bad:
            k = sorted(bad)[0]
            raise Failure(kinds[k], '%s wrong at %d of %d points: %s' % (k, len(bad[k]), npts, bad[k][0]))
        return 'flaky' if fails else 'ok'

    def absent_values(self, out, wrt, prog, pt, sz):
        values = dict(pt.values)
        for X in wrt:
            if X in prog.vars:
                continue
            kind = out.vars[X].kind if X in out.vars else lang.default_kind(X)
            if kind != lang.default_kind(X):
                raise Failure('absent-var', '%s (not in the program) printed as a %s' % (X, kind))
            if X in out.vars:
                sh = []
                for i, dd in enumerate(out.vars[X].shape):
                    try:
                        sh.append(sz.get(dd))
                    except EvalError:
                        sz.set(dd, 3 + i)
                        sh.append(3 + i)
                values[X] = np.zeros(sh)
            else:
                values[X] = np.zeros((1, 1))
        return values

    def unstable(self, out, node, sz, values, fidx, val):
        """Is the printed value itself ill-conditioned here (data and literals moved by ~1e-12
        move it by more than 1e-7 of its size; an inverse of a nearly singular matrix)?  A
        disagreement there is not a verdict (as --check does)."""
        prng = random.Random(7)
        pv = {k: v * (1 + 1e-12 * np.array([[prng.uniform(-1, 1) for _ in range(v.shape[1])]
                                            for _ in range(v.shape[0])]))
              for k, v in values.items()}
        try:
            vp = lang.evaluate(out, node, sz, pv, fidx, perturb=prng)
        except EvalError:
            return True
        if not np.all(np.isfinite(vp)):
            return True
        return float(np.max(np.abs(val - vp))) > 1e-7 * (1 + float(np.max(np.abs(val))))

    def vec_fd(self, prog, pt, X, D, expect, fscale):
        """Central differences of vec(F) along D (Richardson), compared with expect (a
        vector); -> (status, err, fd, expect)."""
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        base = pt.values[X]
        vals = dict(pt.values)
        s = max(1.0, float(np.max(np.abs(base))))

        def F(h):
            vals[X] = base + h * D
            return lang.vec(lang.evaluate(prog, prog.function, pt.sizes, vals, fidx))[:, 0]

        cache = {}

        def est(j):
            if j not in cache:
                h = s * 10.0 ** (-j)
                with np.errstate(all='ignore'):
                    g1 = (F(h) - F(-h)) / (2 * h)
                    g2 = (F(h / 2) - F(-h / 2)) / h
                    cache[j] = (4 * g2 - g1) / 3
            return cache[j]

        floor = 1e-7 * (1 + fscale)
        emax = float(np.max(np.abs(expect))) if expect.size else 0.0

        def err(e):
            if not np.all(np.isfinite(e)):
                return np.inf
            return float(np.max(np.abs(e - expect))) / max(float(np.max(np.abs(e))), emax, floor)

        for j in (2, 3, 1, 4, 5, 6, 7, 8):
            if err(est(j)) <= self.tol:
                return 'ok', err(est(j)), est(j), expect
        js = list(range(1, 9))
        errs = [err(est(j)) for j in js]
        best = int(np.argmin(errs))
        for i in range(len(js) - 1):
            a, b = est(js[i]), est(js[i + 1])
            if np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and errs[i] > self.tol and \
                    float(np.max(np.abs(a - b))) <= 1e-7 * max(float(np.max(np.abs(a))),
                                                              float(np.max(np.abs(b))), floor):
                return 'fail', errs[i], est(js[i]), expect
        return 'inconclusive', errs[best], est(js[best]), expect

    def jac_at(self, prog, out, wrt, pt, rng, jnodes):
        """All printed derivatives of a vector/matrix function at one point, column by column
        against central differences; -> {X: (failure kind, detail)}"""
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        try:
            sz = lang.bind_sizes(out, pt.values, pt.sizes)
        except EvalError as e:
            raise Failure('readback-shape', 'output variables do not take the input shapes: %s' % e)
        values = self.absent_values(out, wrt, prog, pt, sz)
        F0 = self.fvalue(prog, pt)
        fscale = float(np.max(np.abs(F0)))
        res = {}
        for X in wrt:
            try:
                J = lang.evaluate(out, jnodes[X], sz, values, fidx)
            except TooLarge:
                raise
            except EvalError as e:
                raise Failure('readback-eval', 'cannot evaluate printed derivative of %s: %s' % (X, e))
            xv = values[X]
            exp = jac_shape(F0.shape, xv.shape)
            if J.shape != exp:
                raise Failure('jac-shape', 'printed derivative of F (%dx%d) by %s (%dx%d) is %dx%d, the '
                              'documented convention makes it %dx%d' % (F0.shape + (X,) + xv.shape + J.shape + exp))
            if X not in prog.vars:
                if np.any(J != 0):
                    raise Failure('absent-var', 'derivative by %s (not in the program) is not 0' % X)
                continue
            if not np.all(np.isfinite(J)) or self.unstable(out, jnodes[X], sz, values, fidx, J):
                continue
            # as a (size F) x (size X) matrix, d vec(F) = Jm d vec(X)
            if F0.shape == (1, 1):
                Jm = lang.vec(J).T
            elif xv.shape == (1, 1):
                Jm = lang.vec(J)
            else:
                Jm = J
            sym = prog.vars[X].kind == 'symmetric'
            n = xv.shape[0]
            if sym:
                K = lang.commutation(n, n)
                d = float(np.max(np.abs(Jm - Jm @ K)))
                if d > 1e-9 * (1 + float(np.max(np.abs(Jm)))):
                    res[X] = ('jac-sym', 'printed derivative by symmetric %s is not J N = (J + J K)/2 '
                              '(max |J - J K| = %.3g)' % (X, d))
                    continue
                dirs = []
                for j in range(n):
                    for i in range(j, n):
                        D = np.zeros((n, n))
                        D[i, j] = D[j, i] = 1.0
                        dirs.append(('(%d,%d)+(%d,%d)' % (i, j, j, i) if i != j else '(%d,%d)' % (i, j), D))
            else:
                dirs = []
                for j in range(xv.size):
                    D = np.zeros(xv.size)
                    D[j] = 1.0
                    dirs.append(('column %d' % j, D.reshape(xv.shape, order='F')))
            if len(dirs) > 30:
                dirs = rng.sample(dirs, 30)
            worst = None
            for label, D in dirs:
                expect = (Jm @ lang.vec(D))[:, 0]
                st = self.vec_fd(prog, pt, X, D, expect, fscale)
                if st[0] == 'fail':
                    e, g = st[2], st[3]
                    k = int(np.argmax(np.abs(e - g)))
                    worst = ('jacobian', 'd vec(F)/d vec(%s)\', %s: rel err %.3g; at row %d finite '
                             'differences give %.12g, the printed derivative %.12g'
                             % (X, label, st[1], k, e[k], g[k]))
                    break
            if worst:
                res[X] = worst
        return res

    def check_jacobian(self, text, wrt, prog, rng, vk=False):
        st, outp, wrt, _ = self.run_read([], text, wrt, prog, rng, vk, 'derivative')
        if st:
            return st
        jnodes = {}
        if len(wrt) == 1:
            if not outp.exprs:
                raise Failure('readback-form', 'single derivative is not a bare expression')
            jnodes[wrt[0]] = outp.exprs[-1]
        else:
            for X in wrt:
                g = grad_name(X, prog)
                if g not in outp.assigns:
                    raise Failure('gradname', 'no line %s = ... for %s' % (g, X))
                jnodes[X] = outp.assigns[g]
        return self.points(prog, rng, lambda pt: self.jac_at(prog, outp, wrt, pt, rng, jnodes))

    def mixed_fd(self, prog, pt, X, Y, u, v, expect, f0):
        """(f(x+hu+hv) - f(x+hu-hv) - f(x-hu+hv) + f(x-hu-hv))/4h^2, Richardson, against
        expect = u'Hv; -> (status, err, fd, expect)"""
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        bx, by = pt.values[X], pt.values[Y]
        vals = dict(pt.values)
        s = max(1.0, float(np.max(np.abs(bx))), float(np.max(np.abs(by))))

        def F(a, b):
            if X == Y:
                vals[X] = bx + a * u + b * v
            else:
                vals[X] = bx + a * u
                vals[Y] = by + b * v
            return lang.evaluate(prog, prog.function, pt.sizes, vals, fidx)[0, 0]

        def g(h):
            return (F(h, h) - F(h, -h) - F(-h, h) + F(-h, -h)) / (4 * h * h)

        cache = {}

        def est(j):
            if j not in cache:
                h = s * 10.0 ** (-j)
                with np.errstate(all='ignore'):
                    cache[j] = (4 * g(h / 2) - g(h)) / 3
            return cache[j]

        floor = 1e-6 * (1 + abs(f0))

        def err(e):
            if not np.isfinite(e):
                return np.inf
            return abs(e - expect) / max(abs(e), abs(expect), floor)

        for j in (2, 1, 3, 4, 5):
            if err(est(j)) <= self.tol:
                return 'ok', err(est(j)), est(j), expect
        js = [1, 2, 3, 4, 5]
        errs = [err(est(j)) for j in js]
        best = int(np.argmin(errs))
        for i in range(len(js) - 1):
            a, b = est(js[i]), est(js[i + 1])
            if np.isfinite(a) and np.isfinite(b) and errs[i] > self.tol and \
                    abs(a - b) <= 1e-6 * max(abs(a), abs(b), floor):
                return 'fail', errs[i], a, expect
        return 'inconclusive', errs[best], est(js[best]), expect

    def hess_at(self, prog, out, wrt, pt, rng, hnodes):
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        try:
            sz = lang.bind_sizes(out, pt.values, pt.sizes)
        except EvalError as e:
            raise Failure('readback-shape', 'output variables do not take the input shapes: %s' % e)
        f0 = float(self.fvalue(prog, pt)[0, 0])
        Hs = {}
        res = {}
        for (X, Y), node in hnodes.items():
            key = 'H_%s_%s' % (X, Y)
            try:
                H = lang.evaluate(out, node, sz, pt.values, fidx)
            except TooLarge:
                raise
            except EvalError as e:
                raise Failure('readback-eval', 'cannot evaluate printed Hessian block %s: %s' % (key, e))
            xv, yv = pt.values[X], pt.values[Y]
            exp = (xv.size, yv.size)
            if H.shape != exp:
                raise Failure('hess-shape', 'printed block %s is %dx%d; d2f/d vec(%s) d vec(%s)\' is %dx%d'
                              % ((key,) + H.shape + (X, Y) + exp))
            if not np.all(np.isfinite(H)) or self.unstable(out, node, sz, pt.values, fidx, H):
                continue
            Hs[X, Y] = H
            symx = prog.vars[X].kind == 'symmetric'
            symy = prog.vars[Y].kind == 'symmetric'
            if symx or symy:
                NX = (np.eye(xv.size) + lang.commutation(*xv.shape)) / 2 if symx else np.eye(xv.size)
                NY = (np.eye(yv.size) + lang.commutation(*yv.shape)) / 2 if symy else np.eye(yv.size)
                d = float(np.max(np.abs(H - NX @ H @ NY)))
                if d > 1e-9 * (1 + float(np.max(np.abs(H)))):
                    res[key] = ('hess-sym', 'block %s of symmetric %s is not projected on both sides '
                                '(max |H - N H N| = %.3g)' % (key, ' and '.join(sorted({X, Y} & {
                                    n for n in (X, Y) if prog.vars[n].kind == 'symmetric'})), d))
                    continue
            for _ in range(3):
                u = rng_uniform(rng, xv.shape, -1, 1)
                v = rng_uniform(rng, yv.shape, -1, 1)
                if symx:
                    u = (u + u.T) / 2
                if symy:
                    v = (v + v.T) / 2
                expect = float((lang.vec(u).T @ H @ lang.vec(v))[0, 0])
                st = self.mixed_fd(prog, pt, X, Y, u, v, expect, f0)
                if st[0] == 'fail':
                    res[key] = ('hessian', "u'*%s*v: rel err %.3g: second differences of f %.12g, "
                                'the printed block gives %.12g' % (key, st[1], st[2], st[3]))
                    break
        for (X, Y), H in Hs.items():
            if (Y, X) in Hs and X != Y and wrt.index(X) < wrt.index(Y):
                H2 = Hs[Y, X]
                d = float(np.max(np.abs(H - H2.T))) if H.shape == H2.T.shape else np.inf
                if d > 1e-9 * (1 + float(np.max(np.abs(H)))):
                    res['H_%s_%s/H_%s_%s' % (X, Y, Y, X)] = (
                        'hess-transpose', 'blocks H_%s_%s and H_%s_%s are not transposes of each other '
                        '(max diff %.3g)' % (X, Y, Y, X, d))
        return res

    def check_hessian(self, text, wrt, prog, rng, vk=False):
        st, outp, wrt, _ = self.run_read(['--order', '2'], text, wrt, prog, rng, vk, 'Hessian')
        if st:
            return st
        if any(X not in prog.vars for X in wrt):
            raise Failure('internal', 'hessian wrt %s: not all in the program' % wrt)
        hnodes = {}
        if len(wrt) == 1:
            if not outp.exprs:
                raise Failure('readback-form', 'single Hessian is not a bare expression')
            hnodes[wrt[0], wrt[0]] = outp.exprs[-1]
        else:
            for X in wrt:
                for Y in wrt:
                    h = hess_name(X, Y, prog)
                    if h not in outp.assigns:
                        raise Failure('hessname', 'no line %s = ... for the block by %s and %s' % (h, X, Y))
                    hnodes[X, Y] = outp.assigns[h]
        return self.points(prog, rng, lambda pt: self.hess_at(prog, outp, wrt, pt, rng, hnodes))

    # ------------------------------------------------------------ simplify test
    def check_simplify(self, text, prog, rng):
        cmd, rc, out, err = run_matdiff(self.matdiff, ['-s'], text)
        self.last_cmd, self.last_out = cmd, out
        if rc is None:
            raise Failure('timeout', 'matdiff -s timed out')
        if rc == 1:
            raise Failure('rejected', 'matdiff -s rejects: ' + (err.strip().splitlines() or [''])[0])
        if rc != 0:
            raise Failure('exit%d' % rc, 'matdiff -s exit %d: %s' % (rc, err.strip()[:300]))
        try:
            outp = lang.Program(out)
        except LangError as e:
            raise Failure('simplify-parse', 'printed simplified function does not parse: %s' % e)
        hmsg = check_header(prog, out)
        if hmsg:
            raise Failure('header', hmsg)
        for name in outp.var_order:
            if name not in prog.vars:
                raise Failure('readback-var', 'simplified text has variable %s not in the input' % name)
            if outp.vars[name].kind != prog.vars[name].kind:
                raise Failure('readback-kind', 'simplified text reads %s as a %s, the input has a %s'
                              % (name, outp.vars[name].kind, prog.vars[name].kind))
        fidx = {f: i for i, f in enumerate(prog.funcs)}
        bad = []
        npts = 0
        for attempt in range(3):
            pt = self.draw_point(prog, rng)
            if pt is None:
                if attempt == 0:
                    return 'nodomain'
                continue
            npts += 1
            a = self.fvalue(prog, pt)
            # conditioning: the same function with every literal and datum moved by ~1e-13
            prng = random.Random(attempt)
            pv = {k: v * (1 + 1e-13 * np.array([[prng.uniform(-1, 1) for _ in range(v.shape[1])]
                                                for _ in range(v.shape[0])]))
                  for k, v in pt.values.items()}
            ap = lang.evaluate(prog, prog.function, pt.sizes, pv, fidx, perturb=prng)
            scale0 = max(1.0, float(np.max(np.abs(a))))
            if not np.all(np.isfinite(ap)) or float(np.max(np.abs(a - ap))) > 1e-10 * scale0:
                continue            # ill-conditioned here: no verdict
            try:
                sz = lang.bind_sizes(outp, pt.values, pt.sizes)
                b = lang.evaluate(outp, outp.function, sz, pt.values, fidx)
            except TooLarge:
                return 'toolarge'
            except EvalError as e:
                raise Failure('simplify-eval', 'cannot evaluate simplified text: %s' % e)
            if a.shape != b.shape:
                raise Failure('simplify-shape', 'simplified value has shape %s, input %s' % (b.shape, a.shape))
            scale = max(1.0, float(np.max(np.abs(a))), float(np.max(np.abs(b))))
            err_ = float(np.max(np.abs(a - b))) / scale if np.all(np.isfinite(b)) else np.inf
            if err_ > 1e-8:
                bad.append('max rel diff %.3g: input %s, simplified %s' % (
                    err_, np.array2string(a.ravel()[:3], precision=10),
                    np.array2string(b.ravel()[:3], precision=10)))
            elif attempt == 0:
                return 'ok'
        if len(bad) >= 2:
            raise Failure('simplify', 'simplified function differs at %d of %d points: %s' % (len(bad), npts, bad[0]))
        return 'flaky' if bad else 'ok'


def header_shapes(out):
    """{variable: [dim names]} from the '(x: n, A: n×m, ...)' part of the first line"""
    line = out.splitlines()[0] if out else ''
    if not line.endswith(')') or '   (' not in line:
        return {}
    body = line.rsplit('   (', 1)[1][:-1]
    res = {}
    for item in body.split(', '):
        if ': ' not in item:
            return {}
        name, sh = item.split(': ', 1)
        sh = sh.replace(' symmetric', '')
        res[name] = sh.split('×')
    return res


def check_header(prog, out):
    """The header's dimension names must partition the variables' dimensions as this
    checker's shape inference does."""
    hs = header_shapes(out)
    slots = []
    for name in prog.var_order:
        v = prog.vars[name]
        if v.kind == 'scalar':
            if name in hs:
                return 'header lists scalar %s as %s' % (name, 'x'.join(hs[name]))
            continue
        if name not in hs:
            return 'header does not list %s' % name
        dims = hs[name]
        mine = [v.shape[0]] if v.kind == 'vector' else list(v.shape)
        if len(dims) != len(mine):
            return 'header gives %s shape %s' % (name, 'x'.join(dims))
        slots += list(zip(dims, mine))
    for i in range(len(slots)):
        for j in range(i + 1, len(slots)):
            # a product dimension (n*p) is the same as p*n
            same_h = sorted(slots[i][0].split('*')) == sorted(slots[j][0].split('*'))
            same_m = lang.dkey(slots[i][1]) == lang.dkey(slots[j][1])
            if same_h != same_m:
                return 'header dims %s/%s: header says %s, independent inference says %s' % (
                    slots[i][0], slots[j][0], 'equal' if same_h else 'different',
                    'equal' if same_m else 'different')
    return None


def jac_shape(fsh, xsh):
    """The documented shape of d vec(F)/d vec(X)': the gradient (X's shape) for a scalar F,
    F's shape for a scalar X, else (size of F) x (size of X)."""
    if fsh == (1, 1):
        return xsh
    if xsh == (1, 1):
        return fsh
    return (fsh[0] * fsh[1], xsh[0] * xsh[1])


def hess_name(X, Y, prog):
    h = 'H_%s_%s' % (X, Y)
    while h in prog.vars or h in prog.funcs or h in prog.assigns:
        h += '_'
    return h


def veckron_vars(prog):
    """Variables of the function that occur inside an argument of vec() or kron()"""
    locked = set()
    seen = set()

    def allvars(nd):
        for y in lang_walk(nd):
            if y.op == 'var':
                locked.add(y.name)

    def visit(nd):
        if id(nd) in seen:
            return
        seen.add(id(nd))
        if nd.op == 'ref':
            visit(nd.target)
            return
        if nd.op == 'call' and nd.name in ('vec', 'kron'):
            for k in nd.kids:
                allvars(k)
        for k in nd.kids:
            visit(k)

    visit(prog.function)
    return locked


def lang_walk(nd):
    """all nodes of a parsed expression, through named expressions"""
    out, stack, seen = [], [nd], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        out.append(x)
        stack.extend(x.kids)
        if x.op == 'ref':
            stack.append(x.target)
    return out


def header_vars(out):
    line = out.splitlines()[0] if out else ''
    if line.startswith('# d/d'):
        return [line[5:].split(' ', 1)[0]]
    if (line.startswith('# gradient of ') or line.startswith('# derivative of ') or
            line.startswith('# Hessian of ')) and ' with respect to ' in line:
        rest = line.rsplit(' with respect to ', 1)[1]
        rest = rest.split('   (')[0]
        return [x.strip() for x in rest.split(',')]
    return []


# ================================================================ driver

DEPTH = None

# The kinds of test and their shares of a run (--kinds picks some; the shares of those
# picked are renormalised).  grad: a scalar function's gradients (and -s); jac: a vector or
# matrix function's d vec(F)/d vec(X)' (and sometimes -s); hess: --order 2 of a scalar
# function by one or two variables; vgrad: gradients of scalar functions that use vec, kron,
# commutation and product dimensions.
KIND_SHARE = {'grad': 0.68, 'jac': 0.15, 'hess': 0.11, 'vgrad': 0.06}


def pick_kind(seed, kinds):
    if len(kinds) == 1:
        return kinds[0]
    x = random.Random('kind %d' % seed).random() * sum(KIND_SHARE[k] for k in kinds)
    for k in kinds:
        x -= KIND_SHARE[k]
        if x <= 0:
            return k
    return kinds[-1]


def make_case(seed, kind='grad'):
    rng = random.Random(seed)
    if kind == 'grad':
        g = Gen(rng, DEPTH)
        simplify_only = rng.random() < 0.15
        shape = ('1', '1')
        if simplify_only:
            shape = g.rshape()
        gp = g.program(shape)
        return gp, simplify_only, rng
    depth = DEPTH if DEPTH is not None else rng.choice([2, 3, 3, 4])
    if kind == 'jac':
        g = Gen(rng, depth, newb=rng.random() < 0.8)
        x = rng.random()
        if g.newb and x < 0.12:
            p = rng.choice(g.pdims)
            shape = (p, '1') if rng.random() < 0.6 else (p, g.rdim())
        elif x < 0.4:
            shape = (g.rdim(), '1')
        elif x < 0.55:
            shape = ('1', g.rdim())
        else:
            shape = (g.rdim(), g.rdim())
        return g.program(shape), False, rng
    g = Gen(rng, depth, newb=kind == 'vgrad' or rng.random() < 0.5)
    if kind == 'vgrad':
        g.wnew *= 2
    return g.program(('1', '1')), False, rng


def choose_wrt(prog, rng):
    names = list(prog.var_order)
    x = rng.random()
    if x < 0.15:
        return None
    if x < 0.4:
        return names
    k = rng.randint(1, len(names))
    sub = rng.sample(names, k)
    if rng.random() < 0.07:
        # a name that does not occur in the program: an error, exit 1 (documented)
        cands = [n for n in ['z9', 'Q9', 'c9', 'ww', 'Zz', 'b0'] if n not in prog.vars
                 and n not in prog.assigns and n not in prog.funcs]
        if cands:
            sub.insert(rng.randint(0, len(sub)), rng.choice(cands))
    return sub


def choose_wrt_new(prog, rng, mode, vk_errors=False):
    """Variables for a Jacobian or Hessian test.  The page says derivatives pass through vec()
    and kron(); a variable inside them is chosen often.  With vk_errors (an earlier page:
    such derivatives are an error) mostly variables outside them, and now and then one inside
    (then a clean error or a right answer passes).  -> (wrt or None for matdiff's default,
    vk: a variable of wrt is inside vec()/kron())"""
    locked = veckron_vars(prog)
    free = [n for n in prog.var_order if n not in locked]
    inside = [n for n in prog.var_order if n in locked]
    most = 2 if mode == 'hess' else 3
    if not vk_errors:
        if rng.random() < 0.12 and len(prog.var_order) <= most:
            return None, bool(inside)
        sub = rng.sample(prog.var_order, min(len(prog.var_order), rng.randint(1, most)))
        if inside and not any(x in locked for x in sub) and rng.random() < 0.4:
            sub[rng.randrange(len(sub))] = rng.choice(inside)
    else:
        if inside and (not free or rng.random() < 0.12):
            sub = rng.sample(free, min(len(free), rng.randint(0, most - 1))) + [rng.choice(inside)]
            rng.shuffle(sub)
            return sub, True
        if not free:
            return [], False
        if not inside and len(prog.var_order) <= most and rng.random() < 0.12:
            return None, False
        sub = rng.sample(free, min(len(free), rng.randint(1, most)))
    if mode == 'jac' and rng.random() < 0.05:
        cands = [n for n in ['z9', 'Q9', 'c9', 'ww', 'Zz', 'b0'] if n not in prog.vars
                 and n not in prog.assigns and n not in prog.funcs]
        if cands:
            sub.insert(rng.randint(0, len(sub)), rng.choice(cands))
    return sub, any(x in locked for x in sub)


def test_case(checker, text, prog, rng, wrt, simplify_only, do_simplify=True, mode=None, vk=False):
    """-> list of Failure (confirmed) and status strings.  mode: 'grad' (default; 'simplify'
    when simplify_only), 'jac' or 'hess'."""
    fails = []
    st = []
    if mode is None:
        mode = 'simplify' if simplify_only else 'grad'
    checker.hi = 5 if mode in ('grad', 'simplify') else 4
    absent = [w for w in (wrt or []) if w not in prog.vars and w not in prog.assigns and w not in prog.funcs]
    if mode in ('grad', 'jac', 'hess', 'vgrad') and absent:
        # the page: --wrt of a name the program does not mention is an error (exit 1)
        args = ['--wrt', ','.join(wrt)] + (['--order', '2'] if mode == 'hess' else [])
        cmd, rc, out, err = run_matdiff(checker.matdiff, args, text)
        checker.last_cmd, checker.last_out = cmd, out
        if rc != 1 or "does not occur in the program" not in err:
            fails.append(Failure('absent-wrt', 'exit %s for --wrt %s (want 1 and "does not occur"):\n%s'
                                 % (rc, absent[0], err)))
        else:
            st.append('absent-wrt')
        return fails, st
    if mode in ('grad', 'jac', 'hess', 'vgrad'):
        try:
            if mode == 'grad':
                s, info = checker.check_gradient(text, wrt, prog, rng)
            elif mode == 'vgrad':
                s, info = checker.check_gradient(text, wrt, prog, rng)
                s = 'vgrad:' + s
            elif mode == 'jac':
                s = 'jac:' + checker.check_jacobian(text, wrt, prog, rng, vk)
            else:
                s = 'hess:' + checker.check_hessian(text, wrt, prog, rng, vk)
            st.append(s)
        except Failure as f:
            f.cmd, f.out = checker.last_cmd, checker.last_out
            fails.append(f)
    if do_simplify:
        try:
            st.append(checker.check_simplify(text, prog, rng))
        except Failure as f:
            f.cmd, f.out = checker.last_cmd, checker.last_out
            fails.append(f)
    return fails, st


def shrink(gp, wrt, simplify_only, checker, kind, seed, budget=300, mode=None):
    """Greedy reduction of a failing generated program (same failure kind)."""
    steps = [0]

    def fails(cand_final, cand_extras):
        if steps[0] >= budget:
            return False
        steps[0] += 1
        old = gp.final, gp.extras
        gp.final, gp.extras = cand_final, cand_extras
        try:
            text, used, _ = gp.render(seed)
            prog = lang.Program(text)
        except (LangError, EvalError):
            gp.final, gp.extras = old
            return False
        w = None if wrt is None else [x for x in wrt if x in prog.vars] or None
        if wrt is not None and w is None:
            gp.final, gp.extras = old
            return False
        if mode in ('jac', 'hess', 'vgrad'):
            if not prog.var_order or prog.is_scalar(prog.function.shape) != (mode != 'jac'):
                gp.final, gp.extras = old
                return False
        vk = w is not None and any(x in veckron_vars(prog) for x in w)
        try:
            fl, _ = test_case(checker, text, prog, random.Random(seed), w, simplify_only,
                              do_simplify=kind.startswith('simplify') or simplify_only, mode=mode, vk=vk)
        except (EvalError, LangError):
            fl = []
        if any(f.kind == kind for f in fl):
            return True
        gp.final, gp.extras = old
        return False

    def replaced(nd, by):
        # nd becomes a copy of by if the failure stays; else it is restored
        saved = (nd.op, nd.kids, nd.val, nd.name, nd.nprime, nd.target, nd.text)
        copy_into(nd, by)
        if fails(gp.final, gp.extras):
            return True
        nd.op, nd.kids, nd.val, nd.name, nd.nprime, nd.target, nd.text = saved
        return False

    if gp.extras:
        fails(gp.final, [])   # drops the earlier statements if the failure stays
    changed = True
    while changed and steps[0] < budget:
        # first inline assignments, then reduce nodes
        changed = any(nd.op == 'ref' and replaced(nd, nd.target) for nd in walk_all(gp))
        if not changed:
            changed = any(replaced(nd, cand) for nd in walk_all(gp) for cand in reductions(nd))
    return gp


def walk_all(gp):
    out = []
    seen = set()
    stack = [gp.final] + list(gp.extras)
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        out.append(x)
        stack.extend(x.kids)
        if x.op == 'ref':
            stack.append(x.target)
    return out


def copy_into(dst, src):
    dst.op, dst.kids, dst.val, dst.name = src.op, list(src.kids), src.val, src.name
    dst.nprime, dst.target, dst.text = src.nprime, src.target, src.text


def reductions(nd):
    """Smaller candidates for a node: children of the same intended shape, then leaves."""
    out = []
    sh = nd.gshape
    for k in nd.kids:
        ks = k.gshape
        if sh is not None and ks == sh:
            out.append(k)
        if k.op == 'T' and k.kids and k.kids[0].gshape == sh:
            out.append(k.kids[0])
    if nd.op not in ('num', 'var') and sh is not None and is_sc(sh):
        out.append(num(1))
        out.append(num(2))
    if nd.op == 'call' and nd.nprime > 0:
        c = N('call', nd.kids, name=nd.name, nprime=nd.nprime - 1)
        c.gshape = sh
        out.append(c)
    return out


def report(f, out):
    cmdline = shlex.join(f.cmd)
    msg = '[%s] %s\n  $ %s\n' % (f.kind, f.msg, cmdline)
    if getattr(f, 'out', None):
        msg += ''.join('  | ' + l + '\n' for l in f.out.splitlines())
    out.write(msg)
    out.flush()
    return msg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--count', type=int, default=200)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--matdiff', default=DEFAULT_MATDIFF)
    ap.add_argument('--program', help='check this one program')
    ap.add_argument('--wrt', help='with --program: variables (default: all, as matdiff)')
    ap.add_argument('--no-shrink', action='store_true')
    ap.add_argument('--time', type=float, default=0, help='stop after this many seconds')
    ap.add_argument('--verbose', '-v', action='store_true')
    ap.add_argument('--log', help='append findings here')
    ap.add_argument('--depth', type=int, help='expression depth (default: random 2..5)')
    ap.add_argument('--kinds', default='grad,jac,hess,vgrad',
                    help='kinds of test to mix (default all): grad (gradients of scalar functions, and '
                    '-s), jac (d vec(F)/d vec(X)\' of vector and matrix functions), hess (--order 2), '
                    'vgrad (gradients of scalar functions with vec, kron, commutation)')
    ap.add_argument('--order', type=int, choices=(1, 2), default=1,
                    help='with --program: 2 checks the Hessian (--order 2)')
    ap.add_argument('--veckron-errors', action='store_true',
                    help='derivatives through vec() and kron() may be a clean error (exit 1), as an '
                    'earlier page said; then they are mostly avoided')
    a = ap.parse_args()
    kinds = [k for k in a.kinds.split(',') if k]
    if not kinds or any(k not in KIND_SHARE for k in kinds):
        ap.error('--kinds: a comma-separated list of grad, jac, hess, vgrad')
    if not os.access(a.matdiff, os.X_OK):
        print('indep.py: no matdiff at %s (build it, or give --matdiff)' % a.matdiff, file=sys.stderr)
        return 2
    global DEPTH
    DEPTH = a.depth
    checker = Checker(a.matdiff, verbose=a.verbose)
    checker.vk_errors = a.veckron_errors
    logf = open(a.log, 'a') if a.log else None

    if a.program is not None:
        try:
            prog = lang.Program(a.program)
        except LangError as e:
            print('indep.py: the independent reader does not take this program: %s' % e, file=sys.stderr)
            return 2
        wrt = a.wrt.split(',') if a.wrt else None
        rng = random.Random(a.seed)
        scalar = prog.is_scalar(prog.function.shape)
        mode = None
        if prog.var_order and a.order == 2 and scalar:
            mode = 'hess'
        elif prog.var_order and not scalar and 'jac' in kinds:
            mode = 'jac'
        vk = any(x in veckron_vars(prog) for x in (wrt or prog.var_order))
        fails, st = test_case(checker, a.program, prog, rng, wrt,
                              not prog.var_order or not scalar, mode=mode, vk=vk)
        for f in fails:
            report(f, sys.stdout)
        print('status:', st)
        return 1 if fails else 0

    counts = {}
    kinds_seen = {}
    found = 0
    t0 = time.time()
    n = 0
    for i in range(a.count):
        if a.time and time.time() - t0 > a.time:
            break
        seed = a.seed * 1000003 + i
        n += 1
        kind = pick_kind(seed, kinds)
        gp, simplify_only, rng = make_case(seed, kind)
        try:
            text, used, _ = gp.render(seed)
            prog = lang.Program(text)
        except (LangError, EvalError) as e:
            counts['self-parse'] = counts.get('self-parse', 0) + 1
            if a.verbose:
                print('self: cannot parse own program (%s):\n%s' % (e, text))
            continue
        if lang.canon(prog.function) != lang.canon(gp.final):
            counts['self-roundtrip'] = counts.get('self-roundtrip', 0) + 1
            if a.verbose:
                print('self: round trip differs:\n%s\n%s\n%s' % (text, lang.canon(prog.function),
                                                                 lang.canon(gp.final)))
            continue
        mode, vk, do_simplify = None, False, True
        if kind == 'grad':
            if not prog.var_order or not prog.is_scalar(prog.function.shape):
                simplify_only = True
            wrt = None if simplify_only else choose_wrt(prog, rng)
        else:
            mode = kind
            if not prog.var_order or prog.is_scalar(prog.function.shape) != (kind != 'jac'):
                mode, simplify_only = 'simplify', True
                wrt = None
            elif kind == 'vgrad':
                wrt = choose_wrt(prog, rng)
            else:
                wrt, vk = choose_wrt_new(prog, rng, kind, checker.vk_errors)
                if wrt == []:
                    mode, simplify_only = 'simplify', True
                    wrt = None
            do_simplify = mode == 'simplify' or (kind == 'jac' and rng.random() < 0.3)
        try:
            fails, st = test_case(checker, text, prog, rng, wrt, simplify_only, do_simplify, mode, vk)
        except (EvalError, LangError) as e:
            counts['self-eval'] = counts.get('self-eval', 0) + 1
            if a.verbose:
                print('self: %s\n%s' % (e, text))
            continue
        for s in st:
            counts[s] = counts.get(s, 0) + 1
            if s == 'flaky' and logf:
                logf.write('flaky seed %d (wrt %s):\n%s\n' % (seed, wrt, text))
                logf.flush()
        for f in fails:
            counts['F:' + f.kind] = counts.get('F:' + f.kind, 0) + 1
            found += 1
            if not a.no_shrink and kinds_seen.get(f.kind, 0) < 5:
                gp2 = shrink(gp, wrt, simplify_only, checker, f.kind, seed, mode=mode)
                text2, _, _ = gp2.render(seed)
                prog2 = lang.Program(text2)
                w2 = None if wrt is None else [x for x in wrt if x in prog2.vars]
                vk2 = w2 is not None and any(x in veckron_vars(prog2) for x in w2)
                fl2, _ = test_case(checker, text2, prog2, random.Random(seed), w2, simplify_only,
                                   mode=mode, vk=vk2)
                fl2 = [x for x in fl2 if x.kind == f.kind] or [f]
                f = fl2[0]
            kinds_seen[f.kind] = kinds_seen.get(f.kind, 0) + 1
            print('seed %d (%s):' % (seed, mode or ('simplify' if simplify_only else 'grad')))
            report(f, sys.stdout)
            if logf:
                logf.write('seed %d:\n' % seed)
                report(f, logf)
        if a.verbose and (i + 1) % 100 == 0:
            print('%d programs, %.0fs, %s' % (i + 1, time.time() - t0, counts), flush=True)
    print('%d programs (seed %d), %.0fs: %s' % (n, a.seed, time.time() - t0,
                                                  ', '.join('%s %d' % kv for kv in sorted(counts.items()))))
    return 1 if found else 0


if __name__ == '__main__':
    sys.exit(main())
