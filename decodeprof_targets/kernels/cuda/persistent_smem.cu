// The whole decode loop in ONE launch with every decode weight resident in shared memory.
//
// One block per SM (P blocks). At launch each block copies its slice of W1, W2 and lm_head into
// shared memory (20 MB of bf16 at the default shape spread over 128 blocks: 160 KB each), plus
// the LayerNorm weights and its biases; then every decode step reads its parameters from shared
// memory only (what it still reads from L2 or HBM: the gathered embedding rows and the words the
// blocks exchange):
//
//   tokens  = argmax of the previous step's per-block partials (every block reduces them itself)
//   x       = LayerNorm(embed[tokens] + state)               every block, all batch rows
//   h       = GELU(x @ W1.T + b1)        block's 8-row tiles of W1     -> published to all blocks
//   state   = h @ W2.T + b2              block's 8-row tiles of W2     -> published to all blocks
//   partial = max/argmax of state @ Wlm.T over the block's vocabulary rows -> published
//
// Products run on tensor cores (mma.sync m16n8k16 bf16, fp32 accumulate): A = the activations
// (batch rows padded to 16), B = 8 weight rows x 16 columns. The host stores each weight in
// fragment order (decodeprof_targets/kernels/smem_decode.py: fragment_layout), so one lane's B registers
// for two k-steps are 16 contiguous bytes: one conflict-free 128-bit shared load. The warps split
// K; their partial sums meet in shared memory and are added in a fixed order (deterministic).
// Rounding follows eager PyTorch: bf16 after the embed + state add, after LayerNorm, after each
// Linear (bias added in fp32 first), after GELU; argmax over the bf16-rounded logits, lowest
// index on a tie.
//
// No grid barrier: blocks exchange h, state and the partials through "flagged" 8-byte words
// (NCCL's LL protocol): 32 bits of data next to a 32-bit flag, two such words per 16-byte vector
// store and load, the reader checking both flags. That a reader which sees a word's flag also
// sees its data rests, as in NCCL, on the hardware writing each aligned 8-byte half at once (the
// PTX memory model treats vector elements as separate accesses). The flag of step s is seq + s + 1, where seq is the
// launch counter read at launch (block 0 advances it by `steps` at the end, after every block
// has published its last partial, hence read seq). A reader polls until its words carry the
// step's flag: waiting for the data and reading it are one L2 round trip, where a barrier and a
// load are two. Every block publishes a partial each step (blocks without vocabulary rows a
// neutral one), and a block reads every block's partial before it writes any word of the next
// step; so one buffer for h and state suffices (each block published its partial after reading
// them) and the partials alternate between two buffers by step parity. The final state goes
// out from block 0 at the end, when every block has read the initial state. A reader that waits
// past ~2 s sets the sticky error flag and stops waiting (a wrong result, reported).

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace decodeprof {

#ifndef DP_WARPS
#define DP_WARPS 16
#endif
constexpr int WARPS = DP_WARPS;  // a power of two >= MAX_B (LayerNorm splits rows over warps)
constexpr int THREADS = WARPS * 32;
constexpr int MAX_B = 16;    // batch rows: the mma's M
#ifndef DP_NT_CHUNK
#define DP_NT_CHUNK 8
#endif
constexpr int NT_CHUNK = DP_NT_CHUNK;  // 8-row weight tiles a warp accumulates at once
static_assert(WARPS >= MAX_B && (WARPS & (WARPS - 1)) == 0, "DP_WARPS must be a power of two >= 16 (MAX_B)");
static_assert(NT_CHUNK >= 1, "DP_NT_CHUNK must be >= 1");
constexpr int XS_PAD = 8;    // bf16 elements after each activation row: rows start 4 banks apart
constexpr int PHASES = 8;    // timestamps per step (Params.phase_ns)
constexpr unsigned long long TIMEOUT_NS = 2000000000ull;

enum Error : int { ERR_TIMEOUT = 1, ERR_TOKEN = 2 };

struct Params {
  const long long* tok_in;        // [B]
  const __nv_bfloat16* embed;     // [V, H]
  __nv_bfloat16* state;           // [B, stride_state]: read at launch, written at the end
  const __nv_bfloat16* ln_w;      // [H]
  const __nv_bfloat16* ln_b;      // [H]
  const uint4* w1;                // fragment order [NT_H][KP][32] x 16 B
  const __nv_bfloat16* b1;        // [H]
  const uint4* w2;
  const __nv_bfloat16* b2;
  const uint4* wl;                // fragment order [NT_V][KP][32]
  uint4* h_ll;                    // [B * H / 4] flagged units: 4 bf16 + 2 flags
  uint4* state_ll;                // [B * H / 4]
  uint4* part_ll;                 // [2][P][MAX_B] units by step parity: max (fp32 bits), flag, index, flag
  __nv_bfloat16* logits;          // [B, stride_logits], last step only; null: not written
  long long* tokens_out;          // [B, stride_out]
  unsigned* seq;                  // launch counter (flags of the next launch start above it)
  int* err;
  unsigned long long* phase_ns;   // [steps][PHASES] timestamps of block 0, or null
  long long stride_state, stride_logits, stride_out;
  float eps;
  int B, H, V, steps, P, KP;
  int T1, T3;                     // 8-row tiles per block: W1 and W2 (T1 each), lm_head (T3)
};

__device__ __forceinline__ float round_bf16(float x) { return __bfloat162float(__float2bfloat16_rn(x)); }

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ unsigned long long now_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

// A flagged unit: two 8-byte words {data0, flag, data1, flag}, each written atomically.
__device__ __forceinline__ void st_unit(uint4* p, uint32_t d0, uint32_t d1, uint32_t flag) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1, %2, %3, %4};\n" ::"l"(p), "r"(d0), "r"(flag), "r"(d1), "r"(flag)
               : "memory");
}

