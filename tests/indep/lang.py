"""An independent reader and evaluator of the matdiff language.

Written from docs/language.md only (not from src/): lexer, parser, shape inference by
unification, and a numpy float64 evaluator.  Used by indep.py.
"""

import math
from fractions import Fraction

import numpy as np

GREEK = set("""alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa
lambda mu nu xi omicron pi rho sigma tau upsilon phi varphi chi psi omega""".split())
ELEMWISE = ['sin', 'cos', 'tan', 'arcsin', 'arccos', 'arctan', 'exp', 'log', 'tanh',
            'sqrt', 'abs', 'relu', 'sign', 'step', 'sigmoid', 'softplus', 'log1p']
REDUCE = ['sum', 'norm1', 'norm2', 'tr', 'det', 'logdet', 'logsumexp']
MATFN = ['inv', 'diag', 'vec', 'softmax']
KEYWORDS = ['scalar', 'vector', 'matrix', 'symmetric', 'function']
BUILTINS = set(ELEMWISE + REDUCE + MATFN + ['eye', 'kron', 'commutation'])
RESERVED = BUILTINS | set(KEYWORDS)


class LangError(Exception):
    pass


# ---------------------------------------------------------------- lexer

OPS1 = "+-*/^'(),;="


def lex(src):
    toks = []
    i, n, depth = 0, len(src), 0
    while i < n:
        ch = src[i]
        if ch == '#':
            while i < n and src[i] != '\n':
                i += 1
        elif ch in ' \t\r':
            i += 1
        elif ch == '\n':
            if depth == 0:
                toks.append(('nl', '\n'))
            i += 1
        elif ch.isdigit() or (ch == '.' and i + 1 < n and src[i + 1].isdigit()):
            j = i
            while j < n and src[j].isdigit():
                j += 1
            if j < n and src[j] == '.':
                # "An integer followed directly by .*, ./ or .^ ends before the dot"
                if not (j > i and j + 1 < n and src[j + 1] in '*/^'):
                    j += 1
                    while j < n and src[j].isdigit():
                        j += 1
            if j < n and src[j] in 'eE':
                k = j + 1
                if k < n and src[k] in '+-':
                    k += 1
                if k < n and src[k].isdigit():
                    while k < n and src[k].isdigit():
                        k += 1
                    j = k
            text = src[i:j]
            toks.append(('num', text))
            i = j
        elif ch == '.' and i + 1 < n and src[i + 1] in '*/^':
            toks.append(('op', src[i:i + 2]))
            i += 2
        elif (ch.isascii() and ch.isalpha()) or ch == '_':
            j = i
            while j < n and ((src[j].isascii() and src[j].isalnum()) or src[j] == '_'):
                j += 1
            toks.append(('name', src[i:j]))
            i = j
        elif ch in OPS1:
            if ch == '(':
                depth += 1
            elif ch == ')':
                depth = max(0, depth - 1)
            toks.append(('op', ch))
            i += 1
        else:
            raise LangError('unexpected character %r' % ch)
    toks.append(('eof', ''))
    return toks


# ---------------------------------------------------------------- AST

class Node:
    __slots__ = ('op', 'kids', 'val', 'name', 'nprime', 'target', 'shape', 'gshape', 'need', 'text',
                 'dims')

    def __init__(self, op, kids=(), val=None, name=None, nprime=0, target=None):
        self.op = op          # num var ref neg upos T + - * / .* ./ ^ .^ call
        self.kids = list(kids)
        self.val = val        # Fraction for num
        self.name = name      # var/ref/call name; for const calls: 'vector' 'matrix' 'eye'
        self.nprime = nprime  # generic function derivative order
        self.target = target  # ref: the assigned expression
        self.shape = None
        self.gshape = None
        self.need = None
        self.text = None      # dims names for sized constants (list), literal text for num
        self.dims = None      # commutation: the Dims of its two arguments

    def __repr__(self):
        return canon(self)


