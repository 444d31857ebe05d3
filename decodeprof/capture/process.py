"""Run one tool step with its noisy output in logs/<step>.log, and explain failures."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from decodeprof.capture.runfolder import RunRecord, now_iso

TAIL_LINES = 25
# nsys progress bars ("[1/1] [==50%   ] x.nsys-rep", "Exporting 308 events: [==7%  ]") say nothing on failure.
_PROGRESS = re.compile(r"^(\[\d+/\d+\] )?(Exporting \d+ events: )?\[=*\d+%")


def run_logged(
    step: str, argv: Sequence[str], log_path: Path, record: RunRecord, *,
    env: dict[str, str] | None = None, timeout_s: float | None = None,
) -> int:
    """Run argv with stdout+stderr appended to log_path; record the exact command. Returns the
    exit status (124 after timeout_s, when the whole process group is killed)."""
    argv = [str(a) for a in argv]
    started, t0 = now_iso(), time.monotonic()
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        try:
            # Own process group, so a hung profiler and its target can be killed together.
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True)
        except OSError as exc:  # binary vanished or is not executable
            log.write(f"could not start: {exc}\n".encode())
            status = 127
        else:
            status = _wait(proc, timeout_s, log)
    record.add_step(
        name=step, argv=argv, log=str(log_path.relative_to(record.path.parent)),
        exit_status=status, started_at=started, duration_s=round(time.monotonic() - t0, 3),
    )
    return status


def _wait(proc: subprocess.Popen, timeout_s: float | None, log) -> int:
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        log.write(f"\ntimed out after {timeout_s} s: killed\n".encode())
        _kill_group(proc)
        return 124
    except BaseException:  # Ctrl-C: the child is in its own session and would not get it
        _kill_group(proc)
        raise


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def log_tail(log_path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last lines of a log, progress-bar carriage returns folded away."""
    if not log_path.exists():
        return []
    text = log_path.read_text(errors="replace")
    rows = [ln.rsplit("\r", 1)[-1].rstrip() for ln in text.splitlines()]
    return [r for r in rows if r and not _PROGRESS.search(r)][-lines:]


def target_error_line(log_path: Path) -> str | None:
    """The target's own one-line `error: ...` (exit status 2 contract), if it printed one."""
    for line in reversed(log_tail(log_path, 200)):
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return None


def show_tail(console: Console, step: str, log_path: Path) -> None:
    lines = log_tail(log_path)
    console.print(f"--- last {len(lines)} lines of {log_path} ({step}) ---", markup=False, highlight=False)
    for line in lines:
        console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print("---", markup=False, highlight=False)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"  # keep the target's lines in order with the tool's in the log
    env.update(extra or {})
    return env
