/* Convolutional and regularizing layers: conv2d, max/avg/global average
 * pooling, flatten, batch normalization, dropout and spatial dropout.
 * Finite-difference gradient checks, the BLAS path against its plain-loop
 * twin, golden values from PyTorch (tests/fixtures/gen_layers.py), batch
 * norm's running statistics against the closed form, dropout statistics,
 * shape errors at add time, and small end-to-end behaviour. */
#include "testutil.h"

#ifndef NNKIT_FIXTURES
#  error "NNKIT_FIXTURES must name the tests/fixtures directory"
#endif

/* ---- helpers ------------------------------------------------------ */

/* Distinct values k * step (k = 0..n-1) in a seeded random order, shifted
 * to be centred: no two closer than step (max pooling's argmax survives
 * the finite-difference perturbations). */
static void fill_spaced(float *x, size_t n, uint64_t seed, float step)
{
  size_t *idx = malloc(n * sizeof *idx);
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 7);
  nnkit__rng_shuffle(&r, idx, n);
  for (size_t i = 0; i < n; i++)
    x[i] = step * ((float)idx[i] - (float)n / 2);
  free(idx);
}

static nnkit_net *make_net3(size_t c, size_t h, size_t w, uint64_t seed)
{
  size_t shape[3] = {c, h, w};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, seed));
  return net;
}

/* Random input and labels for a net, then grad_check. */
static void grad_check_random(nnkit_net *net, size_t batch, uint64_t seed)
{
  size_t in = nnkit_net_input_size(net), classes = nnkit_net_output_size(net);
  float *x = malloc(batch * in * sizeof *x);
  int32_t *labels = malloc(batch * sizeof *labels);
  tu_fill_uniform(x, batch * in, seed, -1.0f, 1.0f);
  for (size_t i = 0; i < batch; i++)
    labels[i] = (int32_t)((i * 7 + seed) % classes);
  tu_grad_check(net, x, batch, labels, NULL);
  free(x);
  free(labels);
}

/* ---- fixtures ----------------------------------------------------- */

/* Reads array `key` of fixture tests/fixtures/layers/<file>.txt (lines
 * "name count values..."); returns malloc'ed doubles and the count. */
static double *fx(const char *file, const char *key, size_t *n_out)
{
  char path[1024];
  snprintf(path, sizeof path, "%s/layers/%s.txt", NNKIT_FIXTURES, file);
  FILE *f = fopen(path, "r");
  ck_assert_msg(f != NULL, "cannot open fixture %s", path);
  char name[64];
  size_t n;
  while (fscanf(f, "%63s %zu", name, &n) == 2) {
    int match = strcmp(name, key) == 0;
    double *v = match ? malloc((n ? n : 1) * sizeof *v) : NULL;
    for (size_t i = 0; i < n; i++) {
      double d;
      ck_assert_msg(fscanf(f, "%lf", &d) == 1, "%s: short array %s", path, name);
      if (v)
        v[i] = d;
    }
    if (match) {
      fclose(f);
      if (n_out)
        *n_out = n;
      return v;
    }
  }
  fclose(f);
  ck_abort_msg("fixture %s has no array %s", path, key);
  return NULL;
}

/* Fixture array as floats (the fixtures hold float32 values exactly). */
static float *fxf(const char *file, const char *key, size_t *n_out)
{
  size_t n;
  double *d = fx(file, key, &n);
  float *v = malloc((n ? n : 1) * sizeof *v);
  for (size_t i = 0; i < n; i++)
    v[i] = (float)d[i];
  free(d);
  if (n_out)
    *n_out = n;
  return v;
}

/* |got - want| <= tol (1 + |want|) for all n values. */
static void ck_close(const float *got, const char *file, const char *key,
                     size_t n, double tol)
{
  size_t m;
  double *want = fx(file, key, &m);
  ck_assert_msg(m == n, "%s %s: %zu values, expected %zu", file, key, m, n);
  for (size_t i = 0; i < n; i++)
    ck_assert_msg(fabs(got[i] - want[i]) <= tol * (1 + fabs(want[i])),
                  "%s %s[%zu]: nnkit %.7g, PyTorch %.7g", file, key, i,
                  (double)got[i], want[i]);
  free(want);
}

static size_t pad_arg(double v) { return v < 0 ? NNKIT_PAD_SAME : (size_t)v; }

/* ---- conv2d ------------------------------------------------------- */

/* conv2d -> dense(3) with random parameters and inputs. */
static void check_conv(size_t c, size_t h, size_t w, size_t oc, size_t kh,
                       size_t kw, size_t sh, size_t sw, size_t ph, size_t pw,
                       int bias, size_t batch, uint64_t seed)
{
  nnkit_net *net = make_net3(c, h, w, seed);
  ck_ok(nnkit_net_add_conv2d(net, oc, kh, kw, sh, sw, ph, pw, bias));
  ck_ok(nnkit_net_add_dense(net, 3));
  float *p = nnkit_net_params(net);
  tu_fill_uniform(p, nnkit_net_num_params(net), seed + 1, -0.5f, 0.5f);
  grad_check_random(net, batch, seed);
  nnkit_net_free(net);
}

START_TEST(gradcheck_conv2d)
{
  check_conv(2, 5, 5, 3, 3, 3, 1, 1, 1, 1, 1, 2, 1);        /* pad 1 */
  check_conv(1, 7, 6, 2, 3, 2, 2, 1, 1, 0, 1, 2, 2);        /* strides 2x1 */
  check_conv(3, 6, 6, 2, 2, 2, 2, 2, 0, 0, 0, 3, 3);        /* no bias */
  check_conv(2, 5, 6, 2, 4, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1, 2, 4);
  check_conv(2, 7, 5, 2, 3, 3, 2, 2, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1, 2, 5);
  check_conv(1, 4, 4, 4, 1, 1, 1, 1, 0, 0, 1, 2, 6);        /* 1x1 */
  check_conv(2, 6, 5, 2, 3, 3, 3, 2, 2, 1, 1, 2, 7);        /* pad 2x1 */
}
END_TEST

