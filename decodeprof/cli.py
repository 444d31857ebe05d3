"""The `decodeprof` command line. Each command lives in decodeprof/commands/<name>.py and
registers itself through `register(app)`; heavy imports happen inside command bodies so
`decodeprof --help` stays fast and torch is never imported here.

`main` first offers the command line to decodeprof.commands.analyze_cache: a repeated
`analyze ... --cache` is printed from the kept bytes before typer, rich or polars load."""

from __future__ import annotations

import importlib
import os
import sys

COMMAND_MODULES = ("targets", "profile", "doctor", "analyze", "report", "diff", "timeline")
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
        rich_markup_mode=None,  # plain help, as nsys and other command-line tools print it
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    @app.callback(invoke_without_command=True)
    def root(version: bool = typer.Option(False, "--version", help="Print the version and exit.", is_eager=True)) -> None:
        if version:
            typer.echo(f"decodeprof {__version__()}")
            raise typer.Exit()

    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"decodeprof.commands.{name}")
        except ModuleNotFoundError as exc:  # a command module not written yet
            if exc.name != f"decodeprof.commands.{name}":
                raise
            continue
        module.register(app)
    for command in app.registered_commands:
        _name_metavars(command.callback)
    _APP.append(app)
    return app


def _name_metavars(callback) -> None:
    """Give every option and argument without its own metavar a plain one (N, X, PATH, TEXT,
    the argument's name in capitals) instead of the parser's `<int range>`, `<list[Path]>`."""
    import inspect
    import typing
    from pathlib import Path

    from typer.models import ArgumentInfo, OptionInfo

    hints = typing.get_type_hints(callback)
    for name, param in inspect.signature(callback).parameters.items():
        info = param.default
        if not isinstance(info, (OptionInfo, ArgumentInfo)) or info.metavar is not None:
            continue
        kind = hints.get(name)
        while typing.get_origin(kind) in (typing.Union, list) or str(typing.get_origin(kind)) == "types.UnionType":
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if isinstance(info, ArgumentInfo):
            info.metavar = name.upper()
        elif kind is bool:
            continue  # a flag takes no value
        else:
            info.metavar = {int: "N", float: "X", Path: "PATH"}.get(kind, "TEXT")


def _broken_pipe(exc: BaseException) -> bool:
    """A write to a closed pipe: Python's BrokenPipeError, or polars' writers' OSError
    ("Broken pipe (os error 32)"), also when wrapped in another exception."""
    import errno

    while exc is not None:
        if isinstance(exc, BrokenPipeError) or getattr(exc, "errno", None) == errno.EPIPE or "Broken pipe" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _stdout_is_devnull() -> bool:
    try:
        out, null = os.fstat(sys.stdout.fileno()), os.stat(os.devnull)
    except (OSError, ValueError):
        return False
    return (out.st_dev, out.st_ino) == (null.st_dev, null.st_ino)


def __version__() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("decodeprof")
    except PackageNotFoundError:  # run from a checkout without installing
        return "0+unknown"


def __getattr__(name: str):
    if name == "app":  # `from decodeprof.cli import app` (tests, embedding) builds it on first use
        return build_app()
    raise AttributeError(name)


def main() -> None:
    """Console entry point: run the app, turning expected errors into one clear message.

    `analyze` command lines of the plain form (output_cache.parse: a trace and the options
    --json --cache --rows --steps --metrics --ncu --only) skip typer, whose import alone
    (click, pydantic) takes ~0.1 s: a kept output is printed (output_cache.serve), else
    the command's own function runs with the parsed options. Any other form goes to typer."""
    from decodeprof.errors import DecodeprofError

    argv = sys.argv[1:]
    try:
        if argv[:1] == ["analyze"]:
            # polars' allocator (jemalloc, read at its first allocation: polars is not
            # imported yet) keeps freed pages per arena; one arena shares them between
            # polars' threads: ~100 MB lower peak at 1M kernels, same time. A value set by
            # the user wins.
            os.environ.setdefault("_RJEM_MALLOC_CONF", "narenas:1")
            # numpy (when something imports it) starts OpenBLAS threads
            # that spin on the second core while polars works; analyze does no BLAS.
            os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
            from decodeprof.commands import analyze_cache as output_cache

            if "--cache" in argv and output_cache.serve(argv):
                return
            opts = output_cache.parse(argv, need_cache=False)
            if opts is not None:
                from pathlib import Path

                from decodeprof.commands.analyze import run_analyze

                run_analyze(Path(opts["trace"]), ncu=Path(opts["ncu"]) if "ncu" in opts else None,
                            metrics=Path(opts["metrics"]) if "metrics" in opts else None, as_json=bool(opts.get("json")),
                            steps=opts.get("steps"), only=opts["only"] or None, rows=opts.get("rows", 20),
                            cache=bool(opts.get("cache")))
                # Done and flushed: end without tearing down the frames, results and modules
                # one by one (~0.1 s at 1M kernels); the OS takes the memory back at once.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)
        build_app()()  # standalone: typer handles usage errors and --help itself
    except KeyboardInterrupt:  # as typer ends it: no traceback, exit status 130 (128 + SIGINT)
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 1 and _stdout_is_devnull():  # rich's Console.on_broken_pipe: the same closed pipe
            os._exit(141)
        raise
    except OSError as exc:
        if not _broken_pipe(exc):
            raise
        # the reader went away (`| head`): end quietly as other tools do, with SIGPIPE's
        # status; stdout is pointed at /dev/null so the flush at exit cannot raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os._exit(141)
    except DecodeprofError as exc:
        from rich.console import Console
        from rich.markup import escape

        err = Console(stderr=True, highlight=False, soft_wrap=True)
        err.print(f"[bold red]error:[/] {escape(exc.message)}", markup=True)
        if exc.hint:
            err.print(f"[bold]hint:[/] {escape(exc.hint)}", markup=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
