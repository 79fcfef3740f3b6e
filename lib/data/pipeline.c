/* Batch pipelines: dataset -> normalizer -> augmenter -> mini-batches,
 * with a background thread preparing batches ahead of the consumer.
 *
 * Determinism: an epoch's sample order is drawn at begin_epoch from
 * (seed, epoch) (nnkit_trainer_fit() batches through a plain pipeline of
 * its own, so a plain pipeline gives the trainer's batches), and batch j is a pure function of that
 * order, the dataset, the normalizer and augmenter copies, the seed and
 * the epoch (augmentation keys on the sample's position in the epoch). So
 * the batches do not depend on timing or PREFETCH.
 *
 * The normalizer is a pure per-sample function, so it is applied once, to
 * a pipeline-owned copy of the dataset, at the first begin_epoch after it
 * is set (in the calling thread, where BLAS may use every core); the
 * pipeline thread then only gathers and augments, never calling BLAS, so
 * it cannot contend with the training thread's threaded BLAS calls.
 *
 * Buffers: PREFETCH + 1 batch slots in a ring, the normalized copy and the
 * epoch order, all sized at the first begin_epoch after a setting changed.
 * Steady state allocates nothing.
 *
 * Handshake (one mutex, two condition variables): the worker fills batch j
 * into slot j % nslots once j < released + nslots, i.e. the slot's previous
 * batch has been released by the consumer; the consumer releases batch
 * taken - 1 when it asks for the next, waits until filled > taken, and
 * hands that slot out. begin_epoch and setters first stop the worker
 * (active = 0, then wait until it is not busy). */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define TWO_POW_53 9007199254740992.0
#define BALANCE_STREAM (UINT64_C(0xBA1A) << 40)

struct nnkit_pipeline {
  const nnkit_dataset *ds;
  /* settings */
  size_t batch_size;
  int shuffle, drop_last, balanced;
  size_t prefetch;
  uint64_t seed;
  nnkit_normalizer *nz;  /* owned copy, or NULL */
  nnkit_augmenter *aug;  /* owned copy, or NULL */
  /* output geometry */
  size_t out_size, out_ndim, out_shape[NNKIT_MAX_SAMPLE_DIMS];
  size_t ac, ah, aw; /* augmenter image geometry */
  /* buffers, valid when prepared */
  int prepared;
  size_t nslots, slot_cap; /* slot_cap = batch capacity of each slot */
  float *slot_x;
  int32_t *slot_y;
  float *slot_t;
  size_t *slot_n;
  float *normed; /* count x out_size: the dataset after the normalizer */
  float *row;    /* one decoded sample, for augmenting a compact set */
  size_t *order;
  size_t *cls_start, *cls_idx, *cls_present, num_present;
  /* what the buffers were prepared for (nnkit__pipeline_reuse) */
  size_t prep_count, prep_sample, prep_td;
  int prep_labels, prep_x8;
  /* the epoch */
  int active;
  uint64_t epoch;
  size_t num_batches, epoch_samples;
  size_t taken;   /* batches handed out */
  size_t current; /* slot of the current batch, SIZE_MAX = none */
  /* the worker */
  int thread_started;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  int quit, busy;
  size_t filled, next_fill, released;
};

/* ---- settings --------------------------------------------------------- */

#define INT NNKIT_BOUND_INTEGER
static const nnkit__spec pipe_params[] = {
  {0, NNKIT_PIPE_BATCH_SIZE, "batch size", 1, 65536, 64, INT},
  {0, NNKIT_PIPE_SHUFFLE, "shuffle", 0, 1, 1, INT},
  {0, NNKIT_PIPE_DROP_LAST, "drop last", 0, 1, 0, INT},
  {0, NNKIT_PIPE_BALANCED, "balanced", 0, 1, 0, INT},
  {0, NNKIT_PIPE_PREFETCH, "prefetch", 0, 16, 2, INT},
  {0, NNKIT_PIPE_SEED, "seed", 0, TWO_POW_53, 0, INT},
};
#undef INT

