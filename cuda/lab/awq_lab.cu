// Kernel lab for the AWQ linear (llm.c dev/cuda style): builds the same
// kernels the engine embeds, checks every variant against a CPU float64
// reference on fresh random data, sweeps launch shapes, and times them on
// weights rotated over more than L2 so the figures are HBM figures.
//
//   make -C cuda/lab            (nvcc here; the binary runs on the GPU machine)
//   ./awq_lab [check|gemv|gemm|all|prof] [--vector FILE]...
//
// --vector FILE: a packed linear written by the Go test
// (BRIEF_AWQ_LAB_VECTOR=DIR go test ./cuda -run LabVector writes DIR/awq_g*.bin): the lab checks
// that its own C++ packing is byte-identical to Go's packAWQ and runs the
// kernels on Go's bytes, closing the loop Go layout -> CUDA kernel.
#include "../awq_gemv.cu"
#include "../awq_gemm.cu"
#include "gemm_v1.cuh"
#include "gemm_v2.cuh"
#include "gemv_v1.cuh"
#include "gemv_v2.cuh"
#include "gemv_v3.cuh"
#include "peak.cuh"
#include "probe.cuh"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

// ---------------------------------------------------------------- errors
static void check(cudaError_t e, const char* what, const char* file, int line) {
  if (e != cudaSuccess) {
    fprintf(stderr, "%s:%d: %s: %s\n", file, line, what, cudaGetErrorString(e));
    exit(1);
  }
}
#define CK(x) check((x), #x, __FILE__, __LINE__)
#define CKLAUNCH() CK(cudaGetLastError())

// ---------------------------------------------------------------- host AWQ
struct Linear {
  int in, out, group;
  std::vector<uint32_t> qw;  // (in, out/8) file layout
  std::vector<uint32_t> qz;  // (in/group, out/8)
  std::vector<uint16_t> sc;  // (in/group, out) fp16 bits
};

static const int kOrder[8] = {0, 2, 4, 6, 1, 3, 5, 7};  // nibble i -> column 8c+kOrder[i]
static int nibble_of[8];

static uint32_t nib(uint32_t w, int o) { return w >> (4 * nibble_of[o]) & 15; }

static float h2f(uint16_t h) {
  __half_raw r;
  r.x = h;
  return __half2float(__half(r));
}
static uint16_t f2h(float f) {
  __half h = __float2half_rn(f);
  return __half_raw(h).x;
}

static Linear random_linear(std::mt19937_64& rng, int in, int out, int group) {
  Linear l{in, out, group};
  l.qw.resize((size_t)in * out / 8);
  l.qz.resize((size_t)in / group * out / 8);
  l.sc.resize((size_t)in / group * out);
  for (auto& v : l.qw) v = (uint32_t)rng();
  for (auto& v : l.qz) v = (uint32_t)rng();
  for (auto& v : l.sc) v = (uint16_t)((rng() & 1) << 15 | (6 + rng() % 7) << 10 | (rng() % 1024));
  return l;
}

static size_t out_pad(int out) { return (out + 15) / 16 * 16; }
static size_t sz_off(int in, int out) { return (out_pad(out) / 16 * (in / 64) * 512 + 255) / 256 * 256; }
static size_t packed_bytes(int in, int out, int group) { return sz_off(in, out) + (size_t)in / group * out_pad(out) * 4; }

// pack mirrors awq.go's packAWQ for one linear (see the layout comment there).
static std::vector<uint8_t> pack(const Linear& l) {
  const int in = l.in, out = l.out, G = l.group, outP = (int)out_pad(out), chunks = in / 64;
  std::vector<uint8_t> buf(packed_bytes(in, out, G), 0);
  const size_t so = sz_off(in, out);
  for (int gi = 0; gi < in / G; gi++)
    for (int n = 0; n < outP; n++) {
      uint32_t v = 0x6400u << 16;
      if (n < out) v = l.sc[(size_t)gi * out + n] | (0x6400u | nib(l.qz[(size_t)gi * out / 8 + n / 8], n % 8)) << 16;
      memcpy(&buf[so + ((size_t)gi * outP + n) * 4], &v, 4);
    }
  for (int s = 0; s < outP / 16; s++)
    for (int c = 0; c < chunks; c++)
      for (int lane = 0; lane < 32; lane++) {
        const int g = lane / 4, t = lane % 4;
        for (int j = 0; j < 4; j++) {
          uint32_t word = 0;
          for (int i = 0; i < 8; i++) {
            const int n = s * 16 + 8 * (i & 1) + g;
            if (n >= out) continue;
            const int k = 64 * c + 16 * t + 4 * j + 2 * ((i >> 1) & 1) + (i >> 2);
            word |= nib(l.qw[(size_t)k * out / 8 + n / 8], n % 8) << (4 * i);
          }
          memcpy(&buf[(((size_t)(s * chunks + c) * 32 + lane) * 4 + j) * 4], &word, 4);
        }
      }
  return buf;
}

