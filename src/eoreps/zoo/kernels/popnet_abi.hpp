// The exported C entry points of a generated zoo kernel (eoreps.zoo.native) and their self-description.
//
// A kernel source is generated per architecture and holds only what depends on it; this header, included at
// its end, adds everything that does not. The generated part defines, in an anonymous namespace:
//
//   struct Net        buffers of one lane group for one image: `V x0[INPUTS]` (the image), activations,
//                     their gradients and the values the backward pass keeps
//   constexpr int D, ACTS, INPUTS, CLASSES
//                     parameters per member, activation values per image (the dropout stream's stride, >= 1),
//                     values per input image, number of classes
//   forward(ln, W, n, ctr), backward(W, G, n)
//                     one image through the layers (dropout counter `ctr`) and back (G += dL/dW)
//   logits(n), logits_grad(n)
//                     the last layer's output and its gradient buffer
//
// ABI check: `popnet_abi()` returns "popnet-abi <version>; lanes <L>; <name>: <ret>(<args>); ..." built by
// the compiler from the real function types below (POPNET_SIG), so it cannot drift from them;
// eoreps.zoo.native compares it with the ctypes signatures it sets before any other call and refuses a
// kernel that differs.
// Type codes: i32, i64, u32, f32, f64, void; a pointer adds `*` (const is not part of the code).
#pragma once
#include <string>

#include "popnet.hpp"

namespace popnet {

constexpr int POPNET_ABI_VERSION = 1;  // bump on a change of meaning that keeps every type
static_assert(sizeof(V) == sizeof(float) * L, "a lane group is L floats");

template <class T>
struct AbiType;  // no definition: an argument of another type is a compile error
#define POPNET_ABI_TYPE(T, CODE) \
  template <>                    \
  struct AbiType<T> {            \
    static std::string code() { return CODE; } \
  };
POPNET_ABI_TYPE(void, "void")
POPNET_ABI_TYPE(int32_t, "i32")
POPNET_ABI_TYPE(int64_t, "i64")
POPNET_ABI_TYPE(uint32_t, "u32")
POPNET_ABI_TYPE(float, "f32")
POPNET_ABI_TYPE(double, "f64")
#undef POPNET_ABI_TYPE
template <class T>
struct AbiType<const T> : AbiType<T> {};
template <class T>
struct AbiType<T*> { static std::string code() { return AbiType<T>::code() + "*"; } };

// "name: ret(arg,arg,...)" of a function pointer's type
template <class R, class... A>
std::string abi_signature(const char* name, R (*)(A...)) {
  std::string args;
  ((args += (args.empty() ? "" : ",") + AbiType<A>::code()), ...);
  return std::string(name) + ": " + AbiType<R>::code() + "(" + args + ")";
}

}  // namespace popnet

extern "C" int popnet_params() { return D; }
extern "C" int popnet_inputs() { return INPUTS; }

// evaluation: every lane sees the same n_img images (X rows); mean-free sums per lane:
// loss[l] += cross-entropy (NaN when a logit is not finite), correct[l] += argmax == label
// (argmax as torch: first maximum, NaN counts as the maximum)
extern "C" int popnet_eval(const float* X, const int32_t* Y, int n_img, const float* Wf, const int32_t* act,
                           double* loss, int64_t* correct) {
  Lanes ln = make_lanes(act, nullptr, nullptr, nullptr, nullptr, nullptr);
  const V* W = (const V*)Wf;
  Net* net = new Net();
  for (int i = 0; i < n_img; ++i) {
    const float* src = X + (int64_t)i * INPUTS;
    for (int j = 0; j < INPUTS; ++j) net->x0[j] = vs(src[j]);
    forward(ln, W, *net, 0);
    const V* lg = logits(*net);
    V best = lg[0];
    VI arg = VI{} + 0;
    for (int k = 1; k < CLASSES; ++k) {
      VI gt = (lg[k] > best) | ((lg[k] != lg[k]) & (best == best));
      best = gt ? lg[k] : best;
      arg = gt ? VI{} + k : arg;
    }
    // as torch's log-softmax: NaN when a logit is NaN (then best is NaN) or the maximum is infinite;
    // a -inf logit elsewhere is just a zero probability (and +inf loss when it is the label's)
    VI bad = (best != best) | (vabs(best) == __builtin_inff());
    V s = vs(0.0f);
    for (int k = 0; k < CLASSES; ++k) s += vexp(lg[k] - best);
    int y = Y[i];
    for (int l = 0; l < L; ++l) {
      loss[l] += bad[l] ? NAN : (double)std::log(s[l]) + best[l] - lg[y][l];
      correct[l] += arg[l] == y;
    }
  }
  delete net;
  return 0;
}

// activation + dropout of n_vec vectors of L lanes (for tests): a, d as in act_fwd
extern "C" void popnet_act(const float* z, float* a, float* d, int n_vec, const int32_t* act,
                           const float* drop, const uint32_t* seed, uint32_t ctr) {
  Lanes ln = make_lanes(act, drop, seed, nullptr, nullptr, nullptr);
  for (int i = 0; i < n_vec; ++i) act_fwd<1>(ln, (const V*)z + i, (V*)a + i, (V*)d + i, ctr + (uint32_t)i);
}

extern "C" int popnet_train(const float* X, const int32_t* Y, const int32_t* order, int n_img, int B,
                            float* Wf, float* Mf, float* Vf, const float* lr, const float* wd,
                            const int32_t* adam, const int32_t* act, const float* drop, const uint32_t* seed,
                            int moments, int64_t step0) {
  Lanes ln = make_lanes(act, drop, seed, lr, wd, adam);
  V* W = (V*)Wf;
  V* M = (V*)Mf;
  V* Vm = (V*)Vf;
  Net* net = new Net();
  V* G = new V[D];
  int32_t idx[L];
  VI y;
  int64_t step = step0;
  for (int s = 0; s < n_img; s += B) {
    int nb = n_img - s < B ? n_img - s : B;
    zero<D>(G);
    for (int b = 0; b < nb; ++b) {
      for (int l = 0; l < L; ++l) { idx[l] = order[(int64_t)l * n_img + s + b]; y[l] = Y[idx[l]]; }
      gather<INPUTS>(X, idx, net->x0);
      forward(ln, W, *net, (uint32_t)(s + b) * (uint32_t)ACTS);
      ce_grad<CLASSES>(logits(*net), y, 1.0f / nb, logits_grad(*net));
      backward(W, G, *net);
    }
    ++step;
    opt_step(D, W, G, M, Vm, ln, moments != 0, (long)step);
  }
  delete[] G;
  delete net;
  return 0;
}

#define POPNET_SIG(f) + "; " + popnet::abi_signature(#f, &f)
extern "C" const char* popnet_abi() {
  static const std::string abi = "popnet-abi " + std::to_string(popnet::POPNET_ABI_VERSION) + "; lanes " +
                                 std::to_string(L) POPNET_SIG(popnet_params) POPNET_SIG(popnet_inputs)
                                     POPNET_SIG(popnet_eval) POPNET_SIG(popnet_act) POPNET_SIG(popnet_train);
  return abi.c_str();
}
#undef POPNET_SIG
