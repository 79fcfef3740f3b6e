/* Shared scaffolding of the reliability machinery (tests/fuzz,
 * tests/reliability): a small training world whose net has every kind of
 * state a model file or checkpoint holds (convolution, batch norm, dropout,
 * a normalizer, Adam with a schedule), and the checks of a loader's answer.
 * Plain C without Check: these programs run under libFuzzer, an LD_PRELOAD
 * allocation shim and SIGKILL, where Check's forks would get in the way. */
#ifndef NNKIT_REL_WORLD_H
#define NNKIT_REL_WORLD_H

/* nftw(); include this header first. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nnkit.h>

/* A failed expectation of the test program itself (not of the library
 * under test): say where and stop. */
#define REL_CHECK(cond, ...)                                                   \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                                            \
      fprintf(stderr, " (last error: %s)\n", nnkit_last_error());             \
      exit(2);                                                                 \
    }                                                                          \
  } while (0)

#define REL_OK(call) REL_CHECK((call) == NNKIT_OK, "%s", #call)

enum { REL_N = 24, REL_SIDE = 6, REL_CLASSES = 3 };

typedef struct rel_world {
  nnkit_dataset *train;
  nnkit_normalizer *nz;
  nnkit_net *net;
  nnkit_optimizer *opt;
  nnkit_trainer *tr;
} rel_world;

/* The world's dataset: REL_N gray images [1, 6, 6], a bright row per class. */
static inline nnkit_status rel_dataset(nnkit_dataset **out)
{
  float x[REL_N * REL_SIDE * REL_SIDE];
  int32_t y[REL_N];
  uint32_t s = 12345;
  for (size_t i = 0; i < REL_N; i++) {
    y[i] = (int32_t)(i % REL_CLASSES);
    for (size_t k = 0; k < REL_SIDE * REL_SIDE; k++) {
      s = s * 1664525u + 1013904223u;
      x[i * REL_SIDE * REL_SIDE + k] =
          (float)(s >> 8) / 16777216.0f + (k / REL_SIDE == (size_t)y[i] ? 1.0f : 0.0f);
    }
  }
  size_t shape[3] = {1, REL_SIDE, REL_SIDE};
  return nnkit_dataset_from_buffers(out, x, y, REL_N, shape, 3, REL_CLASSES);
}

/* The world's net alone (seed 7). */
static inline nnkit_status rel_net(nnkit_net **out)
{
  size_t shape[3] = {1, REL_SIDE, REL_SIDE};
  nnkit_net *net = NULL;
  nnkit_status st = nnkit_net_create(&net, shape, 3, 7);
  if (st == NNKIT_OK)
    st = nnkit_net_add_conv2d(net, 2, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_batchnorm(net, 0.1, 1e-5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_flatten(net);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_layernorm(net, 1e-5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_TANH);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dropout(net, 0.25);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, REL_CLASSES);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  *out = net;
  return NNKIT_OK;
}

/* A trainer of net with Adam and a step schedule. */
static inline nnkit_status rel_trainer(nnkit_trainer **out, nnkit_optimizer **opt_out,
                                       nnkit_net *net)
{
  nnkit_optimizer *opt = NULL;
  nnkit_schedule *s = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_status st = nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.01);
  if (st == NNKIT_OK)
    st = nnkit_schedule_create(&s, NNKIT_SCHEDULE_STEP);
  if (st == NNKIT_OK)
    st = nnkit_schedule_set(s, NNKIT_SCHED_STEP_SIZE, 1);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set_schedule(opt, s); /* takes s */
  else
    nnkit_schedule_free(s);
  if (st == NNKIT_OK)
    st = nnkit_trainer_create(&tr, net, opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 8);
  if (st != NNKIT_OK) {
    nnkit_trainer_free(tr);
    nnkit_optimizer_free(opt);
    return st;
  }
  *out = tr;
  *opt_out = opt;
  return NNKIT_OK;
}

static inline void rel_world_free(rel_world *w)
{
  nnkit_trainer_free(w->tr);
  nnkit_optimizer_free(w->opt);
  nnkit_net_free(w->net);
  nnkit_normalizer_free(w->nz);
  nnkit_dataset_free(w->train);
  memset(w, 0, sizeof *w);
}

/* Builds the world; fit != 0 also trains it one epoch (so a checkpoint
 * holds optimizer state and a history). */
static inline nnkit_status rel_world_make(rel_world *w, int fit)
{
  memset(w, 0, sizeof *w);
  nnkit_status st = rel_dataset(&w->train);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_create(&w->nz, NNKIT_NORM_STANDARDIZE);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_fit(w->nz, w->train);
  if (st == NNKIT_OK)
    st = rel_net(&w->net);
  if (st == NNKIT_OK)
    st = rel_trainer(&w->tr, &w->opt, w->net);
  if (st == NNKIT_OK && fit)
    st = nnkit_trainer_fit(w->tr, w->train, NULL);
  if (st != NNKIT_OK)
    rel_world_free(w);
  return st;
}

/* The bytes of a file (malloc'ed, the caller frees), or NULL. */
static inline unsigned char *rel_read(const char *path, size_t *n)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return NULL;
  unsigned char *b = NULL;
  size_t cap = 0;
  *n = 0;
  for (;;) {
    if (*n == cap) {
      cap = cap ? 2 * cap : 65536;
      unsigned char *t = realloc(b, cap);
      if (!t) {
        free(b);
        fclose(f);
        return NULL;
      }
      b = t;
    }
    size_t r = fread(b + *n, 1, cap - *n, f);
    *n += r;
    if (r == 0)
      break;
  }
  fclose(f);
  return b;
}

/* Writes n bytes to path (0 on failure). */
static inline int rel_write(const char *path, const void *b, size_t n)
{
  FILE *f = fopen(path, "wb");
  if (!f)
    return 0;
  int ok = fwrite(b, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

static char rel_scratch_dir[512];

static inline int rel_rm_one(const char *path, const struct stat *sb, int flag,
                             struct FTW *ftw)
{
  (void)sb;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

static inline void rel_scratch_rm(void)
{
  if (rel_scratch_dir[0])
    nftw(rel_scratch_dir, rel_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A fresh private folder for scratch files, removed at exit: under
 * $NNKIT_REL_TMP, else /dev/shm (memory: fuzzing writes a file per
 * input), else /tmp. */
static inline const char *rel_scratch(void)
{
  char *dir = rel_scratch_dir;
  if (dir[0])
    return dir;
  const char *base = getenv("NNKIT_REL_TMP");
  struct stat sb;
  if (!base || !*base)
    base = stat("/dev/shm", &sb) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                                                                     : "/tmp";
  snprintf(dir, sizeof rel_scratch_dir, "%s/nnkit-rel-XXXXXX", base);
  if (!mkdtemp(dir)) {
    fprintf(stderr, "cannot make a folder in %s: %s\n", base, strerror(errno));
    exit(2);
  }
  atexit(rel_scratch_rm);
  return dir;
}

/* A loader's answer is clean: success, or an error status with a sentence. */
static inline int rel_clean(nnkit_status st)
{
  return st == NNKIT_OK || (st < 0 && nnkit_last_error()[0] != '\0');
}

#endif
