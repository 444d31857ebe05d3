"""The one atomic writer: every file decodeprof writes (reports, diffs, JSON, CSV, timelines)
is rendered whole first, written to a temporary file beside the target, then renamed over it
(os.replace), so a failure never leaves a half-written file. Standard library only."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def open_atomic(path: Path | str) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` when the block ends without an error (written to a
    temporary file in the same folder, then os.replace); removed, `path` untouched, if not."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; an output is an ordinary file
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path | str, text: str) -> Path:
    """Write `text` (UTF-8) to `path` through open_atomic."""
    with open_atomic(path) as fh:
        fh.write(text.encode("utf-8"))
    return Path(path)
