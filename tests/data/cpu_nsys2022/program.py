"""A CPU-only stand-in for a decode target, used to capture the nsys 2022.4 fixture.

It opens the same NVTX ranges as the real targets (domain "decodeprof": warmup, measured,
iteration, h2d, prefill, decode, step) with sleeps in place of GPU work, plus a little
file IO and a second thread, so Debian's Nsight Systems records NVTX and OS-runtime rows
without a GPU. Counts (with the defaults): 1 warmup + 3 measured iterations of 4 steps.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import nvtx

DOMAIN = "decodeprof"


def h2d(scratch: str) -> None:
    # push/pop rather than annotate: the targets use both styles.
    nvtx.push_range("h2d", domain=DOMAIN)
    with open(scratch, "wb") as f:
        f.write(os.urandom(64 * 1024))
        f.flush()
        os.fsync(f.fileno())
    with open(scratch, "rb") as f:
        f.read()
    nvtx.pop_range(domain=DOMAIN)


def iteration(steps: int, scratch: str) -> None:
    with nvtx.annotate("iteration", domain=DOMAIN):
        h2d(scratch)
        with nvtx.annotate("prefill", domain=DOMAIN):
            time.sleep(0.002)
        with nvtx.annotate("decode", domain=DOMAIN):
            for _ in range(steps):
                with nvtx.annotate("step", domain=DOMAIN):
                    time.sleep(0.001)


def background() -> None:
    # A start/end range on another thread: covers eventType 60 and a second thread.
    handle = nvtx.start_range("background", domain=DOMAIN)
    time.sleep(0.005)
    nvtx.end_range(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = os.path.join(tmp, "payload.bin")
        worker = threading.Thread(target=background, name="background")
        worker.start()
        with nvtx.annotate("warmup", domain=DOMAIN):
            for _ in range(args.warmup):
                iteration(args.steps, scratch)
        with nvtx.annotate("measured", domain=DOMAIN):
            for _ in range(args.iters):
                iteration(args.steps, scratch)
        worker.join()
        nvtx.mark("done", domain=DOMAIN)


if __name__ == "__main__":
    main()