START_TEST(gradcheck_conv_stack)
{
  /* Two convolutions with a nonlinearity between: dx of the second one
   * flows into the first. */
  nnkit_net *net = make_net3(2, 6, 6, 8);
  ck_ok(nnkit_net_add_conv2d(net, 3, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_conv2d(net, 2, 3, 3, 2, 2, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 3));
  grad_check_random(net, 2, 9);
  nnkit_net_free(net);
}
END_TEST

/* The fast path the layer chose (expect_direct: 1 direct, 0 im2col + sgemm,
 * -1 either) against the plain-loop twin, forward and backward. */
static void check_conv_path(size_t c, size_t h, size_t w, size_t oc, size_t kh,
                            size_t kw, size_t sh, size_t sw, size_t ph,
                            size_t pw, int bias, size_t batch, int expect_direct)
{
  nnkit_net *net = make_net3(c, h, w, 3);
  ck_ok(nnkit_net_add_conv2d(net, oc, kh, kw, sh, sw, ph, pw, bias));
  nnkit__layer *l = &net->layers[0];
  if (expect_direct >= 0)
    ck_assert_int_eq(nnkit__conv_is_direct(l), expect_direct);
  const nnkit__conv_geom *g = nnkit__layer_geom(l);
  ck_assert_ptr_nonnull(g);
  float *p = nnkit_net_params(net);
  size_t np = nnkit_net_num_params(net), nw = oc * c * kh * kw;
  tu_fill_uniform(p, np, 4, -1, 1);
  size_t in = batch * c * h * w, out = batch * nnkit_net_output_size(net);
  float *x = malloc(in * sizeof *x), *y = malloc(out * sizeof *y);
  float *yn = malloc(out * sizeof *yn), *dy = malloc(out * sizeof *dy);
  float *dx = malloc(in * sizeof *dx), *dxn = malloc(in * sizeof *dxn);
  float *dwn = malloc(np * sizeof *dwn);
  tu_fill_uniform(x, in, 5, -1, 1);
  tu_fill_uniform(dy, out, 6, -1, 1);
  ck_ok(nnkit_net_forward(net, x, batch, y, out));
  nnkit__conv2d_forward_naive(x, p, bias ? p + nw : NULL, yn, batch, g);
  for (size_t i = 0; i < out; i++)
    ck_assert_msg(fabsf(y[i] - yn[i]) <= 1e-4f * (1 + fabsf(yn[i])),
                  "y[%zu] %g vs naive %g", i, (double)y[i], (double)yn[i]);
  memset(l->grads, 0, np * sizeof(float));
  l->ops->backward(l, x, y, dy, dx, batch);
  nnkit__conv2d_backward_naive(x, p, dy, dxn, dwn, bias ? dwn + nw : NULL, batch, g);
  for (size_t i = 0; i < in; i++)
    ck_assert_msg(fabsf(dx[i] - dxn[i]) <= 1e-4f * (1 + fabsf(dxn[i])),
                  "dx[%zu] %g vs naive %g", i, (double)dx[i], (double)dxn[i]);
  for (size_t i = 0; i < np; i++)
    ck_assert_msg(fabsf(l->grads[i] - dwn[i]) <= 1e-4f * (1 + fabsf(dwn[i])),
                  "dparam[%zu] %g vs naive %g", i, (double)l->grads[i],
                  (double)dwn[i]);
  /* backward accumulates parameter gradients */
  l->ops->backward(l, x, y, dy, NULL, batch);
  for (size_t i = 0; i < np; i++)
    ck_assert_msg(fabsf(l->grads[i] - 2 * dwn[i]) <= 2e-4f * (1 + fabsf(dwn[i])),
                  "accumulated dparam[%zu]", i);
  free(x);
  free(y);
  free(yn);
  free(dy);
  free(dx);
  free(dxn);
  free(dwn);
  nnkit_net_free(net);
}

static void check_conv_twin(size_t c, size_t h, size_t w, size_t oc, size_t kh,
                            size_t kw, size_t sh, size_t sw, size_t ph,
                            size_t pw, int bias, size_t batch)
{
  check_conv_path(c, h, w, oc, kh, kw, sh, sw, ph, pw, bias, batch, -1);
}

/* Stride-1 geometries run the direct kernels (on CPUs with AVX2+FMA) and,
 * forced off, the im2col path: both match the twin. The cases cover row
 * blocks with a tail (OC or C not a multiple of 4), tap blocks with a tail
 * (K not a multiple of 3), one input channel (the first layer of a CNN),
 * asymmetric "same" padding of even kernels, no padding, 1x1 kernels,
 * outputs narrower than a 24-position block, and 1-3 threads. */
static void direct_cases(int expect)
{
  check_conv_path(1, 28, 28, 16, 3, 3, 1, 1, 1, 1, 1, 3, expect);
  check_conv_path(16, 14, 14, 32, 3, 3, 1, 1, 1, 1, 1, 2, expect);
  check_conv_path(3, 9, 8, 5, 3, 3, 1, 1, 1, 1, 1, 4, expect);
  check_conv_path(2, 7, 6, 6, 2, 2, 1, 1, 0, 0, 0, 3, expect);
  check_conv_path(3, 8, 9, 7, 4, 4, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1, 2,
                  expect);
  check_conv_path(2, 9, 7, 3, 5, 3, 1, 1, 2, 1, 1, 3, expect);
  check_conv_path(5, 4, 3, 9, 1, 1, 1, 1, 0, 0, 1, 5, expect);
  check_conv_path(1, 3, 2, 1, 2, 1, 1, 1, 0, 0, 0, 1, expect);
  for (int t = 1; t <= 3; t++) {
    ck_ok(nnkit_set_num_threads(t));
    check_conv_path(4, 10, 10, 6, 3, 3, 1, 1, 1, 1, 1, 9, expect);
  }
  ck_ok(nnkit_set_num_threads(0));
}

/* The AVX2 kernels against their plain-loop definition (conv2d_direct.c
 * built with NNKIT_NO_DIRECT, as on a CPU without AVX2; tests/meson.build
 * renames its functions portable_*). Shapes with row and tap tails. */
int portable_direct_available(void);
void portable_direct_corr(float *out, size_t ostride, size_t m, const float *in,
                          const int32_t *toff, size_t k, const float *wpk,
                          const float *init, size_t qr);
void portable_direct_dw(float *acc, const float *dy, size_t dystride, size_t m,
                        const float *in, const int32_t *toff, size_t k, size_t qr);
void portable_direct_copy_rows(float *dst, size_t dstride, const float *src,
                               size_t sstride, size_t rows, size_t n);
void portable_direct_row_sums(float *sum, const float *x, size_t rows, size_t n);

START_TEST(direct_kernels_match_portable_definition)
{
  ck_assert_int_eq(portable_direct_available(), 0);
  if (!nnkit__direct_available())
    return; /* this CPU runs the definition itself */
  enum { M = 7, K = 11, QR = 64, IN = 400, ROWS = 3, N = 13 };
  static float in[IN], wpk[8 * K], init[M], dy[M * QR];
  static float a[M * QR], b[M * QR], da[M * K], db[M * K];
  int32_t toff[K];
  tu_fill_uniform(in, IN, 31, -1, 1);
  tu_fill_uniform(wpk, 8 * K, 32, -1, 1);
  tu_fill_uniform(init, M, 33, -1, 1);
  tu_fill_uniform(dy, M * QR, 34, -1, 1);
  for (size_t t = 0; t < K; t++)
    toff[t] = (int32_t)(t * 29 % 300);
  /* 48, 56, 64 positions: whole 24-position blocks, then a last block of
   * 8 or 16; a row's positions past qr stay as they were. */
  for (size_t qr = 48; qr <= QR; qr += 8)
    for (int with_init = 0; with_init < 2; with_init++) {
      for (size_t i = 0; i < M * QR; i++)
        a[i] = b[i] = 7.0f;
      nnkit__direct_corr(a, QR, M, in, toff, K, wpk, with_init ? init : NULL, qr);
      portable_direct_corr(b, QR, M, in, toff, K, wpk, with_init ? init : NULL, qr);
      for (size_t i = 0; i < M * QR; i++)
        ck_assert_msg(fabsf(a[i] - b[i]) <= 1e-5f * (1 + fabsf(b[i])),
                      "corr[%zu] (qr %zu) %g vs %g", i, qr, (double)a[i], (double)b[i]);
      ck_assert(qr == QR || a[qr] == 7.0f);
    }
  for (size_t i = 0; i < M * K; i++)
    da[i] = db[i] = 0.5f; /* both accumulate */
  nnkit__direct_dw(da, dy, QR, M, in, toff, K, QR);
  portable_direct_dw(db, dy, QR, M, in, toff, K, QR);
  for (size_t i = 0; i < M * K; i++)
    ck_assert_msg(fabsf(da[i] - db[i]) <= 1e-4f * (1 + fabsf(db[i])), "dw[%zu] %g vs %g",
                  i, (double)da[i], (double)db[i]);
  float ra[ROWS] = {1, 2, 3}, rb[ROWS] = {1, 2, 3};
  nnkit__direct_row_sums(ra, in, ROWS, N);
  portable_direct_row_sums(rb, in, ROWS, N);
  for (size_t r = 0; r < ROWS; r++)
    ck_assert(fabsf(ra[r] - rb[r]) <= 1e-5f * (1 + fabsf(rb[r])));
  memset(a, 0, sizeof a);
  memset(b, 0, sizeof b);
  nnkit__direct_copy_rows(a, 20, in, 17, ROWS, N);
  portable_direct_copy_rows(b, 20, in, 17, ROWS, N);
  ck_assert(memcmp(a, b, sizeof a) == 0);
  ck_assert(a[20 + 12] == in[17 + 12] && a[20 + 13] == 0.0f);
  for (size_t n = 1; n <= 17; n += 4) { /* short rows, exact and overlapped ends */
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    nnkit__direct_copy_rows(a, 20, in, 17, ROWS, n);
    portable_direct_copy_rows(b, 20, in, 17, ROWS, n);
    ck_assert(memcmp(a, b, sizeof a) == 0);
    ck_assert(a[40 + n - 1] == in[34 + n - 1] && a[40 + n] == 0.0f);
  }
}
END_TEST

START_TEST(conv2d_direct_matches_naive_twin)
{
  /* Each path pinned in turn: nnkit's own (direct where it can run),
   * then the BLAS path on the same geometries, then the direct path
   * unavailable altogether. */
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_OWN));
  direct_cases(nnkit__direct_available());
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_BLAS));
  direct_cases(0);
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
  direct_cases(-1); /* whichever was measured faster */
  /* Geometries the direct path does not take. */
  check_conv_path(3, 9, 9, 4, 3, 3, 2, 2, 1, 1, 1, 2, 0); /* stride 2 */
  check_conv_path(2, 5, 5, 3, 3, 3, 1, 1, 3, 3, 1, 2, 0); /* padding >= kernel */
  nnkit__direct_force(0);
  direct_cases(0);
  nnkit__direct_force(-1);
}
END_TEST

/* A CNN's leading conv/ReLU/pool layers run slice by slice, on the
 * calling thread (one thread) or with each thread owning a share of the
 * batch (two and three threads): outputs are bitwise those of a
 * whole-batch run, gradients (summed per slice and thread) agree to
 * rounding and repeat bitwise; max pooling's argmax is kept per slice. */
static size_t run_sliced(int threads, size_t slice, size_t batch, const float *x,
                         const int32_t *labels, float *out, float *grads,
                         size_t grads_cap, float *dinput)
{
  ck_ok(nnkit_set_num_threads(threads));
  nnkit_net *net = make_net3(2, 9, 9, 21);
  ck_ok(nnkit_net_add_conv2d(net, 5, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, NNKIT_PAD_SAME, NNKIT_PAD_SAME));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 2, 2, 1, 1, 0));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_avgpool2d(net, 2, 2, 1, 1, 0, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_SOFTMAX));
  nnkit__net_force_slice(net, slice);
  net->want_dinput = 1;
  size_t outw = nnkit_net_output_size(net);
  for (int rep = 0; rep < 2; rep++) { /* partials are gathered and cleared */
    ck_ok(nnkit_net_forward(net, x, batch, out, batch * outw));
    ck_assert_uint_eq(net->slice_layers, slice == SIZE_MAX ? 0 : 7);
    ck_ok(nnkit_net_backward(net, labels, NULL, NULL));
  }
  size_t np = nnkit_net_num_params(net);
  ck_assert_uint_le(np, grads_cap);
  memcpy(grads, nnkit_net_grads(net), np * sizeof *grads);
  memcpy(dinput, net->dinput, batch * nnkit_net_input_size(net) * sizeof *dinput);
  nnkit_net_free(net);
  ck_ok(nnkit_set_num_threads(0));
  return np;
}

