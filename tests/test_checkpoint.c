/* Checkpoints: resuming after an epoch and within one gives the
 * uninterrupted run's weights bit for bit (dropout, augmentation, a
 * schedule and Adam in play, with nnkit_trainer_fit() and with a pipeline),
 * and to 1e-5 with another thread count; every optimizer kind's state
 * round-trips; truncated, byte-flipped and foreign files are refused and
 * change nothing; allocation failures; periodic checkpoints keep K files
 * that each resume. */
#include <dirent.h>
#include <sys/stat.h>

#include "testutil.h"

enum { N = 96, SIDE = 8, CLASSES = 4, BS = 16, EPOCHS = 4 };

/* Images [1, 8, 8] of four classes: a bright quadrant plus noise. */
static nnkit_dataset *images(size_t n, uint64_t seed)
{
  float *x = malloc(n * SIDE * SIDE * sizeof *x);
  int32_t *y = malloc(n * sizeof *y);
  ck_assert(x && y);
  tu_fill_uniform(x, n * SIDE * SIDE, seed, 0.0f, 0.5f);
  for (size_t i = 0; i < n; i++) {
    y[i] = (int32_t)(i % CLASSES);
    size_t r0 = (size_t)(y[i] / 2) * (SIDE / 2), c0 = (size_t)(y[i] % 2) * (SIDE / 2);
    for (size_t r = 0; r < SIDE / 2; r++)
      for (size_t c = 0; c < SIDE / 2; c++)
        x[i * SIDE * SIDE + (r0 + r) * SIDE + c0 + c] += 1.0f;
  }
  size_t shape[3] = {1, SIDE, SIDE};
  nnkit_dataset *ds = NULL;
  ck_ok(nnkit_dataset_from_buffers(&ds, x, y, n, shape, 3, CLASSES));
  free(x);
  free(y);
  return ds;
}

/* A training run: data, a convnet with batch norm and dropout, Adam with
 * a per-epoch step schedule, and optionally an augmenting pipeline. */
typedef struct world {
  nnkit_dataset *train, *val;
  nnkit_net *net;
  nnkit_optimizer *opt;
  nnkit_trainer *tr;
  nnkit_augmenter *aug;
  nnkit_pipeline *pipe, *vpipe;
  int with_pipe;
} world;

/* Width of the hidden dense layer: wide enough in the thread test that
 * its GEMMs are split between threads. */
static size_t g_units = 16;

static void world_make(world *w, int with_pipe, uint64_t net_seed)
{
  memset(w, 0, sizeof *w);
  w->with_pipe = with_pipe;
  w->train = images(N, 1);
  w->val = images(32, 2);
  size_t shape[3] = {1, SIDE, SIDE};
  ck_ok(nnkit_net_create(&w->net, shape, 3, net_seed));
  ck_ok(nnkit_net_add_conv2d(w->net, 4, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
  ck_ok(nnkit_net_add_batchnorm(w->net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_activation(w->net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_flatten(w->net));
  ck_ok(nnkit_net_add_dense(w->net, g_units));
  ck_ok(nnkit_net_add_activation(w->net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dropout(w->net, 0.3));
  ck_ok(nnkit_net_add_dense(w->net, CLASSES));
  ck_ok(nnkit_optimizer_create(&w->opt, NNKIT_OPTIM_ADAM));
  ck_ok(nnkit_optimizer_set(w->opt, NNKIT_OPT_LR, 0.01));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_STEP));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_STEP_SIZE, 1));
  ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_GAMMA, 0.7));
  ck_ok(nnkit_optimizer_set_schedule(w->opt, s));
  ck_ok(nnkit_trainer_create(&w->tr, w->net, w->opt));
  ck_ok(nnkit_trainer_set(w->tr, NNKIT_TRAIN_EPOCHS, EPOCHS));
  ck_ok(nnkit_trainer_set(w->tr, NNKIT_TRAIN_BATCH_SIZE, BS));
  ck_ok(nnkit_trainer_set(w->tr, NNKIT_TRAIN_SEED, 5));
  if (with_pipe) {
    ck_ok(nnkit_augmenter_create(&w->aug));
    ck_ok(nnkit_augmenter_add(w->aug, NNKIT_AUG_TRANSLATE, 0.8, 1, 1));
    ck_ok(nnkit_augmenter_add(w->aug, NNKIT_AUG_NOISE, 0.5, 0.05, 0.1));
    ck_ok(nnkit_pipeline_create(&w->pipe, w->train));
    ck_ok(nnkit_pipeline_set(w->pipe, NNKIT_PIPE_BATCH_SIZE, BS));
    ck_ok(nnkit_pipeline_set(w->pipe, NNKIT_PIPE_SEED, 9));
    ck_ok(nnkit_pipeline_set_augmenter(w->pipe, w->aug));
    ck_ok(nnkit_pipeline_create(&w->vpipe, w->val));
    ck_ok(nnkit_pipeline_set(w->vpipe, NNKIT_PIPE_SHUFFLE, 0));
  }
}

