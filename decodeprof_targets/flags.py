"""The workload flags every target accepts: name, type, default, help. Standard library only,
so `decodeprof run --help` can list them on a machine without torch; decodeprof_targets/workload.py
builds its Config defaults and its argument parser from these."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

DTYPE_NAMES = ("bf16", "fp16", "fp32")


@dataclass(frozen=True)
class Flag:
    name: str  # the Config field; the flag is --name with '-' for '_'
    kind: type
    default: object
    help: str
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def text(self) -> str:
        default = "bf16 on cuda, fp32 on cpu" if self.name == "dtype" else self.default
        return f"{self.help} (default {default})"


FLAGS = (
    Flag("batch", int, 4, "sequences per batch"),
    Flag("prompt_len", int, 256, "prompt tokens per sequence"),
    Flag("steps", int, 64, "decode steps, new tokens after the first"),
    Flag("hidden", int, 1024, "hidden size"),
    Flag("vocab", int, 8192, "vocabulary size"),
    Flag("dtype", str, None, "weights/activations", DTYPE_NAMES),
    Flag("device", str, "cuda", "cuda or cpu"),
    Flag("warmup", int, 3, "warm-up iterations, timed apart"),
    Flag("iters", int, 10, "measured iterations"),
    Flag("host_payload_mb", float, 0.0, "extra host data copied to the GPU each iteration, MB"),
    Flag("seed", int, 0, "seed of weights and prompts"),
    Flag("peak_gbps", float, 0.0, "memory bandwidth peak for the utilization metric (0: the GPU's datasheet value)"),
)
DEFAULTS = {f.name: f.default for f in FLAGS}


def add_to(parser: argparse.ArgumentParser) -> None:
    for f in FLAGS:
        parser.add_argument(f.flag, type=f.kind, default=f.default, choices=f.choices, help=f.text())


def help_lines() -> list[str]:
    """One line per flag, as `decodeprof run --help` lists them."""
    return [f"{f.flag} {f.kind.__name__.upper()}: {f.text()}" for f in FLAGS]
