"""decodeprof: profile LLM decode-loop optimizations on NVIDIA GPUs and explain them.

Importing this package pulls in no torch and no polars; submodules import what they need.
"""

from pathlib import Path

__version__ = "0.1.0"

# The Jinja2 templates of the report and the diff. In the source tree decodeprof/templates links
# to reports/templates; a wheel ships them as package data at the same place.
TEMPLATES = Path(__file__).resolve().parent / "templates"
