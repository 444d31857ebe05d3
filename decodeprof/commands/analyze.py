"""`decodeprof analyze TRACE`: every registered analysis as tables, JSON or CSV files.

JSON output (`--json`, stable; version 1), one object on stdout:

    {"version": 1,
     "trace": "<path given>",
     "meta": {export metadata: nsys_version, schema_version, ...},
     "missing": [{"frame": ..., "table": ..., "fix": ..., "message": ...}, ...],
     "empty_because": {"<analysis>": ["<why it has no rows>", ...], ...},   # only empty ones
     "dropped": ["<n> <frame> row(s) dropped: <reason>", ...],   # impossible rows the loader left out
     "verdict": {"steps": "<how the decode steps were found>", "source": ..., "tried": [...],
                 "findings": [{"kind": "limit"|"info"|..., "title", "sentence", "threshold",
                               "evidence": {...}}, ...]},   # null with --only
     "analyses": {"<analysis>": [{column: value, ...}, ...], ...}}

Rows keep the analyses' own columns and units (integer ns, bytes, bytes/s, percent 0-100);
non-finite floats become null. Tables on the terminal convert units for reading only.

With --cache, the loaded frames and the results are kept as Parquet beside the export
(decodeprof.load.cache); a later run with the same export, ncu CSV, metrics JSON and
--steps reads only the results it prints, never the trace. The printed bytes are kept too
(decodeprof.commands.analyze_cache): the console entry point prints them again before importing
polars when nothing in their key changed.
"""

from __future__ import annotations

import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from decodeprof.errors import DecodeprofError
from decodeprof.load.validate import sentences as dropped_sentences
from decodeprof.present.tables import column_cells, printable
from decodeprof.present.json_values import finite, json_safe

JSON_VERSION = 1
DECODE_RANGE_HELP = ("NVTX range around your decode loop (name, regular expression, or domain:name); "
                     "its steps are found inside it. See docs/analyses/decode_steps.md.")
STEP_RANGE_HELP = "NVTX range around one decode step (name, regular expression, or domain:name)."


@dataclass(frozen=True)
class Loaded:
    """What printing results needs of a trace besides the results: its export path, meta,
    missing tables, and why each empty result is empty (so the trace itself can be freed,
    or never read when the results come from the cache)."""

    source: Path
    meta: dict
    missing: tuple
    empty_because: dict
    from_cache: bool = False  # results read from the results cache (nothing else in memory)
    verdict: dict | None = None  # what limits this decode (`verdict`); None when not every analysis ran


def _inputs(trace: Path, ncu: Path | None, metrics: Path | None) -> tuple[Path, Path | None, Path | None]:
    """The export, ncu CSV and metrics JSON that `load_trace` would read for these arguments:
    a run folder's (or, beside a given export, its folder's) ncu.csv / metrics.json count as given."""
    from decodeprof.load import resolve_export

    folder = trace if trace.is_dir() else trace.parent
    metrics = metrics or (folder / "metrics.json" if (folder / "metrics.json").is_file() else None)
    ncu = ncu or (folder / "ncu.csv" if (folder / "ncu.csv").is_file() else None)
    return resolve_export(trace), ncu, metrics


def _load(trace: Path, ncu: Path | None, metrics: Path | None, cache: bool):
    from decodeprof.load import load_trace

    export, ncu, metrics = _inputs(trace, ncu, metrics)
    return load_trace(export, ncu_csv=ncu, metrics_json=metrics, cache=cache)


def verdict(trace, frames: dict, steps: int | None = None) -> dict | None:
    """What limits this decode: how its steps were found and the single-trace findings
    (findings.limits over the report's facts), as JSON-ready values. None unless every
    analysis ran (the facts read most of them)."""
    from decodeprof.analyses import ANALYSES
    from decodeprof.analyses.steps import step_model
    from decodeprof.findings import facts, limits

    if set(frames) != set(ANALYSES):
        return None
    model = step_model(trace, steps=steps)
    found = limits(str(trace.source), facts(trace, frames))
    return {"steps": model.summary, "source": model.source, "tried": list(model.tried),
            "findings": [{"kind": f.kind, "title": f.title, "sentence": f.sentence, "threshold": f.threshold,
                          "evidence": json_safe(f.evidence)} for f in found]}


