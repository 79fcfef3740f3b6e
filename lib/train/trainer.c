/* The trainer's settings (one table for every NNKIT_TRAIN_* key) and the
 * fit loop: mini-batches from a pipeline (the caller's, or the trainer's
 * default one over a dataset), one optimizer step per batch, the epoch's
 * record in the history and the lecture's log line. Everything that
 * watches the loop (callbacks, monitoring, early stopping) hangs off it
 * through monitor.c's hooks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "train_internal.h"

/* Every trainer key, in the shared key/bounds engine (nnkit__spec). */
static const nnkit__spec specs[] = {
  {0, NNKIT_TRAIN_EPOCHS, "epochs", 1, 1e6, 10, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_BATCH_SIZE, "batch size", 1, 65536, 64, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SHUFFLE, "shuffle", 0, 1, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SEED, "seed", 0, 9007199254740992.0, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_VERBOSE, "verbose", 0, 2, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_LAYER_STATS, "layer statistics", 0, 1, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SANITY, "sanity checks", 0, 2, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_DIVERGE_FACTOR, "divergence factor", 0, 1e15, 1000,
   NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_DIVERGE_WINDOW, "divergence window", 0, 1e6, 50,
   NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_KEEP_GOOD, "keep last good weights", 0, 1, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_DIAGNOSE, "diagnose", 0, 1, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_CHECKPOINT_EVERY, "checkpoint every", 0, 1e6, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_CHECKPOINT_BEST, "checkpoint at best", 0, 1, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_CHECKPOINT_KEEP, "checkpoints kept", 0, 1e6, 3, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SNAPSHOTS, "snapshots", 0, 1000, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SNAPSHOT_FILES, "snapshot files", 0, 1, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_EMA_DECAY, "EMA decay", 0, 1, 0, NNKIT_BOUND_HI_OPEN},
  {0, NNKIT_TRAIN_OHEM_K, "hard examples per batch", 0, 65536, 0, NNKIT_BOUND_INTEGER},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static const nnkit__spec *lookup(nnkit_train_param key)
{
  return nnkit__spec_lookup(specs, NSPECS, 0, (int)key, "trainer", "NNKIT_TRAIN_*");
}

static double *slot(nnkit_trainer *tr, nnkit_train_param key)
{
  switch (key) {
  case NNKIT_TRAIN_EPOCHS: return &tr->epochs;
  case NNKIT_TRAIN_BATCH_SIZE: return &tr->batch_size;
  case NNKIT_TRAIN_SHUFFLE: return &tr->shuffle;
  case NNKIT_TRAIN_SEED: return &tr->seed;
  case NNKIT_TRAIN_VERBOSE: return &tr->verbose;
  case NNKIT_TRAIN_LAYER_STATS: return &tr->layer_stats;
  case NNKIT_TRAIN_SANITY: return &tr->sanity_mode;
  case NNKIT_TRAIN_DIVERGE_FACTOR: return &tr->diverge_factor;
  case NNKIT_TRAIN_DIVERGE_WINDOW: return &tr->diverge_window;
  case NNKIT_TRAIN_KEEP_GOOD: return &tr->keep_good;
  case NNKIT_TRAIN_DIAGNOSE: return &tr->diagnose;
  case NNKIT_TRAIN_CHECKPOINT_EVERY: return &tr->ckpt_every;
  case NNKIT_TRAIN_CHECKPOINT_BEST: return &tr->ckpt_best;
  case NNKIT_TRAIN_CHECKPOINT_KEEP: return &tr->ckpt_keep;
  case NNKIT_TRAIN_SNAPSHOTS: return &tr->snapshots;
  case NNKIT_TRAIN_SNAPSHOT_FILES: return &tr->snapshot_files;
  case NNKIT_TRAIN_EMA_DECAY: return &tr->ema_decay;
  case NNKIT_TRAIN_OHEM_K: return &tr->ohem_k;
  }
  return NULL;
}

const nnkit__spec *nnkit__trainer_specs(size_t *n)
{
  *n = NSPECS;
  return specs;
}

double *nnkit__trainer_slot(nnkit_trainer *tr, nnkit_train_param key)
{
  return slot(tr, key);
}

NNKIT_API nnkit_status nnkit_trainer_create(nnkit_trainer **out, nnkit_net *net,
                                            nnkit_optimizer *opt)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_create: out is NULL");
  *out = NULL;
  if (!net || !opt)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_create: a net and an optimizer are required");
  nnkit_trainer *tr = nnkit__calloc(1, sizeof *tr);
  if (!tr)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_create: out of memory");
  tr->net = net;
  tr->opt = opt;
  for (size_t i = 0; i < NSPECS; i++)
    *slot(tr, (nnkit_train_param)specs[i].key) = specs[i].def;
  for (size_t i = 0; i < sizeof tr->sanity / sizeof tr->sanity[0]; i++)
    tr->sanity[i] = NAN;
  *out = tr;
  return NNKIT_OK;
}

