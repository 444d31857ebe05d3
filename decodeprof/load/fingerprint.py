"""What a cache key knows of a file: enough that an edit shows, cheap at 1 GB.

Size and mtime alone let an edited file with both restored (or another file of the same size
moved into place) serve old results. The fingerprint adds the inode, ctime and a hash of
the file's first and last 64 KiB and 16 evenly spaced 4 KiB samples: for an SQLite export the
first page holds the header (its change counter and schema cookie move on every write) and
the schema; a file under 1 MiB is hashed whole. Standard library only: the console's fast
path computes it before polars is imported.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

EDGE = 64 * 1024
SAMPLE = 4 * 1024
SAMPLES = 16
WHOLE = 1024 * 1024


def fingerprint(path: Path | str) -> dict:
    """{path, size, mtime_ns, ctime_ns, inode, sha256} of `path` (see the module docstring),
    and of its SQLite write-ahead log when one lies beside it (rows may live only there)."""
    path = Path(path)
    wal = Path(f"{path}-wal")
    out = _one(path)
    if wal.exists():
        out["wal"] = _one(wal)
    return out


def file_key(path: Path | str | None) -> dict | None:
    """A cache key's entry for an optional input file (ncu CSV, metrics JSON): None when absent."""
    return None if path is None else fingerprint(path)


def _one(path: Path) -> dict:
    st = path.stat()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if st.st_size <= WHOLE:
            h.update(f.read())
        else:
            h.update(f.read(EDGE))
            step = (st.st_size - 2 * EDGE) // (SAMPLES + 1)
            for i in range(1, SAMPLES + 1):
                f.seek(EDGE + i * step)
                h.update(f.read(SAMPLE))
            f.seek(st.st_size - EDGE)
            h.update(f.read(EDGE))
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
            "inode": st.st_ino, "sha256": h.hexdigest()}
