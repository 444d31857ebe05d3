"""`analyze --cache` printed output kept byte for byte (decodeprof.commands.analyze_cache) and the
command lines `decodeprof.cli.main` runs without typer: same bytes as the typer command,
and every input named in the key invalidates a kept output. Uses the h100/graph run folder
(trace.sqlite, metrics.json, ncu.csv) copied to a temporary folder."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from decodeprof.cli import app
from decodeprof.commands.analyze import _write_rows
from decodeprof.commands import analyze_cache as output_cache

DATA = Path(__file__).parent / "data"
GRAPH = DATA / "h100" / "graph"
CPU = DATA / "cpu_nsys2022" / "trace.sqlite"
REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()


def need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"fixture {path} not present")
    return path


@pytest.fixture()
def run(tmp_path) -> Path:
    folder = tmp_path / "graph"
    shutil.copytree(need(GRAPH), folder, ignore=shutil.ignore_patterns("*.decodeprof-cache"))
    return folder


class Out(io.TextIOWrapper):
    """A non-terminal stdout whose bytes can be read back."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8")

    def value(self) -> bytes:
        self.flush()
        return self.buffer.getvalue()


def served(argv: list[str]) -> bytes | None:
    out = Out()
    return out.value() if output_cache.serve(argv, stdout=out) else None


def bump(path: Path) -> None:
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_json_rows_encoder_equals_write_json():
    """The per-row encoder of `analyze --json` writes polars' write_json bytes, awkward
    values included (non-finite floats, escapes, nulls), whatever the slice size."""
    df = pl.DataFrame({
        "i": [1, None, -3, 2**62], "f": [1.5, float("inf"), None, float("nan")],
        "g": [1e20, 1e-7, 0.1, 123456789.123], "s": ['x"y\\z', "é\u2028\n", None, "\x01\t"], "b": [True, None, False, True],
    })
    whole = io.BytesIO()
    df.write_json(whole)
    for rows in (None, 1, 2, 3, 4, 100):
        buf = io.BytesIO()
        _write_rows(df, buf, rows)
        assert buf.getvalue() == whole.getvalue(), rows


def test_kept_json_is_served_with_the_trace_as_typed(run):
    first = runner.invoke(app, ["analyze", str(run), "--json", "--cache"])
    assert first.exit_code == 0, first.output
    assert served(["analyze", str(run), "--json", "--cache"]) == first.stdout_bytes
    # Another spelling of the same export: same analyses, its own "trace" value.
    other = str(run / "trace.sqlite")
    plain = runner.invoke(app, ["analyze", other, "--json"])
    assert served(["analyze", other, "--cache", "--json"]) == plain.stdout_bytes
    assert json.loads(plain.stdout)["trace"] == other


def test_every_key_input_invalidates(run, monkeypatch):
    argv = ["analyze", str(run), "--json", "--cache"]
    assert runner.invoke(app, argv).exit_code == 0
    assert served(argv) is not None
    assert served([*argv, "--steps", "4"]) is None, "--steps is in the key"
    assert served([*argv, "--only", "launches"]) is None, "--only is in the key"
    monkeypatch.setattr(output_cache, "_CODE", ["another decodeprof"])
    assert served(argv) is None, "the code is in the key"
    monkeypatch.undo()
    assert served(argv) is not None
    bump(run / "metrics.json")
    assert served(argv) is None, "a changed metrics JSON"
    again = runner.invoke(app, argv)
    assert served(argv) == again.stdout_bytes
    bump(run / "ncu.csv")
    assert served(argv) is None, "a changed ncu CSV"
    runner.invoke(app, argv)
    bump(run / "trace.sqlite")
    assert served(argv) is None, "a changed export"
    third = runner.invoke(app, argv)
    assert served(argv) == third.stdout_bytes
    kept = list((run / "trace.sqlite.decodeprof-cache" / "outputs").glob("*.out"))
    assert len(kept) == 1, "outputs of the old export state are removed"


def test_tables_are_kept_per_rows_and_never_for_a_terminal(run):
    argv = ["analyze", str(run), "--cache", "--rows", "3"]
    first = runner.invoke(app, argv)
    assert first.exit_code == 0, first.output
    assert served(argv) == first.stdout_bytes
    assert served(["analyze", str(run), "--cache", "--rows", "4"]) is None

    class Terminal(Out):
        def isatty(self) -> bool:
            return True

    assert output_cache.serve(argv, stdout=Terminal()) is False


@pytest.mark.parametrize("argv", [
    ["analyze", "T", "--json"],  # no --cache
    ["analyze", "T", "--cache", "--csv", "out"],
    ["analyze", "T", "--cache", "--help"],
    ["analyze", "T", "U", "--cache"],
    ["analyze", "T", "--cache", "--rows", "0"],
    ["analyze", "T", "--cache", "--rows", "3", "--rows", "4"],
    ["report", "T", "--cache"],
])
def test_only_plain_command_lines_are_read(argv):
    assert output_cache.parse(argv) is None