__device__ __forceinline__ uint4 ld_unit(const uint4* p) {
  uint4 v;
  asm volatile("ld.volatile.global.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p) : "memory");
  return v;
}

#ifdef DP_NO_WAIT  // timing experiments only: take whatever the words hold (wrong results)
__device__ __forceinline__ bool carries(const uint4&, uint32_t) { return true; }
#else
__device__ __forceinline__ bool carries(const uint4& v, uint32_t flag) { return v.y == flag && v.w == flag; }
#endif

// Read `n` flagged units and hand each one's data to sink(unit index, data0, data1). A thread
// loads its UNITS units together, then re-polls all of its missing ones together (one L2 round
// trip per round), until they carry `flag` or TIMEOUT_NS passes (then it reports and stops waiting).
#ifndef DP_UNITS
#define DP_UNITS 4
#endif
constexpr int UNITS = DP_UNITS;
static_assert(UNITS >= 1, "DP_UNITS must be >= 1");
template <typename Sink>
__device__ __forceinline__ void read_units(const uint4* src, int n, uint32_t flag, const Params& prm, bool& failed,
                                           Sink sink) {
  for (int u0 = threadIdx.x; u0 < n; u0 += THREADS * UNITS) {
    uint4 v[UNITS];
#pragma unroll
    for (int j = 0; j < UNITS; ++j)
      if (u0 + j * THREADS < n) v[j] = ld_unit(src + u0 + j * THREADS);
    bool ready = true;
#pragma unroll
    for (int j = 0; j < UNITS; ++j) ready &= u0 + j * THREADS >= n || carries(v[j], flag);
    if (!ready && !failed) {
      const unsigned long long start = now_ns();
      while (!ready) {
#pragma unroll
        for (int j = 0; j < UNITS; ++j)
          if (u0 + j * THREADS < n && !carries(v[j], flag)) v[j] = ld_unit(src + u0 + j * THREADS);
        ready = true;
#pragma unroll
        for (int j = 0; j < UNITS; ++j) ready &= u0 + j * THREADS >= n || carries(v[j], flag);
        if (!ready && now_ns() - start > TIMEOUT_NS) {
          atomicOr(prm.err, ERR_TIMEOUT);
          failed = true;
          break;
        }
      }
    }
#pragma unroll
    for (int j = 0; j < UNITS; ++j)
      if (u0 + j * THREADS < n) sink(u0 + j * THREADS, v[j].x, v[j].z);
  }
}

// sums[b * stride + row] = x[b] . W[row] for NT 8-row weight tiles from tile0: the warps split K
// (k-pairs of 32 columns), each accumulating the NT tiles at once; then the block adds the warps'
// sums in a fixed order. NT is a compile-time count: no predicated-off HMMA takes tensor-pipe
// slots (a 1-tile stage with an 8-wide loop issued 8x the HMMAs it needed).
template <int NT>
__device__ __forceinline__ void matmul_tiles(const uint4* ws, int tile0, const __nv_bfloat16* xs, int xs_stride,
                                          float* red, float* sums, int stride, int B, int KP) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
  const uint32_t* xrow0 = reinterpret_cast<const uint32_t*>(xs + g * xs_stride) + t;
  const uint32_t* xrow1 = reinterpret_cast<const uint32_t*>(xs + (g + 8) * xs_stride) + t;
  const bool has0 = g < B, has1 = g + 8 < B;
  float acc[NT][4];
#pragma unroll
  for (int j = 0; j < NT; ++j) acc[j][0] = acc[j][1] = acc[j][2] = acc[j][3] = 0.f;
  for (int kp = warp; kp < KP; kp += WARPS) {
    uint32_t a0[4], a1[4];  // A fragments of k-steps 2 kp and 2 kp + 1 (32-bit words = 2 columns)
    const int w = kp * 16;  // word offset of column kp * 32
    a0[0] = has0 ? xrow0[w] : 0u;      a0[1] = has1 ? xrow1[w] : 0u;
    a0[2] = has0 ? xrow0[w + 4] : 0u;  a0[3] = has1 ? xrow1[w + 4] : 0u;
    a1[0] = has0 ? xrow0[w + 8] : 0u;  a1[1] = has1 ? xrow1[w + 8] : 0u;
    a1[2] = has0 ? xrow0[w + 12] : 0u; a1[3] = has1 ? xrow1[w + 12] : 0u;
#pragma unroll
    for (int j = 0; j < NT; ++j) {
      const uint4 bw = ws[((tile0 + j) * KP + kp) * 32 + lane];
      mma_bf16(acc[j], a0, bw.x, bw.y);
      mma_bf16(acc[j], a1, bw.z, bw.w);
    }
  }
  // C fragment: c0, c1 = (batch g, rows 2t, 2t + 1), c2, c3 = (batch g + 8, same rows)
  const int per_warp = NT * 8 * B;  // results: [tile][batch][row in tile]
#pragma unroll
  for (int j = 0; j < NT; ++j) {
    float* r = red + warp * per_warp + j * 8 * B;
    if (has0) *reinterpret_cast<float2*>(r + g * 8 + 2 * t) = make_float2(acc[j][0], acc[j][1]);
    if (has1) *reinterpret_cast<float2*>(r + (g + 8) * 8 + 2 * t) = make_float2(acc[j][2], acc[j][3]);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < per_warp / 4; i += THREADS) {
    float4 q[4] = {};  // the warps' sums in 4 interleaved chains, then paired: fixed order, short dependencies
#pragma unroll
    for (int w2 = 0; w2 < WARPS; ++w2) {
      const float4 v = reinterpret_cast<const float4*>(red + w2 * per_warp)[i];
      q[w2 % 4].x += v.x; q[w2 % 4].y += v.y; q[w2 % 4].z += v.z; q[w2 % 4].w += v.w;
    }
    const float4 s = make_float4((q[0].x + q[1].x) + (q[2].x + q[3].x), (q[0].y + q[1].y) + (q[2].y + q[3].y),
                                 (q[0].z + q[1].z) + (q[2].z + q[3].z), (q[0].w + q[1].w) + (q[2].w + q[3].w));
    const int j = i / (2 * B), b = (i / 2) % B, r = (i % 2) * 4;
    *reinterpret_cast<float4*>(sums + b * stride + (tile0 + j) * 8 + r) = s;
  }
  __syncthreads();  // red is reused by the next call; sums are complete
}

