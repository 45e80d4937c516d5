#!/usr/bin/python3
"""Textbook-compact answers (issue 12, part 1): matdiff's gradients of classic objectives
against the gradients textbooks print.

For every case of objectives.txt: run `matdiff --wrt X` on the program, measure the size
of what it prints and of the textbook gradient, and check numerically, with the
independent evaluator of tests/indep/lang.py (not matdiff's), that the two are the same
function and that both agree with central finite differences of the objective.

Size: the number of tokens of the answer's lines -- names, numbers, operators (.* ./ .^
count as one, ' as one), parentheses, commas and the = of a line naming a part (T = ...),
the name included.  Comment lines (#) and declarations (vector mu, symmetric S) do not
count: they say what the names are, not what the gradient is.  Tokens rather than
characters, so that a name's length (softmax, lambda) does not decide, and the printed
text rather than the tree, so that parentheses and the parts named count as a reader
sees them.

Prints one line per case (sizes, ratio, numeric agreement) and a summary; the bar is
every ratio at most 1.25 and the median at most 1.0.  Exit status 1 when a case is over
the bar, disagrees numerically or fails to run; 2 for usage errors.

Usage: tests/textbook/run.py [--matdiff PATH] [--seed S] [-v] [CASE ...]
Needs Python 3 and numpy (Debian: python3-numpy).
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'indep'))
import lang  # noqa: E402

MAX_RATIO = 1.25
MAX_MEDIAN = 1.0
TOL = 1e-7

TOKEN = re.compile(r"\s*(\.\*|\./|\.\^|[A-Za-z_][A-Za-z_0-9]*|\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+|.)")
DECL = re.compile(r"^(scalar|vector|matrix|symmetric|function)\b")


def tokens(line):
    out = []
    pos = 0
    line = line.strip()
    while pos < len(line):
        m = TOKEN.match(line, pos)
        if not m:
            break
        if m.group(1).strip():
            out.append(m.group(1))
        pos = m.end()
    return out


def answer_lines(text):
    """The lines of an answer that count: not comments, not declarations, not blank."""
    return [ln.strip() for ln in text.splitlines()
            if ln.strip() and not ln.lstrip().startswith('#') and not DECL.match(ln.strip())]


def size(lines):
    return sum(len(tokens(ln)) for ln in lines)


def read_cases(path):
    cases, cur, section = [], None, None
    with open(path, encoding='utf-8') as f:
        for raw in f:
            ln = raw.rstrip('\n')
            if ln.startswith('%%'):
                word, _, rest = ln[2:].partition(' ')
                if word == 'case':
                    cur = {'name': rest.strip(), 'program': [], 'textbook': [], 'positive': [],
                           'large': [], 'spd': []}
                    cases.append(cur)
                    section = None
                elif word in ('wrt',):
                    cur[word] = rest.strip()
                elif word in ('positive', 'large', 'spd'):
                    cur[word] += rest.replace(',', ' ').split()
                elif word in ('program', 'textbook'):
                    section = word
                continue
            if ln.startswith('#') and section is None:
                continue
            if section and ln.strip():
                cur[section].append(ln)
    return cases


def statements(lines):
    """An answer's lines as statements of the language: T = ...; and the final expression."""
    return '\n'.join(ln if i == len(lines) - 1 else ln + ';' for i, ln in enumerate(lines))


def values_for(prog, case, sizes, rng):
    vals = {}
    for name in prog.var_order:
        v = prog.vars[name]
        shape = lang.shape_of(sizes, v.shape)
        if name in case['spd']:
            M = rng.standard_normal(shape)
            vals[name] = M @ M.T / shape[0] + np.eye(shape[0])
        elif name in case['positive']:
            vals[name] = rng.uniform(0.5, 1.5, shape)
        elif name in case['large']:
            vals[name] = rng.uniform(20.0, 30.0, shape)
        else:
            A = rng.standard_normal(shape)
            vals[name] = (A + A.T) / 2 if v.kind == 'symmetric' else A
    return vals


