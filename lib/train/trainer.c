/* The fit loop: shuffled mini-batches, one optimizer step per batch,
 * per-epoch record, divergence check and the lecture's log line. Later
 * capabilities (callbacks, history export, monitoring, early stopping)
 * hang off this loop rather than replacing it. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

typedef struct epoch_record {
  double train_loss, train_acc, val_loss, val_acc, lr, seconds;
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
};

typedef struct train_spec {
  nnkit_train_param key;
  const char *name;
  double lo, hi;
} train_spec;

static const train_spec tspecs[] = {
  {NNKIT_TRAIN_EPOCHS, "epochs", 1, 1e6},
  {NNKIT_TRAIN_BATCH_SIZE, "batch size", 1, 65536},
  {NNKIT_TRAIN_SHUFFLE, "shuffle", 0, 1},
  {NNKIT_TRAIN_SEED, "seed", 0, 9007199254740992.0},
  {NNKIT_TRAIN_VERBOSE, "verbose", 0, 1},
};

static const train_spec *find_tspec(nnkit_train_param key)
{
  for (size_t i = 0; i < sizeof tspecs / sizeof tspecs[0]; i++)
    if (tspecs[i].key == key)
      return &tspecs[i];
  return NULL;
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
  tr->epochs = 10;
  tr->batch_size = 64;
  tr->shuffle = 1;
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
  nnkit__free(tr);
}

NNKIT_API nnkit_status nnkit_trainer_set(nnkit_trainer *tr, nnkit_train_param key,
                                         double value)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set: tr is NULL");
  const train_spec *s = find_tspec(key);
  if (!s)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_set: unknown setting %d; use an NNKIT_TRAIN_* key",
                      (int)key);
  if (!(value >= s->lo && value <= s->hi) || value != floor(value))
    return nnkit__err(NNKIT_E_INVALID,
                      "trainer %s %g must be an integer in [%g, %g]", s->name, value,
                      s->lo, s->hi);
  switch (key) {
  case NNKIT_TRAIN_EPOCHS: tr->epochs = (size_t)value; break;
  case NNKIT_TRAIN_BATCH_SIZE: tr->batch_size = (size_t)value; break;
  case NNKIT_TRAIN_SHUFFLE: tr->shuffle = (int)value; break;
  case NNKIT_TRAIN_SEED: tr->seed = (uint64_t)value; break;
  case NNKIT_TRAIN_VERBOSE: tr->verbose = (int)value; break;
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
}

static void log_line(const nnkit_trainer *tr, const char *line)
{
  if (tr->log_fn) {
    tr->log_fn(line, tr->log_user);
  } else {
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
}

static nnkit_status check_dataset(const nnkit_net *net, const nnkit_dataset *ds,
                                  const char *which)
{
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  if (ds->sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_trainer_fit: %s samples have %zu values, the net takes %zu",
                      which, ds->sample_size, in);
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

/* One epoch over train; fills the train fields of rec. */
static nnkit_status run_epoch(nnkit_trainer *tr, const nnkit_dataset *train,
                              size_t epoch, size_t total_epochs,
                              epoch_record *rec)
{
  nnkit_net *net = tr->net;
  size_t n = train->count, in = train->sample_size, td = train->target_dim;
  size_t bs = tr->batch_size < n ? tr->batch_size : n;
  for (size_t i = 0; i < n; i++)
    tr->order[i] = i;
  if (tr->shuffle) {
    nnkit__rng r;
    nnkit__rng_init(&r, tr->seed, epoch);
    nnkit__rng_shuffle(&r, tr->order, n);
  }
  double loss_sum = 0;
  size_t correct = 0, batches = 0;
  for (size_t s = 0; s < n; s += bs) {
    size_t b = n - s < bs ? n - s : bs;
    for (size_t i = 0; i < b; i++) {
      size_t k = tr->order[s + i];
      memcpy(tr->bx + i * in, train->x + k * in, in * sizeof(float));
      if (train->labels)
        tr->by[i] = train->labels[k];
      if (td)
        memcpy(tr->bt + i * td, train->targets + k * td, td * sizeof(float));
    }
    double loss = 0;
    nnkit_status st = nnkit_net_forward(net, tr->bx, b, NULL, 0);
    if (st == NNKIT_OK)
      st = nnkit_net_backward(net, train->labels ? tr->by : NULL, td ? tr->bt : NULL,
                              &loss);
    if (st != NNKIT_OK)
      return st;
    if (!isfinite(loss)) {
      double lr = tr->opt->lr;
      return nnkit__err(NNKIT_E_DIVERGED,
                        "cost became %s at epoch %zu / %zu, batch %zu; learning rate "
                        "%.0e is likely too high, try %.0e",
                        isnan(loss) ? "nan" : "inf", epoch + 1, total_epochs,
                        batches + 1, lr, lr / 10);
    }
    st = nnkit_optimizer_step(tr->opt, net);
    if (st != NNKIT_OK)
      return st;
    loss_sum += loss * (double)b;
    correct += net->last_correct;
    batches++;
  }
  rec->train_loss = loss_sum / (double)n;
  rec->train_acc = train->labels ? (double)correct / (double)n : 0.0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_fit(nnkit_trainer *tr,
                                         const nnkit_dataset *train,
                                         const nnkit_dataset *val)
{
  if (!tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: a trainer and a training set are required");
  nnkit_net *net = tr->net;
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit: the net has no layers; add some first");
  nnkit_status st = check_dataset(net, train, "training");
  if (st == NNKIT_OK && val)
    st = check_dataset(net, val, "validation");
  if (st != NNKIT_OK)
    return st;
  size_t bs = tr->batch_size < train->count ? tr->batch_size : train->count;
  size_t in = train->sample_size, td = train->target_dim;
  if (!reserve((void **)&tr->order, &tr->order_cap, train->count, sizeof(size_t)) ||
      !reserve((void **)&tr->bx, &tr->bx_cap, bs * in, sizeof(float)) ||
      !reserve((void **)&tr->by, &tr->by_cap, bs, sizeof(int32_t)) ||
      (td && !reserve((void **)&tr->bt, &tr->bt_cap, bs * td, sizeof(float))))
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for batches");
  nnkit_net_set_training(net, 1);
  size_t first_epoch = tr->num_records;
  size_t total = first_epoch + tr->epochs;
  for (size_t e = first_epoch; e < total; e++) {
    double t0 = nnkit__now();
    epoch_record rec = {0};
    nnkit_net_set_training(net, 1);
    st = run_epoch(tr, train, e, total, &rec);
    if (st != NNKIT_OK)
      return st;
    rec.val_loss = rec.val_acc = NAN;
    if (val) {
      st = nnkit_net_evaluate(&rec.val_loss, &rec.val_acc, net, val);
      if (st != NNKIT_OK)
        return st;
    }
    rec.lr = tr->opt->lr;
    rec.seconds = nnkit__now() - t0;
    st = push_record(tr, &rec);
    if (st != NNKIT_OK)
      return st;
    if (tr->verbose) {
      char line[256];
      if (val)
        snprintf(line, sizeof line,
                 "Finished epoch %zu / %zu: cost %f, train: %f, val %f, lr %e", e + 1,
                 total, rec.train_loss, rec.train_acc, rec.val_acc, rec.lr);
      else
        snprintf(line, sizeof line, "Finished epoch %zu / %zu: cost %f, train: %f, lr %e",
                 e + 1, total, rec.train_loss, rec.train_acc, rec.lr);
      log_line(tr, line);
    }
  }
  return NNKIT_OK;
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
  }
  return nnkit__err(NNKIT_E_INVALID,
                    "nnkit_trainer_metric: unknown metric %d; use an NNKIT_METRIC_* value",
                    (int)metric);
}
