"""Triton kernels for the decode step: fused LayerNorm+Linear+GELU, GEMV, lm_head with a fused
argmax, each for bf16, FP8 (E4M3, per-channel scales) and FP4 (E2M1, NVFP4-style block scales)
weights. One file per family; `quant.py` is plain torch (CPU-testable).

Importing this package imports no triton; the kernel modules do. Set TRITON_INTERPRET=1 before
importing them to run every kernel on CPU tensors (the tests do)."""