def _main(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "decodeprof", *args], capture_output=True, env=env, check=False)


def test_main_without_typer_prints_what_the_typer_command_prints(run):
    """`python -m decodeprof analyze` (plain form: no typer) and the typer command agree,
    cold, while keeping, and served; errors keep their message and exit code."""
    for argv in (["analyze", str(need(CPU)), "--json"], ["analyze", str(run), "--rows", "3"],
                 ["analyze", str(run), "--json", "--cache", "--only", "decode_steps", "--only", "launches"]):
        typer_out = runner.invoke(app, argv).stdout_bytes
        for _ in range(2):  # with --cache: the second run is served from the kept output
            proc = _main(*argv)
            assert proc.returncode == 0, proc.stderr
            assert proc.stdout == typer_out, argv
    missing = _main("analyze", str(run / "nope.sqlite"), "--json")
    assert missing.returncode == 2 and b"error:" in missing.stderr and b"nope.sqlite" in missing.stderr
    unknown = _main("analyze", str(run), "--only", "nope")
    assert unknown.returncode == 2 and b"unknown analysis nope" in unknown.stderr


def test_ctrl_c_ends_as_in_the_typer_command(run, monkeypatch, capsys):
    """Ctrl-C during a plain `analyze` (no typer) ends as typer ends it: exit 130, no traceback."""
    import decodeprof.commands.analyze as analyze_cmd
    from decodeprof import cli

    def interrupted(*_a, **_k):
        raise KeyboardInterrupt

    monkeypatch.setattr(analyze_cmd, "run_analyze", interrupted)
    typer_result = runner.invoke(app, ["analyze", str(run), "--json"])
    monkeypatch.setattr(sys, "argv", ["decodeprof", "analyze", str(run), "--json"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    assert exc.value.code == typer_result.exit_code == 130
    assert capsys.readouterr().err == "" and typer_result.output == ""


def _typer_params(argv: list[str]) -> dict | None:
    """What typer's own parser makes of an `analyze` command line (None: it refuses it)."""
    import typer
    from typer._click import Context  # typer carries its own copy of click
    from typer._click.exceptions import ClickException

    from decodeprof.cli import build_app

    group = typer.main.get_command(build_app())
    command = group.get_command(Context(group), "analyze")
    try:
        return command.make_context("analyze", list(argv[1:])).params
    except ClickException:
        return None


@pytest.mark.parametrize("argv", [
    ["analyze", "t.sqlite"],
    ["analyze", "t.sqlite", "--json"],
    ["analyze", "t.sqlite", "--format", "json", "--cache"],
    ["analyze", "t.sqlite", "--format=table", "--rows", "5"],
    ["analyze", "--steps", "64", "t.sqlite", "--rows=3", "--cache"],
    ["analyze", "t.sqlite", "--only", "kernel_summary", "--only", "host_wait", "--json"],
    ["analyze", "t.sqlite", "--metrics", "m.json", "--ncu", "n.csv"],
    ["analyze", "t.sqlite", "--steps", "0"],
    ["analyze", "t.sqlite", "--steps", "70000"],
    ["analyze", "t.sqlite", "--rows", "x"],
    ["analyze", "t.sqlite", "--format", "csv"],
    ["analyze", "t.sqlite", "--format", "json", "--json"],
    ["analyze", "t.sqlite", "-o", "out.json", "--format", "json"],
    ["analyze", "t.sqlite", "extra"],
    ["analyze", "t.sqlite", "--cache", "--cache"],
    ["analyze", "-h"],
])
def test_the_fast_parser_agrees_with_typer_or_defers_to_it(argv):
    """cli.main reads plain analyze command lines without typer (output caching, startup time):
    whatever it accepts, typer's own parser must read to the same values; the rest it leaves to typer."""
    fast = output_cache.parse(argv, need_cache=False)
    if fast is None:
        return  # typer parses it (and says what is wrong with it)
    params = _typer_params(argv)
    assert params is not None, f"the fast path accepts a command line typer refuses: {argv}"
    assert str(params["trace"]) == fast["trace"]
    assert (params["as_json"] or params["fmt"] == "json") == bool(fast.get("json"))
    assert params["cache"] == bool(fast.get("cache"))
    assert params["rows"] == fast.get("rows", 20) and params["steps"] == fast.get("steps")
    assert list(params["only"] or []) == fast["only"]
    for name in ("metrics", "ncu"):
        assert (None if params[name] is None else str(params[name])) == fast.get(name)
    assert params["output"] is None and params["csv_dir"] is None
