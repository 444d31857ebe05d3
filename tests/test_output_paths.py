"""Every command that writes checks its output path first: a folder where a file goes, or a
path under a file, ends at once with one `error:` line and a hint, never after the work with
a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "tests" / "data" / "h100" / "baseline"
GRAPH = REPO / "tests" / "data" / "h100" / "graph"
FAST = "--device cpu --batch 2 --prompt-len 4 --steps 2 --hidden 16 --vocab 32 --iters 1 --warmup 0"


def _cases(tmp: Path) -> list[tuple[list[str], str]]:
    folder = tmp / "a-folder"
    folder.mkdir()
    blocker = tmp / "a-file"
    blocker.write_text("not a folder")
    under_file = blocker / "sub" / "out"
    return [
        (["decodeprof", "report", str(RUN), "-o", str(folder)], "cannot write the HTML report to"),
        (["decodeprof", "report", str(RUN), "-o", f"{under_file}.html"], "cannot write the HTML report to"),
        (["decodeprof", "diff", str(RUN), str(GRAPH), "-o", str(folder)], "cannot write the HTML diff to"),
        (["decodeprof", "analyze", str(RUN), "--csv", str(blocker)], "cannot write the CSV files into"),
        (["decodeprof", "bench", "baseline", "--args", FAST, "--json-out", f"{under_file}.json"], "cannot write the results JSON"),
        (["decodeprof", "profile", "baseline", "--out", str(under_file), "--", *FAST.split()], "cannot write the run folder"),
        (["decodeprof_targets", "baseline", *FAST.split(), "--json-out", str(folder)], "--json-out"),
        (["decodeprof_targets", "baseline", *FAST.split(), "--json-out", f"{under_file}.json"], "does not exist or is not writable"),
    ]


@pytest.mark.parametrize("index", range(8))
def test_a_bad_output_path_is_one_clear_error_before_any_work(tmp_path, index):
    argv, message = _cases(tmp_path)[index]
    proc = subprocess.run([sys.executable, "-m", *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "hint:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "a-folder").is_dir() or not any((tmp_path / "a-folder").iterdir())
