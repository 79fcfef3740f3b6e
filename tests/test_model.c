/* Model: initializers, dense and activation layers, losses, the net's
 * forward/backward/predict/evaluate, with finite-difference gradient
 * checks and closed-form references; the input normalizer a net carries. */
#include <pthread.h>

#include "testutil.h"

/* ---- helpers ------------------------------------------------------ */

static double mean_of(const float *x, size_t n)
{
  double s = 0;
  for (size_t i = 0; i < n; i++)
    s += x[i];
  return s / (double)n;
}

static double std_of(const float *x, size_t n)
{
  double m = mean_of(x, n), s = 0;
  for (size_t i = 0; i < n; i++)
    s += (x[i] - m) * (x[i] - m);
  return sqrt(s / (double)n);
}

/* Loss of the current parameters on (x, labels/targets), no backward. */
static nnkit_net *make_net(size_t in, uint64_t seed)
{
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  return net;
}

/* ---- initializers ------------------------------------------------- */

START_TEST(init_create_rejects_bad_values)
{
  nnkit_init *in = (nnkit_init *)1;
  ck_fails(nnkit_init_create(&in, NNKIT_INIT_NORMAL, 0, -1), NNKIT_E_INVALID, "std");
  ck_assert_ptr_null(in);
  ck_fails(nnkit_init_create(&in, NNKIT_INIT_UNIFORM, 2, 1), NNKIT_E_INVALID, "lo");
  ck_fails(nnkit_init_create(&in, NNKIT_INIT_XAVIER_NORMAL, -1, 0), NNKIT_E_INVALID,
           "gain");
  ck_fails(nnkit_init_create(&in, NNKIT_INIT_HE_NORMAL, -0.5, 0), NNKIT_E_INVALID,
           "slope");
  ck_fails(nnkit_init_create(&in, (nnkit_init_kind)42, 0, 0), NNKIT_E_INVALID,
           "unknown");
  ck_fails(nnkit_init_create(&in, NNKIT_INIT_CONSTANT, NAN, 0), NNKIT_E_INVALID,
           "finite");
  ck_fails(nnkit_init_create(NULL, NNKIT_INIT_ZEROS, 0, 0), NNKIT_E_INVALID, "NULL");
  ck_ok(nnkit_init_create(&in, NNKIT_INIT_HE_UNIFORM, 0, 0));
  ck_assert_int_eq(nnkit_init_get_kind(in), NNKIT_INIT_HE_UNIFORM);
  float buf[4];
  ck_fails(nnkit_init_fill(in, buf, 4, 0, 5, 1, 0), NNKIT_E_INVALID, "fan");
  ck_fails(nnkit_init_fill(in, NULL, 4, 5, 5, 1, 0), NNKIT_E_INVALID, "NULL");
  nnkit_init_free(in);
  nnkit_init_free(NULL);
}
END_TEST

/* For a 500 x 500 layer (250,000 draws) the sample mean lies within
 * 5 standard errors (5 std / 500 = 0.01 std) of the formula's mean and
 * the sample std within 1.5% of the formula's std. */
static void check_init_stats(nnkit_init_kind kind, double a, double b,
                             double want_mean, double want_std)
{
  const size_t fan = 500, n = fan * fan;
  float *w = malloc(n * sizeof *w);
  nnkit_init *in = NULL;
  ck_ok(nnkit_init_create(&in, kind, a, b));
  ck_ok(nnkit_init_fill(in, w, n, fan, fan, 1234, 0));
  double m = mean_of(w, n), s = std_of(w, n);
  double tol_m = want_std > 0 ? 0.01 * want_std : 1e-12;
  ck_assert_msg(fabs(m - want_mean) <= tol_m, "kind %d: mean %g, want %g", kind, m,
                want_mean);
  ck_assert_msg(fabs(s - want_std) <= 0.015 * want_std + 1e-12,
                "kind %d: std %g, want %g", kind, s, want_std);
  nnkit_init_free(in);
  free(w);
}

START_TEST(init_statistics_match_formulas)
{
  const double fan = 500;
  check_init_stats(NNKIT_INIT_ZEROS, 0, 0, 0, 0);
  check_init_stats(NNKIT_INIT_CONSTANT, 0.25, 0, 0.25, 0);
  check_init_stats(NNKIT_INIT_NORMAL, 0.5, 2.0, 0.5, 2.0);
  check_init_stats(NNKIT_INIT_NORMAL, 0.0, 0.01, 0.0, 0.01);
  check_init_stats(NNKIT_INIT_UNIFORM, -1.0, 3.0, 1.0, 4.0 / sqrt(12.0));
  check_init_stats(NNKIT_INIT_XAVIER_NORMAL, 0, 0, 0, sqrt(2.0 / (2 * fan)));
  check_init_stats(NNKIT_INIT_XAVIER_NORMAL, 2.0, 0, 0, 2.0 * sqrt(2.0 / (2 * fan)));
  check_init_stats(NNKIT_INIT_XAVIER_UNIFORM, 1.0, 0, 0,
                   sqrt(6.0 / (2 * fan)) / sqrt(3.0));
  check_init_stats(NNKIT_INIT_HE_NORMAL, 0, 0, 0, sqrt(2.0 / fan));
  check_init_stats(NNKIT_INIT_HE_NORMAL, 0.2, 0, 0, sqrt(2.0 / (1.04 * fan)));
  check_init_stats(NNKIT_INIT_HE_UNIFORM, 0, 0, 0, sqrt(6.0 / fan) / sqrt(3.0));
}
END_TEST

START_TEST(init_fill_is_reproducible)
{
  nnkit_init *in = NULL;
  ck_ok(nnkit_init_create(&in, NNKIT_INIT_NORMAL, 0, 1));
  float a[64], b[64], c[64];
  ck_ok(nnkit_init_fill(in, a, 64, 8, 8, 5, 2));
  ck_ok(nnkit_init_fill(in, b, 64, 8, 8, 5, 2));
  ck_ok(nnkit_init_fill(in, c, 64, 8, 8, 5, 3));
  ck_assert_mem_eq(a, b, sizeof a);
  ck_assert(memcmp(a, c, sizeof a) != 0);
  nnkit_init_free(in);
}
END_TEST

/* ---- dense kernels ------------------------------------------------ */

/* _i == 0: no workspace (cblas_sgemm); 1: after reserve (gemm.c's kernels
 * on AVX2 machines). Odd sizes so every tile is an edge tile. */
START_TEST(dense_blas_matches_naive_twin)
{
  enum { B = 7, IN = 13, OUT = 5 };
  nnkit_net *net = make_net(IN, 3);
  ck_ok(nnkit_net_add_dense(net, OUT));
  float x[B * IN], dy[B * OUT], y[B * OUT], yn[B * OUT];
  tu_fill_uniform(x, B * IN, 1, -1, 1);
  tu_fill_uniform(dy, B * OUT, 2, -1, 1);
  float *p = nnkit_net_params(net);
  tu_fill_uniform(p + IN * OUT, OUT, 3, -1, 1); /* non-zero bias */
  nnkit__layer *l = &net->layers[0];
  if (_i)
    ck_ok(l->ops->reserve(l, B));
  l->ops->forward(l, x, y, B);
  nnkit__dense_forward_naive(x, p, p + IN * OUT, yn, B, IN, OUT);
  for (size_t i = 0; i < B * OUT; i++)
    ck_assert_float_eq_tol(y[i], yn[i], 1e-5);
  float dx[B * IN], dxn[B * IN], dwn[IN * OUT], dbn[OUT];
  /* dense writes its gradients (grads_overwrite): what was there goes */
  ck_assert_int_eq(l->ops->grads_overwrite, 1);
  for (size_t i = 0; i < l->num_params; i++)
    l->grads[i] = 1e6f;
  l->ops->backward(l, x, y, dy, dx, B);
  nnkit__dense_backward_naive(x, p, dy, dxn, dwn, dbn, B, IN, OUT);
  for (size_t i = 0; i < B * IN; i++)
    ck_assert_float_eq_tol(dx[i], dxn[i], 1e-5);
  for (size_t i = 0; i < IN * OUT; i++)
    ck_assert_float_eq_tol(l->grads[i], dwn[i], 1e-5);
  for (size_t i = 0; i < OUT; i++)
    ck_assert_float_eq_tol(l->grads[IN * OUT + i], dbn[i], 1e-5);
  /* a second pass gives the same gradients, not twice them */
  l->ops->backward(l, x, y, dy, NULL, B);
  for (size_t i = 0; i < IN * OUT; i++)
    ck_assert_float_eq_tol(l->grads[i], dwn[i], 1e-5);
  nnkit_net_free(net);
}
END_TEST

/* nnkit__gemm against the double-precision definition: the three forms,
 * beta 0 and 1, a bias row, shapes with edge tiles, several K blocks
 * (K > 256) and several M blocks (M x K > 64k floats), leading dimensions
 * wider than the matrices, a workspace at an odd address. _i == 1 runs the
 * cblas_sgemm path (kernels forced off). */