static const nnkit__spec *find_param(nnkit_pipe_param key, const char *fn)
{
  const nnkit__spec *s = nnkit__spec_find(pipe_params, sizeof pipe_params /
                                          sizeof pipe_params[0], 0, (int)key);
  if (!s)
    nnkit__err(NNKIT_E_INVALID, "%s: unknown setting %d; use an NNKIT_PIPE_* "
               "key", fn, (int)key);
  return s;
}

/* ---- the worker ------------------------------------------------------- */

/* Prepares batch j of the epoch into slot s. Allocates nothing. */
static void fill_batch(nnkit_pipeline *p, size_t j, size_t s)
{
  const nnkit_dataset *ds = p->ds;
  size_t bs = p->batch_size, first = j * bs;
  size_t b = p->epoch_samples - first < bs ? p->epoch_samples - first : bs;
  size_t in = ds->sample_size, out = p->out_size, td = ds->target_dim;
  const size_t *ord = p->order + first;
  float *x = p->slot_x + s * p->slot_cap * out;
  p->slot_n[s] = b;
  if (ds->labels)
    for (size_t i = 0; i < b; i++)
      p->slot_y[s * p->slot_cap + i] = ds->labels[ord[i]];
  if (td)
    for (size_t i = 0; i < b; i++)
      memcpy(p->slot_t + (s * p->slot_cap + i) * td, ds->targets + ord[i] * td,
             td * sizeof(float));
  for (size_t i = 0; i < b; i++) {
    float *dst = x + i * out;
    const float *row;
    if (p->normed) {
      row = p->normed + ord[i] * out;
    } else if (!ds->x8) {
      row = ds->x + ord[i] * in;
    } else { /* a compact set: decoded into the batch, or for the augmenter */
      nnkit__dataset_rows(ds, ord[i], 1, p->aug ? p->row : dst);
      row = p->aug ? p->row : dst;
    }
    if (p->aug)
      nnkit__augment_sample(p->aug, row, dst, p->ac, p->ah, p->aw, p->seed,
                            p->epoch, first + i);
    else if (row != dst)
      memcpy(dst, row, out * sizeof(float));
  }
}

