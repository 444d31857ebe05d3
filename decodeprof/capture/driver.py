"""profile_target: target under nsys -> export -> analyses, and optionally a second run under ncu.

Every artefact lands in one fresh run folder; each failing step prints its log tail, marks
run.json failed, keeps what was made and raises CaptureError naming the step and the fix.
"""

from __future__ import annotations

import importlib
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

import decodeprof
from decodeprof.capture import ncu as ncu_cmd
from decodeprof.capture import nsys as nsys_cmd
from decodeprof.capture.export import export_sqlite
from decodeprof.capture.gpu import gpu_info
from decodeprof.capture.process import child_env, run_logged, show_tail, target_error_line
from decodeprof.capture.runfolder import RunRecord, new_run_dir
from decodeprof.errors import CaptureError, DecodeprofError
from decodeprof.tools import find_ncu, find_nsys, tool_version


def target_device(target_args: Sequence[str]) -> str:
    """The --device the target will use ("cuda" unless the flags say otherwise, as the targets do)."""
    args = list(target_args)
    for i, arg in enumerate(args):
        if arg == "--device" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--device="):
            return arg.split("=", 1)[1]
    return "cuda"


def launcher(label: str, gpus: int, command: Sequence[str] | None) -> list[str]:
    """The program prefix: `python -m targets LABEL`, through torchrun for several GPUs."""
    if command is not None:
        if gpus > 1:
            raise ValueError("a custom command cannot be launched on several GPUs")
        return [str(c) for c in command]
    if gpus > 1:  # torch.distributed.run is what the `torchrun` script runs
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(gpus), "-m", "targets", label]
    return [sys.executable, "-m", "targets", label]


def profile_target(
    label: str,
    target_args: Sequence[str] = (),
    *,
    out_dir: Path = Path("runs"),
    nsys: bool = True,
    ncu: bool = False,
    gpus: int = 1,
    command: Sequence[str] | None = None,
    console: Console | None = None,
) -> Path:
    """Profile one target; return its run folder.

    The target runs as `sys.executable -m targets LABEL [target_args] --json-out <run>/metrics.json`;
    `command` replaces `sys.executable -m targets LABEL` (tests run their own small programs).
    """
    console = console or Console(stderr=True, highlight=False)
    target_args = [str(a) for a in target_args]
    device = target_device(target_args)
    prefix = launcher(label, gpus, command)
    env = child_env({"NCCL_NVLS_ENABLE": "0"} if gpus > 1 else None)

    # Find the tools before making a folder: a missing tool leaves nothing behind.
    tools = {}
    if nsys:
        tools["nsys"] = find_nsys()
    if ncu:
        tools["ncu"] = find_ncu()
    run_dir = new_run_dir(Path(out_dir), label)
    record = RunRecord(
        run_dir, decodeprof_version=decodeprof.__version__, target=label, target_args=target_args,
        device=device, gpus=gpus, python=sys.executable,
        tools={name: {"path": str(p), "version": tool_version(p)} for name, p in tools.items()},
        gpu=gpu_info(),
    )
    console.print(f"run folder: {run_dir}", markup=False)
    try:
        sqlite = None
        if nsys:
            sqlite = _nsys_steps(run_dir, record, tools["nsys"], prefix, target_args, device, env, console)
        elif not ncu:
            program = [*prefix, *target_args, "--json-out", str(run_dir / "metrics.json")]
            _check(_run("target", [], program, run_dir, record, env, console), console)
        if ncu:
            _ncu_step(run_dir, record, tools["ncu"], prefix, target_args, env, console)
        if sqlite is not None:
            _analyse(sqlite, run_dir, record, console)
    except DecodeprofError as exc:
        record.finish("failed", error=exc.message, hint=exc.hint)
        console.print(f"partial artefacts kept in {run_dir}", markup=False)
        raise
    except BaseException as exc:  # a bug or Ctrl-C: still say in run.json that the run did not finish
        record.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error=repr(exc))
        raise
    record.finish("ok")
    console.print(f"[bold green]done:[/] {run_dir}")
    return run_dir


class _Step:
    """One finished tool step: what ran, its exit status and its log."""

    def __init__(self, name: str, program: list[str], status: int, log: Path) -> None:
        self.name, self.program, self.status, self.log = name, program, status, log


