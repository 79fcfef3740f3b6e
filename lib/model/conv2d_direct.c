/* Direct stride-1 convolution kernels (AVX2 + FMA, chosen at run time).
 *
 * A stride-1 convolution over a zero-padded map laid out flat with row
 * width Wp is a sum of shifted copies: output position q = oy Wp + ox reads
 * input position q + i Wp + j for tap (i, j), so for every tap the inputs
 * of consecutive outputs are consecutive floats. The "im2col matrix" is
 * then the input itself read at K offsets, and
 *
 *   out [M, Q] = W [M, K] . X_shift [K, Q],  X_shift[k][q] = in[toff[k] + q]
 *
 * is a GEMM whose B panel needs no copy. Columns ox >= OW of each row are
 * garbage (they read across the row end) and are dropped by the caller.
 * The same kernel runs the transposed convolution (dx) with flipped,
 * transposed weights over the padded dy, and a second kernel reduces over q
 * for dW. conv2d.c owns the layouts; this file owns only the arithmetic on
 * raw arrays.
 *
 * Register blocking: 4 output rows x 24 positions (12 ymm accumulators; the
 * last block of a row 8 or 16 positions, so the caller rounds its position
 * count up to 8, not 24) for the product, 4 rows x 3 taps (x 8 lanes, added
 * up at the end) for dW. x86-64 builds compile
 * these functions for AVX2+FMA with a target attribute and
 * nnkit__direct_available() checks the CPU at run time; other targets and
 * older CPUs (and builds with -DNNKIT_NO_DIRECT, which the tests use to
 * compare the kernels with the plain loops) keep conv2d.c's im2col +
 * sgemm path. */
#include <string.h>

#include "internal.h"

#if !defined(NNKIT_NO_DIRECT) && defined(__GNUC__) && \
    (defined(__x86_64__) || defined(__i386__))
#  define HAVE_DIRECT 1
#  include <immintrin.h>

#  include "fma_block.h"
#  define AVX2 __attribute__((target("avx2,fma")))
#else
#  define HAVE_DIRECT 0
#endif

static int direct_override = -1; /* tests: 0 forces the im2col path */

void nnkit__direct_force(int mode)
{
  direct_override = mode;
}

int nnkit__direct_available(void)
{
  if (direct_override == 0)
    return 0;
#if HAVE_DIRECT
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return 0;
#endif
}

#if HAVE_DIRECT

/* 4 rows x 8 nv positions (nv = 1, 2, 3; a constant at each call, so the
 * unused accumulators vanish): out[r][0..8 nv) = init_r + sum_t wpk[t][r]
 * in[toff[t]..]. */
AVX2 static inline __attribute__((always_inline)) void
corr_4xn(float *out, size_t ostride, size_t rows, const float *in,
         const int32_t *toff, size_t k, const float *wpk, const float *init,
         const int nv)
{
  __m256 acc[4][3];
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++)
    acc[r][0] = acc[r][1] = acc[r][2] = _mm256_set1_ps(init[r]);
  for (size_t t = 0; t < k; t++, wpk += 4)
    nnkit__fma_4xn(acc, wpk, in + toff[t], nv);
  /* Constant indices only (unrolled), so that acc stays in registers. */
#pragma GCC unroll 4
  for (int r = 0; r < 4; r++)
    if ((size_t)r < rows)
#pragma GCC unroll 3
      for (int v = 0; v < nv; v++)
        _mm256_storeu_ps(out + (size_t)r * ostride + 8 * v, acc[r][v]);
}

AVX2 void nnkit__direct_corr(float *out, size_t ostride, size_t m,
                             const float *in, const int32_t *toff, size_t k,
                             const float *wpk, const float *init, size_t qr)
{
  const size_t qb = qr / NNKIT__DIRECT_QB * NNKIT__DIRECT_QB, tail = (qr - qb) / 8;
  for (size_t b = 0; b * NNKIT__DIRECT_MR < m; b++) {
    size_t r0 = b * NNKIT__DIRECT_MR, rows = m - r0 < 4 ? m - r0 : 4;
    float in4[4] = {0, 0, 0, 0};
    for (size_t r = 0; r < rows; r++)
      in4[r] = init ? init[r0 + r] : 0.0f;
    const float *wb = wpk + b * k * NNKIT__DIRECT_MR;
    float *ob = out + r0 * ostride;
    for (size_t q = 0; q < qb; q += NNKIT__DIRECT_QB)
      corr_4xn(ob + q, ostride, rows, in + q, toff, k, wb, in4, 3);
    if (tail == 2)
      corr_4xn(ob + qb, ostride, rows, in + qb, toff, k, wb, in4, 2);
    else if (tail == 1)
      corr_4xn(ob + qb, ostride, rows, in + qb, toff, k, wb, in4, 1);
  }
}