static void *worker_main(void *arg)
{
  nnkit_pipeline *p = arg;
  pthread_mutex_lock(&p->mu);
  for (;;) {
    while (!p->quit &&
           !(p->active && p->prefetch > 0 && p->next_fill < p->num_batches &&
             p->next_fill < p->released + p->nslots))
      pthread_cond_wait(&p->cv_work, &p->mu);
    if (p->quit)
      break;
    size_t j = p->next_fill++;
    p->busy = 1;
    pthread_mutex_unlock(&p->mu);
    fill_batch(p, j, j % p->nslots);
    pthread_mutex_lock(&p->mu);
    p->busy = 0;
    p->filled = j + 1;
    pthread_cond_broadcast(&p->cv_done);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Stops the current epoch: afterwards the worker is idle and touches
 * nothing until the next begin_epoch. */
static void stop_epoch(nnkit_pipeline *p)
{
  if (p->thread_started) {
    pthread_mutex_lock(&p->mu);
    p->active = 0;
    while (p->busy)
      pthread_cond_wait(&p->cv_done, &p->mu);
    pthread_mutex_unlock(&p->mu);
  } else {
    p->active = 0;
  }
  p->current = SIZE_MAX;
}

/* ---- creation and settings -------------------------------------------- */

static void free_buffers(nnkit_pipeline *p)
{
  nnkit__free(p->slot_x);
  nnkit__free(p->slot_y);
  nnkit__free(p->slot_t);
  nnkit__free(p->slot_n);
  nnkit__free(p->normed);
  nnkit__free(p->row);
  nnkit__free(p->order);
  nnkit__free(p->cls_start);
  nnkit__free(p->cls_idx);
  nnkit__free(p->cls_present);
  p->slot_x = p->normed = p->slot_t = p->row = NULL;
  p->slot_y = NULL;
  p->slot_n = p->order = p->cls_start = p->cls_idx = p->cls_present = NULL;
  p->prepared = 0;
}

/* Output geometry from the dataset and the normalizer. */
static void update_geometry(nnkit_pipeline *p)
{
  if (p->nz) {
    nnkit__normalizer_out_shape(p->nz, p->out_shape, &p->out_ndim);
    p->out_size = nnkit_normalizer_out_size(p->nz);
  } else {
    p->out_ndim = p->ds->ndim;
    memcpy(p->out_shape, p->ds->shape, sizeof p->out_shape);
    p->out_size = p->ds->sample_size;
  }
}

NNKIT_API nnkit_status nnkit_pipeline_create(nnkit_pipeline **out,
                                             const nnkit_dataset *ds)
{
  static const char fn[] = "nnkit_pipeline_create";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  *out = NULL;
  if (!ds)
    return nnkit__err(NNKIT_E_INVALID, "%s: ds is NULL", fn);
  nnkit_pipeline *p = nnkit__calloc(1, sizeof *p);
  if (!p)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  if (pthread_mutex_init(&p->mu, NULL) != 0) {
    nnkit__free(p);
    return nnkit__err(NNKIT_E_NOMEM, "%s: cannot create a mutex", fn);
  }
  if (pthread_cond_init(&p->cv_work, NULL) != 0) {
    pthread_mutex_destroy(&p->mu);
    nnkit__free(p);
    return nnkit__err(NNKIT_E_NOMEM, "%s: cannot create a condition", fn);
  }
  if (pthread_cond_init(&p->cv_done, NULL) != 0) {
    pthread_cond_destroy(&p->cv_work);
    pthread_mutex_destroy(&p->mu);
    nnkit__free(p);
    return nnkit__err(NNKIT_E_NOMEM, "%s: cannot create a condition", fn);
  }
  p->ds = ds;
  p->batch_size = 64;
  p->shuffle = 1;
  p->prefetch = 2;
  p->current = SIZE_MAX;
  update_geometry(p);
  *out = p;
  return NNKIT_OK;
}

NNKIT_API void nnkit_pipeline_free(nnkit_pipeline *p)
{
  if (!p)
    return;
  if (p->thread_started) {
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    p->active = 0;
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
  }
  pthread_cond_destroy(&p->cv_done);
  pthread_cond_destroy(&p->cv_work);
  pthread_mutex_destroy(&p->mu);
  free_buffers(p);
  nnkit_normalizer_free(p->nz);
  nnkit_augmenter_free(p->aug);
  nnkit__free(p);
}

NNKIT_API nnkit_status nnkit_pipeline_bounds(double *lo_out, double *hi_out,
                                             int *flags_out, nnkit_pipe_param key)
{
  static const char fn[] = "nnkit_pipeline_bounds";
  const nnkit__spec *pp = find_param(key, fn);
  if (!pp)
    return NNKIT_E_INVALID;
  nnkit__spec_bounds(pp, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_pipeline_set(nnkit_pipeline *p,
                                          nnkit_pipe_param key, double value)
{
  static const char fn[] = "nnkit_pipeline_set";
  if (!p)
    return nnkit__err(NNKIT_E_INVALID, "%s: p is NULL", fn);
  const nnkit__spec *pp = find_param(key, fn);
  if (!pp)
    return NNKIT_E_INVALID;
  char owner[48];
  snprintf(owner, sizeof owner, "%s: pipeline", fn);
  nnkit_status st = nnkit__spec_check(pp, owner, value);
  if (st != NNKIT_OK)
    return st;
  if (key == NNKIT_PIPE_BALANCED && value == 1 && !p->ds->labels)
    return nnkit__err(NNKIT_E_INVALID, "%s: class-balanced sampling needs "
                      "class labels, and the dataset has none", fn);
  stop_epoch(p);
  switch (key) {
  case NNKIT_PIPE_BATCH_SIZE: p->batch_size = (size_t)value; break;
  case NNKIT_PIPE_SHUFFLE: p->shuffle = (int)value; break;
  case NNKIT_PIPE_DROP_LAST: p->drop_last = (int)value; break;
  case NNKIT_PIPE_BALANCED: p->balanced = (int)value; break;
  case NNKIT_PIPE_PREFETCH: p->prefetch = (size_t)value; break;
  case NNKIT_PIPE_SEED: p->seed = (uint64_t)value; break;
  }
  p->prepared = 0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_pipeline_get(double *out, const nnkit_pipeline *p,
                                          nnkit_pipe_param key)
{
  static const char fn[] = "nnkit_pipeline_get";
  if (!out || !p)
    return nnkit__err(NNKIT_E_INVALID, "%s: %s is NULL", fn,
                      !out ? "out" : "p");
  if (!find_param(key, fn))
    return NNKIT_E_INVALID;
  switch (key) {
  case NNKIT_PIPE_BATCH_SIZE: *out = (double)p->batch_size; break;
  case NNKIT_PIPE_SHUFFLE: *out = p->shuffle; break;
  case NNKIT_PIPE_DROP_LAST: *out = p->drop_last; break;
  case NNKIT_PIPE_BALANCED: *out = p->balanced; break;
  case NNKIT_PIPE_PREFETCH: *out = (double)p->prefetch; break;
  case NNKIT_PIPE_SEED: *out = (double)p->seed; break;
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_pipeline_set_normalizer(nnkit_pipeline *p,
                                                     const nnkit_normalizer *nz)
{
  static const char fn[] = "nnkit_pipeline_set_normalizer";
  if (!p)
    return nnkit__err(NNKIT_E_INVALID, "%s: p is NULL", fn);
  nnkit_normalizer *copy = NULL;
  if (nz) {
    if (!nnkit_normalizer_is_fitted(nz))
      return nnkit__err(NNKIT_E_STATE, "%s: the normalizer is not fitted; "
                        "fit it on the training set first", fn);
    size_t dims[NNKIT_MAX_SAMPLE_DIMS], nd;
    nnkit_normalizer_shape(dims, NNKIT_MAX_SAMPLE_DIMS, &nd, nz);
    int same = nd == p->ds->ndim;
    for (size_t i = 0; same && i < nd; i++)
      same = dims[i] == p->ds->shape[i];
    if (!same)
      return nnkit__err(NNKIT_E_SHAPE, "%s: the normalizer was fitted on "
                        "samples of %zu values in %zu dimensions, unlike this "
                        "dataset's %zu values in %zu; fit it on this data",
                        fn, nnkit_normalizer_in_size(nz), nd,
                        p->ds->sample_size, p->ds->ndim);
    if (p->aug) {
      size_t od[NNKIT_MAX_SAMPLE_DIMS], ond, c, h, w;
      nnkit__normalizer_out_shape(nz, od, &ond);
      nnkit_status st = nnkit__augmenter_geometry(p->aug, od, ond, &c, &h, &w,
                                                  fn);
      if (st != NNKIT_OK)
        return st;
    }
    nnkit_status st = nnkit__normalizer_clone(&copy, nz);
    if (st != NNKIT_OK)
      return st;
  }
  stop_epoch(p);
  nnkit_normalizer_free(p->nz);
  p->nz = copy;
  update_geometry(p);
  if (p->aug)
    nnkit__augmenter_geometry(p->aug, p->out_shape, p->out_ndim, &p->ac,
                              &p->ah, &p->aw, fn);
  p->prepared = 0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_pipeline_set_augmenter(nnkit_pipeline *p,
                                                    const nnkit_augmenter *aug)
{
  static const char fn[] = "nnkit_pipeline_set_augmenter";
  if (!p)
    return nnkit__err(NNKIT_E_INVALID, "%s: p is NULL", fn);
  nnkit_augmenter *copy = NULL;
  size_t c = 0, h = 0, w = 0;
  if (aug) {
    nnkit_status st = nnkit__augmenter_geometry(aug, p->out_shape, p->out_ndim,
                                                &c, &h, &w, fn);
    if (st == NNKIT_OK)
      st = nnkit__augmenter_clone(&copy, aug);
    if (st != NNKIT_OK)
      return st;
  }
  stop_epoch(p);
  nnkit_augmenter_free(p->aug);
  p->aug = copy;
  p->ac = c;
  p->ah = h;
  p->aw = w;
  p->prepared = 0;
  return NNKIT_OK;
}

/* ---- epochs ----------------------------------------------------------- */

static size_t count_batches(const nnkit_pipeline *p)
{
  size_t n = p->ds->count, bs = p->batch_size;
  return p->drop_last ? n / bs : (n + bs - 1) / bs;
}

/* Sizes every buffer for the current settings. */
static nnkit_status prepare(nnkit_pipeline *p, const char *fn)
{
  free_buffers(p);
  const nnkit_dataset *ds = p->ds;
  size_t n = ds->count;
  size_t bs = p->batch_size < n ? p->batch_size : n;
  size_t nslots = p->prefetch + 1, out = p->out_size;
  size_t td = ds->target_dim;
  int ovf = 0;
  size_t slots_bs = nnkit__mul_size(nslots, bs, &ovf);
  size_t xs = nnkit__mul_size(nnkit__mul_size(slots_bs, out, &ovf),
                              sizeof(float), &ovf);
  size_t ys = nnkit__mul_size(slots_bs, sizeof *p->slot_y, &ovf);
  size_t ts = nnkit__mul_size(nnkit__mul_size(slots_bs, td, &ovf),
                              sizeof *p->slot_t, &ovf);
  if (ovf)
    return nnkit__err(NNKIT_E_NOMEM, "%s: batches of %zu samples of %zu "
                      "values do not fit in memory", fn, bs, out);
  p->slot_cap = bs;
  p->nslots = nslots;
  p->slot_x = nnkit__malloc(xs);
  p->slot_n = nnkit__malloc(nslots * sizeof *p->slot_n);
  p->order = nnkit__malloc(n * sizeof *p->order);
  int ok = p->slot_x && p->slot_n && p->order;
  if (ok && ds->labels)
    ok = (p->slot_y = nnkit__malloc(ys)) != NULL;
  if (ok && td)
    ok = (p->slot_t = nnkit__malloc(ts)) != NULL;
  if (ok && p->nz) {
    /* The normalizer is a pure per-sample function: apply it once here,
     * in the calling thread (where BLAS may use every core), instead of
     * once per batch per epoch in the pipeline thread. */
    size_t sl = nnkit__normalizer_scratch_len(p->nz);
    int o2 = 0;
    size_t nb = nnkit__mul_size(nnkit__mul_size(n, out, &o2), sizeof(float), &o2);
    float *scratch = NULL, *chunk = NULL;
    size_t in = ds->sample_size, rows = n < NNKIT__NORM_CHUNK ? n : NNKIT__NORM_CHUNK;
    ok = !o2 && (p->normed = nnkit__malloc(nb)) != NULL &&
         (!sl || (scratch = nnkit__malloc(sl * sizeof(float))) != NULL) &&
         (!ds->x8 || (chunk = nnkit__malloc(rows * in * sizeof(float))) != NULL);
    /* A compact set is decoded in the normalizer's own chunks of rows, so
     * the result is the float form's bit for bit. */
    for (size_t s = 0; ok && s < n; s += rows) {
      size_t m = n - s < rows ? n - s : rows;
      nnkit__normalizer_transform(p->nz, nnkit__dataset_block(ds, s, m, chunk),
                                  p->normed + s * out, m, scratch);
    }
    nnkit__free(scratch);
    nnkit__free(chunk);
  }
  if (ok && !p->nz && p->aug && ds->x8)
    ok = (p->row = nnkit__malloc(ds->sample_size * sizeof *p->row)) != NULL;
  if (ok && p->balanced) {
    uint32_t k = ds->num_classes;
    p->cls_start = nnkit__calloc((size_t)k + 1, sizeof *p->cls_start);
    p->cls_idx = nnkit__malloc(n * sizeof *p->cls_idx);
    p->cls_present = nnkit__malloc((size_t)k * sizeof *p->cls_present);
    ok = p->cls_start && p->cls_idx && p->cls_present;
    if (ok) {
      for (size_t i = 0; i < n; i++)
        p->cls_start[ds->labels[i] + 1]++;
      p->num_present = 0;
      for (uint32_t c = 0; c < k; c++) {
        if (p->cls_start[c + 1])
          p->cls_present[p->num_present++] = c;
        p->cls_start[c + 1] += p->cls_start[c];
      }
      for (size_t i = 0; i < n; i++)
        p->cls_idx[p->cls_start[ds->labels[i]]++] = i;
      for (uint32_t c = k; c > 0; c--)
        p->cls_start[c] = p->cls_start[c - 1];
      p->cls_start[0] = 0;
    }
  }
  if (!ok) {
    free_buffers(p);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu batch "
                      "buffers of %zu samples", fn, nslots, bs);
  }
  p->prep_count = n;
  p->prep_sample = ds->sample_size;
  p->prep_td = td;
  p->prep_labels = ds->labels != NULL;
  p->prep_x8 = ds->x8 != NULL;
  p->prepared = 1;
  return NNKIT_OK;
}

/* The epoch's sample order. */
static void draw_order(nnkit_pipeline *p, uint64_t epoch)
{
  size_t n = p->ds->count;
  nnkit__rng r;
  if (p->balanced) {
    nnkit__rng_init(&r, p->seed, BALANCE_STREAM + epoch);
    for (size_t i = 0; i < n; i++) {
      size_t c = p->cls_present[nnkit__rng_below(&r, p->num_present)];
      size_t nc = p->cls_start[c + 1] - p->cls_start[c];
      p->order[i] = p->cls_idx[p->cls_start[c] + nnkit__rng_below(&r, nc)];
    }
    return;
  }
  for (size_t i = 0; i < n; i++)
    p->order[i] = i;
  if (p->shuffle) {
    /* (seed, epoch): nnkit_trainer_fit() draws its order here too */
    nnkit__rng_init(&r, p->seed, epoch);
    nnkit__rng_shuffle(&r, p->order, n);
  }
}

nnkit_status nnkit__pipeline_begin_epoch(nnkit_pipeline *p, uint64_t epoch)
{
  static const char fn[] = "nnkit_pipeline_begin_epoch";
  if (!p)
    return nnkit__err(NNKIT_E_INVALID, "%s: p is NULL", fn);
  stop_epoch(p);
  size_t nb = count_batches(p);
  if (nb == 0)
    return nnkit__err(NNKIT_E_INVALID, "%s: batch size %zu exceeds the %zu "
                      "samples and drop_last is on, so an epoch has no "
                      "batch; use a smaller batch or turn drop_last off", fn,
                      p->batch_size, p->ds->count);
  if (!p->prepared) {
    nnkit_status st = prepare(p, fn);
    if (st != NNKIT_OK)
      return st;
  }
  if (p->prefetch > 0 && !p->thread_started) {
    if (pthread_create(&p->thread, NULL, worker_main, p) != 0)
      return nnkit__err(NNKIT_E_STATE, "%s: cannot start the prefetching "
                        "thread; set NNKIT_PIPE_PREFETCH to 0 to prepare "
                        "batches in the calling thread", fn);
    p->thread_started = 1;
  }
  draw_order(p, epoch);
  size_t samples = p->drop_last ? nb * p->batch_size : p->ds->count;
  pthread_mutex_lock(&p->mu);
  p->epoch = epoch;
  p->num_batches = nb;
  p->epoch_samples = samples;
  p->taken = p->released = p->filled = p->next_fill = 0;
  p->current = SIZE_MAX;
  p->active = 1;
  pthread_cond_broadcast(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  return NNKIT_OK;
}

nnkit_status nnkit__pipeline_next(nnkit_pipeline *p, const float **x,
                                  const int32_t **labels,
                                  const float **targets, size_t *batch)
{
  static const char fn[] = "nnkit_pipeline_next";
  *x = NULL;
  *labels = NULL;
  *targets = NULL;
  *batch = 0;
  if (!p->active)
    return nnkit__err(NNKIT_E_STATE, "%s: no epoch is running; call "
                      "nnkit_pipeline_begin_epoch() first (changing a "
                      "setting ends the epoch)", fn);
  size_t s;
  if (p->prefetch == 0) {
    if (p->taken == p->num_batches) {
      p->current = SIZE_MAX;
      return NNKIT_OK;
    }
    s = 0;
    fill_batch(p, p->taken, s);
    p->taken++;
  } else {
    pthread_mutex_lock(&p->mu);
    p->released = p->taken;
    pthread_cond_broadcast(&p->cv_work);
    if (p->taken == p->num_batches) {
      pthread_mutex_unlock(&p->mu);
      p->current = SIZE_MAX;
      return NNKIT_OK;
    }
    while (p->filled <= p->taken)
      pthread_cond_wait(&p->cv_done, &p->mu);
    s = p->taken % p->nslots;
    p->taken++;
    pthread_mutex_unlock(&p->mu);
  }
  p->current = s;
  *x = p->slot_x + s * p->slot_cap * p->out_size;
  if (p->ds->labels)
    *labels = p->slot_y + s * p->slot_cap;
  if (p->ds->target_dim)
    *targets = p->slot_t + s * p->slot_cap * p->ds->target_dim;
  *batch = p->slot_n[s];
  return NNKIT_OK;
}

const nnkit_dataset *nnkit__pipeline_dataset(const nnkit_pipeline *p)
{
  return p->ds;
}

int nnkit__pipeline_lends(const nnkit_pipeline *p)
{
  return p->prefetch == 0;
}

nnkit_status nnkit__pipeline_reuse(nnkit_pipeline *p, const nnkit_dataset *ds,
                                   size_t batch_size, int shuffle, uint64_t seed)
{
  if (p->nz || p->aug || p->balanced || p->prefetch)
    return nnkit__err(NNKIT_E_STATE, "nnkit__pipeline_reuse: not a plain pipeline");
  stop_epoch(p);
  /* The buffers depend on the dataset's geometry and the batch size only
   * (the order is drawn at begin_epoch): keep them when those stay. The
   * old dataset may be gone, so compare with what prepare() recorded. */
  int keep = p->prepared && batch_size == p->batch_size && ds->count == p->prep_count &&
             ds->sample_size == p->prep_sample && ds->target_dim == p->prep_td &&
             (ds->labels != NULL) == p->prep_labels && (ds->x8 != NULL) == p->prep_x8;
  p->ds = ds;
  update_geometry(p);
  p->batch_size = batch_size;
  p->shuffle = shuffle;
  p->seed = seed;
  if (!keep)
    p->prepared = 0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_pipeline_begin_epoch(nnkit_pipeline *p,
                                                  uint64_t epoch)
{
  return nnkit__pipeline_begin_epoch(p, epoch);
}

NNKIT_API nnkit_status nnkit_pipeline_next(size_t *batch_out,
                                           nnkit_pipeline *p)
{
  if (!batch_out || !p)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_pipeline_next: %s is NULL",
                      !batch_out ? "batch_out" : "p");
  const float *x;
  const int32_t *y;
  const float *t;
  return nnkit__pipeline_next(p, &x, &y, &t, batch_out);
}

/* ---- getters ---------------------------------------------------------- */

NNKIT_API const float *nnkit_pipeline_batch_data(const nnkit_pipeline *p)
{
  if (!p || p->current == SIZE_MAX)
    return NULL;
  return p->slot_x + p->current * p->slot_cap * p->out_size;
}

NNKIT_API const int32_t *nnkit_pipeline_batch_labels(const nnkit_pipeline *p)
{
  if (!p || p->current == SIZE_MAX || !p->slot_y)
    return NULL;
  return p->slot_y + p->current * p->slot_cap;
}

NNKIT_API const float *nnkit_pipeline_batch_targets(const nnkit_pipeline *p)
{
  if (!p || p->current == SIZE_MAX || !p->slot_t)
    return NULL;
  return p->slot_t + p->current * p->slot_cap * p->ds->target_dim;
}

NNKIT_API size_t nnkit_pipeline_batches_per_epoch(const nnkit_pipeline *p)
{
  return p ? count_batches(p) : 0;
}

NNKIT_API size_t nnkit_pipeline_sample_size(const nnkit_pipeline *p)
{
  return p ? p->out_size : 0;
}

NNKIT_API size_t nnkit_pipeline_ndim(const nnkit_pipeline *p)
{
  return p ? p->out_ndim : 0;
}

NNKIT_API size_t nnkit_pipeline_dim(const nnkit_pipeline *p, size_t axis)
{
  return p && axis < p->out_ndim ? p->out_shape[axis] : 0;
}
