"""The ncu and nsys command lines, and how ncu's textual failures are classified.

ncu needs a GPU, so the CSV/log texts here are written by the tests (synthetic, and said so):
the ERR_NVGPUCTRPERM line is ncu's documented message; the CSV rows follow `--csv --page raw`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from decodeprof import tools
from decodeprof.capture import ncu, nsys
from decodeprof.errors import CaptureError, ToolNotFoundError

RAW_HEADER = '"ID","Process ID","Process Name","Kernel Name","gpu__time_duration.sum"\n"","","","","nsecond"\n'


def test_ncu_argv_filters_one_decode_range_at_real_clocks():
    argv = ncu.ncu_argv(Path("/opt/ncu"), Path("/run/ncu.csv"))
    assert argv[0] == "/opt/ncu"
    assert argv[argv.index("--nvtx-include") + 1] == "decodeprof@measured/*/decode"
    assert "--nvtx" in argv
    assert argv[argv.index("--clock-control") + 1] == "none"
    assert argv[argv.index("--target-processes") + 1] == "all"  # torchrun children too
    assert [argv[i + 1] for i, a in enumerate(argv) if a == "--section"] == ["SpeedOfLight", "MemoryWorkloadAnalysis"]
    assert argv[argv.index("--metrics") + 1].split(",") == list(ncu.METRICS)
    assert argv[-5:] == ["--csv", "--page", "raw", "--log-file", "/run/ncu.csv"]


@pytest.mark.parametrize("given", [
    ["--steps", "8"],
    ["--warmup", "5", "--steps", "8", "--iters", "20"],
    ["--warmup=5", "--steps", "8", "--iters=20"],
])
def test_ncu_run_is_forced_to_one_measured_iteration(given):
    assert ncu.one_iteration(given) == ["--steps", "8", "--warmup", "1", "--iters", "1"]
    # the decode steps ncu replays are its own (a minute at the default), whatever the capture's
    assert ncu.one_iteration(["--steps=64", "--batch", "4"], steps=ncu.DEFAULT_STEPS) == [
        "--batch", "4", "--warmup", "1", "--iters", "1", "--steps", str(ncu.DEFAULT_STEPS)]


def test_counter_permission_error_names_the_fix(tmp_path):
    log = tmp_path / "ncu.log"
    log.write_text("==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU "
                   "Performance Counters on the target device 0.\n")
    with pytest.raises(CaptureError) as info:
        ncu.check_permission(tmp_path / "ncu.csv", log)
    assert "ERR_NVGPUCTRPERM" in info.value.message
    assert "NVreg_RestrictProfilingToAdminUsers=0" in info.value.hint and "root" in info.value.hint


def test_a_csv_without_kernel_rows_is_a_failure(tmp_path):
    csv = tmp_path / "ncu.csv"
    csv.write_text("==PROF== Disconnected from process 1234\n==WARNING== No kernels were profiled.\n")
    with pytest.raises(CaptureError, match="no kernel was profiled"):
        ncu.check_profiled(csv)
    csv.write_text(RAW_HEADER)  # header and units rows only
    with pytest.raises(CaptureError):
        ncu.check_profiled(csv)
    csv.write_text(RAW_HEADER + '"0","1234","python","gemv_kernel","5120"\n')
    ncu.check_profiled(csv)


def test_nsys_flags_on_cuda_and_cpu():
    cuda = nsys.profile_flags(cuda=True)
    assert cuda[0] == "--trace=cuda,nvtx,osrt"
    assert {"--cuda-graph-trace=node", "--capture-range=cudaProfilerApi", "--capture-range-end=stop",
            "--force-overwrite=false", "--sample=none", "--cpuctxsw=none"} <= set(cuda)
    cpu = nsys.profile_flags(cuda=False)
    assert cpu[0] == "--trace=nvtx,osrt" and not any("capture-range" in f for f in cpu)


@pytest.mark.nsys
def test_installed_nsys_supports_every_flag_we_ask_for():
    try:
        path = tools.find_nsys()
    except ToolNotFoundError as exc:
        pytest.skip(f"nsys not installed: {exc.message}")
    argv, dropped = nsys.profile_argv(path, Path("/tmp/x/trace"), cuda=True)
    assert dropped == []  # nsys 2022.4 and 2025.3 both list them in `nsys profile --help`
    assert argv[:2] == [str(path), "profile"] and argv[-2:] == ["-o", "/tmp/x/trace"]


# A stand-in for ncu (synthetic, and said so): prints a version, writes a raw-page CSV to its
# --log-file (or, with FAKE_NCU_PERM=1, ncu's counter-permission message) and runs the program
# after its own flags, as ncu does.
FAKE_NCU = r'''#!/bin/sh
if [ "$1" = "--version" ]; then echo "NVIDIA (R) Nsight Compute Command Line Profiler Version 2099.1 (fake)"; exit 0; fi
while [ "$1" != "--log-file" ]; do shift; done
csv="$2"; shift 2
if [ -n "$FAKE_NCU_PERM" ]; then
  echo "==ERROR== ERR_NVGPUCTRPERM - The user does not have permission to access NVIDIA GPU Performance Counters" > "$csv"
  exit 1
fi
printf '%s' '"ID","Process ID","Process Name","Kernel Name","gpu__time_duration.sum"
"","","","","nsecond"
"0","1","python3","gemv_kernel","1,234"
' > "$csv"
exec "$@"
'''
TARGET = r'''import json, sys
args = sys.argv[1:]
json.dump({"argv": args}, open(args[args.index("--json-out") + 1], "w"))
'''


def _fake_ncu(tmp_path: Path, monkeypatch) -> list[str]:
    ncu_path = tmp_path / "ncu"
    ncu_path.write_text(FAKE_NCU)
    ncu_path.chmod(0o755)
    monkeypatch.setenv("NCU", str(ncu_path))
    program = tmp_path / "target.py"
    program.write_text(TARGET)
    import sys

    return [sys.executable, str(program)]


def test_profile_ncu_writes_its_csv_and_its_own_metrics_file(tmp_path, monkeypatch):
    """The ncu step forces one measured iteration and writes ncu-target-metrics.json, never the
    run's metrics.json (a run under kernel replay says nothing about speed)."""
    import json

    from decodeprof.capture import profile_target

    command = _fake_ncu(tmp_path, monkeypatch)
    run = profile_target("small", ["--device", "cuda", "--steps", "8", "--iters", "5"], out_dir=tmp_path / "runs",
                         nsys=False, ncu=True, command=command, timeout_s=60)
    assert '"gemv_kernel","1,234"' in (run / "ncu.csv").read_text()
    argv = json.loads((run / "ncu-target-metrics.json").read_text())["argv"]
    assert argv[:8] == ["--device", "cuda", "--warmup", "1", "--iters", "1", "--steps", str(ncu.DEFAULT_STEPS)]
    assert not (run / "metrics.json").exists()
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["ncu"]["target_args"][-6:] == [
        "--warmup", "1", "--iters", "1", "--steps", str(ncu.DEFAULT_STEPS)]


def test_profile_ncu_without_counter_permission_names_the_fix(tmp_path, monkeypatch):
    import json

    from decodeprof.capture import profile_target

    command = _fake_ncu(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_NCU_PERM", "1")
    with pytest.raises(CaptureError, match="ERR_NVGPUCTRPERM") as err:
        profile_target("small", ["--device", "cuda"], out_dir=tmp_path / "runs", nsys=False, ncu=True,
                       command=command, timeout_s=60)
    assert "NVreg_RestrictProfilingToAdminUsers=0" in err.value.hint
    (run,) = (tmp_path / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
