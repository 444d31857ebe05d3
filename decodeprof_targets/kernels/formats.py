"""Weight formats the fused Triton kernels read, as the compile-time FMT argument they take."""

from __future__ import annotations

import triton.language as tl

FMT_DENSE: tl.constexpr = tl.constexpr(0)  # the activation dtype (bf16)
FMT_FP8: tl.constexpr = tl.constexpr(1)  # FP8 E4M3 with a per-row scale
FMT_FP4: tl.constexpr = tl.constexpr(2)  # FP4 E2M1 (NVFP4 layout), packed with block scales

# weight format name (the targets' --fmt / quant names) -> FMT value
FMT_CODE = {"bf16": FMT_DENSE.value, "fp8": FMT_FP8.value, "fp4": FMT_FP4.value}