NNKIT_API void nnkit_trainer_free(nnkit_trainer *tr)
{
  if (!tr)
    return;
  nnkit_pipeline_free(tr->own);
  nnkit__free(tr->ckpt_dir);
  nnkit__average_free(tr);
  nnkit__ohem_free(tr);
  nnkit__monitor_free(tr);
  nnkit__free(tr);
}

NNKIT_API nnkit_status nnkit_trainer_bounds(double *lo_out, double *hi_out,
                                            int *flags_out, nnkit_train_param key)
{
  const nnkit__spec *s = lookup(key);
  if (!s)
    return NNKIT_E_INVALID;
  nnkit__spec_bounds(s, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_set(nnkit_trainer *tr, nnkit_train_param key,
                                         double value)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set: tr is NULL");
  const nnkit__spec *s = lookup(key);
  if (!s)
    return NNKIT_E_INVALID;
  nnkit_status st = nnkit__spec_check(s, "trainer", value);
  if (st != NNKIT_OK)
    return st;
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "trainer %s cannot change during a fit", s->name);
  if (*slot(tr, key) != value)
    nnkit__average_setting_changed(tr, key);
  *slot(tr, key) = value;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_get(double *out, const nnkit_trainer *tr,
                                         nnkit_train_param key)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_get: NULL argument");
  if (!lookup(key))
    return NNKIT_E_INVALID;
  *out = *slot((nnkit_trainer *)tr, key);
  return NNKIT_OK;
}

NNKIT_API void nnkit_trainer_set_logger(nnkit_trainer *tr, nnkit_log_fn fn,
                                        void *user)
{
  if (!tr)
    return;
  tr->log_fn = fn;
  tr->log_user = user;
}

/* sample_size: of the dataset, or of the pipeline that reads it. */
static nnkit_status check_dataset(const nnkit_net *net, const nnkit_dataset *ds,
                                  const char *which, size_t sample_size)
{
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  if (sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_trainer_fit: %s samples have %zu values, the net takes %zu",
                      which, sample_size, in);
  if (!ds->labels && !ds->targets)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: the %s set has no labels or targets", which);
  if (ds->num_classes > outw)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_trainer_fit: the %s set has %u classes but the net has "
                      "only %zu outputs; make the last dense layer %u wide",
                      which, ds->num_classes, outw, ds->num_classes);
  if (ds->targets && ds->target_dim != outw)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_trainer_fit: %s targets have %zu values, the net outputs %zu",
                      which, ds->target_dim, outw);
  if (ds->targets && net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: the %s set has float targets but the loss is "
                      "softmax cross-entropy; use NNKIT_LOSS_MSE", which);
  return NNKIT_OK;
}

/* One epoch over the batches of tr->pipe (whose dataset train is); fills
 * the train fields of rec. from: a resumed open epoch (its first
 * from->batch batches were run before the checkpoint), or NULL. An epoch
 * a batch callback cuts short is left in tr->open. */
