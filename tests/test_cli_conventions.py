"""What people expect of a command-line tool: -h on every command, --version, and a closed
pipe (`| head`) ending quietly with SIGPIPE's status, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

GRAPH = Path(__file__).parent / "data" / "h100" / "graph"
COMMANDS = ("targets", "run", "bench", "profile", "doctor", "analyze", "report", "diff", "timeline")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "decodeprof", *args], capture_output=True, text=True, timeout=300)


def test_version():
    out = _cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("decodeprof ") and out.stdout.split()[1][0].isdigit()


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_short_help_on_every_command(command):
    args = ("-h",) if command is None else (command, "-h")
    out = _cli(*args)
    assert out.returncode == 0, out.stderr
    assert "Usage:" in out.stdout and "--help" in out.stdout


@pytest.mark.parametrize("args", [("analyze", str(GRAPH), "--json"), ("analyze", str(GRAPH)),
                                  ("diff", str(GRAPH.parent / "baseline"), str(GRAPH))])
def test_a_closed_pipe_ends_quietly(args):
    """The reader takes 100 bytes and closes the pipe: the rest is not written, nothing on
    stderr, exit status 141 (128 + SIGPIPE), as `yes | head` ends."""
    proc = subprocess.Popen([sys.executable, "-m", "decodeprof", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(100)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert len(head) == 100 and err == ""


def test_unbounded_work_is_refused_with_the_limit_named():
    """A typo such as --steps 1000000000 is one usage error naming the limit, not hours of work."""
    import subprocess
    import sys

    run = Path(__file__).resolve().parent / "data" / "h200" / "graph"
    for argv in (["analyze", str(run), "--steps", "1000000000"],
                 ["diff", str(run), str(run), "--steps", "1000000000"]):
        proc = subprocess.run([sys.executable, "-m", "decodeprof", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2 and "65536" in proc.stderr and "Traceback" not in proc.stderr, argv
    proc = subprocess.run([sys.executable, "-m", "decodeprof_targets", "baseline", "--device", "cpu", "--steps", "1000000000"],
                          capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 2 and "above the limit 65536" in proc.stderr and "Traceback" not in proc.stderr
