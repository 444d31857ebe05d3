"""The `decodeprof` command line. Each command lives in decodeprof/commands/<name>.py and
registers itself through `register(app)`; heavy imports happen inside command bodies so
`decodeprof --help` stays fast and torch is never imported here."""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console
from rich.markup import escape

from decodeprof.errors import DecodeprofError

app = typer.Typer(
    name="decodeprof",
    help="Profile LLM decode-loop optimizations on NVIDIA GPUs and explain why each one wins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMAND_MODULES = ("targets", "profile", "doctor", "analyze", "report", "diff")

for _name in COMMAND_MODULES:
    try:
        _module = importlib.import_module(f"decodeprof.commands.{_name}")
    except ModuleNotFoundError as exc:  # a command module not written yet
        if exc.name != f"decodeprof.commands.{_name}":
            raise
        continue
    _module.register(app)


def main() -> None:
    """Console entry point: run the app, turning expected errors into one clear message."""
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        app()  # standalone: typer handles usage errors and --help itself
    except DecodeprofError as exc:
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
        if exc.hint:
            err.print(f"[bold]hint:[/] {escape(exc.hint)}", markup=True)
        sys.exit(exc.exit_code)

if __name__ == "__main__":
    main()