static void gemm_case(nnkit__gemm_form form, size_t M, size_t N, size_t K, int beta,
                      int bias)
{
  size_t lda = (form == NNKIT__GEMM_TN ? M : K) + 3;
  size_t ldb = (form == NNKIT__GEMM_NT ? K : N) + 5, ldc = N + 7;
  size_t arows = form == NNKIT__GEMM_TN ? K : M, brows = form == NNKIT__GEMM_NT ? N : K;
  float *a = malloc(arows * lda * sizeof(float)), *b = malloc(brows * ldb * sizeof(float));
  float *c = malloc(M * ldc * sizeof(float)), *c0 = malloc(M * ldc * sizeof(float));
  float *bv = malloc(N * sizeof(float));
  size_t wsn = nnkit__gemm_ws_floats(M, K);
  float *ws = malloc((wsn + 1) * sizeof(float));
  ck_assert(a && b && c && c0 && bv && ws);
  tu_fill_uniform(a, arows * lda, 11, -1, 1);
  tu_fill_uniform(b, brows * ldb, 12, -1, 1);
  tu_fill_uniform(c0, M * ldc, 13, -1, 1);
  tu_fill_uniform(bv, N, 14, -1, 1);
  memcpy(c, c0, M * ldc * sizeof(float));
  nnkit__gemm(form, M, N, K, a, lda, b, ldb, (float)beta, c, ldc, bias ? bv : NULL,
              ws + 1);
  for (size_t i = 0; i < M; i++)
    for (size_t j = 0; j < ldc; j++) {
      if (j >= N) { /* the padding of each row is not touched */
        ck_assert_float_eq(c[i * ldc + j], c0[i * ldc + j]);
        continue;
      }
      double s = bias ? bv[j] : beta ? c0[i * ldc + j] : 0.0;
      for (size_t k = 0; k < K; k++) {
        double x = form == NNKIT__GEMM_TN ? a[k * lda + i] : a[i * lda + k];
        double y = form == NNKIT__GEMM_NT ? b[j * ldb + k] : b[k * ldb + j];
        s += x * y;
      }
      ck_assert_msg(fabs(c[i * ldc + j] - s) < 1e-4 * (1 + sqrt((double)K)),
                    "form %d M %zu N %zu K %zu beta %d bias %d: C[%zu][%zu] = %g, "
                    "want %g", (int)form, M, N, K, beta, bias, i, j, c[i * ldc + j], s);
    }
  free(a);
  free(b);
  free(c);
  free(c0);
  free(bv);
  free(ws);
}

START_TEST(gemm_matches_definition)
{
  /* _i 0: nnkit's kernel wherever the CPU has it (on AVX-512 CPUs too,
   * which otherwise use cblas_sgemm); _i 1: cblas_sgemm. */
  nnkit__gemm_force(_i ? 0 : 1);
  if (_i)
    nnkit__direct_force(0);
  static const size_t shapes[][3] = {
    {1, 1, 1}, {4, 24, 8}, {5, 25, 9}, {3, 7, 300}, {13, 49, 17},
    {128, 50, 784}, {600, 30, 130}, {9, 100, 513}, {31, 23, 1}, {4, 40, 8},
    {6, 32, 20}, {7, 512, 33}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int form = 0; form < 3; form++)
      for (int beta = 0; beta < 2; beta++)
        gemm_case((nnkit__gemm_form)form, shapes[s][0], shapes[s][1], shapes[s][2],
                  beta, 0);
  for (int form = 0; form < 3; form++)
    gemm_case((nnkit__gemm_form)form, 10, 37, 300, 1, 1);
  if (_i)
    nnkit__direct_force(-1);
  nnkit__gemm_force(-1);
}
END_TEST

/* ---- kernels chosen by measurement -------------------------------- */

typedef struct slow_pair {
  double secs[2]; /* how long each candidate takes */
  int runs[2];
} slow_pair;

static void sleepy_candidate(void *ctx, int k)
{
  slow_pair *p = ctx;
  __atomic_fetch_add(&p->runs[k], 1, __ATOMIC_SEQ_CST);
  double t0 = nnkit__now();
  while (nnkit__now() - t0 < p->secs[k])
    ;
}

static const char *const pair_names[] = {"own", "blas"};

START_TEST(kernels_mode_is_public_and_checked)
{
  /* the starting mode: NNKIT_KERNELS from the environment, else measured */
  const char *env = getenv("NNKIT_KERNELS");
  nnkit_kernels start = !env                   ? NNKIT_KERNELS_MEASURE
                        : !strcmp(env, "own")  ? NNKIT_KERNELS_OWN
                        : !strcmp(env, "blas") ? NNKIT_KERNELS_BLAS
                                               : NNKIT_KERNELS_MEASURE;
  ck_assert_int_eq(nnkit_get_kernels(), start);
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_OWN));
  ck_assert_int_eq(nnkit_get_kernels(), NNKIT_KERNELS_OWN);
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_BLAS));
  ck_assert_int_eq(nnkit_get_kernels(), NNKIT_KERNELS_BLAS);
  ck_fails(nnkit_set_kernels((nnkit_kernels)7), NNKIT_E_INVALID, "NNKIT_KERNELS_OWN");
  ck_assert_int_eq(nnkit_get_kernels(), NNKIT_KERNELS_BLAS); /* unchanged */
  /* pinned modes decide without measuring */
  slow_pair p = {{0.001, 0.0}, {0, 0}};
  ck_assert_int_eq(nnkit__choose("test pinned", 2, pair_names, sleepy_candidate, &p), 1);
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_OWN));
  ck_assert_int_eq(nnkit__choose("test pinned", 2, pair_names, sleepy_candidate, &p), 0);
  ck_assert_int_eq(p.runs[0] + p.runs[1], 0);
  char why[128];
  nnkit__choice_explain("test pinned", 2, pair_names, 1, why, sizeof why);
  ck_assert_str_eq(why, "own (NNKIT_KERNELS_OWN)");
  nnkit__choice_explain("test pinned", 2, pair_names, 0, why, sizeof why);
  ck_assert_str_eq(why, "blas (the CPU cannot run own)");
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
}
END_TEST

START_TEST(choose_measures_once_and_keeps_the_faster)
{
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
  nnkit__choices_forget();
  slow_pair p = {{0.004, 0.0005}, {0, 0}};
  ck_assert_int_eq(nnkit__choose("test slow-own", 2, pair_names, sleepy_candidate, &p), 1);
  ck_assert_int_eq(p.runs[0], 4); /* a warm-up and three timed runs each */
  ck_assert_int_eq(p.runs[1], 4);
  /* cached: no more runs, even when the times would now say otherwise */
  p.secs[0] = 0.0;
  ck_assert_int_eq(nnkit__choose("test slow-own", 2, pair_names, sleepy_candidate, &p), 1);
  ck_assert_int_eq(p.runs[0] + p.runs[1], 8);
  /* another key is measured on its own */
  slow_pair q = {{0.0, 0.003}, {0, 0}};
  ck_assert_int_eq(nnkit__choose("test fast-own", 2, pair_names, sleepy_candidate, &q), 0);
  char text[256];
  ck_assert_uint_gt(nnkit__choice_text("test slow-own", text, sizeof text), 0);
  double fast = 0, slow = 0;
  ck_assert_msg(sscanf(text, "blas %lf ms < own %lf ms", &fast, &slow) == 2,
                "choice text: %s", text);
  ck_assert(fast >= 0.5 && slow >= 4.0 && fast < slow); /* each its best time */
  ck_assert_uint_eq(nnkit__choice_text("test never asked", text, sizeof text), 0);
  char report[1024];
  size_t n = nnkit__kernel_report(report, sizeof report);
  ck_assert_uint_eq(n, strlen(report));
  ck_assert_ptr_nonnull(strstr(report, "test slow-own: blas "));
  ck_assert_ptr_nonnull(strstr(report, "test fast-own: own "));
  char tiny[8]; /* truncated like snprintf, the full length returned */
  ck_assert_uint_eq(nnkit__kernel_report(tiny, sizeof tiny), n);
  ck_assert_uint_eq(strlen(tiny), sizeof tiny - 1);
  nnkit__choices_forget();
  ck_assert_uint_eq(nnkit__kernel_report(report, sizeof report), 0);
}
END_TEST

typedef struct choose_race {
  slow_pair *p;
  int verdict;
} choose_race;

static void *choose_thread(void *arg)
{
  choose_race *r = arg;
  r->verdict = nnkit__choose("test race", 2, pair_names, sleepy_candidate, r->p);
  return NULL;
}

/* Threads asking for one key together: it is measured once, and all of
 * them get its verdict (a thread never guesses while another measures). */
