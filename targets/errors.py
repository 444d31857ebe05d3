"""Targets share decodeprof's user-facing error type (stdlib-only module, no polars)."""

from decodeprof.errors import TargetError

__all__ = ["TargetError"]
