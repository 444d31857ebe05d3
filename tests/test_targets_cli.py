"""`python -m decodeprof_targets`, `decodeprof targets|run|bench` end to end on the CPU, and the registry."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from decodeprof_targets import registry

FAST = ["--device", "cpu", "--batch", "2", "--prompt-len", "8", "--steps", "3", "--hidden", "32",
        "--vocab", "64", "--iters", "2", "--warmup", "1"]


def decodeprof(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "decodeprof", *args], capture_output=True, text=True)


def test_registry_modules_all_import_and_build():
    for info in registry.TARGETS.values():
        module = info.load()
        assert callable(module.build), info.label


def test_targets_lists_every_label():
    proc = decodeprof("targets")
    assert proc.returncode == 0
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list(registry.TARGETS)


def test_targets_single_gpu_names_are_what_make_profile_all_and_bench_run():
    proc = decodeprof("targets", "--single-gpu", "--names")
    assert proc.returncode == 0, proc.stderr
    labels = proc.stdout.split()
    assert labels == [t.label for t in registry.TARGETS.values() if t.launcher != "torchrun"]
    assert "multigpu" not in labels and {"baseline", "fp8", "persistent_smem"} <= set(labels)


def test_run_json_prints_the_metrics_json_alone(tmp_path: Path):
    proc = decodeprof("run", "baseline", *FAST, "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["target"] == "baseline" and result["config"]["batch"] == 2
    for key in ("ttft_ms", "tpot_ms", "decode_ms", "total_ms", "tokens_per_s", "weight_gbps"):
        assert set(result["metrics"][key]) == {"min", "median", "max"}


@pytest.mark.parametrize("args, message", [
    (["run", "nope"], "unknown target 'nope'"),
    (["run", "graph", "--device", "cpu"], "needs a CUDA GPU"),
    (["run", "baseline", "--device", "cpu", "--steps", "-3"], "--steps must be positive"),
    (["bench", "nope"], "unknown target(s) nope"),
    (["run", "baseline", "--device", "cpu", "--bogus"], "error: unrecognized arguments: --bogus"),
    (["run", "baseline", "--device", "cpu", "--dtype", "fp8"], "error: argument --dtype: invalid choice: 'fp8'"),
    (["run", "baseline", "--device", "cpu", "--vocab", "1"], "--vocab must be at least 2"),
    (["run", "multigpu", "--gpus", "3", "--device", "cpu", "--hidden", "64", "--vocab", "256"],
     "error: tensor parallelism over 3 processes needs sizes divisible by 3"),
])
def test_bad_input_ends_with_one_clear_error(args, message):
    proc = decodeprof(*args)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and "usage:" not in proc.stderr and "ChildFailedError" not in proc.stderr


def test_bench_prints_speedups_and_updates_then_checks_expectations(tmp_path: Path):
    exp = tmp_path / "cpu.json"
    args = " ".join(FAST)
    proc = decodeprof("bench", "baseline", "--args", args, "--update", "--expectations", str(exp),
                      "--json-out", str(tmp_path / "all.json"))
    assert proc.returncode == 0, proc.stderr
    assert "decode ×" in proc.stdout and re.search(r"\s1\.00\s", proc.stdout)  # baseline against itself
    assert "median (min-max) over 2 iterations" in " ".join(proc.stdout.split())  # the title may wrap
    written = json.loads(exp.read_text())
    assert set(written["targets"]) == {"baseline"}  # merging with other targets: test_expectations
    assert written["targets"]["baseline"]["provenance"]["card"] == "cpu"

    # Make the expectation unreachable: --check must fail and name target and metric. (A fixed
    # huge value, not a multiple of the first run: on a loaded machine one run can be 100x slower.)
    written["targets"]["baseline"]["tokens_per_s"]["median"] = 1e30
    exp.write_text(json.dumps(written))
    proc = decodeprof("bench", "baseline", "--args", args, "--check", "--expectations", str(exp))
    assert proc.returncode == 1
    assert "baseline: tokens_per_s" in proc.stderr


def test_bench_csv_on_stdout_and_json_to_a_file(tmp_path: Path):
    proc = decodeprof("bench", "baseline", "--args", " ".join(FAST), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    header, row = proc.stdout.strip().splitlines()
    fields = header.split(",")
    assert fields[:4] == ["target", "card", "iterations", "ttft_ms_median"] and "unstable" in fields
    values = dict(zip(fields, row.split(",")))
    assert values["target"] == "baseline" and values["iterations"] == "2"
    assert float(values["tpot_ms_min"]) <= float(values["tpot_ms_median"]) <= float(values["tpot_ms_max"])

    out = tmp_path / "bench"
    proc = decodeprof("bench", "baseline", "--args", " ".join(FAST), "--format", "table,json,csv", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.with_suffix(".json").read_text())["baseline"]["target"] == "baseline"
    assert out.with_suffix(".csv").read_text().startswith("target,card,")
    assert "TPOT" in proc.stdout  # the table still on the terminal


def test_bench_json_out_into_a_new_folder(tmp_path: Path):
    out = tmp_path / "new" / "sub" / "all.json"
    proc = decodeprof("bench", "baseline", "--args", " ".join(FAST), "--json-out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(out.read_text())) == {"baseline"}


def test_run_and_bench_json_out_never_overwrite_a_trace(tmp_path):
    """--json-out at an export (here under a .json name: recognised by its header) is refused
    before the run, and the file is left as it was."""
    victim = tmp_path / "metrics.json"
    victim.write_bytes((Path(__file__).parent / "data" / "h100" / "graph" / "trace.sqlite").read_bytes())
    before = victim.read_bytes()
    run = decodeprof("run", "baseline", *FAST, "--json-out", str(victim))
    bench = decodeprof("bench", "baseline", "--args", " ".join(FAST), "--json-out", str(victim))
    for proc in (run, bench):
        assert proc.returncode == 2, proc.stdout
        assert "holds a trace" in proc.stderr and "Traceback" not in proc.stderr
    assert victim.read_bytes() == before


def test_a_target_without_torch_says_which_extra_to_install(tmp_path):
    """On an analysis-only install (no torch), a target ends in one error line naming the extra."""
    script = tmp_path / "no_torch.py"
    script.write_text(
        "import runpy, sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'triton'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['decodeprof_targets', 'baseline', '--device', 'cpu']\n"
        "runpy.run_module('decodeprof_targets', run_name='__main__')\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "needs torch" in proc.stderr and "decodeprof[gpu]" in proc.stderr