// parallel_for runs f(i) for i in [0, n) on all cores.
static void parallel_for(int n, const std::function<void(int)>& f) {
  int nt = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> th;
  for (int w = 0; w < nt; w++)
    th.emplace_back([&, w] {
      for (int i = w; i < n; i += nt) f(i);
    });
  for (auto& t : th) t.join();
}

struct Err {
  double rel = 0, maxabs = 0;
  long bad = 0, checked = 0;
};

// reference compares y (tokens, out) against float64 x W on the columns
// cols (all for small shapes, a spread sample for large ones).
static Err reference(const Linear& l, const std::vector<uint16_t>& x, const std::vector<uint16_t>& y, int tokens,
                     const std::vector<int>& cols) {
  std::vector<double> num(cols.size()), den(cols.size()), mx(cols.size());
  std::vector<long> bad(cols.size());
  std::vector<double> xf((size_t)tokens * l.in);
  for (size_t i = 0; i < xf.size(); i++) xf[i] = h2f(x[i]);
  parallel_for((int)cols.size(), [&](int ci) {
    const int n = cols[ci];
    std::vector<double> w(l.in);
    for (int k = 0; k < l.in; k++) {
      const int gi = k / l.group;
      const double q = nib(l.qw[(size_t)k * l.out / 8 + n / 8], n % 8);
      const double z = nib(l.qz[(size_t)gi * l.out / 8 + n / 8], n % 8);
      w[k] = (q - z) * h2f(l.sc[(size_t)gi * l.out + n]);
    }
    for (int t = 0; t < tokens; t++) {
      double ref = 0;
      for (int k = 0; k < l.in; k++) ref += xf[(size_t)t * l.in + k] * w[k];
      const double got = h2f(y[(size_t)t * l.out + n]);
      const double d = std::isfinite(got) ? std::fabs(got - ref) : INFINITY;
      num[ci] += d * d;
      den[ci] += ref * ref;
      mx[ci] = std::max(mx[ci], d);
      if (!std::isfinite(got)) bad[ci]++;
    }
  });
  Err e;
  double sn = 0, sd = 0;
  for (size_t i = 0; i < cols.size(); i++) {
    sn += num[i], sd += den[i], e.maxabs = std::max(e.maxabs, mx[i]), e.bad += bad[i];
  }
  e.rel = std::sqrt(sn / std::max(sd, 1e-300));
  e.checked = (long)cols.size() * tokens;
  return e;
}

static std::vector<int> sample_cols(int out) {
  std::vector<int> c;
  for (int n = 0; n < out; n++)
    if ((long)out <= 2048 || n < 64 || n >= out - 64 || n % 37 == 0) c.push_back(n);
  return c;
}

// ---------------------------------------------------------------- kernels
typedef void (*AwqKernel)(const uint8_t*, const __half*, __half*, void*, int, int, int);

// Lab-only instances: version 1 kernels and other launch shapes.
template <int G, int NT, int U>
__global__ void __launch_bounds__(512) lab_gemv1(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens,
                                                 int in, int out) {
  awq_v1::gemv<G, NT, U>(w, x, y, tokens, in, out);
}
template <int G, int NT, int S>
__global__ void __launch_bounds__(512) lab_gemv2(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens,
                                                 int in, int out) {
  awq_v2::gemv<G, NT, S>(w, x, y, tokens, in, out);
}
template <int G, int NT, int U>
__global__ void __launch_bounds__(512) lab_gemv3(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens,
                                                 int in, int out) {
  awq_v3::gemv<G, NT, U>(w, x, y, tokens, in, out);
}
template <int NT>
__global__ void __launch_bounds__(32 * awq::gemv_max_warps(NT)) lab_gemv5(const uint8_t* w, const __half* x, __half* y,
                                                                         void* ws, int tokens, int in, int out) {
  awq::gemv_g128<NT>(w, x, y, tokens, in, out);
}
template <int G, int NT>
__global__ void __launch_bounds__(32 * awq::gemv_max_warps(NT)) lab_gemv4(const uint8_t* w, const __half* x, __half* y,
                                                                         void* ws, int tokens, int in, int out) {
  awq::gemv<G, NT>(w, x, y, tokens, in, out);
}
__global__ void __launch_bounds__(256) lab_gemm1(const uint8_t* w, const __half* x, __half* y, void* ws, int tokens,
                                                 int in, int out) {
  awq_v1::gemm<128>(w, x, y, tokens, in, out);
}
template <int MS, int NTOK, int WM, int WN, int STAGES, int MINB>
__global__ void __launch_bounds__(WM* WN * 32, MINB) lab_gemm2(const uint8_t* w, const __half* x, __half* y, void* ws,
                                                               int tokens, int in, int out) {
  awq_v2::gemm<MS, NTOK, WM, WN, STAGES, 128>(w, x, y, tokens, in, out);
}
template <int MS, int NTOK, int WM, int WN, int STAGES, int MINB = 1>
__global__ void __launch_bounds__(WM* WN * 32, MINB) lab_gemm3(const uint8_t* w, const __half* x, __half* y, void* ws,
                                                         int tokens, int in, int out) {
  awq::gemm<MS, NTOK, WM, WN, STAGES, 128>(w, x, y, tokens, in, out);
}