static nnkit_status world_fit(world *w)
{
  return w->with_pipe ? nnkit_trainer_fit_pipeline(w->tr, w->pipe, w->vpipe)
                      : nnkit_trainer_fit(w->tr, w->train, w->val);
}

static void world_free(world *w)
{
  nnkit_trainer_free(w->tr);
  nnkit_optimizer_free(w->opt);
  nnkit_net_free(w->net);
  nnkit_pipeline_free(w->pipe);
  nnkit_pipeline_free(w->vpipe);
  nnkit_augmenter_free(w->aug);
  nnkit_dataset_free(w->train);
  nnkit_dataset_free(w->val);
}

typedef struct stop_at {
  size_t epoch, batch;
} stop_at;

static int stop_batch(const nnkit_trainer *tr, size_t epoch, size_t batch, double loss,
                      void *user)
{
  (void)tr;
  (void)loss;
  const stop_at *s = user;
  return epoch == s->epoch && batch == s->batch;
}

static int stop_epoch(const nnkit_trainer *tr, size_t epoch, void *user)
{
  (void)tr;
  return epoch == ((const stop_at *)user)->epoch;
}

/* The uninterrupted run's parameters (malloc'd) and per-epoch losses. */
static float *reference(int with_pipe, double *losses, size_t *n)
{
  world w;
  world_make(&w, with_pipe, 3);
  ck_ok(world_fit(&w));
  *n = nnkit_net_num_params(w.net);
  float *p = malloc(*n * sizeof *p);
  ck_assert_ptr_nonnull(p);
  memcpy(p, nnkit_net_params(w.net), *n * sizeof *p);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(w.tr), EPOCHS);
  for (size_t e = 0; e < EPOCHS; e++)
    ck_ok(nnkit_trainer_metric(&losses[e], w.tr, e, NNKIT_METRIC_TRAIN_LOSS));
  world_free(&w);
  return p;
}

/* Stops a run (after epoch `s.epoch` with batch == SIZE_MAX, else after
 * that batch), checkpoints it to path, and resumes it in a new world whose
 * net was initialized differently, with `threads` threads. */
static void interrupted(world *w, int with_pipe, stop_at s, const char *path, int threads)
{
  world a;
  world_make(&a, with_pipe, 3);
  if (s.batch == SIZE_MAX)
    ck_ok(nnkit_trainer_add_epoch_callback(a.tr, stop_epoch, &s));
  else
    ck_ok(nnkit_trainer_add_batch_callback(a.tr, stop_batch, &s));
  ck_ok(world_fit(&a));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(a.tr), s.epoch + 1);
  ck_ok(nnkit_trainer_save_checkpoint(a.tr, path));
  world_free(&a);
  ck_ok(nnkit_set_num_threads(threads));
  world_make(w, with_pipe, 77);
  /* EPOCHS is the checkpoint's fit's business, not this trainer's. */
  ck_ok(nnkit_trainer_set(w->tr, NNKIT_TRAIN_EPOCHS, 1));
  ck_ok(nnkit_trainer_resume(w->tr, path));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(w->tr), s.epoch + (s.batch == SIZE_MAX));
  ck_ok(world_fit(w));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(w->tr), EPOCHS);
}

