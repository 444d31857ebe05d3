"""Host side of the persistent decode kernel whose weights stay in shared memory
(decodeprof_targets/kernels/cuda/persistent_smem.cu): the fragment-ordered weight copies, the shared-memory
budget, the build and the launch.

Fragment order: mma.sync m16n8k16 takes its B operand (16 columns x 8 weight rows) as two 32-bit
registers per lane; lane (g, t) = (lane // 4, lane % 4) holds row g, columns 2t, 2t+1 and
2t+8, 2t+9. `fragment_layout` stores, for each 8-row tile and each 32 columns (two k-steps),
the 32 lanes' four registers as 16 contiguous bytes each, so one 128-bit shared load gives a
lane both k-steps. Rows are padded to a multiple of 8 and columns to 32 with zeros.
"""

from __future__ import annotations

import ctypes

import torch

from decodeprof_targets.errors import TargetError

SOURCE = "persistent_smem.cu"
_built: dict = {}  # (arch, defines) -> cuda_build.Built
# what ends at each of block 0's timestamps in a step (phase_ns); durations are differences
PHASE_NAMES = ("step start", "tokens (wait for partials)", "LayerNorm", "stage 1 (W1, GELU, h out)", "h in (wait)",
               "stage 2 (W2, state out)", "state in (wait)", "stage 3 (lm_head, argmax, partial out)")