START_TEST(choose_from_threads_gives_one_verdict)
{
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
  nnkit__choices_forget();
  slow_pair p = {{0.002, 0.0002}, {0, 0}};
  choose_race r[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    r[i].p = &p;
    r[i].verdict = -1;
    ck_assert_int_eq(pthread_create(&th[i], NULL, choose_thread, &r[i]), 0);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    ck_assert_int_eq(r[i].verdict, 1);
  }
  ck_assert_int_eq(p.runs[0], 4);
  ck_assert_int_eq(p.runs[1], 4);
  nnkit__choices_forget();
}
END_TEST

/* Every dense product and convolution asks nnkit__choose; the profile
 * counts each layer's calls and FLOPs (2 per multiply-add; backward's
 * weight gradient and dx each as many as forward) and says what ran. */
START_TEST(profile_counts_layers_and_names_kernels)
{
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
  ck_ok(nnkit_set_num_threads(1));
  nnkit__choices_forget();
  size_t shape[3] = {2, 8, 8};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 3));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_conv2d(net, 5, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dense(net, 7));
  nnkit__layer_profile lp;
  ck_assert_uint_eq(nnkit__profile_get(net, 0, &lp), 0); /* off */
  ck_ok(nnkit__profile_enable(net, 1));
  enum { B = 6 };
  float x[B * 128];
  int32_t y[B] = {0, 1, 2, 3, 4, 5};
  tu_fill_uniform(x, B * 128, 4, -1, 1);
  for (int step = 0; step < 2; step++) {
    ck_ok(nnkit_net_forward(net, x, B, NULL, 0));
    ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  }
  const double macs[5] = {2.0 * 9 * 4 * 64, 0, 4.0 * 9 * 5 * 64, 0, 320.0 * 7};
  for (size_t i = 0; i < 5; i++) {
    ck_assert_uint_eq(nnkit__profile_get(net, i, &lp), 1);
    ck_assert_uint_eq(lp.fwd_calls, 2);
    ck_assert_uint_eq(lp.bwd_calls, 2);
    ck_assert(lp.fwd_s >= 0 && lp.bwd_s >= 0);
    ck_assert_double_eq_tol(lp.fwd_flop, 2 * 2.0 * macs[i] * B, 1e-6);
    /* the first layer computes no dx */
    ck_assert_double_eq_tol(lp.bwd_flop, 2 * 2.0 * macs[i] * B * (i ? 2 : 1), 1e-6);
  }
  ck_assert_uint_eq(nnkit__profile_get(net, 5, &lp), 0); /* past the end */
  ck_assert(nnkit__profile_get(net, 0, &lp) && !strcmp(lp.kind, "conv2d"));
  if (nnkit__direct_available()) /* either may be faster (a debug build) */
    ck_assert_msg((!strncmp(lp.kernel, "direct ", 7) && strstr(lp.kernel, " < im2col ")) ||
                      (!strncmp(lp.kernel, "im2col ", 7) && strstr(lp.kernel, " < direct ")),
                  "conv kernel: %s", lp.kernel);
  else
    ck_assert_ptr_nonnull(strstr(lp.kernel, "im2col (the direct path needs"));
  ck_assert(nnkit__profile_get(net, 1, &lp) && lp.kernel[0] == '\0'); /* a ReLU */
  ck_assert(nnkit__profile_get(net, 4, &lp) && !strcmp(lp.kind, "dense"));
  ck_assert_msg(strstr(lp.kernel, "fwd 6x7x320: ") && strstr(lp.kernel, "; dW 7x320x6: ") &&
                    strstr(lp.kernel, "; dX 6x320x7: "),
                "dense kernel: %s", lp.kernel);
  char report[4096];
  nnkit__kernel_report(report, sizeof report);
  if (nnkit__gemm_fast()) {
    ck_assert_ptr_nonnull(strstr(report, "gemm NT 6x7x320 t1: "));
    ck_assert_ptr_nonnull(strstr(report, "conv2d 2x8x8->4x8x8 k3x3 t1: "));
  }
  /* pinned, the choices are explained by the mode */
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_BLAS));
  ck_ok(nnkit_net_forward(net, x, B, NULL, 0));
  ck_assert(nnkit__profile_get(net, 4, &lp));
  if (nnkit__gemm_fast())
    ck_assert_msg(strstr(lp.kernel, "fwd 6x7x320: cblas (NNKIT_KERNELS_BLAS)"), "%s",
                  lp.kernel);
  ck_assert(!nnkit__conv_is_direct(&net->layers[0]));
  ck_ok(nnkit_set_kernels(NNKIT_KERNELS_MEASURE));
  ck_ok(nnkit__profile_enable(net, 0));
  ck_assert_uint_eq(nnkit__profile_get(net, 0, &lp), 0);
  nnkit_net_free(net);
  ck_ok(nnkit_set_num_threads(0));
}
END_TEST

/* ---- gradient checks ---------------------------------------------- */

static void check_activation(nnkit_activation act, nnkit_loss loss)
{
  enum { B = 4, IN = 5 };
  nnkit_net *net = make_net(IN, 11);
  ck_ok(nnkit_net_add_dense(net, 6));
  ck_ok(nnkit_net_add_activation(net, act));
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_ok(nnkit_net_set_loss(net, loss));
  float *p = nnkit_net_params(net);
  tu_fill_uniform(p, nnkit_net_num_params(net), 5, -0.8f, 0.8f);
  float x[B * IN], t[B * 3];
  tu_fill_uniform(x, B * IN, 6, -1.5f, 1.5f);
  tu_fill_uniform(t, B * 3, 7, -1, 1);
  int32_t labels[B] = {0, 2, 1, 2};
  tu_grad_check(net, x, B, labels, loss == NNKIT_LOSS_MSE ? t : NULL);
  nnkit_net_free(net);
}

START_TEST(gradcheck_activations_with_cross_entropy)
{
  check_activation(NNKIT_ACT_RELU, NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY);
  check_activation(NNKIT_ACT_LEAKY_RELU, NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY);
  check_activation(NNKIT_ACT_TANH, NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY);
  check_activation(NNKIT_ACT_SIGMOID, NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY);
  check_activation(NNKIT_ACT_SOFTMAX, NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY);
}
END_TEST

START_TEST(gradcheck_activations_with_mse)
{
  check_activation(NNKIT_ACT_RELU, NNKIT_LOSS_MSE);
  check_activation(NNKIT_ACT_TANH, NNKIT_LOSS_MSE);
  check_activation(NNKIT_ACT_SIGMOID, NNKIT_LOSS_MSE);
  check_activation(NNKIT_ACT_SOFTMAX, NNKIT_LOSS_MSE);
}
END_TEST

START_TEST(gradcheck_leaky_slope_and_mse_labels)
{
  enum { B = 3, IN = 4 };
  nnkit_net *net = make_net(IN, 12);
  ck_ok(nnkit_net_add_dense(net, 5));
  ck_ok(nnkit_net_add_leaky_relu(net, 0.3f));
  ck_ok(nnkit_net_add_dense(net, 4));
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  float x[B * IN];
  tu_fill_uniform(x, B * IN, 8, -1, 1);
  int32_t labels[B] = {3, 0, 1};
  tu_grad_check(net, x, B, labels, NULL); /* MSE against one-hot labels */
  nnkit_net_free(net);
}
END_TEST

/* The fused softmax + cross-entropy: a trailing softmax layer is folded
 * into the loss, so loss and gradients equal those of the logits net. */
START_TEST(softmax_cross_entropy_fusion)
{
  enum { B = 5, IN = 6 };
  nnkit_net *a = make_net(IN, 21), *b = make_net(IN, 21);
  ck_ok(nnkit_net_add_dense(a, 4));
  ck_ok(nnkit_net_add_dense(b, 4));
  ck_ok(nnkit_net_add_activation(b, NNKIT_ACT_SOFTMAX));
  float x[B * IN];
  tu_fill_uniform(x, B * IN, 9, -2, 2);
  int32_t labels[B] = {0, 1, 2, 3, 1};
  double la, lb;
  ck_ok(nnkit_net_forward(a, x, B, NULL, 0));
  ck_ok(nnkit_net_backward(a, labels, NULL, &la));
  ck_ok(nnkit_net_forward(b, x, B, NULL, 0));
  ck_ok(nnkit_net_backward(b, labels, NULL, &lb));
  ck_assert_double_eq_tol(la, lb, 1e-9);
  ck_assert_mem_eq(nnkit_net_grads(a), nnkit_net_grads(b),
                   nnkit_net_num_params(a) * sizeof(float));
  /* predict_proba: softmax applied once in both. */
  float pa[B * 4], pb[B * 4];
  ck_ok(nnkit_net_predict_proba(pa, B * 4, a, x, B));
  ck_ok(nnkit_net_predict_proba(pb, B * 4, b, x, B));
  for (size_t i = 0; i < B * 4; i++)
    ck_assert_float_eq_tol(pa[i], pb[i], 1e-6);
  tu_grad_check(b, x, B, labels, NULL);
  nnkit_net_free(a);
  nnkit_net_free(b);
}
END_TEST