struct Launch {
  std::string name;
  AwqKernel k;
  dim3 grid, block;
  int shared;
};

static AwqKernel prod_gemv(int G, int nt) {
  if (G == 32) return nt == 1 ? awq_gemv_g32_n1 : awq_gemv_g32_n2;
  if (G == 64) return nt == 1 ? awq_gemv_g64_n1 : awq_gemv_g64_n2;
  return nt == 1 ? awq_gemv_g128_n1 : awq_gemv_g128_n2;
}
static AwqKernel prod_gemm(int G) { return G == 32 ? awq_gemm_g32 : G == 64 ? awq_gemm_g64 : awq_gemm_g128; }
static AwqKernel prod_gemm_small(int G) {
  return G == 32 ? awq_gemm_small_g32 : G == 64 ? awq_gemm_small_g64 : awq_gemm_small_g128;
}

// plan mirrors awq.go's awqPlan.
static Launch plan(int in, int out, int G, int tokens) {
  const int stripes = (int)out_pad(out) / 16;
  if (tokens <= 16) {
    const int nt = tokens > 8 ? 2 : 1;
    // awq.go: awqGemvWarps.
    const int maxW = G == 128 ? 8 : awq::gemv_max_warps(nt), target = G == 128 ? 2048 : 4096;
    const int units = G == 128 ? in / 128 : in / 64;
    int warps = 4;
    while (warps * 2 <= maxW && stripes * warps * 2 <= target) warps *= 2;
    while (warps > 1 && warps > units) warps /= 2;
    return {"gemv plan", prod_gemv(G, nt), dim3(stripes), dim3(32 * warps), awq::gemv_shared(warps, nt)};
  }
  // awq.go: awqPlan's GEMM tile choice.
  const int tb = (tokens + 63) / 64, big = (stripes + awq::kGemmMS - 1) / awq::kGemmMS;
  if (tokens < 384 && big * tb < 264)
    return {"gemm small plan", prod_gemm_small(G), dim3((stripes + awq::kGemmSmallMS - 1) / awq::kGemmSmallMS, tb),
            dim3(awq::kGemmSmallThreads), awq::kGemmSmallShared};
  return {"gemm plan", prod_gemm(G), dim3(big, tb), dim3(awq::kGemmThreads), awq::kGemmShared};
}

static void run(const Launch& L, const uint8_t* w, const __half* x, __half* y, int tokens, int in, int out) {
  if (L.shared > 48 * 1024) CK(cudaFuncSetAttribute(L.k, cudaFuncAttributeMaxDynamicSharedMemorySize, L.shared));
  L.k<<<L.grid, L.block, L.shared>>>(w, x, y, nullptr, tokens, in, out);
  CKLAUNCH();
}

// ---------------------------------------------------------------- checks
static int failures = 0;

