"""`decodeprof report RUN_DIRS... [-o PATH] [--format html|json]`: one self-contained HTML
report, or the same facts and findings as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

TRACE_SUFFIXES = (".sqlite", ".nsys-rep")


def _failed_run(folder: Path) -> str | None:
    """Why a run folder's capture did not finish (its run.json status), or None."""
    try:
        record = json.loads((folder / "run.json").read_text())
    except (OSError, ValueError, RecursionError):
        return None  # not written by `decodeprof profile` (e.g. a folder of traces): nothing to judge by
    status = record.get("status") if isinstance(record, dict) else None
    if status in (None, "ok") or not isinstance(status, str):
        return None
    error = record.get("error")
    return f"its capture ended {status}" + (f": {error}" if isinstance(error, str) and error else "")


def _runs(paths: list[Path], err) -> list[Path]:
    """Run folders and trace files among `paths`; anything else (README.md from a glob) is
    skipped with a line saying so. A run folder whose capture failed is kept when its export
    (trace.sqlite) was written, e.g. only the ncu step failed, and skipped otherwise."""
    keep = []
    for p in paths:
        why = _failed_run(p) if p.is_dir() else None
        if why and not (p / "trace.sqlite").is_file():
            err.print(f"skipping {p}: {why}", markup=False)
        elif why:
            err.print(f"note: {p}: {why}; its exported trace is shown", markup=False)
            keep.append(p)
        elif p.is_dir() or (p.is_file() and p.suffix in TRACE_SUFFIXES):
            keep.append(p)
        elif p.exists():
            err.print(f"skipping {p}: not a run folder or trace file", markup=False)
        else:
            keep.append(p)  # let the loader say "no such file" with its hint
    return keep


from decodeprof.commands.analyze import DECODE_RANGE_HELP, STEP_RANGE_HELP
from decodeprof.commands.output import format_option

REPORT_FORMATS = ("html", "json")


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run_dirs: list[Path] = typer.Argument(..., help="Run folders (trace.sqlite or trace.nsys-rep, metrics.json, ncu.csv) or trace files."),
        output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="PATH", help="File to write (atomically). Default: report.html for html, stdout for json; with both formats, PATH with each one's suffix."),
        fmt: str = format_option("html", REPORT_FORMATS),
        baseline: Optional[str] = typer.Option(None, "--baseline", help="Name of the variant the others are compared with (default: the one named baseline, else the first given): a run folder's name less the time stamp `profile` adds (runs/graph-20261125-101500 is graph), or a trace file's name (hf_eager.sqlite is hf_eager)."),
        decode_range: Optional[str] = typer.Option(None, "--decode-range", help=DECODE_RANGE_HELP),
        step_range: Optional[str] = typer.Option(None, "--step-range", help=STEP_RANGE_HELP),
    ) -> None:
        """Render one HTML report comparing decode variants and explaining why each wins.

        Example: decodeprof report tests/data/h200/*/ -o reports/out/decodeprof-report.html

        Traces of other engines: decodeprof report hf_eager.sqlite hf_static.sqlite (named by file, the first is the baseline)

        As data: decodeprof report tests/data/h200/*/ --format json | jq '.runs[].findings[].title'
        """
        from rich.console import Console
        from rich.progress import Progress

        from decodeprof.errors import DecodeprofError
        from decodeprof.report import assemble, load_variant, write_report
        from decodeprof.report.render import report_json
        from decodeprof.report.variant import variant_name
        from decodeprof.trace import StepRanges

        from decodeprof.outputs import writable_file

        from decodeprof.commands.output import OutputRequest, parse_formats, write_text

        request = parse_formats(fmt, REPORT_FORMATS, output=output, stdout_once=False)
        if output is None and request.wants("html"):  # a page is a file; JSON alone goes to stdout
            request = OutputRequest(request.formats, Path("report.html"))
        for f in request.file_formats:
            if request.path_for(f) is not None:
                writable_file(request.path_for(f), f"{f.upper()} report", inputs=tuple(run_dirs))
        err = Console(stderr=True, highlight=False, soft_wrap=True)  # paths stay on one line
        runs = _runs(run_dirs, err)
        if not runs:
            raise DecodeprofError("no run folder or trace among the paths given",
                                  "pass folders written by `decodeprof profile` (e.g. tests/data/h100/*)")
        variants = []
        names = [variant_name(p) for p in runs]
        if baseline is not None and baseline not in names:
            raise DecodeprofError(f"no variant named {baseline!r} among: {', '.join(dict.fromkeys(names))}",
                                  "pass --baseline with one of these names")
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("loading runs", total=len(runs) + 1)
            for path in runs:
                progress.update(task, description=f"analysing {path}")
                variants.append(load_variant(path, step_ranges=StepRanges(decode_range, step_range)))
                progress.advance(task)
            progress.update(task, description="rendering")
            assembled = assemble(variants, baseline=baseline)
            page = write_report(assembled, request.path_for("html")) if request.wants("html") else None
            data = json.dumps(report_json(assembled), allow_nan=False) if request.wants("json") else None
            progress.advance(task)
        # written once the progress display is gone: while it runs on a terminal, rich sends
        # whatever reaches stdout to that terminal (a pipe would receive nothing)
        if data is not None:
            path = request.path_for("json")
            write_text(path, data + ("\n" if path is None else ""))
        if page is not None:
            typer.echo(str(page))
