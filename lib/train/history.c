/* The history of a trainer: per-epoch figures, per-batch losses and
 * per-layer statistics, their getters and their export as CSV and JSON
 * Lines (written atomically: temporary file, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "train_internal.h"

/* ---- storage ------------------------------------------------------------- */

static size_t grow(size_t cap, size_t need, size_t floor_)
{
  size_t c = cap ? cap : floor_;
  while (c < need)
    c *= 2;
  return c;
}

const char *nnkit__layer_kind_name(const nnkit__layer *l)
{
  int act = nnkit__layer_activation(l, NULL);
  return act ? nnkit__activation_name(act) : l->ops->name;
}

nnkit_status nnkit__history_reserve(nnkit_history *h, size_t epochs,
                                    size_t batches, const nnkit_net *net,
                                    int with_stats)
{
  size_t ne = h->num_epochs + epochs, nb = h->num_batches + batches;
  size_t L = with_stats ? net->num_layers : 0;
  if (L && h->num_layers && h->num_layers != L)
    L = 0; /* the layer list changed since the first stats: no more rows */
  if (L && !h->num_layers) {
    h->kinds = nnkit__calloc(L, sizeof *h->kinds);
    if (!h->kinds)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the history");
    for (size_t i = 0; i < L; i++)
      snprintf(h->kinds[i], sizeof h->kinds[i], "%s", nnkit__layer_kind_name(&net->layers[i]));
    h->num_layers = L;
    /* Rows for the epochs already allocated. */
    if (h->cap_epochs) {
      double *s = nnkit__realloc(h->stats, h->cap_epochs * L * NNKIT__NSTATS * sizeof *s);
      if (!s)
        return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the history");
      h->stats = s;
    }
  }
  if (ne > h->cap_epochs) {
    size_t cap = grow(h->cap_epochs, ne, 16);
    nnkit__hist_epoch *e = nnkit__realloc(h->epochs, cap * sizeof *e);
    if (!e)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the history");
    h->epochs = e;
    if (h->num_layers) {
      double *s = nnkit__realloc(h->stats, cap * h->num_layers * NNKIT__NSTATS * sizeof *s);
      if (!s)
        return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the history");
      h->stats = s;
    }
    h->cap_epochs = cap;
  }
  if (nb > h->cap_batches) {
    size_t cap = grow(h->cap_batches, nb, 1024);
    nnkit__hist_batch *b = nnkit__realloc(h->batches, cap * sizeof *b);
    if (!b)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the history");
    h->batches = b;
    h->cap_batches = cap;
  }
  return NNKIT_OK;
}

void nnkit__history_free(nnkit_history *h)
{
  nnkit__free(h->epochs);
  nnkit__free(h->batches);
  nnkit__free(h->stats);
  nnkit__free(h->kinds);
  memset(h, 0, sizeof *h);
}

/* ---- getters ------------------------------------------------------------- */

NNKIT_API const nnkit_history *nnkit_trainer_history(const nnkit_trainer *tr)
{
  return tr ? &tr->hist : NULL;
}

NNKIT_API size_t nnkit_history_epochs(const nnkit_history *h)
{
  return h ? h->num_epochs : 0;
}

NNKIT_API size_t nnkit_history_batches(const nnkit_history *h)
{
  return h ? h->num_batches : 0;
}

NNKIT_API size_t nnkit_history_num_layers(const nnkit_history *h)
{
  return h ? h->num_layers : 0;
}

static int epoch_value(double *out, const nnkit__hist_epoch *e, nnkit_metric m)
{
  switch (m) {
  case NNKIT_METRIC_TRAIN_LOSS: *out = e->train_loss; return 1;
  case NNKIT_METRIC_TRAIN_ACC: *out = e->train_acc; return 1;
  case NNKIT_METRIC_VAL_LOSS: *out = e->val_loss; return 1;
  case NNKIT_METRIC_VAL_ACC: *out = e->val_acc; return 1;
  case NNKIT_METRIC_LR: *out = e->lr; return 1;
  case NNKIT_METRIC_SECONDS: *out = e->seconds; return 1;
  case NNKIT_METRIC_REG_LOSS: *out = e->reg_loss; return 1;
  }
  return 0;
}

