"""Errors a user can act on. Each names the problem and, in `hint`, the fix.

The CLI prints `error: <message>` and `hint: <hint>` and exits non-zero; no traceback.
This module imports nothing beyond the standard library so targets can use it too.
"""

from __future__ import annotations


class DecodeprofError(Exception):
    """Base of every error decodeprof expects and explains."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


class TraceFileError(DecodeprofError):
    """The trace file is missing, truncated, not SQLite, or not an nsys export."""


class NcuCsvError(DecodeprofError):
    """The CSV is not Nsight Compute's output (or is damaged)."""


class ToolNotFoundError(DecodeprofError):
    """nsys or ncu could not be found."""


class CaptureError(DecodeprofError):
    """A profiling step (target run, nsys, ncu, export) failed."""


class TargetError(DecodeprofError):
    """A decode target cannot run as asked (bad flag, needs CUDA, capture failed)."""


class RegressionError(DecodeprofError):
    """A benchmark or diff found a regression beyond tolerance."""

    exit_code = 1