static void check_case(std::mt19937_64& rng, int in, int out, int G, int tokens, const Launch* variant = nullptr,
                       const std::vector<uint8_t>* packed = nullptr, const Linear* given = nullptr) {
  Linear l = given ? *given : random_linear(rng, in, out, G);
  std::vector<uint8_t> p = packed ? *packed : pack(l);
  std::vector<uint16_t> x((size_t)tokens * in);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : x) v = f2h(u(rng));
  uint8_t* dw;
  __half *dx, *dy;
  CK(cudaMalloc(&dw, p.size()));
  CK(cudaMalloc(&dx, x.size() * 2));
  CK(cudaMalloc(&dy, (size_t)tokens * out * 2));
  CK(cudaMemcpy(dw, p.data(), p.size(), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dx, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  CK(cudaMemset(dy, 0xff, (size_t)tokens * out * 2));  // NaN poison: every output must be written
  Launch L = variant ? *variant : plan(in, out, G, tokens);
  run(L, dw, dx, dy, tokens, in, out);
  CK(cudaDeviceSynchronize());
  std::vector<uint16_t> y((size_t)tokens * out);
  CK(cudaMemcpy(y.data(), dy, y.size() * 2, cudaMemcpyDeviceToHost));
  Err e = reference(l, x, y, tokens, sample_cols(out));
  // fp16 weights (2^-11 relative each) and fp16 outputs, fp32 sums: ~5e-4.
  const bool ok = e.bad == 0 && e.rel < 2e-3;
  if (!ok) failures++;
  printf("%-4s %-22s in=%5d out=%5d g=%3d tokens=%3d  rel=%.2e maxabs=%.2e nonfinite=%ld checked=%ld\n",
         ok ? "ok" : "FAIL", L.name.c_str(), in, out, G, tokens, e.rel, e.maxabs, e.bad, e.checked);
  CK(cudaFree(dw));
  CK(cudaFree(dx));
  CK(cudaFree(dy));
}

static void checks(std::mt19937_64& rng) {
  const int toks[] = {1, 2, 3, 7, 8, 9, 11, 16, 17, 40, 64, 65, 130, 512};
  struct S {
    int in, out;
  } small[] = {{64, 8}, {128, 48}, {192, 80}, {256, 200}, {512, 1040}};
  for (int G : {32, 64, 128})
    for (auto s : small)
      for (int t : toks)
        if (s.in % G == 0) check_case(rng, s.in, s.out, G, t);
  // The model's shapes, group 128: one random linear each (drawing and
  // packing 117M weights takes seconds), fresh x for every check.
  struct S big[] = {{4096, 6144}, {4096, 4096}, {4096, 28672}, {14336, 4096}};
  for (auto s : big) {
    Linear l = random_linear(rng, s.in, s.out, 128);
    std::vector<uint8_t> p = pack(l);
    for (int t : {1, 5, 11, 16, 100, 512}) check_case(rng, s.in, s.out, 128, t, nullptr, &p, &l);
  }
}

// ---------------------------------------------------------------- timing
struct Set {
  int in, out, G, n;
  size_t bytes;
  std::vector<uint8_t*> w;
  __half *x, *y;
};

// make_set uploads enough random weight copies to exceed 200 MB (4x the
// H100's 50 MB L2), so rotating through them measures HBM.
static Set make_set(std::mt19937_64& rng, int in, int out, int G, int maxTokens) {
  Set s{in, out, G};
  s.bytes = packed_bytes(in, out, G);
  s.n = (int)std::max<size_t>(2, (200u << 20) / s.bytes + 1);
  Linear l = random_linear(rng, in, out, G);
  std::vector<uint8_t> p = pack(l);
  for (int i = 0; i < s.n; i++) {
    uint8_t* d;
    CK(cudaMalloc(&d, s.bytes));
    CK(cudaMemcpy(d, p.data(), p.size(), cudaMemcpyHostToDevice));
    s.w.push_back(d);
  }
  std::vector<uint16_t> x((size_t)maxTokens * in);
  std::uniform_real_distribution<float> u(-1, 1);
  for (auto& v : x) v = f2h(u(rng));
  CK(cudaMalloc(&s.x, x.size() * 2));
  CK(cudaMalloc(&s.y, (size_t)maxTokens * out * 2));
  CK(cudaMemcpy(s.x, x.data(), x.size() * 2, cudaMemcpyHostToDevice));
  return s;
}
static void free_set(Set& s) {
  for (auto p : s.w) CK(cudaFree(p));
  CK(cudaFree(s.x));
  CK(cudaFree(s.y));
}

// time_fn: median over 7 runs of the mean time of 100 calls of f(i) (f
// rotates the weight sets by i).
static double time_fn(const std::function<void(int)>& f) {
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  for (int i = 0; i < 20; i++) f(i);
  std::vector<float> ts;
  const int iters = 100;
  for (int r = 0; r < 7; r++) {
    CK(cudaEventRecord(a));
    for (int i = 0; i < iters; i++) f(i);
    CK(cudaEventRecord(b));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1000 / iters);
  }
  std::sort(ts.begin(), ts.end());
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return ts[ts.size() / 2];
}

