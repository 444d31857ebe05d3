"""What finding the decode steps costs, on a TILED trace of about 1M kernels.

    .venv/bin/python benchmarks/step_detection.py [--size 1000000] [--runs 3] [--before REV]

The trace is tiled from tests/data/h100/baseline (benchmarks/scale.py's `build`). Measured side
by side in one run, alternating, each a fresh process (medians, with min-max):
  cold analyze, this tree    `decodeprof analyze T --json > /dev/null`, no cache
  cold analyze, REV          the same from a worktree of REV (default: the commit before the
                             decode-step model), when given
and, in one process on the loaded trace (min of `--runs` timings, every per-trace memo cleared):
  step model, own ranges     analyses/steps.step_model (the trace's "step" ranges)
  step model, op pattern     the same with the NVTX ranges dropped: the repeating kernel
                             pattern found over every kernel of the trace
The ratios printed are step-model time / cold analyze time of this tree.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from scale import build  # noqa: E402

MODEL_BEFORE = "aea1f13"  # the last commit whose decode steps were cut in four places


def cold(target: Path, root: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(root)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(target), "--json"], stdout=subprocess.DEVNULL,
                   check=True, env=env, cwd=root)
    return time.perf_counter() - t0


def model_seconds(target: Path, runs: int) -> tuple[float, float, str, str]:
    import polars as pl

    from decodeprof.analyses.steps import step_model
    from decodeprof.load import load_trace

    trace = load_trace(target)
    bare = dataclasses.replace(trace, nvtx=trace.nvtx.filter(pl.lit(False)))
    own, pattern = [], []
    for _ in range(runs):
        for t, out in ((trace, own), (bare, pattern)):
            fresh = dataclasses.replace(t)  # a new object: the per-trace memos start empty
            t0 = time.perf_counter()
            model = step_model(fresh)
            out.append((time.perf_counter() - t0, model.summary))
    return min(s for s, _ in own), min(s for s, _ in pattern), own[0][1], pattern[0][1]


def spread(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, n={len(xs)})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=1_000_000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--before", default=MODEL_BEFORE, help="git revision to time beside this tree ('' for none)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="decodeprof-steps-") as tmp:
        target, info = build(a.size, Path(tmp))
        print(f"{info['label']}: {target.name}")
        before = None
        if a.before:
            before = Path(tmp) / "before"
            subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before), a.before],
                           check=True, capture_output=True)
        try:
            now, then = [], []
            for _ in range(a.runs):
                now.append(cold(target, REPO))
                if before is not None:
                    then.append(cold(target, before))
            own, pattern, own_text, pattern_text = model_seconds(target, a.runs)
        finally:
            if before is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(before)], check=False)
        base = statistics.median(now)
        print(f"cold analyze --json, this tree: {spread(now)}")
        if then:
            print(f"cold analyze --json, {a.before}: {spread(then)}  (this tree / {a.before}: {base / statistics.median(then):.3f}x)")
        print(f"step model, own ranges:  {own:.3f} s = {100 * own / base:.1f}% of cold analyze  [{own_text}]")
        print(f"step model, op pattern:  {pattern:.3f} s = {100 * pattern / base:.1f}% of cold analyze  [{pattern_text[:120]}]")


if __name__ == "__main__":
    main()