static nnkit_status run_epoch(nnkit_trainer *tr, const nnkit_dataset *train,
                              size_t epoch, nnkit__hist_epoch *rec,
                              const nnkit__fit_pos *from)
{
  nnkit_net *net = tr->net;
  nnkit_pipeline *pipe = tr->pipe;
  size_t per_epoch = nnkit_pipeline_batches_per_epoch(pipe);
  /* A pipeline that prepares each batch when asked for it leaves the batch
   * as it is until the next one is asked for: the net reads it in place
   * (nnkit_trainer_fit()'s default pipeline does). One that prefetches may
   * refill it sooner, so its batch is copied. */
  int borrow = nnkit__pipeline_lends(pipe);
  nnkit_status st = nnkit__pipeline_begin_epoch(pipe, epoch);
  if (st != NNKIT_OK)
    return st;
  double loss_sum = 0, reg_sum = 0;
  size_t correct = 0, batches = 0, seen = 0;
  if (from && from->batch) {
    /* The batches run before the checkpoint: drawn (the draws depend on
     * (seed, epoch, index) only) and skipped. */
    for (size_t k = 0; k < from->batch; k++) {
      size_t b;
      const float *bx, *bt;
      const int32_t *by;
      st = nnkit__pipeline_next(pipe, &bx, &by, &bt, &b);
      if (st != NNKIT_OK)
        return st;
      if (b == 0)
        return nnkit__err(NNKIT_E_STATE,
                          "nnkit_trainer_fit: the resumed checkpoint stopped after "
                          "batch %zu of epoch %zu, but this pipeline has only %zu "
                          "batches per epoch; fit the data the checkpoint was made with",
                          from->batch, epoch + 1, per_epoch);
    }
    loss_sum = from->loss_sum;
    reg_sum = from->reg_sum;
    correct = from->correct;
    seen = from->seen;
    batches = from->batch;
    rec->lr = from->lr;
    tr->epoch_seen = seen;
    tr->epoch_loss_sum = loss_sum;
  }
  while (!tr->stop) {
    size_t b;
    const float *bx, *bt;
    const int32_t *by;
    st = nnkit__pipeline_next(pipe, &bx, &by, &bt, &b);
    if (st != NNKIT_OK)
      return st;
    if (b == 0)
      break;
    double loss = 0;
    /* ReLUs run in place except on an epoch's last batch: the one the
     * layer statistics sample, and the one whose activations fit leaves
     * behind (so that every layer's output can be inspected afterwards). */
    int last = batches + 1 == per_epoch;
    st = nnkit__net_forward_fit(net, bx, b, borrow, !last);
    /* Online hard example mining: only the k largest losses flow back. */
    int ohem = tr->ohem_k && (size_t)tr->ohem_k < b;
    size_t first = 0;
    if (st == NNKIT_OK)
      st = nnkit__net_loss_each(net, by, bt, &loss, &first, ohem ? tr->ohem_each : NULL);
    if (st != NNKIT_OK)
      return st;
    if (ohem)
      nnkit__ohem_mask(net->probs, b, nnkit_net_output_size(net), tr->ohem_each,
                       (size_t)tr->ohem_k, tr->ohem_pairs);
    nnkit__net_backprop(net, first);
    if (!isfinite(loss))
      return nnkit__monitor_diverged(tr, epoch, batches, loss);
    nnkit__monitor_before_step(tr, last);
    st = nnkit_optimizer_step(tr->opt, net);
    if (st != NNKIT_OK)
      return st;
    nnkit__average_after_step(tr);
    loss_sum += loss * (double)b;
    reg_sum += tr->opt->last_reg_loss * (double)b;
    correct += net->last_correct;
    batches++;
    seen += b;
    st = nnkit__monitor_after_step(tr, epoch, batches - 1, b, loss);
    if (st != NNKIT_OK)
      return st;
    rec->lr = tr->opt->lr; /* the rate this step used */
    st = nnkit__optimizer_batch_end(tr->opt); /* a per-batch schedule */
    if (st == NNKIT_OK)
      st = nnkit__average_cycle_check(tr);
    if (st != NNKIT_OK)
      return st;
  }
  if (tr->stop && batches < per_epoch) {
    /* Cut short by a batch callback: what a checkpoint needs to resume
     * the epoch, before its end steps the schedule and early stopping
     * judges it. */
    nnkit__fit_pos *o = &tr->open;
    memset(o, 0, sizeof *o);
    o->epoch = epoch;
    o->batch = batches;
    o->total = tr->total_epochs;
    o->loss_sum = loss_sum;
    o->reg_sum = reg_sum;
    o->lr = rec->lr;
    o->correct = correct;
    o->seen = seen;
    o->pre = 1;
    o->has_sched = tr->opt->sched != NULL;
    if (o->has_sched)
      nnkit__schedule_save(tr->opt->sched, o->sched);
    o->es_best = tr->es_best;
    o->es_best_epoch = tr->es_best_epoch;
    o->es_wait = tr->es_wait;
    o->es_have_best = tr->es_have_best;
    tr->open_valid = 1;
  }
  rec->train_loss = loss_sum / (double)seen;
  rec->reg_loss = reg_sum / (double)seen;
  rec->train_acc = train->labels ? (double)correct / (double)seen : 0.0;
  return NNKIT_OK;
}

