"""`decodeprof timeline TRACE -o trace.json`: a trace as Chrome trace-event JSON for Perfetto."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from decodeprof.commands.analyze import DECODE_RANGE_HELP, STEP_RANGE_HELP


def register(app: typer.Typer) -> None:
    @app.command("timeline")
    def timeline(
        trace: Path = typer.Argument(..., help="nsys export (.sqlite), report (.nsys-rep) or run folder."),
        output: Path = typer.Option(..., "-o", "--output", help="JSON file to write (Chrome trace-event format)."),
        window: str = typer.Option("median-step", "--window", help="all | decode (the decode steps found) | median-step (or --step N)."),
        step: Optional[int] = typer.Option(None, "--step", min=0, help="With --window median-step: this step (0-based over all steps) instead."),
        decode_range: Optional[str] = typer.Option(None, "--decode-range", help=DECODE_RANGE_HELP),
        step_range: Optional[str] = typer.Option(None, "--step-range", help=STEP_RANGE_HELP),
    ) -> None:
        """Export a decode window (or the whole run) as Chrome trace-event JSON: GPU ops per
        stream, the decode steps, NVTX ranges and CUDA API calls per thread, as tracks that
        Perfetto (ui.perfetto.dev) and chrome://tracing open offline.

        Example: decodeprof timeline tests/data/h200/graph -o graph-step.json
        """
        import dataclasses

        from decodeprof.commands.analyze import _load
        from decodeprof.outputs import writable_file
        from decodeprof.perfetto import trace_events, window as pick, write_trace_events
        from decodeprof.trace import StepRanges

        if step is not None and window != "median-step":
            raise typer.BadParameter(f"--step picks one step: use it with --window median-step, not {window}")
        writable_file(output, "timeline", inputs=(trace,))
        loaded = dataclasses.replace(_load(trace, None, None, False), step_ranges=StepRanges(decode_range, step_range))
        win = pick(loaded, window, step=step)
        doc = trace_events(loaded, win)
        write_trace_events(doc, output)
        typer.echo(f"{output}: {len(doc['traceEvents'])} events, {win.what} ({(win.end_ns - win.start_ns) / 1e3:,.1f} µs)")
