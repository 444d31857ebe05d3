"""One output convention for every command, shaped like `nsys stats`: `--format` names what
to print (a comma-separated list where several make sense: `table,json`), `-o/--output` where
to write the machine-readable one instead of stdout. Tables always go to the terminal; JSON
and CSV go to stdout unless `-o` is given. With several file formats and `-o`, each is
written to the `-o` path with its own suffix (`-o out` -> out.json, out.csv).

Standard library only (typer is imported by the option helpers when a command registers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from decodeprof.errors import DecodeprofError

# Bounded work: the most decode steps per decode range any command accepts (--steps). Far
# above real generations; a typo such as --steps 1000000000 is refused instead of run.
MAX_STEPS = 65536

FORMAT_HELP = "What to print: {choices} (comma-separated for several, e.g. table,json)."
OUTPUT_HELP = "Write the {what} here instead of stdout (several formats: one file per format, by suffix)."


@dataclass(frozen=True)
class OutputRequest:
    """The formats asked for, in the order given, and the -o path (None: stdout)."""

    formats: tuple[str, ...]
    output: Path | None = None

    def wants(self, fmt: str) -> bool:
        return fmt in self.formats

    @property
    def file_formats(self) -> tuple[str, ...]:
        """The formats that are files (everything but the terminal table)."""
        return tuple(f for f in self.formats if f != "table")

    def path_for(self, fmt: str) -> Path | None:
        """Where `fmt` is written: None for stdout; the -o path itself for the one file
        format; the -o path with `fmt` as suffix when there are several."""
        if self.output is None or fmt == "table" or fmt not in self.formats:
            return None
        if len(self.file_formats) == 1:
            return self.output
        return self.output.with_suffix(f".{fmt}")


def parse_formats(value: str, choices: tuple[str, ...], *, output: Path | None = None,
                  stdout_once: bool = True) -> OutputRequest:
    """`--format` text -> OutputRequest, or DecodeprofError naming the bad value and the
    choices. Two file formats cannot share stdout (`stdout_once`): they need -o."""
    formats = tuple(dict.fromkeys(f.strip().lower() for f in value.split(",") if f.strip()))
    if not formats:
        raise DecodeprofError("--format is empty", f"pass one of: {', '.join(choices)}")
    unknown = [f for f in formats if f not in choices]
    if unknown:
        raise DecodeprofError(f"unknown --format {', '.join(unknown)}", f"choose from: {', '.join(choices)}")
    request = OutputRequest(formats, output)
    if stdout_once and output is None and len(formats) > 1:
        raise DecodeprofError(f"--format {','.join(formats)} would mix several formats on stdout",
                              "pass -o PATH: the file formats are then written there, the table printed")
    if output is not None and not request.file_formats:
        raise DecodeprofError("-o names a file but --format asks only for the terminal table",
                              "add a file format, e.g. --format json -o out.json")
    return request


def format_option(default: str, choices: tuple[str, ...]):
    import typer

    return typer.Option(default, "--format", metavar="|".join(choices), help=FORMAT_HELP.format(choices=", ".join(choices)))


def output_option(what: str):
    import typer

    return typer.Option(None, "-o", "--output", metavar="PATH", help=OUTPUT_HELP.format(what=what))


# A spreadsheet runs a text cell that starts with one of these as a formula.
FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value):
    """A CSV cell that a spreadsheet shows as text: a string starting with a formula lead
    gets a leading apostrophe (numbers are left as they are: -1.5 stays a number)."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def write_text(path: Path | None, text: str) -> None:
    """`text` to stdout (path None) or atomically to `path` (its folder made)."""
    import sys

    if path is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from decodeprof.present.files import write_atomic

    write_atomic(path, text)
    print(f"wrote {path}", file=sys.stderr)


def write_csv(path: Path | None, fields: tuple[str, ...], rows: list[dict]) -> None:
    """Rows as CSV (header first, cells made safe for spreadsheets) to stdout or `path`."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: csv_safe(row.get(k)) for k in fields})
    write_text(path, buf.getvalue())