/* The fit loop of nnkit_trainer_fit() and nnkit_trainer_fit_pipeline():
 * train is tr->pipe's dataset and the batches come from it; val, when
 * given, is tr->vpipe's dataset and is evaluated through it, or directly
 * without tr->vpipe. sanity: the training set is the pipeline's as it is
 * (no normalizer, augmenter or sampling), so sanity checks may run on it. */
static nnkit_status fit(nnkit_trainer *tr, const nnkit_dataset *train,
                        const nnkit_dataset *val, int sanity)
{
  nnkit_net *net = tr->net;
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit: the net has no layers; add some first");
  nnkit_status st = check_dataset(net, train, "training",
                                  nnkit_pipeline_sample_size(tr->pipe));
  if (st == NNKIT_OK && val)
    st = check_dataset(net, val, "validation",
                       tr->vpipe ? nnkit_pipeline_sample_size(tr->vpipe)
                                 : val->sample_size);
  if (st != NNKIT_OK)
    return st;
  double pbs = 1;
  nnkit_pipeline_get(&pbs, tr->pipe, NNKIT_PIPE_BATCH_SIZE);
  size_t per_epoch = nnkit_pipeline_batches_per_epoch(tr->pipe);
  size_t samples = train->count;
  samples = per_epoch * (size_t)pbs < samples ? per_epoch * (size_t)pbs : samples;
  nnkit_net_set_training(net, 1);
  size_t first_epoch = tr->hist.num_epochs;
  size_t total = first_epoch + (size_t)tr->epochs;
  /* After nnkit_trainer_resume(): the checkpoint's fit, to its end. */
  nnkit__fit_pos from = {0};
  int resumed = tr->resume_armed && tr->resume.epoch == first_epoch;
  if (resumed) {
    from = tr->resume;
    total = from.total;
  }
  if (tr->ckpt_every && !tr->ckpt_dir)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit: checkpoints every %g epochs need a folder; "
                      "call nnkit_trainer_set_checkpoint_dir() first", tr->ckpt_every);
  if (tr->ckpt_best && (!tr->ckpt_dir || !tr->es_metric))
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit: checkpoints at the best epoch need a folder "
                      "(nnkit_trainer_set_checkpoint_dir()) and early stopping's "
                      "metric (nnkit_trainer_set_early_stopping())");
  st = nnkit__average_fit_begin(tr);
  if (st == NNKIT_OK)
    st = nnkit__ohem_fit_begin(tr, (size_t)pbs);
  if (st != NNKIT_OK)
    return st;
  tr->resuming = resumed;
  st = nnkit__monitor_fit_begin(tr, train, val != NULL, first_epoch, total, samples,
                                per_epoch, sanity);
  tr->resuming = 0;
  if (st != NNKIT_OK)
    return st;
  tr->resume_armed = 0;
  tr->open_valid = 0; /* a new fit: the last one's open epoch is gone */
  for (size_t e = first_epoch; e < total; e++) {
    double t0 = nnkit__now();
    nnkit__hist_epoch rec = {0};
    rec.lr = tr->opt->lr; /* run_epoch keeps the rate of the last step */
    nnkit_net_set_training(net, 1);
    st = run_epoch(tr, train, e, &rec, resumed && e == first_epoch ? &from : NULL);
    if (st != NNKIT_OK)
      return nnkit__monitor_fit_end(tr, st);
    rec.val_loss = rec.val_acc = NAN;
    if (val) {
      /* The validation set comes normalized like the training set: a
       * normalizer attached to the net (for raw input) is not applied. */
      st = tr->vpipe ? nnkit__evaluate_pipeline(&rec.val_loss, &rec.val_acc, net,
                                                tr->vpipe)
                     : nnkit__net_evaluate_normalized(&rec.val_loss, &rec.val_acc,
                                                      net, val);
      if (st != NNKIT_OK)
        return nnkit__monitor_fit_end(tr, st);
    }
    rec.seconds = nnkit__now() - t0;
    st = nnkit__monitor_record_epoch(tr, &rec);
    if (st != NNKIT_OK)
      return nnkit__monitor_fit_end(tr, st);
    if (tr->verbose) {
      char line[256];
      if (val)
        snprintf(line, sizeof line,
                 "Finished epoch %zu / %zu: cost %f, train: %f, val %f, lr %e", e + 1,
                 total, rec.train_loss + rec.reg_loss, rec.train_acc, rec.val_acc,
                 rec.lr);
      else
        snprintf(line, sizeof line, "Finished epoch %zu / %zu: cost %f, train: %f, lr %e",
                 e + 1, total, rec.train_loss + rec.reg_loss, rec.train_acc, rec.lr);
      nnkit__trainer_log(tr, line);
    }
    /* A per-epoch schedule steps now: the record keeps the epoch's rate;
     * reduce-on-plateau watches the validation loss, or the training cost. */
    st = nnkit__optimizer_epoch_end(tr->opt, val ? rec.val_loss
                                                  : rec.train_loss + rec.reg_loss);
    if (st == NNKIT_OK)
      st = nnkit__average_cycle_check(tr);
    if (st != NNKIT_OK)
      return nnkit__monitor_fit_end(tr, st);
    st = nnkit__monitor_epoch_end(tr, e);
    if (st == NNKIT_OK && !tr->open_valid)
      st = nnkit__checkpoint_epoch_end(tr, e, total);
    if (st != NNKIT_OK || tr->stop)
      break;
  }
  return nnkit__monitor_fit_end(tr, st);
}

