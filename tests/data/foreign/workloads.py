"""Decode loops written without decodeprof, for foreign-trace fixtures (run on the GPU machine).

    python workloads.py NAME --json-out NAME/generation.json

NAME is one of:
  hf_eager          transformers generate(), default (dynamic) cache: every op launched from Python
  hf_static         transformers generate(), cache_implementation="static": transformers compiles
                    the decode step and replays it as one CUDA graph per token
  gptfast           a gpt-fast-style loop (static KV cache, prefill + decode_one_token, greedy),
                    eager, no NVTX ranges, no per-token host sync
  gptfast_compiled  the same loop with decode_one_token under torch.compile (Inductor, no CUDA
                    graphs): fused Triton kernels launched one by one
  gptfast_nvtx      the eager loop with NVTX ranges under names of its own (domain "engine":
                    "decode_loop" around the decode, "next_token" around each decode step)

Each warms up (compiles) with full generations first, then brackets one generation with
cudaProfilerStart/Stop, so `nsys --capture-range=cudaProfilerApi` records that one alone.
The JSON written holds what the trace cannot say: tokens generated, batch, prompt length.
Nothing here imports decodeprof.
"""

from __future__ import annotations

import argparse
import json
import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F

BATCH, PROMPT, NEW_TOKENS, VOCAB = 4, 32, 64, 1024
HIDDEN, LAYERS, HEADS, FFN = 256, 2, 4, 688


# --- transformers -------------------------------------------------------------------------

def hf_generate(static: bool) -> tuple[callable, dict]:
    from transformers import LlamaConfig, LlamaForCausalLM
    import transformers

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, num_key_value_heads=HEADS, max_position_embeddings=512)
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg).to("cuda", torch.bfloat16).eval()
    prompt = torch.randint(3, VOCAB, (BATCH, PROMPT), device="cuda")
    kwargs = dict(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0,
                  attention_mask=torch.ones_like(prompt))
    if static:
        kwargs["cache_implementation"] = "static"

    def run():
        with torch.no_grad():
            return model.generate(prompt, **kwargs)[:, PROMPT:]

    return run, {"engine": f"transformers {transformers.__version__} generate()",
                 "cache": "static" if static else "dynamic",
                 "model": f"LlamaForCausalLM random init, {LAYERS} layers, hidden {HIDDEN}, vocab {VOCAB}"}


# --- a gpt-fast-style loop ------------------------------------------------------------------