def canon(nd):
    """Fully parenthesised canonical text (for round-trip self checks)."""
    op = nd.op
    if op == 'num':
        return str(Fraction(nd.val))
    if op in ('var', 'ref'):
        return nd.name
    if op == 'neg':
        return '(-%s)' % canon(nd.kids[0])
    if op == 'upos':
        return '(+%s)' % canon(nd.kids[0])
    if op == 'T':
        return '(%s)\'' % canon(nd.kids[0])
    if op == 'call':
        args = [canon(k) for k in nd.kids]
        if nd.text:
            args += list(nd.text)
        return '%s%s(%s)' % (nd.name, "'" * nd.nprime, ','.join(args))
    return '(%s %s %s)' % (canon(nd.kids[0]), op, canon(nd.kids[1]))


# ---------------------------------------------------------------- shapes

class Dim:
    """A dimension: 'one' (the constant 1), 'named' (a declared or inferred name), 'var' (a
    dimension of a vector or matrix variable, never 1), 'free' (of a constant whose size is
    open; may turn out 1), or 'prod' (a product of dimensions, as of vec, kron,
    commutation and eye(n*p); commutative: n*p is p*n)."""
    __slots__ = ('parent', 'kind', 'name', 'factors')

    def __init__(self, kind, name=None, factors=None):
        self.parent = self
        self.kind = kind      # one named var free prod
        self.name = name
        self.factors = factors


def find(d):
    while d.parent is not d:
        d.parent = d.parent.parent
        d = d.parent
    return d


def atoms(d):
    """The atomic dimensions (roots of kind named/var/free) whose product d is; [] for 1."""
    r = find(d)
    if r.kind == 'one':
        return []
    if r.kind == 'prod':
        out = []
        for f in r.factors:
            out += atoms(f)
        return out
    return [r]


def dkey(d):
    """Equal for equal dimensions (as a multiset of atoms)."""
    return tuple(sorted(id(a) for a in atoms(d)))


def is_one(d):
    return not atoms(d)


def make_prod(ds):
    at = []
    for d in ds:
        at += atoms(d)
    if not at:
        return Dim('one')
    if len(at) == 1:
        return at[0]
    return Dim('prod', factors=at)


def _msdiff(a, b):
    b = list(b)
    out = []
    for x in a:
        for i, y in enumerate(b):
            if y is x:
                del b[i]
                break
        else:
            out.append(x)
    return out


def _unify_atoms(a, b, what):
    # a, b: roots of kind named/var/free, or None for 1
    if a is None and b is None:
        return
    if a is None or b is None:
        x = a if a is not None else b
        if x.kind == 'free':
            x.parent = Dim('one')
            return
        raise LangError('shape: a vector/matrix dimension would become 1 in ' + what)
    if a is b:
        return
    ka, kb = a.kind, b.kind
    if ka == 'free':
        a.parent = b
        return
    if kb == 'free':
        b.parent = a
        return
    if ka == 'named' and kb == 'named':
        if a.name != b.name:
            raise LangError('shape: named dimensions %s and %s differ in %s' % (a.name, b.name, what))
        a.parent = b
        return
    if ka == 'named':
        b.parent = a
    else:
        a.parent = b


def unify(a, b, what):
    fa, fb = atoms(a), atoms(b)
    if len(fa) <= 1 and len(fb) <= 1:
        _unify_atoms(fa[0] if fa else None, fb[0] if fb else None, what)
        return
    # products: cancel the common factors; what is left on one side must be a single
    # unknown (var or free) dimension, which becomes the other side's product
    ra, rb = _msdiff(fa, fb), _msdiff(fb, fa)
    if not ra and not rb:
        return
    for r1, r2 in ((ra, rb), (rb, ra)):
        if len(r1) == 1 and r1[0].kind in ('free', 'var'):
            if len(r2) <= 1:
                _unify_atoms(r1[0], r2[0] if r2 else None, what)
            elif len(r1) + len(r2) == len(fa) + len(fb):
                r1[0].parent = make_prod(r2)
            else:
                # n*u = n*p*q: the page does not say whether u becomes p*q (matdiff says no):
                # not a program this reader takes
                raise LangError('shape: %s and %s: a dimension would become a product after '
                                'cancelling a common factor (undocumented)' % (dname(a), dname(b)))
            return
    raise LangError('shape: dimensions %s and %s differ in %s' % (dname(a), dname(b), what))