START_TEST(slice_wise_prefix_matches_whole_batch)
{
  enum { B = 10, IN = 2 * 9 * 9, NP = 4096 };
  static float x[B * IN], out[2][B * 3], g[2][NP], dx[2][B * IN];
  static float out2[B * 3], g2[NP], dx2[B * IN];
  int32_t labels[B];
  tu_fill_uniform(x, B * IN, 8, -1, 1);
  for (size_t i = 0; i < B; i++)
    labels[i] = (int32_t)(i % 3);
  size_t np = run_sliced(1, SIZE_MAX, B, x, labels, out[0], g[0], NP, dx[0]);
  for (int threads = 1; threads <= 3; threads++) {
    /* slices of 3 samples: 3, 3, 3, 1 on one thread; per-thread shares after */
    run_sliced(threads, 3, B, x, labels, out[1], g[1], NP, dx[1]);
    ck_assert_msg(memcmp(out[0], out[1], sizeof out[0]) == 0, "%d threads", threads);
    for (size_t i = 0; i < np; i++)
      ck_assert_msg(fabsf(g[0][i] - g[1][i]) <= 1e-5f * (1 + fabsf(g[0][i])),
                    "%d threads: grad[%zu] %g (whole) vs %g (sliced)", threads, i,
                    (double)g[0][i], (double)g[1][i]);
    for (size_t i = 0; i < B * IN; i++)
      ck_assert_msg(fabsf(dx[0][i] - dx[1][i]) <= 1e-6f * (1 + fabsf(dx[0][i])),
                    "%d threads: dinput[%zu] %g vs %g", threads, i, (double)dx[0][i],
                    (double)dx[1][i]);
    run_sliced(threads, 3, B, x, labels, out2, g2, NP, dx2);
    ck_assert(memcmp(out2, out[1], sizeof out2) == 0);
    ck_assert(memcmp(g2, g[1], np * sizeof *g2) == 0);
    ck_assert(memcmp(dx2, dx[1], sizeof dx2) == 0);
  }
}
END_TEST

START_TEST(conv2d_blas_matches_naive_twin)
{
  check_conv_twin(3, 9, 8, 5, 3, 3, 1, 1, 1, 1, 1, 4);
  check_conv_twin(2, 10, 7, 4, 5, 3, 2, 3, 2, 1, 1, 3);
  check_conv_twin(4, 6, 6, 3, 2, 2, 2, 2, 0, 0, 0, 5);
  check_conv_twin(1, 9, 9, 2, 4, 4, 3, 3, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1, 2);
  check_conv_twin(2, 5, 5, 3, 7, 7, 1, 1, NNKIT_PAD_SAME, 3, 1, 2); /* kernel > input */
  /* Large enough to be split over up to 3 threads (>= 150k multiply-adds
   * each), with 1, 2 and 3 threads: each matches the twin. */
  for (int t = 1; t <= 3; t++) {
    ck_ok(nnkit_set_num_threads(t));
    check_conv_twin(4, 10, 10, 6, 3, 3, 1, 1, 1, 1, 1, 9);
    check_conv_twin(3, 11, 9, 6, 3, 3, 2, 1, 1, NNKIT_PAD_SAME, 1, 13);
  }
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

/* Dense layers split over 1, 2 and 3 threads give the plain-loop twin's
 * values, and a run with a given thread count is bitwise repeatable. */
START_TEST(dense_threads_match_naive_twin)
{
  const size_t batch = 19, in = 90, out = 70; /* 120k multiply-adds */
  float *x = malloc(batch * in * sizeof *x), *dy = malloc(batch * out * sizeof *dy);
  float *y = malloc(batch * out * sizeof *y), *yn = malloc(batch * out * sizeof *yn);
  float *dx = malloc(batch * in * sizeof *dx), *dxn = malloc(batch * in * sizeof *dxn);
  float *dwn = malloc((in * out + out) * sizeof *dwn), *first = NULL;
  tu_fill_uniform(x, batch * in, 11, -1, 1);
  tu_fill_uniform(dy, batch * out, 12, -1, 1);
  for (int t = 1; t <= 3; t++) {
    ck_ok(nnkit_set_num_threads(t));
    for (int rep = 0; rep < 2; rep++) {
      nnkit_net *net = NULL;
      ck_ok(nnkit_net_create(&net, &in, 1, 3));
      ck_ok(nnkit_net_add_dense(net, out));
      float *p = nnkit_net_params(net);
      size_t np = nnkit_net_num_params(net);
      tu_fill_uniform(p, np, 13, -1, 1);
      ck_ok(nnkit_net_forward(net, x, batch, y, batch * out));
      nnkit__layer *l = &net->layers[0];
      memset(l->grads, 0, np * sizeof(float));
      l->ops->backward(l, x, y, dy, dx, batch);
      nnkit__dense_forward_naive(x, p, p + in * out, yn, batch, in, out);
      nnkit__dense_backward_naive(x, p, dy, dxn, dwn, dwn + in * out, batch, in, out);
      for (size_t i = 0; i < batch * out; i++)
        ck_assert_msg(fabsf(y[i] - yn[i]) <= 1e-4f * (1 + fabsf(yn[i])), "y[%zu]", i);
      for (size_t i = 0; i < batch * in; i++)
        ck_assert_msg(fabsf(dx[i] - dxn[i]) <= 1e-4f * (1 + fabsf(dxn[i])), "dx[%zu]", i);
      for (size_t i = 0; i < np; i++)
        ck_assert_msg(fabsf(l->grads[i] - dwn[i]) <= 1e-4f * (1 + fabsf(dwn[i])),
                      "dparam[%zu] with %d threads", i, t);
      if (rep == 0) {
        free(first);
        first = malloc(np * sizeof *first);
        memcpy(first, l->grads, np * sizeof *first);
      } else {
        ck_assert_mem_eq(first, l->grads, np * sizeof *first);
      }
      nnkit_net_free(net);
    }
  }
  ck_ok(nnkit_set_num_threads(0));
  free(first);
  free(x);
  free(dy);
  free(y);
  free(yn);
  free(dx);
  free(dxn);
  free(dwn);
}
END_TEST

START_TEST(golden_conv2d_vs_pytorch)
{
  const char *cases[] = {"conv_pad1", "conv_stride2x1", "conv_nobias", "conv_same",
                         "conv_same_stride2"};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    const char *f = cases[k];
    double *cf = fx(f, "config", NULL);
    size_t B = (size_t)cf[0], C = (size_t)cf[1], H = (size_t)cf[2], W = (size_t)cf[3];
    size_t OC = (size_t)cf[4], kh = (size_t)cf[5], kw = (size_t)cf[6];
    int bias = cf[11] != 0;
    nnkit_net *net = make_net3(C, H, W, 1);
    ck_ok(nnkit_net_add_conv2d(net, OC, kh, kw, (size_t)cf[7], (size_t)cf[8],
                               pad_arg(cf[9]), pad_arg(cf[10]), bias));
    size_t nx, nw, ny, ndy;
    float *x = fxf(f, "x", &nx), *w = fxf(f, "w", &nw), *dy = fxf(f, "dy", &ndy);
    float *p = nnkit_net_params(net);
    memcpy(p, w, nw * sizeof *p);
    if (bias) {
      size_t nb;
      float *b = fxf(f, "b", &nb);
      memcpy(p + nw, b, nb * sizeof *p);
      free(b);
    }
    ny = B * nnkit_net_output_size(net);
    ck_assert_uint_eq(ny, ndy);
    float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
    ck_ok(nnkit_net_forward(net, x, B, y, ny));
    ck_close(y, f, "y", ny, 1e-5);
    nnkit__layer *l = &net->layers[0];
    memset(l->grads, 0, l->num_params * sizeof(float));
    l->ops->backward(l, x, y, dy, dx, B);
    ck_close(dx, f, "dx", nx, 1e-5);
    ck_close(l->grads, f, "dw", nw, 1e-5);
    if (bias)
      ck_close(l->grads + nw, f, "db", OC, 1e-5);
    free(cf);
    free(x);
    free(w);
    free(dy);
    free(y);
    free(dx);
    nnkit_net_free(net);
  }
}
END_TEST

/* ---- pooling ------------------------------------------------------ */

static void golden_pool(const char *f, int max)
{
  double *cf = fx(f, "config", NULL);
  size_t B = (size_t)cf[0], C = (size_t)cf[1], H = (size_t)cf[2], W = (size_t)cf[3];
  nnkit_net *net = make_net3(C, H, W, 1);
  if (max)
    ck_ok(nnkit_net_add_maxpool2d(net, (size_t)cf[4], (size_t)cf[5], (size_t)cf[6],
                                  (size_t)cf[7], pad_arg(cf[8]), pad_arg(cf[9])));
  else
    ck_ok(nnkit_net_add_avgpool2d(net, (size_t)cf[4], (size_t)cf[5], (size_t)cf[6],
                                  (size_t)cf[7], pad_arg(cf[8]), pad_arg(cf[9])));
  size_t nx, ndy;
  float *x = fxf(f, "x", &nx), *dy = fxf(f, "dy", &ndy);
  size_t ny = B * nnkit_net_output_size(net);
  ck_assert_uint_eq(ny, ndy);
  float *y = malloc(ny * sizeof *y), *dx = malloc(nx * sizeof *dx);
  ck_ok(nnkit_net_forward(net, x, B, y, ny));
  ck_close(y, f, "y", ny, 1e-6);
  nnkit__layer *l = &net->layers[0];
  l->ops->backward(l, x, y, dy, dx, B);
  ck_close(dx, f, "dx", nx, 1e-6);
  free(cf);
  free(x);
  free(dy);
  free(y);
  free(dx);
  nnkit_net_free(net);
}

