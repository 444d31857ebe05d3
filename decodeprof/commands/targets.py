"""`decodeprof targets`, `decodeprof run`, `decodeprof bench`: list, run and compare targets."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from decodeprof.bench import DEFAULT_TIMEOUT_S
from decodeprof.commands.output import format_option, output_option

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
RUN_FORMATS = ("table", "json")
BENCH_FORMATS = ("table", "json", "csv")
MAX_GPUS = 64  # torchrun ranks on one host; more is a typo, not a machine


def register(app: typer.Typer) -> None:
    app.command("targets")(list_targets)
    app.command("run", context_settings=PASS_THROUGH, epilog=_target_flags_epilog())(run)
    app.command("bench")(bench)


def _target_flags_epilog() -> str:
    """The flags every target takes, for `run --help` (decodeprof_targets/flags.py: no torch import)."""
    from decodeprof_targets.flags import help_lines

    return "Target flags (after the label):\n\n\b\n" + "\n".join(
        "  " + line for line in help_lines())


def list_targets(
    single_gpu: bool = typer.Option(False, "--single-gpu", help="only the targets that run as one process on one device"),
    names: bool = typer.Option(False, "--names", help="labels only, one per line (for scripts)"),
) -> None:
    """List the decode targets, one line each.

    Example: decodeprof targets --single-gpu --names
    """
    from decodeprof.capture.launch import single_gpu_labels, target_labels

    keep = set(single_gpu_labels()) if single_gpu else None
    for label, summary in target_labels().items():
        if keep is None or label in keep:
            typer.echo(label if names else f"{label:<18} {summary}")


def run(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="target label (see `decodeprof targets`)"),
    gpus: int = typer.Option(1, "--gpus", min=1, max=MAX_GPUS, help="processes for multi-GPU targets (torchrun)"),
    fmt: str = format_option("table", RUN_FORMATS),
    output: Optional[Path] = output_option("metrics JSON"),
) -> None:
    """Run one target and print its metrics; other flags go to the target.

    The target's own flags follow the label; they are listed below.

    Example: decodeprof run graph --batch 8 --format json -o graph.json
    """
    from decodeprof.capture.launch import target_command
    from decodeprof.commands.output import parse_formats
    from decodeprof.outputs import writable_file

    request = parse_formats(fmt, RUN_FORMATS, output=output)
    if output is not None:
        writable_file(output, "metrics JSON")
    flags = list(ctx.args)
    if request.formats == ("json",) and output is None:
        flags.append("--json")
    command, env = target_command(target, flags, output, gpus=gpus)
    if env is None:  # one process: its output as it comes, a spinner with the elapsed time on stderr
        import time

        from rich.markup import escape

        console = Console(stderr=True, highlight=False)
        start = time.perf_counter()
        with _elapsed_progress(console) as progress:
            progress.add_task(f"running {escape(target)} (build, warm-up, measured iterations) ...", total=None)
            status = subprocess.call(command)
        if status == 0:
            console.print(f"{escape(target)} done in {time.perf_counter() - start:.1f} s")
        raise typer.Exit(status)
    # torchrun: when the ranks ended with their own error line, show that, not torchrun's
    # ChildFailedError traceback about it
    proc = subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True)
    said = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "hint:"))]
    if proc.returncode != 0 and said:
        sys.stderr.write("\n".join(dict.fromkeys(said)) + "\n")
        raise typer.Exit(2)
    sys.stderr.write(proc.stderr)
    raise typer.Exit(proc.returncode)


def bench(
    targets: Optional[list[str]] = typer.Argument(None, help="target labels (default: every single-GPU target, see `decodeprof targets --single-gpu`)"),
    args: str = typer.Option("", "--args", help="flags for every target, e.g. '--host-payload-mb 32'"),
    check: bool = typer.Option(False, "--check", help="fail on a regression against the expectations file"),
    update: bool = typer.Option(False, "--update", help="rewrite the expectations file from this run"),
    expectations: Optional[Path] = typer.Option(None, "--expectations", help="expectations file (default: decodeprof_targets/expectations/<gpu>.json)"),
    fmt: str = format_option("table", BENCH_FORMATS),
    output: Optional[Path] = output_option("results (JSON: every target's metrics; CSV: one row per target)"),
    timeout: float = typer.Option(DEFAULT_TIMEOUT_S, "--timeout", min=1.0, metavar="SECONDS", help="stop a target that runs longer than this (it is reported as failed; the rest go on)"),
    json_out: Optional[Path] = typer.Option(None, "--json-out", hidden=True, help="same as --format table,json -o PATH"),
) -> None:
    """Run several targets side by side, with speedups over baseline from the same run.

    Each target runs in its own process; one that fails or passes --timeout is reported and
    the rest go on. Times are medians over the target's measured iterations (N = --iters),
    with min-max; a timing whose max/min exceeds the unstable-spread threshold is flagged.

    Example: decodeprof bench baseline pinned graph --args "--host-payload-mb 32" --check
    """
    import time

    from rich.markup import escape

    from decodeprof import expectations as exp
    from decodeprof.bench import run_target
    from decodeprof.capture.launch import single_gpu_labels, target_labels
    from decodeprof.commands.output import parse_formats
    from decodeprof.errors import RegressionError, TargetError
    from decodeprof.outputs import writable_file

    if json_out is not None:  # the older spelling: the table on the terminal and the JSON file
        fmt, output = ("table,json" if fmt == "table" else fmt), json_out
    request = parse_formats(fmt, BENCH_FORMATS, output=output)
    for f in request.file_formats:
        if request.path_for(f) is not None:
            writable_file(request.path_for(f), f"results {f.upper()}")
    if expectations is not None and update:
        writable_file(expectations, "expectations file")
    labels = targets or single_gpu_labels()
    known = target_labels()
    unknown = [t for t in labels if t not in known]
    if unknown:
        raise TargetError(f"unknown target(s) {', '.join(unknown)}", f"choose from: {', '.join(known)}")
    console = Console(stderr=True, highlight=False)
    results: dict[str, dict] = {}
    failed: dict[str, str] = {}
    with _elapsed_progress(console) as progress:
        task = progress.add_task("", total=len(labels))
        for i, label in enumerate(labels, 1):
            progress.update(task, description=f"[{i}/{len(labels)}] running {escape(label)}")
            start = time.perf_counter()
            try:
                results[label] = run_target(label, shlex.split(args), timeout_s=timeout)
            except TargetError as exc:  # keep going: one broken variant must not hide the others
                failed[label] = exc.message
                console.print(f"[red]failed[/] {escape(label)} after {time.perf_counter() - start:.0f} s: {escape(exc.message)}")
            else:
                console.print(f"[green]done[/] {escape(label)} in {time.perf_counter() - start:.0f} s")
            progress.advance(task)
    if not results:
        raise TargetError("every target failed", "see the errors above")
    if request.wants("table"):
        table_console = Console() if sys.stdout.isatty() else Console(width=100)
        table_console.print(results_table(results))
        for line in unstable_lines(results):
            table_console.print(line, markup=False, highlight=False)
    _write_results(request, results)
    card = next(iter(results.values()))["device"]["name"]
    path = expectations or exp.path_for(exp.gpu_kind(card))
    command = "decodeprof bench " + " ".join(labels) + (f" --args {shlex.quote(args)}" if args else "")
    if update:
        previous = exp.load(path) if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(exp.updated(previous, results, command), indent=2) + "\n")
        console.print(f"expectations written: {escape(str(path))}")
    if failed:
        raise TargetError(f"{len(failed)} target(s) failed: {', '.join(failed)}", "see each target's error above")
    if check:
        regressions = exp.check(exp.load(path), results)
        if regressions:
            raise RegressionError("regression beyond tolerance:\n  " + "\n  ".join(r.sentence() for r in regressions),
                                  f"investigate, or accept the new numbers with --update ({path})")
        console.print(f"[green]no regression[/] against {escape(str(path))}")


def _elapsed_progress(console: Console):
    """A spinner, what is running and the time it has taken, on `console` (gone when done)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                    transient=True)


