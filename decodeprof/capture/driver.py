"""profile_target: target under nsys -> export (-> the caller's analysis), and optionally a second run under ncu.

Every artefact lands in one fresh run folder; each failing step prints its log tail, marks
run.json failed, keeps what was made and raises CaptureError naming the step and the fix.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

import decodeprof
from decodeprof.capture import ncu as ncu_cmd
from decodeprof.capture import nsys as nsys_cmd
from decodeprof.capture.export import export_sqlite
from decodeprof.capture.launch import target_device, target_prefix
from decodeprof.capture.gpu import gpu_info
from decodeprof.capture.process import child_env, run_logged, show_tail, target_error_line
from decodeprof.capture.runfolder import RunRecord, new_run_dir
from decodeprof.load.run_folder import UNPROFILED_METRICS
from decodeprof.errors import CaptureError, DecodeprofError
from decodeprof.tools import find_ncu, find_nsys, tool_version


def launcher(label: str, gpus: int, device: str, command: Sequence[str] | None) -> tuple[list[str], dict[str, str] | None]:
    """The program prefix (`python -m decodeprof_targets LABEL`, through torchrun for several GPUs or a
    torchrun target) and the environment it needs on top of ours (NCCL multicast off)."""
    if command is not None:
        if gpus > 1:
            raise ValueError("a custom command cannot be launched on several GPUs")
        return [str(c) for c in command], None
    return target_prefix(label, gpus, device)


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
    timeout_s: float | None = None,
    unprofiled: bool = True,
    ncu_steps: int = ncu_cmd.DEFAULT_STEPS,
    analyse: Callable[[Path, Console], dict] | None = None,
) -> Path:
    """Profile one target; return its run folder.

    With `unprofiled` (and nsys), the target also runs once without any profiler after the
    capture, same flags and environment, writing metrics.unprofiled.json: the times the report shows (a profiler
    slows what it traces; CUDA-graph node tracing by 30-50%).
    The target runs as `sys.executable -m decodeprof_targets LABEL [target_args] --json-out <run>/metrics.json`;
    `command` replaces `sys.executable -m decodeprof_targets LABEL` (tests run their own small programs);
    `timeout_s` bounds each tool step (None: no limit; GPU targets may compile for minutes).
    `analyse(run_dir, console)`, when given, runs after a successful nsys capture and returns
    the fields of its run.json step (the profile command passes the analysis and report; the
    capture layer itself imports neither).
    `ncu_steps`: decode steps of the one iteration Nsight Compute replays (its time grows with
    the kernels it profiles: ~1 minute at the default on an H200).
    """
    target_args = [str(a) for a in target_args]
    device = target_device(target_args)
    prefix, launch_env = launcher(label, gpus, device, command)
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
    run = _Run(run_dir, record, child_env(launch_env),
               console or Console(stderr=True, highlight=False, soft_wrap=True), timeout_s)
    run.console.print(f"run folder: {run_dir}", markup=False)
    try:
        sqlite = None
        if nsys:
            sqlite = _nsys_steps(run, tools["nsys"], prefix, target_args, cuda=device != "cpu")
        if nsys and unprofiled:  # after the capture: a target that fails, fails under nsys first
            run.check(run.step("unprofiled", [], [*prefix, *target_args, "--json-out", str(run_dir / UNPROFILED_METRICS)]))
        elif not ncu:
            run.check(run.step("target", [], [*prefix, *target_args, "--json-out", str(run_dir / "metrics.json")]))
        if ncu:
            _ncu_step(run, tools["ncu"], prefix, target_args, ncu_steps)
        if sqlite is not None and analyse is not None:
            run.record.add_step(name="analyse", **analyse(run_dir, run.console))
    except DecodeprofError as exc:
        record.finish("failed", error=exc.message, hint=exc.hint)
        run.console.print(f"partial artefacts kept in {run_dir}", markup=False)
        raise
    except BaseException as exc:  # a bug or Ctrl-C: still say in run.json that the run did not finish
        record.finish("interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", error=repr(exc))
        raise
    record.finish("ok")
    run.console.print(f"[bold green]done:[/] {escape(str(run_dir))}")
    return run_dir


@dataclass
class _Step:
    """One finished tool step: the target's own command, its exit status, its log."""

    name: str
    program: list[str]
    status: int
    log: Path


