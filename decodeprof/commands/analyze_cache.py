"""`analyze --cache` output kept byte for byte, served without polars, rich or typer.

A repeated `decodeprof analyze TRACE --cache [--json]` prints what it printed before. The
Parquet results cache (decodeprof.load.cache) still needs polars and the JSON or table
writers (~0.5-0.7 s at 1M kernels); this one keeps the printed bytes themselves, under
<export>.decodeprof-cache/outputs/<digest of the key>.out beside <digest>.key.json, and the
console entry point (decodeprof.cli.main) serves a hit before importing anything heavy.

The key holds everything the printed bytes depend on, so a hit is exact:
  - the export (its path as printed, size, mtime ns), the ncu CSV and metrics JSON that the
    normal path would read (explicit or found beside the trace: path, size, mtime ns, or
    their absence), --steps, --only (in order), --json or the table options (--rows, the
    stdout encoding and every environment variable rich reads for its layout);
  - the code: a hash of every decodeprof source file and the names (with versions) of the
    packages installed beside polars, so a changed analysis, writer or dependency misses.
JSON output is kept without its "trace" value (the path as typed), which is put back.
Only plain forms are served (a .sqlite or a run folder with trace.sqlite, stdout not a
terminal for tables); anything else, and any miss or unreadable entry, takes the normal
path, which writes the entry again. Entries of another export state or code are removed
when one is written. Standard library only: this module runs before polars is imported.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from decodeprof.commands.output import MAX_STEPS
from decodeprof.load.fingerprint import file_key, fingerprint

FORMAT = 1
PACKAGE = Path(__file__).resolve().parent.parent
# Environment variables rich's Console reads when laying out or colouring output.
RICH_ENV = ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "TERM", "COLORTERM", "COLUMNS", "LINES",
            "JUPYTER_COLUMNS", "JUPYTER_LINES", "TERM_PROGRAM", "DATABRICKS_RUNTIME_VERSION", "PYCHARM_HOSTED")
JSON_HEAD = b'{"version": 1, "trace": '  # analyze --json's first bytes, then the trace as typed


_CODE: list[str] = []


def code_key() -> str:
    """Hash of decodeprof's sources and of the distributions installed beside polars."""
    if not _CODE:
        h = hashlib.sha256()
        for path in sorted(PACKAGE.rglob("*.py")):
            h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
        import importlib.util

        spec = importlib.util.find_spec("polars")
        if spec is not None and spec.submodule_search_locations:
            site = Path(list(spec.submodule_search_locations)[0]).parent
            h.update("\0".join(sorted(n for n in os.listdir(site) if n.endswith(".dist-info"))).encode())
        h.update(sys.version.encode())
        _CODE.append(h.hexdigest())
    return _CODE[0]


def inputs(trace: Path, ncu: Path | None, metrics: Path | None) -> tuple[Path, Path | None, Path | None] | None:
    """(export, ncu, metrics) as `analyze` would read them, for the plain forms only: a
    .sqlite file or a folder holding trace.sqlite; None for anything else."""
    if trace.is_dir():
        export = trace / "trace.sqlite"
        if not export.is_file():
            return None
        folder = trace
    elif trace.suffix == ".sqlite" and trace.is_file():
        export, folder = trace, trace.parent
    else:
        return None
    metrics = metrics or (folder / "metrics.json" if (folder / "metrics.json").is_file() else None)
    ncu = ncu or (folder / "ncu.csv" if (folder / "ncu.csv").is_file() else None)
    return export, ncu, metrics


def key(export: Path, ncu: Path | None, metrics: Path | None, *, steps: int | None, only: list[str] | None,
        mode: dict) -> dict:
    """The output's key (see the module docstring); `mode` is {"json": True} or the table options."""
    return {"format": FORMAT, "export": {**fingerprint(export), "printed": str(export)},
            "ncu_csv": file_key(ncu), "metrics_json": file_key(metrics), "steps": steps, "only": only,
            "mode": mode, "code": code_key()}


