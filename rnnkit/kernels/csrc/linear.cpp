// a @ b as one op (kernels/linear.py: the input projection of every step and its two gradient products):
// float32 through oneDNN's matmul where torch has it and the product holds ONEDNN_MACS multiply-adds or more
// (common.h: 10-20% faster than MKL's GEMM on an AVX-512 AMD EPYC, where ATen's mm and F.linear run MKL),
// else ATen's mm. a and b may be transposed views, so the gradients need no copies.

#include "common.h"

namespace {

Tensor product_op(const Tensor& a, const Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0),
              "product: expected a (M, K) and b (K, N), got a ", a.sizes(), " and b ", b.sizes());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "product: expected a and b of one dtype, got ",
              a.scalar_type(), " and ", b.scalar_type());
  return product(a, b);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(rnnkit, m) {
  m.def("product(Tensor a, Tensor b) -> Tensor");
}

TORCH_LIBRARY_IMPL(rnnkit, CPU, m) {
  m.impl("product", &product_op);
}
