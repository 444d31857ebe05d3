"""`decodeprof diff A B`: what changed between two runs, decode step by decode step.

JSON output (`--json`, stable; version 1) is documented in docs/diff.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from decodeprof.commands.analyze import DECODE_RANGE_HELP, STEP_RANGE_HELP
from decodeprof.commands.output import MAX_STEPS, format_option
from decodeprof.errors import RegressionError


def _label(path: Path, trace) -> str:
    if trace.target_metrics.target:
        return trace.target_metrics.target
    return path.name if path.is_dir() else path.stem


DIFF_FORMATS = ("table", "json", "html")


def register(app: typer.Typer) -> None:
    @app.command("diff")
    def diff(
        a: Path = typer.Argument(..., help="Run A (the reference): run folder, .nsys-rep or .sqlite."),
        b: Path = typer.Argument(..., help="Run B (the candidate): run folder, .nsys-rep or .sqlite."),
        fmt: str = format_option("table", DIFF_FORMATS),
        output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="PATH", help="Write the JSON or the self-contained HTML diff here (the format from --format, else from the suffix: .html, .json); with several, PATH.json and PATH.html."),
        as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json."),
        step: Optional[int] = typer.Option(None, "--step", min=0, help="Align this decode step (0-based over all decode steps) instead of the median one."),
        steps: Optional[int] = typer.Option(None, "--steps", min=1, max=MAX_STEPS, help="Decode steps per decode range when a run has no metrics.json (graph variants)."),
        exit_on_regression: Optional[float] = typer.Option(None, "--exit-on-regression", min=0.0, metavar="PCT",
                                                           help="Exit 1 when B is slower than A by more than PCT percent on decode time or tokens/s."),
        rows: int = typer.Option(12, "--rows", min=1, help="Rows shown per totals table on the terminal."),
        decode_range: Optional[str] = typer.Option(None, "--decode-range", help=DECODE_RANGE_HELP),
        step_range: Optional[str] = typer.Option(None, "--step-range", help=STEP_RANGE_HELP),
    ) -> None:
        """Diff two runs decode step by decode step: what ran, what it cost, and why B differs.

        Verdict, the aligned decode step and prefill (matched / replaced / fused / removed /
        added kernels; eager launches now CUDA graph nodes), then launches, host wait and GPU
        idle, copies, NVTX ranges, kernels and the targets' metrics.

        Example: decodeprof diff tests/data/h100/baseline tests/data/h100/graph -o diff.html

        Any two decode traces: decodeprof diff hf_eager.sqlite hf_static.sqlite
        """
        from decodeprof.commands.analyze import _load
        from decodeprof.commands.output import OutputRequest, parse_formats, write_text
        from decodeprof.diff import diff_traces, regressions
        from decodeprof.outputs import writable_file

        json_stdout = as_json
        if as_json:  # the older spelling: JSON on stdout, and -o (if given) is the HTML diff
            request = OutputRequest(("html",) if output is not None else (), output)
        else:
            if output is not None and fmt == "table":  # `-o diff.html`: the table on the terminal, the file by its suffix
                fmt = "table," + ("json" if output.suffix == ".json" else "html")
            request = parse_formats(fmt, DIFF_FORMATS, output=output)
        if request.wants("html") and output is None:
            from decodeprof.errors import DecodeprofError

            raise DecodeprofError("--format html writes a file", "pass -o PATH, e.g. -o diff.html")
        for f in request.file_formats:
            if request.path_for(f) is not None:
                writable_file(request.path_for(f), f"{f.upper()} diff", inputs=(a, b))
        import dataclasses

        from decodeprof.trace import StepRanges

        named = StepRanges(decode_range, step_range)
        ta, tb = (dataclasses.replace(_load(p, None, None, False), step_ranges=named) for p in (a, b))
        la, lb = _label(a, ta), _label(b, tb)
        if la == lb:
            la, lb = f"A ({la})", f"B ({lb})"
        d = diff_traces(ta, tb, label_a=la, label_b=lb, step=step, steps=steps)
        if request.wants("html"):
            from decodeprof.diff.html import write_html

            write_html(d, request.path_for("html"))
        if request.wants("json") or json_stdout:
            path = None if json_stdout else request.path_for("json")
            write_text(path, json.dumps(d.to_json(), allow_nan=False) + ("\n" if path is None else ""))
        if request.wants("table"):
            from decodeprof.commands.analyze import table_console
            from decodeprof.diff.terminal import render

            render(d, table_console(), rows=rows)
            for f in ("html", "json"):
                if request.path_for(f) is not None:
                    typer.echo(f"wrote {request.path_for(f)}")
        if exit_on_regression is not None:
            found = regressions(d, exit_on_regression)
            if found:
                raise RegressionError(f"{lb} is slower than {la}: " + "; ".join(found),
                                      f"inspect the diff above, or raise --exit-on-regression (now {exit_on_regression:g}%)")