def fragment_layout(w: torch.Tensor) -> torch.Tensor:
    """[N, K] -> [ceil(N/8), ceil(K/32), 32 lanes, 8] (same dtype, contiguous): element
    [tile, kp, 4 g + t, 4 s + 2 hh + e] = w[8 tile + g, 32 kp + 16 s + 8 hh + 2 t + e]."""
    if w.dim() != 2:
        raise TargetError(f"fragment_layout takes a 2-D weight, got shape {tuple(w.shape)}")
    n, k = w.shape
    nt, kp = -(-n // 8), -(-k // 32)
    padded = torch.zeros(nt * 8, kp * 32, dtype=w.dtype, device=w.device)
    padded[:n, :k] = w
    # (tile, g, kp, s, hh, t, e) -> (tile, kp, g, t, s, hh, e)
    v = padded.view(nt, 8, kp, 2, 2, 4, 2).permute(0, 2, 1, 5, 3, 4, 6)
    return v.reshape(nt, kp, 32, 8).contiguous()


class Params(ctypes.Structure):
    """Mirror of `struct Params` in persistent_smem.cu (same order and types)."""

    _fields_ = [(name, ctypes.c_void_p) for name in (
        "tok_in", "embed", "state", "ln_w", "ln_b", "w1", "b1", "w2", "b2", "wl", "h_ll", "state_ll", "part_ll",
        "logits", "tokens_out", "seq", "err", "phase_ns")] + [
        ("stride_state", ctypes.c_longlong), ("stride_logits", ctypes.c_longlong), ("stride_out", ctypes.c_longlong),
        ("eps", ctypes.c_float)] + [(name, ctypes.c_int) for name in ("B", "H", "V", "steps", "P", "KP", "T1", "T3")]


def library(arch: str, defines: tuple[str, ...] = ()):
    """The built kernel library (built once per process; nvcc's output is cached on disk)."""
    if (arch, defines) not in _built:
        from decodeprof_targets.kernels import cuda_build

        built = cuda_build.load(SOURCE, arch, defines)
        lib = built.library
        lib.dp_smem_bytes.argtypes = [ctypes.c_int] * 5
        lib.dp_prepare.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.dp_static_smem.argtypes = [ctypes.POINTER(ctypes.c_int)]
        lib.dp_launch.argtypes = [ctypes.POINTER(Params), ctypes.c_int, ctypes.c_void_p]
        lib.dp_error_string.restype = ctypes.c_char_p
        _built[arch, defines] = built
    return _built[arch, defines]


def plan_blocks(hidden: int, vocab: int, programs: int) -> tuple[int, int, int]:
    """(P, T1, T3): blocks, and 8-row tiles per block of W1/W2 and of lm_head, spreading the
    tiles evenly over at most `programs` blocks."""
    nt_h, nt_v = -(-hidden // 8), -(-vocab // 8)
    t3 = -(-nt_v // programs)
    t1 = -(-nt_h // programs)
    blocks = max(-(-nt_v // t3), -(-nt_h // t1))
    return blocks, t1, t3


class SmemPersistentDecode:
    """The workload's bf16 decode weights in fragment order and the kernel's buffers.
    `run(tokens, state, tokens_out, logits_out)` runs tokens_out.shape[1] decode steps in one
    launch (state updated in place; logits_out, if given, gets the last step's logits)."""

    def __init__(self, w, batch: int, programs: int = 0, defines: tuple[str, ...] = ()) -> None:
        if w.embed.device.type != "cuda":
            raise TargetError("the shared-memory persistent kernel is CUDA C++: it needs a CUDA GPU", "run with --device cuda")
        if w.embed.dtype != torch.bfloat16:
            raise TargetError(f"the shared-memory persistent kernel multiplies bf16 on tensor cores, got {w.embed.dtype}",
                              "run with --dtype bf16")
        hidden, vocab = w.decode_w1.shape[1], w.lm_head.shape[0]
        if not (w.decode_w1.shape == w.decode_w2.shape == (hidden, hidden) and w.lm_head.shape[1] == hidden
                and w.embed.shape == (vocab, hidden)):
            raise TargetError("the persistent kernel needs square hidden layers: W1, W2 [h, h], lm_head and embed [V, h]")
        if hidden % 8:
            raise TargetError(f"hidden size {hidden} is not a multiple of 8: the kernel moves activations 16 bytes at a time",
                              "use a hidden size divisible by 8, or the `persistent` target")
        dev = w.embed.device
        # read as flat arrays (the embedding 16 bytes at a time): contiguous bf16 on one device, 16-byte aligned
        small = {"embed": w.embed, "decode_ln_w": w.decode_ln_w, "decode_ln_b": w.decode_ln_b,
                 "decode_b1": w.decode_b1, "decode_b2": w.decode_b2}
        for name, t in small.items():
            if t.dtype != torch.bfloat16 or not t.is_contiguous() or t.data_ptr() % 16 or t.device != dev:
                raise TargetError(f"{name} must be a contiguous, 16-byte aligned bf16 tensor on {dev}",
                                  f"pass {name}.contiguous() (a fresh tensor) in bf16")
        for name in ("decode_w1", "decode_w2", "lm_head"):  # copied into fragment order: any layout, but bf16 here
            t = getattr(w, name)
            if t.dtype != torch.bfloat16 or t.device != dev:
                raise TargetError(f"{name} must be bf16 on {dev}, got {t.dtype} on {t.device}", "run with --dtype bf16")
        if w.decode_ln_w.shape != (hidden,) or w.decode_ln_b.shape != (hidden,) or w.decode_b1.shape != (hidden,) \
                or w.decode_b2.shape != (hidden,):
            raise TargetError(f"LayerNorm weights and biases must be [{hidden}]")
        major, _ = torch.cuda.get_device_capability(dev)
        if major < 8:
            raise TargetError("mma.sync bf16 needs compute capability 8.0 or newer (Ampere, Hopper)")
        from decodeprof_targets.kernels import cuda_build

        self.lib = library(cuda_build.device_arch(dev), defines).library
        if self.lib.dp_phases() != len(PHASE_NAMES):
            raise TargetError("persistent_smem.cu and smem_decode.py disagree on the phases")
        if not 1 <= batch <= self.lib.dp_max_batch():
            raise TargetError(f"batch {batch} outside 1..{self.lib.dp_max_batch()}: batch rows are the mma's M")
        sms = torch.cuda.get_device_properties(dev).multi_processor_count
        self.programs, self.t1, self.t3 = plan_blocks(hidden, vocab, min(programs or sms, sms))
        self.kp = -(-hidden // 32)
        self.smem_bytes = self.lib.dp_smem_bytes(batch, hidden, self.kp, self.t1, self.t3)
        static = ctypes.c_int(0)
        self._check(self.lib.dp_static_smem(ctypes.byref(static)))
        limit = torch.cuda.get_device_properties(dev).shared_memory_per_block_optin - static.value
        if self.smem_bytes > limit:
            raise TargetError(
                f"the weights do not fit in shared memory: {self.programs} blocks need {self.smem_bytes / 1024:.0f} KB "
                f"each (W1, W2: {self.t1} tiles, lm_head: {self.t3} tiles of 8 rows x {hidden}), the GPU allows "
                f"{limit / 1024:.0f} KB", "use a smaller --hidden / --vocab / --batch, or the `persistent` target (weights in L2)")
        per_sm = ctypes.c_int(0)
        # the attribute is the kernel's, shared by every instance: never lower it under another one
        self.lib.smem_allowed = max(getattr(self.lib, "smem_allowed", 0), self.smem_bytes)
        self._check(self.lib.dp_prepare(self.lib.smem_allowed, ctypes.byref(per_sm)))
        if per_sm.value * sms < self.programs:
            raise TargetError(f"only {per_sm.value * sms} blocks of the persistent kernel can be resident, it needs "
                              f"{self.programs}", "use a smaller --hidden / --vocab")
        self.batch, self.hidden_size, self.vocab = batch, hidden, vocab
        self.embed, self.ln_w, self.ln_b, self.b1, self.b2 = w.embed, w.decode_ln_w, w.decode_ln_b, w.decode_b1, w.decode_b2
        self.w1, self.w2, self.wl = (fragment_layout(t) for t in (w.decode_w1, w.decode_w2, w.lm_head))
        # exchange buffers of flagged words (zero flags: never a step's); 16-byte units
        self.h_ll = torch.zeros(batch * hidden, dtype=torch.int32, device=dev)  # 4 bf16 + 2 flags per unit
        self.state_ll = torch.zeros(batch * hidden, dtype=torch.int32, device=dev)
        self.part_ll = torch.zeros(2 * self.programs * self.lib.dp_max_batch() * 4, dtype=torch.int32, device=dev)
        self.seq = torch.zeros(1, dtype=torch.int32, device=dev)
        self.error = torch.zeros(1, dtype=torch.int32, device=dev)
        self.raw_bytes = sum(t.numel() * t.element_size() for t in (
            w.decode_w1, w.decode_w2, w.lm_head, self.ln_w, self.ln_b, self.b1, self.b2))

    @property
    def weight_bytes(self) -> int:
        """Bytes of decode parameters one step uses (read from shared memory, not HBM, after the first)."""
        return self.raw_bytes

    def describe(self) -> str:
        return (f"persistent_smem: 1 launch for all steps, {self.programs} blocks x {self.lib.dp_threads()} threads, "
                f"{self.smem_bytes / 1024:.0f} KB shared memory each (W1/W2 {self.t1}, lm_head {self.t3} tiles of 8 rows)")

    def _check(self, code: int) -> None:
        if code != 0:
            raise TargetError(f"CUDA error in the persistent kernel: {self.lib.dp_error_string(code).decode()}")

    def run(self, tokens: torch.Tensor, state: torch.Tensor, tokens_out: torch.Tensor,
            logits_out: torch.Tensor | None = None, phase_ns: torch.Tensor | None = None) -> None:
        """phase_ns: optional int64 [steps, PHASES] that gets block 0's %globaltimer at each phase
        boundary of each step (see PHASE_NAMES)."""
        b, steps = tokens_out.shape
        dev = self.embed.device
        if b != self.batch or tokens.shape != (b,) or tokens.dtype != torch.int64 or not tokens.is_contiguous():
            raise TargetError(f"tokens must be a contiguous int64 [{self.batch}], tokens_out [{self.batch}, steps]")
        if state.shape != (b, self.hidden_size) or state.stride(1) != 1 or state.dtype != torch.bfloat16:
            raise TargetError(f"state must be [{b}, {self.hidden_size}] bf16 with contiguous rows")
        if logits_out is not None and (logits_out.shape != (b, self.vocab) or logits_out.stride(1) != 1
                                       or logits_out.dtype != torch.bfloat16):
            raise TargetError(f"logits_out must be [{b}, {self.vocab}] bf16 with contiguous rows")
        if tokens_out.dtype != torch.int64 or tokens_out.stride(1) != 1 or steps < 1:
            raise TargetError("tokens_out must be int64 [batch, steps >= 1] with contiguous rows")
        outputs = {"tokens": tokens, "state": state, "tokens_out": tokens_out, "logits_out": logits_out}
        for name, t in outputs.items():
            if t is not None and t.device != dev:
                raise TargetError(f"{name} is on {t.device}, the weights on {dev}")
        for name, t, row in (("state", state, self.hidden_size), ("tokens_out", tokens_out, steps),
                             ("logits_out", logits_out, self.vocab)):
            if t is not None and b > 1 and t.stride(0) < row:
                raise TargetError(f"{name} rows overlap (row stride {t.stride(0)} < {row})", f"pass {name}.contiguous()")
        _no_overlap({k: v for k, v in outputs.items() if v is not None and k != "tokens"})
        p = Params(
            tokens.data_ptr(), self.embed.data_ptr(), state.data_ptr(), self.ln_w.data_ptr(), self.ln_b.data_ptr(),
            self.w1.data_ptr(), self.b1.data_ptr(), self.w2.data_ptr(), self.b2.data_ptr(), self.wl.data_ptr(),
            self.h_ll.data_ptr(), self.state_ll.data_ptr(), self.part_ll.data_ptr(),
            logits_out.data_ptr() if logits_out is not None else None, tokens_out.data_ptr(), self.seq.data_ptr(),
            self.error.data_ptr(), phase_ns.data_ptr() if phase_ns is not None else None,
            state.stride(0), logits_out.stride(0) if logits_out is not None else 0,
            tokens_out.stride(0), 1e-5, b, self.hidden_size, self.vocab, steps, self.programs, self.kp, self.t1, self.t3)
        if phase_ns is not None and (phase_ns.shape != (steps, len(PHASE_NAMES)) or phase_ns.dtype != torch.int64
                                     or not phase_ns.is_contiguous() or phase_ns.device != dev):
            raise TargetError(f"phase_ns must be a contiguous int64 [{steps}, {len(PHASE_NAMES)}] on {dev}")
        stream = torch.cuda.current_stream(dev).cuda_stream
        self._check(self.lib.dp_launch(ctypes.byref(p), self.smem_bytes, ctypes.c_void_p(stream)))

    def check_error(self) -> None:
        """Raise if a wait for another block timed out or a token id was out of range (the flag is sticky)."""
        code = int(self.error.item())
        if code & 2:
            raise TargetError(f"the persistent kernel met a token id outside 0..{self.vocab - 1}: a bad input token, "
                              "or a step whose logits were all NaN (no argmax)",
                              "pass token ids within the vocabulary; check the weights for non-finite values")
        if code & 1:
            raise TargetError(f"a block of the persistent kernel waited in vain for the others ({self.programs} blocks)",
                              "another process may hold SMs; every block must be resident at once")


def _no_overlap(tensors: dict[str, torch.Tensor]) -> None:
    """Raise if two of the kernel's output buffers share memory (one would overwrite the other)."""
    spans = []
    for name, t in tensors.items():
        last = sum((n - 1) * st for n, st in zip(t.shape, t.stride())) if t.numel() else -1
        spans.append((t.data_ptr(), t.data_ptr() + (last + 1) * t.element_size(), name))
    spans.sort()
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise TargetError(f"{a} and {b} share memory: the kernel writes both", "pass separate buffers")
