// Test harness (tests/zoo/test_native_bf16.py): the bf16 conv+pool templates against the float32 ones on
// operands that bf16 holds exactly (inputs, weights and output gradients rounded to bf16 first), where both
// must agree to float32 summation-order rounding. Returns the largest relative difference found.
#include <cmath>
#include <cstdlib>
#include <vector>

#include "popnet_bf16.hpp"

using namespace popnet;

namespace {
float bf16_exact(uint32_t& state) {  // a random value that bf16 represents exactly
  state = state * 1664525u + 1013904223u;
  float f = ((state >> 8) * (1.0f / 16777216.0f) - 0.5f) * 2.0f;
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u &= 0xffff0000u;
  std::memcpy(&f, &u, 4);
  return f;
}
void fill(V* t, int n, uint32_t& s) {
  for (int i = 0; i < n; ++i)
    for (int l = 0; l < L; ++l) t[i][l] = bf16_exact(s);
}
double worst(const V* a, const V* b, int n) {
  double scale = 1e-6, d = 0;
  for (int i = 0; i < n; ++i)
    for (int l = 0; l < L; ++l) scale = std::max(scale, (double)std::fabs(a[i][l]));
  for (int i = 0; i < n; ++i)
    for (int l = 0; l < L; ++l) d = std::max(d, (double)std::fabs(a[i][l] - b[i][l]));
  return d / scale;
}

template <int CIN, int COUT, int H, int W, int K, bool DGRAD>
double check(uint32_t seed) {
  constexpr int N = CIN * H * W, PH = (H - K + 1) / 2, PW = (W - K + 1) / 2, O = COUT * PH * PW;
  constexpr int NW = COUT * CIN * K * K;
  std::vector<V> in(N), w(NW), b(COUT), z(O), z2(O), gz(O), gw(NW), gw2(NW), gb(COUT), gb2(COUT), gi(N), gi2(N);
  std::vector<VI> am(O), am2(O);
  std::vector<VU> hp(N), wp(COUT * CIN * K * ((K + 1) / 2)), wt(COUT / 2 * CIN * K * K + 1);
  fill(in.data(), N, seed); fill(w.data(), NW, seed); fill(b.data(), COUT, seed); fill(gz.data(), O, seed);
  conv_pool_fwd<CIN, COUT, H, W, K>(in.data(), w.data(), b.data(), z.data(), am.data());
  conv_pool_fwd_bf<CIN, COUT, H, W, K>(in.data(), w.data(), b.data(), z2.data(), am2.data(), hp.data(), wp.data());
  double d = worst(z.data(), z2.data(), O);
  conv_pool_bwd<CIN, COUT, H, W, K, DGRAD>(in.data(), w.data(), gz.data(), am.data(), gw.data(), gb.data(), gi.data());
  conv_pool_bwd_bf<CIN, COUT, H, W, K, DGRAD>(hp.data(), w.data(), gz.data(), am.data(), gw2.data(), gb2.data(),
                                              gi2.data(), wt.data());
  d = std::max(d, worst(gw.data(), gw2.data(), NW));
  d = std::max(d, worst(gb.data(), gb2.data(), COUT));
  if (DGRAD) d = std::max(d, worst(gi.data(), gi2.data(), N));
  for (int o = 0; o < O; ++o)
    for (int l = 0; l < L; ++l)
      if (am[o][l] != am2[o][l] && z[o][l] != z2[o][l]) d = std::max(d, 1.0);  // a different argmax
  return d;
}

// the forward with an Inf in the first column of row K: outputs whose windows miss it stay finite and
// equal (an odd K's zero-weight pair column must not multiply the next row's Inf into a NaN)
template <int CIN, int COUT, int H, int W, int K>
double check_inf(uint32_t seed) {
  constexpr int N = CIN * H * W, PH = (H - K + 1) / 2, PW = (W - K + 1) / 2, O = COUT * PH * PW;
  constexpr int NW = COUT * CIN * K * K;
  std::vector<V> in(N), w(NW), b(COUT), z(O), z2(O);
  std::vector<VI> am(O), am2(O);
  std::vector<VU> hp(N), wp(COUT * CIN * K * ((K + 1) / 2));
  fill(in.data(), N, seed); fill(w.data(), NW, seed); fill(b.data(), COUT, seed);
  in[K * W] = vs(INFINITY);
  conv_pool_fwd<CIN, COUT, H, W, K>(in.data(), w.data(), b.data(), z.data(), am.data());
  conv_pool_fwd_bf<CIN, COUT, H, W, K>(in.data(), w.data(), b.data(), z2.data(), am2.data(), hp.data(), wp.data());
  double d = 0;
  for (int o = 0; o < O; ++o)
    for (int l = 0; l < L; ++l) {
      bool f = std::isfinite(z[o][l]), f2 = std::isfinite(z2[o][l]);
      if (f != f2) return 1.0;
      if (f) d = std::max(d, (double)std::fabs(z[o][l] - z2[o][l]));
    }
  return d;
}
}  // namespace

extern "C" double bf16_inf_worst(uint32_t seed) { return check_inf<1, 4, 12, 12, 5>(seed); }

extern "C" double bf16_layers_worst(uint32_t seed) {
  double d = check<1, 8, 28, 28, 5, false>(seed);          // cnn_s conv1 (odd K, no input gradient)
  d = std::max(d, check<8, 6, 12, 12, 5, true>(seed + 1));  // cnn_s conv2 (COUT 6: blocks of 2)
  d = std::max(d, check<3, 5, 9, 11, 3, true>(seed + 2));   // odd COUT: input gradient in float32
  return d;
}