def analyze_trace(trace: Path, ncu: Path | None, metrics: Path | None, *, names: list[str], steps: int | None,
                  cache: bool, step_ranges=None) -> tuple[Loaded, dict]:
    """(Loaded, {name: result}) for the analyses `names`. With `cache`, served from the
    results cache when its key matches (the trace is not read), else computed and kept."""
    from decodeprof.analyses import ANALYSES, FRAME_COLUMNS, run_all, why_empty
    from decodeprof.load import load_trace

    import dataclasses

    from decodeprof.trace import StepRanges

    step_ranges = step_ranges or StepRanges()
    export, ncu, metrics = _inputs(trace, ncu, metrics)
    if cache:
        from decodeprof.load import cache as results_cache

        outputs = {n: {c: str(t) for c, t in a.columns.items()} for n, a in ANALYSES.items()}
        key = results_cache.results_key(export, ncu_csv=ncu, metrics_json=metrics, steps=steps, outputs=outputs,
                                        step_ranges=[step_ranges.decode, step_ranges.step])
        hit = results_cache.read_results(export, key, names)
        if hit is not None:
            info, frames = hit
            return Loaded(export, info["meta"], info["missing"], info["empty_because"], from_cache=True,
                          verdict=info.get("verdict") if set(names) == set(ANALYSES) else None), frames
    loaded = load_trace(export, ncu_csv=ncu, metrics_json=metrics, cache=cache, columns=FRAME_COLUMNS)
    if step_ranges:
        loaded = dataclasses.replace(loaded, step_ranges=step_ranges)
    frames = run_all(loaded, names=names, steps=steps)
    out = Loaded(loaded.source, loaded.meta, loaded.missing,
                 {n: why_empty(loaded, n) for n, df in frames.items() if df.is_empty()},
                 verdict=verdict(loaded, frames, steps))
    del loaded  # frees the frames and every per-trace intermediate before output is written
    if cache:
        results_cache.write_results(export, key, frames, out.meta, out.missing, out.empty_because, verdict=out.verdict)
    return out, frames


def _empty_because(trace, frames: dict) -> dict:
    if isinstance(trace, Loaded):
        return {n: trace.empty_because.get(n, []) for n, df in frames.items() if df.is_empty()}
    from decodeprof.analyses import why_empty

    return {n: why_empty(trace, n) for n, df in frames.items() if df.is_empty()}


def analyses_json(trace, frames: dict, source: str) -> dict:
    """The documented JSON object (see module docstring) for `frames` of `trace` (a Trace or Loaded)."""
    return {
        "version": JSON_VERSION,
        "trace": source,
        "meta": {k: str(v) for k, v in trace.meta.items()},
        "missing": [{"frame": m.frame, "table": m.table, "fix": m.fix, "message": m.sentence()} for m in trace.missing],
        "empty_because": _empty_because(trace, frames),
        "verdict": getattr(trace, "verdict", None) if isinstance(trace, Loaded) else verdict(trace, frames),
        "dropped": dropped_sentences(trace.meta),
        "analyses": {n: [{k: finite(v) for k, v in row.items()} for row in df.iter_rows(named=True)]
                     for n, df in frames.items()},
    }


def write_analyses_json(trace, frames: dict, source: str, out, *, chunk_rows: int | None = None) -> None:
    """Stream the object of `analyses_json` to the binary file `out`, each frame written by
    polars' own JSON writer: at 1M kernels, building Python dicts and json.dumps over a
    million rows took ~5 s and ~1 GB of the analyze run. `chunk_rows`: encode larger frames
    that many rows at a time (same bytes, less memory, slower; see `_write_rows`)."""
    head = analyses_json(trace, {}, source)
    del head["analyses"]
    head["empty_because"] = _empty_because(trace, frames)
    head["verdict"] = trace.verdict if isinstance(trace, Loaded) else verdict(trace, frames)
    out.write(json.dumps(head, allow_nan=False)[:-1].encode() + b', "analyses": {')
    for i, (name, df) in enumerate(frames.items()):
        out.write((b", " if i else b"") + json.dumps(name).encode() + b": ")
        _write_rows(df, out, chunk_rows)
    out.write(b"}}\n")
    out.flush()


JSON_CHUNK_ROWS = 100_000
ENCODE_ROWS = 200_000  # rows per slice for the row encoder below (memory, not speed)


def _plain(dtype) -> bool:
    """A dtype whose struct.json_encode text is write_json's (numbers, strings, booleans)."""
    import polars as pl

    return dtype.is_numeric() or dtype in (pl.String, pl.Boolean)