START_TEST(resume_is_bit_exact)
{
  int with_pipe = _i;
  ck_ok(nnkit_set_num_threads(1));
  double ref_loss[EPOCHS];
  size_t n;
  float *ref = reference(with_pipe, ref_loss, &n);
  stop_at points[] = {{1, SIZE_MAX}, {0, SIZE_MAX}, {1, 2}, {2, 0}, {0, 4}};
  for (size_t k = 0; k < sizeof points / sizeof points[0]; k++) {
    char path[512];
    tu_tmp_path(path, sizeof path, "resume.safetensors");
    world w;
    interrupted(&w, with_pipe, points[k], path, 1);
    ck_assert_uint_eq(nnkit_net_num_params(w.net), n);
    ck_assert_msg(memcmp(nnkit_net_params(w.net), ref, n * sizeof *ref) == 0,
                  "stop at epoch %zu batch %zu (pipeline %d): weights differ",
                  points[k].epoch, points[k].batch, with_pipe);
    /* The history is the uninterrupted run's: the cut epoch is whole. */
    for (size_t e = 0; e < EPOCHS; e++) {
      double v;
      ck_ok(nnkit_trainer_metric(&v, w.tr, e, NNKIT_METRIC_TRAIN_LOSS));
      ck_assert_msg(v == ref_loss[e], "epoch %zu loss %.17g != %.17g", e, v, ref_loss[e]);
    }
    ck_assert_uint_eq(nnkit_history_batches(nnkit_trainer_history(w.tr)),
                      EPOCHS * (N / BS));
    world_free(&w);
  }
  free(ref);
}
END_TEST

START_TEST(resume_with_other_threads_is_close)
{
  g_units = 512;
  ck_ok(nnkit_set_num_threads(1));
  double ref_loss[EPOCHS];
  size_t n;
  float *ref = reference(0, ref_loss, &n);
  char path[512];
  tu_tmp_path(path, sizeof path, "threads.safetensors");
  world w;
  stop_at s = {1, 3};
  interrupted(&w, 0, s, path, 2);
  const float *p = nnkit_net_params(w.net);
  size_t differ = 0;
  for (size_t i = 0; i < n; i++) {
    ck_assert_msg(fabsf(p[i] - ref[i]) <= 1e-5f * fmaxf(fabsf(ref[i]), 1e-2f),
                  "parameter %zu: %g vs %g", i, p[i], ref[i]);
    differ += p[i] != ref[i];
  }
  fprintf(stderr, "resume_with_other_threads_is_close: %zu of %zu parameters differ "
          "in their bits\n", differ, n);
  world_free(&w);
  ck_ok(nnkit_set_num_threads(1));
  g_units = 16; /* for the next tests when they share the process */
  free(ref);
}
END_TEST

/* A small dense net for the file-level tests. */
static nnkit_net *mlp(uint64_t seed)
{
  size_t in = 2;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, 8));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dropout(net, 0.2));
  ck_ok(nnkit_net_add_dense(net, 4));
  return net;
}

static void get_state(const nnkit_optimizer *o, float **st, size_t *ns, double **sc,
                      size_t *nc)
{
  *ns = nnkit_optimizer_state_size(o);
  *nc = nnkit_optimizer_state_scalars(o);
  *st = malloc((*ns + 1) * sizeof **st);
  *sc = malloc((*nc + 1) * sizeof **sc);
  ck_ok(nnkit_optimizer_get_state(*st, *ns, *sc, *nc, o));
}

