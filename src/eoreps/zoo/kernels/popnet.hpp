// Layers of a zoo member, written for L members at once: one SIMD lane per member.
//
// Why hand-written (see docs/zoo.md, "native engine"): a zoo member has 2,464 parameters and sees 10
// images per step; one member's whole training step (images, activations, gradients, Adam moments)
// fits in a core's L2 cache. oneDNN's grouped convolutions stream every activation of the population
// through memory several times per step and reach ~32 GFLOP/s on the 1-input-channel first layer.
// Here every value is a vector `V` of L floats, lane l belonging to member l of a group of L; all
// members of a group run the identical instruction stream on their own weights and images, so every
// loop vectorizes by construction (GCC vector extensions). L = POPNET_LANES, set by eoreps.zoo.native to
// the floats of one SIMD register of the CPU (16 with AVX-512, 8 with AVX2): a wider V than the register
// is split into several, which doubles register pressure and spills (16 lanes on an AVX2 CPU ran 7x
// slower than 8, docs/zoo.md). A member's arithmetic does not depend on L, up to where the compiler fuses
// multiply-adds (width-dependent: rounding; bit-identical with -ffp-contract=off). The conv
// feeding a max-pool is fused with it (only the pooled values and the argmax are stored) and the
// pooled backward routes gradients through the stored argmax.
//
// Layout: a tensor of shape (C, H, W) is `V t[C*H*W]` in C-major order, so flatten is free and
// matches torch's `flatten(1)`; parameters are `V w[D]` in state_dict order (conv weight (Cout, Cin,
// K, K), bias (Cout,), linear weight (Out, In), bias (Out,)).
//
// Semantics follow eoreps.zoo.architectures.ZooNet exactly: valid convolutions with stride 1,
// max-pool 2x2 floor mode (first maximum wins on ties, as torch), activation then inverted dropout,
// mean cross-entropy over the batch; the optimizer step transcribes eoreps.zoo.optim.StackedOptimizer.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

