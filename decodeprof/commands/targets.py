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

PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


def register(app: typer.Typer) -> None:
    app.command("targets")(list_targets)
    app.command("run", context_settings=PASS_THROUGH)(run)
    app.command("bench")(bench)


def list_targets(
    single_gpu: bool = typer.Option(False, "--single-gpu", help="only the targets that run as one process on one device"),
    names: bool = typer.Option(False, "--names", help="labels only, one per line (for scripts)"),
) -> None:
    """List the decode targets, one line each.

    Example: decodeprof targets --single-gpu --names
    """
    from decodeprof.bench import single_gpu_labels, target_labels

    keep = set(single_gpu_labels()) if single_gpu else None
    for label, summary in target_labels().items():
        if keep is None or label in keep:
            typer.echo(label if names else f"{label:<18} {summary}")


def run(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="target label (see `decodeprof targets`)"),
    gpus: int = typer.Option(1, "--gpus", min=1, help="processes for multi-GPU targets (torchrun)"),
) -> None:
    """Run one target and print its metrics; other flags go to the target.

    The target's flags and their defaults: python -m targets TARGET --help.

    Example: decodeprof run graph --batch 8 --json
    """
    from decodeprof.bench import target_command

    command, env = target_command(target, list(ctx.args), gpus=gpus)
    if env is None:  # one process: its output as it comes
        raise typer.Exit(subprocess.call(command))
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
    expectations: Optional[Path] = typer.Option(None, "--expectations", help="expectations file (default: targets/expectations/<gpu>.json)"),
    json_out: Optional[Path] = typer.Option(None, "--json-out", help="write all results as one JSON file"),
) -> None:
    """Run several targets side by side, with speedups over baseline from the same run.

    Each target runs in its own process; one that fails is reported and the rest go on.

    Example: decodeprof bench baseline pinned graph --args "--host-payload-mb 32" --check
    """
    from decodeprof import expectations as exp
    from decodeprof.bench import run_target, single_gpu_labels, target_labels
    from decodeprof.errors import RegressionError, TargetError
    from decodeprof.outputs import writable_file

    if json_out is not None:
        writable_file(json_out, "results JSON")
    if expectations is not None and update:
        writable_file(expectations, "expectations file")
    labels = targets or single_gpu_labels()
    known = target_labels()
    unknown = [t for t in labels if t not in known]
    if unknown:
        raise TargetError(f"unknown target(s) {', '.join(unknown)}", f"choose from: {', '.join(known)}")
    console = Console(stderr=True)
    results: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for label in labels:
        with console.status(f"running {label} ..."):
            try:
                results[label] = run_target(label, shlex.split(args))
            except TargetError as exc:  # keep going: one broken variant must not hide the others
                failed[label] = exc.message
                console.print(f"[red]failed[/] {label}: {exc.message}")
                continue
        console.print(f"[green]done[/] {label}")
    if not results:
        raise TargetError("every target failed", "see the errors above")
    Console(width=None if sys.stdout.isatty() else 200).print(results_table(results))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(results, indent=2) + "\n")
    card = next(iter(results.values()))["device"]["name"]
    path = expectations or exp.path_for(exp.gpu_kind(card))
    command = "decodeprof bench " + " ".join(labels) + (f" --args {shlex.quote(args)}" if args else "")
    if update:
        previous = exp.load(path) if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(exp.updated(previous, results, command), indent=2) + "\n")
        console.print(f"expectations written: {path}")
    if failed:
        raise TargetError(f"{len(failed)} target(s) failed: {', '.join(failed)}", "see each target's error above")
    if check:
        regressions = exp.check(exp.load(path), results)
        if regressions:
            raise RegressionError("regression beyond tolerance:\n  " + "\n  ".join(r.sentence() for r in regressions),
                                  f"investigate, or accept the new numbers with --update ({path})")
        console.print(f"[green]no regression[/] against {path}")


def results_table(results: dict[str, dict]) -> Table:
    """Medians per target, with speedups over the baseline of the same run."""
    first = next(iter(results.values()))
    title = f"{first['device']['name']} | torch {first['device']['torch']} | batch {first['config']['batch']}, " \
            f"prompt {first['config']['prompt_len']}, steps {first['config']['steps']}, {first['config']['dtype']}"
    table = Table(title=title)
    for col in ("target", "TTFT ms", "TPOT ms", "decode ms", "total ms", "tok/s", "decode speedup",
                "total speedup", "weight GB/s", "tokens"):
        table.add_column(col, justify="left" if col == "target" else "right")
    base = results.get("baseline")

    def med(r: dict, key: str) -> float | None:
        return r["metrics"].get(key, {}).get("median")

    for label, r in results.items():
        decode_x = total_x = ""
        if base and med(r, "decode_ms") and med(base, "decode_ms"):
            decode_x = f"{med(base, 'decode_ms') / med(r, 'decode_ms'):.2f}x"
        if base:
            total_x = f"{med(base, 'total_ms') / med(r, 'total_ms'):.2f}x"
        c = r["correctness"]
        tokens = "match" if c["tokens_match"] else f"{c['token_agreement']:.0%} agree"
        cells = [label] + [_fmt(med(r, k)) for k in ("ttft_ms", "tpot_ms", "decode_ms", "total_ms", "tokens_per_s")]
        spread = r["metrics"].get("decode_ms")
        if spread:
            cells[3] += f" ({spread['min']:.3g}-{spread['max']:.3g})"
        table.add_row(*cells, decode_x, total_x, _fmt(med(r, "weight_gbps")), tokens)
    return table


def _fmt(value: float | None) -> str:
    """4 significant digits, without exponents (tok/s in the tens of thousands read as such)."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}"


