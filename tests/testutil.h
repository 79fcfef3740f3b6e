/* Shared helpers of the Check suites. */
#ifndef NNKIT_TESTUTIL_H
#define NNKIT_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* Asserts a call returned NNKIT_OK, showing the error sentence if not. */
#define ck_ok(call)                                                          \
  do {                                                                       \
    nnkit_status st_ = (call);                                               \
    ck_assert_msg(st_ == NNKIT_OK, "%s -> %d: %s", #call, (int)st_,          \
                  nnkit_last_error());                                       \
  } while (0)

/* Asserts a call failed with `status` and left a non-empty sentence that
 * contains `needle`. */
#define ck_fails(call, status, needle)                                       \
  do {                                                                       \
    nnkit_clear_error();                                                     \
    nnkit_status st_ = (call);                                               \
    ck_assert_msg(st_ == (status), "%s -> %d, expected %d (%s)", #call,      \
                  (int)st_, (int)(status), nnkit_last_error());              \
    ck_assert_msg(strlen(nnkit_last_error()) > 0, "%s: empty error", #call); \
    ck_assert_msg(strstr(nnkit_last_error(), (needle)) != NULL,              \
                  "%s: error '%s' lacks '%s'", #call, nnkit_last_error(),    \
                  (needle));                                                 \
  } while (0)

/* Runs a suite (fork mode unless CK_FORK=no) and returns the exit code. */
static inline int nnkit_test_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- data and checks shared by the suites ------------------------------ */

/* n floats uniform in [lo, hi), seeded (stream 99). */
static inline void tu_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 99);
  for (size_t i = 0; i < n; i++)
    x[i] = lo + (hi - lo) * (float)nnkit__rng_uniform(&r);
}

/* Four Gaussian blobs of 2-D points around the unit directions at radius 2
 * (class i % 4 for sample i), with the given spread; seeded. */
static inline nnkit_dataset *tu_blobs4(size_t n, double spread, uint64_t seed)
{
  float *x = malloc(n * 2 * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 0);
  for (size_t i = 0; i < n; i++) {
    int c = (int)(i % 4);
    double a = c * 1.5707963;
    x[2 * i] = (float)(2 * cos(a) + spread * nnkit__rng_normal(&r));
    x[2 * i + 1] = (float)(2 * sin(a) + spread * nnkit__rng_normal(&r));
    y[i] = c;
  }
  size_t shape[1] = {2};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 1, 4));
  free(x);
  free(y);
  return ds;
}

/* The same labelled samples twice: *bytes in the compact form (as an IDX
 * ubyte file loads) and *floats built from float buffers. Values are bytes
 * whose pattern, at class y, leans towards y (learnable); seeded. */
static inline void tu_compact_twins(nnkit_dataset **bytes, nnkit_dataset **floats,
                                    size_t n, const size_t *shape, size_t ndim,
                                    uint32_t classes, uint64_t seed)
{
  size_t per = 1;
  for (size_t i = 0; i < ndim; i++)
    per *= shape[i];
  ck_ok(nnkit__dataset_alloc_bytes(bytes, n, shape, ndim, 1));
  nnkit_dataset *b = *bytes;
  float *x = malloc(n * per * sizeof *x);
  ck_assert_ptr_nonnull(x);
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 7);
  for (size_t i = 0; i < n; i++) {
    int32_t y = (int32_t)(i % classes);
    b->labels[i] = y;
    for (size_t j = 0; j < per; j++) {
      double u = nnkit__rng_uniform(&r) * 160.0;
      if (j % classes == (size_t)y)
        u += 95.0;
      b->x8[i * per + j] = (uint8_t)u;
      x[i * per + j] = (float)b->x8[i * per + j];
    }
  }
  b->num_classes = classes;
  ck_ok(nnkit_dataset_from_buffers(floats, x, b->labels, n, shape, ndim, classes));
  free(x);
}

/* Asserts that every value of a and b is the same float, bit for bit,
 * whichever form (floats or compact bytes) each set holds. */
static inline void tu_same_values(const nnkit_dataset *a, const nnkit_dataset *b)
{
  size_t n = nnkit_dataset_count(a) * nnkit_dataset_sample_size(a);
  ck_assert_uint_eq(n, nnkit_dataset_count(b) * nnkit_dataset_sample_size(b));
  for (size_t i = 0; i < n; i++) {
    float u = nnkit__ds_at(a, i), v = nnkit__ds_at(b, i);
    ck_assert_msg(memcmp(&u, &v, sizeof u) == 0, "value %zu: %.9g vs %.9g", i,
                  (double)u, (double)v);
  }
}

/* Logger lines captured by tu_capture (nnkit_trainer_set_logger's
 * callback): the first 64, up to 511 characters each. */
typedef struct tu_lines {
  char l[64][512];
  int n;
} tu_lines;

static inline void tu_capture(const char *line, void *user)
{
  tu_lines *c = user;
  if (c->n < 64)
    snprintf(c->l[c->n++], sizeof c->l[0], "%s", line);
}

/* 1 when a captured line contains needle. */
static inline int tu_any_line(const tu_lines *c, const char *needle)
{
  for (int i = 0; i < c->n; i++)
    if (strstr(c->l[i], needle))
      return 1;
  return 0;
}

/* The loss of one forward pass (labels or targets), nothing else changed. */
static inline double tu_loss_at(nnkit_net *net, const float *x, size_t batch,
                                const int32_t *labels, const float *targets)
{
  double loss;
  ck_ok(nnkit_net_forward(net, x, batch, NULL, 0));
  ck_ok(nnkit__net_batch_loss(net, labels, targets, &loss, NULL));
  return loss;
}