/* The trainer's default pipeline over train: its batch size, shuffle and
 * seed, no normalizer, augmenter, balancing or prefetching -- the batches
 * of the lecture's fit loop, drawn as nnkit_pipeline_begin_epoch() draws
 * them (order from (SEED, epoch)). Made once and kept. */
static nnkit_status own_pipeline(nnkit_trainer *tr, const nnkit_dataset *train)
{
  if (!tr->own) {
    nnkit_status st = nnkit_pipeline_create(&tr->own, train);
    if (st == NNKIT_OK)
      st = nnkit_pipeline_set(tr->own, NNKIT_PIPE_PREFETCH, 0);
    if (st != NNKIT_OK) {
      nnkit_pipeline_free(tr->own);
      tr->own = NULL;
      return st;
    }
  }
  return nnkit__pipeline_reuse(tr->own, train, (size_t)tr->batch_size, (int)tr->shuffle,
                               (uint64_t)tr->seed);
}

NNKIT_API nnkit_status nnkit_trainer_fit(nnkit_trainer *tr,
                                         const nnkit_dataset *train,
                                         const nnkit_dataset *val)
{
  if (!tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: a trainer and a training set are required");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_fit: a fit is running");
  nnkit_status st = own_pipeline(tr, train);
  if (st != NNKIT_OK)
    return st;
  tr->pipe = tr->own;
  tr->vpipe = NULL;
  st = fit(tr, train, val, 1);
  tr->pipe = NULL;
  nnkit__net_keep_input(tr->net); /* the net may have read a batch in place */
  return st;
}

NNKIT_API nnkit_status nnkit_trainer_fit_pipeline(nnkit_trainer *tr,
                                                  nnkit_pipeline *train,
                                                  nnkit_pipeline *val)
{
  if (!tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit_pipeline: a trainer and a training pipeline "
                      "are required");
  if (val == train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit_pipeline: the validation pipeline must not be "
                      "the training pipeline; make a second one over the validation set");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_fit_pipeline: a fit is running");
  tr->pipe = train;
  tr->vpipe = val;
  nnkit_status st = fit(tr, nnkit__pipeline_dataset(train),
                        val ? nnkit__pipeline_dataset(val) : NULL, 0);
  tr->pipe = tr->vpipe = NULL;
  nnkit__net_keep_input(tr->net);
  return st;
}

NNKIT_API size_t nnkit_trainer_epochs_done(const nnkit_trainer *tr)
{
  return tr ? tr->hist.num_epochs : 0;
}

NNKIT_API nnkit_status nnkit_trainer_metric(double *out, const nnkit_trainer *tr,
                                            size_t epoch, nnkit_metric metric)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_metric: NULL argument");
  return nnkit__history_value(out, &tr->hist, epoch, metric, "nnkit_trainer_metric");
}