static double time_us(const Set& s, const Launch& L, int tokens) {
  return time_fn([&](int i) { run(L, s.w[i % s.n], s.x, s.y, tokens, s.in, s.out); });
}

// probes: read-only kernels over the same weights (probe.cuh).
static void probes(const Set& s, const char* name) {
  static uint32_t* sink = nullptr;
  if (!sink) CK(cudaMalloc(&sink, 4));
  const size_t n16 = s.bytes / 16;
  const double wb = (double)s.bytes;
  const int stripes = (int)out_pad(s.out) / 16, chunks = s.in / 64;
  for (int blocks : {132 * 4, 132 * 8, 132 * 16}) {
    double us = time_fn([&](int i) {
      probe_stream<<<blocks, 256>>>((const uint4*)s.w[i % s.n], n16, sink);
      CKLAUNCH();
    });
    printf("  probe %-8s stream grid %5d x 256        %8.2f us  %6.0f GB/s\n", name, blocks, us, wb / (us * 1e-6) / 1e9);
  }
#define PR(U, RR)                                                                                         \
  for (int warps : {4, 8, 16}) {                                                                        \
    double us = time_fn([&](int i) {                                                                    \
      probe_stripes<U, RR><<<stripes, 32 * warps>>>((const uint4*)s.w[i % s.n], chunks, sink);          \
      CKLAUNCH();                                                                                       \
    });                                                                                                 \
    printf("  probe %-8s stripes %s U=%d w=%2d  %8.2f us  %6.0f GB/s\n", name, RR ? "rr  " : "cont", U, warps, us, \
           wb / (us * 1e-6) / 1e9);                                                                     \
  }
  PR(1, true) PR(4, true)
#undef PR
}

// time_graph_us: as time_us, but the 100 launches are one CUDA graph, as the
// engine's decode step is (launch gaps shrink to the graph's).
static double time_graph_us(const Set& s, const Launch& L, int tokens) {
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  cudaGraph_t gr;
  cudaGraphExec_t ex;
  const int iters = 100;
  CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
  for (int i = 0; i < iters; i++)
    L.k<<<L.grid, L.block, L.shared, st>>>(s.w[i % s.n], s.x, s.y, nullptr, tokens, s.in, s.out);
  CK(cudaStreamEndCapture(st, &gr));
  CK(cudaGraphInstantiateWithFlags(&ex, gr, 0));
  cudaEvent_t a, b;
  CK(cudaEventCreate(&a));
  CK(cudaEventCreate(&b));
  CK(cudaGraphLaunch(ex, st));
  std::vector<float> ts;
  for (int r = 0; r < 7; r++) {
    CK(cudaEventRecord(a, st));
    CK(cudaGraphLaunch(ex, st));
    CK(cudaEventRecord(b, st));
    CK(cudaEventSynchronize(b));
    float ms;
    CK(cudaEventElapsedTime(&ms, a, b));
    ts.push_back(ms * 1000 / iters);
  }
  std::sort(ts.begin(), ts.end());
  CK(cudaGraphExecDestroy(ex));
  CK(cudaGraphDestroy(gr));
  CK(cudaStreamDestroy(st));
  CK(cudaEventDestroy(a));
  CK(cudaEventDestroy(b));
  return ts[ts.size() / 2];
}

static double peak_gbs = 0, copy_gbs = 0;

static void device_info() {
  cudaDeviceProp p;
  CK(cudaGetDeviceProperties(&p, 0));
  int memclk = 0, bus = 0, clk = 0;
  cudaDeviceGetAttribute(&memclk, cudaDevAttrMemoryClockRate, 0);
  cudaDeviceGetAttribute(&bus, cudaDevAttrGlobalMemoryBusWidth, 0);
  cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0);
  peak_gbs = 2.0 * memclk * 1e3 * bus / 8 / 1e9;
  // Measured ceiling: a 1 GiB device-to-device copy (bytes read + written).
  size_t n = 1 << 30;
  void *a, *b;
  CK(cudaMalloc(&a, n));
  CK(cudaMalloc(&b, n));
  CK(cudaMemset(a, 1, n));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
  CK(cudaEventRecord(e0));
  for (int i = 0; i < 10; i++) CK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
  CK(cudaEventRecord(e1));
  CK(cudaEventSynchronize(e1));
  float ms;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  copy_gbs = 2.0 * n * 10 / (ms / 1e3) / 1e9;
  CK(cudaFree(a));
  CK(cudaFree(b));
  printf("device: %s, cc %d.%d, %d SMs, L2 %d MB, SM clock %d MHz, HBM peak %.0f GB/s (bus %d bit), D2D copy %.0f GB/s\n",
         p.name, p.major, p.minor, p.multiProcessorCount, p.l2CacheSize >> 20, clk / 1000, peak_gbs, bus, copy_gbs);
}