def numeric_check(case, md_lines, rng):
    """None when matdiff's answer, the textbook's and finite differences agree, else why."""
    head = '\n'.join(case['program'])
    try:
        # a name the user bound (p = 1./(1 + exp(-X*w))) is printed first by
        # matdiff, defined as the program defines it: the program's own
        # definition serves
        bound = lang.Program(head).assigns
        md_lines = [ln for ln in md_lines if ln.split('=')[0].strip() not in bound or '=' not in ln
                    or ln is md_lines[-1]]
        p_md = lang.Program(head + '\n' + statements(md_lines))
        p_tb = lang.Program(head + '\n' + statements(case['textbook']))
        p_f = lang.Program(head)
    except lang.LangError as e:
        return 'does not parse: %s' % e
    X = case['wrt']
    worst = 0.0
    for _ in range(3):
        sizes = lang.assign_sizes(p_f, random.Random(int(rng.integers(1 << 30))))
        vals = values_for(p_f, case, sizes, rng)
        try:
            g_md = lang.evaluate(p_md, p_md.function, lang.bind_sizes(p_md, vals, sizes), vals, {})
            g_tb = lang.evaluate(p_tb, p_tb.function, lang.bind_sizes(p_tb, vals, sizes), vals, {})
        except lang.EvalError as e:
            return 'does not evaluate: %s' % e
        if g_md.shape != vals[X].shape or g_tb.shape != vals[X].shape:
            return 'shape %s (matdiff) / %s (textbook), %s is %s' % (g_md.shape, g_tb.shape, X, vals[X].shape)
        scale = max(1.0, float(np.max(np.abs(g_tb))))
        err = float(np.max(np.abs(g_md - g_tb))) / scale
        worst = max(worst, err)
        if not err < TOL:
            return 'matdiff and the textbook differ by %.2g' % err
        # both against central differences of f along a random direction (symmetric
        # for a symmetric variable: its gradient is the symmetric one)
        D = rng.standard_normal(vals[X].shape)
        if p_f.vars[X].kind == 'symmetric':
            D = (D + D.T) / 2

        def f_at(t):
            v = dict(vals)
            v[X] = vals[X] + t * D
            return float(lang.evaluate(p_f, p_f.function, sizes, v, {})[0, 0])
        h = 1e-5
        fd = (8 * (f_at(h) - f_at(-h)) - (f_at(2 * h) - f_at(-2 * h))) / (12 * h)
        dd = float(np.sum(g_tb * D))
        if not abs(fd - dd) <= 1e-5 * max(1.0, abs(fd)):
            return 'the textbook gradient is not the derivative: %.8g against %.8g' % (dd, fd)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--matdiff', default=os.path.normpath(os.path.join(HERE, '..', '..', 'matdiff')))
    ap.add_argument('--seed', type=int, default=12)
    ap.add_argument('-v', action='store_true', help='print both answers')
    ap.add_argument('cases', nargs='*')
    a = ap.parse_args()
    if not os.access(a.matdiff, os.X_OK):
        print('run.py: no matdiff at %s' % a.matdiff, file=sys.stderr)
        return 2
    rng = np.random.default_rng(a.seed)
    cases = read_cases(os.path.join(HERE, 'objectives.txt'))
    if a.cases:
        cases = [c for c in cases if c['name'] in a.cases]
    ratios, bad = [], []
    print('%-34s %8s %8s %6s  %s' % ('objective', 'matdiff', 'textbook', 'ratio', 'numeric'))
    for c in cases:
        r = subprocess.run([a.matdiff, '--wrt', c['wrt']], input='\n'.join(c['program']) + '\n',
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print('%-34s matdiff exit %d: %s' % (c['name'], r.returncode, r.stderr.strip()[:200]))
            bad.append(c['name'])
            continue
        md = answer_lines(r.stdout)
        tb = [ln.strip() for ln in c['textbook']]
        n_md, n_tb = size(md), size(tb)
        ratio = n_md / n_tb
        ratios.append(ratio)
        why = numeric_check(c, md, rng)
        over = ratio > MAX_RATIO
        print('%-34s %8d %8d %6.2f  %s%s' % (c['name'], n_md, n_tb, ratio, why or 'ok',
                                             '   OVER %.2f' % MAX_RATIO if over else ''))
        if a.v or over or why:
            for ln in md:
                print('      matdiff:  %s' % ln)
            for ln in tb:
                print('      textbook: %s' % ln)
        if over or why:
            bad.append(c['name'])
    med = statistics.median(ratios) if ratios else float('nan')
    print('%d objectives: median ratio %.3f (bar %.2f), largest %.3f (bar %.2f); %d over the bar or wrong%s'
          % (len(cases), med, MAX_MEDIAN, max(ratios) if ratios else float('nan'), MAX_RATIO, len(bad),
             ': ' + ', '.join(bad) if bad else ''))
    return 1 if bad or not med <= MAX_MEDIAN else 0


if __name__ == '__main__':
    sys.exit(main())
