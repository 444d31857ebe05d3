"""The decode workload every target runs: embedding + MLP + lm_head, no attention.

Per iteration: copy the prompt's token ids to the device, run a prefill MLP over the whole
prompt (its last position seeds the decode state and the first token), then `steps` decode
steps, each: embed the current tokens, add the running state, LayerNorm, Linear h->h, GELU,
Linear h->h (the new state), lm_head h->vocab, greedy argmax -> next tokens.

The eager functions here are the reference every variant is checked against.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from decodeprof_targets import flags
from decodeprof_targets.errors import TargetError
from decodeprof_targets.flags import DEFAULTS

DTYPES = dict(zip(flags.DTYPE_NAMES, (torch.bfloat16, torch.float16, torch.float32)))


@dataclass(frozen=True)
class Config:
    batch: int = DEFAULTS["batch"]
    prompt_len: int = DEFAULTS["prompt_len"]
    steps: int = DEFAULTS["steps"]
    hidden: int = DEFAULTS["hidden"]
    vocab: int = DEFAULTS["vocab"]
    dtype: str = "bf16"
    device: str = DEFAULTS["device"]
    warmup: int = DEFAULTS["warmup"]
    iters: int = DEFAULTS["iters"]
    host_payload_mb: float = DEFAULTS["host_payload_mb"]
    seed: int = DEFAULTS["seed"]
    peak_gbps: float = DEFAULTS["peak_gbps"]  # 0: look up the GPU's datasheet peak

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    def as_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> None:
        positive = ("batch", "prompt_len", "steps", "hidden", "vocab", "iters")
        for name in positive:
            if getattr(self, name) <= 0:
                raise TargetError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name, most in LIMITS.items():
            if getattr(self, name) > most:
                raise TargetError(f"--{name.replace('_', '-')} {getattr(self, name)} is above the limit {most}",
                                  "a decode benchmark needs far less; lower it")
        weight_gb = (self.vocab * self.hidden * 2 + 2 * 4 * self.hidden * self.hidden) * 4 / 1e9
        if weight_gb > MAX_WEIGHT_GB:
            raise TargetError(f"--hidden {self.hidden} with --vocab {self.vocab} needs ~{weight_gb:.0f} GB of fp32 weights "
                              f"(limit {MAX_WEIGHT_GB} GB)", "lower --hidden or --vocab")
        if self.vocab < 2:
            raise TargetError(f"--vocab must be at least 2 (with one token there is nothing to choose), got {self.vocab}")
        if self.warmup < 0:
            raise TargetError(f"--warmup must not be negative, got {self.warmup}")
        for name in ("host_payload_mb", "peak_gbps"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise TargetError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value}")
        if self.dtype not in DTYPES:
            raise TargetError(f"--dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if self.device not in ("cuda", "cpu"):
            raise TargetError(f"--device must be 'cuda' or 'cpu', got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise TargetError("--device cuda but no CUDA GPU is visible", "pass --device cpu (eager targets only)")


# Upper bounds of the workload flags: far above any decode benchmark, low enough that a typo
# (--steps 1000000000) is one error line instead of an allocation that takes the machine down.
LIMITS = {"batch": 4096, "prompt_len": 131072, "steps": 65536, "hidden": 65536, "vocab": 1 << 20,
          "warmup": 10000, "iters": 100000, "host_payload_mb": 65536}
MAX_WEIGHT_GB = 64  # embedding + lm_head + MLP in fp32, the largest copy a target holds


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """The workload flags every target accepts (decodeprof_targets/flags.py)."""
    flags.add_to(parser)


def config_from_args(args: argparse.Namespace) -> Config:
    dtype = args.dtype or ("bf16" if args.device == "cuda" else "fp32")
    cfg = Config(
        batch=args.batch, prompt_len=args.prompt_len, steps=args.steps, hidden=args.hidden,
        vocab=args.vocab, dtype=dtype, device=args.device, warmup=args.warmup, iters=args.iters,
        host_payload_mb=args.host_payload_mb, seed=args.seed, peak_gbps=args.peak_gbps,
    )
    cfg.validate()
    return cfg


@dataclass
class Weights:
    """All parameters, on the target device in the config's dtype."""

    embed: torch.Tensor  # [vocab, hidden]
    prefill_ln_w: torch.Tensor
    prefill_ln_b: torch.Tensor
    prefill_w1: torch.Tensor  # [2h, h]
    prefill_b1: torch.Tensor
    prefill_w2: torch.Tensor  # [h, 2h]
    prefill_b2: torch.Tensor
    decode_ln_w: torch.Tensor
    decode_ln_b: torch.Tensor
    decode_w1: torch.Tensor  # [h, h]
    decode_b1: torch.Tensor
    decode_w2: torch.Tensor  # [h, h]
    decode_b2: torch.Tensor
    lm_head: torch.Tensor  # [vocab, h]

    def decode_tensors(self) -> list[torch.Tensor]:
        """The parameters one decode step reads in full (the embedding is only gathered)."""
        return [self.decode_ln_w, self.decode_ln_b, self.decode_w1, self.decode_b1,
                self.decode_w2, self.decode_b2, self.lm_head]