def _write_rows(df, out, chunk_rows: int | None) -> None:
    """`df.write_json(out)`'s bytes (rows as objects; NaN/inf become null), `chunk_rows` rows
    at a time when given. Frames of plain columns are encoded by polars per row
    (`struct.json_encode`, the same text: tests/test_analyze_cli.py compares) and written
    by its CSV writer, one object per "line", lines ended by ","; at 1M kernels `launches`
    then takes ~0.3 s instead of ~0.6 s, and a slice of rows at a time keeps memory flat.
    Other frames go through write_json, sliced when `chunk_rows` is given (polars builds the
    whole text before writing it: ~280 MB for `launches` at 1M kernels)."""
    if df.height and all(_plain(t) for t in df.dtypes):
        _write_rows_encoded(df, out, chunk_rows or ENCODE_ROWS)
        return
    if chunk_rows is None or df.height <= chunk_rows:
        df.write_json(out)
        return
    import io

    out.write(b"[")
    for first in range(0, df.height, chunk_rows):
        buf = io.BytesIO()
        df.slice(first, chunk_rows).write_json(buf)
        text = buf.getbuffer()
        out.write((b"," if first else b"") + text[1:-1])
        del text
    out.write(b"]")


def _write_rows_encoded(df, out, chunk_rows: int) -> None:
    """Slices encoded by two threads (polars releases the GIL: 0.31 -> 0.19 s for `launches`
    at 1M kernels on 2 cores), written in order; at most two slices wait at a time."""
    import collections
    from concurrent.futures import ThreadPoolExecutor

    import polars as pl

    def encode(first: int):
        return df.slice(first, chunk_rows).select(pl.struct(pl.all()).struct.json_encode().alias("row"))

    starts = iter(range(0, df.height, chunk_rows))
    out.write(b"[")
    with ThreadPoolExecutor(2) as pool:
        pending = collections.deque(pool.submit(encode, first) for first in itertools.islice(starts, 2))
        while pending:
            rows = pending.popleft().result()
            nxt = next(starts, None)
            if nxt is not None:
                pending.append(pool.submit(encode, nxt))
            last = not pending
            lines = ((rows.head(-1), ","), (rows.tail(1), "")) if last else ((rows, ","),)
            for part, end in lines:
                if part.height:
                    out.flush()  # polars writes to the file object itself: keep byte order
                    part.write_csv(out, include_header=False, quote_style="never", line_terminator=end)
            del rows, lines, part
    out.write(b"]")