START_TEST(every_optimizer_kind_round_trips)
{
  nnkit_dataset *ds = tu_blobs4(64, 0.3, 1);
  for (size_t k = 0; k < nnkit__optim_num_kinds(); k++) {
    const nnkit__optim_kind_desc *d = nnkit__optim_kind_at(k);
    nnkit_net *a = mlp(1), *b = mlp(2);
    nnkit_optimizer *oa = NULL, *ob = NULL;
    ck_ok(nnkit_optimizer_create(&oa, d->kind));
    ck_ok(nnkit_optimizer_create(&ob, d->kind));
    /* Settings that use every state buffer the kind has. */
    if (nnkit_optimizer_set(oa, NNKIT_OPT_MOMENTUM, 0.9) != NNKIT_OK)
      nnkit_clear_error();
    ck_ok(nnkit_optimizer_set(oa, NNKIT_OPT_WEIGHT_DECAY, 1e-3));
    ck_ok(nnkit_optimizer_set(oa, NNKIT_OPT_CLIP_NORM, 5));
    nnkit_trainer *ta = NULL, *tb = NULL;
    ck_ok(nnkit_trainer_create(&ta, a, oa));
    ck_ok(nnkit_trainer_create(&tb, b, ob));
    ck_ok(nnkit_trainer_set(ta, NNKIT_TRAIN_EPOCHS, 2));
    ck_ok(nnkit_trainer_set(ta, NNKIT_TRAIN_BATCH_SIZE, 16));
    ck_ok(nnkit_trainer_fit(ta, ds, NULL));
    char path[512];
    tu_tmp_path(path, sizeof path, "kind.safetensors");
    ck_ok(nnkit_trainer_save_checkpoint(ta, path));
    ck_ok(nnkit_trainer_resume(tb, path));
    float *sa, *sb;
    double *ca, *cb;
    size_t nsa, nsb, nca, ncb;
    get_state(oa, &sa, &nsa, &ca, &nca);
    get_state(ob, &sb, &nsb, &cb, &ncb);
    ck_assert_msg(nsa == nsb && nca == ncb, "%s: state sizes differ", d->name);
    ck_assert_msg(nsa == 0 || memcmp(sa, sb, nsa * sizeof *sa) == 0, "%s: state", d->name);
    ck_assert_msg(memcmp(ca, cb, nca * sizeof *ca) == 0, "%s: scalars", d->name);
    ck_assert_msg(nsa > 0 || d->max_state == 0, "%s: no state was saved", d->name);
    for (int key = 1; key < NNKIT__OPT_KEYS; key++) {
      double va, vb;
      if (nnkit_optimizer_get(&va, oa, (nnkit_optim_param)key) != NNKIT_OK) {
        nnkit_clear_error();
        continue;
      }
      ck_ok(nnkit_optimizer_get(&vb, ob, (nnkit_optim_param)key));
      ck_assert_msg(va == vb, "%s key %d: %g vs %g", d->name, key, va, vb);
    }
    ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(b),
                     nnkit_net_num_params(a) * sizeof(float)) == 0);
    /* Both go on identically: the dropout stream position came along. */
    ck_ok(nnkit_trainer_fit(ta, ds, NULL));
    ck_ok(nnkit_trainer_set(tb, NNKIT_TRAIN_EPOCHS, 2));
    ck_ok(nnkit_trainer_fit(tb, ds, NULL));
    ck_assert_msg(memcmp(nnkit_net_params(a), nnkit_net_params(b),
                         nnkit_net_num_params(a) * sizeof(float)) == 0,
                  "%s: training after the resume differs", d->name);
    free(sa);
    free(sb);
    free(ca);
    free(cb);
    nnkit_trainer_free(ta);
    nnkit_trainer_free(tb);
    nnkit_optimizer_free(oa);
    nnkit_optimizer_free(ob);
    nnkit_net_free(a);
    nnkit_net_free(b);
  }
  nnkit_dataset_free(ds);
}
END_TEST

