"""decodeprof: profile LLM decode-loop optimizations on NVIDIA GPUs and explain them.

Importing this package pulls in no torch and no polars; submodules import what they need.
"""

__version__ = "0.1.0"
