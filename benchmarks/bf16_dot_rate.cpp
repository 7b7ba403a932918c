// Instruction rate of VDPBF16PS (bf16 pair dot product, _mm512_dpbf16_ps) vs VFMADD (float32 FMA) on one
// core: 24 independent accumulators each, so the figure is issue rate, not latency. It explains whether the
// native zoo engine's bf16 kernel (src/eoreps/zoo/kernels/popnet_bf16.hpp) can beat its fp32 kernel: one
// VDPBF16PS does 2 multiply-adds per 32-bit lane, one FMA does 1, so bf16 wins only where VDPBF16PS issues
// at more than half the FMA rate. Build and run (CPU with avx512_bf16):
//   c++ -O2 -march=native benchmarks/bf16_dot_rate.cpp -o /tmp/bf16_dot_rate && /tmp/bf16_dot_rate
#include <immintrin.h>

#include <chrono>
#include <cstdio>

int main() {
  const long n = 240000000;
  constexpr int A = 24;
  __m512 acc[A];
  for (int i = 0; i < A; i++) acc[i] = _mm512_set1_ps(0.001f * i);
  __m512 x = _mm512_set1_ps(1.0001f), y = _mm512_set1_ps(0.9999f);
  __m512bh bx = (__m512bh)_mm512_set1_epi16(0x3f80), by = bx;
  auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n / A; i++) {
#pragma GCC unroll 24
    for (int j = 0; j < A; j++) acc[j] = _mm512_fmadd_ps(x, y, acc[j]);
    __asm__ volatile("" ::"v"(x), "v"(y));
  }
  double fma_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < n / A; i++) {
#pragma GCC unroll 24
    for (int j = 0; j < A; j++) acc[j] = _mm512_dpbf16_ps(acc[j], bx, by);
    __asm__ volatile("" ::"v"(bx), "v"(by));
  }
  double dp_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  float sink = 0;
  for (int i = 0; i < A; i++) sink += _mm512_reduce_add_ps(acc[i]);
  double fma_rate = n / fma_s / 1e9, dp_rate = n / dp_s / 1e9;
  std::printf("{\"fma_ginstr_s\": %.3f, \"dpbf16_ginstr_s\": %.3f, \"fma_gmac_s\": %.1f, \"dpbf16_gmac_s\": %.1f, "
              "\"dpbf16_mac_rate_vs_fma\": %.3f, \"sink\": %g}\n",
              fma_rate, dp_rate, fma_rate * 16, dp_rate * 32, dp_rate * 32 / (fma_rate * 16), sink);
}