def write_csvs(frames: dict, folder: Path) -> list[Path]:
    """One CSV per analysis, `<folder>/<name>.csv`, columns and units as the analysis returns."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, df in frames.items():
        path = folder / f"{name}.csv"
        _csv_safe_frame(df).write_csv(path)
        paths.append(path)
    return paths


NAME_MIN_WIDTH = 16  # a folded name column keeps at least this many characters per line
TABLE_WIDTH = 100  # piped tables without COLUMNS: fit a common terminal and a review diff


def _width(col: tuple[str, list[str]]) -> int:
    header, cells = col
    return max([*(len(line) for line in header.split("\n")), *(len(c) for c in cells)])


def _column_groups(cols: list[tuple[str, list[str]]], numeric: list[bool], width: int) -> list[list[int]]:
    """Column indices per printed table so that each fits `width`: all in one when they fit;
    else consecutive groups, each repeating the first (naming) column, numbers never cut."""
    need = [(_width(c) if numeric[i] else min(NAME_MIN_WIDTH, _width(c))) + 3 for i, c in enumerate(cols)]
    if sum(need) <= width or len(cols) < 3:
        return [list(range(len(cols)))]
    groups, current, used = [], [0], need[0]
    for j in range(1, len(cols)):
        if used + need[j] > width and len(current) > 1:
            groups.append(current)
            current, used = [0], need[0]
        current.append(j)
        used += need[j]
    groups.append(current)
    return groups


def render(trace, frames: dict, console, *, max_rows: int = 20) -> None:
    """Rich tables of `frames`, the trace's missing inputs first, a reason under empty ones."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from decodeprof.analyses import ANALYSES

    empty_because = _empty_because(trace, frames)
    console.print(f"[bold]{escape(printable(str(trace.source)))}[/]  nsys {escape(printable(str(trace.meta.get('nsys_version', '?'))))}")
    for m in trace.missing:
        console.print(f"[yellow]missing:[/] {escape(m.sentence())}")
    for sentence in dropped_sentences(trace.meta):
        console.print(f"[yellow]dropped:[/] {escape(sentence)}")
    v = trace.verdict if isinstance(trace, Loaded) else verdict(trace, frames)
    if v is not None:
        print_verdict(v, console)
    for name, df in frames.items():
        title = f"{name}: {ANALYSES[name].title}" if name in ANALYSES else name
        if df.is_empty():
            console.print(f"\n[bold]{escape(title)}[/]\n  [dim]no rows: {escape('; '.join(empty_because[name]) or 'nothing to report')}[/]")
            continue
        shown = df.head(max_rows)
        if "found" in shown.columns and v is not None:  # the verdict's first line says it already
            shown = shown.drop("found")
        if "bytes_per_s" in shown.columns and "gb_per_s" in shown.columns:
            shown = shown.drop("bytes_per_s")  # same number, shown once as GB/s
        # the unit goes under the name: narrow columns, and numbers set the width
        cols = [(h.replace(" (", "\n(", 1), cells) for h, cells in (column_cells(c, shown[c].to_list()) for c in shown.columns)]
        numeric = [shown[c].dtype.is_numeric() for c in shown.columns]
        groups = _column_groups(cols, numeric, console.width)
        for g, group in enumerate(groups):
            part = f" ({g + 1}/{len(groups)})" if len(groups) > 1 else ""
            table = Table(title=title + part, title_justify="left", title_style="bold", box=box.SIMPLE_HEAD,
                          pad_edge=False)
            for j in group:
                # numbers never wrap nor shrink; names fold onto more lines when space is short
                table.add_column(escape(cols[j][0]), no_wrap=numeric[j], justify="right" if numeric[j] else "left",
                                 overflow="fold", min_width=None if numeric[j] else min(NAME_MIN_WIDTH, _width(cols[j])))
            for i in range(shown.height):
                table.add_row(*(escape(cols[j][1][i]) for j in group))
            console.print(table)
        if df.height > max_rows:
            console.print(f"  [dim]... {df.height - max_rows} more rows (--rows N, --format json or csv for all)[/]")


def print_verdict(v: dict, console) -> None:
    """The "what limits this decode" section: how the steps were found, then each finding."""
    from rich.markup import escape

    console.print("\n[bold]What limits this decode[/]")
    console.print(f"  {escape(printable(v['steps']))}")
    if not v["findings"]:
        console.print("  [dim]no limit found past its threshold (per-step figures are needed for most)[/]")
    colour = {"limit": "red", "warning": "red", "info": "cyan", "win": "green"}
    for f in v["findings"]:
        console.print(f"  [{colour.get(f['kind'], 'white')}]{escape(f['kind'].upper())}[/] [bold]{escape(f['title'])}[/]: "
                      f"{escape(printable(f['sentence']))} [dim]({escape(f['threshold'])})[/]")


def table_console(file=None):
    """The console tables print on: a terminal's own width; piped, $COLUMNS or TABLE_WIDTH."""
    import os

    from rich.console import Console

    tty = file is None and sys.stdout.isatty()
    return Console(file=file, width=None if tty or os.environ.get("COLUMNS") else TABLE_WIDTH)


def print_analyses(trace, frames: dict | None = None, *, console=None, max_rows: int = 20, steps: int | None = None) -> dict:
    """Print every analysis of `trace` as rich tables (units converted for reading).

    The `profile` command calls this after a capture. Returns the frames it printed.
    """
    from decodeprof.analyses import run_all

    frames = frames if frames is not None else run_all(trace, steps=steps)
    console = console or table_console()
    render(trace, frames, console, max_rows=max_rows)
    return frames


