/* Dense-layer GEMMs: a packed 4 x 24 AVX2 + FMA kernel, or cblas_sgemm,
 * whichever nnkit__choose measured faster on the product's shape at the
 * current thread count (choose.c); cblas_sgemm on CPUs and targets
 * without AVX2 and FMA.
 *
 * A dense layer needs three products per step, all row-major:
 *
 *   forward  Y [B, out] = X [B, in] . W [out, in]^T     NNKIT__GEMM_NT
 *   dW       dW[out, in] = dY[B, out]^T . X [B, in]     NNKIT__GEMM_TN
 *   dX       dX[B, in]  = dY[B, out] . W [out, in]      NNKIT__GEMM_NN
 *
 * The layout follows the usual packed design (Goto; BLIS): K is cut into
 * blocks of at most KC (balanced, so 784 is 4 x 196), M into blocks whose
 * packed A fits the workspace (~256 KB, in L2), N into 24-column panels
 * whose packed B (KC x 24, <= 24 KB) stays in L1 while the 4-row A
 * micro-panels stream past. The kernel keeps a 4 x 24 tile of C in 12 ymm
 * accumulators: per k, three loads of B, four broadcasts of A, twelve FMAs,
 * all from contiguous packed memory with constant strides (88-91% of this
 * machine's FMA peak in isolation; reading either operand in place instead
 * of packing it was slower in the epoch).
 *
 * Packs are written for exactly these layouts (4 x 8 and 8 x 8 in-register
 * transposes for the K-contiguous operands, row copies for the others),
 * zero-padded at the edges so the kernel never branches inside; the tile is
 * stored, added (beta 1) or started from a bias row in one pass, with its
 * lines prefetched while the k loop runs; the caller owns the workspace (no
 * allocation, no locking). The packs are 64-byte aligned: from a malloc'd
 * base (16 mod 64) half the 32-byte loads of a 96-byte panel row straddle
 * two cache lines, which made whole epochs 13% slower.
 *
 * In the MLP benchmark's epoch (bench/perf --ab 1 alternates epochs with
 * and without these kernels) the epoch takes 0.88-0.95x the time it takes
 * with OpenBLAS's sgemm, at one and at two threads.
 *
 * beta is 0 (C is overwritten, never read) or 1 (C += A.B). The results
 * equal the plain-loop definitions up to float rounding (tests/test_model.c
 * holds every form, edge and block count against double-precision sums). */
#include <cblas.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

#if !defined(NNKIT_NO_DIRECT) && defined(__GNUC__) && \
    (defined(__x86_64__) || defined(__i386__))
#  define HAVE_KERNELS 1
#  include <immintrin.h>

#  include "fma_block.h"
#  define AVX2 __attribute__((target("avx2,fma")))
#else
#  define HAVE_KERNELS 0
#endif

enum { KC = 256, NR = 24, MR = 4, A_FLOATS = 64 * 1024 };

static size_t kc_for(size_t K)
{
  size_t nb = (K + KC - 1) / KC;
  return nb ? (K + nb - 1) / nb : 0;
}

static size_t mc_for(size_t kc)
{
  size_t mc = A_FLOATS / (kc ? kc : 1);
  return mc / MR * MR;
}

/* Floats of the packed A block: rows of M rounded up to MR, at most mc. */
static size_t apk_floats(size_t M, size_t kc)
{
  size_t m = (M + MR - 1) / MR * MR, mc = mc_for(kc);
  return (m < mc ? m : mc) * kc;
}

size_t nnkit__gemm_ws_floats(size_t M, size_t K)
{
  return apk_floats(M, kc_for(K)) + (size_t)KC * NR + 16;
}

#if HAVE_KERNELS

/* Lane masks: mask_for(w) enables the first w lanes (0..8) of a ymm. */
static const int32_t lane_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                     0,  0,  0,  0,  0,  0,  0,  0};

AVX2 static inline __m256i mask_for(size_t w)
{
  return _mm256_loadu_si256((const __m256i *)(lane_tab + 8 - w));
}

/* Lanes of ymm v (0..2) that hold one of the first w columns of a panel. */
static inline size_t lanes(size_t w, size_t v)
{
  return w <= 8 * v ? 0 : w - 8 * v < 8 ? w - 8 * v : 8;
}

/* ---- packing ------------------------------------------------------------- */

/* A row-major [M][K] (forms nt, nn): dst[k][r] = A[m0 + r][k0 + k] for the
 * rows r < mr (rows mr..3 are zero), k < kc. */
