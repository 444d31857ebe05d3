"""Tensor-parallel decode math: the workload's functions with the MLPs and lm_head split over
`world` ranks. Pure torch: the collectives come in through a `Collectives` object, so the
same code runs on NCCL, on gloo, and under CUDA graph capture.

How the weights are split (rank r of N, h = hidden, V = vocab):
- MLP (prefill and decode): w1 by output columns (rows of the [out, in] weight, h/N or 2h/N
  each, with their slice of b1), w2 by input columns (its matching h/N or 2h/N slice). Each
  rank's w2 output is a partial sum; one all_reduce (sum) per MLP makes the new state. b2 is
  kept on rank 0 and zeros elsewhere, so the sum adds it exactly once.
- lm_head by vocabulary rows (V/N each); the greedy token is a distributed argmax: each rank's
  local max and its global index, one all_gather, then the first maximum in vocab order.
- Embedding and LayerNorm are replicated.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import torch
import torch.nn.functional as F

from decodeprof_targets.errors import TargetError
from decodeprof_targets.workload import Weights


@dataclass(frozen=True)
class Layout:
    """Which slice of the model rank `rank` of `world` holds."""

    rank: int
    world: int
    hidden: int
    vocab: int

    @property
    def vocab_per_rank(self) -> int:
        return self.vocab // self.world

    @property
    def vocab_start(self) -> int:
        return self.rank * self.vocab_per_rank

    def check(self) -> None:
        """Raise TargetError unless hidden and vocab split evenly over the ranks."""
        bad = [f"--{name} {size}" for name, size in (("hidden", self.hidden), ("vocab", self.vocab))
               if size % self.world]
        if bad:
            raise TargetError(
                f"tensor parallelism over {self.world} processes needs sizes divisible by {self.world}: "
                f"{', '.join(bad)} {'is' if len(bad) == 1 else 'are'} not",
                f"pick --hidden and --vocab that are multiples of {self.world}, or use the data-parallel mode",
            )


class Collectives(Protocol):
    """The two collectives tensor-parallel decode needs, over all ranks of the group."""

    def all_reduce_sum(self, t: torch.Tensor) -> None:
        """Sum `t` over ranks in place (t must be contiguous)."""

    def all_gather(self, t: torch.Tensor) -> torch.Tensor:
        """Every rank's `t` stacked along a new first dimension, in rank order: [world, *t.shape]."""


def _part(t: torch.Tensor, dim: int, index: int, parts: int) -> torch.Tensor:
    """Slice `index` of `parts` along `dim`, in its own storage so the full tensor can be freed."""
    if parts == 1:
        return t
    size = t.shape[dim] // parts
    return t.narrow(dim, index * size, size).clone(memory_format=torch.contiguous_format)


def shard_weights(w: Weights, layout: Layout) -> Weights:
    """This rank's parameters, as a Weights with the split tensors (shapes in the module doc)."""
    layout.check()
    r, n = layout.rank, layout.world

    def bias2(b: torch.Tensor) -> torch.Tensor:  # added once: by rank 0
        return b if r == 0 else torch.zeros_like(b)

    return replace(
        w,
        prefill_w1=_part(w.prefill_w1, 0, r, n), prefill_b1=_part(w.prefill_b1, 0, r, n),
        prefill_w2=_part(w.prefill_w2, 1, r, n), prefill_b2=bias2(w.prefill_b2),
        decode_w1=_part(w.decode_w1, 0, r, n), decode_b1=_part(w.decode_b1, 0, r, n),
        decode_w2=_part(w.decode_w2, 1, r, n), decode_b2=bias2(w.decode_b2),
        lm_head=_part(w.lm_head, 0, r, n),
    )


def distributed_argmax(local_logits: torch.Tensor, layout: Layout, comm: Collectives) -> torch.Tensor:
    """Global greedy tokens [B] from this rank's logits [B, V/N], equal to torch.argmax over the
    full [B, V] logits: ties go to the lowest vocabulary index (the first maximum of the lowest
    rank holding it, since shards are in vocab order)."""
    idx = torch.argmax(local_logits, dim=-1)
    val = local_logits.gather(-1, idx[:, None]).squeeze(-1)
    # float64 holds any bf16/fp16/fp32 value and any index below 2**53 exactly: one collective.
    packed = torch.stack([val.double(), (idx + layout.vocab_start).double()])  # [2, B]
    everyone = comm.all_gather(packed)  # [world, 2, B]
    best = torch.argmax(everyone[:, 0, :], dim=0)  # first maximum = lowest rank
    return everyone[:, 1, :].gather(0, best[None, :]).squeeze(0).long()


def _mlp_partial(x: torch.Tensor, w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor, b2: torch.Tensor) -> torch.Tensor:
    return F.linear(F.gelu(F.linear(x, w1, b1)), w2, b2)


def prefill(w: Weights, prompt: torch.Tensor, layout: Layout, comm: Collectives) -> tuple[torch.Tensor, torch.Tensor]:
    """workload.prefill on a shard: prompt ids [B, P] -> (state [B, h], first tokens [B]).
    The all_reduce covers every prompt position, as a real layer's output would."""
    x = F.embedding(prompt, w.embed)
    x = F.layer_norm(x, x.shape[-1:], w.prefill_ln_w, w.prefill_ln_b)
    x = _mlp_partial(x, w.prefill_w1, w.prefill_b1, w.prefill_w2, w.prefill_b2)
    comm.all_reduce_sum(x)
    state = x[:, -1, :]
    return state, distributed_argmax(F.linear(state, w.lm_head), layout, comm)


def decode_step(w: Weights, tokens: torch.Tensor, state: torch.Tensor, layout: Layout,
                comm: Collectives) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """workload.decode_step on a shard: -> (next tokens [B], new state [B, h], local logits [B, V/N]).
    Two collectives: the MLP's all_reduce and the argmax's all_gather."""
    x = F.embedding(tokens, w.embed) + state
    x = F.layer_norm(x, x.shape[-1:], w.decode_ln_w, w.decode_ln_b)
    state = _mlp_partial(x, w.decode_w1, w.decode_b1, w.decode_w2, w.decode_b2)
    comm.all_reduce_sum(state)
    logits = F.linear(state, w.lm_head)
    return distributed_argmax(logits, layout, comm), state, logits


def full_logits(local_logits: torch.Tensor, comm: Collectives) -> torch.Tensor:
    """Every rank's vocab shard joined: [B, V/N] -> [B, V] (a collective: call on every rank)."""
    parts = comm.all_gather(local_logits.contiguous())  # [world, B, V/N]
    return torch.cat(list(parts.unbind(0)), dim=-1)
