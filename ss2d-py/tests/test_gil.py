"""The GIL is released while a kernel runs: Python code in another thread makes progress
during a call (works on one core too), and two kernel calls on two threads overlap."""

import threading
import time

import numpy as np

import ss2d


def big_inputs():
    rng = np.random.default_rng(0)
    b, d, l, n = 2, 384, 3136, 16
    u = rng.standard_normal((b, d, l)).astype(np.float32)
    A = -rng.uniform(0.5, 2, (d, n)).astype(np.float32)
    B = rng.standard_normal((b, 4, n, l)).astype(np.float32)
    return u, u, A, B, B


def test_python_thread_runs_during_a_kernel():
    args = big_inputs()
    counter = [0]
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            counter[0] += 1

    t = threading.Thread(target=spin)
    t.start()
    try:
        time.sleep(0.05)
        progress = []
        for _ in range(3):
            before = counter[0]
            t0 = time.perf_counter()
            ss2d.selective_scan_fn(*args, delta_softplus=True, threads=1)
            dt = time.perf_counter() - t0
            progress.append((counter[0] - before, dt))
    finally:
        stop.set()
        t.join()
    print(f"spinning thread progress during kernel calls (iterations, seconds): {progress}")
    # With the GIL held the spinning thread could only run at the switch interval before the
    # call starts (none: `before` is read with the GIL held); released, it runs for the whole call.
    assert max(p for p, _ in progress) > 20_000, progress


def test_two_kernel_threads_overlap():
    """Two calls on two Python threads: the same bits as one after the other, and the wall
    time of both (printed: about half the serial time on two free cores; the shared CI machine
    gives no such guarantee, so the speed is reported, not asserted)."""
    args = big_inputs()
    run = lambda: ss2d.selective_scan_fn(*args, delta_softplus=True, threads=1)  # noqa: E731
    want = run()
    t0 = time.perf_counter()
    for _ in range(4):
        run()
    serial = time.perf_counter() - t0
    results = [None] * 4

    def worker(i):
        for j in range(2):
            results[2 * i + j] = run()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    parallel = time.perf_counter() - t0
    print(f"four calls: serial {serial:.3f} s, on two threads {parallel:.3f} s "
          f"(overlap factor {serial / parallel:.2f}; 2 = full overlap on two free cores)")
    assert all(np.array_equal(r, want) for r in results)
