// bf16 variants of the convolution + max-pool layers of popnet.hpp (eoreps.zoo.native, precision bf16).
//
// Why: on CPUs with AVX512-BF16, VDPBF16PS (`_mm512_dpbf16_ps`) multiplies 32 bf16 pairs and adds each
// 32-bit lane's two products into a float32 accumulator. With one lane per member, a zmm of 32 bf16 holds
// the 16 members x 2 consecutive elements of a reduction, so one instruction does two multiply-adds per
// member where an FMA does one. Whether that is faster depends on the CPU (it is where VDPBF16PS issues
// like an FMA; on a Xeon where it issues at a quarter of the FMA rate it is slower): eoreps.zoo.native
// measures both kernels before `precision auto` picks this one.
//
// What runs in bf16: the products of the conv+pool layers, which hold ~99 % of the FLOPs of the zoo CNNs
// (cnn_s: 384 of 387 kFLOP of the forward pass): forward (reduction over cin x ky x kx, paired along kx;
// an odd K pads the last pair with a zero weight), weight gradient (reduction over the 4 positions of a
// pool window, paired (0,1), (2,3)) and input gradient (reduction over output channels, paired (j, j+1)).
// Everything else stays float32: inputs are rounded to bf16 only as operands of these products, every
// sum is accumulated in float32, master weights, gradients and the optimizer are float32.
//
// Pair layout: a `VU` of 16 lanes whose 32 bits hold two bf16, the first element in the low half.
// `hp[i] = (in[i], in[i + 1])` is the horizontal pair layout of an activation (kept from the forward
// pass for the weight gradient); the pair at the last column of a row is (in[i], 0): only an odd K's
// zero-weight column meets it, and Inf or NaN from the next row cannot turn that product into a NaN.
#pragma once
#include <immintrin.h>

#include "popnet.hpp"

static_assert(popnet::L == 16, "the bf16 zoo kernel packs 16 lanes into one zmm register");
#ifndef __AVX512BF16__
#error "the bf16 zoo kernel needs AVX512-BF16 (compiled with -mavx512bf16 only on a CPU that has it)"
#endif