__device__ __noinline__ void matmul_chunk(const uint4* ws, int tile0, const __nv_bfloat16* xs, int xs_stride,
                                          float* red, float* sums, int stride, int B, int KP) {
  matmul_tiles<NT_CHUNK>(ws, tile0, xs, xs_stride, red, sums, stride, B, KP);
}

// sums for all of the block's `tiles` tiles: chunks of NT_CHUNK (one out-of-line copy), then
// single tiles (inlined: small).
__device__ __forceinline__ void block_matmul(const uint4* ws, int tiles, const __nv_bfloat16* xs, int xs_stride,
                                             float* red, float* sums, int stride, int B, int KP) {
  int tile0 = 0;
  for (; tile0 + NT_CHUNK <= tiles; tile0 += NT_CHUNK)
    matmul_chunk(ws, tile0, xs, xs_stride, red, sums, stride, B, KP);
  for (; tile0 < tiles; ++tile0) matmul_tiles<1>(ws, tile0, xs, xs_stride, red, sums, stride, B, KP);
}

__device__ __forceinline__ bool better(float v, int i, float best, int idx) {
  return v > best || (v == best && i < idx);
}

__device__ __forceinline__ void warp_argmax(float& best, int& idx) {
  for (int o = 16; o > 0; o >>= 1) {
    const float v = __shfl_xor_sync(0xffffffffu, best, o);
    const int i = __shfl_xor_sync(0xffffffffu, idx, o);
    if (better(v, i, best, idx)) { best = v; idx = i; }
  }
}