namespace popnet {

#ifndef POPNET_LANES
#define POPNET_LANES 16
#endif
constexpr int L = POPNET_LANES;
static_assert(L == 4 || L == 8 || L == 16, "POPNET_LANES: 4, 8 or 16 members per lane group");
typedef float V __attribute__((vector_size(4 * POPNET_LANES)));
typedef int32_t VI __attribute__((vector_size(4 * POPNET_LANES)));
typedef uint32_t VU __attribute__((vector_size(4 * POPNET_LANES)));

static inline V vs(float a) { return V{} + a; }
static inline V vmax(V a, V b) { return a > b ? a : b; }
static inline V vabs(V a) { return a < 0 ? -a : a; }
static inline V vsqrt(V a) {
  V r;
  for (int l = 0; l < L; ++l) r[l] = std::sqrt(a[l]);
  return r;
}

// exp(x) to ~1 ulp (Cephes expf: range reduction by ln 2, degree-6 polynomial, 2^n by exponent bits);
// NaN stays NaN (the clamps compare false on NaN), so a diverged member stays visibly diverged
static inline V vexp(V x) {
  x = x < -87.3365447f ? vs(-87.3365447f) : x;
  x = x > 88.3762626f ? vs(88.3762626f) : x;
  V fx = x * 1.44269504088896341f + 0.5f;
  VI i = __builtin_convertvector(fx, VI);
  V fi = __builtin_convertvector(i, V);
  VI gt = fi > fx;
  fi = gt ? fi - 1.0f : fi;  // floor
  i = __builtin_convertvector(fi, VI);
  x = x - fi * 0.693359375f + fi * 2.12194440e-4f;
  V z = x * x;
  V y = vs(1.9875691500e-4f);
  y = y * x + 1.3981999507e-3f;
  y = y * x + 8.3334519073e-3f;
  y = y * x + 4.1665795894e-2f;
  y = y * x + 1.6666665459e-1f;
  y = y * x + 5.0000001201e-1f;
  y = y * z + x + 1.0f;
  VI e = (i + 127) << 23;
  return y * (V)e;
}

// erf(x), Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7)
static inline V verf(V x) {
  V a = vabs(x);
  V t = 1.0f / (1.0f + 0.3275911f * a);
  V p = vs(1.061405429f);
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  V r = 1.0f - p * t * vexp(-a * a);
  return x < 0 ? -r : r;
}

// activation codes, in the order of eoreps.zoo.architectures.ACTIVATIONS
enum Act { TANH = 0, RELU = 1, SIGMOID = 2, GELU = 3 };

template <int KIND>
static inline void act_one(V z, V& a, V& d) {
  if constexpr (KIND == TANH) {
    V e = vexp(-2.0f * vabs(z));
    V t = (1.0f - e) / (1.0f + e);
    a = z < 0 ? -t : t;
    d = 1.0f - a * a;
  } else if constexpr (KIND == RELU) {
    a = z <= 0 ? vs(0.0f) : z;  // NaN passes through, as torch.relu
    d = z > 0 ? vs(1.0f) : vs(0.0f);
  } else if constexpr (KIND == SIGMOID) {
    a = 1.0f / (1.0f + vexp(-z));
    d = a * (1.0f - a);
  } else {
    V cdf = 0.5f * (1.0f + verf(z * 0.70710678118654752f));
    a = z * cdf;
    d = cdf + z * vexp(-0.5f * z * z) * 0.39894228040143268f;
  }
}

// murmur3's 32-bit finalizer: a counter-based random stream for dropout masks
static inline uint32_t fmix(uint32_t h) {
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}
static inline VU vfmix(VU h) {
  h ^= h >> 16; h *= 0x85ebca6bu; h ^= h >> 13; h *= 0xc2b2ae35u; h ^= h >> 16;
  return h;
}

// what differs between the L members of a group
struct Lanes {
  VI act;            // activation code per lane
  int act_mask;      // bit k set when some lane uses activation k
  V drop_p;          // dropout probability per lane
  V drop_scale;      // 1 / (1 - p)
  bool any_drop;
  VU seed;           // per-lane dropout stream
  V lr, wd;
  VI adam;           // nonzero: Adam, zero: SGD
};

// lane constants from per-lane arrays of L (lr, wd, adam may be null: evaluation and tests)
static inline Lanes make_lanes(const int32_t* act, const float* drop, const uint32_t* seed, const float* lr,
                               const float* wd, const int32_t* adam) {
  Lanes ln;
  ln.act_mask = 0;
  ln.any_drop = false;
  for (int l = 0; l < L; ++l) {
    ln.act[l] = act[l];
    ln.act_mask |= 1 << act[l];
    float p = drop ? drop[l] : 0.0f;
    ln.drop_p[l] = p;
    ln.drop_scale[l] = p > 0 ? 1.0f / (1.0f - p) : 1.0f;
    ln.any_drop |= p > 0;
    ln.seed[l] = seed ? seed[l] : 0u;
    ln.lr[l] = lr ? lr[l] : 0.0f;
    ln.wd[l] = wd ? wd[l] : 0.0f;
    ln.adam[l] = adam ? adam[l] : 0;
  }
  return ln;
}

// uniform [0, 1) per lane for value number `ctr` of the stream
static inline V uniform(const Lanes& ln, uint32_t ctr) {
  VU h = vfmix(ln.seed ^ fmix(ctr * 0x9E3779B9u + 0x632BE5ABu));
  return __builtin_convertvector(h >> 8, V) * (1.0f / 16777216.0f);
}

template <int KIND, int N>
static void act_kind(const Lanes& ln, const V* z, V* a, V* d, bool blend) {
  VI m = ln.act == KIND;
  for (int i = 0; i < N; ++i) {
    V ai, di;
    act_one<KIND>(z[i], ai, di);
    if (blend) { ai = m ? ai : a[i]; di = m ? di : d[i]; }
    a[i] = ai; d[i] = di;
  }
}

// a = f(z) * keep, d = f'(z) * keep (keep = dropout mask * 1/(1-p)); N values
template <int N>
static void act_fwd(const Lanes& ln, const V* z, V* a, V* d, uint32_t ctr) {
  bool blend = __builtin_popcount(ln.act_mask) > 1;
  if (ln.act_mask & (1 << TANH)) act_kind<TANH, N>(ln, z, a, d, blend);
  if (ln.act_mask & (1 << RELU)) act_kind<RELU, N>(ln, z, a, d, blend);
  if (ln.act_mask & (1 << SIGMOID)) act_kind<SIGMOID, N>(ln, z, a, d, blend);
  if (ln.act_mask & (1 << GELU)) act_kind<GELU, N>(ln, z, a, d, blend);
  if (ln.any_drop) {
    for (int i = 0; i < N; ++i) {
      V keep = uniform(ln, ctr + (uint32_t)i) >= ln.drop_p ? ln.drop_scale : vs(0.0f);
      a[i] *= keep; d[i] *= keep;
    }
  }
}

template <int N>
static inline void mul_into(const V* g, const V* d, V* out) {
  for (int i = 0; i < N; ++i) out[i] = g[i] * d[i];
}

template <int N>
static inline void zero(V* t) { std::memset((void*)t, 0, sizeof(V) * N); }

// the maximum of a 2x2 window's four values and its index 0..3 (row-major; the first maximum wins and NaN
// wins, as torch's max_pool2d)
static inline void pool_max(const V* acc, V& z, VI& am) {
  V m = acc[0];
  VI a = VI{} + 0;
  for (int q = 1; q < 4; ++q) {
    VI gt = (acc[q] > m) | (acc[q] != acc[q]);
    m = gt ? acc[q] : m;
    a = gt ? VI{} + q : a;
  }
  z = m; am = a;
}

// a pooled value's gradient gv routed to the window position am of its maximum (g[0..3]); gb += gv
static inline void unpool(V gv, VI am, V& gb, V* g) {
  gb += gv;
  for (int q = 0; q < 4; ++q) g[q] = am == q ? gv : vs(0.0f);
}

constexpr int cblock(int c) { return c % 4 == 0 ? 4 : c % 3 == 0 ? 3 : c % 2 == 0 ? 2 : 1; }

// How a conv+pool layer's forward multiplies (the policy of conv_pool_fwd_with): float32 FMAs, one kernel
// column per operand (here), or bf16 pairs of columns with float32 accumulation (popnet_bf16.hpp)
struct Fp32Products {
  typedef V T;                 // an operand: L lanes of one value
  static constexpr int N = 1;  // kernel columns per operand
  static constexpr int block(int c) { return cblock(c); }
  static inline V mac(V acc, V w, V x) { return acc + w * x; }
};

// convolution (CIN, H, W) -> (COUT, H-K+1, W-K+1) fused with 2x2 max-pool -> (COUT, OH/2, OW/2);
// am: index 0..3 of the maximum in the window (row-major, first wins). Operands are P::T: in[(ci*H + y)*W + x]
// holds the P::N values from column x on, w is (COUT, CIN, K, ceil(K / P::N))
template <class P, int CIN, int COUT, int H, int W, int K>
static void conv_pool_fwd_with(const typename P::T* in, const typename P::T* w, const V* b, V* z, VI* am) {
  typedef typename P::T T;
  constexpr int OH = H - K + 1, OW = W - K + 1, PH = OH / 2, PW = OW / 2, CB = P::block(COUT);
  constexpr int KS = (K + P::N - 1) / P::N;
  for (int c0 = 0; c0 < COUT; c0 += CB)
    for (int py = 0; py < PH; ++py)
      for (int px = 0; px < PW; ++px) {
        V acc[CB][4];
        for (int j = 0; j < CB; ++j)
          for (int q = 0; q < 4; ++q) acc[j][q] = b[c0 + j];
        for (int ci = 0; ci < CIN; ++ci)
          for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 8
            for (int s = 0; s < KS; ++s) {
              const T* ip = in + (ci * H + 2 * py + ky) * W + 2 * px + P::N * s;
              T x0 = ip[0], x1 = ip[1], x2 = ip[W], x3 = ip[W + 1];
              for (int j = 0; j < CB; ++j) {
                T wv = w[(((c0 + j) * CIN + ci) * K + ky) * KS + s];
                acc[j][0] = P::mac(acc[j][0], wv, x0); acc[j][1] = P::mac(acc[j][1], wv, x1);
                acc[j][2] = P::mac(acc[j][2], wv, x2); acc[j][3] = P::mac(acc[j][3], wv, x3);
              }
            }
        for (int j = 0; j < CB; ++j) {
          int o = ((c0 + j) * PH + py) * PW + px;
          pool_max(acc[j], z[o], am[o]);
        }
      }
}

template <int CIN, int COUT, int H, int W, int K>
static void conv_pool_fwd(const V* in, const V* w, const V* b, V* z, VI* am) {
  conv_pool_fwd_with<Fp32Products, CIN, COUT, H, W, K>(in, w, b, z, am);
}

// backward of conv_pool_fwd: gz = dL/d(pooled output); accumulates gw, gb; gin += dL/din when DGRAD
template <int CIN, int COUT, int H, int W, int K, bool DGRAD>
static void conv_pool_bwd(const V* in, const V* w, const V* gz, const VI* am, V* gw, V* gb, V* gin) {
  constexpr int OH = H - K + 1, OW = W - K + 1, PH = OH / 2, PW = OW / 2, CB = cblock(COUT);
  for (int c0 = 0; c0 < COUT; c0 += CB)
    for (int py = 0; py < PH; ++py)
      for (int px = 0; px < PW; ++px) {
        V g[CB][4];
        for (int j = 0; j < CB; ++j) {
          int o = ((c0 + j) * PH + py) * PW + px;
          unpool(gz[o], am[o], gb[c0 + j], g[j]);
        }
        for (int ci = 0; ci < CIN; ++ci)
          for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 8
            for (int kx = 0; kx < K; ++kx) {
              int io = (ci * H + 2 * py + ky) * W + 2 * px + kx;
              const V* ip = in + io;
              V x0 = ip[0], x1 = ip[1], x2 = ip[W], x3 = ip[W + 1];
              V t0 = vs(0.0f), t1 = vs(0.0f), t2 = vs(0.0f), t3 = vs(0.0f);
              for (int j = 0; j < CB; ++j) {
                int wo = ((c0 + j) * CIN + ci) * K * K + ky * K + kx;
                gw[wo] += g[j][0] * x0 + g[j][1] * x1 + g[j][2] * x2 + g[j][3] * x3;
                if constexpr (DGRAD) {
                  V wv = w[wo];
                  t0 += wv * g[j][0]; t1 += wv * g[j][1]; t2 += wv * g[j][2]; t3 += wv * g[j][3];
                }
              }
              if constexpr (DGRAD) {
                V* gp = gin + io;
                gp[0] += t0; gp[1] += t1; gp[W] += t2; gp[W + 1] += t3;
              }
            }
      }
}

// plain convolution (no pool after it)
template <int CIN, int COUT, int H, int W, int K>
static void conv_fwd(const V* in, const V* w, const V* b, V* z) {
  constexpr int OH = H - K + 1, OW = W - K + 1;
  for (int co = 0; co < COUT; ++co)
    for (int oy = 0; oy < OH; ++oy)
      for (int ox = 0; ox < OW; ++ox) {
        V acc = b[co];
        for (int ci = 0; ci < CIN; ++ci)
          for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx)
              acc += w[((co * CIN + ci) * K + ky) * K + kx] * in[(ci * H + oy + ky) * W + ox + kx];
        z[(co * OH + oy) * OW + ox] = acc;
      }
}

