"""Quantization round trips against float64 references (CPU, plain torch)."""

import pytest
import torch

from decodeprof_targets.errors import TargetError
from decodeprof_targets.kernels import quant


def e4m3_grid() -> torch.Tensor:
    """Every finite E4M3 value, float64, ascending."""
    vals = torch.arange(256, dtype=torch.int16).to(torch.uint8).view(torch.float8_e4m3fn).to(torch.float64)
    return torch.unique(vals[torch.isfinite(vals)])


def nearest(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return grid[(x[..., None] - grid).abs().argmin(dim=-1)]


def test_fp8_per_channel_matches_float64_reference():
    w = torch.randn(37, 53, dtype=torch.float64) * torch.linspace(0.01, 3.0, 37, dtype=torch.float64)[:, None]
    q, scale = quant.quantize_fp8_per_channel(w)
    ref_scale = w.abs().amax(dim=1) / 448.0
    assert torch.allclose(scale.double(), ref_scale, rtol=1e-6)
    ref_q = nearest(w / scale.double()[:, None], e4m3_grid())
    assert torch.equal(q.double(), ref_q)
    deq = quant.dequantize_fp8(q, scale).double()
    assert ((deq - w).abs() <= w.abs() * 2**-4 + scale.double()[:, None] * 2**-9).all()  # half an ulp of 3 mantissa bits


def test_fp8_zero_row_and_saturation():
    w = torch.zeros(2, 16)
    w[1, 3] = 1e30
    q, scale = quant.quantize_fp8_per_channel(w)
    assert scale[0] == 1.0 and torch.isfinite(q.float()).all() and q.float()[1, 3] == 448.0


def reference_fp4(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Float64 NVFP4 reference: (codes as signed values [N, K_pad], block scales [N, K_pad/16], g)."""
    n, k = w.shape
    kp = -(-k // 16) * 16
    wp = torch.zeros(n, kp, dtype=torch.float64)
    wp[:, :k] = w.double()
    g = wp.abs().max().item() / (6 * 448)
    blocks = wp.view(n, kp // 16, 16)
    s = nearest(blocks.abs().amax(dim=2) / 6 / g, e4m3_grid())
    grid = torch.tensor(quant.E2M1_VALUES, dtype=torch.float64)
    x = blocks / (s * g)[..., None]
    mag = grid[(x.abs()[..., None] - grid).abs().argmin(dim=-1)]  # argmin's first hit: ties to the lower value
    return (torch.sign(x) * mag).view(n, kp), s, g


@pytest.mark.parametrize("shape", [(8, 64), (5, 40), (3, 16)])
def test_fp4_blocks_match_float64_reference(shape):
    torch.manual_seed(1)
    w = torch.randn(*shape) * 0.05
    q = quant.quantize_fp4_blocks(w)
    ref_vals, ref_s, ref_g = reference_fp4(w)
    assert q.packed.shape == (shape[0], ref_vals.shape[1] // 2) and q.packed.dtype == torch.uint8
    assert abs(q.global_scale.item() - ref_g) <= 1e-7 * ref_g
    assert torch.equal(q.block_scale.double(), ref_s)
    assert torch.equal(quant.decode_e2m1(quant.unpack_fp4(q.packed)).double(), ref_vals)
    deq = quant.dequantize_fp4(q).double()
    ref_deq = (ref_vals.view(shape[0], -1, 16) * (ref_s * ref_g)[..., None]).view(shape[0], -1)[:, : shape[1]]
    assert torch.allclose(deq, ref_deq, rtol=1e-6, atol=1e-12)
    # error bound: half the widest E2M1 gap (2 -> between 4 and 6) of each block's scale
    eff = (ref_s * ref_g).repeat_interleave(16, dim=1)[:, : shape[1]]
    assert ((deq - w.double()).abs() <= eff * 1.0 + 1e-12).all()


def test_fp4_packing_order_low_nibble_first():
    w = torch.zeros(1, 16)
    w[0, 0], w[0, 1] = 6.0, -0.5 * 6.0 / 6.0  # codes: 6.0 -> 7, -0.5 (scale 1 after normalisation) -> 8|1
    q = quant.quantize_fp4_blocks(w)
    codes = quant.unpack_fp4(q.packed)[0]
    assert codes[0].item() == 7 and codes[1].item() == 0b1001
    assert q.packed[0, 0].item() == 7 | (0b1001 << 4)


def test_e2m1_rounding_ties_toward_zero():
    x = torch.tensor([0.25, 0.75, 2.5, 5.0, -5.0, 0.26, 6.0])
    vals = quant.decode_e2m1(quant.round_e2m1(x))
    assert vals.tolist() == [0.0, 0.5, 2.0, 4.0, -4.0, 0.5, 6.0]


def test_bytes_per_format():
    w = torch.randn(64, 256, dtype=torch.bfloat16)
    dense, f8, f4 = (quant.make_linear_weight(w, f) for f in quant.FORMATS)
    assert dense.nbytes == 64 * 256 * 2
    assert f8.nbytes == 64 * 256 + 64 * 4
    assert f4.nbytes == 64 * 128 + 64 * 16 + 4


def test_bad_input_raises():
    with pytest.raises(TargetError):
        quant.make_linear_weight(torch.randn(4, 8), "int3")
    with pytest.raises(TargetError):
        quant.quantize_fp8_per_channel(torch.randn(8))