START_TEST(golden_pooling_vs_pytorch)
{
  golden_pool("maxpool_2x2", 1);
  golden_pool("maxpool_3s2p1", 1);
  golden_pool("maxpool_3x2", 1);
  golden_pool("avgpool_2x2", 0);
  golden_pool("avgpool_3s2p1", 0);
  golden_pool("avgpool_3x2", 0);
  /* global average pooling */
  const char *f = "gap";
  double *cf = fx(f, "config", NULL);
  size_t B = (size_t)cf[0];
  nnkit_net *net = make_net3((size_t)cf[1], (size_t)cf[2], (size_t)cf[3], 1);
  ck_ok(nnkit_net_add_global_avgpool(net));
  size_t nx, ndy;
  float *x = fxf(f, "x", &nx), *dy = fxf(f, "dy", &ndy);
  float y[64], dx[256];
  ck_assert_uint_eq(B * nnkit_net_output_size(net), ndy);
  ck_ok(nnkit_net_forward(net, x, B, y, ndy));
  ck_close(y, f, "y", ndy, 1e-6);
  nnkit__layer *l = &net->layers[0];
  l->ops->backward(l, x, y, dy, dx, B);
  ck_close(dx, f, "dx", nx, 1e-6);
  free(cf);
  free(x);
  free(dy);
  nnkit_net_free(net);
}
END_TEST

START_TEST(maxpool_ties_and_nan)
{
  /* Ties go to the first maximum (its gradient too); a NaN in a window
   * wins, as in PyTorch. Both the 2x2/2 fast path and the general one. */
  for (int general = 0; general < 2; general++) {
    nnkit_net *net = make_net3(1, 2, 4, 1);
    if (general)
      ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 2, 1, 0, 0)); /* 1 x 3 outputs */
    else
      ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0)); /* 1 x 2 outputs */
    float x[8] = {1, 3, NAN, 0, 3, 2, 5, 6}, y[3], dy[3] = {1, 1, 1}, dx[8];
    size_t ny = nnkit_net_output_size(net);
    ck_ok(nnkit_net_forward(net, x, 1, y, ny));
    ck_assert_float_eq(y[0], 3.0f);
    ck_assert(isnan(y[1]));
    nnkit__layer *l = &net->layers[0];
    l->ops->backward(l, x, y, dy, dx, 1);
    ck_assert_float_eq(dx[1], 1.0f); /* the first 3, not the one below */
    ck_assert_float_eq(dx[4], 0.0f);
    ck_assert(dx[2] >= 1.0f);        /* the NaN's position */
    nnkit_net_free(net);
  }
}
END_TEST

/* 2x2/2 with SAME padding on a 3x3 map: the last row and column windows
 * are clipped by the padding after the input (the fast path must not read
 * past the map). */
START_TEST(maxpool_same_padding_on_odd_size)
{
  nnkit_net *net = make_net3(1, 3, 3, 1);
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, NNKIT_PAD_SAME, NNKIT_PAD_SAME));
  ck_assert_uint_eq(nnkit_net_output_size(net), 4);
  float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, y[4];
  ck_ok(nnkit_net_forward(net, x, 1, y, 4));
  ck_assert_float_eq(y[0], 5.0f);
  ck_assert_float_eq(y[1], 6.0f);
  ck_assert_float_eq(y[2], 8.0f);
  ck_assert_float_eq(y[3], 9.0f);
  nnkit_net_free(net);
}
END_TEST

START_TEST(gradcheck_maxpool)
{
  /* Straight on the input with well-separated values, so no window's
   * maximum changes under the perturbation. */
  const size_t B = 2, C = 2, H = 6, W = 5;
  size_t cfg[3][6] = {{2, 2, 2, 2, 0, 0}, {3, 3, 2, 2, 1, 1}, {3, 2, 1, 2, 1, 0}};
  for (int k = 0; k < 3; k++) {
    nnkit_net *net = make_net3(C, H, W, 20 + k);
    size_t *c = cfg[k];
    ck_ok(nnkit_net_add_maxpool2d(net, c[0], c[1], c[2], c[3], c[4], c[5]));
    ck_ok(nnkit_net_add_dense(net, 3));
    float x[2 * 2 * 6 * 5];
    fill_spaced(x, B * C * H * W, 30 + k, 0.05f);
    int32_t labels[2] = {0, 2};
    tu_grad_check(net, x, B, labels, NULL);
    nnkit_net_free(net);
  }
}
END_TEST

START_TEST(gradcheck_avgpool_and_global)
{
  nnkit_net *net = make_net3(2, 7, 6, 40);
  ck_ok(nnkit_net_add_conv2d(net, 3, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_avgpool2d(net, 3, 3, 2, 2, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 3));
  grad_check_random(net, 2, 41);
  nnkit_net_free(net);

  net = make_net3(2, 5, 5, 42);
  ck_ok(nnkit_net_add_avgpool2d(net, 2, 3, 0, 0, NNKIT_PAD_SAME, NNKIT_PAD_SAME));
  ck_ok(nnkit_net_add_conv2d(net, 4, 2, 2, 1, 1, 0, 0, 1));
  ck_ok(nnkit_net_add_global_avgpool(net));
  ck_ok(nnkit_net_add_dense(net, 3));
  grad_check_random(net, 3, 43);
  nnkit_net_free(net);
}
END_TEST

/* ---- batch normalization ------------------------------------------ */

START_TEST(gradcheck_batchnorm_train)
{
  /* per feature, after a dense layer */
  size_t in = 4;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 50));
  ck_ok(nnkit_net_add_dense(net, 5));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 3));
  /* non-trivial gamma/beta */
  size_t off, cnt;
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert_uint_eq(cnt, 10);
  tu_fill_uniform(nnkit_net_params(net) + off, cnt, 51, 0.5f, 1.5f);
  grad_check_random(net, 6, 52);
  nnkit_net_free(net);

  /* per channel, after a convolution */
  net = make_net3(2, 5, 4, 53);
  ck_ok(nnkit_net_add_conv2d(net, 3, 3, 3, 1, 1, 1, 1, 0));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-3));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert_uint_eq(cnt, 6);
  tu_fill_uniform(nnkit_net_params(net) + off, cnt, 54, 0.5f, 1.5f);
  grad_check_random(net, 3, 55);
  /* and in evaluation mode (statistics fixed) */
  nnkit_net_set_training(net, 0);
  grad_check_random(net, 2, 56);
  nnkit_net_free(net);
}
END_TEST

static void golden_bn(const char *f)
{
  double *cf = fx(f, "config", NULL);
  size_t B = (size_t)cf[0], nd = (size_t)cf[1];
  size_t shape[3] = {(size_t)cf[2], (size_t)cf[3], (size_t)cf[4]};
  size_t C = shape[0];
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, nd, 1));
  ck_ok(nnkit_net_add_batchnorm(net, cf[5], cf[6]));
  float *p = nnkit_net_params(net);
  for (size_t c = 0; c < C; c++) /* gamma = 1, beta = 0 by default */
    ck_assert(p[c] == 1.0f && p[C + c] == 0.0f);
  size_t nx, ng;
  float *x = fxf(f, "x", &nx), *gamma = fxf(f, "gamma", &ng), *beta = fxf(f, "beta", NULL);
  float *dy = fxf(f, "dy", NULL);
  memcpy(p, gamma, C * sizeof *p);
  memcpy(p + C, beta, C * sizeof *p);
  float *y = malloc(nx * sizeof *y), *dx = malloc(nx * sizeof *dx);
  float *rm = malloc(C * sizeof *rm), *rv = malloc(C * sizeof *rv);
  nnkit__layer *l = &net->layers[0];
  /* training mode */
  ck_ok(nnkit_net_forward(net, x, B, y, nx));
  ck_close(y, f, "y", nx, 2e-5);
  memset(l->grads, 0, 2 * C * sizeof(float));
  l->ops->backward(l, x, y, dy, dx, B);
  ck_close(dx, f, "dx", nx, 1e-4);
  ck_close(l->grads, f, "dgamma", C, 2e-5);
  ck_close(l->grads + C, f, "dbeta", C, 2e-5);
  ck_ok(nnkit_net_batchnorm_stats(rm, rv, C, net, 0));
  ck_close(rm, f, "run_mean", C, 2e-6);
  ck_close(rv, f, "run_var", C, 2e-6);
  /* evaluation mode with given running statistics */
  float *erm = fxf(f, "rm", NULL), *erv = fxf(f, "rv", NULL);
  ck_ok(nnkit_net_set_batchnorm_stats(net, 0, erm, erv, C));
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, B, y, nx));
  ck_close(y, f, "ey", nx, 2e-5);
  memset(l->grads, 0, 2 * C * sizeof(float));
  l->ops->backward(l, x, y, dy, dx, B);
  ck_close(dx, f, "edx", nx, 2e-5);
  ck_close(l->grads, f, "edgamma", C, 2e-5);
  ck_close(l->grads + C, f, "edbeta", C, 2e-5);
  /* evaluation mode leaves the running statistics alone */
  ck_ok(nnkit_net_batchnorm_stats(rm, rv, C, net, 0));
  ck_assert_mem_eq(rm, erm, C * sizeof(float));
  ck_assert_mem_eq(rv, erv, C * sizeof(float));
  free(cf);
  free(x);
  free(gamma);
  free(beta);
  free(dy);
  free(y);
  free(dx);
  free(rm);
  free(rv);
  free(erm);
  free(erv);
  nnkit_net_free(net);
}