START_TEST(loss_closed_forms)
{
  /* CE of logits [1,2,3], label 2 = log(e + e^2 + e^3) - 3. */
  float z[6] = {1, 2, 3, 1000, 0, -1000}, g[6];
  int32_t lab[2] = {2, 1};
  double want0 = log(exp(1) + exp(2) + exp(3)) - 3;
  double l1 = nnkit__softmax_ce(z, lab, g, 1, 3);
  ck_assert_double_eq_tol(l1, want0, 1e-6);
  double s = exp(1) + exp(2) + exp(3);
  ck_assert_double_eq_tol(g[0], exp(1) / s, 1e-6);
  ck_assert_double_eq_tol(g[2], exp(3) / s - 1, 1e-6);
  /* Stable for huge logits: sample 2 has loss 1000 exactly. */
  double l2 = nnkit__softmax_ce(z, lab, g, 2, 3);
  ck_assert(isfinite(l2));
  ck_assert_double_eq_tol(l2, (want0 + 1000.0) / 2, 1e-3);
  /* MSE: mean of squares and gradient 2 d / n. */
  float y[4] = {1, 2, 3, 4}, t[4] = {0, 2, 5, 4}, gm[4];
  ck_assert_double_eq_tol(nnkit__mse(y, t, NULL, gm, 2, 2), (1.0 + 4.0) / 4, 1e-9);
  ck_assert_float_eq_tol(gm[0], 2.0f * 1 / 4, 1e-7);
  ck_assert_float_eq_tol(gm[2], 2.0f * -2 / 4, 1e-7);
}
END_TEST

/* ---- the net ------------------------------------------------------ */

START_TEST(net_shapes_and_descriptions)
{
  size_t shape[3] = {1, 28, 28};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 1));
  ck_assert_uint_eq(nnkit_net_input_size(net), 784);
  ck_assert_uint_eq(nnkit_net_output_size(net), 784);
  ck_ok(nnkit_net_add_dense(net, 32));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 10));
  ck_assert_uint_eq(nnkit_net_num_layers(net), 3);
  ck_assert_uint_eq(nnkit_net_output_size(net), 10);
  ck_assert_uint_eq(nnkit_net_num_params(net), 784 * 32 + 32 + 32 * 10 + 10);
  size_t dims[3], nd;
  ck_ok(nnkit_net_layer_shape(dims, 3, &nd, net, 1));
  ck_assert_uint_eq(nd, 1);
  ck_assert_uint_eq(dims[0], 32);
  ck_fails(nnkit_net_layer_shape(dims, 3, &nd, net, 3), NNKIT_E_INVALID, "layer 3");
  ck_fails(nnkit_net_layer_shape(dims, 0, &nd, net, 0), NNKIT_E_INVALID, "holds 0");
  ck_assert_str_eq(nnkit_net_layer_describe(net, 0), "dense 784 -> 32 (25120 params)");
  ck_assert_str_eq(nnkit_net_layer_describe(net, 1), "tanh 32");
  ck_assert_str_eq(nnkit_net_layer_describe(net, 9), "");
  size_t off, cnt;
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 2));
  ck_assert_uint_eq(off, 25120);
  ck_assert_uint_eq(cnt, 330);
  ck_ok(nnkit_net_layer_params(&off, &cnt, net, 1));
  ck_assert_uint_eq(cnt, 0);
  ck_fails(nnkit_net_layer_params(&off, &cnt, net, 5), NNKIT_E_INVALID, "layer 5");
  ck_ok(nnkit_net_add_leaky_relu(net, 0.2f));
  ck_assert_str_eq(nnkit_net_layer_describe(net, 3), "leaky_relu(0.2) 10");
  nnkit_net_free(net);
  nnkit_net_free(NULL);
}
END_TEST

START_TEST(net_rejects_bad_arguments)
{
  nnkit_net *net = (nnkit_net *)1;
  size_t zero = 0, four[4] = {1, 2, 3, 4};
  ck_fails(nnkit_net_create(&net, &zero, 1, 0), NNKIT_E_INVALID, "dimension 0");
  ck_assert_ptr_null(net);
  ck_fails(nnkit_net_create(&net, four, 4, 0), NNKIT_E_INVALID, "1 to 3");
  net = make_net(4, 0);
  ck_fails(nnkit_net_add_dense(net, 0), NNKIT_E_INVALID, "units");
  ck_fails(nnkit_net_add_activation(net, (nnkit_activation)77), NNKIT_E_INVALID,
           "unknown activation");
  ck_fails(nnkit_net_add_leaky_relu(net, -1.0), NNKIT_E_INVALID, "slope");
  ck_fails(nnkit_net_add_leaky_relu(net, 1e300), NNKIT_E_INVALID,
           "slope 1e+300 must be finite and in [0, 1e6]");
  ck_fails(nnkit_net_add_leaky_relu(net, NAN), NNKIT_E_INVALID, "slope");
  ck_fails(nnkit_net_set_loss(net, (nnkit_loss)9), NNKIT_E_INVALID, "unknown loss");
  float x[8] = {0};
  int32_t cls[2];
  ck_fails(nnkit_net_forward(net, x, 2, NULL, 0), NNKIT_E_STATE, "no layers");
  ck_fails(nnkit_net_predict(cls, net, x, 2), NNKIT_E_STATE, "no layers");
  ck_ok(nnkit_net_add_dense(net, 3));
  ck_fails(nnkit_net_backward(net, cls, NULL, NULL), NNKIT_E_STATE, "forward");
  float out[6];
  ck_fails(nnkit_net_forward(net, x, 2, out, 5), NNKIT_E_INVALID, "out holds 5");
  ck_fails(nnkit_net_forward(net, NULL, 2, NULL, 0), NNKIT_E_INVALID, "non-NULL");
  ck_ok(nnkit_net_forward(net, x, 2, out, 6));
  int32_t bad[2] = {0, 3};
  ck_fails(nnkit_net_backward(net, bad, NULL, NULL), NNKIT_E_INVALID, "label 3");
  ck_fails(nnkit_net_backward(net, NULL, NULL, NULL), NNKIT_E_INVALID, "needs labels");
  ck_ok(nnkit_net_set_loss(net, NNKIT_LOSS_MSE));
  ck_assert_int_eq(nnkit_net_get_loss(net), NNKIT_LOSS_MSE);
  ck_fails(nnkit_net_backward(net, NULL, NULL, NULL), NNKIT_E_INVALID, "targets");
  ck_fails(nnkit_net_set_init(net, 7, NULL, NULL), NNKIT_E_INVALID, "layer 7");
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_fails(nnkit_net_set_init(net, 1, NULL, NULL), NNKIT_E_INVALID, "no parameters");
  float probs[6];
  ck_fails(nnkit_net_predict_proba(probs, 5, net, x, 2), NNKIT_E_INVALID, "holds 5");
  nnkit_net_free(net);
}
END_TEST

START_TEST(net_set_init_and_defaults)
{
  nnkit_net *net = make_net(500, 77);
  ck_ok(nnkit_net_add_dense(net, 500));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 500));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  const float *p = nnkit_net_params(net);
  size_t nw = 500 * 500;
  /* Default: He-normal before a ReLU, Xavier-uniform otherwise, bias 0. */
  ck_assert_double_eq_tol(std_of(p, nw), sqrt(2.0 / 500), 0.015 * sqrt(2.0 / 500));
  ck_assert_double_eq_tol(std_of(p + nw + 500, nw), sqrt(6.0 / 1000) / sqrt(3.0),
                          0.015 * sqrt(6.0 / 1000) / sqrt(3.0));
  for (size_t i = 0; i < 500; i++)
    ck_assert_float_eq(p[nw + i], 0.0f);
  nnkit_init *c = NULL, *n = NULL;
  ck_ok(nnkit_init_create(&c, NNKIT_INIT_CONSTANT, 0.5, 0));
  ck_ok(nnkit_init_create(&n, NNKIT_INIT_NORMAL, 0, 0.01));
  ck_ok(nnkit_net_set_init(net, 0, n, c));
  nnkit_init_free(c); /* the net keeps its own copies */
  nnkit_init_free(n);
  ck_ok(nnkit_net_init_params(net));
  p = nnkit_net_params(net);
  ck_assert_double_eq_tol(std_of(p, nw), 0.01, 0.00015);
  for (size_t i = 0; i < 500; i++)
    ck_assert_float_eq(p[nw + i], 0.5f);
  nnkit_net_free(net);
}
END_TEST

