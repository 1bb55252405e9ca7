#!/usr/bin/env python3
"""The ss2d library pool and os.fork(), through ctypes (standard library only, no numpy).

    python3 ss2d-capi/examples/fork.py target/release/libss2d_capi.so

The parent runs a selective scan with n_threads = 2 (the library builds its pool), forks, and
the child runs the same call with n_threads = 2 and 4: it must finish within 20 s (the parent
kills it otherwise) with the parent's bits. This is what a PyTorch DataLoader worker or a
pre-forking server does. Exit status 0 when every check passes.
"""
import ctypes as C
import os
import sys
import time

from ss2d_abi import Exec, ScanInputs, Tensor, load_lib  # beside this script

B, D, L, N = 2, 40, 257, 16


def floats(n, seed, lo, hi):
    """A deterministic pseudo-random float array (an LCG)."""
    arr = (C.c_float * n)()
    s = seed
    for i in range(n):
        s = (s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        arr[i] = lo + (hi - lo) * ((s >> 40) / float(1 << 24))
    return arr


def tensor(arr, shape):
    strides = []
    acc = 1
    for n in reversed(shape):
        strides.insert(0, acc)
        acc *= n
    t = Tensor()
    t.data = C.cast(arr, C.c_void_p)
    t.ndim = len(shape)
    for i, (n, s) in enumerate(zip(shape, strides)):
        t.shape[i] = n
        t.strides[i] = s
    return t


def main():
    lib = load_lib(sys.argv[1])
    u = floats(B * D * L, 1, -1.0, 1.0)
    delta = floats(B * D * L, 2, -3.0, 0.5)
    a = floats(D * N, 3, -3.0, -0.1)
    bm = floats(B * N * L, 4, -1.0, 1.0)
    cm = floats(B * N * L, 5, -1.0, 1.0)
    keep = [
        tensor(u, [B, D, L]),
        tensor(delta, [B, D, L]),
        tensor(a, [D, N]),
        tensor(bm, [B, N, L]),
        tensor(cm, [B, N, L]),
    ]
    inputs = ScanInputs()
    inputs.u, inputs.delta, inputs.A, inputs.B, inputs.C = (C.pointer(t) for t in keep)
    inputs.delta_softplus = 1

    def scan(threads):
        out = (C.c_float * (B * D * L))()
        t_out = tensor(out, [B, D, L])
        ex = Exec()
        ex.n_threads = threads
        s = lib.ss2d_selective_scan(C.byref(inputs), C.byref(t_out), None, C.byref(ex))
        if s != 0:
            raise RuntimeError("ss2d_selective_scan: %s" % lib.ss2d_last_error().decode())
        return bytes(out)

    want = scan(1)
    failures = 0
    if scan(2) != want:
        print("FAIL threads: n_threads=2 differs from the calling thread")
        failures += 1
    else:
        print("ok   threads: n_threads=2 == sequential (bitwise)")
    sys.stdout.flush()

    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for threads in (2, 4):
                if scan(threads) != want:
                    print("FAIL fork: the child's call with n_threads=%d differs" % threads)
                    code = 1
        except Exception as e:  # noqa: BLE001 - any failure is the child's exit status
            print("FAIL fork: %s" % e)
            code = 1
        sys.stdout.flush()
        os._exit(code)

    deadline = time.monotonic() + 20.0
    status = None
    while time.monotonic() < deadline:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            status = st
            break
        time.sleep(0.02)
    if status is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        print("FAIL fork: the child's call did not return within 20 s (killed)")
        failures += 1
    elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        print("ok   fork: the child's calls with n_threads=2, 4 finished, same bits")
    else:
        print("FAIL fork: the child exited with status %d" % status)
        failures += 1
    if scan(2) != want:
        print("FAIL fork: the parent's call after the fork differs")
        failures += 1
    print("fork.py: %d failures" % failures)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