def table_mode(rows: int, stdout) -> dict | None:
    """The table options a printed table depends on; None on a terminal (not kept)."""
    isatty = getattr(stdout, "isatty", None)
    if isatty is None or isatty():
        return None
    return {"rows": rows, "encoding": getattr(stdout, "encoding", None), "errors": getattr(stdout, "errors", None),
            "env": {k: os.environ.get(k) for k in RICH_ENV}}


def _paths(export: Path, k: dict) -> tuple[Path, Path]:
    digest = hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:24]
    folder = export.with_name(export.name + ".decodeprof-cache") / "outputs"
    return folder / f"{digest}.key.json", folder / f"{digest}.out"


def lookup(export: Path, k: dict) -> Path | None:
    """The kept output's file for key `k`, or None."""
    key_path, out_path = _paths(export, k)
    try:
        if json.loads(key_path.read_text()) != k or not out_path.is_file():
            return None
    except (OSError, ValueError):
        return None
    return out_path


class Keeper:
    """A binary sink that keeps what it is given in a temporary file; `commit` puts it in
    place under its key, `discard` drops it. Never raises for an unwritable cache."""

    def __init__(self, export: Path, k: dict, skip: bytes = b"") -> None:
        self.key_path, self.out_path = _paths(export, k)
        self.key, self.export, self.skip = k, export, skip
        self.seen = b""
        self.tmp = self.out_path.with_name(f".{self.out_path.name}.{os.getpid()}.tmp")
        try:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.fh = open(self.tmp, "wb")
        except OSError:
            self.fh = None

    def write(self, data) -> None:
        if self.fh is None:
            return
        if len(self.seen) < len(self.skip):  # the part that is not kept; checked, not assumed
            need = len(self.skip) - len(self.seen)
            self.seen += bytes(data[:need])
            data = data[need:]
            if not self.skip.startswith(self.seen):
                self.discard()
                return
        try:
            self.fh.write(data)
        except OSError:
            self.discard()

    def discard(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None
            self.tmp.unlink(missing_ok=True)

    def commit(self) -> None:
        if self.fh is None:
            return
        try:
            self.fh.close()
            self.fh = None
            if self.seen != self.skip:
                raise OSError("output shorter than its head")
            for old in self.key_path.parent.glob("*.key.json"):  # other export states or code
                try:
                    other = json.loads(old.read_text())
                    stale = other.get("export") != self.key["export"] or other.get("code") != self.key["code"]
                except (OSError, ValueError, AttributeError):
                    stale = True
                if stale:
                    old.unlink(missing_ok=True)
                    old.with_name(old.name[:-len(".key.json")] + ".out").unlink(missing_ok=True)
            os.replace(self.tmp, self.out_path)
            tmp_key = self.key_path.with_name(f".{self.key_path.name}.{os.getpid()}.tmp")
            tmp_key.write_text(json.dumps(self.key))
            os.replace(tmp_key, self.key_path)  # last: a key names only a complete output
        except OSError:
            self.tmp.unlink(missing_ok=True)


class Tee:
    """Writes to `out` (a binary stream) and to a Keeper."""

    def __init__(self, out, keeper: Keeper) -> None:
        self.out, self.keeper = out, keeper

    def write(self, data) -> int:
        self.keeper.write(data)
        return self.out.write(data)

    def flush(self) -> None:
        self.out.flush()


class TextTee:
    """A text stream for rich: writes to `out` (sys.stdout) and, encoded as `out` encodes,
    to a Keeper; answers isatty/encoding as `out` does so rich lays out the same."""

    def __init__(self, out, keeper: Keeper) -> None:
        self.out, self.keeper = out, keeper
        self.encoding, self.errors = getattr(out, "encoding", "utf-8"), getattr(out, "errors", "strict")

    def write(self, text: str) -> int:
        self.keeper.write(text.encode(self.encoding or "utf-8", self.errors or "strict"))
        return self.out.write(text)

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return self.out.isatty()

    def fileno(self) -> int:
        return self.out.fileno()


def _copy(path: Path, out, offset: int = 0) -> None:
    out.flush()
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        try:
            fd = out.fileno()
            while offset < size:
                sent = os.sendfile(fd, fh.fileno(), offset, size - offset)
                if sent == 0:
                    raise OSError("sendfile sent nothing")
                offset += sent
            return
        except (OSError, AttributeError, ValueError):
            pass  # not a real file descriptor (or sendfile unsupported): copy through Python
        fh.seek(offset)
        while chunk := fh.read(1 << 22):
            out.write(chunk)
    out.flush()


def parse(argv: list[str], *, need_cache: bool = True) -> dict | None:
    """`analyze TRACE --cache [--json] [--rows N] [--steps N] [--metrics P] [--ncu P]
    [--only NAME]...` (--cache optional unless `need_cache`) as a dict; None for any other
    command line (help, --csv, anything typer would have to judge)."""
    if not argv or argv[0] != "analyze":
        return None
    opts: dict = {"only": []}
    values = {"--rows": "rows", "--steps": "steps", "--metrics": "metrics", "--ncu": "ncu", "--only": "only",
              "--format": "format"}
    flags = {"--json": "json", "--cache": "cache"}
    args = list(argv[1:])
    positional = []
    while args:
        a = args.pop(0)
        name, eq, val = a.partition("=")
        if a in flags and flags[a] not in opts:
            opts[flags[a]] = True
        elif name in values and (eq or args):
            val = val if eq else args.pop(0)
            if values[name] == "only":
                opts["only"].append(val)
            elif values[name] in opts or not val:
                return None
            else:
                opts[values[name]] = val
        elif not a.startswith("-") and not positional:
            positional.append(a)
        else:
            return None  # --help, --csv, unknown, repeated, a second positional...
    if (need_cache and not opts.get("cache")) or len(positional) != 1:
        return None
    fmt = opts.pop("format", None)
    if fmt is not None:  # --format json is --json, --format table the default; anything else is typer's
        if fmt.strip().lower() not in ("json", "table") or (fmt.strip().lower() == "table" and opts.get("json")):
            return None
        if fmt.strip().lower() == "json":
            opts["json"] = True
    try:
        for n in ("rows", "steps"):
            if n in opts:
                opts[n] = int(opts[n])
                if opts[n] < 1 or (n == "steps" and opts[n] > MAX_STEPS):
                    return None  # typer says what the limit is
    except ValueError:
        return None
    opts["trace"] = positional[0]
    return opts


def serve(argv: list[str], stdout=None) -> bool:
    """Print the kept output of this `analyze --cache` command line and return True, or
    return False (print nothing) when it is not a plain form or not kept."""
    stdout = stdout or sys.stdout
    if not hasattr(stdout, "buffer"):  # a text-only stream (embedding): the normal path prints
        return False
    try:
        opts = parse(argv)
        if opts is None:
            return False
        trace = Path(opts["trace"])
        found = inputs(trace, Path(opts["ncu"]) if "ncu" in opts else None,
                       Path(opts["metrics"]) if "metrics" in opts else None)
        if found is None:
            return False
        if opts.get("json"):
            mode = {"json": True}
        else:
            mode = table_mode(opts.get("rows", 20), stdout)
            if mode is None:
                return False
        k = key(*found, steps=opts.get("steps"), only=opts["only"] or None, mode=mode)
        path = lookup(found[0], k)
        if path is None:
            return False
    except OSError:
        return False
    out = stdout.buffer
    if opts.get("json"):
        stdout.flush()
        out.write(JSON_HEAD + json.dumps(str(trace)).encode())
    _copy(path, out)
    return True