def run_analyze(trace: Path, *, ncu: Path | None = None, metrics: Path | None = None, as_json: bool = False,
                csv_dir: Path | None = None, steps: int | None = None, only: list[str] | None = None, rows: int = 20,
                cache: bool = False, decode_range: str | None = None, step_range: str | None = None,
                json_path: Path | None = None, csv_stdout: bool = False, table: bool | None = None) -> None:
    """The `analyze` command's work, for its parsed options: the typer command below, and
    decodeprof.cli.main for the plain command lines it reads itself (no typer to import).
    Outputs: the tables (`table`, default when nothing else is asked), JSON on stdout
    (`as_json`) or in `json_path`, CSVs in `csv_dir` or on stdout (`csv_stdout`)."""
    from decodeprof.analyses import ANALYSES

    unknown = [n for n in (only or []) if n not in ANALYSES]
    if unknown:
        raise DecodeprofError(f"unknown analysis {', '.join(unknown)}", f"choose from: {', '.join(ANALYSES)}")
    if csv_dir is not None:
        from decodeprof.outputs import writable_folder

        writable_folder(csv_dir, "CSV files")
    if json_path is not None:
        from decodeprof.outputs import writable_file

        writable_file(json_path, "analysis JSON", inputs=tuple(p for p in (trace, ncu, metrics) if p is not None))
    if table is None:
        table = not (as_json or csv_dir is not None or json_path is not None or csv_stdout)
    from decodeprof.trace import StepRanges

    named = StepRanges(decode_range, step_range)
    loaded, frames = analyze_trace(trace, ncu, metrics, names=list(only) if only else list(ANALYSES),
                                   steps=steps, cache=cache, step_ranges=named)
    plain = (as_json, table, csv_dir, json_path, csv_stdout) in ((True, False, None, None, False), (False, True, None, None, False))
    keeper = _keeper(trace, ncu, metrics, steps=steps, only=list(only) if only else None, as_json=as_json,
                     rows=rows) if cache and plain and not named else None
    if not table:  # the tables say it first; JSON carries it in "dropped"; CSVs have no place for it
        for line in ([f"missing: {m.sentence()}" for m in loaded.missing if csv_dir is not None or csv_stdout]
                     + [f"dropped: {s}" for s in dropped_sentences(loaded.meta)]):
            print(f"warning: {line}", file=sys.stderr)
    try:
        if table or as_json:
            _print(loaded, frames, trace, as_json=as_json, csv_dir=None, rows=rows, keeper=keeper)
        if json_path is not None:
            _write_json_file(loaded, frames, trace, json_path)
        if csv_dir is not None:
            _print(loaded, frames, trace, as_json=False, csv_dir=csv_dir, rows=rows, keeper=None)
        if csv_stdout:
            _print_csvs(frames)
    except BaseException:
        if keeper is not None:
            keeper.discard()
        raise
    if keeper is not None:
        keeper.commit()


ANALYZE_FORMATS = ("table", "json", "csv")


def _write_json_file(loaded, frames: dict, trace: Path, path: Path) -> None:
    """The analyze JSON written atomically to `path` (decodeprof.present.files)."""
    from decodeprof.present.files import open_atomic

    with open_atomic(path) as fh:
        write_analyses_json(loaded, frames, str(trace), fh, chunk_rows=None if loaded.from_cache else JSON_CHUNK_ROWS)
    print(f"wrote {path}", file=sys.stderr)


def _print_csvs(frames: dict) -> None:
    """Every analysis as CSV on stdout, each after a `# name` line (as nsys stats prints its reports)."""
    for i, (name, df) in enumerate(frames.items()):
        sys.stdout.write(("\n" if i else "") + f"# {name}\n")
        sys.stdout.write(_csv_safe_frame(df).write_csv())
    sys.stdout.flush()


def _csv_safe_frame(df):
    """String cells a spreadsheet would run as a formula (=, +, -, @ first) get a leading
    apostrophe (decodeprof.commands.output.csv_safe); numbers are untouched."""
    import polars as pl

    from decodeprof.commands.output import FORMULA_LEADS

    fixes = [pl.when(pl.any_horizontal([pl.col(c).str.starts_with(lead) for lead in FORMULA_LEADS]))
             .then(pl.lit("'") + pl.col(c)).otherwise(pl.col(c)).alias(c)
             for c, t in df.schema.items() if t == pl.String]
    return df.with_columns(fixes) if fixes else df