static unsigned char *slurp(const char *path, size_t *len)
{
  FILE *f = fopen(path, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *b = malloc(*len + 1);
  ck_assert_uint_eq(fread(b, 1, *len, f), *len);
  fclose(f);
  return b;
}

static void spit(const char *path, const unsigned char *b, size_t len)
{
  FILE *f = fopen(path, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(b, 1, len, f), len);
  fclose(f);
}

/* A small trainer stopped within its second epoch. */
static nnkit_trainer *small_trainer(nnkit_net **net, nnkit_optimizer **opt,
                                    nnkit_dataset *ds)
{
  *net = mlp(4);
  ck_ok(nnkit_optimizer_create(opt, NNKIT_OPTIM_NADAM));
  nnkit_schedule *s = NULL;
  ck_ok(nnkit_schedule_create(&s, NNKIT_SCHEDULE_PLATEAU));
  ck_ok(nnkit_optimizer_set_schedule(*opt, s));
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_trainer_create(&tr, *net, *opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
  ck_ok(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_TRAIN_LOSS, 5, 0));
  if (ds) {
    stop_at s2 = {1, 1};
    ck_ok(nnkit_trainer_add_batch_callback(tr, stop_batch, &s2));
    ck_ok(nnkit_trainer_fit(tr, ds, NULL));
    nnkit_trainer_clear_callbacks(tr);
  }
  return tr;
}

START_TEST(damaged_files_are_refused_and_change_nothing)
{
  nnkit_dataset *ds = tu_blobs4(64, 0.3, 1);
  nnkit_net *na, *nb;
  nnkit_optimizer *oa, *ob;
  nnkit_trainer *ta = small_trainer(&na, &oa, ds), *tb = small_trainer(&nb, &ob, NULL);
  char good[512], bad[512], before[512], after[512];
  tu_tmp_path(good, sizeof good, "good.safetensors");
  tu_tmp_path(bad, sizeof bad, "bad.safetensors");
  tu_tmp_path(before, sizeof before, "before.safetensors");
  tu_tmp_path(after, sizeof after, "after.safetensors");
  ck_ok(nnkit_trainer_save_checkpoint(ta, good));
  ck_ok(nnkit_trainer_save_checkpoint(tb, before));
  size_t len, blen;
  unsigned char *b = slurp(good, &len);
  /* Every truncation. */
  for (size_t k = 0; k < len; k++) {
    spit(bad, b, k);
    nnkit_clear_error();
    nnkit_status st = nnkit_trainer_resume(tb, bad);
    ck_assert_msg(st == NNKIT_E_FORMAT, "truncated to %zu bytes: status %d (%s)", k,
                  (int)st, nnkit_last_error());
    ck_assert(strstr(nnkit_last_error(), bad) != NULL);
  }
  /* Every byte flipped (one bit, then all bits). */
  for (int mask = 1; mask <= 0xff; mask += 0xfe)
    for (size_t k = 0; k < len; k++) {
      b[k] ^= (unsigned char)mask;
      spit(bad, b, len);
      b[k] ^= (unsigned char)mask;
      nnkit_clear_error();
      nnkit_status st = nnkit_trainer_resume(tb, bad);
      ck_assert_msg(st == NNKIT_E_FORMAT, "byte %zu ^ %#x: status %d (%s)", k, mask,
                    (int)st, nnkit_last_error());
    }
  /* Nothing of tb changed: its own checkpoint is byte for byte the same. */
  ck_ok(nnkit_trainer_save_checkpoint(tb, after));
  unsigned char *x = slurp(before, &blen), *y;
  size_t alen;
  y = slurp(after, &alen);
  ck_assert(alen == blen && memcmp(x, y, alen) == 0);
  free(x);
  free(y);
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tb), 0);
  /* A model file is no checkpoint; the good file still loads. */
  ck_ok(nnkit_net_save(na, NULL, bad));
  ck_fails(nnkit_trainer_resume(tb, bad), NNKIT_E_FORMAT, "not an nnkit checkpoint");
  ck_ok(nnkit_trainer_resume(tb, good));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(tb), 1);
  /* ... and a checkpoint is no model file. */
  nnkit_net *as_model = (nnkit_net *)1;
  ck_fails(nnkit_net_load(&as_model, NULL, good), NNKIT_E_FORMAT,
           "is a training checkpoint, not a model file");
  ck_assert_ptr_null(as_model);
  free(b);
  nnkit_trainer_free(ta);
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(na);
  nnkit_net_free(nb);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(unlike_nets_and_optimizers_are_refused)
{
  nnkit_dataset *ds = tu_blobs4(64, 0.3, 1);
  nnkit_net *na, *nb;
  nnkit_optimizer *oa, *ob;
  nnkit_trainer *ta = small_trainer(&na, &oa, ds);
  char path[512];
  tu_tmp_path(path, sizeof path, "ckpt.safetensors");
  ck_ok(nnkit_trainer_save_checkpoint(ta, path));
  /* Another width. */
  size_t in = 2;
  ck_ok(nnkit_net_create(&nb, &in, 1, 4));
  ck_ok(nnkit_net_add_dense(nb, 9));
  ck_ok(nnkit_net_add_activation(nb, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dropout(nb, 0.2));
  ck_ok(nnkit_net_add_dense(nb, 4));
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_NADAM));
  nnkit_trainer *tb = NULL;
  ck_ok(nnkit_trainer_create(&tb, nb, ob));
  ck_fails(nnkit_trainer_resume(tb, path), NNKIT_E_SHAPE, "layer 0 (dense) has units 8");
  nnkit_trainer_free(tb);
  nnkit_net_free(nb);
  nnkit_optimizer_free(ob);
  /* Another optimizer kind; the same kind without the schedule. */
  nb = mlp(1);
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tb, nb, ob));
  ck_fails(nnkit_trainer_resume(tb, path), NNKIT_E_INVALID,
           "the checkpoint's optimizer is NAdam, the trainer's is SGD");
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(ob);
  ck_ok(nnkit_optimizer_create(&ob, NNKIT_OPTIM_NADAM));
  ck_ok(nnkit_trainer_create(&tb, nb, ob));
  ck_fails(nnkit_trainer_resume(tb, path), NNKIT_E_INVALID, "attach one of the same kind");
  ck_fails(nnkit_trainer_resume(tb, "/nonexistent/x"), NNKIT_E_IO, "/nonexistent/x");
  ck_fails(nnkit_trainer_resume(NULL, path), NNKIT_E_INVALID, "non-NULL");
  /* Saving through a symbolic link replaces its target, keeps the link and
   * the target's mode, and removes a killed save's temporary. */
  char link[512], stale[600];
  tu_tmp_path(link, sizeof link, "ckpt_link.safetensors");
  ck_assert_int_eq(symlink(path, link), 0);
  ck_assert_int_eq(chmod(path, 0600), 0);
  snprintf(stale, sizeof stale, "%s.tmp.ABCxyz", path);
  FILE *sf = fopen(stale, "wb");
  ck_assert_ptr_nonnull(sf);
  fclose(sf);
  ck_ok(nnkit_trainer_save_checkpoint(ta, link));
  struct stat sb;
  ck_assert_int_eq(lstat(link, &sb), 0);
  ck_assert(S_ISLNK(sb.st_mode));
  ck_assert_int_eq(lstat(path, &sb), 0);
  ck_assert(S_ISREG(sb.st_mode));
  ck_assert_int_eq(sb.st_mode & 07777, 0600);
  ck_assert_int_eq(access(stale, F_OK), -1);
  unlink(link);
  /* A FIFO without a writer: refused at once, not waited on. */
  char fifo[512];
  tu_tmp_path(fifo, sizeof fifo, "ckpt.fifo");
  unlink(fifo);
  ck_assert_int_eq(mkfifo(fifo, 0600), 0);
  alarm(10); /* a hang becomes a failure (SIGALRM) */
  ck_fails(nnkit_trainer_resume(tb, fifo), NNKIT_E_IO, "is a FIFO");
  alarm(0);
  unlink(fifo);
  ck_fails(nnkit_trainer_set_checkpoint_dir(tb, path), NNKIT_E_IO, "not a folder");
  ck_fails(nnkit_trainer_set_checkpoint_dir(tb, ""), NNKIT_E_INVALID, "empty");
  /* A missing folder is created with its missing parents; a regular file
   * on the way is refused. */
  char top[512], nested[600], under_file[600];
  tu_tmp_path(top, sizeof top, "ckpt-mkdirs");
  snprintf(nested, sizeof nested, "%s/a/b/", top);
  rmdir(nested);
  snprintf(under_file, sizeof under_file, "%s/a", top);
  rmdir(under_file);
  rmdir(top);
  ck_ok(nnkit_trainer_set_checkpoint_dir(tb, nested));
  struct stat nsb;
  ck_assert_int_eq(stat(nested, &nsb), 0);
  ck_assert(S_ISDIR(nsb.st_mode));
  snprintf(under_file, sizeof under_file, "%s/sub", path);
  ck_fails(nnkit_trainer_set_checkpoint_dir(tb, under_file), NNKIT_E_IO, "not a folder");
  ck_ok(nnkit_trainer_set_checkpoint_dir(tb, NULL));
  rmdir(nested);
  snprintf(under_file, sizeof under_file, "%s/a", top);
  rmdir(under_file);
  rmdir(top);
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(ob);
  nnkit_net_free(nb);
  nnkit_trainer_free(ta);
  nnkit_optimizer_free(oa);
  nnkit_net_free(na);
  nnkit_dataset_free(ds);
}
END_TEST