@dataclass
class _Run:
    """What every step of one run shares."""

    dir: Path
    record: RunRecord
    env: dict[str, str]
    console: Console
    timeout_s: float | None
    elapsed_s: dict[str, float] = field(default_factory=dict)  # step name -> wall seconds

    def step(self, name: str, profiler: list[str], program: list[str]) -> _Step:
        log = self.dir / "logs" / f"{name}.log"
        shown = " ".join(Path(a).name for a in (profiler or program)[:2])
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=self.console, transient=True) as progress:
            progress.add_task(f"{escape(name)}: running {escape(shown)} ...", total=None)
            started = time.perf_counter()
            status = run_logged(name, [*profiler, *program], log, self.record, env=self.env, timeout_s=self.timeout_s)
        self.elapsed_s[name] = time.perf_counter() - started
        return _Step(name, program, status, log)

    def check(self, step: _Step) -> None:
        if step.status != 0:
            show_tail(self.console, step.name, step.log)
            said = target_error_line(step.log)
            raise CaptureError(
                f"step '{step.name}' failed: exit status {step.status}" + (f" (target said: {said})" if said else ""),
                f"see {step.log}; reproduce without the profiler: {shlex.join(step.program)}",
            )
        took = self.elapsed_s.get(step.name)
        self.console.print(f"[green]ok[/] {escape(step.name)}" + (f" in {took:.0f} s" if took is not None else "")
                           + f" (log: logs/{step.log.name})")


TRANSIENT_NSYS = "Local Endpoint is not available"  # nsys's session daemon did not answer: a retry works


def _nsys_steps(run: _Run, nsys: Path, prefix: list[str], target_args: list[str], *, cuda: bool) -> Path:
    profiler, dropped = nsys_cmd.profile_argv(nsys, run.dir / "trace", cuda=cuda)
    run.record.set(nsys_dropped_flags=dropped)
    program = [*prefix, *target_args, "--json-out", str(run.dir / "metrics.json")]
    step = run.step("nsys", profiler, program)
    metrics = run.dir / "metrics.json"
    if step.status != 0 and not metrics.exists() and TRANSIENT_NSYS in step.log.read_text(errors="replace"):
        # nsys's local IPC endpoint sometimes fails to come up before the target starts (seen
        # with 2022.4): one retry, appended to the same log
        for partial in ("trace.nsys-rep", "trace.qdstrm", "trace.sqlite"):
            (run.dir / partial).unlink(missing_ok=True)
        run.console.print(f"[yellow]nsys could not start its session ({TRANSIENT_NSYS}); retrying once[/]")
        step = run.step("nsys", profiler, program)
    run.check(step)
    rep = run.dir / "trace.nsys-rep"
    if not rep.exists():
        show_tail(run.console, "nsys", step.log)
        why = ("the capture range never opened: the target did not call cudaProfilerStart()"
               if "--capture-range=cudaProfilerApi" in profiler else "nsys wrote no report")
        raise CaptureError(f"step 'nsys' failed: no {rep.name} ({why})",
                           f"see {step.log}; targets must bracket the measured iterations with cudaProfilerStart/Stop")
    log = run.dir / "logs" / "export.log"
    with run.console.status("export: nsys export --type sqlite ..."):
        try:
            sqlite = export_sqlite(rep, log)
        except CaptureError:
            run.record.add_step(name="export", command=_logged_command(log), log="logs/export.log", exit_status=1)
            show_tail(run.console, "export", log)
            raise
    run.record.add_step(name="export", command=_logged_command(log), log="logs/export.log", exit_status=0,
                        output=sqlite.name)
    run.console.print("[green]ok[/] export (log: logs/export.log)")
    return sqlite


def _logged_command(log: Path) -> str | None:
    # ensure_sqlite runs nsys itself and writes "$ <command>" first in the log.
    first = log.read_text(errors="replace").split("\n", 1)[0] if log.exists() else ""
    return first[2:] if first.startswith("$ ") else None


def _ncu_step(run: _Run, ncu: Path, prefix: list[str], target_args: list[str], steps: int) -> None:
    csv_path = run.dir / "ncu.csv"
    forced = ncu_cmd.one_iteration(target_args, steps)
    run.console.print(f"ncu: {steps} decode steps of one iteration, each kernel replayed for its counters "
                      f"(about a minute at {ncu_cmd.DEFAULT_STEPS} steps on an H200; --ncu-steps N for more)",
                      markup=False)
    run.record.set(ncu={"clock_control": ncu_cmd.CLOCK_CONTROL, "nvtx_include": ncu_cmd.NVTX_INCLUDE,
                        "sections": list(ncu_cmd.SECTIONS), "metrics": list(ncu_cmd.METRICS),
                        "target_args": forced})
    # Its own metrics file: one forced iteration under replay says nothing about speed.
    program = [*prefix, *forced, "--json-out", str(run.dir / "ncu-target-metrics.json")]
    step = run.step("ncu", ncu_cmd.ncu_argv(ncu, csv_path), program)
    try:  # counter permission first: ncu then also exits non-zero, but this names the fix
        ncu_cmd.check_permission(csv_path, step.log)
        if step.status == 0:
            ncu_cmd.check_profiled(csv_path)
    except CaptureError:
        show_tail(run.console, "ncu", step.log)
        raise
    run.check(step)
