"""Device helpers shared by every decode kernel: rounding like eager PyTorch, and the dot that
stays exact in Triton's CPU interpreter."""

from __future__ import annotations

import triton
import triton.language as tl

from decodeprof_targets.kernels.common import interpreting

# Triton 3.6's CPU interpreter multiplies bf16 tl.dot operands as raw 16-bit integers; there the
# dot runs on fp32 copies (exact products, fp32 sums: what the tensor cores compute, up to order).
DOT_IN_FP32: tl.constexpr = tl.constexpr(interpreting())


@triton.jit
def dot_acc(a, b, acc):
    """acc += a @ b for 16-bit a, b (see DOT_IN_FP32)."""
    if DOT_IN_FP32:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision="ieee")
    else:
        return tl.dot(a, b, acc)


@triton.jit
def round_to(x, act: tl.constexpr):
    """fp32 -> the activation dtype -> fp32, round-to-nearest-even (what eager PyTorch does).
    bf16 is rounded with integer ops: Triton's CPU interpreter truncates fp32 -> bf16 casts, and
    this keeps the interpreter bit-identical to the GPU (cvt.rn). NaN/inf are not expected here."""
    if act == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
        return bits.to(tl.float32, bitcast=True)
    else:
        return x.to(act).to(tl.float32)
