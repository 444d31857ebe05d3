"""Regression logic of the expectations file."""

from __future__ import annotations

import datetime as dt

from decodeprof import expectations as exp


def result(tok_s: float, ttft: float, tpot: float) -> dict:
    return {
        "metrics": {"tokens_per_s": {"median": tok_s}, "ttft_ms": {"median": ttft}, "tpot_ms": {"median": tpot}},
        "device": {"name": "NVIDIA H100 80GB HBM3", "torch": "2.11", "cuda": "13.0"},
        "config": {"batch": 4},
    }


def test_gpu_kind_from_device_names():
    assert exp.gpu_kind("NVIDIA H100 80GB HBM3") == "h100"
    assert exp.gpu_kind("NVIDIA H200") == "h200"
    assert exp.gpu_kind("NVIDIA GH200 480GB") == "gh200"  # not checked against an H200's numbers
    assert exp.gpu_kind("NVIDIA L40") == "l40" and exp.gpu_kind("NVIDIA L40S") == "l40s"
    assert exp.gpu_kind("NVIDIA A100-SXM4-80GB") == "a100"
    assert exp.gpu_kind("cpu") == "cpu"


def test_within_tolerance_passes_and_beyond_fails_in_the_right_direction():
    expected = exp.updated(None, {"graph": result(1000.0, 2.0, 0.03)}, "cmd", dt.date(2026, 11, 25))
    assert exp.check(expected, {"graph": result(900.0, 2.2, 0.034)}) == []  # all within 15%
    found = exp.check(expected, {"graph": result(800.0, 2.5, 0.02)})
    assert [(r.target, r.metric) for r in found] == [("graph", "tokens_per_s"), ("graph", "ttft_ms")]
    assert "-20.0%" in found[0].sentence()


def test_update_keeps_other_targets_and_tolerances():
    first = exp.updated(None, {"a": result(1, 1, 1)}, "cmd", dt.date(2026, 1, 1))
    first["targets"]["a"]["tokens_per_s"]["tolerance"] = 0.05
    second = exp.updated(first, {"a": result(2, 1, 1), "b": result(3, 1, 1)}, "cmd2", dt.date(2026, 1, 2))
    assert second["targets"]["a"]["tokens_per_s"] == {"median": 2, "tolerance": 0.05}
    assert set(second["targets"]) == {"a", "b"}
    assert second["targets"]["b"]["provenance"]["date"] == "2026-01-02"


def test_targets_missing_from_the_file_are_not_checked():
    assert exp.check({"targets": {}}, {"new": result(1, 1, 1)}) == []


def test_a_malformed_file_is_one_error_naming_the_field(tmp_path):
    import json

    import pytest

    from decodeprof.errors import DecodeprofError

    good = exp.updated(None, {"graph": result(1000.0, 2.0, 0.03)}, "cmd", dt.date(2026, 11, 25))
    cases = [
        ({"targets": []}, "targets must be an object"),
        ({"targets": {"graph": {"tpot_ms": {"median": 0}}}}, "targets.graph.tpot_ms.median must be a positive number"),
        ({"targets": {"graph": {"tpot_ms": {"median": 1, "tolerance": -1}}}}, "tolerance must be a number >= 0"),
        ({"targets": {"graph": {"tpot_ms": {"median": "fast"}}}}, "median must be a positive number"),
    ]
    for doc, message in cases:
        path = tmp_path / "x.json"
        path.write_text(json.dumps(doc))
        with pytest.raises(DecodeprofError, match=message.replace(".", r"\.")):
            exp.load(path)
    path = tmp_path / "good.json"
    path.write_text(json.dumps(good))
    assert exp.load(path) == good
    path.write_text("[" * 100_000)
    with pytest.raises(DecodeprofError, match="not valid JSON"):
        exp.load(path)


def test_tolerance_bounds_how_many_times_worse_in_both_directions():
    expected = {"targets": {"g": {"tokens_per_s": {"median": 1000.0, "tolerance": 1.0},
                                  "tpot_ms": {"median": 0.1, "tolerance": 1.0}}}}
    assert exp.check(expected, {"g": result(501.0, 1, 0.199)}) == []  # under 2x worse
    found = exp.check(expected, {"g": result(499.0, 1, 0.201)})
    assert [r.metric for r in found] == ["tokens_per_s", "tpot_ms"]