// B rounded up to a power of two: the lane groups that split work by batch row
__device__ __forceinline__ int batch_pow2(int B) {
  int bp = 1;
  while (bp < B) bp *= 2;
  return bp;
}

__device__ __forceinline__ uint4* partial_unit(const Params& p, uint32_t flag, int q, int b) {
  return p.part_ll + ((flag & 1) * p.P + q) * MAX_B + b;
}

// tok[b] = index of the largest published partial of step `flag` (lowest index on a tie) over all
// P blocks. Every thread takes one batch row (b = lane % BP, BP = B rounded up to a power of two)
// and some blocks' partials (read together, see read_units); warp shuffles, then one thread per
// row over the warps' results (tok_red: [WARPS][MAX_B] of (value, index)).
__device__ void reduce_tokens(const Params& p, uint32_t flag, bool& failed, int* tok, float2* tok_red) {
  const int bp = batch_pow2(p.B);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, b = lane % bp, per_row = THREADS / bp;
  float best = -INFINITY;
  int idx = 0x7fffffff;
  if (b < p.B) {
    const int first = threadIdx.x / bp;  // blocks first, first + per_row, ...
    const uint4* base = partial_unit(p, flag, 0, b);
    for (int q = first; q < p.P; q += per_row) {
      uint4 v = ld_unit(base + q * MAX_B);
      if (!carries(v, flag) && !failed) {
        const unsigned long long start = now_ns();
        do {
          v = ld_unit(base + q * MAX_B);
          if (now_ns() - start > TIMEOUT_NS) {
            atomicOr(p.err, ERR_TIMEOUT);
            failed = true;
            break;
          }
        } while (!carries(v, flag));
      }
      if (better(__uint_as_float(v.x), (int)v.z, best, idx)) { best = __uint_as_float(v.x); idx = (int)v.z; }
    }
  }
  for (int o = 16; o >= bp; o >>= 1) {  // lanes of the same row differ in the bits >= bp
    const float v = __shfl_xor_sync(0xffffffffu, best, o);
    const int i = __shfl_xor_sync(0xffffffffu, idx, o);
    if (better(v, i, best, idx)) { best = v; idx = i; }
  }
  if (lane < bp && b < p.B) tok_red[warp * MAX_B + b] = make_float2(best, __int_as_float(idx));
  __syncthreads();
  if (threadIdx.x < p.B) {
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    for (int w = 0; w < WARPS; ++w) {
      const float2 r = tok_red[w * MAX_B + threadIdx.x];
      if (better(r.x, __float_as_int(r.y), bv, bi)) { bv = r.x; bi = __float_as_int(r.y); }
    }
    tok[threadIdx.x] = bi;
  }
}

