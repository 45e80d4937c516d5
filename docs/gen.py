#!/usr/bin/env python3
"""docs/gen.py -- regenerate the documentation's examples from the real binary.

Every example in README.md, docs/language.md, docs/developer.md and
docs/matdiff.1 comes from a template in docs/src/*.in, where a line

    %%RUN cmd        becomes "$ cmd" and the command's output (stdout and stderr),
    %%RUNRC cmd      the same, then "$ echo $?" and the exit status,

run with ./matdiff first on PATH and docs/examples/ as the working directory.
`make docs` runs this for every template, so the examples cannot go stale.
Usage: gen.py TEMPLATE OUTPUT [md|man]
"""
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src, dst = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else 'md'
env = dict(os.environ, PATH=root + os.pathsep + os.environ['PATH'], LC_ALL='C.UTF-8')


def esc(line):
    if mode != 'man':
        return line
    line = line.replace('\\', '\\e').replace('-', '\\-').replace('×', '\\[mu]')
    if line.startswith('.') or line.startswith("'"):
        line = '\\&' + line
    return line


lines = [l.rstrip('\n') for l in open(src, encoding='utf-8')]
fence_open, fence_close = ('```console', '```') if mode == 'md' else ('.EX', '.EE')
out = []
for i, s in enumerate(lines):
    is_run = s.startswith('%%RUN')
    if is_run and (i == 0 or not lines[i - 1].startswith('%%RUN')):
        out.append(fence_open)
    if is_run:
        cmd = s.split(' ', 1)[1]
        # stdout and stderr interleaved as a terminal shows them
        p = subprocess.run(['bash', '-c', 'exec 2>&1; ' + cmd], cwd=os.path.join(root, 'docs', 'examples'),
                           stdout=subprocess.PIPE, env=env)
        out.append(esc('$ ' + cmd))
        out.extend(esc(l) for l in p.stdout.decode('utf-8').splitlines())
        if s.startswith('%%RUNRC'):
            out.append(esc('$ echo $?'))
            out.append(str(p.returncode))
        elif p.returncode != 0:
            sys.stderr.write('gen.py: exit %d for: %s\n' % (p.returncode, cmd))
    else:
        out.append(s)
    if is_run and (i + 1 == len(lines) or not lines[i + 1].startswith('%%RUN')):
        out.append(fence_close)
open(dst, 'w', encoding='utf-8').write('\n'.join(out) + '\n')