namespace popnet {

// lane l of the result holds (bf16(lo[l]), bf16(hi[l])), rounded to nearest even (NaN stays NaN)
static inline VU pack2(V lo, V hi) {
  VU idx;  // 16-bit word 2l takes word l (lo), word 2l+1 takes word 16+l (hi); folded to a constant
  for (int l = 0; l < L; ++l) idx[l] = (uint32_t)l | ((uint32_t)(16 + l) << 16);
  __m512bh both = _mm512_cvtne2ps_pbh((__m512)hi, (__m512)lo);  // words 0..15: lo, 16..31: hi
  return (VU)_mm512_permutexvar_epi16((__m512i)idx, (__m512i)both);
}

// acc + lo(a) * lo(b) + hi(a) * hi(b) per lane, accumulated in float32
static inline V dot2(V acc, VU a, VU b) {
  return (V)_mm512_dpbf16_ps((__m512)acc, (__m512bh)a, (__m512bh)b);
}

// the pair layout of ROWS rows of W values; the last column of a row pairs with a zero, not with the
// next row's first value (which only ever meets a zero weight there, but an Inf or NaN times that zero
// would make a NaN that the float32 kernel does not)
template <int ROWS, int W>
static inline void pack_pairs(const V* in, VU* hp) {
  for (int r = 0; r < ROWS; ++r) {
    const V* row = in + r * W;
    for (int i = 0; i + 1 < W; ++i) hp[r * W + i] = pack2(row[i], row[i + 1]);
    hp[r * W + W - 1] = pack2(row[W - 1], vs(0.0f));
  }
}

// an even channel block (output-channel pairs of the input gradient never straddle two blocks)
constexpr int cblock_bf(int c) { return c % 4 == 0 ? 4 : c % 2 == 0 ? 2 : 1; }

// the forward products as bf16 pairs of kernel columns (kx, kx+1), accumulated in float32
struct Bf16Pairs {
  typedef VU T;
  static constexpr int N = 2;
  static constexpr int block(int c) { return cblock_bf(c); }
  static inline V mac(V acc, VU w, VU x) { return dot2(acc, w, x); }
};

// conv_pool_fwd in bf16: hp receives the pair layout of `in` (CIN*H*W), wp the weight pairs
// (COUT, CIN, K, (K+1)/2) along kx (an odd K pairs its last column with a zero weight)
template <int CIN, int COUT, int H, int W, int K>
static void conv_pool_fwd_bf(const V* in, const V* w, const V* b, V* z, VI* am, VU* hp, VU* wp) {
  constexpr int KP = (K + 1) / 2;
  pack_pairs<CIN * H, W>(in, hp);
  for (int r = 0; r < COUT * CIN * K; ++r)
    for (int s = 0; s < KP; ++s)
      wp[r * KP + s] = pack2(w[r * K + 2 * s], 2 * s + 1 < K ? w[r * K + 2 * s + 1] : vs(0.0f));
  conv_pool_fwd_with<Bf16Pairs, CIN, COUT, H, W, K>(hp, wp, b, z, am);
}

// conv_pool_bwd in bf16: hp is the forward pass's pair layout of the input; wt receives the weight pairs
// over output channels ((COUT/2, CIN, K, K): (w[2c], w[2c+1])) when the input gradient is needed
template <int CIN, int COUT, int H, int W, int K, bool DGRAD>
static void conv_pool_bwd_bf(const VU* hp, const V* w, const V* gz, const VI* am, V* gw, V* gb, V* gin,
                             VU* wt) {
  constexpr int OH = H - K + 1, OW = W - K + 1, PH = OH / 2, PW = OW / 2, CB = cblock_bf(COUT);
  constexpr int KK = CIN * K * K;
  constexpr bool PAIRED = CB % 2 == 0;  // an odd COUT (block of 1) takes the input gradient in float32
  if constexpr (DGRAD && PAIRED)
    for (int c = 0; c < COUT / 2; ++c)
      for (int r = 0; r < KK; ++r) wt[c * KK + r] = pack2(w[2 * c * KK + r], w[(2 * c + 1) * KK + r]);
  for (int c0 = 0; c0 < COUT; c0 += CB)
    for (int py = 0; py < PH; ++py)
      for (int px = 0; px < PW; ++px) {
        V g[CB][4];
        VU g01[CB], g23[CB], gj[CB / 2 + 1][4];
        for (int j = 0; j < CB; ++j) {
          int o = ((c0 + j) * PH + py) * PW + px;
          unpool(gz[o], am[o], gb[c0 + j], g[j]);
          g01[j] = pack2(g[j][0], g[j][1]);
          g23[j] = pack2(g[j][2], g[j][3]);
        }
        if constexpr (DGRAD && PAIRED)
          for (int j = 0; j < CB / 2; ++j)
            for (int q = 0; q < 4; ++q) gj[j][q] = pack2(g[2 * j][q], g[2 * j + 1][q]);
        for (int ci = 0; ci < CIN; ++ci)
          for (int ky = 0; ky < K; ++ky)
#pragma GCC unroll 8
            for (int kx = 0; kx < K; ++kx) {
              int io = (ci * H + 2 * py + ky) * W + 2 * px + kx, r = (ci * K + ky) * K + kx;
              VU xa = hp[io], xb = hp[io + W];  // (x0, x1) and (x2, x3) of the window
              for (int j = 0; j < CB; ++j) {
                V* gp = gw + (c0 + j) * KK + r;
                *gp = dot2(dot2(*gp, g01[j], xa), g23[j], xb);
              }
              if constexpr (DGRAD) {
                V t0 = vs(0.0f), t1 = vs(0.0f), t2 = vs(0.0f), t3 = vs(0.0f);
                if constexpr (PAIRED) {
                  for (int j = 0; j < CB / 2; ++j) {
                    VU wv = wt[(c0 / 2 + j) * KK + r];
                    t0 = dot2(t0, wv, gj[j][0]); t1 = dot2(t1, wv, gj[j][1]);
                    t2 = dot2(t2, wv, gj[j][2]); t3 = dot2(t3, wv, gj[j][3]);
                  }
                } else {
                  for (int j = 0; j < CB; ++j) {
                    V wv = w[(c0 + j) * KK + r];
                    t0 += wv * g[j][0]; t1 += wv * g[j][1]; t2 += wv * g[j][2]; t3 += wv * g[j][3];
                  }
                }
                V* gi = gin + io;
                gi[0] += t0; gi[1] += t1; gi[W] += t2; gi[W + 1] += t3;
              }
            }
      }
}

}  // namespace popnet