START_TEST(net_same_seed_same_params)
{
  nnkit_net *a = make_net(20, 5), *b = make_net(20, 5), *c = make_net(20, 6);
  nnkit_net *nets[3] = {a, b, c};
  for (int i = 0; i < 3; i++) {
    ck_ok(nnkit_net_add_dense(nets[i], 8));
    ck_ok(nnkit_net_add_activation(nets[i], NNKIT_ACT_RELU));
    ck_ok(nnkit_net_add_dense(nets[i], 3));
  }
  size_t np = nnkit_net_num_params(a);
  ck_assert_mem_eq(nnkit_net_params(a), nnkit_net_params(b), np * sizeof(float));
  ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(c), np * sizeof(float)) != 0);
  /* Appending a layer keeps the values of the layers already built. */
  float keep[20 * 8];
  memcpy(keep, nnkit_net_params(a), sizeof keep);
  ck_ok(nnkit_net_add_activation(a, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(a, 2));
  ck_assert_mem_eq(nnkit_net_params(a), keep, sizeof keep);
  ck_assert_ptr_nonnull(nnkit_net_grads(a));
  for (int i = 0; i < 3; i++)
    nnkit_net_free(nets[i]);
}
END_TEST

START_TEST(net_predict_and_evaluate)
{
  const size_t N = 300, IN = 3; /* > EVAL_CHUNK, so chunking is exercised */
  nnkit_net *net = make_net(IN, 31);
  ck_ok(nnkit_net_add_dense(net, 7));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_SIGMOID));
  ck_ok(nnkit_net_add_dense(net, 4));
  float *x = malloc(N * IN * sizeof *x), *probs = malloc(N * 4 * sizeof *probs);
  int32_t *labels = malloc(N * sizeof *labels), *cls = malloc(N * sizeof *cls);
  tu_fill_uniform(x, N * IN, 12, -2, 2);
  for (size_t i = 0; i < N; i++)
    labels[i] = (int32_t)(i % 4);
  ck_ok(nnkit_net_predict(cls, net, x, N));
  ck_ok(nnkit_net_predict_proba(probs, N * 4, net, x, N));
  double loss_sum = 0;
  size_t correct = 0;
  for (size_t i = 0; i < N; i++) {
    double s = 0;
    size_t best = 0;
    for (size_t j = 0; j < 4; j++) {
      s += probs[i * 4 + j];
      if (probs[i * 4 + j] > probs[i * 4 + best])
        best = j;
    }
    ck_assert_double_eq_tol(s, 1.0, 1e-5);
    ck_assert_int_eq(cls[i], (int32_t)best);
    loss_sum += -log(probs[i * 4 + labels[i]]);
    correct += cls[i] == labels[i];
  }
  size_t shape[1] = {IN};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, labels, N, shape, 1, 4));
  double loss, acc;
  nnkit_net_set_training(net, 1);
  ck_ok(nnkit_net_evaluate(&loss, &acc, net, ds));
  ck_assert_int_eq(nnkit_net_is_training(net), 1); /* mode restored */
  ck_assert_double_eq_tol(loss, loss_sum / N, 1e-4);
  ck_assert_double_eq_tol(acc, (double)correct / N, 1e-12);
  /* A dataset of the wrong width is a shape error. */
  size_t shape2[1] = {2};
  nnkit_dataset *bad = NULL;
  ck_ok(nnkit_dataset_from_buffers(&bad, x, labels, N, shape2, 1, 4));
  ck_fails(nnkit_net_evaluate(&loss, &acc, net, bad), NNKIT_E_SHAPE, "takes 3");
  nnkit_dataset_free(bad);
  nnkit_dataset_free(ds);
  free(x);
  free(probs);
  free(labels);
  free(cls);
  nnkit_net_free(net);
}
END_TEST

START_TEST(net_forward_allocates_nothing_after_first_batch)
{
  nnkit_net *net = make_net(16, 1);
  ck_ok(nnkit_net_add_dense(net, 32));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dense(net, 4));
  float x[8 * 16];
  int32_t y[8] = {0, 1, 2, 3, 0, 1, 2, 3};
  tu_fill_uniform(x, 8 * 16, 2, -1, 1);
  ck_ok(nnkit_net_forward(net, x, 8, NULL, 0));
  ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  uint64_t before = nnkit__alloc_count();
  for (int i = 0; i < 10; i++) {
    ck_ok(nnkit_net_forward(net, x, 8 - (size_t)(i % 3), NULL, 0));
    ck_ok(nnkit_net_backward(net, y, NULL, NULL));
  }
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  nnkit_net_free(net);
}
END_TEST

START_TEST(net_survives_allocation_failures)
{
  /* Fail the k-th allocation for every k: each call either succeeds or
   * reports NNKIT_E_NOMEM; nothing leaks (checked under valgrind/ASan). */
  for (uint64_t k = 1; k < 40; k++) {
    nnkit_net *net = NULL;
    size_t in = 6;
    nnkit__alloc_fail_after(k);
    nnkit_status st = nnkit_net_create(&net, &in, 1, 1);
    if (st == NNKIT_OK)
      st = nnkit_net_add_dense(net, 4);
    if (st == NNKIT_OK)
      st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
    float x[12] = {0};
    if (st == NNKIT_OK)
      st = nnkit_net_forward(net, x, 2, NULL, 0);
    nnkit__alloc_fail_after(0);
    ck_assert(st == NNKIT_OK || st == NNKIT_E_NOMEM);
    if (st == NNKIT_E_NOMEM)
      ck_assert(strstr(nnkit_last_error(), "memory") != NULL);
    nnkit_net_free(net);
  }
}
END_TEST

START_TEST(net_layer_options_are_keys)
{
  size_t shape[3] = {2, 6, 6};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 3, 5));
  ck_ok(nnkit_net_add_conv2d(net, 4, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 1));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_leaky_relu(net, 0.2f));
  ck_ok(nnkit_net_add_flatten(net));
  ck_ok(nnkit_net_add_dropout(net, 0.25));
  ck_ok(nnkit_net_add_dense(net, 3));
  double v, lo, hi;
  int flags;
  /* every add-call argument reads back */
  ck_ok(nnkit_net_layer_get(&v, net, 0, NNKIT_LAYER_OUT_CHANNELS));
  ck_assert(v == 4);
  ck_ok(nnkit_net_layer_get(&v, net, 0, NNKIT_LAYER_PAD_H));
  ck_assert(v == -1); /* NNKIT_PAD_SAME */
  ck_ok(nnkit_net_layer_get(&v, net, 1, NNKIT_LAYER_EPS));
  ck_assert(v == 1e-5);
  ck_ok(nnkit_net_layer_get(&v, net, 2, NNKIT_LAYER_SLOPE));
  ck_assert(v == (double)0.2f);
  ck_ok(nnkit_net_layer_get(&v, net, 2, NNKIT_LAYER_ACTIVATION));
  ck_assert(v == NNKIT_ACT_LEAKY_RELU);
  ck_ok(nnkit_net_layer_get(&v, net, 5, NNKIT_LAYER_UNITS));
  ck_assert(v == 3);
  /* bounds come from the kind's table */
  ck_ok(nnkit_net_layer_bounds(&lo, &hi, &flags, net, 4, NNKIT_LAYER_DROP_P));
  ck_assert(lo == 0 && hi == 1 && flags == NNKIT_BOUND_HI_OPEN);
  ck_ok(nnkit_net_layer_bounds(&lo, &hi, &flags, net, 1, NNKIT_LAYER_EPS));
  ck_assert(lo == 0 && hi == 1 && flags == NNKIT_BOUND_LO_OPEN);
  ck_ok(nnkit_net_layer_bounds(NULL, NULL, NULL, net, 0, NNKIT_LAYER_BIAS));
  /* settable options change, shape options are fixed */
  ck_ok(nnkit_net_layer_set(net, 1, NNKIT_LAYER_MOMENTUM, 0.5));
  ck_ok(nnkit_net_layer_get(&v, net, 1, NNKIT_LAYER_MOMENTUM));
  ck_assert(v == 0.5);
  ck_ok(nnkit_net_layer_set(net, 2, NNKIT_LAYER_SLOPE, 0.3));
  ck_ok(nnkit_net_layer_get(&v, net, 2, NNKIT_LAYER_SLOPE));
  ck_assert(v == (double)0.3f);
  ck_assert_str_eq(nnkit_net_layer_describe(net, 4), "dropout p=0.25 144");
  ck_ok(nnkit_net_layer_set(net, 4, NNKIT_LAYER_DROP_P, 0.5));
  ck_assert_str_eq(nnkit_net_layer_describe(net, 4), "dropout p=0.5 144");
  ck_fails(nnkit_net_layer_set(net, 0, NNKIT_LAYER_OUT_CHANNELS, 8), NNKIT_E_STATE,
           "out_channels is fixed once the layer is added");
  ck_fails(nnkit_net_layer_set(net, 5, NNKIT_LAYER_UNITS, 8), NNKIT_E_STATE, "units");
  ck_fails(nnkit_net_layer_set(net, 2, NNKIT_LAYER_ACTIVATION, 1), NNKIT_E_STATE,
           "fixed once the layer is added");
  /* out-of-range values, unknown keys and layers */
  ck_fails(nnkit_net_layer_set(net, 4, NNKIT_LAYER_DROP_P, 1.0), NNKIT_E_INVALID,
           "dropout (layer 4) p 1 is outside its range [0, 1)");
  ck_fails(nnkit_net_layer_set(net, 1, NNKIT_LAYER_EPS, 0.0), NNKIT_E_INVALID,
           "eps 0 is outside its range (0, 1]");
  ck_fails(nnkit_net_layer_set(net, 1, NNKIT_LAYER_EPS, NAN), NNKIT_E_INVALID, "eps");
  ck_fails(nnkit_net_layer_get(&v, net, 3, NNKIT_LAYER_UNITS), NNKIT_E_INVALID,
           "layer 3 (flatten) has no option 1");
  ck_fails(nnkit_net_layer_get(&v, net, 6, NNKIT_LAYER_UNITS), NNKIT_E_INVALID,
           "layer 6 does not exist (the net has 6)");
  ck_fails(nnkit_net_layer_get(NULL, net, 0, NNKIT_LAYER_UNITS), NNKIT_E_INVALID, "out");
  ck_fails(nnkit_net_layer_set(NULL, 0, NNKIT_LAYER_UNITS, 1), NNKIT_E_INVALID, "net");
  ck_fails(nnkit_net_layer_bounds(&lo, &hi, &flags, net, 0, (nnkit_layer_param)99),
           NNKIT_E_INVALID, "has no option 99");
  nnkit_net_free(net);
}
END_TEST

