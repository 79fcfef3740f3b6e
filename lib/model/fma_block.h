/* The register block shared by nnkit's AVX2 + FMA kernels: the dense GEMM
 * (gemm.c, B from a packed panel) and the direct convolution
 * (conv2d_direct.c, B the input read at a tap offset). Include it only
 * where <immintrin.h> and the kernels' target attribute are available. */
#ifndef NNKIT_FMA_BLOCK_H
#define NNKIT_FMA_BLOCK_H

#include <immintrin.h>

/* acc[r][v] += a[r] * y[8 v .. 8 v + 8) for rows r < 4 and vectors v < nv:
 * nv loads, four broadcasts, 4 nv FMAs. nv (1, 2 or 3) must be a constant
 * at the call, and acc a local array indexed only here and with
 * constants, so that it lives in 4 nv ymm registers. */
__attribute__((target("avx2,fma"), always_inline)) static inline void
nnkit__fma_4xn(__m256 acc[4][3], const float *a, const float *y, const int nv)
{
  __m256 y0 = _mm256_loadu_ps(y), y1 = y0, y2 = y0;
  if (nv > 1)
    y1 = _mm256_loadu_ps(y + 8);
  if (nv > 2)
    y2 = _mm256_loadu_ps(y + 16);
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++) {
    __m256 x = _mm256_broadcast_ss(a + r);
    acc[r][0] = _mm256_fmadd_ps(x, y0, acc[r][0]);
    if (nv > 1)
      acc[r][1] = _mm256_fmadd_ps(x, y1, acc[r][1]);
    if (nv > 2)
      acc[r][2] = _mm256_fmadd_ps(x, y2, acc[r][2]);
  }
}

#endif