START_TEST(golden_batchnorm_vs_pytorch)
{
  golden_bn("bn_dense");
  golden_bn("bn_conv");
}
END_TEST

/* Batch norm splits its channels over the threads: outputs, dx, the
 * parameter gradients and the running statistics are bitwise those of
 * one thread at 2 and 3 threads. */
_Static_assert(4.0 * 10 * 13 * 18 * 18 >= 1.5e5, "3 tasks' worth (nnkit__tasks_for)");
static void bn_run(int threads, float *y, float *dx, float *g, float *run)
{
  enum { B = 10, C = 13, H = 18, W = 18 }; /* enough work for 3 tasks */
  ck_ok(nnkit_set_num_threads(threads));
  nnkit_net *net = make_net3(C, H, W, 21);
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 4));
  static float x[B * C * H * W];
  int32_t lab[B] = {0, 1, 2, 3, 1, 0, 3, 2, 2, 1};
  tu_fill_uniform(x, B * C * H * W, 22, -2, 3);
  tu_fill_uniform(nnkit_net_params(net) + 2 * C, nnkit_net_num_params(net) - 2 * C, 23,
                  -0.3f, 0.3f);
  net->want_dinput = 1;
  nnkit_net_set_training(net, 1);
  ck_ok(nnkit_net_forward(net, x, B, NULL, 0));
  ck_ok(nnkit_net_backward(net, lab, NULL, NULL));
  memcpy(y, net->acts[0], sizeof(float) * B * C * H * W);
  memcpy(dx, net->dinput, sizeof(float) * B * C * H * W);
  memcpy(g, nnkit_net_grads(net), sizeof(float) * 2 * C);
  nnkit__tensor t[4];
  size_t n = net->layers[0].ops->tensors(&net->layers[0], t);
  ck_assert_uint_eq(n, 4); /* gamma, beta, running mean, running var */
  memcpy(run, t[2].data, sizeof(float) * C);
  memcpy(run + C, t[3].data, sizeof(float) * C);
  nnkit_net_free(net);
}

START_TEST(batchnorm_threads_bitwise)
{
  enum { N = 10 * 13 * 18 * 18 };
  static float y1[N], dx1[N], y2[N], dx2[N];
  float g1[26], g2[26], r1[26], r2[26];
  /* the dense layer's kernels pinned: measured choices may differ per
   * thread count (the keys hold it), and this test is about batch norm */
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_OWN));
  bn_run(1, y1, dx1, g1, r1);
  for (int t = 2; t <= 3; t++) {
    bn_run(t, y2, dx2, g2, r2);
    ck_assert_mem_eq(y1, y2, sizeof y1);
    ck_assert_mem_eq(dx1, dx2, sizeof dx1);
    ck_assert_mem_eq(g1, g2, sizeof g1);
    ck_assert_mem_eq(r1, r2, sizeof r1);
  }
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

START_TEST(batchnorm_running_stats_closed_form)
{
  /* N batches through a per-channel batch norm with momentum m; the
   * running statistics must equal
   *   mean_N = sum_k m (1 - m)^(N - k) mean_k,
   *   var_N  = (1 - m)^N + sum_k m (1 - m)^(N - k) n / (n - 1) var_k. */
  enum { N = 6, B = 4, C = 3, H = 2, W = 3, S = H * W };
  const double m = 0.3;
  nnkit_net *net = make_net3(C, H, W, 60);
  ck_ok(nnkit_net_add_batchnorm(net, m, 1e-5));
  float x[B * C * S];
  double want_mean[C] = {0}, want_var[C] = {0};
  for (int c = 0; c < C; c++)
    want_var[c] = pow(1 - m, N);
  for (int k = 1; k <= N; k++) {
    tu_fill_uniform(x, B * C * S, 100 + (uint64_t)k, -1.0f + 0.3f * (float)k, 2.0f * (float)k);
    ck_ok(nnkit_net_forward(net, x, B, NULL, 0));
    double w = m * pow(1 - m, N - k);
    for (int c = 0; c < C; c++) {
      double s = 0, s2 = 0;
      for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++)
          s += x[(b * C + c) * S + i];
      double mean = s / (B * S);
      for (int b = 0; b < B; b++)
        for (int i = 0; i < S; i++) {
          double d = x[(b * C + c) * S + i] - mean;
          s2 += d * d;
        }
      want_mean[c] += w * mean;
      want_var[c] += w * s2 / (B * S - 1);
    }
  }
  float rm[C], rv[C];
  ck_ok(nnkit_net_batchnorm_stats(rm, rv, C, net, 0));
  for (int c = 0; c < C; c++) {
    ck_assert_double_eq_tol(rm[c], want_mean[c], 1e-5 * (1 + fabs(want_mean[c])));
    ck_assert_double_eq_tol(rv[c], want_var[c], 1e-5 * (1 + fabs(want_var[c])));
  }
  /* Evaluation mode: y = gamma (x - rm) / sqrt(rv + eps) + beta. */
  float *p = nnkit_net_params(net);
  for (int c = 0; c < C; c++) {
    p[c] = 0.5f + (float)c;
    p[C + c] = -0.25f * (float)c;
  }
  float y[B * C * S];
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, B, y, B * C * S));
  for (int b = 0; b < B; b++)
    for (int c = 0; c < C; c++)
      for (int i = 0; i < S; i++) {
        size_t j = (size_t)((b * C + c) * S + i);
        double want = p[c] * (x[j] - rm[c]) / sqrt(rv[c] + 1e-5) + p[C + c];
        ck_assert_double_eq_tol(y[j], want, 1e-5 * (1 + fabs(want)));
      }
  /* Evaluation forwards do not move the statistics. */
  float rm2[C], rv2[C];
  ck_ok(nnkit_net_batchnorm_stats(rm2, rv2, C, net, 0));
  ck_assert_mem_eq(rm, rm2, sizeof rm);
  ck_assert_mem_eq(rv, rv2, sizeof rv);
  /* Training mode output is normalized: per channel mean 0 and biased
   * variance 1 / (1 + eps / var) before gamma/beta. */
  for (int c = 0; c < C; c++) {
    p[c] = 1.0f;
    p[C + c] = 0.0f;
  }
  nnkit_net_set_training(net, 1);
  ck_ok(nnkit_net_forward(net, x, B, y, B * C * S));
  for (int c = 0; c < C; c++) {
    double s = 0, s2 = 0;
    for (int b = 0; b < B; b++)
      for (int i = 0; i < S; i++) {
        s += y[(b * C + c) * S + i];
        s2 += (double)y[(b * C + c) * S + i] * y[(b * C + c) * S + i];
      }
    ck_assert_double_eq_tol(s / (B * S), 0.0, 1e-5);
    ck_assert_double_eq_tol(s2 / (B * S), 1.0, 1e-3);
  }
  nnkit_net_free(net);
}
END_TEST

START_TEST(batchnorm_stats_api)
{
  size_t in = 3;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 4));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  float m[4], v[4];
  ck_ok(nnkit_net_batchnorm_stats(m, v, 4, net, 1));
  for (int i = 0; i < 4; i++) {
    ck_assert_float_eq(m[i], 0.0f); /* initial running mean 0, variance 1 */
    ck_assert_float_eq(v[i], 1.0f);
  }
  ck_fails(nnkit_net_batchnorm_stats(m, v, 3, net, 1), NNKIT_E_INVALID, "4 channels");
  ck_fails(nnkit_net_batchnorm_stats(m, v, 4, net, 0), NNKIT_E_INVALID,
           "not batch normalization");
  ck_fails(nnkit_net_batchnorm_stats(m, v, 4, net, 2), NNKIT_E_INVALID, "layer 2");
  ck_fails(nnkit_net_batchnorm_stats(NULL, v, 4, net, 1), NNKIT_E_INVALID, "NULL");
  float nm[4] = {1, 2, 3, 4}, nv[4] = {0.5f, 1, 0, 2};
  ck_ok(nnkit_net_set_batchnorm_stats(net, 1, nm, nv, 4));
  ck_ok(nnkit_net_batchnorm_stats(m, v, 4, net, 1));
  ck_assert_mem_eq(m, nm, sizeof m);
  ck_assert_mem_eq(v, nv, sizeof v);
  nv[2] = -1;
  ck_fails(nnkit_net_set_batchnorm_stats(net, 1, nm, nv, 4), NNKIT_E_INVALID,
           "variance");
  nv[2] = 1;
  nm[0] = NAN;
  ck_fails(nnkit_net_set_batchnorm_stats(net, 1, nm, nv, 4), NNKIT_E_INVALID, "finite");
  nm[0] = 0;
  ck_fails(nnkit_net_set_batchnorm_stats(net, 1, nm, nv, 3), NNKIT_E_INVALID,
           "4 channels");
  ck_fails(nnkit_net_set_batchnorm_stats(net, 0, nm, nv, 4), NNKIT_E_INVALID,
           "dense");
  ck_fails(nnkit_net_set_batchnorm_stats(net, 1, NULL, nv, 4), NNKIT_E_INVALID, "NULL");
  /* the rejected calls changed nothing */
  ck_ok(nnkit_net_batchnorm_stats(m, v, 4, net, 1));
  ck_assert_float_eq(m[0], 1.0f);
  ck_assert_float_eq(v[2], 0.0f);
  ck_fails(nnkit_net_add_batchnorm(net, 1.5, 1e-5), NNKIT_E_INVALID, "momentum");
  ck_fails(nnkit_net_add_batchnorm(net, -0.1, 1e-5), NNKIT_E_INVALID, "momentum");
  ck_fails(nnkit_net_add_batchnorm(net, 0.1, 0), NNKIT_E_INVALID, "eps");
  ck_fails(nnkit_net_add_batchnorm(net, 0.1, NAN), NNKIT_E_INVALID, "eps");
  ck_fails(nnkit_net_add_batchnorm(NULL, 0.1, 1e-5), NNKIT_E_INVALID, "NULL");
  /* gamma/beta are not weights: no initializer can be set */
  ck_fails(nnkit_net_set_init(net, 1, NULL, NULL), NNKIT_E_INVALID, "layer 1");
  ck_assert_uint_eq(nnkit_net_num_layers(net), 2);
  /* nnkit_net_init_params resets gamma/beta to 1/0 */
  float *p = nnkit_net_params(net);
  p[16] = 7;
  p[16 + 4] = 7;
  ck_ok(nnkit_net_init_params(net));
  ck_assert_float_eq(p[16], 1.0f);
  ck_assert_float_eq(p[16 + 4], 0.0f);
  nnkit_net_free(net);
}
END_TEST