/* Setting dropout's p on a layer gives the masks of a layer added with
 * that p, and a training forward of a net that had its p lowered to 0 is
 * the identity. */
START_TEST(net_layer_set_takes_effect)
{
  size_t shape[1] = {64};
  float x[4 * 64], ya[4 * 64], yb[4 * 64];
  for (size_t i = 0; i < 4 * 64; i++)
    x[i] = (float)i / 64.0f - 2.0f;
  nnkit_net *a = NULL, *b = NULL;
  ck_ok(nnkit_net_create(&a, shape, 1, 9));
  ck_ok(nnkit_net_create(&b, shape, 1, 9));
  ck_ok(nnkit_net_add_dropout(a, 0.1));
  ck_ok(nnkit_net_add_dropout(b, 0.6));
  ck_ok(nnkit_net_layer_set(a, 0, NNKIT_LAYER_DROP_P, 0.6));
  ck_ok(nnkit_net_forward(a, x, 4, ya, 4 * 64));
  ck_ok(nnkit_net_forward(b, x, 4, yb, 4 * 64));
  ck_assert_mem_eq(ya, yb, sizeof ya);
  ck_ok(nnkit_net_layer_set(a, 0, NNKIT_LAYER_DROP_P, 0.0));
  ck_ok(nnkit_net_forward(a, x, 4, ya, 4 * 64));
  ck_assert_mem_eq(ya, x, sizeof ya);
  nnkit_net_free(a);
  nnkit_net_free(b);
}
END_TEST

/* Snapshots and checkpoints select a layer's arrays by role, never by
 * kind: batch norm's running statistics are STATE, dropout's mask step a
 * COUNTER, and parameter tensors tile each layer's parameter slice. */
START_TEST(net_tensors_by_role)
{
  size_t shape[1] = {5};
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, shape, 1, 1));
  ck_ok(nnkit_net_add_dense(net, 4));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_dropout(net, 0.5));
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit__net_build(net));
  ck_assert_uint_eq(nnkit__net_role_floats(net, NNKIT__ROLE_STATE), 8);
  ck_assert_uint_eq(nnkit__net_role_floats(net, NNKIT__ROLE_PARAMS),
                    nnkit_net_num_params(net));
  ck_assert_uint_eq(nnkit__net_role_floats(net, NNKIT__ROLE_WEIGHT), 5 * 4 + 4 * 2);
  ck_assert_uint_eq(nnkit__net_role_floats(net, NNKIT__ROLE_NORM), 8);
  float st[8], mean[4], var[4];
  for (size_t i = 0; i < 8; i++)
    st[i] = (float)(i + 1);
  nnkit__net_role_copy(net, NNKIT__ROLE_STATE, st, 1);
  ck_ok(nnkit_net_batchnorm_stats(mean, var, 4, net, 1));
  ck_assert(mean[0] == 1 && mean[3] == 4 && var[0] == 5 && var[3] == 8);
  float back[8];
  nnkit__net_role_copy(net, NNKIT__ROLE_STATE, back, 0);
  ck_assert_mem_eq(back, st, sizeof st);
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0, off = 0, counters = 0;
    for (size_t k = 0; k < nt; k++) {
      if (t[k].role == NNKIT__ROLE_COUNTER) {
        ck_assert_ptr_null(t[k].data);
        ck_assert_ptr_nonnull(t[k].count);
        counters++;
        continue;
      }
      if (!(t[k].role & NNKIT__ROLE_PARAMS))
        continue;
      ck_assert_ptr_eq(t[k].data, l->params + off);
      size_t n = 1;
      for (size_t d = 0; d < t[k].ndim; d++)
        n *= t[k].dims[d];
      off += n;
    }
    ck_assert_uint_eq(off, l->num_params);
    ck_assert_uint_eq(counters, i == 2);
  }
  nnkit_net_free(net);
}
END_TEST

/* ---- preprocessing a net carries ---------------------------------- */

/* A 6-input classifier with a few trained steps' worth of weights. */
static nnkit_net *make_classifier(size_t in, uint64_t seed)
{
  nnkit_net *net = make_net(in, seed);
  ck_ok(nnkit_net_add_dense(net, 8));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, 3));
  float *p = nnkit_net_params(net);
  tu_fill_uniform(p, nnkit_net_num_params(net), seed + 1, -0.5f, 0.5f);
  return net;
}

/* Raw bytes (0..255) of n samples of 6 values and their labels; the set
 * in both forms: compact bytes and floats. */
static void raw_sets(size_t n, nnkit_dataset **bytes, nnkit_dataset **floats,
                     float **x_out, int32_t **y_out)
{
  size_t in = 6;
  uint8_t *x8 = malloc(n * in);
  float *x = malloc(n * in * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  for (size_t i = 0; i < n; i++) {
    y[i] = (int32_t)(i % 3);
    for (size_t j = 0; j < in; j++) {
      x8[i * in + j] = (uint8_t)((i * 37 + j * 101 + (size_t)y[i] * 60 * (j == 2)) % 256);
      x[i * in + j] = (float)x8[i * in + j];
    }
  }
  ck_ok(nnkit_dataset_from_bytes(bytes, x8, y, n, &in, 1, 3));
  ck_ok(nnkit_dataset_from_buffers(floats, x, y, n, &in, 1, 3));
  free(x8);
  *x_out = x;
  *y_out = y;
}

/* With a normalizer attached, predict, predict_proba, evaluate (float and
 * byte sets), confusion and top-k accuracy on raw samples equal the same
 * calls without it on nnkit_normalizer_transform()'s output, bit for bit,
 * over several chunks (1100 samples: chunks of 256 and of 1024); the
 * lower-level forward does not apply it. Standardize and PCA (4 of 6). */
START_TEST(net_normalizer_raw_input_calls)
{
  size_t n = 1100;
  nnkit_dataset *bytes = NULL, *floats = NULL;
  float *x = NULL;
  int32_t *y = NULL;
  raw_sets(n, &bytes, &floats, &x, &y);
  for (int pca = 0; pca <= 1; pca++) {
    nnkit_normalizer *nz = NULL;
    ck_ok(nnkit_normalizer_create(&nz, pca ? NNKIT_NORM_PCA : NNKIT_NORM_STANDARDIZE));
    if (pca)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 4));
    ck_ok(nnkit_normalizer_fit(nz, floats));
    size_t k = nnkit_normalizer_out_size(nz);
    float *z = malloc(n * k * sizeof *z);
    ck_ok(nnkit_normalizer_transform(nz, x, z, n));
    nnkit_dataset *zs = NULL;
    ck_ok(nnkit_dataset_from_buffers(&zs, z, y, n, &k, 1, 3));
    nnkit_net *plain = make_classifier(k, 3), *with = make_classifier(k, 3);
    ck_ok(nnkit_net_set_normalizer(with, nz));
    nnkit_normalizer_free(nz); /* the net keeps its copy */
    ck_assert_ptr_nonnull(nnkit_net_normalizer(with));
    float pa[1100 * 3], pb[1100 * 3];
    int32_t ca[1100], cb[1100];
    ck_ok(nnkit_net_predict_proba(pa, n * 3, plain, z, n));
    ck_ok(nnkit_net_predict_proba(pb, n * 3, with, x, n));
    ck_assert(memcmp(pa, pb, sizeof pa) == 0);
    ck_ok(nnkit_net_predict(ca, plain, z, n));
    ck_ok(nnkit_net_predict(cb, with, x, n));
    ck_assert(memcmp(ca, cb, sizeof ca) == 0);
    double la, aa, lb, ab;
    ck_ok(nnkit_net_evaluate(&la, &aa, plain, zs));
    ck_ok(nnkit_net_evaluate(&lb, &ab, with, floats));
    ck_assert(la == lb && aa == ab);
    ck_ok(nnkit_net_evaluate(&lb, &ab, with, bytes));
    ck_assert(la == lb && aa == ab);
    size_t ma[9], mb[9], mc[9];
    ck_ok(nnkit_net_confusion(ma, 9, plain, zs));
    ck_ok(nnkit_net_confusion(mb, 9, with, floats));
    ck_ok(nnkit_net_confusion(mc, 9, with, bytes));
    ck_assert(memcmp(ma, mb, sizeof ma) == 0 && memcmp(ma, mc, sizeof ma) == 0);
    double ta, tb, tc;
    ck_ok(nnkit_net_top_k_accuracy(&ta, plain, zs, 2));
    ck_ok(nnkit_net_top_k_accuracy(&tb, with, floats, 2));
    ck_ok(nnkit_net_top_k_accuracy(&tc, with, bytes, 2));
    ck_assert(ta == tb && ta == tc);
    /* forward takes normalized samples, normalizer or not */
    float fa[16 * 3], fb[16 * 3];
    ck_ok(nnkit_net_forward(plain, z, 16, fa, sizeof fa / sizeof *fa));
    ck_ok(nnkit_net_forward(with, z, 16, fb, sizeof fb / sizeof *fb));
    ck_assert(memcmp(fa, fb, sizeof fa) == 0);
    /* the raw-input calls check the raw size */
    if (pca) {
      ck_fails(nnkit_net_evaluate(&lb, &ab, with, zs), NNKIT_E_SHAPE,
               "the net's normalizer takes 6");
      ck_fails(nnkit_net_confusion(mb, 9, with, zs), NNKIT_E_SHAPE, "takes 6");
    }
    /* detached, it is the plain net again */
    ck_ok(nnkit_net_set_normalizer(with, NULL));
    ck_assert_ptr_null(nnkit_net_normalizer(with));
    ck_ok(nnkit_net_predict_proba(pb, n * 3, with, z, n));
    ck_assert(memcmp(pa, pb, sizeof pa) == 0);
    nnkit_net_free(plain);
    nnkit_net_free(with);
    nnkit_dataset_free(zs);
    free(z);
  }
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
  free(x);
  free(y);
}
END_TEST

