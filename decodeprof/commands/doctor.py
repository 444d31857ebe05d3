"""`decodeprof doctor`: can this machine profile? Each check's status and, for problems, the fix."""

from __future__ import annotations

import typer

STYLE = {"ok": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def register(app: typer.Typer) -> None:
    @app.command("doctor")
    def doctor() -> None:
        """Check nsys, ncu, GPU and driver, NVTX and CUDA tracing, GPU counter permission, nvcc.

        Captures two tiny programs for real (a few seconds). Exits 1 when any check fails.
        """
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        from decodeprof.capture.checks import run_checks

        console = Console()
        with console.status("checking ..."):
            checks = run_checks()
        table = Table(title="decodeprof doctor", show_lines=True)
        for column in ("check", "status", "details", "fix"):
            table.add_column(column, overflow="fold")
        for c in checks:
            table.add_row(c.name, f"[{STYLE[c.status]}]{c.status}[/]", escape(c.detail), escape(c.fix))
        console.print(table)
        failed = [c.name for c in checks if c.status == "fail"]
        if failed:
            console.print(f"[bold red]{len(failed)} problem(s):[/] {escape(', '.join(failed))}")
            raise typer.Exit(code=1)
        console.print("[bold green]ready to profile[/]")