/* acc[r k + t] += sum_q dy_r[q] in[toff[t] + q], 4 rows x 3 taps. */
AVX2 static void dw_4x3(float *acc, size_t k, const float *const dy[4],
                        const float *in, const int32_t *toff, size_t qr)
{
  __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a10 = a00, a11 = a00,
         a12 = a00, a20 = a00, a21 = a00, a22 = a00, a30 = a00, a31 = a00,
         a32 = a00;
  const float *p0 = in + toff[0], *p1 = in + toff[1], *p2 = in + toff[2];
  for (size_t q = 0; q < qr; q += 8) {
    __m256 x0 = _mm256_loadu_ps(p0 + q), x1 = _mm256_loadu_ps(p1 + q),
           x2 = _mm256_loadu_ps(p2 + q);
    __m256 d = _mm256_loadu_ps(dy[0] + q);
    a00 = _mm256_fmadd_ps(d, x0, a00);
    a01 = _mm256_fmadd_ps(d, x1, a01);
    a02 = _mm256_fmadd_ps(d, x2, a02);
    d = _mm256_loadu_ps(dy[1] + q);
    a10 = _mm256_fmadd_ps(d, x0, a10);
    a11 = _mm256_fmadd_ps(d, x1, a11);
    a12 = _mm256_fmadd_ps(d, x2, a12);
    d = _mm256_loadu_ps(dy[2] + q);
    a20 = _mm256_fmadd_ps(d, x0, a20);
    a21 = _mm256_fmadd_ps(d, x1, a21);
    a22 = _mm256_fmadd_ps(d, x2, a22);
    d = _mm256_loadu_ps(dy[3] + q);
    a30 = _mm256_fmadd_ps(d, x0, a30);
    a31 = _mm256_fmadd_ps(d, x1, a31);
    a32 = _mm256_fmadd_ps(d, x2, a32);
  }
  /* Lanes to sums: hadd folds pairs, the two 128-bit halves add last. */
  __m256 h0 = _mm256_hadd_ps(_mm256_hadd_ps(a00, a01), _mm256_hadd_ps(a02, a10));
  __m256 h1 = _mm256_hadd_ps(_mm256_hadd_ps(a11, a12), _mm256_hadd_ps(a20, a21));
  __m256 h2 = _mm256_hadd_ps(_mm256_hadd_ps(a22, a30), _mm256_hadd_ps(a31, a32));
  float v[12];
  _mm_storeu_ps(v, _mm_add_ps(_mm256_castps256_ps128(h0), _mm256_extractf128_ps(h0, 1)));
  _mm_storeu_ps(v + 4,
                _mm_add_ps(_mm256_castps256_ps128(h1), _mm256_extractf128_ps(h1, 1)));
  _mm_storeu_ps(v + 8,
                _mm_add_ps(_mm256_castps256_ps128(h2), _mm256_extractf128_ps(h2, 1)));
  for (size_t r = 0; r < 4; r++)
    for (size_t t = 0; t < 3; t++)
      acc[r * k + t] += v[r * 3 + t];
}

/* One row x one tap. */
AVX2 static void dw_1x1(float *acc, const float *dy, const float *in, size_t qr)
{
  __m256 a0 = _mm256_setzero_ps(), a1 = a0;
  size_t q = 0;
  for (; q + 16 <= qr; q += 16) {
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(dy + q), _mm256_loadu_ps(in + q), a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(dy + q + 8), _mm256_loadu_ps(in + q + 8),
                         a1);
  }
  for (; q < qr; q += 8)
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(dy + q), _mm256_loadu_ps(in + q), a0);
  float v[8];
  _mm256_storeu_ps(v, _mm256_add_ps(a0, a1));
  *acc += ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7]));
}