AVX2 static void pack_a_rows(float *dst, const float *A, size_t lda, size_t mr,
                             size_t kc)
{
  if (mr == MR) {
    const float *r0 = A, *r1 = A + lda, *r2 = A + 2 * lda, *r3 = A + 3 * lda;
    size_t k = 0;
    for (; k + 8 <= kc; k += 8, dst += 32) {
      __m256 a = _mm256_loadu_ps(r0 + k), b = _mm256_loadu_ps(r1 + k),
             c = _mm256_loadu_ps(r2 + k), d = _mm256_loadu_ps(r3 + k);
      __m256 t0 = _mm256_unpacklo_ps(a, b), t1 = _mm256_unpackhi_ps(a, b);
      __m256 t2 = _mm256_unpacklo_ps(c, d), t3 = _mm256_unpackhi_ps(c, d);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u1, 0x20));
      _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(u2, u3, 0x20));
      _mm256_storeu_ps(dst + 16, _mm256_permute2f128_ps(u0, u1, 0x31));
      _mm256_storeu_ps(dst + 24, _mm256_permute2f128_ps(u2, u3, 0x31));
    }
    for (; k < kc; k++, dst += 4) {
      dst[0] = r0[k];
      dst[1] = r1[k];
      dst[2] = r2[k];
      dst[3] = r3[k];
    }
    return;
  }
  for (size_t k = 0; k < kc; k++, dst += 4)
    for (size_t r = 0; r < MR; r++)
      dst[r] = r < mr ? A[r * lda + k] : 0.0f;
}

/* A stored transposed, [K][M] (form tn): dst[k][r] = A[k0 + k][m0 + r]. */
AVX2 static void pack_a_cols(float *dst, const float *A, size_t lda, size_t mr,
                             size_t kc)
{
  if (mr == MR) {
    for (size_t k = 0; k < kc; k++, dst += 4, A += lda)
      _mm_storeu_ps(dst, _mm_loadu_ps(A));
    return;
  }
  for (size_t k = 0; k < kc; k++, dst += 4, A += lda)
    for (size_t r = 0; r < MR; r++)
      dst[r] = r < mr ? A[r] : 0.0f;
}

/* B row-major [K][N] (forms tn, nn): dst[k][j] = B[k0 + k][n0 + j], j < w,
 * zero for w <= j < 24. */
AVX2 static void pack_b_rows(float *dst, const float *B, size_t ldb, size_t w,
                             size_t kc)
{
  if (w == NR) {
    for (size_t k = 0; k < kc; k++, dst += NR, B += ldb) {
      _mm256_storeu_ps(dst, _mm256_loadu_ps(B));
      _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(B + 8));
      _mm256_storeu_ps(dst + 16, _mm256_loadu_ps(B + 16));
    }
    return;
  }
  __m256i m0 = mask_for(lanes(w, 0)), m1 = mask_for(lanes(w, 1)),
          m2 = mask_for(lanes(w, 2));
  for (size_t k = 0; k < kc; k++, dst += NR, B += ldb) {
    _mm256_storeu_ps(dst, _mm256_maskload_ps(B, m0));
    _mm256_storeu_ps(dst + 8, _mm256_maskload_ps(B + 8, m1));
    _mm256_storeu_ps(dst + 16, _mm256_maskload_ps(B + 16, m2));
  }
}

/* B stored as [N][K] (form nt, B = W): dst[k][j] = B[n0 + j][k0 + k], j < w,
 * zero beyond. Eight rows at a time through an 8 x 8 transpose. */
