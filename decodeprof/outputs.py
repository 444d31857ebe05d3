"""Where a command will write, checked before it does the work: a run must not end in a
traceback after minutes of capture or analysis because its output path was a typo."""

from __future__ import annotations

import os
from pathlib import Path

from decodeprof.errors import DecodeprofError


def writable_file(path: Path, what: str) -> Path:
    """`path` as a file to (over)write: its folder is created if missing; raises
    DecodeprofError naming `what` when it is a folder or the folder cannot take it."""
    if path.is_dir():
        raise DecodeprofError(f"cannot write the {what} to {path}: it is a folder", f"pass a file name, e.g. {path / 'out'}")
    _writable_folder(path.parent, what, path)
    return path


def writable_folder(path: Path, what: str) -> Path:
    """`path` as a folder to write files into (created if missing)."""
    if path.exists() and not path.is_dir():
        raise DecodeprofError(f"cannot write the {what} into {path}: it is a file", "pass a folder")
    _writable_folder(path, what, path)
    return path


def _writable_folder(folder: Path, what: str, target: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DecodeprofError(f"cannot write the {what} to {target}: {exc.strerror or exc}",
                              "choose a path in a folder you can write") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DecodeprofError(f"cannot write the {what} to {target}: {folder} is not writable",
                              "choose a path in a folder you can write")
