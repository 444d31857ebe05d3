"""Host-side helpers shared by the kernel wrappers: argument checks, launch options, TMA support."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from decodeprof_targets.errors import TargetError


def interpreting() -> bool:
    """True when Triton runs kernels in its CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def check_tensor(name: str, t: torch.Tensor, *, dtype: torch.dtype | tuple[torch.dtype, ...] | None = None,
                 shape: tuple[int, ...] | None = None, device: torch.device | None = None,
                 contiguous: bool = True) -> None:
    """Raise TargetError naming the argument when `t` is not what a kernel expects."""
    if not isinstance(t, torch.Tensor):
        raise TargetError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    dtypes = dtype if isinstance(dtype, tuple) else (dtype,) if dtype is not None else ()
    if dtypes and t.dtype not in dtypes:
        raise TargetError(f"{name} has dtype {t.dtype}, expected {' or '.join(map(str, dtypes))}")
    if shape is not None and tuple(t.shape) != tuple(shape):
        raise TargetError(f"{name} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if device is not None and t.device != device:
        raise TargetError(f"{name} is on {t.device}, expected {device}", "move every kernel argument to one device")
    if contiguous and not t.is_contiguous():
        raise TargetError(f"{name} must be contiguous", f"pass {name}.contiguous()")
    if t.device.type == "cpu" and not interpreting():
        raise TargetError(f"{name} is a CPU tensor but Triton is not in interpreter mode",
                          "run on a CUDA device, or set TRITON_INTERPRET=1 before importing the kernels")


def check_rows(name: str, t: torch.Tensor, rows: int, cols: int) -> None:
    """A [rows, cols] activation whose last dimension is contiguous (row stride may differ)."""
    if t.dim() != 2 or tuple(t.shape) != (rows, cols) or t.stride(1) != 1:
        raise TargetError(f"{name} must be [{rows}, {cols}] with a contiguous last dimension, "
                          f"got shape {tuple(t.shape)} stride {t.stride()}")


MAX_BATCH = 16  # the kernels unroll over batch rows: skinny GEMM only


@dataclass(frozen=True)
class LaunchOptions:
    """How a kernel streams its weight tiles.

    use_tma: weight tiles through TMA tensor descriptors (tl.make_tensor_descriptor), Hopper+.
    warp_specialize: tl.range(..., warp_specialize=True) on the K loop (producer/consumer warps).
    num_stages: software-pipelining depth of the K loop (2 = double buffering).
    """

    use_tma: bool = False
    warp_specialize: bool = False
    num_stages: int = 3
    num_warps: int = 4
    block_n: int = 0  # output columns per program; 0 = auto (see pick_vec_block_n / DECODEPROF_TILES)
    acc_path: int = -1  # pointer path: 0 = x via shared memory, 1 = registers only, 2 = tensor cores (linear_tile); -1 = auto
    block_k: int = 0  # accumulation path 2: K tile in elements; 0 = auto (DOT_BLOCK_K)

    def describe(self) -> str:
        parts = ["tma" if self.use_tma else "pointer-loads"]
        if self.use_tma:
            parts.append(f"stages={self.num_stages}")
        parts.append(f"warps={self.num_warps}")
        if self.block_n:
            parts.append(f"block_n={self.block_n}")
        if self.acc_path == 2:
            parts.append("tensor-cores")
        elif not self.use_tma and self.acc_path >= 0:
            parts.append(f"acc_path={self.acc_path}")
        if self.block_k:
            parts.append(f"block_k={self.block_k}")
        if self.warp_specialize:
            parts.append("warp-specialized")
        return ",".join(parts)


PLAIN = LaunchOptions()


def tma_unsupported_reason(device: torch.device) -> str | None:
    """None when TMA descriptors can run on `device` (or in the interpreter), else why not."""
    if device.type == "cpu":
        return None if interpreting() else "TMA needs a CUDA GPU (or the Triton interpreter)"
    major, minor = torch.cuda.get_device_capability(device)
    if major < 9:
        return f"TMA descriptors need compute capability 9.0+ (Hopper); this GPU is {major}.{minor}"
    return None


_ALLOCATOR_SET = False


def ensure_allocator() -> None:
    """tl.make_tensor_descriptor builds descriptors on the device and needs a scratch allocator.
    torch's caching allocator serves it (also inside CUDA graph capture: the graph's pool)."""
    global _ALLOCATOR_SET
    if _ALLOCATOR_SET:
        return
    import triton

    def alloc(size: int, alignment: int, stream: int | None) -> torch.Tensor:
        device = "cpu" if interpreting() else "cuda"
        return torch.empty(size, dtype=torch.int8, device=device)

    triton.set_allocator(alloc)
    _ALLOCATOR_SET = True


def num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 4  # interpreter: few, wide tiles keep CPU runs fast (the GPU gets >= 1 program per SM)


def pick_block_n(n: int, sms: int, lo: int = 4, hi: int = 64) -> int:
    """Largest power-of-two tile of output columns that still gives >= one program per SM
    (never below `lo`): N=1024 on 132 SMs -> 4 (256 programs), N=8192 -> 32 (256 programs)."""
    bn = hi
    while bn > lo and -(-n // bn) < sms:
        bn //= 2
    return bn


def pick_block_k(k: int, block_n: int, num_warps: int, packed: bool) -> int:
    """K tile: at most 256 (TMA box limit), at most ~32 fp32 weight values per thread, power of two,
    a multiple of 32 for packed FP4 (two 16-element scale blocks per 16 bytes)."""
    budget = 32 * 32 * num_warps // block_n
    bk = 256
    while bk > 32 and bk > budget:
        bk //= 2
    while bk > 32 and bk // 2 >= k:
        bk //= 2
    return bk


TILES_ENV = "DECODEPROF_TILES"  # e.g. "fp8:k3=16x8x1,bf16:k1=64x4x2x256x3": fmt:ROLE=BLOCK_NxWARPS[xACC_PATH[xBLOCK_KxSTAGES]]
ROLES = ("k1", "k2", "k3")  # kernel 1 (LayerNorm+Linear+GELU, N=h), kernel 2 (Linear, N=h), kernel 3 (lm_head, N=V)
DOT_BLOCK_K = 256  # accumulation path 2's default K tile (elements)
DOT_MIN = 16  # accumulation path 2: tl.dot needs every tile dimension >= 16 (batch rows are padded to it)


@dataclass(frozen=True)
class Tile:
    """One kernel's pointer-path tiling. block_k / num_stages are accumulation path 2's (0: defaults)."""

    block_n: int
    num_warps: int
    acc_path: int
    block_k: int = 0
    num_stages: int = 0

    def spec(self) -> str:
        tail = f"x{self.block_k}x{self.num_stages}" if self.block_k or self.num_stages else ""
        return f"{self.block_n}x{self.num_warps}x{self.acc_path}{tail}"


# Pointer-path tiles per (format, kernel role), looked up when LaunchOptions.block_n is 0 and
# DECODEPROF_TILES names none. Accumulation path 1 = registers only (linear_acc_registers), 0 = the earlier
# x-through-shared-memory tile (linear_acc_shared_x), 2 = tensor cores (linear_acc_dot).
# bf16/fp8 use accumulation path 1, the fastest in the tile sweep (benchmarks/tune_gemv.py); fp4 keeps the
# path-0 tiles, because its path-1 kernels made the decode step slower (benchmarks/RESULTS.md).
# Third and fourth sweeps (same day): tensor-core tiles win kernels 1 and 3 in bf16 (4.71 / 7.42 us vs 6.15 /
# 10.67) and FP8 (5.32 / 8.09 us vs 6.55 / 10.51, with fp16 MMAs); kernel 2 (N=1024: at most 64 tensor-core
# programs) stays on accumulation path 1, and FP4's tensor-core tiles lose to its decode cost (k3 22 us vs 12.6).
VEC_TILES: dict[tuple[str, str], Tile] = {
    ("bf16", "k1"): Tile(16, 4, 2, 1024, 1), ("fp8", "k1"): Tile(16, 4, 2, 1024, 1), ("fp4", "k1"): Tile(8, 8, 0),
    ("bf16", "k2"): Tile(2, 1, 1), ("fp8", "k2"): Tile(4, 2, 1), ("fp4", "k2"): Tile(8, 8, 0),
    ("bf16", "k3"): Tile(64, 4, 2, 128, 4), ("fp8", "k3"): Tile(64, 4, 2, 256, 3), ("fp4", "k3"): Tile(16, 4, 0),
}


def role_of(n: int, role: str | None) -> str:
    """The kernel role of a launch: given, else kernel 3 for N >= 4096 (lm_head), else kernel 2."""
    return role if role else ("k3" if n >= 4096 else "k2")


def _default_acc_path(fmt: str, role: str) -> int:
    return VEC_TILES[(fmt, role)].acc_path if (fmt, role) in VEC_TILES else 1


def parse_tile(item: str) -> tuple[str, str, Tile]:
    """"fmt:ROLE=BLOCK_NxWARPS[xACC_PATH[xBLOCK_KxSTAGES]]" -> (fmt, role or N, Tile); accumulation path -1 = unset."""
    try:
        key, val = item.split("=")
        f, nn = key.split(":")
        vals = [int(v) for v in val.lower().split("x")]
        if len(vals) not in (2, 3, 5) or (nn not in ROLES and not nn.isdigit()):
            raise ValueError(item)
        pow2 = [vals[0]] + vals[3:4]  # BLOCK_N, BLOCK_K
        if any(v < 1 or v & (v - 1) for v in pow2) or vals[1] < 1 or vals[2:3] and vals[2] not in (0, 1, 2) \
                or vals[4:5] and vals[4] < 1:
            raise ValueError(item)
    except ValueError as exc:
        raise TargetError(f"{TILES_ENV} item {item!r} is not fmt:ROLE=BLOCK_NxWARPS[xACC_PATH[xBLOCK_KxSTAGES]] "
                          "(BLOCK_N and BLOCK_K powers of two, WARPS and STAGES >= 1, ACC_PATH 0, 1 or 2)",
                          "for example bf16:k3=16x8x1 or fp8:k3=64x4x2x256x3") from exc
    vals += [-1] if len(vals) == 2 else []
    return f, nn, Tile(*vals)


def tiles_override(fmt: str, n: int, role: str | None = None) -> Tile | None:
    """The Tile for this format and role (or N) from DECODEPROF_TILES. Keys: fmt:k1|k2|k3 (a
    role) or fmt:N (any role with that N); the last match wins; the accumulation path defaults to the table's."""
    spec = os.environ.get(TILES_ENV, "").strip()
    role = role_of(n, role)
    found = None
    for item in filter(None, (p.strip() for p in spec.split(","))):
        f, nn, tile = parse_tile(item)
        if f == fmt and (nn == role or (nn.isdigit() and int(nn) == n)):
            var = tile.acc_path if tile.acc_path >= 0 else _default_acc_path(fmt, role)
            found = Tile(tile.block_n, tile.num_warps, var, tile.block_k, tile.num_stages)
    return found


def pick_vec_block_k(row_units: int, unit: int) -> int:
    """Pointer path: one 16-byte vector (`unit` elements, or bytes for packed FP4) per lane,
    32 lanes, so a [.., BLOCK_N, 32*unit] tile puts the lanes on K and the warps on rows;
    smaller for short rows (power of two, at least one vector)."""
    bk = 32 * unit
    while bk > unit and bk // 2 >= row_units:
        bk //= 2
    return bk


def pick_vec_block_n(fmt: str, n: int, sms: int, opts: LaunchOptions, role: str | None = None) -> Tile:
    """The pointer-path Tile: LaunchOptions.block_n if set, else DECODEPROF_TILES, else the measured
    table (on the GPU) / num_warps rows (interpreter). LaunchOptions.acc_path >= 0 overrides the
    accumulation path whichever way the tile was chosen."""
    role = role_of(n, role)
    if opts.block_n:
        tile = Tile(opts.block_n, opts.num_warps, _default_acc_path(fmt, role), opts.block_k, opts.num_stages)
    else:
        tile = tiles_override(fmt, n, role)
        if tile is None and interpreting():
            tile = Tile(max(opts.num_warps, 16), opts.num_warps, _default_acc_path(fmt, role))
        elif tile is None:
            tile = VEC_TILES.get((fmt, role), Tile(opts.num_warps, opts.num_warps, 1))
    if opts.acc_path >= 0:
        tile = Tile(tile.block_n, tile.num_warps, opts.acc_path, tile.block_k, tile.num_stages)
    return tile


# name + plan -> the CompiledKernel of its latest launch (benchmarks/kernels_gpu.py reads its SASS)
COMPILED: dict[str, object] = {}


def remember(kernel, opts: LaunchOptions, compiled: object) -> None:
    COMPILED[f"{kernel.__name__}[{opts.describe()}]"] = compiled