/* ---- dropout ------------------------------------------------------ */

START_TEST(gradcheck_dropout_fixed_mask)
{
  size_t in = 5;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 70));
  ck_ok(nnkit_net_add_dense(net, 8));
  ck_ok(nnkit_net_add_dropout(net, 0.4));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 3));
  nnkit__dropout_freeze(&net->layers[1], 1);
  grad_check_random(net, 4, 71);
  nnkit_net_free(net);

  net = make_net3(2, 4, 4, 72);
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_spatial_dropout(net, 0.5));
  ck_ok(nnkit_net_add_dense(net, 3));
  nnkit__dropout_freeze(&net->layers[1], 1);
  grad_check_random(net, 3, 73);
  nnkit_net_free(net);
}
END_TEST

START_TEST(dropout_statistics)
{
  const size_t n = 1000, B = 100, N = n * B;
  const double p = 0.3;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &n, 1, 80));
  ck_ok(nnkit_net_add_dropout(net, p));
  ck_assert_str_eq(nnkit_net_layer_describe(net, 0), "dropout p=0.3 1000");
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  float *y2 = malloc(N * sizeof *y2);
  tu_fill_uniform(x, N, 81, 0.5f, 1.5f);
  /* evaluation mode: identity */
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, B, y, N));
  ck_assert_mem_eq(x, y, N * sizeof *x);
  /* training mode: zeros with frequency p, kept values scaled exactly */
  nnkit_net_set_training(net, 1);
  ck_ok(nnkit_net_forward(net, x, B, y, N));
  size_t zeros = 0;
  double sx = 0, sy = 0;
  const float scale = (float)(1.0 / (1.0 - p));
  for (size_t i = 0; i < N; i++) {
    sx += x[i];
    sy += y[i];
    if (y[i] == 0.0f)
      zeros++;
    else
      ck_assert_msg(y[i] == x[i] * scale, "kept value %zu not scaled", i);
  }
  /* 100,000 Bernoulli(0.3): std of the fraction 0.00145; allow 5 std */
  ck_assert_double_eq_tol((double)zeros / (double)N, p, 0.0073);
  /* expected value preserved: within 5 standard errors (about 0.6%) */
  ck_assert_double_eq_tol(sy / sx, 1.0, 0.01);
  /* backward multiplies by the same mask */
  float *dx = malloc(N * sizeof *dx);
  nnkit__layer *l = &net->layers[0];
  l->ops->backward(l, x, y, x, dx, B);
  for (size_t i = 0; i < N; i++)
    ck_assert(dx[i] == y[i]);
  /* a new mask every forward */
  ck_ok(nnkit_net_forward(net, x, B, y2, N));
  ck_assert(memcmp(y, y2, N * sizeof *y) != 0);
  /* the same seed replays the same masks */
  nnkit_net *twin = NULL;
  ck_ok(nnkit_net_create(&twin, &n, 1, 80));
  ck_ok(nnkit_net_add_dropout(twin, p));
  ck_ok(nnkit_net_forward(twin, x, B, dx, N));
  ck_assert_mem_eq(dx, y, N * sizeof *y);
  ck_ok(nnkit_net_forward(twin, x, B, dx, N));
  ck_assert_mem_eq(dx, y2, N * sizeof *y);
  /* p = 0 is the identity in training mode too */
  nnkit_net_free(twin);
  ck_ok(nnkit_net_create(&twin, &n, 1, 80));
  ck_ok(nnkit_net_add_dropout(twin, 0.0));
  ck_ok(nnkit_net_forward(twin, x, B, dx, N));
  ck_assert_mem_eq(dx, x, N * sizeof *x);
  nnkit_net_free(twin);
  free(x);
  free(y);
  free(y2);
  free(dx);
  nnkit_net_free(net);
}
END_TEST

START_TEST(spatial_dropout_drops_whole_channels)
{
  enum { B = 50, C = 40, H = 3, W = 4, S = H * W, N = B * C * S };
  const double p = 0.5;
  nnkit_net *net = make_net3(C, H, W, 90);
  ck_ok(nnkit_net_add_spatial_dropout(net, p));
  ck_assert_str_eq(nnkit_net_layer_describe(net, 0), "spatial_dropout p=0.5 40x3x4");
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  tu_fill_uniform(x, N, 91, 0.5f, 1.5f);
  ck_ok(nnkit_net_forward(net, x, B, y, N));
  size_t dropped = 0;
  for (size_t m = 0; m < B * C; m++) {
    int zero = y[m * S] == 0.0f;
    dropped += (size_t)zero;
    for (size_t k = 0; k < S; k++)
      ck_assert(zero ? y[m * S + k] == 0.0f : y[m * S + k] == x[m * S + k] * 2.0f);
  }
  /* 2,000 channels: std of the fraction 0.011; allow 5 std */
  ck_assert_double_eq_tol((double)dropped / (B * C), p, 0.056);
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, B, y, N));
  ck_assert_mem_eq(x, y, N * sizeof *x);
  ck_fails(nnkit_net_add_dropout(net, 1.0), NNKIT_E_INVALID, "[0, 1)");
  ck_fails(nnkit_net_add_dropout(net, -0.1), NNKIT_E_INVALID, "[0, 1)");
  ck_fails(nnkit_net_add_spatial_dropout(net, NAN), NNKIT_E_INVALID, "[0, 1)");
  ck_fails(nnkit_net_add_dropout(NULL, 0.5), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_add_spatial_dropout(NULL, 0.5), NNKIT_E_INVALID, "NULL");
  free(x);
  free(y);
  nnkit_net_free(net);
}
END_TEST

START_TEST(predict_runs_in_evaluation_mode)
{
  /* With dropout and batch norm, predict and evaluate are deterministic
   * and equal an evaluation-mode forward; the mode is restored. */
  enum { B = 20 };
  nnkit_net *net = make_net3(1, 6, 6, 95);
  ck_ok(nnkit_net_add_conv2d(net, 3, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_spatial_dropout(net, 0.5));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dropout(net, 0.5));
  ck_ok(nnkit_net_add_dense(net, 4));
  float x[B * 36], pa[B * 4], pb[B * 4], ye[B * 4];
  tu_fill_uniform(x, B * 36, 96, -1, 1);
  ck_ok(nnkit_net_forward(net, x, B, NULL, 0)); /* moves running stats */
  ck_ok(nnkit_net_predict_proba(pa, B * 4, net, x, B));
  ck_ok(nnkit_net_predict_proba(pb, B * 4, net, x, B));
  ck_assert_mem_eq(pa, pb, sizeof pa);
  ck_assert_int_eq(nnkit_net_is_training(net), 1);
  nnkit_net_set_training(net, 0);
  ck_ok(nnkit_net_forward(net, x, B, ye, B * 4));
  float se[B * 4];
  nnkit__softmax_rows(ye, se, B, 4);
  for (int i = 0; i < B * 4; i++)
    ck_assert_float_eq_tol(pa[i], se[i], 1e-6);
  nnkit_net_free(net);
}
END_TEST

/* ---- shapes, descriptions, errors --------------------------------- */