struct Shape {
  const char* name;
  int in, out;
};
static const Shape kShapes[] = {
    {"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate|up", 4096, 28672}, {"down", 14336, 4096}};

static double traffic(const Set& s, int tokens) {
  return (double)s.bytes + (double)tokens * (s.in + s.out) * 2;
}

// Variants timed against each other; each is checked for correctness first.
static std::vector<Launch> gemv_variants(int in, int out, int tokens) {
  const int nt = tokens > 8 ? 2 : 1;
  const dim3 grid((unsigned)out_pad(out) / 16);
  std::vector<Launch> v;
  v.push_back({"v1 U=1 w=8", nt == 1 ? lab_gemv1<128, 1, 1> : lab_gemv1<128, 2, 1>, grid, dim3(256), 0});
  v.push_back({"v1 U=2 w=16", nt == 1 ? lab_gemv1<128, 1, 2> : lab_gemv1<128, 2, 2>, grid, dim3(512), 0});
  v.push_back({"v2 S=3 w=8", nt == 1 ? lab_gemv2<128, 1, 3> : lab_gemv2<128, 2, 3>, grid, dim3(256),
               awq_v2::gemv_shared(8, 3)});
  for (int warps : {2, 4, 8, 16})
    if (warps <= awq::gemv_max_warps(nt))
      v.push_back({"v4 w=" + std::to_string(warps), nt == 1 ? lab_gemv4<128, 1> : lab_gemv4<128, 2>, grid,
                   dim3(32 * warps), awq::gemv_shared(warps, nt)});
  for (int warps : {2, 4, 8, 16})
    if (warps <= awq::gemv_max_warps(nt))
      v.push_back({"v5 w=" + std::to_string(warps), nt == 1 ? lab_gemv5<1> : lab_gemv5<2>, grid, dim3(32 * warps),
                   awq::gemv_shared(warps, nt)});
  for (int warps : {8}) {
    v.push_back({"v3 U=1 w=" + std::to_string(warps), nt == 1 ? lab_gemv3<128, 1, 1> : lab_gemv3<128, 2, 1>, grid,
                 dim3(32 * warps), awq::gemv_shared(warps, nt)});
    v.push_back({"v3 U=2 w=" + std::to_string(warps), nt == 1 ? lab_gemv3<128, 1, 2> : lab_gemv3<128, 2, 2>, grid,
                 dim3(32 * warps), awq::gemv_shared(warps, nt)});
  }
  return v;
}

static std::vector<Launch> gemm_variants(int in, int out, int tokens) {
  const unsigned stripes = (unsigned)out_pad(out) / 16;
  std::vector<Launch> v;
  v.push_back({"v1 8x64 4x2 3st", lab_gemm1, dim3((stripes + 7) / 8, (tokens + 63) / 64), dim3(256), 43008});
  v.push_back({"v2 8x64 4x2 3st", lab_gemm2<8, 64, 4, 2, 3, 1>, dim3((stripes + 7) / 8, (tokens + 63) / 64), dim3(256),
               3 * awq_v2::gemm_stage_bytes(8, 64)});
#define GM3(MS, NTOK, WM, WN, ST)                                                                         \
  v.push_back({"v3 " #MS "x" #NTOK " " #WM "x" #WN " " #ST "st", lab_gemm3<MS, NTOK, WM, WN, ST>,           \
               dim3((stripes + MS - 1) / MS, (tokens + NTOK - 1) / NTOK), dim3(WM * WN * 32),               \
               ST * awq::gemm_stage_bytes(MS, NTOK)});
  GM3(8, 64, 4, 2, 3)
  GM3(8, 64, 4, 2, 4)
  GM3(8, 128, 4, 2, 3)
  GM3(8, 128, 2, 4, 3)
  GM3(16, 64, 4, 2, 3)
  GM3(4, 64, 2, 2, 4)
  GM3(8, 64, 8, 1, 3)
  GM3(16, 64, 16, 1, 2)
  GM3(4, 64, 4, 1, 4)
  GM3(8, 64, 8, 1, 4)
#undef GM3
#define GM3B(MS, NTOK, WM, WN, ST, MINB)                                                                   \
  v.push_back({"v3 " #MS "x" #NTOK " " #WM "x" #WN " " #ST "st minb" #MINB, lab_gemm3<MS, NTOK, WM, WN, ST, MINB>, \
               dim3((stripes + MS - 1) / MS, (tokens + NTOK - 1) / NTOK), dim3(WM * WN * 32),                 \
               ST * awq::gemm_stage_bytes(MS, NTOK)});
  GM3B(8, 64, 8, 1, 3, 2)
#undef GM3B
  return v;
}

