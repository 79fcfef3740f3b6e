/* The fit loop: shuffled mini-batches, one optimizer step per batch,
 * per-epoch record, divergence check and the lecture's log line. Later
 * capabilities (callbacks, history export, monitoring, early stopping)
 * hang off this loop rather than replacing it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "train_internal.h"

typedef struct epoch_record {
  double train_loss, train_acc, val_loss, val_acc, lr, seconds;
  double reg_loss; /* mean regularization penalty of the epoch's steps */
} epoch_record;

struct nnkit_trainer {
  nnkit_net *net;         /* borrowed */
  nnkit_optimizer *opt;   /* borrowed */
  size_t epochs, batch_size;
  int shuffle, verbose;
  uint64_t seed;
  nnkit_log_fn log_fn;
  void *log_user;
  epoch_record *record;
  size_t num_records, cap_records;
  /* Batch buffers, sized at the start of a fit. */
  size_t *order;
  float *bx, *bt;
  int32_t *by;
  size_t order_cap, bx_cap, bt_cap, by_cap;
  /* The pipelines of nnkit_trainer_fit_pipeline() while it runs, or NULL. */
  nnkit_pipeline *pipe, *vpipe;
  nnkit__trainer_x x; /* monitoring hooks: lib/train/train_internal.h */
};

nnkit__trainer_x *nnkit__tx(const nnkit_trainer *tr)
{
  return (nnkit__trainer_x *)&tr->x;
}

/* The trainer's own keys, in the shared key/bounds mechanism (nnkit__spec);
 * monitoring keys live in monitor.c (nnkit__tx_set). */
static const nnkit__spec tspecs[] = {
  {0, NNKIT_TRAIN_EPOCHS, "epochs", 1, 1e6, 10, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_BATCH_SIZE, "batch size", 1, 65536, 64, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SHUFFLE, "shuffle", 0, 1, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_SEED, "seed", 0, 9007199254740992.0, 0, NNKIT_BOUND_INTEGER},
  {0, NNKIT_TRAIN_VERBOSE, "verbose", 0, 2, 0, NNKIT_BOUND_INTEGER},
};

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
  tr->epochs = 10;
  tr->batch_size = 64;
  tr->shuffle = 1;
  nnkit__tx_init(&tr->x, tr, net, opt);
  *out = tr;
  return NNKIT_OK;
}

NNKIT_API void nnkit_trainer_free(nnkit_trainer *tr)
{
  if (!tr)
    return;
  nnkit__free(tr->record);
  nnkit__free(tr->order);
  nnkit__free(tr->bx);
  nnkit__free(tr->bt);
  nnkit__free(tr->by);
  nnkit__tx_free(&tr->x);
  nnkit__free(tr);
}

NNKIT_API nnkit_status nnkit_trainer_set(nnkit_trainer *tr, nnkit_train_param key,
                                         double value)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set: tr is NULL");
  const nnkit__spec *s =
      nnkit__spec_find(tspecs, sizeof tspecs / sizeof tspecs[0], 0, (int)key);
  nnkit_status xst;
  if (!s && nnkit__tx_set(&tr->x, key, value, &xst))
    return xst;
  if (!s)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_set: unknown setting %d; use an NNKIT_TRAIN_* key",
                      (int)key);
  nnkit_status st = nnkit__spec_check(s, "trainer", value);
  if (st != NNKIT_OK)
    return st;
  switch (key) {
  case NNKIT_TRAIN_EPOCHS: tr->epochs = (size_t)value; break;
  case NNKIT_TRAIN_BATCH_SIZE: tr->batch_size = (size_t)value; break;
  case NNKIT_TRAIN_SHUFFLE: tr->shuffle = (int)value; break;
  case NNKIT_TRAIN_SEED: tr->seed = (uint64_t)value; break;
  case NNKIT_TRAIN_VERBOSE: tr->verbose = (int)value; break;
  default: break;
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_get(double *out, const nnkit_trainer *tr,
                                         nnkit_train_param key)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_get: NULL argument");
  switch (key) {
  case NNKIT_TRAIN_EPOCHS: *out = (double)tr->epochs; return NNKIT_OK;
  case NNKIT_TRAIN_BATCH_SIZE: *out = (double)tr->batch_size; return NNKIT_OK;
  case NNKIT_TRAIN_SHUFFLE: *out = tr->shuffle; return NNKIT_OK;
  case NNKIT_TRAIN_SEED: *out = (double)tr->seed; return NNKIT_OK;
  case NNKIT_TRAIN_VERBOSE: *out = tr->verbose; return NNKIT_OK;
  default:
    if (nnkit__tx_get(&tr->x, key, out))
      return NNKIT_OK;
    break;
  }
  return nnkit__err(NNKIT_E_INVALID,
                    "nnkit_trainer_get: unknown setting %d; use an NNKIT_TRAIN_* key",
                    (int)key);
}

