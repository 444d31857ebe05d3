"""decodeprof_targets.harness.metrics on hand-made iteration rows (expected values worked out by hand),
and the phase order of a real, tiny CPU run."""

from __future__ import annotations

import pytest

from decodeprof_targets import harness, workload
from decodeprof_targets.loop import EagerVariant

CFG = workload.Config(batch=4, prompt_len=7, steps=8, hidden=32, vocab=50, dtype="fp32", device="cpu", warmup=1, iters=4)
BYTES = 1_000_000  # weight bytes per decode step


def row(decode, total, h2d=0.5, ttft=1.0):
    return {"h2d_ms": h2d, "ttft_ms": ttft, "decode_ms": decode, "total_ms": total}


# batch 4 x steps 8 = 32 decode tokens; 4 x (8 + 1) = 36 new tokens per iteration
ROWS = [row(1.0, 2.0, 0.5, 1.0), row(2.0, 4.0, 0.25, 0.75), row(4.0, 5.0, 1.0, 1.5), row(8.0, 10.0, 0.75, 1.25)]


def test_per_token_and_throughput_metrics():
    m = harness.metrics(CFG, BYTES, ROWS)
    # tpot = decode / steps: 0.125, 0.25, 0.5, 1.0 ms
    assert m["tpot_ms"] == pytest.approx({"min": 0.125, "median": 0.375, "max": 1.0})
    # tokens/s = batch x steps / decode s: 32000, 16000, 8000, 4000
    assert m["tokens_per_s"] == pytest.approx({"min": 4000.0, "median": 12000.0, "max": 32000.0})
    # e2e = batch x (steps + 1) / total s: 18000, 9000, 7200, 3600
    assert m["e2e_tokens_per_s"] == pytest.approx({"min": 3600.0, "median": 8100.0, "max": 18000.0})
    # weight GB/s = bytes x steps / decode s / 1e9: 8, 4, 2, 1
    assert m["weight_gbps"] == pytest.approx({"min": 1.0, "median": 3.0, "max": 8.0})


def test_phase_summaries_are_min_median_max_over_rows():
    m = harness.metrics(CFG, BYTES, ROWS)
    assert m["decode_ms"] == {"min": 1.0, "median": 3.0, "max": 8.0}
    assert m["total_ms"] == {"min": 2.0, "median": 4.5, "max": 10.0}
    assert m["h2d_ms"] == {"min": 0.25, "median": 0.625, "max": 1.0}
    assert m["ttft_ms"] == {"min": 0.75, "median": 1.125, "max": 1.5}
    # the medians of the per-row rates, not the rate at the median decode time (32 / 3 ms)
    assert m["tokens_per_s"]["median"] != pytest.approx(32 / 3e-3)


def test_rows_without_decode_time_give_no_decode_rates():
    m = harness.metrics(CFG, BYTES, [row(None, 2.0), row(None, 4.0)])
    for key in ("decode_ms", "tpot_ms", "tokens_per_s", "weight_gbps"):
        assert key not in m
    assert m["e2e_tokens_per_s"] == pytest.approx({"min": 9000.0, "median": 13500.0, "max": 18000.0})
    assert m["total_ms"] == {"min": 2.0, "median": 3.0, "max": 4.0}


def test_rows_without_decode_time_are_left_out_of_the_decode_rates():
    m = harness.metrics(CFG, BYTES, [row(None, 2.0), row(2.0, 4.0), row(4.0, 5.0)])
    assert m["decode_ms"] == {"min": 2.0, "median": 3.0, "max": 4.0}
    assert m["tpot_ms"] == pytest.approx({"min": 0.25, "median": 0.375, "max": 0.5})
    assert m["tokens_per_s"] == pytest.approx({"min": 8000.0, "median": 12000.0, "max": 16000.0})
    assert m["weight_gbps"] == pytest.approx({"min": 2.0, "median": 3.0, "max": 4.0})
    # e2e counts every iteration: 18000, 9000, 7200
    assert m["e2e_tokens_per_s"] == pytest.approx({"min": 7200.0, "median": 9000.0, "max": 18000.0})


SMALL = workload.Config(batch=3, prompt_len=7, steps=5, hidden=32, vocab=50, dtype="fp32", device="cpu", warmup=1, iters=3)


def test_cpu_run_phases_are_ordered():
    result = harness.run("baseline", lambda cfg, w: EagerVariant(cfg, w, pinned=False), SMALL)
    rows = result["iterations"]
    assert len(rows) == SMALL.iters
    for r in rows:
        assert None not in r.values()
        assert 0 <= r["h2d_ms"] <= r["ttft_ms"] <= r["total_ms"]
        assert r["ttft_ms"] + r["decode_ms"] <= r["total_ms"] + 1e-6
    assert result["metrics"]["e2e_tokens_per_s"]["median"] > 0