__device__ __forceinline__ void mark(const Params& p, int step, int phase) {
#ifdef DP_MARK_CLOCK  // timing experiments: SM cycles instead of ns
  if (p.phase_ns != nullptr && blockIdx.x == 0 && threadIdx.x == 0) p.phase_ns[step * PHASES + phase] = clock64();
#else
  if (p.phase_ns != nullptr && blockIdx.x == 0 && threadIdx.x == 0) p.phase_ns[step * PHASES + phase] = now_ns();
#endif
}

#ifndef DP_LN_LOADS
#define DP_LN_LOADS 4
#endif
constexpr int LN_LOADS = DP_LN_LOADS;  // embedding chunks a thread loads at once
static_assert(LN_LOADS >= 1, "DP_LN_LOADS must be >= 1");

// xs[b] = LayerNorm(embed[tok[b]] + xs[b]) (xs holds the state) rounded like eager PyTorch. All
// warps work: WARPS / BP warps per batch row (BP = B rounded up to a power of two), 16-byte
// chunks, the embedding loads of a thread issued together; the row sums meet in ln_red [WARPS]
// and are added in warp order (deterministic).
__device__ void layer_norm_rows(const Params& p, const int* tok, const __nv_bfloat16* lnw, const __nv_bfloat16* lnb,
                                __nv_bfloat16* xs, int xs_stride, float* ln_red) {
  const int bp = batch_pow2(p.B);
  const int wpr = WARPS / bp, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int b = warp / wpr, first = (warp % wpr) * 32 + lane, step = wpr * 32, chunks = p.H / 8;
  const bool active = b < p.B;
  uint4* x = reinterpret_cast<uint4*>(xs + b * xs_stride);
  float sum = 0.f;
  if (active) {
    int id = tok[b];
    if (id < 0 || id >= p.V) {
      if (lane == 0) atomicOr(p.err, ERR_TOKEN);
      id = 0;
    }
    const uint4* e = reinterpret_cast<const uint4*>(p.embed + (long long)id * p.H);
    for (int c0 = first; c0 < chunks; c0 += step * LN_LOADS) {
      uint4 ev[LN_LOADS];
#pragma unroll
      for (int j = 0; j < LN_LOADS; ++j)
        if (c0 + j * step < chunks) ev[j] = e[c0 + j * step];
#pragma unroll
      for (int j = 0; j < LN_LOADS; ++j) {
        const int c = c0 + j * step;
        if (c < chunks) {
          uint4 sv = x[c];
          const __nv_bfloat16* ee = reinterpret_cast<const __nv_bfloat16*>(&ev[j]);
          __nv_bfloat16* ss = reinterpret_cast<__nv_bfloat16*>(&sv);
#pragma unroll
          for (int u = 0; u < 8; ++u) {
            const float v = round_bf16(__bfloat162float(ee[u]) + __bfloat162float(ss[u]));
            ss[u] = __float2bfloat16_rn(v);
            sum += v;
          }
          x[c] = sv;
        }
      }
    }
  }
  const auto row_total = [&](float v) {  // sum of v over the row's warps, in warp order
    v = warp_sum(v);
    if (lane == 0) ln_red[warp] = v;
    __syncthreads();
    float t = 0.f;
    if (active)
      for (int w = 0; w < wpr; ++w) t += ln_red[b * wpr + w];
    __syncthreads();  // ln_red is reused
    return t;
  };
  const float mean = row_total(sum) / p.H;
  float sq = 0.f;
  if (active) {
    for (int c = first; c < chunks; c += step) {
      const uint4 sv = x[c];
      const __nv_bfloat16* ss = reinterpret_cast<const __nv_bfloat16*>(&sv);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const float d = __bfloat162float(ss[u]) - mean;
        sq += d * d;
      }
    }
  }
  const float rstd = 1.0f / sqrtf(row_total(sq) / p.H + p.eps);
  if (active) {
    for (int c = first; c < chunks; c += step) {
      uint4 sv = x[c];
      const uint4 wv = reinterpret_cast<const uint4*>(lnw)[c], bv = reinterpret_cast<const uint4*>(lnb)[c];
      __nv_bfloat16* ss = reinterpret_cast<__nv_bfloat16*>(&sv);
      const __nv_bfloat16* ww = reinterpret_cast<const __nv_bfloat16*>(&wv);
      const __nv_bfloat16* bb = reinterpret_cast<const __nv_bfloat16*>(&bv);
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const float d = __bfloat162float(ss[u]) - mean;
        ss[u] = __float2bfloat16_rn(d * rstd * __bfloat162float(ww[u]) + __bfloat162float(bb[u]));
      }
      x[c] = sv;
    }
  }
}