static void check_variants(std::mt19937_64& rng) {
  for (int tokens : {1, 5, 11, 16})
    for (auto& L : gemv_variants(1024, 400, tokens)) check_case(rng, 1024, 400, 128, tokens, &L);
  for (int tokens : {17, 100, 300})
    for (auto& L : gemm_variants(1024, 400, tokens)) check_case(rng, 1024, 400, 128, tokens, &L);
}

static void bench_gemv(std::mt19937_64& rng) {
  printf("\n== mat-vec (decode/verify), group 128: time per launch, effective GB/s (weights+scales+x+y), %% of D2D copy\n");
  double step1 = 0, step11 = 0, best1 = 0, best11 = 0, g1 = 0, g11 = 0;
  for (auto sh : kShapes) {
    Set s = make_set(rng, sh.in, sh.out, 128, 16);
    double t1 = 0;
    for (int tokens : {1, 2, 4, 8, 11, 16}) {
      Launch L = plan(sh.in, sh.out, 128, tokens);
      double us = time_us(s, L, tokens);
      if (tokens == 1) t1 = us, step1 += us;
      if (tokens == 11) step11 += us;
      double gbs = traffic(s, tokens) / (us * 1e-6) / 1e9;
      const double gus = time_graph_us(s, L, tokens);
      if (tokens == 1) g1 += gus;
      if (tokens == 11) g11 += gus;
      printf("%-8s %5dx%-5d tokens=%2d  %8.2f us  %6.0f GB/s  %5.1f%% of copy  %.2fx tokens=1  graph %7.2f us %6.0f GB/s  (%s grid %d block %d)\n",
             sh.name, sh.in, sh.out, tokens, us, gbs, 100 * gbs / copy_gbs, us / t1, gus,
             traffic(s, tokens) / (gus * 1e-6) / 1e9, L.name.c_str(), L.grid.x, L.block.x);
    }
    probes(s, sh.name);
    for (int tokens : {1, 11}) {
      double best = 1e30;
      std::string bn;
      for (auto& L : gemv_variants(sh.in, sh.out, tokens)) {
        double us = time_us(s, L, tokens);
        if (us < best) best = us, bn = L.name;
        printf("  sweep %-8s tokens=%2d %-14s %8.2f us  %6.0f GB/s\n", sh.name, tokens, L.name.c_str(), us,
               traffic(s, tokens) / (us * 1e-6) / 1e9);
      }
      printf("  best  %-8s tokens=%2d %-14s %8.2f us  %6.0f GB/s\n", sh.name, tokens, bn.c_str(), best,
             traffic(s, tokens) / (best * 1e-6) / 1e9);
      (tokens == 1 ? best1 : best11) += best;
    }
    free_set(s);
  }
  printf("one layer's linears (qkv+o+gate|up+down), plan: tokens=1 %.1f us, tokens=11 %.1f us (%.2fx); x32 layers = %.2f ms / step\n",
         step1, step11, step11 / step1, step1 * 32 / 1000);
  printf("one layer's linears, plan, in a CUDA graph: tokens=1 %.1f us, tokens=11 %.1f us (%.2fx); x32 layers = %.2f ms / step\n",
         g1, g11, g11 / g1, g1 * 32 / 1000);
  printf("one layer's linears, best variant per shape: tokens=1 %.1f us, tokens=11 %.1f us (%.2fx)\n", best1, best11,
         best11 / best1);
}