/* Once the net has run a chunk, predicting, evaluating and the metrics
 * through the attached normalizer allocate nothing more (the buffers come
 * with nnkit_net_set_normalizer). */
START_TEST(net_normalizer_allocates_nothing_per_call)
{
  size_t n = 600;
  nnkit_dataset *bytes = NULL, *floats = NULL;
  float *x = NULL;
  int32_t *y = NULL;
  raw_sets(n, &bytes, &floats, &x, &y);
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA));
  ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 5));
  ck_ok(nnkit_normalizer_fit(nz, floats));
  nnkit_net *net = make_classifier(5, 4);
  ck_ok(nnkit_net_set_normalizer(net, nz));
  float p[600 * 3];
  int32_t c[600];
  double loss, acc;
  ck_ok(nnkit_net_predict_proba(p, n * 3, net, x, n)); /* sizes the net */
  uint64_t before = nnkit__alloc_count();
  ck_ok(nnkit_net_predict_proba(p, n * 3, net, x, n));
  ck_ok(nnkit_net_predict(c, net, x, n));
  ck_ok(nnkit_net_evaluate(&loss, &acc, net, floats));
  ck_ok(nnkit_net_evaluate(&loss, &acc, net, bytes)); /* decoded in its buffer */
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
  free(x);
  free(y);
}
END_TEST

START_TEST(net_preprocessing_rejects_bad_arguments)
{
  nnkit_net *net = make_classifier(6, 1);
  float x[12] = {1, 2, 3, 4, 5, 6, 6, 5, 4, 3, 2, 0};
  int32_t y[2] = {0, 1};
  size_t six = 6, three = 3;
  nnkit_dataset *ds = NULL, *ds3 = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, 2, &six, 1, 2));
  ck_ok(nnkit_dataset_from_buffers(&ds3, x, y, 2, &three, 1, 2));
  nnkit_normalizer *nz = NULL, *nz3 = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_fails(nnkit_net_set_normalizer(net, nz), NNKIT_E_STATE, "not fitted");
  ck_ok(nnkit_normalizer_fit(nz, ds));
  ck_fails(nnkit_net_set_normalizer(NULL, nz), NNKIT_E_INVALID, "net is NULL");
  ck_ok(nnkit_normalizer_create(&nz3, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(nz3, ds3));
  ck_ok(nnkit_net_set_normalizer(net, nz));
  const nnkit_normalizer *own = nnkit_net_normalizer(net);
  ck_fails(nnkit_net_set_normalizer(net, nz3), NNKIT_E_SHAPE,
           "the normalizer gives 3 values per sample but the net takes 6");
  ck_assert_ptr_eq(nnkit_net_normalizer(net), own); /* kept */
  ck_ok(nnkit_net_set_normalizer(net, own));          /* its own: a copy */
  ck_assert_ptr_nonnull(nnkit_net_normalizer(net));
  ck_assert_ptr_null(nnkit_net_normalizer(NULL));
  /* class names */
  const char *names[4] = {"a", "b", "c", "d"}, *holes[3] = {"a", NULL, "c"};
  ck_fails(nnkit_net_set_class_names(net, names, 4), NNKIT_E_SHAPE,
           "4 class names for 3 outputs");
  ck_fails(nnkit_net_set_class_names(net, names, 2), NNKIT_E_SHAPE,
           "2 class names for 3 outputs");
  ck_fails(nnkit_net_set_class_names(net, holes, 3), NNKIT_E_INVALID, "name 1 is NULL");
  ck_fails(nnkit_net_set_class_names(net, NULL, 3), NNKIT_E_INVALID, "names is NULL");
  ck_fails(nnkit_net_set_class_names(NULL, names, 3), NNKIT_E_INVALID, "net is NULL");
  nnkit_net *empty = make_net(6, 1);
  ck_fails(nnkit_net_set_class_names(empty, names, 6), NNKIT_E_STATE, "no layers");
  ck_ok(nnkit_net_set_class_names(net, names + 1, 3));
  ck_fails(nnkit_net_set_class_names(net, names, 4), NNKIT_E_SHAPE, "outputs");
  ck_assert_str_eq(nnkit_net_class_name(net, 0), "b"); /* kept */
  ck_assert_str_eq(nnkit_net_class_name(net, 2), "d");
  ck_assert_ptr_null(nnkit_net_class_name(net, 3));
  ck_assert_ptr_null(nnkit_net_class_name(NULL, 0));
  ck_assert_ptr_null(nnkit_net_class_name(empty, 0));
  nnkit_net_free(empty);
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  nnkit_normalizer_free(nz3);
  nnkit_dataset_free(ds);
  nnkit_dataset_free(ds3);
}
END_TEST

typedef struct attach_case {
  nnkit_net *net;
  const nnkit_normalizer *nz;
  const char *const *names;
} attach_case;

static nnkit_status attach_once(const void *arg)
{
  const attach_case *a = arg;
  const nnkit_normalizer *old = nnkit_net_normalizer(a->net);
  nnkit_status st = nnkit_net_set_normalizer(a->net, a->nz);
  if (st != NNKIT_OK) {
    ck_assert_ptr_eq(nnkit_net_normalizer(a->net), old);
    return st;
  }
  ck_assert_ptr_nonnull(nnkit_net_normalizer(a->net));
  st = nnkit_net_set_class_names(a->net, a->names, 3);
  if (st == NNKIT_OK)
    ck_assert_str_eq(nnkit_net_class_name(a->net, 2), "c");
  return st;
}

START_TEST(net_preprocessing_survives_allocation_failures)
{
  size_t n = 40;
  nnkit_dataset *bytes = NULL, *floats = NULL;
  float *x = NULL;
  int32_t *y = NULL;
  raw_sets(n, &bytes, &floats, &x, &y);
  static const char *const names[3] = {"a", "b", "c"};
  for (int pca = 0; pca <= 1; pca++) {
    nnkit_normalizer *nz = NULL;
    ck_ok(nnkit_normalizer_create(&nz, pca ? NNKIT_NORM_PCA_WHITEN : NNKIT_NORM_CHANNEL_MEAN));
    if (pca)
      ck_ok(nnkit_normalizer_set(nz, NNKIT_NORM_COMPONENTS, 2));
    ck_ok(nnkit_normalizer_fit(nz, floats));
    nnkit_net *net = make_classifier(nnkit_normalizer_out_size(nz), 2);
    attach_case a = {net, nz, names};
    uint64_t k = tu_alloc_sweep(attach_once, &a, "nnkit_net_set_normalizer",
                                NNKIT_OK);
    ck_assert_uint_ge(k, 3);
    nnkit_net_free(net);
    nnkit_normalizer_free(nz);
  }
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
  free(x);
  free(y);
}
END_TEST