def _run(name: str, profiler: list[str], program: list[str], run_dir: Path, record: RunRecord,
         env: dict, console: Console) -> _Step:
    log = run_dir / "logs" / f"{name}.log"
    with console.status(f"{name}: running {' '.join(Path(a).name for a in (profiler or program)[:2])} ..."):
        status = run_logged(name, [*profiler, *program], log, record, env=env)
    return _Step(name, program, status, log)


def _check(step: _Step, console: Console) -> None:
    if step.status != 0:
        show_tail(console, step.name, step.log)
        said = target_error_line(step.log)
        raise CaptureError(
            f"step '{step.name}' failed: exit status {step.status}" + (f" (target said: {said})" if said else ""),
            f"see {step.log}; reproduce without the profiler: {shlex.join(step.program)}",
        )
    console.print(f"[green]ok[/] {step.name} (log: logs/{step.log.name})")


def _nsys_steps(run_dir, record, nsys, prefix, target_args, device, env, console) -> Path:
    cuda = device != "cpu"
    profiler, dropped = nsys_cmd.profile_argv(nsys, run_dir / "trace", cuda=cuda)
    record.set(nsys_dropped_flags=dropped)
    program = [*prefix, *target_args, "--json-out", str(run_dir / "metrics.json")]
    step = _run("nsys", profiler, program, run_dir, record, env, console)
    _check(step, console)
    log = step.log
    rep = run_dir / "trace.nsys-rep"
    if not rep.exists():
        show_tail(console, "nsys", log)
        why = ("the capture range never opened: the target did not call cudaProfilerStart()"
               if "--capture-range=cudaProfilerApi" in profiler else "nsys wrote no report")
        raise CaptureError(f"step 'nsys' failed: no {rep.name} ({why})",
                           f"see {log}; targets must bracket the measured iterations with cudaProfilerStart/Stop")
    export_log = run_dir / "logs" / "export.log"
    with console.status("export: nsys export --type sqlite ..."):
        try:
            sqlite = export_sqlite(rep, export_log)
        except CaptureError:
            record.add_step(name="export", command=_logged_command(export_log), log="logs/export.log", exit_status=1)
            show_tail(console, "export", export_log)
            raise
    record.add_step(name="export", command=_logged_command(export_log), log="logs/export.log", exit_status=0,
                    output=sqlite.name)
    console.print("[green]ok[/] export (log: logs/export.log)")
    return sqlite


def _logged_command(log: Path) -> str | None:
    # ensure_sqlite runs nsys itself and writes "$ <command>" first in the log.
    first = log.read_text(errors="replace").split("\n", 1)[0] if log.exists() else ""
    return first[2:] if first.startswith("$ ") else None


def _ncu_step(run_dir, record, ncu, prefix, target_args, env, console) -> None:
    csv_path = run_dir / "ncu.csv"
    forced = ncu_cmd.one_iteration(target_args)
    record.set(ncu={"clock_control": ncu_cmd.CLOCK_CONTROL, "nvtx_include": ncu_cmd.NVTX_INCLUDE,
                    "sections": list(ncu_cmd.SECTIONS), "metrics": list(ncu_cmd.METRICS),
                    "target_args": forced})
    # Its own metrics file: one forced iteration under replay says nothing about speed.
    program = [*prefix, *forced, "--json-out", str(run_dir / "ncu-target-metrics.json")]
    step = _run("ncu", ncu_cmd.ncu_argv(ncu, csv_path), program, run_dir, record, env, console)
    try:  # counter permission first: ncu then also exits non-zero, but this names the fix
        ncu_cmd.check_permission(csv_path, step.log)
        if step.status == 0:
            ncu_cmd.check_profiled(csv_path)
    except CaptureError:
        show_tail(console, "ncu", step.log)
        raise
    _check(step, console)


def _analyse(sqlite: Path, run_dir: Path, record: RunRecord, console: Console) -> None:
    """Print the analysis tables when the analysis side is installed (the lead wires the report)."""
    try:
        analyze = importlib.import_module("decodeprof.commands.analyze")
    except ModuleNotFoundError as exc:
        if exc.name not in ("decodeprof.commands.analyze", "decodeprof.analyses"):
            raise
        console.print(f"analyses not available yet; trace: {sqlite}", markup=False)
        return
    printer = getattr(analyze, "print_analyses", None)
    if printer is None:
        console.print(f"next: decodeprof analyze {sqlite}", markup=False)
        return
    with console.status("analysing ..."):
        ncu_csv = run_dir / "ncu.csv"
        printer(sqlite, ncu_csv=ncu_csv if ncu_csv.exists() else None, console=console)
    record.add_step(name="analyse", exit_status=0)