NNKIT_API void nnkit_trainer_set_logger(nnkit_trainer *tr, nnkit_log_fn fn,
                                        void *user)
{
  tr->log_fn = fn;
  tr->log_user = user;
  tr->x.log_fn = fn;
  tr->x.log_user = user;
}

static void log_line(const nnkit_trainer *tr, const char *line)
{
  if (tr->log_fn) {
    tr->log_fn(line, tr->log_user);
  } else {
    nnkit__tx_clear_line(nnkit__tx(tr));
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
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

/* Grows a buffer to hold n elements of size sz; keeps nothing. */
static int reserve(void **buf, size_t *cap, size_t n, size_t sz)
{
  if (n <= *cap)
    return 1;
  nnkit__free(*buf);
  *buf = nnkit__malloc(n * sz);
  *cap = *buf ? n : 0;
  return *buf != NULL;
}

static nnkit_status push_record(nnkit_trainer *tr, const epoch_record *r)
{
  if (tr->num_records == tr->cap_records) {
    size_t cap = tr->cap_records ? 2 * tr->cap_records : 16;
    epoch_record *nr = nnkit__realloc(tr->record, cap * sizeof *nr);
    if (!nr)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the record");
    tr->record = nr;
    tr->cap_records = cap;
  }
  tr->record[tr->num_records++] = *r;
  return NNKIT_OK;
}

/* One epoch over train -- its shuffled batches, or the batches of
 * tr->pipe (whose dataset train is); fills the train fields of rec. */
static nnkit_status run_epoch(nnkit_trainer *tr, const nnkit_dataset *train,
                              size_t epoch, size_t total_epochs,
                              epoch_record *rec)
{
  nnkit_net *net = tr->net;
  nnkit_pipeline *pipe = tr->pipe;
  size_t n = train->count, td = train->target_dim;
  size_t bs = tr->batch_size < n ? tr->batch_size : n;
  size_t per_epoch = pipe ? nnkit_pipeline_batches_per_epoch(pipe) : (n + bs - 1) / bs;
  if (pipe) {
    nnkit_status st = nnkit__pipeline_begin_epoch(pipe, epoch);
    if (st != NNKIT_OK)
      return st;
  } else {
    for (size_t i = 0; i < n; i++)
      tr->order[i] = i;
    if (tr->shuffle) {
      nnkit__rng r;
      nnkit__rng_init(&r, tr->seed, epoch);
      nnkit__rng_shuffle(&r, tr->order, n);
    }
  }
  double loss_sum = 0, reg_sum = 0;
  size_t correct = 0, batches = 0, seen = 0;
  for (size_t s = 0; (pipe || s < n) && !tr->x.stop; s += bs) {
    size_t b;
    const float *bx = tr->bx, *bt = td ? tr->bt : NULL;
    const int32_t *by = train->labels ? tr->by : NULL;
    if (pipe) { /* borrowed from the pipeline until its next batch */
      nnkit_status st = nnkit__pipeline_next(pipe, &bx, &by, &bt, &b);
      if (st != NNKIT_OK)
        return st;
      if (b == 0)
        break;
    } else {
      b = n - s < bs ? n - s : bs;
      nnkit__dataset_gather(train, tr->order + s, b, tr->bx);
      for (size_t i = 0; i < b; i++) {
        size_t k = tr->order[s + i];
        if (train->labels)
          tr->by[i] = train->labels[k];
        if (td)
          memcpy(tr->bt + i * td, train->targets + k * td, td * sizeof(float));
      }
    }
    double loss = 0;
    /* The trainer's own bx stays as it is until the next batch, so the net
     * reads it in place; a pipeline's batch is copied (the pipeline may
     * refill it once asked for the next one, even the empty last). ReLUs
     * run in place except on an epoch's last batch: the one the layer
     * statistics sample, and the one whose activations fit leaves behind
     * (so that every layer's output can be inspected afterwards). */
    int last = batches + 1 == per_epoch;
    nnkit_status st = nnkit__net_forward_fit(net, bx, b, !pipe, !last);
    if (st == NNKIT_OK)
      st = nnkit_net_backward(net, by, bt, &loss);
    if (st != NNKIT_OK)
      return st;
    (void)total_epochs; /* named in the divergence sentence by the hook */
    if (!isfinite(loss))
      return nnkit__tx_diverged(&tr->x, epoch, batches, loss);
    nnkit__tx_before_step(&tr->x, last);
    st = nnkit_optimizer_step(tr->opt, net);
    if (st != NNKIT_OK)
      return st;
    loss_sum += loss * (double)b;
    reg_sum += tr->opt->last_reg_loss * (double)b;
    correct += net->last_correct;
    batches++;
    seen += b;
    st = nnkit__tx_after_step(&tr->x, epoch, batches - 1, b, loss);
    if (st != NNKIT_OK)
      return st;
    rec->lr = tr->opt->lr; /* the rate this step used */
    st = nnkit__optimizer_batch_end(tr->opt); /* a per-batch schedule */
    if (st != NNKIT_OK)
      return st;
  }
  rec->train_loss = loss_sum / (double)seen;
  rec->reg_loss = reg_sum / (double)seen;
  rec->train_acc = train->labels ? (double)correct / (double)seen : 0.0;
  return NNKIT_OK;
}

/* The fit loop of nnkit_trainer_fit() and nnkit_trainer_fit_pipeline():
 * with tr->pipe set, train is its dataset and the batches come from it,
 * and with tr->vpipe val is its dataset and is evaluated through it. */
static nnkit_status fit(nnkit_trainer *tr, const nnkit_dataset *train,
                        const nnkit_dataset *val)
{
  nnkit_net *net = tr->net;
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit: the net has no layers; add some first");
  nnkit_status st = check_dataset(net, train, "training",
                                  tr->pipe ? nnkit_pipeline_sample_size(tr->pipe)
                                           : train->sample_size);
  if (st == NNKIT_OK && val)
    st = check_dataset(net, val, "validation",
                       tr->vpipe ? nnkit_pipeline_sample_size(tr->vpipe)
                                 : val->sample_size);
  if (st != NNKIT_OK)
    return st;
  size_t bs = tr->batch_size < train->count ? tr->batch_size : train->count;
  size_t in = train->sample_size, td = train->target_dim;
  size_t samples = train->count, per_epoch = (samples + bs - 1) / bs;
  if (tr->pipe) {
    double pbs = 1;
    nnkit_pipeline_get(&pbs, tr->pipe, NNKIT_PIPE_BATCH_SIZE);
    per_epoch = nnkit_pipeline_batches_per_epoch(tr->pipe);
    samples = per_epoch * (size_t)pbs < samples ? per_epoch * (size_t)pbs : samples;
  } else if (!reserve((void **)&tr->order, &tr->order_cap, train->count,
                      sizeof(size_t)) ||
             !reserve((void **)&tr->bx, &tr->bx_cap, bs * in, sizeof(float)) ||
             !reserve((void **)&tr->by, &tr->by_cap, bs, sizeof(int32_t)) ||
             (td && !reserve((void **)&tr->bt, &tr->bt_cap, bs * td, sizeof(float)))) {
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for batches");
  }
  nnkit_net_set_training(net, 1);
  size_t first_epoch = tr->num_records;
  size_t total = first_epoch + tr->epochs;
  st = nnkit__tx_fit_begin(&tr->x, train, val != NULL, first_epoch, total, samples,
                           per_epoch, tr->verbose, tr->pipe == NULL);
  if (st != NNKIT_OK)
    return st;
  for (size_t e = first_epoch; e < total; e++) {
    double t0 = nnkit__now();
    epoch_record rec = {0};
    rec.lr = tr->opt->lr; /* run_epoch keeps the rate of the last step */
    nnkit_net_set_training(net, 1);
    st = run_epoch(tr, train, e, total, &rec);
    if (st != NNKIT_OK)
      return nnkit__tx_fit_end(&tr->x, st);
    rec.val_loss = rec.val_acc = NAN;
    if (val) {
      st = tr->vpipe ? nnkit__evaluate_pipeline(&rec.val_loss, &rec.val_acc, net,
                                                tr->vpipe)
                     : nnkit_net_evaluate(&rec.val_loss, &rec.val_acc, net, val);
      if (st != NNKIT_OK)
        return nnkit__tx_fit_end(&tr->x, st);
    }
    rec.seconds = nnkit__now() - t0;
    st = push_record(tr, &rec);
    if (st != NNKIT_OK)
      return nnkit__tx_fit_end(&tr->x, st);
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
      log_line(tr, line);
    }
    /* A per-epoch schedule steps now: the record keeps the epoch's rate;
     * reduce-on-plateau watches the validation loss, or the training cost. */
    st = nnkit__optimizer_epoch_end(tr->opt, val ? rec.val_loss
                                                  : rec.train_loss + rec.reg_loss);
    if (st != NNKIT_OK)
      return nnkit__tx_fit_end(&tr->x, st);
    st = nnkit__tx_epoch_end(&tr->x, e, rec.train_loss, rec.train_acc, rec.val_loss,
                             rec.val_acc, rec.lr, rec.seconds, rec.reg_loss);
    if (st != NNKIT_OK || tr->x.stop)
      break;
  }
  return nnkit__tx_fit_end(&tr->x, st);
}

NNKIT_API nnkit_status nnkit_trainer_fit(nnkit_trainer *tr,
                                         const nnkit_dataset *train,
                                         const nnkit_dataset *val)
{
  if (!tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: a trainer and a training set are required");
  tr->pipe = tr->vpipe = NULL;
  nnkit_status st = fit(tr, train, val);
  nnkit__net_keep_input(tr->net);
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
  tr->pipe = train;
  tr->vpipe = val;
  nnkit_status st = fit(tr, nnkit__pipeline_dataset(train),
                        val ? nnkit__pipeline_dataset(val) : NULL);
  tr->pipe = tr->vpipe = NULL;
  return st;
}

NNKIT_API size_t nnkit_trainer_epochs_done(const nnkit_trainer *tr)
{
  return tr->num_records;
}

NNKIT_API nnkit_status nnkit_trainer_metric(double *out, const nnkit_trainer *tr,
                                            size_t epoch, nnkit_metric metric)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_metric: NULL argument");
  if (epoch >= tr->num_records)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_metric: epoch %zu not recorded (%zu so far)", epoch,
                      tr->num_records);
  const epoch_record *r = &tr->record[epoch];
  switch (metric) {
  case NNKIT_METRIC_TRAIN_LOSS: *out = r->train_loss; return NNKIT_OK;
  case NNKIT_METRIC_TRAIN_ACC: *out = r->train_acc; return NNKIT_OK;
  case NNKIT_METRIC_VAL_LOSS: *out = r->val_loss; return NNKIT_OK;
  case NNKIT_METRIC_VAL_ACC: *out = r->val_acc; return NNKIT_OK;
  case NNKIT_METRIC_LR: *out = r->lr; return NNKIT_OK;
  case NNKIT_METRIC_SECONDS: *out = r->seconds; return NNKIT_OK;
  case NNKIT_METRIC_REG_LOSS: *out = r->reg_loss; return NNKIT_OK;
  }
  return nnkit__err(NNKIT_E_INVALID,
                    "nnkit_trainer_metric: unknown metric %d; use an NNKIT_METRIC_* value",
                    (int)metric);
}