class KVCache(torch.nn.Module):
    def __init__(self, batch, max_len, heads, head_dim, dtype):
        super().__init__()
        shape = (batch, heads, max_len, head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype))
        self.register_buffer("v", torch.zeros(shape, dtype=dtype))

    def update(self, pos, k, v):
        self.k.index_copy_(2, pos, k)
        self.v.index_copy_(2, pos, v)
        return self.k, self.v


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.attention_norm = torch.nn.RMSNorm(HIDDEN)
        self.ffn_norm = torch.nn.RMSNorm(HIDDEN)
        self.wqkv = torch.nn.Linear(HIDDEN, 3 * HIDDEN, bias=False)
        self.wo = torch.nn.Linear(HIDDEN, HIDDEN, bias=False)
        self.w13 = torch.nn.Linear(HIDDEN, 2 * FFN, bias=False)
        self.w2 = torch.nn.Linear(FFN, HIDDEN, bias=False)
        self.kv_cache: KVCache | None = None

    def forward(self, x, pos, mask):
        b, t, _ = x.shape
        q, k, v = self.wqkv(self.attention_norm(x)).split(HIDDEN, dim=-1)
        q, k, v = (z.view(b, t, HEADS, HIDDEN // HEADS).transpose(1, 2) for z in (q, k, v))
        k, v = self.kv_cache.update(pos, k, v)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        x = x + self.wo(y.transpose(1, 2).reshape(b, t, HIDDEN))
        gate, up = self.w13(self.ffn_norm(x)).split(FFN, dim=-1)
        return x + self.w2(F.silu(gate) * up)


class Transformer(torch.nn.Module):
    def __init__(self, max_len):
        super().__init__()
        self.tok_embeddings = torch.nn.Embedding(VOCAB, HIDDEN)
        self.layers = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = torch.nn.RMSNorm(HIDDEN)
        self.output = torch.nn.Linear(HIDDEN, VOCAB, bias=False)
        self.register_buffer("causal", torch.tril(torch.ones(max_len, max_len, dtype=torch.bool)))
        self.max_len = max_len

    def setup_caches(self, batch, dtype):
        for layer in self.layers:
            layer.kv_cache = KVCache(batch, self.max_len, HEADS, HIDDEN // HEADS, dtype).to(self.causal.device)

    def forward(self, idx, pos):
        mask = self.causal[None, None, pos]
        x = self.tok_embeddings(idx)
        for layer in self.layers:
            x = layer(x, pos, mask)
        return self.output(self.norm(x))


def prefill(model, prompt, pos):
    return model(prompt, pos)[:, -1].argmax(-1, keepdim=True)


def decode_one_token(model, token, pos):
    return model(token, pos)[:, -1].argmax(-1, keepdim=True)


def gptfast_generate(compiled: bool, ranges: bool) -> tuple[callable, dict]:
    torch.manual_seed(0)
    model = Transformer(PROMPT + NEW_TOKENS).to("cuda", torch.bfloat16).eval()
    model.setup_caches(BATCH, torch.bfloat16)
    prompt = torch.randint(0, VOCAB, (BATCH, PROMPT), device="cuda")
    step = torch.compile(decode_one_token, fullgraph=True) if compiled else decode_one_token
    if ranges:
        import nvtx
        decode_range = lambda: nvtx.annotate("decode_loop", domain="engine")  # noqa: E731
        token_range = lambda: nvtx.annotate("next_token", domain="engine")  # noqa: E731
    else:
        decode_range = token_range = nullcontext

    def run():
        with torch.no_grad():
            token = prefill(model, prompt, torch.arange(PROMPT, device="cuda"))
            out = [token]
            with decode_range():
                # positions as device tensors built ahead: no host work between tokens but the launches
                positions = torch.arange(PROMPT, PROMPT + NEW_TOKENS - 1, device="cuda")
                for i in range(NEW_TOKENS - 1):
                    with token_range():
                        token = step(model, token, positions[i:i + 1]).clone()
                        out.append(token)
            return torch.cat(out, dim=1)

    style = "torch.compile (Inductor, no CUDA graphs)" if compiled else "eager"
    return run, {"engine": f"gpt-fast-style loop, {style}" + (", NVTX domain 'engine'" if ranges else ""),
                 "cache": "static KV cache",
                 "model": f"Llama-style random init, {LAYERS} layers, hidden {HIDDEN}, vocab {VOCAB}"}


WORKLOADS = {
    "hf_eager": lambda: hf_generate(static=False),
    "hf_static": lambda: hf_generate(static=True),
    "gptfast": lambda: gptfast_generate(compiled=False, ranges=False),
    "gptfast_compiled": lambda: gptfast_generate(compiled=True, ranges=False),
    "gptfast_nvtx": lambda: gptfast_generate(compiled=False, ranges=True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=sorted(WORKLOADS))
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--json-out", required=True)
    a = p.parse_args()
    run, about = WORKLOADS[a.name]()
    for _ in range(a.warmup):
        run()
    torch.cuda.synchronize()
    torch.cuda.profiler.start()
    tokens = run()
    torch.cuda.synchronize()
    torch.cuda.profiler.stop()
    assert tokens.shape == (BATCH, NEW_TOKENS), tokens.shape
    doc = {"workload": a.name, **about, "batch": BATCH, "prompt_len": PROMPT, "new_tokens": NEW_TOKENS,
           "decode_steps": NEW_TOKENS - 1, "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
    with open(a.json_out, "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(doc))


if __name__ == "__main__":
    main()