START_TEST(shapes_and_descriptions)
{
  nnkit_net *net = make_net3(1, 28, 28, 1);
  ck_ok(nnkit_net_add_conv2d(net, 8, 5, 5, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  ck_ok(nnkit_net_add_conv2d(net, 16, 3, 3, 2, 1, 1, 0, 0));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_avgpool2d(net, 3, 3, 2, 2, 1, 1));
  ck_ok(nnkit_net_add_spatial_dropout(net, 0.2));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dropout(net, 0.5));
  ck_ok(nnkit_net_add_dense(net, 10));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  const char *want[] = {
    "conv2d 1x28x28 -> 8x28x28, kernel 5x5, stride 1, pad same (208 params)",
    "relu 6272",
    "maxpool2d 8x28x28 -> 8x14x14, kernel 2x2, stride 2, pad 0",
    "conv2d 8x14x14 -> 16x7x12, kernel 3x3, stride 2x1, pad 1x0, no bias (1152 params)",
    "batchnorm 16 channels of 7x12, momentum 0.1, eps 1e-05 (32 params)",
    "avgpool2d 16x7x12 -> 16x4x6, kernel 3x3, stride 2, pad 1",
    "spatial_dropout p=0.2 16x4x6",
    "flatten 16x4x6 -> 384",
    "dropout p=0.5 384",
    "dense 384 -> 10 (3850 params)",
    "batchnorm 10 features, momentum 0.1, eps 1e-05 (20 params)",
  };
  ck_assert_uint_eq(nnkit_net_num_layers(net), 11);
  for (size_t i = 0; i < 11; i++)
    ck_assert_str_eq(nnkit_net_layer_describe(net, i), want[i]);
  size_t dims[3], nd;
  ck_ok(nnkit_net_layer_shape(dims, 3, &nd, net, 3));
  ck_assert_uint_eq(nd, 3);
  ck_assert(dims[0] == 16 && dims[1] == 7 && dims[2] == 12);
  ck_ok(nnkit_net_layer_shape(dims, 3, &nd, net, 7));
  ck_assert(nd == 1 && dims[0] == 384);
  ck_assert_uint_eq(nnkit_net_num_params(net), 208 + 1152 + 32 + 3850 + 20);
  ck_assert_uint_eq(nnkit_net_output_size(net), 10);
  /* conv parameters: weights [8, 1, 5, 5] then bias */
  size_t off, cnt;
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 0));
  ck_assert(off == 0 && cnt == 208);
  /* global average pooling and a 2-D input taken as one channel */
  nnkit_net *g = NULL;
  size_t hw[2] = {5, 7};
  ck_ok(nnkit_net_create(&g, hw, 2, 1));
  ck_ok(nnkit_net_add_conv2d(g, 6, 3, 3, 1, 1, 0, 0, 1));
  ck_ok(nnkit_net_add_global_avgpool(g));
  ck_assert_str_eq(nnkit_net_layer_describe(g, 0),
                   "conv2d 5x7 -> 6x3x5, kernel 3x3, stride 1, pad 0 (60 params)");
  ck_assert_str_eq(nnkit_net_layer_describe(g, 1), "global_avgpool 6x3x5 -> 6");
  ck_assert_uint_eq(nnkit_net_output_size(g), 6);
  nnkit_net_free(g);
  nnkit_net_free(net);
}
END_TEST

START_TEST(shape_errors_at_add_time)
{
  nnkit_net *net = make_net3(1, 3, 3, 1);
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_fails(nnkit_net_add_conv2d(net, 4, 5, 5, 1, 1, 0, 0, 1), NNKIT_E_SHAPE,
           "conv2d (layer 1): kernel 5x5 does not fit input 3x3 with padding 0");
  ck_assert_uint_eq(nnkit_net_num_layers(net), 1); /* unchanged */
  ck_ok(nnkit_net_add_conv2d(net, 4, 5, 5, 1, 1, 1, 1, 1)); /* fits with pad 1 */
  ck_ok(nnkit_net_add_conv2d(net, 2, 5, 5, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_fails(nnkit_net_add_maxpool2d(net, 4, 4, 0, 0, 0, 0), NNKIT_E_SHAPE,
           "maxpool2d (layer 3): kernel 4x4 does not fit input 1x1 with padding 0");
  ck_fails(nnkit_net_add_avgpool2d(net, 2, 3, 1, 1, 1, 0), NNKIT_E_SHAPE,
           "avgpool2d (layer 3): kernel 2x3 does not fit input 1x1 with padding 1x0");
  ck_assert_uint_eq(nnkit_net_num_layers(net), 3);
  ck_ok(nnkit_net_add_dense(net, 4));
  ck_fails(nnkit_net_add_conv2d(net, 4, 1, 1, 1, 1, 0, 0, 1), NNKIT_E_SHAPE,
           "conv2d (layer 4): needs feature maps [channels, height, width], got an "
           "input of shape [4]");
  ck_fails(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0), NNKIT_E_SHAPE,
           "maxpool2d (layer 4): needs feature maps");
  ck_fails(nnkit_net_add_global_avgpool(net), NNKIT_E_SHAPE,
           "global_avgpool (layer 4): needs feature maps");
  ck_fails(nnkit_net_add_spatial_dropout(net, 0.1), NNKIT_E_SHAPE,
           "spatial_dropout (layer 4)");
  ck_assert_uint_eq(nnkit_net_num_layers(net), 4);
  ck_ok(nnkit_net_add_flatten(net)); /* anything flattens */
  ck_ok(nnkit_net_add_dropout(net, 0.5));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  nnkit_net_free(net);
}
END_TEST

START_TEST(invalid_arguments)
{
  nnkit_net *net = make_net3(2, 8, 8, 1);
  ck_fails(nnkit_net_add_conv2d(net, 0, 3, 3, 1, 1, 0, 0, 1), NNKIT_E_INVALID,
           "output channels");
  ck_fails(nnkit_net_add_conv2d(net, 4, 0, 3, 1, 1, 0, 0, 1), NNKIT_E_INVALID, "kernel");
  ck_fails(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 0, 0, 0, 1), NNKIT_E_INVALID, "stride");
  ck_fails(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 70000, 0, 1), NNKIT_E_INVALID,
           "padding");
  ck_fails(nnkit_net_add_conv2d(net, (size_t)1 << 20, 3, 3, 1, 1, 0, 0, 1),
           NNKIT_E_INVALID, "2^16");
  ck_fails(nnkit_net_add_conv2d(NULL, 4, 3, 3, 1, 1, 0, 0, 1), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 2, 0), NNKIT_E_INVALID,
           "more than half");
  ck_fails(nnkit_net_add_avgpool2d(net, 0, 2, 2, 2, 0, 0), NNKIT_E_INVALID, "kernel");
  ck_fails(nnkit_net_add_maxpool2d(NULL, 2, 2, 2, 2, 0, 0), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_add_avgpool2d(NULL, 2, 2, 2, 2, 0, 0), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_add_global_avgpool(NULL), NNKIT_E_INVALID, "NULL");
  ck_fails(nnkit_net_add_flatten(NULL), NNKIT_E_INVALID, "NULL");
  ck_assert_uint_eq(nnkit_net_num_layers(net), 0);
  nnkit_net_free(net);
}
END_TEST

/* ---- memory -------------------------------------------------------- */

static nnkit_net *small_cnn(uint64_t seed)
{
  nnkit_net *net = make_net3(1, 8, 8, seed);
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 1, 1, 0));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  ck_ok(nnkit_net_add_spatial_dropout(net, 0.1));
  ck_ok(nnkit_net_add_conv2d(net, 6, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_avgpool2d(net, 2, 2, 0, 0, 0, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dropout(net, 0.2));
  ck_ok(nnkit_net_add_dense(net, 2));
  return net;
}

START_TEST(cnn_allocates_nothing_after_first_batch)
{
  nnkit_net *net = small_cnn(1);
  float x[16 * 64];
  int32_t y[16];
  tu_fill_uniform(x, 16 * 64, 2, -1, 1);
  for (int i = 0; i < 16; i++)
    y[i] = i % 2;
  ck_ok(nnkit_net_forward(net, x, 16, NULL, 0));
  ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  uint64_t before = nnkit__alloc_count();
  for (int i = 0; i < 10; i++) {
    nnkit_net_set_training(net, i % 3 != 2);
    ck_ok(nnkit_net_forward(net, x, 16 - (size_t)(i % 5), NULL, 0));
    ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  }
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  nnkit_net_free(net);
}
END_TEST

START_TEST(cnn_survives_allocation_failures)
{
  for (uint64_t k = 1; k < 60; k++) {
    nnkit_net *net = NULL;
    size_t shape[3] = {1, 6, 6};
    nnkit__alloc_fail_after(k);
    nnkit_status st = nnkit_net_create(&net, shape, 3, 1);
    if (st == NNKIT_OK)
      st = nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, 1, 1, 1);
    if (st == NNKIT_OK)
      st = nnkit_net_add_batchnorm(net, 0.1, 1e-5);
    if (st == NNKIT_OK)
      st = nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0);
    if (st == NNKIT_OK)
      st = nnkit_net_add_avgpool2d(net, 3, 3, 1, 1, 1, 1);
    if (st == NNKIT_OK)
      st = nnkit_net_add_spatial_dropout(net, 0.5);
    if (st == NNKIT_OK)
      st = nnkit_net_add_global_avgpool(net);
    if (st == NNKIT_OK)
      st = nnkit_net_add_flatten(net);
    if (st == NNKIT_OK)
      st = nnkit_net_add_dropout(net, 0.5);
    float x[2 * 36] = {0};
    if (st == NNKIT_OK)
      st = nnkit_net_forward(net, x, 2, NULL, 0);
    nnkit__alloc_fail_after(0);
    ck_assert(st == NNKIT_OK || st == NNKIT_E_NOMEM);
    if (st == NNKIT_E_NOMEM)
      ck_assert(strstr(nnkit_last_error(), "memory") != NULL);
    else if (net) /* and the net still works afterwards */
      ck_ok(nnkit_net_forward(net, x, 2, NULL, 0));
    nnkit_net_free(net);
  }
}
END_TEST

/* ---- behaviour ----------------------------------------------------- */

/* 8x8 images with one bright horizontal (class 0) or vertical (class 1)
 * bar at a random position, plus noise. */
static nnkit_dataset *bars(size_t n, uint64_t seed)
{
  float *x = calloc(n * 64, sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) {
    int cls = (int)(i % 2);
    size_t pos = (size_t)nnkit__rng_below(&r, 8);
    for (size_t k = 0; k < 64; k++)
      x[i * 64 + k] = (float)(0.2 * nnkit__rng_normal(&r));
    for (size_t k = 0; k < 8; k++)
      x[i * 64 + (cls ? k * 8 + pos : pos * 8 + k)] += 1.0f;
    y[i] = cls;
  }
  size_t shape[3] = {1, 8, 8};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 3, 2));
  free(x);
  free(y);
  return ds;
}