def dname(d):
    at = atoms(d)
    if not at:
        return '1'
    return '*'.join(a.name or '?' for a in at)


def default_kind(name):
    if name in GREEK:
        return 'scalar'
    c = name[0]
    if c == '_' or 'a' <= c <= 'g':
        return 'scalar'
    if 'h' <= c <= 'z':
        return 'vector'
    if 'A' <= c <= 'Z':
        return 'matrix'
    return 'scalar'


class VarInfo:
    def __init__(self, name, kind, dims=None, declared=False):
        self.name = name
        self.kind = kind          # scalar vector matrix symmetric
        self.dims = dims          # list of dimension names or None
        self.declared = declared
        self.shape = None


# ---------------------------------------------------------------- parser

class Program:
    """Parse and type-check a program.  Attributes:
    vars (name -> VarInfo), var_order, funcs (declared generic functions in order),
    assigns (name -> node), assign_order, exprs (expression statements), function (node)."""

    def __init__(self, src):
        self.src = src
        self.toks = lex(src)
        self.i = 0
        self.vars = {}
        self.var_order = []
        self.funcs = []
        self.assigns = {}
        self.assign_order = []
        self.exprs = []
        self.used_names = set()
        self.named = {}
        self.ONE = Dim('one')
        self.const_nodes = []
        self._parse()
        if self.exprs:
            self.function = self.exprs[-1]
        elif self.assign_order:
            self.function = self.assigns[self.assign_order[-1]]
        else:
            raise LangError('no expression')
        self._typecheck()

    # -- token helpers
    def peek(self, k=0):
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def next(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def expect(self, kind, val=None):
        t = self.next()
        if t[0] != kind or (val is not None and t[1] != val):
            raise LangError('expected %s %s, got %r' % (kind, val or '', t))
        return t

    def isop(self, v, k=0):
        t = self.peek(k)
        return t[0] == 'op' and t[1] == v

    # -- statements
    def _parse(self):
        while self.peek()[0] != 'eof':
            if self.peek()[0] == 'nl' or self.isop(';'):
                self.next()
                continue
            self.statement()
            t = self.peek()
            if not (t[0] in ('nl', 'eof') or (t[0] == 'op' and t[1] == ';')):
                raise LangError('expected end of statement, got %r' % (t,))

    def statement(self):
        t = self.peek()
        if t[0] == 'name' and t[1] in KEYWORDS and not self.isop('(', 1):
            self.declaration()
        elif t[0] == 'name' and self.isop('=', 1):
            name = self.next()[1]
            self.next()
            if name in RESERVED or name in self.vars or name in self.funcs or name in self.assigns:
                raise LangError('cannot assign to %s' % name)
            e = self.expr()
            self.assigns[name] = e
            self.assign_order.append(name)
            self.used_names.add(name)
        else:
            self.exprs.append(self.expr())

    def declaration(self):
        kw = self.next()[1]
        while True:
            t = self.expect('name')
            name = t[1]
            if name in RESERVED or name in self.used_names:
                raise LangError('cannot declare %s' % name)
            dims = None
            if self.isop('('):
                # matdiff's output declares product dimensions too (vector x(n*p)), as its
                # sizes write them (eye(n*p))
                self.next()
                dims = [self.dimexpr()]
                while self.isop(','):
                    self.next()
                    dims.append(self.dimexpr())
                self.expect('op', ')')
            if kw == 'function':
                if dims is not None:
                    raise LangError('function with dims')
                self.funcs.append(name)
            else:
                if kw == 'scalar' and dims:
                    raise LangError('scalar with dims')
                if kw == 'vector' and dims and len(dims) != 1:
                    raise LangError('vector dims')
                if kw == 'matrix' and dims and len(dims) != 2:
                    raise LangError('matrix dims')
                if kw == 'symmetric' and dims:
                    if len(dims) == 2 and dims[0] != dims[1] or len(dims) > 2:
                        raise LangError('symmetric dims')
                self.add_var(VarInfo(name, kw, dims, True))
            self.used_names.add(name)
            if self.isop(','):
                self.next()
                continue
            break

    def add_var(self, v):
        self.vars[v.name] = v
        self.var_order.append(v.name)

    # -- expressions
    def expr(self):
        e = self.mul()
        while self.isop('+') or self.isop('-'):
            op = self.next()[1]
            e = Node(op, [e, self.mul()])
        return e

    def mul(self):
        e = self.had()
        while self.isop('*') or self.isop('/'):
            op = self.next()[1]
            e = Node(op, [e, self.had()])
        return e

    def had(self):
        e = self.unary()
        while self.isop('.*') or self.isop('./'):
            op = self.next()[1]
            e = Node(op, [e, self.unary()])
        return e

    def unary(self):
        if self.isop('-'):
            self.next()
            return Node('neg', [self.unary()])
        if self.isop('+'):
            self.next()
            return Node('upos', [self.unary()])
        return self.power()

    def power(self):
        b = self.postfix()
        if self.isop('^') or self.isop('.^'):
            op = self.next()[1]
            return Node(op, [b, self.unary()])
        return b

    def postfix(self):
        e = self.primary()
        while self.isop("'"):
            self.next()
            e = Node('T', [e])
        return e

    def primary(self):
        t = self.next()
        if t[0] == 'num':
            nd = Node('num', val=Fraction(t[1]))
            nd.text = t[1]
            return nd
        if t[0] == 'op' and t[1] == '(':
            e = self.expr()
            self.expect('op', ')')
            return e
        if t[0] != 'name':
            raise LangError('unexpected %r' % (t,))
        name = t[1]
        self.used_names.add(name)
        if name in self.funcs:
            np_ = 0
            while self.isop("'"):
                self.next()
                np_ += 1
            self.expect('op', '(')
            a = self.expr()
            self.expect('op', ')')
            return Node('call', [a], name=name, nprime=np_)
        if name in ELEMWISE or name in REDUCE or name in MATFN:
            self.expect('op', '(')
            a = self.expr()
            self.expect('op', ')')
            return Node('call', [a], name=name)
        if name == 'kron':
            self.expect('op', '(')
            a = self.expr()
            self.expect('op', ',')
            b = self.expr()
            self.expect('op', ')')
            return Node('call', [a, b], name='kron')
        if name == 'commutation':
            self.expect('op', '(')
            m = self.dimexpr()
            self.expect('op', ',')
            n = self.dimexpr()
            self.expect('op', ')')
            nd = Node('call', [], name='commutation')
            nd.text = [m, n]
            self.const_nodes.append(nd)
            return nd
        if name == 'eye':
            nd = Node('call', [], name='eye')
            nd.text = []
            if self.isop('('):
                self.next()
                nd.text = [self.dimexpr()]
                self.expect('op', ')')
            self.const_nodes.append(nd)
            return nd
        if name in ('vector', 'matrix'):
            self.expect('op', '(')
            a = self.expr()
            dims = []
            while self.isop(','):
                self.next()
                dims.append(self.dimexpr())
            self.expect('op', ')')
            if dims and len(dims) != (1 if name == 'vector' else 2):
                raise LangError('bad constant size')
            nd = Node('call', [a], name=name)
            nd.text = dims
            self.const_nodes.append(nd)
            return nd
        if name in KEYWORDS:
            raise LangError('keyword %s in expression' % name)
        if name in self.assigns:
            return Node('ref', name=name, target=self.assigns[name])
        if name not in self.vars:
            self.add_var(VarInfo(name, default_kind(name)))
        return Node('var', name=name)

    def dimexpr(self):
        """a dimension name, or a product of them (n*p), as in eye(n*p)"""
        parts = [self.expect('name')[1]]
        while self.isop('*'):
            self.next()
            parts.append(self.expect('name')[1])
        return '*'.join(parts)

    # -- shape inference
    def ndim(self, name):
        if '*' in name:
            return make_prod([self.ndim(x) for x in name.split('*')])
        if name not in self.named:
            self.named[name] = Dim('named', name)
        return self.named[name]

    def scalar(self):
        return (self.ONE, self.ONE)

    def is_scalar(self, sh):
        return is_one(sh[0]) and is_one(sh[1])

    def _typecheck(self):
        for name in self.var_order:
            v = self.vars[name]
            dn = v.dims or []
            if v.kind == 'scalar':
                v.shape = self.scalar()
            elif v.kind == 'vector':
                v.shape = (self.ndim(dn[0]) if dn else Dim('var'), self.ONE)
            elif v.kind == 'matrix':
                v.shape = ((self.ndim(dn[0]) if dn else Dim('var')),
                           (self.ndim(dn[1]) if dn else Dim('var')))
            else:
                d = self.ndim(dn[0]) if dn else Dim('var')
                v.shape = (d, d)
        self.memo = {}
        for e in self.exprs:
            self.tc(e)
        for a in self.assign_order:
            self.tc(self.assigns[a])
        carried = set()
        for name in self.var_order:
            for d in self.vars[name].shape:
                carried.update(id(a) for a in atoms(d))
        for nd in self.const_nodes:
            if nd.shape is None:
                continue
            for d in list(nd.shape) + list(nd.dims or ()):
                for r in atoms(d):
                    if r.kind == 'free':
                        raise LangError('the size of constant %s cannot be inferred' % canon(nd))
                    if r.kind == 'named' and id(r) not in carried:
                        raise LangError('dimension %s is carried by no variable' % r.name)

    def tc(self, nd):
        k = id(nd)
        if k in self.memo:
            return self.memo[k]
        sh = self._tc(nd)
        nd.shape = sh
        self.memo[k] = sh
        return sh

    def _tc(self, nd):
        op = nd.op
        S = self.scalar()
        if op == 'num':
            return S
        if op == 'var':
            return self.vars[nd.name].shape
        if op == 'ref':
            return self.tc(nd.target)
        if op in ('neg', 'upos'):
            return self.tc(nd.kids[0])
        if op == 'T':
            a = self.tc(nd.kids[0])
            return (a[1], a[0])
        if op in ('+', '-', '.*', './', '.^'):
            a = self.tc(nd.kids[0])
            b = self.tc(nd.kids[1])
            if self.is_scalar(a):
                return b
            if self.is_scalar(b):
                return a
            unify(a[0], b[0], op)
            unify(a[1], b[1], op)
            return a
        if op == '*':
            a = self.tc(nd.kids[0])
            b = self.tc(nd.kids[1])
            if self.is_scalar(a):
                return b
            if self.is_scalar(b):
                return a
            unify(a[1], b[0], '*')
            return (a[0], b[1])
        if op == '/':
            a = self.tc(nd.kids[0])
            b = self.tc(nd.kids[1])
            if not self.is_scalar(b):
                raise LangError('/ by non-scalar')
            return a
        if op == '^':
            a = self.tc(nd.kids[0])
            b = self.tc(nd.kids[1])
            if not self.is_scalar(b):
                raise LangError('^ with non-scalar exponent')
            if self.is_scalar(a):
                return S
            unify(a[0], a[1], 'matrix power')
            k = const_value(nd.kids[1])
            if k is None or k.denominator != 1 or abs(k) > 64:
                raise LangError('matrix power needs an integer literal')
            return a
        if op == 'call':
            f = nd.name
            if f in self.funcs or f in ELEMWISE:
                return self.tc(nd.kids[0])
            if f in ('sum', 'norm1', 'norm2'):
                self.tc(nd.kids[0])
                return S
            if f in ('softmax', 'logsumexp'):
                a = self.tc(nd.kids[0])
                unify(a[1], self.ONE, f)
                return a if f == 'softmax' else S
            if f in ('tr', 'det', 'logdet'):
                a = self.tc(nd.kids[0])
                unify(a[0], a[1], f)
                return S
            if f == 'inv':
                a = self.tc(nd.kids[0])
                unify(a[0], a[1], f)
                return a
            if f == 'diag':
                a = self.tc(nd.kids[0])
                if self.is_scalar(a):
                    return S
                if is_one(a[1]):
                    return (a[0], a[0])
                unify(a[0], a[1], 'diag')
                return (a[0], self.ONE)
            if f == 'vec':
                a = self.tc(nd.kids[0])
                return (make_prod([a[0], a[1]]), self.ONE)
            if f == 'kron':
                a = self.tc(nd.kids[0])
                b = self.tc(nd.kids[1])
                return (make_prod([a[0], b[0]]), make_prod([a[1], b[1]]))
            if f == 'commutation':
                nd.dims = (self.ndim(nd.text[0]), self.ndim(nd.text[1]))
                d = make_prod(list(nd.dims))
                return (d, d)
            if f == 'eye':
                if nd.text:
                    d = self.ndim(nd.text[0])
                else:
                    d = Dim('free')
                return (d, d)
            if f in ('vector', 'matrix'):
                c = self.tc(nd.kids[0])
                if not self.is_scalar(c):
                    raise LangError('constant value must be scalar')
                dims = nd.text or []
                if f == 'vector':
                    return (self.ndim(dims[0]) if dims else Dim('free'), self.ONE)
                return ((self.ndim(dims[0]) if dims else Dim('free')),
                        (self.ndim(dims[1]) if dims else Dim('free')))
        raise LangError('cannot type %s' % op)


def const_value(nd):
    if nd.op == 'num':
        return Fraction(nd.val)
    if nd.op == 'neg':
        v = const_value(nd.kids[0])
        return None if v is None else -v
    if nd.op == 'upos':
        return const_value(nd.kids[0])
    return None


# ---------------------------------------------------------------- evaluator

def generic(k, j, x):
    a = 0.7 + 0.3 * k
    b = 0.4 + 0.5 * k
    return a ** j * np.sin(a * x + b + j * math.pi / 2)


class EvalError(Exception):
    pass


class TooLarge(EvalError):
    """An intermediate value of more than MAX_ENTRIES entries (a printed Kronecker product
    of identities, say): not evaluated here, so no verdict."""
    pass


MAX_ENTRIES = 1000000


class Sizes:
    """Concrete sizes of the dimension classes of one Program (a product dimension's size is
    the product of its factors' sizes)."""

    def __init__(self):
        self.by_root = {}
        self.by_name = {}   # read-back: sizes of the input's named dimensions

    def get(self, d):
        n = 1
        for r in atoms(d):
            if id(r) in self.by_root:
                n *= self.by_root[id(r)][1]
            elif r.name and r.name in self.by_name:
                # a dimension that only occurs inside products in the printed text
                # (vector v(n*p)): the input's dimension of that name, as the page says
                # dimension names in the output are those of the header and declarations
                n *= self.by_name[r.name]
            elif r.kind == 'free':
                raise EvalError('a constant whose size nothing fixes')
            else:
                raise EvalError('dimension %s has no size' % (r.name or '?'))
        return n

    def set(self, d, n):
        """Give d the size n; -> False when that cannot be decided yet (a product with
        more than one unknown factor)."""
        at = atoms(d)
        known, unknown = 1, []
        for r in at:
            if id(r) in self.by_root:
                known *= self.by_root[id(r)][1]
            else:
                unknown.append(r)
        if not unknown:
            if known != n:
                raise EvalError('dimension %s gets sizes %d and %d' % (dname(d), known, n))
            return True
        u = unknown[0]
        if any(x is not u for x in unknown):
            return False
        k = len(unknown)
        if n % known:
            raise EvalError('dimension %s cannot have size %d' % (dname(d), n))
        m = n // known
        root = int(round(m ** (1.0 / k)))
        if root < 1 or root ** k != m:
            raise EvalError('dimension %s cannot have size %d' % (dname(d), n))
        self.by_root[id(u)] = (u, root)
        return True


def assign_sizes(prog, rng, lo=2, hi=5):
    """Random sizes for the dimension classes of the variables of prog (distinct while
    possible)."""
    sz = Sizes()
    roots = []
    ds = [d for name in prog.var_order for d in prog.vars[name].shape] + list(prog.named.values())
    for d in ds:
        for r in atoms(d):
            if all(r is not x for x in roots):
                roots.append(r)
    pool = list(range(lo, hi + 1))
    rng.shuffle(pool)
    for i, r in enumerate(roots):
        sz.set(r, pool[i] if i < len(pool) else rng.randint(lo, hi))
    return sz


def bind_sizes(prog, values, input_sizes=None):
    """Sizes for the dimension classes of prog from the variables' values (read-back of
    an output program), and, for a named dimension that only occurs inside products, the
    size of the input's dimension of that name (input_sizes).  Raises EvalError when the
    output's typing cannot hold them."""
    sz = Sizes()
    if input_sizes is not None:
        for r, n in input_sizes.by_root.values():
            if r.name:
                sz.by_name[r.name] = n
    todo = []
    for name in prog.var_order:
        if name not in values:
            continue
        v = prog.vars[name]
        val = values[name]
        todo += [(v.shape[0], val.shape[0]), (v.shape[1], val.shape[1])]
    while todo:
        left = [(d, n) for d, n in todo if not sz.set(d, n)]
        if len(left) == len(todo):
            break
        todo = left
    return sz


def shape_of(sz, sh):
    return (sz.get(sh[0]), sz.get(sh[1]))


class Evaluator:
    def __init__(self, prog, sizes, values, fidx, perturb=None):
        self.perturb = perturb  # random.Random: multiply every literal by 1 + 1e-13*u
        self.prog = prog
        self.sz = sizes
        self.values = values
        self.fidx = fidx  # generic function name -> index
        self.memo = {}

    def ev(self, nd):
        k = id(nd)
        v = self.memo.get(k)
        if v is None:
            exp = shape_of(self.sz, nd.shape)
            if exp[0] * exp[1] > MAX_ENTRIES:
                raise TooLarge('a %dx%d intermediate value' % exp)
            v = self._ev(nd)
            if v.shape != exp:
                raise EvalError('internal: value shape %s, type %s for %s' % (v.shape, exp, canon(nd)[:80]))
            self.memo[k] = v
        return v

    def _ev(self, nd):
        op = nd.op
        if op == 'num':
            v = float(nd.val)
            if self.perturb is not None:
                v *= 1 + 1e-13 * self.perturb.uniform(-1, 1)
            return np.full((1, 1), v)
        if op == 'var':
            v = self.values.get(nd.name)
            if v is None:
                raise EvalError('no value for variable %s' % nd.name)
            return v
        if op == 'ref':
            return self.ev(nd.target)
        if op == 'neg':
            return -self.ev(nd.kids[0])
        if op == 'upos':
            return self.ev(nd.kids[0])
        if op == 'T':
            return self.ev(nd.kids[0]).T
        if op in ('+', '-', '.*', './', '.^'):
            a = self.ev(nd.kids[0])
            b = self.ev(nd.kids[1])
            if a.shape != b.shape and a.shape != (1, 1) and b.shape != (1, 1):
                raise EvalError('shape clash in %s' % op)
            if op == '+':
                r = a + b
            elif op == '-':
                r = a - b
            elif op == '.*':
                r = a * b
            elif op == './':
                r = a / b
            else:
                r = np.power(a, b)
            return np.broadcast_to(r, shape_of(self.sz, nd.shape)).copy()
        if op == '*':
            a = self.ev(nd.kids[0])
            b = self.ev(nd.kids[1])
            if self.prog.is_scalar(nd.kids[0].shape) or self.prog.is_scalar(nd.kids[1].shape):
                return a * b
            return a @ b
        if op == '/':
            return self.ev(nd.kids[0]) / self.ev(nd.kids[1])
        if op == '^':
            a = self.ev(nd.kids[0])
            b = self.ev(nd.kids[1])
            if self.prog.is_scalar(nd.kids[0].shape):
                return np.power(a, b)
            k = int(const_value(nd.kids[1]))
            if k < 0:
                a = self.inv(a)
                k = -k
            return np.linalg.matrix_power(a, k)
        if op == 'call':
            return self.call(nd)
        raise EvalError('op %s' % op)

    @staticmethod
    def inv(a):
        try:
            return np.linalg.inv(a)
        except np.linalg.LinAlgError:
            return np.full(a.shape, np.nan)

    def call(self, nd):
        f = nd.name
        if f in self.prog.funcs:
            return generic(self.fidx[f], nd.nprime, self.ev(nd.kids[0]))
        if f == 'eye':
            n = self.sz.get(nd.shape[0])
            return np.eye(n)
        if f in ('vector', 'matrix'):
            c = self.ev(nd.kids[0])[0, 0]
            return np.full(shape_of(self.sz, nd.shape), c)
        if f == 'commutation':
            return commutation(self.sz.get(nd.dims[0]), self.sz.get(nd.dims[1]))
        if f == 'kron':
            return np.kron(self.ev(nd.kids[0]), self.ev(nd.kids[1]))
        a = self.ev(nd.kids[0])
        if f == 'vec':
            return vec(a)
        if f == 'sin':
            return np.sin(a)
        if f == 'cos':
            return np.cos(a)
        if f == 'tan':
            return np.tan(a)
        if f == 'arcsin':
            return np.arcsin(a)
        if f == 'arccos':
            return np.arccos(a)
        if f == 'arctan':
            return np.arctan(a)
        if f == 'exp':
            return np.exp(a)
        if f == 'log':
            return np.log(a)
        if f == 'tanh':
            return np.tanh(a)
        if f == 'sqrt':
            return np.sqrt(a)
        if f == 'abs':
            return np.abs(a)
        if f == 'relu':
            return np.maximum(a, 0.0)
        if f == 'sign':
            return np.sign(a)
        if f == 'step':
            return (a > 0).astype(float)
        if f == 'sigmoid':
            return 1.0 / (1.0 + np.exp(-a))
        if f == 'softplus':
            return np.logaddexp(0.0, a)
        if f == 'log1p':
            return np.log1p(a)
        if f == 'sum':
            return np.full((1, 1), np.sum(a))
        if f == 'norm1':
            return np.full((1, 1), np.sum(np.abs(a)))
        if f == 'norm2':
            return np.full((1, 1), np.sqrt(np.sum(a * a)))
        if f == 'tr':
            return np.full((1, 1), np.trace(a))
        if f == 'det':
            return np.full((1, 1), np.linalg.det(a))
        if f == 'logdet':
            s, ld = np.linalg.slogdet(a)
            return np.full((1, 1), ld if s > 0 else np.nan)
        if f in ('softmax', 'logsumexp'):
            m = np.max(a)
            e = np.exp(a - m)
            if f == 'softmax':
                return e / np.sum(e)
            return np.full((1, 1), m + np.log(np.sum(e)))
        if f == 'inv':
            return self.inv(a)
        if f == 'diag':
            if a.shape == (1, 1):
                return a.copy()
            if a.shape[1] == 1 and not self.prog.is_scalar(nd.kids[0].shape) \
                    and is_one(nd.kids[0].shape[1]):
                return np.diag(a[:, 0])
            return np.diag(a).reshape(-1, 1).copy()
        raise EvalError('unknown function %s' % f)


def vec(a):
    """the columns of a stacked (column-major), as a column"""
    return a.reshape(-1, 1, order='F').copy()


def commutation(m, n):
    """K (mn x mn) with K vec(A) = vec(A') for every m x n A"""
    K = np.zeros((m * n, m * n))
    for i in range(m):
        for j in range(n):
            # vec(A)[i + j*m] = A[i, j] = A'[j, i] = vec(A')[j + i*n]
            K[j + i * n, i + j * m] = 1.0
    return K


def evaluate(prog, node, sizes, values, fidx, perturb=None):
    with np.errstate(all='ignore'):
        return Evaluator(prog, sizes, values, fidx, perturb).ev(node)