def register(app) -> None:
    import typer

    from decodeprof.commands.output import MAX_STEPS, format_option

    @app.command("analyze")
    def analyze(
        trace: Path = typer.Argument(..., help="nsys export (.sqlite), report (.nsys-rep) or run folder."),
        ncu: Optional[Path] = typer.Option(None, "--ncu", help="Nsight Compute CSV (--csv --page raw) of the same variant."),
        metrics: Optional[Path] = typer.Option(None, "--metrics", help="The target's metrics JSON (weight bytes, config, device peak)."),
        fmt: str = format_option("table", ANALYZE_FORMATS),
        output: Optional[Path] = typer.Option(None, "-o", "--output", metavar="PATH", help="Write the JSON to this file, or the CSVs (one per analysis) into this folder, instead of stdout; with --format json,csv: PATH.json and the folder PATH."),
        as_json: bool = typer.Option(False, "--json", hidden=True, help="Same as --format json."),
        csv_dir: Optional[Path] = typer.Option(None, "--csv", hidden=True, help="Same as --format csv -o DIR."),
        steps: Optional[int] = typer.Option(None, "--steps", min=1, max=MAX_STEPS, help="Decode steps per decode range, when the metrics JSON lacks config.steps (graph variants)."),
        decode_range: Optional[str] = typer.Option(None, "--decode-range", help=DECODE_RANGE_HELP),
        step_range: Optional[str] = typer.Option(None, "--step-range", help=STEP_RANGE_HELP),
        only: Optional[list[str]] = typer.Option(None, "--only", help="Run only this analysis (repeatable)."),
        rows: int = typer.Option(20, "--rows", min=1, help="Rows shown per table on the terminal."),
        cache: bool = typer.Option(False, "--cache", help="Keep/reuse loaded frames and analysis results as Parquet beside the export."),
    ) -> None:
        """Run every analysis on a trace and print what limits its decode, then its tables, JSON or CSVs.

        Example: decodeprof analyze runs/graph/trace.sqlite --metrics runs/graph/metrics.json

        Machine-readable: --format json (one object, documented in docs/analyze.md), --format csv
        (each table after a "# name" line; with -o DIR one file per analysis).

        Any decode trace works: decodeprof analyze hf_generate.sqlite (steps found from CUDA graph
        replays or the repeating kernel pattern), or name your ranges: --step-range engine:next_token
        """
        from decodeprof.commands.output import parse_formats

        if as_json and csv_dir is not None:
            raise typer.BadParameter("--json and --csv are exclusive: pick one output")
        if as_json or csv_dir is not None:  # the older spellings
            fmt, output = ("json", None) if as_json else ("csv", csv_dir)
        request = parse_formats(fmt, ANALYZE_FORMATS, output=output)
        several = len(request.file_formats) > 1
        run_analyze(trace, ncu=ncu, metrics=metrics, steps=steps, only=list(only) if only else None, rows=rows,
                    cache=cache, decode_range=decode_range, step_range=step_range, table=request.wants("table"),
                    as_json=request.wants("json") and output is None,
                    json_path=(output.with_suffix(".json") if several else output) if request.wants("json") and output else None,
                    csv_dir=(output.with_suffix("") if several else output) if request.wants("csv") and output else None,
                    csv_stdout=request.wants("csv") and output is None)


def _keeper(trace: Path, ncu: Path | None, metrics: Path | None, *, steps: int | None, only: list[str] | None,
            as_json: bool, rows: int):
    """An output_cache.Keeper for what this command prints, or None where it is not kept
    (not a plain form, or tables on a terminal)."""
    from decodeprof.commands import analyze_cache as output_cache

    found = output_cache.inputs(trace, ncu, metrics)
    if found is None or found != _inputs(trace, ncu, metrics):
        return None
    mode = {"json": True} if as_json else output_cache.table_mode(rows, sys.stdout)
    if mode is None:
        return None
    k = output_cache.key(*found, steps=steps, only=only, mode=mode)
    head = output_cache.JSON_HEAD + json.dumps(str(trace)).encode() if as_json else b""
    return output_cache.Keeper(found[0], k, skip=head)


def _print(loaded: Loaded, frames: dict, trace: Path, *, as_json: bool, csv_dir: Path | None, rows: int, keeper) -> None:
    if as_json:
        from decodeprof.commands.analyze_cache import Tee

        # Chunked only after analysing: then the text would stack on memory the analyses
        # left mapped; results from the cache are all there is in memory.
        out = sys.stdout.buffer if keeper is None else Tee(sys.stdout.buffer, keeper)
        write_analyses_json(loaded, frames, str(trace), out, chunk_rows=None if loaded.from_cache else JSON_CHUNK_ROWS)
    elif csv_dir is not None:
        import typer

        for path in write_csvs(frames, csv_dir):
            typer.echo(str(path))
    else:
        console = None
        if keeper is not None:
            from decodeprof.commands.analyze_cache import TextTee

            console = table_console(file=TextTee(sys.stdout, keeper))  # not a terminal: as print_analyses
        print_analyses(loaded, frames, console=console, max_rows=rows)