TIMINGS = (("ttft_ms", "TTFT ms", 1.0), ("tpot_ms", "TPOT µs", 1e3), ("decode_ms", "decode ms", 1.0))


def spread(result: dict, key: str) -> float | None:
    """max / min of one timing over the target's measured iterations (None when unknown)."""
    m = result["metrics"].get(key) or {}
    lo, hi = m.get("min"), m.get("max")
    return hi / lo if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > 0 else None


def unstable_lines(results: dict[str, dict]) -> list[str]:
    """One line per target timing whose max/min exceeds UNSTABLE_SPREAD (host noise)."""
    from decodeprof.thresholds import UNSTABLE_SPREAD

    out = []
    for label, r in results.items():
        for key, name, _ in TIMINGS:
            s = spread(r, key)
            if s is not None and s > UNSTABLE_SPREAD:
                out.append(f"! {label}: {name.split()[0]} max/min {s:.2f} over {r['config'].get('iters', '?')} "
                           f"iterations (> {UNSTABLE_SPREAD:g}: host noise, compare with care)")
    return out


def results_table(results: dict[str, dict]) -> Table:
    """Medians (min-max) per target over its N measured iterations, with speedups over the
    baseline of the same run. Fits 100 columns: numbers never wrap, the title may."""
    from rich import box

    from decodeprof.thresholds import UNSTABLE_SPREAD

    first = next(iter(results.values()))
    c = first["config"]
    iters = {r["config"].get("iters") for r in results.values()}
    n = f"{iters.pop()} iterations" if len(iters) == 1 else "N iterations (N in the JSON)"
    title = (f"{first['device']['name']}, torch {first['device']['torch']}: batch {c['batch']}, prompt {c['prompt_len']}, "
             f"steps {c['steps']}, {c['dtype']}; median (min-max) over {n}")
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    for col in ("target", "TTFT ms", "TPOT µs", "TPOT range", "tok/s", "decode ×", "total ×", "GB/s", "tokens"):
        table.add_column(col, justify="left" if col in ("target", "tokens") else "right",
                         no_wrap=col != "tokens", overflow="fold")
    base = results.get("baseline")

    def med(r: dict, key: str) -> float | None:
        return r["metrics"].get(key, {}).get("median")

    for label, r in results.items():
        decode_x = total_x = ""
        if base and med(r, "decode_ms") and med(base, "decode_ms"):
            decode_x = f"{med(base, 'decode_ms') / med(r, 'decode_ms'):.2f}"
        if base and med(r, "total_ms") and med(base, "total_ms"):
            total_x = f"{med(base, 'total_ms') / med(r, 'total_ms'):.2f}"
        corr = r["correctness"]
        tokens = "match" if corr["tokens_match"] else f"{corr['token_agreement']:.0%}"
        cells = []
        for key, _, scale in TIMINGS[:2]:
            v = med(r, key)
            s = spread(r, key)
            cells.append(_fmt(None if v is None else v * scale) + ("!" if s is not None and s > UNSTABLE_SPREAD else ""))
        tpot = r["metrics"].get("tpot_ms") or {}
        tpot_range = (f"{_fmt(tpot['min'] * 1e3)}-{_fmt(tpot['max'] * 1e3)}"
                      if isinstance(tpot.get("min"), (int, float)) and isinstance(tpot.get("max"), (int, float)) else "-")
        table.add_row(label, *cells, tpot_range, _fmt(med(r, "tokens_per_s")),
                      decode_x, total_x, _fmt(med(r, "weight_gbps")), tokens)
    return table