def make_weights(cfg: Config) -> Weights:
    """Deterministic weights from cfg.seed, drawn on the CPU in fp32 so every device and
    variant computes the same function, then cast and moved."""
    gen = torch.Generator().manual_seed(cfg.seed)
    h, v = cfg.hidden, cfg.vocab

    def randn(*shape: int, scale: float) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * scale

    raw = dict(
        embed=randn(v, h, scale=1.0),
        prefill_ln_w=1.0 + randn(h, scale=0.1), prefill_ln_b=randn(h, scale=0.1),
        prefill_w1=randn(2 * h, h, scale=h**-0.5), prefill_b1=randn(2 * h, scale=0.02),
        prefill_w2=randn(h, 2 * h, scale=(2 * h) ** -0.5), prefill_b2=randn(h, scale=0.02),
        decode_ln_w=1.0 + randn(h, scale=0.1), decode_ln_b=randn(h, scale=0.1),
        decode_w1=randn(h, h, scale=h**-0.5), decode_b1=randn(h, scale=0.02),
        decode_w2=randn(h, h, scale=h**-0.5), decode_b2=randn(h, scale=0.02),
        lm_head=randn(v, h, scale=h**-0.5),
    )
    return Weights(**{k: t.to(device=cfg.device, dtype=cfg.torch_dtype) for k, t in raw.items()})


def weight_bytes_per_step(w: Weights, batch: int) -> int:
    """Bytes of weights one decode step must read: every decode parameter once, plus the
    `batch` embedding rows it gathers."""
    gathered = batch * w.embed.shape[1] * w.embed.element_size()
    return sum(t.numel() * t.element_size() for t in w.decode_tensors()) + gathered


def make_prompts(cfg: Config, seed: int) -> torch.Tensor:
    """Random prompt token ids [batch, prompt_len], int64, in pageable host memory."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, cfg.vocab, (cfg.batch, cfg.prompt_len), generator=gen)


def prefill(w: Weights, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt ids [B, P] on device -> (state [B, h], first tokens [B])."""
    x = F.embedding(prompt, w.embed)
    x = F.layer_norm(x, x.shape[-1:], w.prefill_ln_w, w.prefill_ln_b)
    x = F.gelu(F.linear(x, w.prefill_w1, w.prefill_b1))
    x = F.linear(x, w.prefill_w2, w.prefill_b2)
    state = x[:, -1, :]
    tokens = torch.argmax(F.linear(state, w.lm_head), dim=-1)
    return state, tokens


def decode_step(w: Weights, tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decode step: (tokens [B], state [B, h]) -> (next tokens [B], new state, logits [B, V])."""
    x = F.embedding(tokens, w.embed) + state
    x = F.layer_norm(x, x.shape[-1:], w.decode_ln_w, w.decode_ln_b)
    x = F.gelu(F.linear(x, w.decode_w1, w.decode_b1))
    state = F.linear(x, w.decode_w2, w.decode_b2)
    logits = F.linear(state, w.lm_head)
    return torch.argmax(logits, dim=-1), state, logits


def reference_generate(w: Weights, prompt: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager reference: prompt ids (any device) -> (tokens [B, steps + 1], last logits [B, V])."""
    prompt = prompt.to(w.embed.device)
    with torch.no_grad():
        state, tok = prefill(w, prompt)
        out = [tok]
        logits = None
        for _ in range(steps):
            tok, state, logits = decode_step(w, tok, state)
            out.append(tok)
    if logits is None:
        raise TargetError("--steps must be at least 1 to compare logits")
    return torch.stack(out, dim=1), logits