// Flagged [B, H] rows (4 columns per unit) -> shared activation rows.
__device__ void read_rows(const Params& p, const uint4* src, uint32_t flag, bool& failed, __nv_bfloat16* xs,
                          int xs_stride) {
  const int per_row = p.H / 4;
  read_units(src, p.B * per_row, flag, p, failed, [&](int u, uint32_t d0, uint32_t d1) {
    *reinterpret_cast<uint2*>(xs + (u / per_row) * xs_stride + (u % per_row) * 4) = make_uint2(d0, d1);
  });
}


__global__ void __launch_bounds__(THREADS, 1) persistent_decode_smem_kernel(const Params p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int blk = blockIdx.x;
  const int KP = p.KP, B = p.B, H = p.H, V = p.V;
  const int nt_h = (H + 7) / 8, nt_v = (V + 7) / 8;
  const int t1_0 = blk * p.T1, t1 = max(0, min(p.T1, nt_h - t1_0));  // this block's W1 / W2 tiles
  const int t3_0 = blk * p.T3, t3 = max(0, min(p.T3, nt_v - t3_0));  // and lm_head tiles
  const int xs_stride = KP * 32 + XS_PAD;

  uint4* ws1 = reinterpret_cast<uint4*>(smem);
  uint4* ws2 = ws1 + p.T1 * KP * 32;
  uint4* ws3 = ws2 + p.T1 * KP * 32;
  __nv_bfloat16* xs = reinterpret_cast<__nv_bfloat16*>(ws3 + p.T3 * KP * 32);  // [B][xs_stride]
  __nv_bfloat16* lnw = xs + B * xs_stride;                                       // [H]
  __nv_bfloat16* lnb = lnw + H;                                                  // [H]
  float* bias1 = reinterpret_cast<float*>(lnb + H);                              // [T1 * 8]
  float* bias2 = bias1 + p.T1 * 8;                                               // [T1 * 8]
  float* red = bias2 + p.T1 * 8;                                                 // [WARPS][NT_CHUNK * 8 * B]
  float* sums = red + WARPS * NT_CHUNK * 8 * B;  // [B][max(T1, T3) * 8]: block_matmul's results, then logits
  __shared__ int tok[MAX_B];
  __shared__ float2 tok_red[WARPS * MAX_B];
  __shared__ float ln_red[WARPS];

  const uint32_t seq = *reinterpret_cast<volatile unsigned*>(p.seq);
  // Parameters -> shared memory, once for all steps; the initial state -> xs.
  // (streaming loads, evict-first: the weights are read once per launch and should not push the
  // embedding rows out of L2)
  for (int i = threadIdx.x; i < t1 * KP * 32; i += THREADS) {
    ws1[i] = __ldcs(p.w1 + t1_0 * KP * 32 + i);
    ws2[i] = __ldcs(p.w2 + t1_0 * KP * 32 + i);
  }
  for (int i = threadIdx.x; i < t3 * KP * 32; i += THREADS) ws3[i] = __ldcs(p.wl + t3_0 * KP * 32 + i);
  for (int i = threadIdx.x; i < B * xs_stride; i += THREADS) {
    const int b = i / xs_stride, k = i % xs_stride;
    xs[i] = k < H ? p.state[b * p.stride_state + k] : __float2bfloat16_rn(0.f);  // K padding stays 0
  }
  for (int i = threadIdx.x; i < H; i += THREADS) { lnw[i] = p.ln_w[i]; lnb[i] = p.ln_b[i]; }
  for (int i = threadIdx.x; i < p.T1 * 8; i += THREADS) {
    const int n = t1_0 * 8 + i;
    bias1[i] = n < H ? __bfloat162float(p.b1[n]) : 0.f;
    bias2[i] = n < H ? __bfloat162float(p.b2[n]) : 0.f;
  }
  if (threadIdx.x < B) {  // range-checked as 64-bit: a huge id must not wrap into the vocabulary
    const long long id = p.tok_in[threadIdx.x];
    tok[threadIdx.x] = id >= 0 && id < V ? (int)id : -1;
  }
  __syncthreads();
  bool failed = false;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;

  for (int step = 0; step < p.steps; ++step) {
    const uint32_t flag = seq + step + 1;
    const bool last = step == p.steps - 1;
    mark(p, step, 0);
    if (step > 0) {
      reduce_tokens(p, flag - 1, failed, tok, tok_red);
      __syncthreads();
      if (blk == 0 && threadIdx.x < B) p.tokens_out[threadIdx.x * p.stride_out + step - 1] = tok[threadIdx.x];
    }
    mark(p, step, 1);
    layer_norm_rows(p, tok, lnw, lnb, xs, xs_stride, ln_red);
    __syncthreads();
    mark(p, step, 2);
    block_matmul(ws1, t1, xs, xs_stride, red, sums, p.T1 * 8, B, KP);
    for (int i = threadIdx.x; i < B * t1 * 2; i += THREADS) {  // 4 rows per unit (H % 8 == 0: all in range)
      const int b = i / (t1 * 2), r = (i % (t1 * 2)) * 4, n = t1_0 * 8 + r;
      const float4 s = *reinterpret_cast<const float4*>(sums + b * p.T1 * 8 + r);
      float y[4] = {s.x, s.y, s.z, s.w};
#pragma unroll
      for (int u = 0; u < 4; ++u) {
        const float v = round_bf16(y[u] + bias1[r + u]);  // eager rounds the Linear's output
        y[u] = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
      }
      st_unit(p.h_ll + (b * H + n) / 4, pack_bf16(y[0], y[1]), pack_bf16(y[2], y[3]), flag);
    }
    mark(p, step, 3);

    read_rows(p, p.h_ll, flag, failed, xs, xs_stride);
    __syncthreads();
    mark(p, step, 4);
    block_matmul(ws2, t1, xs, xs_stride, red, sums, p.T1 * 8, B, KP);
    for (int i = threadIdx.x; i < B * t1 * 2; i += THREADS) {
      const int b = i / (t1 * 2), r = (i % (t1 * 2)) * 4, n = t1_0 * 8 + r;
      const float4 s = *reinterpret_cast<const float4*>(sums + b * p.T1 * 8 + r);
      st_unit(p.state_ll + (b * H + n) / 4, pack_bf16(s.x + bias2[r], s.y + bias2[r + 1]),
              pack_bf16(s.z + bias2[r + 2], s.w + bias2[r + 3]), flag);
    }
    mark(p, step, 5);

    read_rows(p, p.state_ll, flag, failed, xs, xs_stride);  // also the next step's LayerNorm input
    __syncthreads();
    mark(p, step, 6);
    block_matmul(ws3, t3, xs, xs_stride, red, sums, p.T3 * 8, B, KP);
    for (int i = threadIdx.x; i < B * t3 * 8; i += THREADS) {
      const int b = i / (t3 * 8), r = i % (t3 * 8), n = t3_0 * 8 + r;
      const float v = round_bf16(sums[b * p.T3 * 8 + r]);  // eager argmaxes the rounded logits
      sums[b * p.T3 * 8 + r] = n < V ? v : -INFINITY;
      if (last && p.logits != nullptr && n < V) p.logits[b * p.stride_logits + n] = __float2bfloat16_rn(v);
    }
    __syncthreads();
    for (int b = warp; b < B; b += WARPS) {  // a block without vocabulary rows publishes (-inf, INT_MAX)
      float best = -INFINITY;
      int idx = 0x7fffffff;
      for (int r = lane; r < t3 * 8; r += 32) {
        const float v = sums[b * p.T3 * 8 + r];
        if (v > best) { best = v; idx = t3_0 * 8 + r; }  // rows ascend per lane: the first max wins
      }
      warp_argmax(best, idx);
      if (lane == 0) st_unit(partial_unit(p, flag, blk, b), __float_as_uint(best), (uint32_t)idx, flag);
    }
    mark(p, step, 7);
  }
  if (blk == 0) {  // every block has read seq and the initial state once its last partial is in
    reduce_tokens(p, seq + p.steps, failed, tok, tok_red);
    __syncthreads();
    if (threadIdx.x < B) p.tokens_out[threadIdx.x * p.stride_out + p.steps - 1] = tok[threadIdx.x];
    for (int i = threadIdx.x; i < B * H; i += THREADS)
      p.state[(i / H) * p.stride_state + i % H] = xs[(i / H) * xs_stride + i % H];
    if (threadIdx.x == 0) *reinterpret_cast<volatile unsigned*>(p.seq) = seq + p.steps;
  }
}

}  // namespace decodeprof