CSV_FIELDS = ("target", "card", "iterations", "ttft_ms_median", "ttft_ms_min", "ttft_ms_max", "tpot_ms_median",
              "tpot_ms_min", "tpot_ms_max", "decode_ms_median", "total_ms_median", "tokens_per_s_median",
              "weight_gbps_median", "decode_speedup", "total_speedup", "unstable", "tokens_match", "token_agreement",
              "choice_agreement")


def csv_rows(results: dict[str, dict]) -> list[dict]:
    """One row per target (base units of the metrics JSON: ms, tokens/s, GB/s)."""
    from decodeprof.thresholds import UNSTABLE_SPREAD

    base = results.get("baseline")
    rows = []
    for label, r in results.items():
        m = r["metrics"]

        def get(key: str, stat: str):
            return (m.get(key) or {}).get(stat)

        def speedup(key: str):
            return get(key, "median") and base and (base["metrics"].get(key) or {}).get("median", 0) / get(key, "median")

        spreads = [s for s in (spread(r, k) for k, _, _ in TIMINGS) if s is not None]
        rows.append({
            "target": label, "card": r["device"]["name"], "iterations": r["config"].get("iters"),
            "ttft_ms_median": get("ttft_ms", "median"), "ttft_ms_min": get("ttft_ms", "min"), "ttft_ms_max": get("ttft_ms", "max"),
            "tpot_ms_median": get("tpot_ms", "median"), "tpot_ms_min": get("tpot_ms", "min"), "tpot_ms_max": get("tpot_ms", "max"),
            "decode_ms_median": get("decode_ms", "median"), "total_ms_median": get("total_ms", "median"),
            "tokens_per_s_median": get("tokens_per_s", "median"), "weight_gbps_median": get("weight_gbps", "median"),
            "decode_speedup": speedup("decode_ms") or None, "total_speedup": speedup("total_ms") or None,
            "unstable": any(s > UNSTABLE_SPREAD for s in spreads),
            "tokens_match": r["correctness"].get("tokens_match"), "token_agreement": r["correctness"].get("token_agreement"),
            "choice_agreement": r["correctness"].get("choice_agreement"),
        })
    return rows


def _write_results(request, results: dict[str, dict]) -> None:
    from decodeprof.commands.output import write_csv, write_text

    if request.wants("json"):
        write_text(request.path_for("json"), json.dumps(results, indent=2) + "\n")
    if request.wants("csv"):
        write_csv(request.path_for("csv"), CSV_FIELDS, csv_rows(results))


def _fmt(value: float | None) -> str:
    """4 significant digits, without exponents (tok/s in the tens of thousands read as such)."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"
