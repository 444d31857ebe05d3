"""The targets' user-facing error: a message and, in `hint`, the fix. Standard library only:
the targets package imports nothing from decodeprof (decodeprof.capture.launch turns this
error into decodeprof's own at the boundary)."""

from __future__ import annotations


class TargetError(Exception):
    """A decode target cannot run as asked (bad flag, needs CUDA, wrong numbers)."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nhint: {self.hint}"


__all__ = ["TargetError"]
