"""Weight quantization for the low-precision decode paths (plain torch, runs on CPU).

FP8: E4M3 (max 448) with one fp32 scale per output channel (row of W [N, K]):
    scale[n] = max_k |W[n, k]| / 448,   q = round_e4m3(W / scale),   W ~ q * scale.

FP4 (NVFP4's layout): E2M1 codes (values 0, .5, 1, 1.5, 2, 3, 4, 6 and their negatives), two per
byte (element 2j in the low nibble, 2j+1 in the high one), one E4M3 scale per 16-element block of
a row and one fp32 scale per tensor:
    g = max|W| / (6 * 448),   s[n, j] = round_e4m3(max_{k in block j} |W[n, k]| / 6 / g),
    code = round_e2m1(W / (s * g)),   W ~ e2m1(code) * s * g.
E2M1 rounds to nearest, ties toward zero. K is padded with zeros to a multiple of 16.
Bytes per weight: FP8 1 (+4/K for the scales), FP4 0.5 + 1/16 (+4/(N*K)); bf16 is 2.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from decodeprof_targets.errors import TargetError

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0
FP4_MAX = 6.0
FP4_BLOCK = 16
E2M1_VALUES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # magnitude of code & 7
_E2M1_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
_TINY = 2.0**-60


def _check_weight(w: torch.Tensor) -> None:
    if not isinstance(w, torch.Tensor) or w.dim() != 2 or not w.is_floating_point():
        raise TargetError(f"expected a 2-D floating-point weight [N, K], got {getattr(w, 'shape', type(w))}")


def quantize_fp8_per_channel(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """W [N, K] -> (q [N, K] float8_e4m3fn, scale [N] fp32). All-zero rows get scale 1."""
    _check_weight(w)
    w32 = w.float()
    amax = w32.abs().amax(dim=1)
    scale = torch.where(amax > 0, amax / FP8_MAX, torch.ones_like(amax))
    q = (w32 / scale[:, None]).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return q.contiguous(), scale.contiguous()


def dequantize_fp8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.float() * scale.float()[:, None]


def round_e2m1(x: torch.Tensor) -> torch.Tensor:
    """Nearest E2M1 code (int 0..15: sign in bit 3) of x, which must already be within [-6, 6]."""
    mids = torch.tensor(_E2M1_MIDPOINTS, dtype=x.dtype, device=x.device)
    mag = torch.bucketize(x.abs().clamp(max=FP4_MAX), mids, right=False)  # a tie goes to the lower value
    sign = (x < 0) & (mag > 0)
    return (mag | (sign.to(mag.dtype) << 3)).to(torch.uint8)


def decode_e2m1(code: torch.Tensor) -> torch.Tensor:
    values = torch.tensor(E2M1_VALUES, dtype=torch.float32, device=code.device)
    mag = values[(code & 7).long()]
    return torch.where((code & 8) != 0, -mag, mag)


@dataclass
class Fp4Weight:
    packed: torch.Tensor  # [N, K_pad // 2] uint8
    block_scale: torch.Tensor  # [N, K_pad // 16] float8_e4m3fn
    global_scale: torch.Tensor  # [1] fp32
    k: int  # logical K (before padding)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.block_scale, self.global_scale))


def quantize_fp4_blocks(w: torch.Tensor) -> Fp4Weight:
    """W [N, K] -> NVFP4-style packed weight (see the module docstring)."""
    _check_weight(w)
    n, k = w.shape
    k_pad = -(-k // FP4_BLOCK) * FP4_BLOCK
    w32 = torch.zeros(n, k_pad, dtype=torch.float32, device=w.device)
    w32[:, :k] = w.float()
    amax = w32.abs().max()
    g = amax / (FP4_MAX * FP8_MAX) if amax > 0 else torch.tensor(1.0, device=w.device)
    blocks = w32.view(n, k_pad // FP4_BLOCK, FP4_BLOCK)
    s = (blocks.abs().amax(dim=2) / FP4_MAX / g).clamp(max=FP8_MAX).to(FP8_DTYPE)
    eff = s.float() * g  # [N, K_pad/16]
    safe = torch.where(eff > 0, eff, torch.ones_like(eff))
    scaled = torch.where(eff[..., None] > 0, blocks / safe[..., None], torch.zeros_like(blocks))
    codes = round_e2m1(scaled.clamp(-FP4_MAX, FP4_MAX)).view(n, k_pad)
    packed = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return Fp4Weight(packed.contiguous(), s.contiguous(), g.reshape(1).float().contiguous(), k)


def unpack_fp4(packed: torch.Tensor) -> torch.Tensor:
    """[N, K_pad/2] uint8 -> [N, K_pad] codes."""
    codes = torch.stack([packed & 0xF, packed >> 4], dim=2)
    return codes.reshape(packed.shape[0], -1)


def dequantize_fp4(q: Fp4Weight) -> torch.Tensor:
    """-> [N, K] fp32."""
    values = decode_e2m1(unpack_fp4(q.packed))
    scale = q.block_scale.float().repeat_interleave(FP4_BLOCK, dim=1) * q.global_scale.float()
    return (values * scale)[:, : q.k]


@dataclass
class LinearWeight:
    """One linear layer's weight in the format a kernel reads.

    fmt "bf16" (the activation dtype, also fp16/fp32): w [N, K], scale/gscale unused.
    fmt "fp8": w [N, K] float8_e4m3fn, scale [N] fp32.
    fmt "fp4": w [N, K_pad/2] uint8 packed, scale [N, K_pad/16] float8_e4m3fn, gscale [1] fp32.
    """

    fmt: str
    w: torch.Tensor
    n: int
    k: int
    scale: torch.Tensor | None = None
    gscale: torch.Tensor | None = None

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.w, self.scale, self.gscale) if t is not None)

    def dequantized(self) -> torch.Tensor:
        """The weight this format actually represents, [N, K] fp32 (for references)."""
        if self.fmt == "fp8":
            return dequantize_fp8(self.w, self.scale)
        if self.fmt == "fp4":
            return dequantize_fp4(Fp4Weight(self.w, self.scale, self.gscale, self.k))
        return self.w.float()


FORMATS = ("bf16", "fp8", "fp4")


def make_linear_weight(w: torch.Tensor, fmt: str) -> LinearWeight:
    """Quantize (or keep) a dense weight [N, K] for the kernels."""
    _check_weight(w)
    n, k = w.shape
    if fmt == "bf16":
        return LinearWeight("bf16", w.contiguous(), n, k)
    if fmt == "fp8":
        q, s = quantize_fp8_per_channel(w)
        return LinearWeight("fp8", q, n, k, scale=s)
    if fmt == "fp4":
        q4 = quantize_fp4_blocks(w)
        return LinearWeight("fp4", q4.packed, n, k, scale=q4.block_scale, gscale=q4.global_scale)
    raise TargetError(f"unknown weight format {fmt!r}", f"choose one of {FORMATS}")