nnkit_status nnkit__history_value(double *out, const nnkit_history *h,
                                  size_t epoch, nnkit_metric metric,
                                  const char *fn)
{
  if (epoch >= h->num_epochs)
    return nnkit__err(NNKIT_E_INVALID, "%s: epoch %zu not recorded (%zu so far)", fn,
                      epoch, h->num_epochs);
  if (!epoch_value(out, &h->epochs[epoch], metric))
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: unknown metric %d; use an NNKIT_METRIC_* value", fn,
                      (int)metric);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_history_get(double *out, const nnkit_history *h,
                                         size_t epoch, nnkit_metric metric)
{
  if (!out || !h)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_history_get: NULL argument");
  return nnkit__history_value(out, h, epoch, metric, "nnkit_history_get");
}

NNKIT_API nnkit_status nnkit_history_column(double *out, size_t len,
                                            const nnkit_history *h,
                                            nnkit_metric metric)
{
  double v;
  if (!h || (!out && len))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_history_column: NULL argument");
  nnkit__hist_epoch dummy = {0};
  if (!epoch_value(&v, &dummy, metric))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_history_column: unknown metric %d; use an NNKIT_METRIC_* "
                      "value", (int)metric);
  for (size_t i = 0; i < len && i < h->num_epochs; i++)
    epoch_value(&out[i], &h->epochs[i], metric);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_history_batch_losses(double *losses_out,
                                                  double *lrs_out, size_t len,
                                                  size_t *count_out,
                                                  const nnkit_history *h,
                                                  size_t first)
{
  if (count_out)
    *count_out = 0;
  if (!h)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_history_batch_losses: h is NULL");
  if (first > h->num_batches)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_history_batch_losses: batch %zu not recorded (%zu so far)",
                      first, h->num_batches);
  size_t n = h->num_batches - first < len ? h->num_batches - first : len;
  for (size_t i = 0; i < n; i++) {
    if (losses_out)
      losses_out[i] = h->batches[first + i].loss;
    if (lrs_out)
      lrs_out[i] = h->batches[first + i].lr;
  }
  if (count_out)
    *count_out = n;
  return NNKIT_OK;
}

static int valid_stat(nnkit_layer_stat s)
{
  return s >= NNKIT_LSTAT_ACT_MEAN && s <= NNKIT_LSTAT_PARAM_NORM;
}

NNKIT_API nnkit_status nnkit_history_layer_stats(double *out, size_t len,
                                                 const nnkit_layer_stat *stats,
                                                 size_t num_stats,
                                                 const nnkit_history *h,
                                                 size_t epoch)
{
  if (!out || !stats || !h || num_stats == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_history_layer_stats: NULL argument or no statistic asked");
  for (size_t j = 0; j < num_stats; j++)
    if (!valid_stat(stats[j]))
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_history_layer_stats: unknown statistic %d; use an "
                        "NNKIT_LSTAT_* value", (int)stats[j]);
  if (epoch >= h->num_epochs)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_history_layer_stats: epoch %zu not recorded (%zu so far)",
                      epoch, h->num_epochs);
  if (!h->epochs[epoch].has_stats)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_history_layer_stats: epoch %zu has no layer statistics; "
                      "set NNKIT_TRAIN_LAYER_STATS to 1 before the fit", epoch);
  size_t L = h->num_layers;
  if (len / num_stats < L)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_history_layer_stats: out holds %zu values, %zu layers x "
                      "%zu statistics are needed", len, L, num_stats);
  const double *row = h->stats + epoch * L * NNKIT__NSTATS;
  for (size_t l = 0; l < L; l++)
    for (size_t j = 0; j < num_stats; j++)
      out[l * num_stats + j] = row[l * NNKIT__NSTATS + (size_t)stats[j] - 1];
  return NNKIT_OK;
}

/* ---- export -------------------------------------------------------------- */

typedef struct row_writer {
  FILE *f;
  int json;
  int first; /* no field written yet on this row */
} row_writer;

static void begin_row(row_writer *w)
{
  w->first = 1;
  if (w->json)
    fputc('{', w->f);
}

static void end_row(row_writer *w)
{
  fputs(w->json ? "}\n" : "\n", w->f);
}

static void sep(row_writer *w, const char *key)
{
  if (!w->first)
    fputc(',', w->f);
  w->first = 0;
  if (w->json)
    fprintf(w->f, "\"%s\":", key);
}

