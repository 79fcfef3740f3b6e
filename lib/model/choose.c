/* Kernels chosen by measurement.
 *
 * Where nnkit has two ways to compute the same thing (its own GEMM or
 * cblas_sgemm for a dense layer's products; the direct convolution or
 * im2col + sgemm), which is faster depends on the CPU, on the BLAS build
 * (OpenBLAS pinned to other kernels by OPENBLAS_CORETYPE, say) and on the
 * shape, so it is not guessed from CPU flags: the first call on a shape
 * times every candidate on the real operands and keeps the fastest for
 * the rest of the process (nnkit__choose). The CPU flags only say which
 * candidates can run at all.
 *
 * The cache is keyed by a text naming the operation, its shape and the
 * thread count, so a choice is made once per shape and thread count. A
 * second thread asking for a key being measured waits for the verdict
 * instead of guessing: every call on one key in a process runs the same
 * kernel, so results within a process stay bitwise reproducible.
 * Across processes two close candidates may be ranked differently;
 * nnkit_set_kernels(NNKIT_KERNELS_OWN) (or NNKIT_KERNELS=own in the
 * environment) pins nnkit's kernels for runs that must match bit for bit
 * from one process to the next. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_CHOICES 512
#define KEY_LEN 96
#define REPS 3             /* timed runs per candidate (after one warm-up) */
#define LONG_RUN_S 0.02    /* a candidate this slow is timed once */

typedef struct choice {
  char key[KEY_LEN];
  int ncand, chosen, pending;
  const char *names[NNKIT__MAX_CANDIDATES];
  double secs[NNKIT__MAX_CANDIDATES]; /* best time of each */
} choice;

static struct {
  pthread_mutex_t lock;
  pthread_cond_t decided;
  choice table[MAX_CHOICES];
  int n;
  int mode;      /* an nnkit_kernels value; -1: not read from the environment yet */
} cache = {.lock = PTHREAD_MUTEX_INITIALIZER, .decided = PTHREAD_COND_INITIALIZER, .mode = -1};

/* The mode (cache.lock held): NNKIT_KERNELS from the environment the
 * first time, measured when it is unset or unknown. */
static int mode_locked(void)
{
  if (cache.mode < 0) {
    const char *e = getenv("NNKIT_KERNELS");
    cache.mode = NNKIT_KERNELS_MEASURE;
    if (e && !strcmp(e, "own"))
      cache.mode = NNKIT_KERNELS_OWN;
    else if (e && !strcmp(e, "blas"))
      cache.mode = NNKIT_KERNELS_BLAS;
  }
  return cache.mode;
}

NNKIT_API nnkit_status nnkit_set_kernels(nnkit_kernels mode)
{
  if (mode != NNKIT_KERNELS_MEASURE && mode != NNKIT_KERNELS_OWN &&
      mode != NNKIT_KERNELS_BLAS)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_set_kernels: %d is not a kernel mode; pass "
                      "NNKIT_KERNELS_MEASURE, NNKIT_KERNELS_OWN or NNKIT_KERNELS_BLAS",
                      (int)mode);
  pthread_mutex_lock(&cache.lock);
  cache.mode = (int)mode;
  pthread_mutex_unlock(&cache.lock);
  return NNKIT_OK;
}

NNKIT_API nnkit_kernels nnkit_get_kernels(void)
{
  pthread_mutex_lock(&cache.lock);
  int m = mode_locked();
  pthread_mutex_unlock(&cache.lock);
  return (nnkit_kernels)m;
}

static choice *find(const char *key)
{
  for (int i = 0; i < cache.n; i++)
    if (!strcmp(cache.table[i].key, key))
      return &cache.table[i];
  return NULL;
}

/* Times each candidate: one warm-up run each, then REPS rounds in turns
 * (a slow spell of a shared machine then hits all of them), keeping each
 * one's best. */
static void measure(choice *c, nnkit__candidate_fn run, void *ctx)
{
  for (int k = 0; k < c->ncand; k++) {
    double t0 = nnkit__now();
    run(ctx, k);
    c->secs[k] = nnkit__now() - t0;
  }
  int reps = REPS;
  for (int k = 0; k < c->ncand; k++)
    if (c->secs[k] > LONG_RUN_S)
      reps = 1;
  for (int r = 0; r < reps; r++)
    for (int k = 0; k < c->ncand; k++) {
      double t0 = nnkit__now();
      run(ctx, k);
      double t = nnkit__now() - t0;
      if (r == 0 || t < c->secs[k])
        c->secs[k] = t;
    }
  c->chosen = 0;
  for (int k = 1; k < c->ncand; k++)
    if (c->secs[k] < c->secs[c->chosen])
      c->chosen = k;
}

int nnkit__choice_known(const char *key, int ncand)
{
  pthread_mutex_lock(&cache.lock);
  int mode = mode_locked(), k = -1;
  if (mode != NNKIT_KERNELS_MEASURE) {
    k = mode == NNKIT_KERNELS_BLAS ? ncand - 1 : 0;
  } else {
    const choice *c = find(key);
    if (c && !c->pending)
      k = c->chosen < ncand ? c->chosen : 0;
  }
  pthread_mutex_unlock(&cache.lock);
  return k;
}