template <int CIN, int COUT, int H, int W, int K, bool DGRAD>
static void conv_bwd(const V* in, const V* w, const V* gz, V* gw, V* gb, V* gin) {
  constexpr int OH = H - K + 1, OW = W - K + 1;
  for (int co = 0; co < COUT; ++co)
    for (int oy = 0; oy < OH; ++oy)
      for (int ox = 0; ox < OW; ++ox) {
        V g = gz[(co * OH + oy) * OW + ox];
        gb[co] += g;
        for (int ci = 0; ci < CIN; ++ci)
          for (int ky = 0; ky < K; ++ky)
            for (int kx = 0; kx < K; ++kx) {
              int wo = ((co * CIN + ci) * K + ky) * K + kx, io = (ci * H + oy + ky) * W + ox + kx;
              gw[wo] += g * in[io];
              if constexpr (DGRAD) gin[io] += g * w[wo];
            }
      }
}

template <int IN, int OUT>
static void linear_fwd(const V* in, const V* w, const V* b, V* out) {
  for (int o = 0; o < OUT; ++o) {
    V acc = b[o];
    for (int i = 0; i < IN; ++i) acc += w[o * IN + i] * in[i];
    out[o] = acc;
  }
}

template <int IN, int OUT, bool DGRAD>
static void linear_bwd(const V* in, const V* w, const V* gout, V* gw, V* gb, V* gin) {
  for (int o = 0; o < OUT; ++o) {
    V g = gout[o];
    gb[o] += g;
    for (int i = 0; i < IN; ++i) {
      gw[o * IN + i] += g * in[i];
      if constexpr (DGRAD) gin[i] += g * w[o * IN + i];
    }
  }
}

