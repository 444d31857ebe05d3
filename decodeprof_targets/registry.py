"""Every decode target: label -> module, one-line summary, and what it needs.

Importing this module imports no torch, so `decodeprof targets` stays instant and the
analysis side can list targets on a machine without torch."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class TargetInfo:
    label: str
    summary: str
    module: str  # a module with build(cfg, weights) -> Variant
    needs_cuda: bool = True
    launcher: str = "python"  # "torchrun" for multi-process targets
    # The optimization ladder: the target this one builds on and what it adds to it (the
    # report explains each target against that rung). None: the starting point or off the ladder.
    builds_on: str | None = None
    adds: str = ""

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


TARGETS: dict[str, TargetInfo] = {t.label: t for t in (
    TargetInfo("baseline", "eager PyTorch, pageable host prompts, one stream, blocking copies", "decodeprof_targets.baseline", needs_cuda=False),
    TargetInfo("pinned", "pinned host buffers and non_blocking copies", "decodeprof_targets.pinned",
               builds_on="baseline", adds="pinned host buffers and non_blocking copies"),
    TargetInfo("streams", "copy stream overlaps the next batch's H2D with compute (double-buffered)", "decodeprof_targets.streams",
               builds_on="pinned", adds="a copy stream that uploads the next batch's prompt while this batch computes"),
    TargetInfo("compile", "torch.compile (Inductor) of prefill and decode step: fused kernels", "decodeprof_targets.compile", needs_cuda=False,
               builds_on="baseline", adds="torch.compile (Inductor) of prefill and decode step: fused kernels, still launched one by one"),
    TargetInfo("graph", "decode loop captured once in a CUDA graph and replayed", "decodeprof_targets.graph",
               builds_on="baseline", adds="the decode loop captured once in a CUDA graph and replayed"),
    TargetInfo("graph_full", "prefill + decode captured in one CUDA graph", "decodeprof_targets.graph_full",
               builds_on="graph", adds="the prefill captured in the same CUDA graph as the decode loop"),
    TargetInfo("fp8", "FP8 (E4M3) decode weights: Triton weight-only GEMV, torch._scaled_mm or Transformer Engine; CUDA graph", "decodeprof_targets.fp8",
               builds_on="graph", adds="FP8 (E4M3) weights in three fused Triton kernels, replayed in the CUDA graph"),
    TargetInfo("fp4", "FP4 (E2M1, NVFP4 layout) weights: TE NVFP4 on Blackwell, else weight-only Triton dequant GEMV; CUDA graph", "decodeprof_targets.fp4",
               builds_on="fp8", adds="FP4 (E2M1, NVFP4 layout) weights instead of FP8: fewer bytes per weight"),
    TargetInfo("warp_specialized", "three fused Triton decode kernels (warp specialization, TMA descriptors on Hopper); CUDA graph", "decodeprof_targets.warp_specialized",
               builds_on="graph", adds="three fused bf16 Triton kernels fed by TMA, with warp specialization"),
    TargetInfo("double_buffer_tma", "weight tiles streamed by TMA through two shared-memory stages (Triton descriptors); CUDA graph", "decodeprof_targets.double_buffer_tma",
               builds_on="warp_specialized", adds="the same kernels without warp specialization: TMA double buffering alone"),
    TargetInfo("persistent", "one persistent Triton kernel runs all decode steps (grid barriers between stages, weights in L2)", "decodeprof_targets.persistent",
               builds_on="warp_specialized", adds="one persistent kernel runs all decode steps (grid barriers, weights kept in L2)"),
    TargetInfo("persistent_smem", "one persistent CUDA C++ kernel runs all decode steps with every weight kept in shared memory (nvcc)", "decodeprof_targets.persistent_smem",
               builds_on="persistent", adds="every decode weight kept in shared memory (a CUDA C++ kernel)"),
    TargetInfo("multigpu", "N processes (torchrun): tensor parallel (all_reduce + distributed argmax) or data parallel",
               "decodeprof_targets.multigpu", needs_cuda=False, launcher="torchrun"),
)}


def single_gpu_labels() -> list[str]:
    """The targets that run as one process on one device (every one but the torchrun targets)."""
    return [label for label, info in TARGETS.items() if info.launcher == "python"]


def get(label: str) -> TargetInfo:
    from decodeprof_targets.errors import TargetError

    if label not in TARGETS:
        raise TargetError(f"unknown target {label!r}", f"choose one of: {', '.join(TARGETS)}")
    return TARGETS[label]
