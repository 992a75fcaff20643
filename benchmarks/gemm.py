"""The GEMMs inside the recurrent kernels, three ways, float32, CPU: which library csrc/common.h should call.

Per step of a layer the kernels multiply the (B, K) state by the same (K, N) weight, T times; after the
backward loop each weight gradient is one (N, T*B) x (T*B, K) product. This times, in one process and
alternating run by run, the libraries torch ships:

    mkl      ATen's mm (at::mm_out: MKL's sgemm for float32)
    packed   MKL's packed GEMM (cblas_sgemm_pack once, cblas_sgemm_compute per step)
    onednn   oneDNN's matmul as ATen calls it (at::native::mkldnn_matmul)

and reports the median milliseconds of all T steps (or of the one gradient product). csrc/common.h's `Gemm`
and `product` take oneDNN from 2^24 multiply-adds a product up and the packed GEMM below (above a few rows).
The three are compiled here as a small inline extension (about 40 s the first time).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/gemm.py
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from torch.utils.cpp_extension import load_inline

SOURCE = r"""
#include <torch/extension.h>
namespace at::native {
void mkldnn_matmul(const at::Tensor&, const at::Tensor&, const at::Tensor&, float, float);
}
extern "C" {
size_t cblas_sgemm_pack_get_size(int, int, int, int);
void cblas_sgemm_pack(int, int, int, int, int, int, float, const float*, int, float*);
void cblas_sgemm_compute(int, int, int, int, int, int, const float*, int, const float*, int, float,
                         float*, int);
}
torch::Tensor mkl(torch::Tensor a, torch::Tensor m, int64_t steps) {
  auto out = torch::empty({a.size(0), m.size(1)}, a.options());
  for (int64_t t = 0; t < steps; ++t) at::mm_out(out, a, m);
  return out;
}
torch::Tensor onednn(torch::Tensor a, torch::Tensor m, int64_t steps) {
  auto out = torch::empty({a.size(0), m.size(1)}, a.options());
  for (int64_t t = 0; t < steps; ++t) at::native::mkldnn_matmul(a, m, out, 0.0f, 1.0f);
  return out;
}
torch::Tensor packed(torch::Tensor a, torch::Tensor m, int64_t steps) {
  const int B = a.size(0), K = a.size(1), N = m.size(1);
  auto out = torch::empty({B, N}, a.options());
  const int64_t floats = cblas_sgemm_pack_get_size(162, B, N, K) / 4 + 1;
  auto buffer = torch::empty({floats}, a.options());
  cblas_sgemm_pack(101, 162, 111, B, N, K, 1.0f, m.data_ptr<float>(), N, buffer.data_ptr<float>());
  for (int64_t t = 0; t < steps; ++t)
    cblas_sgemm_compute(101, 111, 151, B, N, K, a.data_ptr<float>(), K, buffer.data_ptr<float>(), N,
                        0.0f, out.data_ptr<float>(), N);
  return out;
}
"""

STEPS = ((16, 256, 1024, 200), (32, 128, 512, 200), (32, 512, 2048, 128), (64, 256, 1024, 100))  # B, K, N, T
GRADIENTS = ((512, 6400, 128), (1024, 6400, 256), (2048, 4096, 512))   # N, T * B, K


def median_ms(functions: dict, repeats: int) -> dict[str, float]:
    times = {name: [] for name in functions}
    for _ in range(repeats + 1):                # the first round warms up
        for name, f in functions.items():
            start = time.perf_counter()
            f()
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(t[1:]) for name, t in times.items()}


def timed(f, *args):
    return lambda: f(*args)


def main(repeats: int = 7) -> None:
    ops = load_inline("rnnkit_gemm_benchmark", cpp_sources=SOURCE, functions=["mkl", "onednn", "packed"],
                      extra_cflags=["-O3"])
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), median of {repeats}, ms\n")
    print("| product | multiply-adds | mkl | packed | onednn |")
    print("|---|---:|---:|---:|---:|")
    for B, K, N, T in STEPS:
        a, m = torch.randn(B, K), torch.randn(K, N)
        torch.testing.assert_close(ops.onednn(a, m, 1), ops.mkl(a, m, 1), rtol=1e-4, atol=1e-4)
        ms = median_ms({name: timed(getattr(ops, name), a, m, T) for name in ("mkl", "packed", "onednn")},
                       repeats)
        macs = (B * K * N).bit_length() - 1
        print(f"| {T} steps of ({B}, {K}) x ({K}, {N}) | 2^{macs} | {ms['mkl']:.1f} | {ms['packed']:.1f} | "
              f"{ms['onednn']:.1f} |", flush=True)
    for N, rows, K in GRADIENTS:
        d, h = torch.randn(rows, N), torch.randn(rows, K)
        ms = median_ms({name: timed(getattr(ops, name), d.t(), h, 1) for name in ("mkl", "onednn")}, repeats)
        macs = (N * rows * K).bit_length() - 1
        print(f"| gradient ({N}, {rows}) x ({rows}, {K}), a transposed view | 2^{macs} | {ms['mkl']:.1f} | | "
              f"{ms['onednn']:.1f} |", flush=True)

if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 7)