static double train_cnn(nnkit_net *net, const nnkit_dataset *train,
                        const nnkit_dataset *test, size_t epochs)
{
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_fit(tr, train, NULL));
  double acc;
  ck_ok(nnkit_net_evaluate(NULL, &acc, net, test));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  return acc;
}

START_TEST(small_cnn_learns_bars)
{
  nnkit_dataset *train = bars(400, 1), *test = bars(200, 2);
  nnkit_net *net = make_net3(1, 8, 8, 3);
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 2));
  double acc = train_cnn(net, train, test, 15);
  ck_assert_msg(acc >= 0.95, "plain CNN test accuracy %.3f", acc);
  nnkit_net_free(net);
  /* with batch norm, spatial dropout and dropout (evaluated with the
   * running statistics and without dropout) */
  net = small_cnn(4);
  acc = train_cnn(net, train, test, 15);
  ck_assert_msg(acc >= 0.95, "regularized CNN test accuracy %.3f", acc);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

START_TEST(training_is_reproducible)
{
  /* Same seed: bitwise-identical parameters after training with dropout
   * and batch norm; another seed differs. */
  nnkit_dataset *train = bars(64, 5), *test = bars(16, 6);
  nnkit_net *a = small_cnn(7), *b = small_cnn(7), *c = small_cnn(8);
  train_cnn(a, train, test, 2);
  train_cnn(b, train, test, 2);
  train_cnn(c, train, test, 2);
  size_t np = nnkit_net_num_params(a);
  ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
  ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(c), np * sizeof(float)) != 0);
  nnkit_net_free(a);
  nnkit_net_free(b);
  nnkit_net_free(c);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
}
END_TEST

/* ---- layer normalization ------------------------------------------ */

START_TEST(gradcheck_layernorm)
{
  /* over a flat sample, between dense layers */
  size_t in = 4;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 60));
  ck_ok(nnkit_net_add_dense(net, 5));
  ck_ok(nnkit_net_add_layernorm(net, 1e-5));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 3));
  size_t off, cnt;
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert_uint_eq(cnt, 10);
  tu_fill_uniform(nnkit_net_params(net) + off, cnt, 61, 0.5f, 1.5f);
  grad_check_random(net, 3, 62);
  /* evaluation mode computes the same function */
  nnkit_net_set_training(net, 0);
  grad_check_random(net, 2, 63);
  nnkit_net_free(net);

  /* over a whole feature map after a convolution */
  net = make_net3(2, 4, 3, 64);
  ck_ok(nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, 1, 1, 1));
  ck_ok(nnkit_net_add_layernorm(net, 1e-3));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert_uint_eq(cnt, 2 * 2 * 4 * 3);
  tu_fill_uniform(nnkit_net_params(net) + off, cnt, 65, 0.5f, 1.5f);
  grad_check_random(net, 2, 66);
  nnkit_net_free(net);
}
END_TEST

static void golden_ln(const char *f)
{
  double *cf = fx(f, "config", NULL);
  size_t B = (size_t)cf[0], nd = (size_t)cf[1];
  size_t shape[3] = {(size_t)cf[2], (size_t)cf[3], (size_t)cf[4]};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, nd, 1));
  ck_ok(nnkit_net_add_layernorm(net, cf[5]));
  size_t N = nnkit_net_input_size(net);
  float *p = nnkit_net_params(net);
  for (size_t i = 0; i < N; i++) /* gamma = 1, beta = 0 by default */
    ck_assert(p[i] == 1.0f && p[N + i] == 0.0f);
  size_t nx, ng;
  float *x = fxf(f, "x", &nx), *gamma = fxf(f, "gamma", &ng), *beta = fxf(f, "beta", NULL);
  float *dy = fxf(f, "dy", NULL);
  ck_assert_uint_eq(ng, N);
  ck_assert_uint_eq(nx, B * N);
  memcpy(p, gamma, N * sizeof *p);
  memcpy(p + N, beta, N * sizeof *p);
  float *y = malloc(nx * sizeof *y), *dx = malloc(nx * sizeof *dx);
  nnkit__layer *l = &net->layers[0];
  for (int mode = 1; mode >= 0; mode--) { /* the same in both modes */
    nnkit_net_set_training(net, mode);
    ck_ok(nnkit_net_forward(net, x, B, y, nx));
    ck_close(y, f, "y", nx, 2e-5);
    memset(l->grads, 0, 2 * N * sizeof(float));
    l->ops->backward(l, x, y, dy, dx, B);
    ck_close(dx, f, "dx", nx, 1e-4);
    ck_close(l->grads, f, "dgamma", N, 2e-5);
    ck_close(l->grads + N, f, "dbeta", N, 2e-5);
  }
  free(cf);
  free(x);
  free(gamma);
  free(beta);
  free(dy);
  free(y);
  free(dx);
  nnkit_net_free(net);
}

START_TEST(golden_layernorm_vs_pytorch)
{
  golden_ln("ln_dense");
  golden_ln("ln_conv");
}
END_TEST

START_TEST(layernorm_options_and_errors)
{
  size_t shape[3] = {2, 3, 3};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 1));
  ck_fails(nnkit_net_add_layernorm(net, 0.0), NNKIT_E_INVALID,
           "layernorm (layer 0): eps 0 is outside (0, 1]");
  ck_fails(nnkit_net_add_layernorm(net, NAN), NNKIT_E_INVALID, "eps");
  ck_fails(nnkit_net_add_layernorm(NULL, 1e-5), NNKIT_E_INVALID, "net is NULL");
  ck_ok(nnkit_net_add_layernorm(net, 1e-5));
  ck_assert_str_eq(nnkit_net_layer_describe(net, 0),
                   "layernorm 2x3x3, eps 1e-05 (36 params)");
  double v;
  ck_ok(nnkit_net_layer_set(net, 0, NNKIT_LAYER_EPS, 0.5));
  ck_ok(nnkit_net_layer_get(&v, net, 0, NNKIT_LAYER_EPS));
  ck_assert(v == 0.5);
  /* a constant sample normalizes to beta whatever eps */
  float x[18], y[18];
  for (size_t i = 0; i < 18; i++)
    x[i] = 3.0f;
  float *p = nnkit_net_params(net);
  for (size_t i = 0; i < 18; i++)
    p[18 + i] = (float)i;
  ck_ok(nnkit_net_forward(net, x, 1, y, 18));
  for (size_t i = 0; i < 18; i++)
    ck_assert(y[i] == (float)i);
  nnkit_net_free(net);
}
END_TEST

static Suite *layers_suite(void)
{
  Suite *s = suite_create("layers");
  TCase *tc = tcase_create("conv2d");
  tcase_add_test(tc, gradcheck_conv2d);
  tcase_add_test(tc, gradcheck_conv_stack);
  tcase_add_test(tc, conv2d_blas_matches_naive_twin);
  tcase_add_test(tc, conv2d_direct_matches_naive_twin);
  tcase_add_test(tc, direct_kernels_match_portable_definition);
  tcase_add_test(tc, slice_wise_prefix_matches_whole_batch);
  tcase_add_test(tc, dense_threads_match_naive_twin);
  tcase_add_test(tc, golden_conv2d_vs_pytorch);
  suite_add_tcase(s, tc);
  TCase *tp = tcase_create("pooling");
  tcase_add_test(tp, golden_pooling_vs_pytorch);
  tcase_add_test(tp, gradcheck_maxpool);
  tcase_add_test(tp, maxpool_ties_and_nan);
  tcase_add_test(tp, maxpool_same_padding_on_odd_size);
  tcase_add_test(tp, gradcheck_avgpool_and_global);
  suite_add_tcase(s, tp);
  TCase *tb = tcase_create("batchnorm");
  tcase_add_test(tb, gradcheck_batchnorm_train);
  tcase_add_test(tb, golden_batchnorm_vs_pytorch);
  tcase_add_test(tb, batchnorm_running_stats_closed_form);
  tcase_add_test(tb, batchnorm_threads_bitwise);
  tcase_add_test(tb, batchnorm_stats_api);
  suite_add_tcase(s, tb);
  TCase *tl = tcase_create("layernorm");
  tcase_add_test(tl, gradcheck_layernorm);
  tcase_add_test(tl, golden_layernorm_vs_pytorch);
  tcase_add_test(tl, layernorm_options_and_errors);
  suite_add_tcase(s, tl);
  TCase *td = tcase_create("dropout");
  tcase_add_test(td, gradcheck_dropout_fixed_mask);
  tcase_add_test(td, dropout_statistics);
  tcase_add_test(td, spatial_dropout_drops_whole_channels);
  tcase_add_test(td, predict_runs_in_evaluation_mode);
  suite_add_tcase(s, td);
  TCase *tn = tcase_create("net");
  tcase_add_test(tn, shapes_and_descriptions);
  tcase_add_test(tn, shape_errors_at_add_time);
  tcase_add_test(tn, invalid_arguments);
  tcase_add_test(tn, cnn_allocates_nothing_after_first_batch);
  tcase_add_test(tn, cnn_survives_allocation_failures);
  tcase_add_test(tn, small_cnn_learns_bars);
  tcase_add_test(tn, training_is_reproducible);
  suite_add_tcase(s, tn);
  return s;
}

int main(void) { return nnkit_test_run(layers_suite()); }
