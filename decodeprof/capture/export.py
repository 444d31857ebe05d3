"""The export step: .nsys-rep -> .sqlite through decodeprof.load.export.ensure_sqlite."""

from __future__ import annotations

from pathlib import Path

from decodeprof.errors import CaptureError, ToolNotFoundError


def export_sqlite(rep_path: Path, log_path: Path) -> Path:
    """The .sqlite beside rep_path. Raises CaptureError naming the export step (or ToolNotFoundError)."""
    from decodeprof.load.export import ensure_sqlite

    try:
        return ensure_sqlite(rep_path, log_path=log_path)
    except ToolNotFoundError:
        raise
    except Exception as exc:  # CaptureError, TraceFileError, ...: all mean this step failed
        message = (getattr(exc, "message", None) or str(exc)).splitlines()[0]  # the log tail is shown apart
        raise CaptureError(f"step 'export' failed: {message}", getattr(exc, "hint", None) or f"see {log_path}") from exc