/* The trainer takes normalized data and does not apply an attached
 * normalizer, to its training batches nor to its validation figures: a
 * net with one trains and validates bit-identically to one without. */
START_TEST(trainer_ignores_the_attached_normalizer)
{
  size_t n = 90;
  nnkit_dataset *bytes = NULL, *floats = NULL;
  float *x = NULL;
  int32_t *y = NULL;
  raw_sets(n, &bytes, &floats, &x, &y);
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(nz, floats));
  ck_ok(nnkit_normalizer_apply(nz, floats)); /* normalized, as a pipeline gives */
  nnkit_dataset *tr_set = NULL, *val = NULL;
  ck_ok(nnkit_dataset_split(&tr_set, &val, floats, 0.3, 1));
  nnkit_net *nets[2];
  double vloss[2], vacc[2];
  for (int w = 0; w < 2; w++) {
    nets[w] = make_classifier(6, 5);
    if (w)
      ck_ok(nnkit_net_set_normalizer(nets[w], nz));
    nnkit_optimizer *opt = NULL;
    nnkit_trainer *tr = NULL;
    ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
    ck_ok(nnkit_trainer_create(&tr, nets[w], opt));
    ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
    ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
    ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SANITY, 1));
    ck_ok(nnkit_trainer_fit(tr, tr_set, val));
    ck_ok(nnkit_trainer_metric(&vloss[w], tr, 2, NNKIT_METRIC_VAL_LOSS));
    ck_ok(nnkit_trainer_metric(&vacc[w], tr, 2, NNKIT_METRIC_VAL_ACC));
    nnkit_trainer_free(tr);
    nnkit_optimizer_free(opt);
  }
  ck_assert(vloss[0] == vloss[1] && vacc[0] == vacc[1]);
  ck_assert(memcmp(nnkit_net_params(nets[0]), nnkit_net_params(nets[1]),
                   nnkit_net_num_params(nets[0]) * sizeof(float)) == 0);
  /* and its figures are those of the net on the normalized set */
  double l0;
  ck_ok(nnkit__net_evaluate_normalized(&l0, NULL, nets[1], val));
  double l1;
  ck_ok(nnkit_net_evaluate(&l1, NULL, nets[0], val));
  ck_assert(l0 == l1);
  nnkit_net_free(nets[0]);
  nnkit_net_free(nets[1]);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(tr_set);
  nnkit_dataset_free(val);
  nnkit_dataset_free(bytes);
  nnkit_dataset_free(floats);
  free(x);
  free(y);
}
END_TEST

/* Batches whose buffer sizes do not fit in size_t (batch x width x 4 used
 * to wrap in the net's reserve: tiny buffers, then writes past them) are
 * an error with a sentence; the net still works afterwards. Two nets: a
 * dense one with dropout and layernorm, and a small CNN (conv, maxpool,
 * slice-wise runs). The x buffer is small: nothing may read it. */
START_TEST(net_refuses_batches_beyond_memory)
{
  const size_t huge[] = {(size_t)1 << 62, SIZE_MAX / 2, SIZE_MAX / 3, SIZE_MAX};
  for (int kind = 0; kind < 2; kind++) {
    nnkit_net *net = NULL;
    size_t in;
    if (kind == 0) {
      in = 4;
      ck_ok(nnkit_net_create(&net, &in, 1, 3));
      ck_ok(nnkit_net_add_dense(net, 8));
      ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
      ck_ok(nnkit_net_add_dropout(net, 0.25));
      ck_ok(nnkit_net_add_layernorm(net, 1e-5));
      ck_ok(nnkit_net_add_dense(net, 3));
    } else {
      size_t shape[3] = {1, 6, 6};
      in = 36;
      ck_ok(nnkit_net_create(&net, shape, 3, 3));
      ck_ok(nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, 1, 1, 1));
      ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
      ck_ok(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
      ck_ok(nnkit_net_add_flatten(net));
      ck_ok(nnkit_net_add_dense(net, 3));
    }
    nnkit_optimizer *opt = NULL;
    ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
    float x[2 * 36];
    tu_fill_uniform(x, 2 * in, 5, -1, 1);
    int32_t y[2] = {0, 2};
    float out[6];
    ck_ok(nnkit_net_forward(net, x, 2, out, 6)); /* buffers for 2 exist */
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++) {
      nnkit_clear_error();
      nnkit_status st = nnkit_net_forward(net, x, huge[i], NULL, 0);
      ck_assert_msg(st == NNKIT_E_INVALID || st == NNKIT_E_NOMEM,
                    "net %d, forward of %zu: status %d", kind, huge[i], (int)st);
      ck_assert_msg(strstr(nnkit_last_error(), "batch") != NULL, "sentence '%s'",
                    nnkit_last_error());
      /* out too small for the batch: an error, never a wrapped comparison */
      ck_assert_int_eq(nnkit_net_forward(net, x, huge[i], out, 6), NNKIT_E_INVALID);
      double loss = -1;
      nnkit_clear_error();
      st = nnkit_optimizer_train_batch(&loss, opt, net, x, huge[i], y, NULL);
      ck_assert_msg(st == NNKIT_E_INVALID || st == NNKIT_E_NOMEM,
                    "net %d, train_batch of %zu: status %d", kind, huge[i], (int)st);
      ck_assert(strlen(nnkit_last_error()) > 0);
    }
    /* the net still works */
    double loss;
    ck_ok(nnkit_optimizer_train_batch(&loss, opt, net, x, 2, y, NULL));
    ck_assert(isfinite(loss));
    ck_ok(nnkit_net_forward(net, x, 2, out, 6));
    nnkit_optimizer_free(opt);
    nnkit_net_free(net);
  }
}
END_TEST

static Suite *model_suite(void)
{
  Suite *s = suite_create("model");
  TCase *ti = tcase_create("init");
  tcase_add_test(ti, init_create_rejects_bad_values);
  tcase_add_test(ti, init_statistics_match_formulas);
  tcase_add_test(ti, init_fill_is_reproducible);
  suite_add_tcase(s, ti);
  TCase *tg = tcase_create("gradients");
  tcase_add_loop_test(tg, dense_blas_matches_naive_twin, 0, 2);
  tcase_add_loop_test(tg, gemm_matches_definition, 0, 2);
  tcase_add_test(tg, gradcheck_activations_with_cross_entropy);
  tcase_add_test(tg, gradcheck_activations_with_mse);
  tcase_add_test(tg, gradcheck_leaky_slope_and_mse_labels);
  tcase_add_test(tg, softmax_cross_entropy_fusion);
  tcase_add_test(tg, loss_closed_forms);
  suite_add_tcase(s, tg);
  TCase *tn = tcase_create("net");
  tcase_add_test(tn, net_shapes_and_descriptions);
  tcase_add_test(tn, net_rejects_bad_arguments);
  tcase_add_test(tn, net_set_init_and_defaults);
  tcase_add_test(tn, net_same_seed_same_params);
  tcase_add_test(tn, net_predict_and_evaluate);
  tcase_add_test(tn, net_forward_allocates_nothing_after_first_batch);
  tcase_add_test(tn, net_survives_allocation_failures);
  tcase_add_test(tn, net_layer_options_are_keys);
  tcase_add_test(tn, net_layer_set_takes_effect);
  tcase_add_test(tn, net_tensors_by_role);
  tcase_add_test(tn, net_refuses_batches_beyond_memory);
  suite_add_tcase(s, tn);
  TCase *tk = tcase_create("kernel choice");
  tcase_add_test(tk, kernels_mode_is_public_and_checked);
  tcase_add_test(tk, choose_measures_once_and_keeps_the_faster);
  tcase_add_test(tk, choose_from_threads_gives_one_verdict);
  tcase_add_test(tk, profile_counts_layers_and_names_kernels);
  suite_add_tcase(s, tk);

  TCase *tp = tcase_create("preprocessing");
  tcase_add_test(tp, net_normalizer_raw_input_calls);
  tcase_add_test(tp, net_normalizer_allocates_nothing_per_call);
  tcase_add_test(tp, net_preprocessing_rejects_bad_arguments);
  tcase_add_test(tp, net_preprocessing_survives_allocation_failures);
  tcase_add_test(tp, trainer_ignores_the_attached_normalizer);
  suite_add_tcase(s, tp);
  return s;
}

int main(void) { return nnkit_test_run(model_suite()); }