static void put_num(row_writer *w, const char *key, double v)
{
  sep(w, key);
  if (isfinite(v))
    fprintf(w->f, "%.17g", v);
  else if (w->json)
    fputs("null", w->f);
  else
    fputs(isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"), w->f);
}

static void put_int(row_writer *w, const char *key, size_t v)
{
  sep(w, key);
  fprintf(w->f, "%zu", v);
}

static void put_str(row_writer *w, const char *key, const char *s)
{
  sep(w, key);
  /* Kind names are short identifiers: no quoting or escaping needed. */
  fprintf(w->f, w->json ? "\"%s\"" : "%s", s);
}

static const char *const epoch_cols[] = {"epoch",   "train_loss", "reg_loss",
                                         "train_acc", "val_loss", "val_acc",
                                         "lr",        "seconds",  "batches"};
static const char *const batch_cols[] = {"step", "epoch", "batch", "loss", "lr"};
static const char *const layer_cols[] = {"epoch",     "layer",     "kind",
                                         "act_mean",  "act_std",   "saturated",
                                         "dead",      "grad_norm", "update_ratio",
                                         "param_norm"};

static void header(row_writer *w, const char *const *cols, size_t n)
{
  if (w->json)
    return;
  for (size_t i = 0; i < n; i++)
    fprintf(w->f, "%s%s", i ? "," : "", cols[i]);
  fputc('\n', w->f);
}

static void write_table(row_writer *w, const nnkit_history *h,
                        nnkit_history_table table)
{
  if (table == NNKIT_HISTORY_EPOCHS) {
    header(w, epoch_cols, 9);
    for (size_t i = 0; i < h->num_epochs; i++) {
      const nnkit__hist_epoch *e = &h->epochs[i];
      begin_row(w);
      put_int(w, epoch_cols[0], i + 1);
      put_num(w, epoch_cols[1], e->train_loss);
      put_num(w, epoch_cols[2], e->reg_loss);
      put_num(w, epoch_cols[3], e->train_acc);
      put_num(w, epoch_cols[4], e->val_loss);
      put_num(w, epoch_cols[5], e->val_acc);
      put_num(w, epoch_cols[6], e->lr);
      put_num(w, epoch_cols[7], e->seconds);
      put_int(w, epoch_cols[8], e->num_batches);
      end_row(w);
    }
  } else if (table == NNKIT_HISTORY_BATCHES) {
    header(w, batch_cols, 5);
    for (size_t i = 0; i < h->num_batches; i++) {
      const nnkit__hist_batch *b = &h->batches[i];
      begin_row(w);
      put_int(w, batch_cols[0], i + 1);
      put_int(w, batch_cols[1], (size_t)b->epoch + 1);
      put_int(w, batch_cols[2], (size_t)b->batch + 1);
      put_num(w, batch_cols[3], b->loss);
      put_num(w, batch_cols[4], b->lr);
      end_row(w);
    }
  } else {
    header(w, layer_cols, 10);
    size_t L = h->num_layers;
    for (size_t i = 0; i < h->num_epochs; i++) {
      if (!h->epochs[i].has_stats)
        continue;
      const double *row = h->stats + i * L * NNKIT__NSTATS;
      for (size_t l = 0; l < L; l++) {
        begin_row(w);
        put_int(w, layer_cols[0], i + 1);
        put_int(w, layer_cols[1], l + 1);
        put_str(w, layer_cols[2], h->kinds[l]);
        for (size_t k = 0; k < NNKIT__NSTATS; k++)
          put_num(w, layer_cols[3 + k], row[l * NNKIT__NSTATS + k]);
        end_row(w);
      }
    }
  }
}

static nnkit_status save(const nnkit_history *h, nnkit_history_table table,
                         const char *path, int json, const char *fn)
{
  if (!h || !path)
    return nnkit__err(NNKIT_E_INVALID, "%s: NULL argument", fn);
  if (table < NNKIT_HISTORY_EPOCHS || table > NNKIT_HISTORY_LAYERS)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: unknown table %d; use an NNKIT_HISTORY_* value", fn,
                      (int)table);
  nnkit__tfile t;
  nnkit_status st = nnkit__tfile_open(&t, path);
  if (st != NNKIT_OK)
    return st;
  row_writer w = {t.f, json, 1};
  write_table(&w, h, table);
  return nnkit__tfile_commit(&t, 1);
}

NNKIT_API nnkit_status nnkit_history_save_csv(const nnkit_history *h,
                                              nnkit_history_table table,
                                              const char *path)
{
  return save(h, table, path, 0, "nnkit_history_save_csv");
}

NNKIT_API nnkit_status nnkit_history_save_jsonl(const nnkit_history *h,
                                                nnkit_history_table table,
                                                const char *path)
{
  return save(h, table, path, 1, "nnkit_history_save_jsonl");
}
