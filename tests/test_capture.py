"""`decodeprof profile`: the real CPU-only chain with nsys, and each failure for real.

The programs profiled here are small Python scripts written by the tests (they accept the
target contract's --device and --json-out), except one test that profiles the project's own
`baseline` target on --device cpu. Nothing is mocked: nsys, the export and the crashes are real.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime
from pathlib import Path

import pytest

from decodeprof import tools
from decodeprof.capture import new_run_dir, profile_target
from decodeprof.capture.driver import launcher, target_device
from decodeprof.capture.export import export_sqlite
from decodeprof.errors import CaptureError, ToolNotFoundError

STEP_TIMEOUT_S = 300  # a hung profiler fails the test instead of hanging CI

PROGRAM = '''
import argparse, json, os, sys, tempfile, time
import nvtx

p = argparse.ArgumentParser()
p.add_argument("--device", default="cpu")
p.add_argument("--steps", type=int, default=3)
p.add_argument("--iters", type=int, default=2)
p.add_argument("--warmup", type=int, default=1)
p.add_argument("--json-out")
p.add_argument("--fail", choices=["raise", "usage"])
a = p.parse_args()
if a.fail == "usage":
    print("error: --steps must be positive", file=sys.stderr)
    sys.exit(2)
D = "decodeprof"

def iteration():
    with nvtx.annotate("iteration", domain=D):
        nvtx.push_range("h2d", domain=D)
        with tempfile.TemporaryFile() as f:
            f.write(b"x" * 4096); f.flush(); os.fsync(f.fileno())
        nvtx.pop_range(domain=D)
        with nvtx.annotate("decode", domain=D):
            for _ in range(a.steps):
                with nvtx.annotate("step", domain=D):
                    time.sleep(0.001)

with nvtx.annotate("warmup", domain=D):
    for _ in range(a.warmup):
        iteration()
if a.fail == "raise":
    raise RuntimeError("boom: the target crashed after warm-up")
with nvtx.annotate("measured", domain=D):
    for _ in range(a.iters):
        iteration()
json.dump({"steps": a.steps, "iters": a.iters}, open(a.json_out, "w"))
'''


@pytest.fixture
def program(tmp_path) -> list[str]:
    path = tmp_path / "small_target.py"
    path.write_text(PROGRAM)
    return [sys.executable, str(path)]


@pytest.fixture
def nsys() -> Path:
    try:
        path = tools.find_nsys()
        tools.tool_version(path)
    except ToolNotFoundError as exc:
        pytest.skip(f"nsys unavailable: {exc.message} (run `bash scripts/install_nsys.sh` as root on Debian 12)")
    return path


def _ranges(sqlite: Path) -> dict[str, int]:
    with sqlite3.connect(sqlite) as con:
        rows = con.execute(
            "SELECT coalesce(e.text, s.value), count(*) FROM NVTX_EVENTS e LEFT JOIN StringIds s ON e.textId = s.id "
            "WHERE e.eventType = (SELECT id FROM ENUM_NSYS_EVENT_TYPE WHERE name = 'NvtxPushPopRange') GROUP BY 1"
        ).fetchall()
    return dict(rows)


@pytest.mark.nsys
def test_cpu_capture_chain_records_our_ranges(nsys, program, tmp_path):
    from decodeprof.commands.profile import analyse_run

    run = profile_target("small", ["--device", "cpu", "--steps", "3", "--iters", "2"], out_dir=tmp_path / "runs",
                         command=program, timeout_s=STEP_TIMEOUT_S, analyse=analyse_run)
    assert run.parent == tmp_path / "runs" and run.name.startswith("small-")
    for name in ("trace.nsys-rep", "trace.sqlite", "metrics.json", "run.json", "logs/nsys.log", "logs/export.log",
                 "report.html"):
        assert (run / name).is_file(), name
    # 1 warm-up + 2 measured iterations of 3 steps; counted from the export itself.
    assert _ranges(run / "trace.sqlite") == {
        "warmup": 1, "measured": 1, "iteration": 3, "h2d": 3, "decode": 3, "step": 9,
    }
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "ok" and record["device"] == "cpu"
    assert record["tools"]["nsys"]["version"] == tools.tool_version(nsys)
    argv = record["steps"][0]["argv"]
    assert "--trace=nvtx,osrt" in argv and "--sample=none" in argv
    assert not any(a.startswith("--capture-range") for a in argv)  # cannot fire without CUDA
    assert argv[-2:] == ["--json-out", str(run / "metrics.json")]
    assert json.loads((run / "metrics.json").read_text()) == {"steps": 3, "iters": 2}
    # then the same command without a profiler: the timings the report shows
    unprofiled = next(s for s in record["steps"] if s["name"] == "unprofiled")
    assert unprofiled["argv"][-2:] == ["--json-out", str(run / "metrics.unprofiled.json")]
    program = unprofiled["argv"][:-2]  # the same target command the nsys step ran, profiler left out
    assert argv[-len(program) - 2:-2] == program
    assert json.loads((run / "metrics.unprofiled.json").read_text()) == {"steps": 3, "iters": 2}


@pytest.mark.nsys
def test_profile_cli_on_the_real_baseline_target(nsys, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "decodeprof", "profile", "baseline", "--out", str(tmp_path),
         "--", "--device", "cpu", "--steps", "2", "--iters", "1", "--warmup", "1"],
        capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr
    (run,) = tmp_path.iterdir()
    ranges = _ranges(run / "trace.sqlite")
    assert ranges["measured"] == 1 and ranges["warmup"] == 1
    assert {"iteration", "decode", "step"} <= set(ranges)
    assert json.loads((run / "metrics.json").read_text())["target"] == "baseline"
    assert f"done: {run}" in proc.stderr
    from decodeprof.load import load_trace

    trace = load_trace(run)  # the unprofiled run's timings are the ones shown
    shown, source = trace.timings()
    written = json.loads((run / "metrics.unprofiled.json").read_text())["metrics"]
    assert source == "unprofiled run" and {k: t.median for k, t in shown.items()} == {k: v["median"] for k, v in written.items()}


@pytest.mark.nsys
@pytest.mark.slow
def test_gpus_2_launches_torchrun_under_one_nsys(nsys, tmp_path):
    pytest.importorskip("torch")
    run = profile_target("baseline", ["--device", "cpu", "--steps", "2", "--iters", "1", "--warmup", "1"],
                         out_dir=tmp_path, gpus=2, timeout_s=STEP_TIMEOUT_S)
    with sqlite3.connect(run / "trace.sqlite") as con:
        pids = con.execute("SELECT DISTINCT globalTid >> 24 FROM NVTX_EVENTS e JOIN StringIds s ON e.textId = s.id "
                           "WHERE s.value = 'measured'").fetchall()
    assert len(pids) == 2  # one measured range per rank, both in the one trace
    ranks = [json.loads((run / name).read_text())["target"] for name in ("metrics.json", "metrics.rank1.json")]
    assert ranks == ["baseline", "baseline"]  # one whole file per replica
    argv = json.loads((run / "run.json").read_text())["steps"][0]["argv"]
    assert argv[argv.index("torch.distributed.run") + 1:][:3] == ["--standalone", "--nproc-per-node", "2"]


@pytest.mark.nsys
def test_target_that_crashes_fails_the_nsys_step_and_keeps_artefacts(nsys, program, tmp_path):
    with pytest.raises(CaptureError) as info:
        profile_target("crash", ["--device", "cpu", "--fail", "raise"], out_dir=tmp_path / "runs", command=program,
                       timeout_s=STEP_TIMEOUT_S)
    assert info.value.message == "step 'nsys' failed: exit status 1"
    assert "reproduce without the profiler" in info.value.hint
    (run,) = (tmp_path / "runs").iterdir()
    log = (run / "logs" / "nsys.log").read_text()
    assert "RuntimeError: boom: the target crashed after warm-up" in log
    record = json.loads((run / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == info.value.message
    assert record["steps"][0]["exit_status"] == 1


@pytest.mark.nsys
def test_target_usage_error_is_quoted_in_the_message(nsys, program, tmp_path):
    with pytest.raises(CaptureError) as info:
        profile_target("usage", ["--device", "cpu", "--fail", "usage"], out_dir=tmp_path, command=program,
                       timeout_s=STEP_TIMEOUT_S)
    assert info.value.message == "step 'nsys' failed: exit status 2 (target said: --steps must be positive)"


@pytest.mark.nsys
def test_export_of_a_corrupt_report_fails_the_export_step(nsys, tmp_path):
    """A report with nsys's header but a damaged body goes to nsys, which fails (logged); a file
    without the header is refused before nsys runs."""
    rep = tmp_path / "trace.nsys-rep"
    rep.write_bytes(b"NVIDIA Tegra Profiler Report 1.\n" + b"this is not an Nsight Systems report\n" * 100)
    with pytest.raises(CaptureError) as info:
        export_sqlite(rep, tmp_path / "export.log")
    assert info.value.message.startswith("step 'export' failed:")
    assert (tmp_path / "export.log").read_text().startswith(f"$ {nsys} export")
    assert not (tmp_path / "trace.sqlite").exists()
    rep.write_bytes(b"this is not an Nsight Systems report\n" * 100)
    (tmp_path / "export.log").unlink()
    with pytest.raises(CaptureError, match="step 'export' failed: .* not an Nsight Systems report"):
        export_sqlite(rep, tmp_path / "export.log")
    assert not (tmp_path / "export.log").exists() and not (tmp_path / "trace.sqlite").exists()


@pytest.mark.nsys
def test_nsys_session_that_fails_to_start_is_retried_once(nsys, program, tmp_path, monkeypatch):
    """nsys 2022.4 sometimes exits with "Local Endpoint is not available" before running the
    target. A wrapper in front of the real nsys produces that failure once; the retry (logged
    in the same nsys.log) must then capture normally."""
    flag, wrapper = tmp_path / "failed-once", tmp_path / "nsys"
    wrapper.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        if [ "$1" = profile ] && [ "$2" != --help ] && [ ! -e {flag} ]; then
          touch {flag}
          echo "[QuadDCommon::tag_message*] = Local Endpoint is not available." >&2
          exit 1
        fi
        exec {nsys} "$@"
        """))
    wrapper.chmod(0o755)
    monkeypatch.setenv("NSYS", str(wrapper))
    run = profile_target("small", ["--device", "cpu"], out_dir=tmp_path / "runs", command=program,
                         timeout_s=STEP_TIMEOUT_S)
    assert flag.exists() and (run / "trace.sqlite").is_file()
    log = (run / "logs" / "nsys.log").read_text()
    assert log.count("\n$ ") + log.startswith("$ ") == 2 and "Local Endpoint is not available" in log
    assert _ranges(run / "trace.sqlite").get("step", 0) > 0