typedef struct sweep_arg {
  nnkit_trainer *tr;
  const char *path;
} sweep_arg;

static nnkit_status sweep_resume(const void *arg)
{
  const sweep_arg *a = arg;
  return nnkit_trainer_resume(a->tr, a->path);
}

static nnkit_status sweep_save(const void *arg)
{
  const sweep_arg *a = arg;
  return nnkit_trainer_save_checkpoint(a->tr, a->path);
}

START_TEST(allocation_failures)
{
  nnkit_dataset *ds = tu_blobs4(64, 0.3, 1);
  nnkit_net *na, *nb;
  nnkit_optimizer *oa, *ob;
  nnkit_trainer *ta = small_trainer(&na, &oa, ds), *tb = small_trainer(&nb, &ob, NULL);
  char path[512], out[512];
  tu_tmp_path(path, sizeof path, "sweep.safetensors");
  tu_tmp_path(out, sizeof out, "sweep_out.safetensors");
  sweep_arg s = {ta, path};
  tu_alloc_sweep(sweep_save, &s, "nnkit_trainer_save_checkpoint", NNKIT_OK);
  sweep_arg r = {tb, path};
  /* Only NNKIT_E_NOMEM: a failed parse of valid JSON is memory. */
  tu_alloc_sweep(sweep_resume, &r, "nnkit_trainer_resume", NNKIT_OK);
  /* tb now holds ta's state: its checkpoint is ta's, byte for byte. */
  ck_ok(nnkit_trainer_save_checkpoint(tb, out));
  size_t l1, l2;
  unsigned char *x = slurp(path, &l1), *y = slurp(out, &l2);
  ck_assert(l1 == l2 && memcmp(x, y, l1) == 0);
  free(x);
  free(y);
  nnkit_trainer_free(ta);
  nnkit_trainer_free(tb);
  nnkit_optimizer_free(oa);
  nnkit_optimizer_free(ob);
  nnkit_net_free(na);
  nnkit_net_free(nb);
  nnkit_dataset_free(ds);
}
END_TEST

