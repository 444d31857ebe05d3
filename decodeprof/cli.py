"""The `decodeprof` command line. Each command lives in decodeprof/commands/<name>.py and
registers itself through `register(app)`; heavy imports happen inside command bodies so
`decodeprof --help` stays fast and torch is never imported here.

`main` first offers the command line to decodeprof.load.output_cache: a repeated
`analyze ... --cache` is printed from the kept bytes before typer, rich or polars load."""

from __future__ import annotations

import importlib
import sys

COMMAND_MODULES = ("targets", "profile", "doctor", "analyze", "report", "diff")
_APP = []


def build_app():
    """The typer app with every command module registered (built once)."""
    if _APP:
        return _APP[0]
    import typer

    app = typer.Typer(
        name="decodeprof",
        help="Profile LLM decode-loop optimizations on NVIDIA GPUs and explain why each one wins.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"decodeprof.commands.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"decodeprof.commands.{name}":
                raise
            continue
        module.register(app)
    _APP.append(app)
    return app


def __getattr__(name: str):
    if name == "app":  # `from decodeprof.cli import app` (tests, embedding) builds it on first use
        return build_app()
    raise AttributeError(name)


def main() -> None:
    """Console entry point: run the app, turning expected errors into one clear message."""
    argv = sys.argv[1:]
    if argv[:1] == ["analyze"] and "--cache" in argv:
        from decodeprof.load.output_cache import serve

        if serve(argv):
            return
    app = build_app()
    from rich.console import Console
    from rich.markup import escape

    from decodeprof.errors import DecodeprofError

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
