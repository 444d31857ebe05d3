"""Shared by the kernel tests: without CUDA, run Triton kernels in the CPU interpreter. Must be
imported before any decodeprof_targets.kernels module (the interpreter is chosen when a kernel is defined)."""

import os

import torch

CUDA = torch.cuda.is_available()
if not CUDA:
    os.environ["TRITON_INTERPRET"] = "1"
DEVICE = torch.device("cuda" if CUDA else "cpu")