AVX2 static void pack_b_cols(float *dst, const float *B, size_t ldb, size_t w,
                             size_t kc)
{
  static const float zero[KC];
  for (size_t g = 0; g < NR; g += 8) {
    const float *r[8];
    for (size_t i = 0; i < 8; i++)
      r[i] = g + i < w ? B + (g + i) * ldb : zero;
    float *d = dst + g;
    size_t k = 0;
    for (; k + 8 <= kc; k += 8, d += 8 * NR) {
      __m256 a0 = _mm256_loadu_ps(r[0] + k), a1 = _mm256_loadu_ps(r[1] + k),
             a2 = _mm256_loadu_ps(r[2] + k), a3 = _mm256_loadu_ps(r[3] + k),
             a4 = _mm256_loadu_ps(r[4] + k), a5 = _mm256_loadu_ps(r[5] + k),
             a6 = _mm256_loadu_ps(r[6] + k), a7 = _mm256_loadu_ps(r[7] + k);
      __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1),
             t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3),
             t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
             t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
             u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
             u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
             u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      /* u0 = [k0 of rows 0-3 | k4 of rows 0-3], u4 = same for rows 4-7 */
      _mm256_storeu_ps(d + 0 * NR, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(d + 1 * NR, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(d + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(d + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(d + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(d + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(d + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(d + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
    for (; k < kc; k++, d += NR)
      for (size_t i = 0; i < 8; i++)
        d[i] = r[i][k];
  }
}

/* ---- kernel -------------------------------------------------------------- */

/* C[r][0..w) (+)= sum_k ap[k][r] bp[k][0..8 nv) for r < mr: up to 12 ymm
 * accumulators; per k nv loads of B, four broadcasts of A, 4 nv FMAs. nv
 * (1, 2 or 3 vectors) is a constant at each call, so a panel's last 8 or
 * 16 columns do not pay for 24 (the 512-wide layers end in one). */
AVX2 static inline __attribute__((always_inline)) void
kernel_4xn(size_t kc, const float *ap, const float *bp, float *c, size_t ldc,
           size_t mr, size_t w, int add, const float *bias, const int nv)
{
  /* The tile of C is read (add) or written at the end: have its lines on
   * their way while the k loop runs, instead of missing on them after it. */
  for (size_t r = 0; r < mr; r++) {
    _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + r * ldc + w - 1), _MM_HINT_T0);
    _mm_prefetch((const char *)(c + r * ldc + w / 2), _MM_HINT_T0);
  }
  __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0;
  if (bias) { /* every row starts from bias[0..w) */
    b0 = _mm256_maskload_ps(bias, mask_for(lanes(w, 0)));
    if (nv > 1)
      b1 = _mm256_maskload_ps(bias + 8, mask_for(lanes(w, 1)));
    if (nv > 2)
      b2 = _mm256_maskload_ps(bias + 16, mask_for(lanes(w, 2)));
  }
  __m256 acc[MR][3] = {{b0, b1, b2}, {b0, b1, b2}, {b0, b1, b2}, {b0, b1, b2}};
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; k++, ap += MR, bp += NR)
    nnkit__fma_4xn(acc, ap, bp, nv);
  /* Constant indices only (unrolled), so that acc stays in registers. A
   * whole tile is stored plainly, an edge tile with masked stores of the
   * first w columns of the first mr rows. */
  const int whole = mr == MR && w == 8 * (size_t)nv;
#pragma GCC unroll 4
  for (int r = 0; r < MR; r++) {
    if ((size_t)r >= mr)
      break;
    float *cr = c + (size_t)r * ldc;
#pragma GCC unroll 3
    for (int v = 0; v < nv; v++) {
      __m256 t = acc[r][v];
      if (whole) {
        if (add)
          t = _mm256_add_ps(t, _mm256_loadu_ps(cr + 8 * v));
        _mm256_storeu_ps(cr + 8 * v, t);
      } else {
        __m256i mk = mask_for(lanes(w, (size_t)v));
        if (add)
          t = _mm256_add_ps(t, _mm256_maskload_ps(cr + 8 * v, mk));
        _mm256_maskstore_ps(cr + 8 * v, mk, t);
      }
    }
  }
}

/* One 4 x w tile, w <= 24: the 24-, 16- or 8-column kernel. */
AVX2 static void kernel_4x24(size_t kc, const float *ap, const float *bp, float *c,
                             size_t ldc, size_t mr, size_t w, int add, const float *bias)
{
  if (w > 16)
    kernel_4xn(kc, ap, bp, c, ldc, mr, w, add, bias, 3);
  else if (w > 8)
    kernel_4xn(kc, ap, bp, c, ldc, mr, w, add, bias, 2);
  else
    kernel_4xn(kc, ap, bp, c, ldc, mr, w, add, bias, 1);
}

/* ---- driver -------------------------------------------------------------- */

AVX2 static void gemm_avx2(nnkit__gemm_form form, size_t M, size_t N, size_t K,
                           const float *A, size_t lda, const float *B, size_t ldb,
                           float beta, float *C, size_t ldc, const float *bias,
                           float *ws)
{
  size_t kc0 = kc_for(K), mc0 = mc_for(kc0);
  /* 64-byte aligned packs: a B panel row is 96 bytes, so from a malloc'd
   * (16 mod 64) base half of its 32-byte loads would straddle two lines
   * (13% slower epochs, measured). */
  ws = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
  float *apk = ws, *bpk = ws + apk_floats(M, kc0);
  for (size_t k0 = 0; k0 < K; k0 += kc0) {
    size_t kc = K - k0 < kc0 ? K - k0 : kc0;
    int add = beta != 0.0f || k0 > 0;
    for (size_t m0 = 0; m0 < M; m0 += mc0) {
      size_t mc = M - m0 < mc0 ? M - m0 : mc0;
      for (size_t m = 0; m < mc; m += MR) {
        size_t mr = mc - m < MR ? mc - m : MR;
        float *d = apk + m * kc;
        if (form == NNKIT__GEMM_TN)
          pack_a_cols(d, A + k0 * lda + m0 + m, lda, mr, kc);
        else
          pack_a_rows(d, A + (m0 + m) * lda + k0, lda, mr, kc);
      }
      for (size_t n = 0; n < N; n += NR) {
        size_t w = N - n < NR ? N - n : NR;
        if (form == NNKIT__GEMM_NT)
          pack_b_cols(bpk, B + n * ldb + k0, ldb, w, kc);
        else
          pack_b_rows(bpk, B + k0 * ldb + n, ldb, w, kc);
        for (size_t m = 0; m < mc; m += MR) {
          size_t mr = mc - m < MR ? mc - m : MR;
          kernel_4x24(kc, apk + m * kc, bpk, C + (m0 + m) * ldc + n, ldc, mr, w, add,
                      bias && k0 == 0 ? bias + n : NULL);
        }
      }
    }
  }
}

#endif /* HAVE_KERNELS */

static int gemm_override = -1;

void nnkit__gemm_force(int mode)
{
  gemm_override = mode;
}

int nnkit__gemm_fast(void)
{
#if HAVE_KERNELS
  return gemm_override != 0 && nnkit__direct_available();
#else
  return 0;
#endif
}

static void gemm_blas(nnkit__gemm_form form, size_t M, size_t N, size_t K,
                      const float *A, size_t lda, const float *B, size_t ldb, float beta,
                      float *C, size_t ldc, const float *bias)
{
  if (bias) {
    for (size_t i = 0; i < M; i++)
      memcpy(C + i * ldc, bias, N * sizeof(float));
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, form == NNKIT__GEMM_TN ? CblasTrans : CblasNoTrans,
              form == NNKIT__GEMM_NT ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K,
              1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* The nnkit__choose key of a product ("gemm NT 128x512x784 t1"). */
static void gemm_key(char *buf, size_t len, nnkit__gemm_form form, size_t M, size_t N,
                     size_t K)
{
  static const char *const form_names[] = {"NT", "TN", "NN"}; /* enum order */
  snprintf(buf, len, "gemm %s %zux%zux%zu t%d", form_names[form], M, N, K,
           nnkit__num_threads());
}

static const char *const gemm_names[] = {"nnkit", "cblas"};

void nnkit__gemm_explain(char *buf, size_t len, nnkit__gemm_form form, size_t M, size_t N,
                         size_t K)
{
  char key[96];
  gemm_key(key, sizeof key, form, M, N, K);
  nnkit__choice_explain(key, 2, gemm_names, nnkit__gemm_fast(), buf, len);
}

#if HAVE_KERNELS
typedef struct gemm_call {
  nnkit__gemm_form form;
  size_t M, N, K, lda, ldb, ldc;
  const float *A, *B, *bias;
  float *C, *ws;
} gemm_call;

static void gemm_candidate(void *ctx, int k)
{
  const gemm_call *g = ctx;
  if (k == 0)
    gemm_avx2(g->form, g->M, g->N, g->K, g->A, g->lda, g->B, g->ldb, 0.0f, g->C, g->ldc,
              g->bias, g->ws);
  else
    gemm_blas(g->form, g->M, g->N, g->K, g->A, g->lda, g->B, g->ldb, 0.0f, g->C, g->ldc,
              g->bias);
}

/* Which of nnkit's GEMM (0) and cblas_sgemm (1) runs this product: forced
 * by nnkit__gemm_force, else nnkit__choose's measured verdict for the
 * shape. A product that adds to C (beta != 0) cannot be run twice to time
 * it, and keeps nnkit's kernel. */
static int gemm_pick(nnkit__gemm_form form, size_t M, size_t N, size_t K, const float *A,
                     size_t lda, const float *B, size_t ldb, float beta, float *C,
                     size_t ldc, const float *bias, float *ws)
{
  if (!ws || K == 0 || !nnkit__gemm_fast())
    return 1;
  if (gemm_override == 1 || beta != 0.0f)
    return 0;
  char key[96];
  gemm_key(key, sizeof key, form, M, N, K);
  gemm_call g = {form, M, N, K, lda, ldb, ldc, A, B, bias, C, ws};
  return nnkit__choose(key, 2, gemm_names, gemm_candidate, &g);
}
#endif

void nnkit__gemm(nnkit__gemm_form form, size_t M, size_t N, size_t K, const float *A,
                 size_t lda, const float *B, size_t ldb, float beta, float *C,
                 size_t ldc, const float *bias, float *ws)
{
  if (M == 0 || N == 0)
    return;
  if (bias)
    beta = 0.0f; /* C = bias + A.B */
#if HAVE_KERNELS
  if (gemm_pick(form, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, ws) == 0) {
    gemm_avx2(form, M, N, K, A, lda, B, ldb, beta, C, ldc, bias, ws);
    return;
  }
#endif
  gemm_blas(form, M, N, K, A, lda, B, ldb, beta, C, ldc, bias);
}
