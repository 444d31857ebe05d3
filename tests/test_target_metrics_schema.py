"""The metrics JSON's schema (decodeprof/load/target_metrics.py): every shipped file passes; a
wrong type, an impossible number or deep nesting is one error naming the file and the field,
before any analysis reads it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from decodeprof.errors import TraceFileError
from decodeprof.load import target_metrics

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = sorted(DATA.glob("*/*/metrics*.json"))
GRAPH = DATA / "h200" / "graph" / "metrics.json"


def test_every_shipped_metrics_file_passes():
    assert len(SHIPPED) >= 24
    for path in SHIPPED:
        assert target_metrics.read(path).document == json.loads(path.read_text()), path


@pytest.mark.parametrize("change, field", [
    (lambda d: d["config"].__setitem__("steps", 0), "config.steps"),
    (lambda d: d["config"].__setitem__("batch", "4"), "config.batch"),
    (lambda d: d["config"].__setitem__("iters", 2.5), "config.iters"),
    (lambda d: d.__setitem__("weight_bytes_per_step", -1), "weight_bytes_per_step"),
    (lambda d: d["metrics"]["tpot_ms"].__setitem__("median", float("nan")), "metrics.tpot_ms.median"),
    (lambda d: d["metrics"]["tpot_ms"].__setitem__("min", 1e9), "metrics.tpot_ms"),
    (lambda d: d["metrics"].__setitem__("ttft_ms", [1, 2]), "metrics.ttft_ms"),
    (lambda d: d["device"].__setitem__("peak_gbps", -5), "device.peak_gbps"),
    (lambda d: d["device"].__setitem__("name", 7), "device.name"),
    (lambda d: d["correctness"].__setitem__("token_agreement", 3), "correctness.token_agreement"),
    (lambda d: d.__setitem__("ranks", [{"rank": -1, "pid": 1}]), "ranks[0].rank"),
    (lambda d: d.__setitem__("config", []), "config"),
    (lambda d: d.__setitem__("active", "cuda_graph_decode"), "active"),
    (lambda d: d["metrics"]["tpot_ms"].update(min=1e9, max=None), "metrics.tpot_ms"),  # any two stated, in order
    (lambda d: d.__setitem__("slowest_rank", -2), "slowest_rank"),
    (lambda d: d.__setitem__("mode", 3), "mode"),
    (lambda d: d.__setitem__("ranks", [{"rank": 0, "metrics": {"decode_ms": {"median": -1}}}]), "ranks[0].metrics.decode_ms.median"),
])
def test_a_bad_field_is_one_error_naming_it(tmp_path, change, field):
    doc = copy.deepcopy(json.loads(GRAPH.read_text()))
    change(doc)
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(TraceFileError) as err:
        target_metrics.read(path)
    assert f"field {field} " in err.value.message and str(path) in err.value.message


def test_deep_nesting_and_non_json_are_one_error(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' + "[" * 50 + "]" * 50 + "}")
    with pytest.raises(TraceFileError, match="nested deeper"):
        target_metrics.read(deep)
    hostile = tmp_path / "hostile.json"
    hostile.write_text("[" * 200_000)
    with pytest.raises(TraceFileError, match="not a readable metrics JSON"):
        target_metrics.read(hostile)


def test_analyze_of_a_run_with_a_bad_metrics_file_says_which_field(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "trace.sqlite").write_bytes((DATA / "h200" / "graph" / "trace.sqlite").read_bytes())
    doc = json.loads(GRAPH.read_text())
    doc["config"]["steps"] = 0
    (run / "metrics.json").write_text(json.dumps(doc))
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "analyze", str(run)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "field config.steps must be an integer >= 1" in proc.stderr


def test_the_fields_read_are_parsed_once_into_types():
    """Readers use TargetMetrics as it is: the timings, the ranks, the device and the
    correctness come typed from the file, the rest of it kept as written."""
    dp2 = target_metrics.read(DATA / "cpu-multigpu/dp2/metrics.json")
    doc = dp2.document
    assert (dp2.target, dp2.mode, dp2.world_size, dp2.backend) == ("multigpu", "dp", 2, "gloo")
    assert dp2.median("tokens_per_s") == doc["metrics"]["tokens_per_s"]["median"]
    assert [(r.rank, r.pid) for r in dp2.ranks] == [(r["rank"], r["pid"]) for r in doc["ranks"]]
    assert dp2.ranks[1].timings["decode_ms"].median == doc["ranks"][1]["metrics"]["decode_ms"]["median"]
    graph = target_metrics.read(GRAPH)
    t = graph.timings["tpot_ms"]
    assert t.min <= t.median <= t.max and graph.weight_bytes_per_step == graph.document["weight_bytes_per_step"]
    assert graph.device_name == graph.document["device"]["name"] and graph.config["steps"] == 64
    assert not target_metrics.parse({}) and bool(graph)


def test_unstated_spread_stays_unstated():
    """A timing with only its median (or a null min/max) loads; its spread is unknown, never 1.0."""
    from decodeprof.findings.facts import _spread

    tm = target_metrics.parse({"metrics": {"tpot_ms": {"median": 1.0, "min": None}, "ttft_ms": {"median": 2.0}}})
    assert tm.timings["tpot_ms"].min is None and tm.timings["ttft_ms"].max is None
    assert _spread(tm.timings, "tpot_ms") is None and _spread(tm.timings, "ttft_ms") is None
    both = target_metrics.parse({"metrics": {"tpot_ms": {"min": 1.0, "median": 1.5, "max": 3.0}}})
    assert _spread(both.timings, "tpot_ms") == 3.0