int nnkit__choose(const char *key, int ncand, const char *const *names,
                  nnkit__candidate_fn run, void *ctx)
{
  if (ncand <= 1)
    return 0;
  if (ncand > NNKIT__MAX_CANDIDATES)
    ncand = NNKIT__MAX_CANDIDATES;
  pthread_mutex_lock(&cache.lock);
  int mode = mode_locked();
  if (mode != NNKIT_KERNELS_MEASURE) {
    pthread_mutex_unlock(&cache.lock);
    return mode == NNKIT_KERNELS_BLAS ? ncand - 1 : 0;
  }
  choice *c = find(key);
  if (c) {
    while (c->pending)
      pthread_cond_wait(&cache.decided, &cache.lock);
    int k = c->chosen;
    pthread_mutex_unlock(&cache.lock);
    return k < ncand ? k : 0;
  }
  if (cache.n == MAX_CHOICES) { /* no room: nnkit's own, always */
    pthread_mutex_unlock(&cache.lock);
    return 0;
  }
  c = &cache.table[cache.n++];
  snprintf(c->key, sizeof c->key, "%s", key);
  c->ncand = ncand;
  c->pending = 1;
  for (int k = 0; k < ncand; k++)
    c->names[k] = names[k];
  pthread_mutex_unlock(&cache.lock);

  choice m = *c; /* measured outside the lock: other keys go on meanwhile */
  measure(&m, run, ctx);

  pthread_mutex_lock(&cache.lock);
  memcpy(c->secs, m.secs, sizeof c->secs);
  c->chosen = m.chosen;
  c->pending = 0;
  pthread_cond_broadcast(&cache.decided);
  pthread_mutex_unlock(&cache.lock);
  return m.chosen;
}

/* Appends to buf[*n..cap) like snprintf, keeping *n the length the whole
 * text would have. */
#define APPEND(buf, cap, n, ...)                                                    \
  do {                                                                              \
    int w_ = snprintf((buf) + (*(n) < (cap) ? *(n) : (cap)),                        \
                      (cap) > *(n) ? (cap) - *(n) : 0, __VA_ARGS__);                \
    *(n) += w_ > 0 ? (size_t)w_ : 0;                                                \
  } while (0)

/* "nnkit 0.412 ms < cblas 0.455 ms": the candidates fastest first (the
 * first one runs). */
static void describe(const choice *c, char *buf, size_t cap, size_t *n)
{
  int order[NNKIT__MAX_CANDIDATES];
  for (int k = 0; k < c->ncand; k++)
    order[k] = k;
  for (int i = 1; i < c->ncand; i++)
    for (int j = i; j > 0 && c->secs[order[j]] < c->secs[order[j - 1]]; j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  for (int i = 0; i < c->ncand; i++)
    APPEND(buf, cap, n, "%s%s %.3f ms", i ? " < " : "", c->names[order[i]],
           c->secs[order[i]] * 1e3);
}

size_t nnkit__choice_text(const char *key, char *buf, size_t cap)
{
  if (cap)
    buf[0] = '\0';
  pthread_mutex_lock(&cache.lock);
  const choice *c = find(key);
  size_t n = 0;
  if (c && !c->pending)
    describe(c, buf, cap, &n);
  pthread_mutex_unlock(&cache.lock);
  return n;
}

void nnkit__choice_explain(const char *key, int ncand, const char *const *names,
                           int available, char *buf, size_t cap)
{
  size_t n = 0;
  if (cap)
    buf[0] = '\0';
  if (!available) {
    APPEND(buf, cap, &n, "%s (the CPU cannot run %s)", names[ncand - 1], names[0]);
    return;
  }
  int mode = nnkit_get_kernels();
  if (mode == NNKIT_KERNELS_OWN)
    APPEND(buf, cap, &n, "%s (NNKIT_KERNELS_OWN)", names[0]);
  else if (mode == NNKIT_KERNELS_BLAS)
    APPEND(buf, cap, &n, "%s (NNKIT_KERNELS_BLAS)", names[ncand - 1]);
  else if (nnkit__choice_text(key, buf, cap) == 0)
    APPEND(buf, cap, &n, "%s (not measured: no run yet, or forced)", names[0]);
}

size_t nnkit__kernel_report(char *buf, size_t cap)
{
  size_t n = 0;
  if (cap)
    buf[0] = '\0';
  pthread_mutex_lock(&cache.lock);
  for (int i = 0; i < cache.n; i++) {
    const choice *c = &cache.table[i];
    if (c->pending)
      continue;
    APPEND(buf, cap, &n, "%s: ", c->key);
    describe(c, buf, cap, &n);
    APPEND(buf, cap, &n, "\n");
  }
  pthread_mutex_unlock(&cache.lock);
  return n;
}

void nnkit__choices_forget(void)
{
  pthread_mutex_lock(&cache.lock);
  int busy = 0;
  for (int i = 0; i < cache.n; i++)
    busy |= cache.table[i].pending;
  if (!busy)
    cache.n = 0;
  pthread_mutex_unlock(&cache.lock);
}