using decodeprof::Params;
using decodeprof::persistent_decode_smem_kernel;

extern "C" {

// Shared-memory bytes one block needs (the layout at the top of the kernel).
int dp_smem_bytes(int B, int H, int KP, int T1, int T3) {
  using namespace decodeprof;
  return (2 * T1 + T3) * KP * 512 + 2 * B * (KP * 32 + XS_PAD) + 2 * 2 * H + 4 * 2 * T1 * 8 +
         4 * (WARPS * NT_CHUNK * 8 * B + B * (T1 > T3 ? T1 : T3) * 8);  // sums serve stages 1-2 and 3
}

// Static shared memory of the kernel (its __shared__ arrays), on top of the dynamic part.
int dp_static_smem(int* bytes) {
  cudaFuncAttributes a;
  cudaError_t e = cudaFuncGetAttributes(&a, persistent_decode_smem_kernel);
  *bytes = (int)a.sharedSizeBytes;
  return (int)e;
}

int dp_threads() { return decodeprof::THREADS; }
int dp_phases() { return decodeprof::PHASES; }
int dp_max_batch() { return decodeprof::MAX_B; }

// Allow `smem_bytes` of dynamic shared memory; *blocks_per_sm: how many blocks fit on one SM.
int dp_prepare(int smem_bytes, int* blocks_per_sm) {
  cudaError_t e = cudaFuncSetAttribute(persistent_decode_smem_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       smem_bytes);
  if (e != cudaSuccess) return (int)e;
  return (int)cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, persistent_decode_smem_kernel,
                                                            decodeprof::THREADS, smem_bytes);
}

int dp_launch(const Params* p, int smem_bytes, void* stream) {
  persistent_decode_smem_kernel<<<p->P, decodeprof::THREADS, smem_bytes, (cudaStream_t)stream>>>(*p);
  return (int)cudaGetLastError();
}

const char* dp_error_string(int code) { return cudaGetErrorString((cudaError_t)code); }

}  // extern "C"