static void bench_gemm(std::mt19937_64& rng) {
  {
    float* sink;
    CK(cudaMalloc(&sink, 4));
    cudaDeviceProp p;
    CK(cudaGetDeviceProperties(&p, 0));
    for (int warps : {4, 8, 16}) {
      const int blocks = p.multiProcessorCount * 2, iters = 4096;
      double us = time_fn([&](int) {
        peak_hmma<<<blocks, 32 * warps>>>(iters, sink);
        CKLAUNCH();
      });
      printf("peak mma.sync m16n8k16 f16->f32, %d warps/SM: %.1f TFLOP/s\n", 2 * warps,
             (double)blocks * warps * iters * 8 * 4096 / (us * 1e-6) / 1e12);
    }
    CK(cudaFree(sink));
  }
  printf("\n== GEMM (prefill), group 128: TFLOP/s = 2*tokens*in*out / time\n");
  double layer[4] = {0, 0, 0, 0};  // per token-count: sum over shapes
  const int toks[] = {64, 128, 256, 512};
  for (auto sh : kShapes) {
    Set s = make_set(rng, sh.in, sh.out, 128, 512);
    for (int ti = 0; ti < 4; ti++) {
      int tokens = toks[ti];
      Launch L = plan(sh.in, sh.out, 128, tokens);
      double us = time_us(s, L, tokens);
      layer[ti] += us;
      printf("%-8s %5dx%-5d tokens=%3d  %8.2f us  %6.1f TFLOP/s  %6.0f GB/s\n", sh.name, sh.in, sh.out, tokens, us,
             2.0 * tokens * sh.in * sh.out / (us * 1e-6) / 1e12, traffic(s, tokens) / (us * 1e-6) / 1e9);
    }
    for (int tokens : {128, 512}) {
      for (auto& L : gemm_variants(sh.in, sh.out, tokens)) {
        double us = time_us(s, L, tokens);
        printf("  sweep %-8s tokens=%3d %-28s %8.2f us  %6.1f TFLOP/s\n", sh.name, tokens, L.name.c_str(), us,
               2.0 * tokens * sh.in * sh.out / (us * 1e-6) / 1e12);
      }
    }
    free_set(s);
  }
  for (int ti = 0; ti < 4; ti++)
    printf("chunk %3d: one layer's linears %.1f us -> 6435-token prefill linears ~ %.1f ms (32 layers)\n", toks[ti],
           layer[ti], layer[ti] * 32 * (6435.0 / toks[ti]) / 1000);
}

// ---------------------------------------------------------------- vector
static void check_vector(std::mt19937_64& rng, const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    perror(path);
    failures++;
    return;
  }
  int32_t hdr[3];
  if (fread(hdr, 4, 3, f) != 3) exit(2);
  Linear l{hdr[0], hdr[1], hdr[2]};
  l.qw.resize((size_t)l.in * l.out / 8);
  l.qz.resize((size_t)l.in / l.group * l.out / 8);
  l.sc.resize((size_t)l.in / l.group * l.out);
  uint64_t np;
  bool ok = fread(l.qw.data(), 4, l.qw.size(), f) == l.qw.size() && fread(l.qz.data(), 4, l.qz.size(), f) == l.qz.size() &&
            fread(l.sc.data(), 2, l.sc.size(), f) == l.sc.size() && fread(&np, 8, 1, f) == 1;
  std::vector<uint8_t> gp(ok ? np : 0);
  ok = ok && fread(gp.data(), 1, np, f) == np;
  fclose(f);
  if (!ok) {
    fprintf(stderr, "%s: truncated\n", path);
    failures++;
    return;
  }
  std::vector<uint8_t> cp = pack(l);
  const bool same = cp == gp;
  if (!same) failures++;
  printf("%-4s vector %s: in=%d out=%d g=%d, Go packAWQ bytes %s the lab's packing\n", same ? "ok" : "FAIL", path, l.in,
         l.out, l.group, same ? "equal" : "DIFFER from");
  for (int t : {1, 11, 100}) check_case(rng, l.in, l.out, l.group, t, nullptr, &gp, &l);
}

int main(int argc, char** argv) {
  for (int i = 0; i < 8; i++) nibble_of[kOrder[i]] = i;
  std::string mode = argc > 1 ? argv[1] : "all";
  std::mt19937_64 rng(12345);
  device_info();
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--vector")) check_vector(rng, argv[i + 1]);
  if (mode == "check" || mode == "all") checks(rng), check_variants(rng);
  if (mode == "gemv" || mode == "all") bench_gemv(rng);
  if (mode == "gemm" || mode == "all") bench_gemm(rng);
  if (mode == "prof") {
    // One launch of each production kernel at the shapes that dominate, for
    // a profiler (ncu -k regex:awq_): gate|up and down at tokens 1, 11, 512.
    for (auto sh : {kShapes[2], kShapes[3]}) {
      Set s = make_set(rng, sh.in, sh.out, 128, 512);
      for (int tokens : {1, 11, 512}) {
        Launch L = plan(sh.in, sh.out, 128, tokens);
        for (int i = 0; i < 3; i++) run(L, s.w[i % s.n], s.x, s.y, tokens, s.in, s.out);
      }
      CK(cudaDeviceSynchronize());
      free_set(s);
    }
  }
  printf("\n%s: %d check failures\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