// dL/dlogits of scale * cross-entropy(logits, y) (scale = 1 / batch size)
template <int K>
static void ce_grad(const V* logit, VI y, float scale, V* g) {
  V m = logit[0];
  for (int k = 1; k < K; ++k) m = vmax(m, logit[k]);
  V e[K];
  V s = vs(0.0f);
  for (int k = 0; k < K; ++k) { e[k] = vexp(logit[k] - m); s += e[k]; }
  V inv = scale / s;
  for (int k = 0; k < K; ++k) g[k] = e[k] * inv - (y == k ? vs(scale) : vs(0.0f));
}

// one SGD / Adam step, as eoreps.zoo.optim.StackedOptimizer (L2 weight decay added to the gradient)
static void opt_step(int D, V* w, const V* g, V* m, V* v, const Lanes& ln, bool moments, long t) {
  const double b1 = 0.9, b2 = 0.999;
  const float bc1_inv = (float)(-1.0 / (1.0 - std::pow(b1, (double)t)));
  const float bc2_sqrt = (float)std::sqrt(1.0 - std::pow(b2, (double)t));
  for (int i = 0; i < D; ++i) {
    V gi = g[i] + ln.wd * w[i];
    V sgd = w[i] - ln.lr * gi;
    if (!moments) { w[i] = sgd; continue; }
    V mi = m[i] + 0.1f * (gi - m[i]);
    V vi = v[i] * (float)b2 + (float)(1.0 - b2) * gi * gi;
    m[i] = mi; v[i] = vi;
    V denom = vsqrt(vi) / bc2_sqrt + 1e-8f;
    V adam = w[i] + bc1_inv * ((mi * ln.lr) / denom);
    w[i] = ln.adam ? adam : sgd;
  }
}

// member images of this step into the lane layout: out[i][l] = X[idx[l] * N + i]
template <int N>
static void gather(const float* X, const int32_t* idx, V* out) {
  float* o = (float*)out;
  for (int l = 0; l < L; ++l) {
    const float* src = X + (int64_t)idx[l] * N;
    for (int i = 0; i < N; ++i) o[i * L + l] = src[i];
  }
}

}  // namespace popnet