def test_missing_nsys_fails_before_any_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("NSYS", "/nonexistent")
    proc = subprocess.run(
        [sys.executable, "-m", "decodeprof", "profile", "baseline", "--out", str(tmp_path / "runs"), "--", "--device", "cpu"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "error: $NSYS points to /nonexistent, which is not an executable file" in proc.stderr
    assert "hint: install Nsight Systems" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_ncu_is_named(monkeypatch, program, tmp_path):
    monkeypatch.setenv("NCU", "/nonexistent/ncu")
    with pytest.raises(ToolNotFoundError, match=r"\$NCU points to /nonexistent/ncu"):
        profile_target("small", ["--device", "cpu"], out_dir=tmp_path, nsys=False, ncu=True, command=program)


def test_without_nsys_the_target_runs_plainly(program, tmp_path):
    run = profile_target("plain", ["--device", "cpu"], out_dir=tmp_path, nsys=False, command=program,
                         timeout_s=STEP_TIMEOUT_S)
    assert json.loads((run / "metrics.json").read_text()) == {"steps": 3, "iters": 2}
    record = json.loads((run / "run.json").read_text())
    assert [s["name"] for s in record["steps"]] == ["target"] and record["tools"] == {}


def test_plain_run_of_a_crashing_target_fails_the_target_step(program, tmp_path):
    with pytest.raises(CaptureError) as info:
        profile_target("crash", ["--device", "cpu", "--fail", "raise"], out_dir=tmp_path, nsys=False,
                       command=program, timeout_s=STEP_TIMEOUT_S)
    assert info.value.message == "step 'target' failed: exit status 1"


def test_hung_step_is_killed_at_the_timeout(tmp_path):
    hang = [sys.executable, "-c", "import time; time.sleep(60)"]
    with pytest.raises(CaptureError) as info:
        profile_target("hang", [], out_dir=tmp_path, nsys=False, command=hang, timeout_s=1)
    assert info.value.message == "step 'target' failed: exit status 124"


def test_run_folders_are_never_reused(tmp_path):
    now = datetime(2026, 11, 25, 13, 0, 0)
    first = new_run_dir(tmp_path, "graph", now)
    (first / "trace.nsys-rep").write_bytes(b"keep me")
    second = new_run_dir(tmp_path, "graph", now)
    third = new_run_dir(tmp_path, "graph", now)
    assert [p.name for p in (first, second, third)] == ["graph-20261125-130000", "graph-20261125-130000-2",
                                                        "graph-20261125-130000-3"]
    assert (first / "trace.nsys-rep").read_bytes() == b"keep me"
    assert all((p / "logs").is_dir() for p in (first, second, third))


def test_label_with_a_path_separator_is_refused(tmp_path):
    with pytest.raises(CaptureError, match="not a plain name"):
        new_run_dir(tmp_path, "../escape")


def test_device_and_launcher_follow_the_target_contract():
    assert target_device([]) == "cuda"
    assert target_device(["--device", "cpu"]) == "cpu"
    assert target_device(["--steps", "4", "--device=cpu"]) == "cpu"
    assert launcher("graph", 1, "cuda", None) == ([sys.executable, "-m", "decodeprof_targets", "graph"], None)
    argv, env = launcher("baseline", 2, "cpu", None)
    assert argv[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert env["NCCL_NVLS_ENABLE"] == "0"
    argv, env = launcher("multigpu", 1, "cuda", None)  # a torchrun target goes through torchrun even on one GPU
    assert "torch.distributed.run" in argv and env["NCCL_NVLS_ENABLE"] == "0"
    with pytest.raises(ValueError):
        launcher("x", 2, "cuda", ["prog"])


def test_profile_help_runs():
    proc = subprocess.run([sys.executable, "-m", "decodeprof", "profile", "--help"], capture_output=True, text=True,
                          timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0
    assert "--no-nsys" in proc.stdout and "--ncu" in proc.stdout and "--gpus" in proc.stdout


@pytest.mark.gpu
@pytest.mark.nsys
def test_gpu_capture_records_kernels_inside_the_capture_range(nsys, tmp_path):
    run = profile_target("baseline", ["--steps", "4", "--iters", "2", "--warmup", "1"], out_dir=tmp_path)
    with sqlite3.connect(run / "trace.sqlite") as con:
        assert con.execute("SELECT count(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0] > 0
    ranges = _ranges(run / "trace.sqlite")
    assert "warmup" not in ranges and ranges["measured"] == 1  # capture range = measured iterations only
    record = json.loads((run / "run.json").read_text())
    assert "--capture-range=cudaProfilerApi" in record["steps"][0]["argv"]
    assert record["gpu"] and record["gpu"][0]["name"]


@pytest.mark.gpu
def test_gpu_ncu_run_writes_decode_kernel_counters(tmp_path):
    try:
        tools.find_ncu()
    except ToolNotFoundError as exc:
        pytest.skip(exc.message)
    run = profile_target("baseline", ["--steps", "4"], out_dir=tmp_path, nsys=False, ncu=True)
    text = (run / "ncu.csv").read_text()
    assert "dram__bytes_read.sum" in text and "gpu__time_duration.sum" in text
    assert json.loads((run / "run.json").read_text())["ncu"]["clock_control"] == "none"