/* checkpoint-epoch-* files in dir, and removes everything when clean. */
static size_t list_dir(const char *dir, int clean)
{
  DIR *d = opendir(dir);
  ck_assert_ptr_nonnull(d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.')
      continue;
    n += strncmp(e->d_name, "checkpoint-epoch-", 17) == 0;
    if (clean) {
      char p[1024];
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
  }
  closedir(d);
  if (clean)
    rmdir(dir);
  return n;
}

START_TEST(periodic_checkpoints_keep_k_and_each_resumes)
{
  ck_ok(nnkit_set_num_threads(1));
  char dir[512];
  tu_tmp_path(dir, sizeof dir, "ckdir");
  ck_assert_int_eq(mkdir(dir, 0755), 0);
  world w;
  world_make(&w, 0, 3);
  ck_ok(nnkit_trainer_set(w.tr, NNKIT_TRAIN_CHECKPOINT_EVERY, 1));
  ck_ok(nnkit_trainer_set(w.tr, NNKIT_TRAIN_CHECKPOINT_KEEP, 2));
  ck_ok(nnkit_trainer_set(w.tr, NNKIT_TRAIN_CHECKPOINT_BEST, 1));
  ck_fails(world_fit(&w), NNKIT_E_STATE, "nnkit_trainer_set_checkpoint_dir");
  ck_ok(nnkit_trainer_set_checkpoint_dir(w.tr, dir));
  ck_fails(world_fit(&w), NNKIT_E_STATE, "early stopping");
  ck_ok(nnkit_trainer_set_early_stopping(w.tr, NNKIT_METRIC_VAL_LOSS, 100, 0));
  ck_ok(world_fit(&w));
  ck_assert_uint_eq(nnkit_trainer_epochs_done(w.tr), EPOCHS);
  world_free(&w);
  ck_assert_uint_eq(list_dir(dir, 0), 2);
  /* Each kept file resumes to the uninterrupted run (early stopping with
   * a patience of 100 never stops, and the best weights are the last
   * epoch's or not: the resumed fit restores them as the whole one did). */
  const char *names[] = {"checkpoint-epoch-000003.safetensors",
                         "checkpoint-epoch-000004.safetensors",
                         "checkpoint-best.safetensors"};
  world full;
  world_make(&full, 0, 3);
  ck_ok(nnkit_trainer_set_early_stopping(full.tr, NNKIT_METRIC_VAL_LOSS, 100, 0));
  ck_ok(world_fit(&full));
  for (size_t k = 0; k < 3; k++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, names[k]);
    world r;
    world_make(&r, 0, 11);
    ck_ok(nnkit_trainer_resume(r.tr, p));
    if (k < 2) {
      if (k == 0) {
        /* The folder is the resuming program's to give again. */
        ck_fails(world_fit(&r), NNKIT_E_STATE, "need a folder");
        ck_ok(nnkit_trainer_set_checkpoint_dir(r.tr, dir));
        ck_ok(world_fit(&r)); /* the fourth epoch, then the best weights */
      }
      else
        ck_assert_uint_eq(nnkit_trainer_epochs_done(r.tr), EPOCHS);
      ck_assert(memcmp(nnkit_net_params(r.net), nnkit_net_params(full.net),
                       nnkit_net_num_params(r.net) * sizeof(float)) == 0);
    } else {
      size_t best;
      ck_ok(nnkit_trainer_best_epoch(&best, full.tr));
      ck_assert_uint_eq(nnkit_trainer_epochs_done(r.tr), best);
    }
    world_free(&r);
  }
  ck_assert_uint_eq(list_dir(dir, 1), 2);
  world_free(&full);
}
END_TEST

static Suite *checkpoint_suite(void)
{
  Suite *s = suite_create("checkpoint");
  TCase *tc = tcase_create("checkpoint");
  tcase_set_timeout(tc, 600);
  tcase_add_loop_test(tc, resume_is_bit_exact, 0, 2);
  tcase_add_test(tc, resume_with_other_threads_is_close);
  tcase_add_test(tc, every_optimizer_kind_round_trips);
  tcase_add_test(tc, damaged_files_are_refused_and_change_nothing);
  tcase_add_test(tc, unlike_nets_and_optimizers_are_refused);
  tcase_add_test(tc, allocation_failures);
  tcase_add_test(tc, periodic_checkpoints_keep_k_and_each_resumes);
  suite_add_tcase(s, tc);
  return s;
}

int main(void)
{
  return nnkit_test_run(checkpoint_suite());
}