/* Finite-difference gradient check of every parameter and every input
 * value against backward. Central differences in float with eps = 1e-2 on
 * a loss accumulated in double; float rounding of the forward pass bounds
 * the attainable agreement to about 1e-3 relative, so the tolerance is
 * 2e-2 relative (on |a| + |n|) or 2e-4 absolute. */
static inline void tu_grad_check(nnkit_net *net, const float *x0, size_t batch,
                                 const int32_t *labels, const float *targets)
{
  const double eps = 1e-2;
  size_t in = nnkit_net_input_size(net), np = nnkit_net_num_params(net);
  float *x = malloc(batch * in * sizeof *x);
  memcpy(x, x0, batch * in * sizeof *x);
  net->want_dinput = 1;
  ck_ok(nnkit_net_forward(net, x, batch, NULL, 0));
  double loss;
  ck_ok(nnkit_net_backward(net, labels, targets, &loss));
  ck_assert(isfinite(loss));
  float *p = nnkit_net_params(net);
  float *g = malloc((np ? np : 1) * sizeof *g);
  if (np)
    memcpy(g, nnkit_net_grads(net), np * sizeof *g);
  float *dx = malloc(batch * in * sizeof *dx);
  memcpy(dx, net->dinput, batch * in * sizeof *dx);
  for (size_t i = 0; i < np + batch * in; i++) {
    float *v = i < np ? &p[i] : &x[i - np];
    float keep = *v;
    *v = keep + (float)eps;
    double lp = tu_loss_at(net, x, batch, labels, targets);
    *v = keep - (float)eps;
    double lm = tu_loss_at(net, x, batch, labels, targets);
    *v = keep;
    double num = (lp - lm) / (2 * eps), an = i < np ? g[i] : dx[i - np];
    double err = fabs(num - an), scale = fabs(num) + fabs(an);
    ck_assert_msg(err <= 2e-4 || err <= 2e-2 * scale, "%s %zu: analytic %.6g vs numeric %.6g",
                  i < np ? "param" : "input", i < np ? i : i - np, an, num);
  }
  free(x);
  free(g);
  free(dx);
}

/* ---- temporary files ---------------------------------------------------- */

/* Paths handed out by tu_tmp_path, removed when the process exits (Check's
 * forked test processes exit after each test). */
static char **tu_tmp_paths;
static size_t tu_num_tmp, tu_cap_tmp;

static void tu_remove_tmp_files(void)
{
  for (size_t i = 0; i < tu_num_tmp; i++) {
    unlink(tu_tmp_paths[i]);
    free(tu_tmp_paths[i]);
  }
  free(tu_tmp_paths);
  tu_tmp_paths = NULL;
  tu_num_tmp = tu_cap_tmp = 0;
}

/* A fresh path "<NNKIT_TEST_TMPDIR>/<pid>_<serial>_<name>", unique per
 * process and call; nothing is there, and it is removed at exit. */
static inline void tu_tmp_path(char *buf, size_t len, const char *name)
{
  static unsigned serial;
  snprintf(buf, len, "%s/tu_%ld_%u_%s", NNKIT_TEST_TMPDIR, (long)getpid(), serial++,
           name);
  unlink(buf);
  if (tu_cap_tmp == 0)
    atexit(tu_remove_tmp_files); /* at most once per test process */
  if (tu_num_tmp == tu_cap_tmp) {
    size_t cap = tu_cap_tmp ? 2 * tu_cap_tmp : 64;
    char **p = realloc(tu_tmp_paths, cap * sizeof *p);
    ck_assert_ptr_nonnull(p);
    tu_tmp_paths = p;
    tu_cap_tmp = cap;
  }
  tu_tmp_paths[tu_num_tmp] = strdup(buf);
  ck_assert_ptr_nonnull(tu_tmp_paths[tu_num_tmp]);
  tu_num_tmp++;
}

/* ---- allocation failures ------------------------------------------------- */

/* Runs op once to count its allocations N, then with allocation k failing
 * for every k in 1..N: each run must return OK, NNKIT_E_NOMEM or `also`
 * (another status a failed allocation may surface as, e.g. NNKIT_E_FORMAT
 * from a parser that cannot tell; NNKIT_OK for none), with a sentence, and
 * leave nothing behind (ASan and valgrind see leaks). op frees what it
 * built on success and may assert more on each run. Returns N. */
typedef nnkit_status (*tu_op_fn)(const void *arg);

static inline uint64_t tu_alloc_sweep(tu_op_fn op, const void *arg, const char *what,
                                      nnkit_status also)
{
  uint64_t before = nnkit__alloc_count();
  ck_ok(op(arg));
  uint64_t n = nnkit__alloc_count() - before;
  ck_assert_msg(n > 0, "%s allocates nothing", what);
  for (uint64_t k = 1; k <= n; k++) {
    nnkit_clear_error();
    nnkit__alloc_fail_after(k);
    nnkit_status st = op(arg);
    nnkit__alloc_fail_after(0);
    ck_assert_msg(st == NNKIT_OK || st == NNKIT_E_NOMEM || (also && st == also),
                  "%s, allocation %llu failing: status %d (%s)", what,
                  (unsigned long long)k, (int)st, nnkit_last_error());
    if (st != NNKIT_OK)
      ck_assert_msg(strlen(nnkit_last_error()) > 0, "%s: no sentence", what);
  }
  return n;
}

#endif