AVX2 void nnkit__direct_dw(float *acc, const float *dy, size_t dystride, size_t m,
                           const float *in, const int32_t *toff, size_t k,
                           size_t qr)
{
  size_t m4 = m / 4 * 4, k3 = k / 3 * 3;
  for (size_t r = 0; r < m4; r += 4) {
    const float *rows[4] = {dy + r * dystride, dy + (r + 1) * dystride,
                            dy + (r + 2) * dystride, dy + (r + 3) * dystride};
    for (size_t t = 0; t < k3; t += 3)
      dw_4x3(acc + r * k + t, k, rows, in, toff + t, qr);
    for (size_t t = k3; t < k; t++)
      for (size_t i = 0; i < 4; i++)
        dw_1x1(acc + (r + i) * k + t, rows[i], in + toff[t], qr);
  }
  for (size_t r = m4; r < m; r++)
    for (size_t t = 0; t < k; t++)
      dw_1x1(acc + r * k + t, dy + r * dystride, in + toff[t], qr);
}


/* dst[r][0..n) = src[r][0..n) for r < rows (short rows: no memcpy call;
 * src and dst do not overlap). */
AVX2 void nnkit__direct_copy_rows(float *dst, size_t dstride, const float *src,
                                  size_t sstride, size_t rows, size_t n)
{
  if (n < 8) {
    for (size_t r = 0; r < rows; r++, dst += dstride, src += sstride)
      for (size_t i = 0; i < n; i++)
        dst[i] = src[i];
    return;
  }
  /* Rows of 8 or more: whole vectors, the last one ending at n (it may
   * rewrite a few floats the previous one wrote, with the same values). */
  for (size_t r = 0; r < rows; r++, dst += dstride, src += sstride) {
    for (size_t i = 0; i + 8 < n; i += 8)
      _mm256_storeu_ps(dst + i, _mm256_loadu_ps(src + i));
    _mm256_storeu_ps(dst + n - 8, _mm256_loadu_ps(src + n - 8));
  }
}

/* sum[r] += sum of row r's n floats (8 lanes, then the lanes in a fixed order). */
AVX2 void nnkit__direct_row_sums(float *sum, const float *x, size_t rows,
                                 size_t n)
{
  for (size_t r = 0; r < rows; r++, x += n) {
    __m256 a = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      a = _mm256_add_ps(a, _mm256_loadu_ps(x + i));
    float l[8], s = 0.0f;
    _mm256_storeu_ps(l, a);
    for (; i < n; i++)
      s += x[i];
    sum[r] += ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7])) + s;
  }
}

#else /* !HAVE_DIRECT: plain loops with the same contract (conv2d.c uses
       * them only when nnkit__direct_available(), i.e. never here, but they
       * are the definition the AVX2 kernels implement) */

void nnkit__direct_corr(float *out, size_t ostride, size_t m, const float *in,
                        const int32_t *toff, size_t k, const float *wpk,
                        const float *init, size_t qr)
{
  for (size_t r = 0; r < m; r++) {
    const float *wr = wpk + (r / 4) * k * 4 + r % 4;
    for (size_t q = 0; q < qr; q++) {
      float s = init ? init[r] : 0.0f;
      for (size_t t = 0; t < k; t++)
        s += wr[t * 4] * in[toff[t] + q];
      out[r * ostride + q] = s;
    }
  }
}

void nnkit__direct_dw(float *acc, const float *dy, size_t dystride, size_t m,
                      const float *in, const int32_t *toff, size_t k, size_t qr)
{
  for (size_t r = 0; r < m; r++)
    for (size_t t = 0; t < k; t++)
      for (size_t q = 0; q < qr; q++)
        acc[r * k + t] += dy[r * dystride + q] * in[toff[t] + q];
}

void nnkit__direct_copy_rows(float *dst, size_t dstride, const float *src,
                             size_t sstride, size_t rows, size_t n)
{
  for (size_t r = 0; r < rows; r++)
    memcpy(dst + r * dstride, src + r * sstride, n * sizeof *dst);
}

void nnkit__direct_row_sums(float *sum, const float *x, size_t rows, size_t n)
{
  for (size_t r = 0; r < rows; r++)
    for (size_t i = 0; i < n; i++)
      sum[r] += x[r * n + i];
}

#endif
