"""`decodeprof report RUN_DIRS... [-o report.html]`: one self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

import typer

TRACE_SUFFIXES = (".sqlite", ".nsys-rep")


def _runs(paths: list[Path], err) -> list[Path]:
    """Run folders and trace files among `paths`; anything else (README.md from a glob) is skipped."""
    keep = []
    for p in paths:
        if p.is_dir() or (p.is_file() and p.suffix in TRACE_SUFFIXES):
            keep.append(p)
        elif p.exists():
            err.print(f"skipping {p}: not a run folder or trace file")
        else:
            keep.append(p)  # let the loader say "no such file" with its hint
    return keep


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        run_dirs: list[Path] = typer.Argument(..., help="Run folders (trace.sqlite or trace.nsys-rep, metrics.json, ncu.csv) or trace files."),
        output: Path = typer.Option(Path("report.html"), "-o", "--output", help="HTML file to write (atomically)."),
        baseline: str = typer.Option("baseline", "--baseline", help="Name (folder name) of the variant the others are compared with."),
    ) -> None:
        """Render one HTML report comparing decode variants and explaining why each wins.

        Example: decodeprof report tests/data/h100/* -o reports/out/decodeprof-report.html
        """
        from rich.console import Console
        from rich.progress import Progress

        from decodeprof.errors import DecodeprofError
        from decodeprof.report import assemble, load_variant, write_report

        err = Console(stderr=True, highlight=False)
        runs = _runs(run_dirs, err)
        if not runs:
            raise DecodeprofError("no run folder or trace among the paths given",
                                  "pass folders written by `decodeprof profile` (e.g. tests/data/h100/*)")
        variants = []
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("loading runs", total=len(runs) + 1)
            for path in runs:
                progress.update(task, description=f"analysing {path}")
                variants.append(load_variant(path))
                progress.advance(task)
            progress.update(task, description="rendering")
            written = write_report(assemble(variants, baseline=baseline), output)
            progress.advance(task)
        typer.echo(str(written))
