"""Where a command will write, checked before it does the work: a run must not end in a
traceback after minutes of capture or analysis because its output path was a typo."""

from __future__ import annotations

import os
from pathlib import Path

from decodeprof.errors import DecodeprofError


def writable_file(path: Path, what: str) -> Path:
    """`path` as a file to (over)write, its missing folders made later by the writer; raises
    DecodeprofError naming `what` when it is a folder or its folder cannot be made or written."""
    if path.is_dir():
        raise DecodeprofError(f"cannot write the {what} to {path}: it is a folder", f"pass a file name, e.g. {path / 'out'}")
    _check_folder(path.parent, what, path)
    return path


def writable_folder(path: Path, what: str) -> Path:
    """`path` as a folder to write files into (made later by the writer if missing)."""
    if path.exists() and not path.is_dir():
        raise DecodeprofError(f"cannot write the {what} into {path}: it is a file", "pass a folder")
    _check_folder(path, what, path)
    return path


def _check_folder(folder: Path, what: str, target: Path) -> None:
    """The folder, or the nearest part of it that exists, must be a folder this user can write."""
    existing = folder.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise DecodeprofError(f"cannot write the {what} to {target}: {existing} is a file, not a folder",
                              "choose a path in a folder you can write")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise DecodeprofError(f"cannot write the {what} to {target}: {existing} is not writable",
                              "choose a path in a folder you can write")
