"""Capture: run a decode target under Nsight Systems and/or Nsight Compute into one run folder.

Standard library and rich only (no torch, no polars): the target runs in its own process.
"""

from decodeprof.capture.driver import profile_target
from decodeprof.capture.runfolder import new_run_dir

__all__ = ["profile_target", "new_run_dir"]
