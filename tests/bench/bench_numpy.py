"""make bench: the emitted NumPy code for seed 003 against hand-written.

    bench_numpy.py MODULE N D R

MODULE is matdiff --format numpy -w U,V for
norm2(Y - X*U*V')^2 + lambda*norm2(U*V')^2 with n = p = q = N, d = D.
Prints the best of R runs of the emitted f, of a hand-written NumPy closed
form with the best bracketing (no p x q product: the Gram matrices U'U,
V'V), and, when PyTorch is installed, of torch autograd on the same
function (float64, CPU), with the ratios.  One BLAS thread
(OPENBLAS_NUM_THREADS=1, set by bench.sh), as the C benchmark.
"""
import importlib.util
import sys
import time

import numpy as np


def hand(lam, Y, X, U, V):
    XU = X @ U                      # n p d
    E = XU @ V.T - Y                # n d q
    UtU, VtV = U.T @ U, V.T @ V     # (p + q) d^2
    f = np.vdot(E, E) + lam * np.vdot(UtU, VtV)
    dU = 2.0 * (X.T @ (E @ V) + lam * (U @ VtV))     # n q d + p n d
    dV = 2.0 * (E.T @ XU + lam * (V @ UtU))          # q n d
    return f, dU, dV


def best(fn, r):
    t = []
    for _ in range(r):
        t0 = time.perf_counter()
        out = fn()
        t.append(time.perf_counter() - t0)
    return min(t), out


def main():
    path, n, d, r = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
        int(sys.argv[4])
    spec = importlib.util.spec_from_file_location("seed003", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rng = np.random.default_rng(3)
    lam = 0.3
    Y = rng.standard_normal((n, n))
    X = rng.standard_normal((n, n))
    U = rng.standard_normal((n, d))
    V = rng.standard_normal((n, d))
    te, out = best(lambda: mod.f(lam, Y, X, U, V), r)
    th, ref = best(lambda: hand(lam, Y, X, U, V), r)
    err = max(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
              for a, b in zip(out, ref))
    print("%-34s %10.2f ms" % ("emitted numpy (f, dU, dV)", te * 1e3))
    print("%-34s %10.2f ms   emitted/hand %.2fx (target 1.15x), "
          "agree to %.1e" % ("hand-written numpy", th * 1e3, te / th, err))
    try:
        import torch
    except ImportError:
        print("torch autograd: skipped (no python3-torch)")
        return
    torch.set_num_threads(1)
    tY, tX = torch.from_numpy(Y), torch.from_numpy(X)

    def autograd():
        tU = torch.from_numpy(U).requires_grad_()
        tV = torch.from_numpy(V).requires_grad_()
        f = torch.sum((tY - tX @ tU @ tV.T) ** 2) + \
            lam * torch.sum((tU @ tV.T) ** 2)
        f.backward()
        return f, tU.grad, tV.grad
    ta, _ = best(autograd, r)
    print("%-34s %10.2f ms   autograd/emitted %.2fx" %
          ("torch autograd (float64, 1 thread)", ta * 1e3, ta / te))


if __name__ == "__main__":
    main()
