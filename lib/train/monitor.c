/* The watcher of the fit loop: the hooks trainer.c calls around each batch
 * and epoch. Records the history, samples per-layer statistics, detects
 * divergence (NaN/Inf and exploding losses) and restores the last good
 * weights, runs callbacks, early stopping and the progress display. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "train_internal.h"

/* Smoothing of the batch loss for the growth test of the divergence
 * detector (an exponential average over about 10 batches). */
#define EMA_BETA 0.9
/* Growth of the smoothed loss over DIVERGE_WINDOW batches that counts as
 * exploding. */
#define GROWTH 10.0
/* Seconds between redraws of the progress bar. */
#define DRAW_EVERY 0.1

/* ---- snapshots ----------------------------------------------------------- */

nnkit_status nnkit__snapshot_reserve(nnkit__snapshot *s, nnkit_net *net)
{
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  size_t n = net->num_params, nb = nnkit__net_role_floats(net, NNKIT__ROLE_STATE);
  if (n > s->cap) {
    nnkit__free(s->params);
    s->params = nnkit__malloc(n * sizeof(float));
    s->cap = s->params ? n : 0;
    if (!s->params)
      return nnkit__err(NNKIT_E_NOMEM,
                        "nnkit_trainer_fit: out of memory for a copy of %zu parameters",
                        n);
  }
  if (nb > s->bn_cap) {
    nnkit__free(s->bn);
    s->bn = nnkit__malloc(nb * sizeof(float));
    s->bn_cap = s->bn ? nb : 0;
    if (!s->bn)
      return nnkit__err(NNKIT_E_NOMEM,
                        "nnkit_trainer_fit: out of memory for a copy of the running "
                        "statistics");
  }
  s->n = n;
  s->nbn = nb;
  s->valid = 0;
  return NNKIT_OK;
}

void nnkit__snapshot_save(nnkit__snapshot *s, const nnkit_net *net)
{
  if (s->n != net->num_params || (s->n && !s->params))
    return;
  if (s->n)
    memcpy(s->params, net->params, s->n * sizeof(float));
  if (s->nbn)
    nnkit__net_role_copy((nnkit_net *)net, NNKIT__ROLE_STATE, s->bn, 0);
  s->valid = 1;
}

void nnkit__snapshot_restore(const nnkit__snapshot *s, nnkit_net *net)
{
  if (!s->valid || s->n != net->num_params)
    return;
  if (s->n)
    memcpy(net->params, s->params, s->n * sizeof(float));
  if (s->nbn)
    nnkit__net_role_copy(net, NNKIT__ROLE_STATE, s->bn, 1);
}

void nnkit__snapshot_free(nnkit__snapshot *s)
{
  nnkit__free(s->params);
  nnkit__free(s->bn);
  nnkit__free(s->ost);
  nnkit__free(s->osc);
  memset(s, 0, sizeof *s);
}

void nnkit__snapshot_save_opt(nnkit__snapshot *s, const nnkit_optimizer *opt)
{
  size_t n = nnkit_optimizer_state_size(opt), m = nnkit_optimizer_state_scalars(opt);
  s->opt_valid = 0;
  if (n > s->ost_cap) {
    nnkit__free(s->ost);
    s->ost = nnkit__malloc(n * sizeof *s->ost);
    s->ost_cap = s->ost ? n : 0;
  }
  if (m > s->osc_cap) {
    nnkit__free(s->osc);
    s->osc = nnkit__malloc(m * sizeof *s->osc);
    s->osc_cap = s->osc ? m : 0;
  }
  if (n > s->ost_cap || m > s->osc_cap)
    return;
  s->ost_n = n;
  s->osc_n = m;
  s->opt_valid = nnkit_optimizer_get_state(s->ost, n, s->osc, m, opt) == NNKIT_OK;
}

int nnkit__snapshot_restore_opt(const nnkit__snapshot *s, nnkit_optimizer *opt,
                                const nnkit_net *net)
{
  return s->opt_valid && nnkit_optimizer_set_state(opt, net, s->ost, s->ost_n, s->osc,
                                                   s->osc_n) == NNKIT_OK;
}

/* ---- settings ------------------------------------------------------------ */

typedef struct xspec {
  nnkit_train_param key;
  const char *name;
  double lo, hi;
} xspec;

static const xspec xspecs[] = {
  {NNKIT_TRAIN_LAYER_STATS, "layer statistics", 0, 1},
  {NNKIT_TRAIN_SANITY, "sanity checks", 0, 2},
  {NNKIT_TRAIN_DIVERGE_FACTOR, "divergence factor", 0, 1e15},
  {NNKIT_TRAIN_DIVERGE_WINDOW, "divergence window", 0, 1e6},
  {NNKIT_TRAIN_KEEP_GOOD, "keep last good weights", 0, 1},
  {NNKIT_TRAIN_DIAGNOSE, "diagnose", 0, 1},
};

void nnkit__tx_init(nnkit__trainer_x *x, const nnkit_trainer *tr,
                    nnkit_net *net, nnkit_optimizer *opt)
{
  memset(x, 0, sizeof *x);
  x->owner = tr;
  x->net = net;
  x->opt = opt;
  x->layer_stats = 1;
  x->keep_good = 1;
  x->diverge_factor = 1000;
  x->diverge_window = 50;
  for (size_t i = 0; i < sizeof x->sanity / sizeof x->sanity[0]; i++)
    x->sanity[i] = NAN;
}

void nnkit__tx_free(nnkit__trainer_x *x)
{
  nnkit__free(x->cbs);
  nnkit__snapshot_free(&x->best);
  nnkit__snapshot_free(&x->good);
  nnkit__free(x->ring);
  nnkit__free(x->row);
  nnkit__free(x->pre);
  nnkit__free(x->alive);
  nnkit__history_free(&x->hist);
}

int nnkit__tx_set(nnkit__trainer_x *x, nnkit_train_param key, double value,
                  nnkit_status *st)
{
  const xspec *s = NULL;
  for (size_t i = 0; i < sizeof xspecs / sizeof xspecs[0]; i++)
    if (xspecs[i].key == key)
      s = &xspecs[i];
  if (!s)
    return 0;
  if (!(value >= s->lo && value <= s->hi) || value != floor(value)) {
    *st = nnkit__err(NNKIT_E_INVALID, "trainer %s %g must be an integer in [%g, %g]",
                     s->name, value, s->lo, s->hi);
    return 1;
  }
  if (x->in_fit) {
    *st = nnkit__err(NNKIT_E_STATE, "trainer %s cannot change during a fit", s->name);
    return 1;
  }
  switch (key) {
  case NNKIT_TRAIN_LAYER_STATS: x->layer_stats = (int)value; break;
  case NNKIT_TRAIN_SANITY: x->sanity_mode = (int)value; break;
  case NNKIT_TRAIN_DIVERGE_FACTOR: x->diverge_factor = value; break;
  case NNKIT_TRAIN_DIVERGE_WINDOW: x->diverge_window = (size_t)value; break;
  case NNKIT_TRAIN_KEEP_GOOD: x->keep_good = (int)value; break;
  case NNKIT_TRAIN_DIAGNOSE: x->diagnose = (int)value; break;
  default: break;
  }
  *st = NNKIT_OK;
  return 1;
}

int nnkit__tx_get(const nnkit__trainer_x *x, nnkit_train_param key, double *out)
{
  switch (key) {
  case NNKIT_TRAIN_LAYER_STATS: *out = x->layer_stats; return 1;
  case NNKIT_TRAIN_SANITY: *out = x->sanity_mode; return 1;
  case NNKIT_TRAIN_DIVERGE_FACTOR: *out = x->diverge_factor; return 1;
  case NNKIT_TRAIN_DIVERGE_WINDOW: *out = (double)x->diverge_window; return 1;
  case NNKIT_TRAIN_KEEP_GOOD: *out = x->keep_good; return 1;
  case NNKIT_TRAIN_DIAGNOSE: *out = x->diagnose; return 1;
  default: return 0;
  }
}

/* ---- logging and progress ------------------------------------------------ */

void nnkit__tx_clear_line(nnkit__trainer_x *x)
{
  if (x->bar_shown) {
    fputs("\r\033[K", stdout);
    fflush(stdout);
    x->bar_shown = 0;
  }
}

void nnkit__tx_log(nnkit__trainer_x *x, const char *line)
{
  if (x->log_fn) {
    x->log_fn(line, x->log_user);
  } else {
    nnkit__tx_clear_line(x);
    fputs(line, stdout);
    fputc('\n', stdout);
    fflush(stdout);
  }
}

/* Formats seconds as "12s", "3m05s" or "2h07m". */
static void fmt_duration(char *buf, size_t len, double s)
{
  if (!(s >= 0) || s > 1e7)
    snprintf(buf, len, "?");
  else if (s < 60)
    snprintf(buf, len, "%.0fs", s);
  else if (s < 3600)
    snprintf(buf, len, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
  else
    snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
}

static void progress(nnkit__trainer_x *x, size_t epoch)
{
  int bar = x->tty, plain = !x->tty && x->verbose >= 2;
  if (!bar && !plain)
    return;
  double now = nnkit__now();
  int done = x->epoch_seen >= x->n_train;
  if (bar && !done && now - x->last_draw < DRAW_EVERY)
    return;
  if (plain && !done && x->epoch_seen < x->next_plain)
    return;
  x->last_draw = now;
  double el = now - x->epoch_t0;
  double rate = el > 0 ? (double)x->epoch_seen / el : 0;
  double eta = rate > 0 ? (double)(x->n_train - x->epoch_seen) / rate : -1;
  double running = x->epoch_seen ? x->epoch_loss_sum / (double)x->epoch_seen : NAN;
  char eta_s[32], line[256];
  fmt_duration(eta_s, sizeof eta_s, eta);
  if (bar) {
    enum { W = 24 };
    char b[W + 1];
    size_t fill = x->n_train ? x->epoch_seen * W / x->n_train : 0;
    for (size_t i = 0; i < W; i++)
      b[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    b[W] = '\0';
    snprintf(line, sizeof line,
             "\repoch %zu / %zu [%s] %zu/%zu  %.0f samples/s  ETA %s  loss %.4f",
             epoch + 1, x->total_epochs, b, x->epoch_seen, x->n_train, rate, eta_s,
             running);
    fputs(line, stdout);
    fputs("\033[K", stdout);
    fflush(stdout);
    x->bar_shown = 1;
  } else {
    snprintf(line, sizeof line,
             "epoch %zu / %zu: %zu / %zu samples, %.0f samples/s, ETA %s, loss %.6f",
             epoch + 1, x->total_epochs, x->epoch_seen, x->n_train, rate, eta_s,
             running);
    nnkit__tx_log(x, line);
    x->next_plain += x->n_train / 10 ? x->n_train / 10 : 1;
  }
}

static void start_epoch(nnkit__trainer_x *x)
{
  x->epoch_seen = 0;
  x->epoch_loss_sum = 0;
  x->epoch_t0 = x->last_draw = nnkit__now();
  x->next_plain = x->n_train / 10 ? x->n_train / 10 : 1;
}

/* ---- fit begin / end ----------------------------------------------------- */

static int is_val_metric(nnkit_metric m)
{
  return m == NNKIT_METRIC_VAL_LOSS || m == NNKIT_METRIC_VAL_ACC;
}

static const char *metric_name(nnkit_metric m)
{
  switch (m) {
  case NNKIT_METRIC_TRAIN_LOSS: return "train loss";
  case NNKIT_METRIC_TRAIN_ACC: return "train accuracy";
  case NNKIT_METRIC_VAL_LOSS: return "val loss";
  case NNKIT_METRIC_VAL_ACC: return "val accuracy";
  case NNKIT_METRIC_LR: return "learning rate";
  case NNKIT_METRIC_SECONDS: return "seconds";
  case NNKIT_METRIC_REG_LOSS: return "regularization loss";
  }
  return "metric";
}

static nnkit_status reserve_doubles(double **buf, size_t *cap, size_t n)
{
  if (n <= *cap)
    return NNKIT_OK;
  nnkit__free(*buf);
  *buf = nnkit__malloc(n * sizeof **buf);
  *cap = *buf ? n : 0;
  return *buf ? NNKIT_OK
              : nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory");
}

nnkit_status nnkit__tx_fit_begin(nnkit__trainer_x *x,
                                 const nnkit_dataset *train, int has_val,
                                 size_t first_epoch, size_t total_epochs,
                                 size_t samples, size_t batches, int verbose,
                                 int sanity)
{
  nnkit_net *net = x->net;
  x->stop = 0;
  x->stop_reason[0] = '\0';
  x->es_best_valid = 0;
  if (x->es_metric && is_val_metric(x->es_metric) && !has_val)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: early stopping watches the %s but no "
                      "validation set was given; pass one, or watch the train loss",
                      metric_name(x->es_metric));
  size_t epochs = total_epochs - first_epoch;
  int ovf = 0;
  size_t nb = nnkit__mul_size(batches, epochs, &ovf);
  if (ovf)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_fit: too many steps to record");
  nnkit_status st = nnkit__net_build(net);
  if (st == NNKIT_OK && x->sanity_mode && sanity && first_epoch == 0) {
    /* Before the first epoch only: the checks are about the start. */
    st = nnkit_trainer_sanity_check((nnkit_trainer *)x->owner, train);
    if (verbose) {
      const char *r = x->sanity_report;
      char line[256];
      while (*r) {
        size_t k = strcspn(r, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 255 ? k : 255), r);
        nnkit__tx_log(x, line);
        r += k + (r[k] == '\n');
      }
    }
    if (st == NNKIT_E_STATE && x->sanity_mode < 2)
      st = NNKIT_OK; /* reported, not fatal */
  }
  int stats = x->layer_stats && net->num_layers > 0;
  if (st == NNKIT_OK)
    st = nnkit__history_reserve(&x->hist, epochs, nb, net, stats);
  if (st == NNKIT_OK && x->keep_good)
    st = nnkit__snapshot_reserve(&x->good, net);
  if (st == NNKIT_OK && x->es_metric)
    st = nnkit__snapshot_reserve(&x->best, net);
  if (st == NNKIT_OK && x->diverge_window)
    st = reserve_doubles(&x->ring, &x->ring_cap, x->diverge_window);
  if (st == NNKIT_OK && stats) {
    st = reserve_doubles(&x->row, &x->row_cap, net->num_layers * NNKIT__NSTATS);
    size_t ns = nnkit__layer_stats_scratch(net);
    if (st == NNKIT_OK && net->num_params > x->pre_cap) {
      nnkit__free(x->pre);
      x->pre = nnkit__malloc(net->num_params * sizeof(float));
      x->pre_cap = x->pre ? net->num_params : 0;
      if (!x->pre)
        st = nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory");
    }
    if (st == NNKIT_OK && ns > x->alive_cap) {
      nnkit__free(x->alive);
      x->alive = nnkit__malloc(ns);
      x->alive_cap = x->alive ? ns : 0;
      if (!x->alive)
        st = nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory");
    }
  }
  if (st != NNKIT_OK)
    return st;
  if (x->keep_good) {
    nnkit__snapshot_save(&x->good, net);
    nnkit__snapshot_save_opt(&x->good, x->opt);
    x->good_epoch = first_epoch;
  }
  x->es_have_best = 0;
  x->es_wait = 0;
  x->ring_n = x->ring_pos = 0;
  x->ema_n = 0;
  x->sample_stats = stats && (x->hist.num_layers == net->num_layers);
  x->row_ready = 0;
  x->hist.num_classes = train->num_classes;
  x->hist.diverged = 0;
  x->first_epoch = first_epoch;
  x->total_epochs = total_epochs;
  x->n_train = samples;
  x->verbose = verbose;
  x->tty = verbose >= 1 && !x->log_fn && isatty(fileno(stdout));
  x->bar_shown = 0;
  x->in_fit = 1;
  start_epoch(x);
  return NNKIT_OK;
}

nnkit_status nnkit__tx_fit_end(nnkit__trainer_x *x, nnkit_status st)
{
  if (!x->in_fit)
    return st;
  nnkit__tx_clear_line(x);
  x->in_fit = 0;
  if (st == NNKIT_OK && x->es_metric && x->es_have_best) {
    nnkit__snapshot_restore(&x->best, x->net);
    x->es_best_valid = 1;
    if (x->verbose) {
      char line[256];
      snprintf(line, sizeof line, "Restored the weights of epoch %zu (%s %f)",
               x->es_best_epoch + 1, metric_name(x->es_metric), x->es_best);
      nnkit__tx_log(x, line);
    }
  }
  if (x->diagnose && x->verbose && x->hist.num_epochs) {
    nnkit_diagnosis *d = NULL;
    if (nnkit_trainer_diagnose(&d, x->owner) == NNKIT_OK) {
      const char *r = nnkit_diagnosis_report(d);
      char line[512];
      while (*r) {
        size_t k = strcspn(r, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 511 ? k : 511), r);
        nnkit__tx_log(x, line);
        r += k + (r[k] == '\n');
      }
    }
    nnkit_diagnosis_free(d);
  }
  return st;
}

/* ---- divergence ---------------------------------------------------------- */

static void record_batch(nnkit__trainer_x *x, size_t epoch, size_t batch,
                         double loss)
{
  nnkit_history *h = &x->hist;
  if (h->num_batches < h->cap_batches) {
    nnkit__hist_batch *b = &h->batches[h->num_batches++];
    b->loss = loss;
    b->lr = x->opt->lr;
    b->epoch = (uint32_t)epoch;
    b->batch = (uint32_t)batch;
  }
}

/* Stops the fit as diverged: restores the last good weights and returns
 * NNKIT_E_DIVERGED with "<what> at epoch E / T, batch B; learning rate ...". */
static nnkit_status diverge(nnkit__trainer_x *x, size_t epoch, size_t batch,
                            double loss, const char *what)
{
  nnkit_history *h = &x->hist;
  double lr = x->opt->lr;
  h->diverged = 1;
  h->div_epoch = epoch;
  h->div_batch = batch;
  h->div_loss = loss;
  h->div_lr = lr;
  nnkit__tx_clear_line(x);
  char restored[160];
  if (x->keep_good && x->good.valid) {
    nnkit__snapshot_restore(&x->good, x->net);
    /* The optimizer's momenta are as broken as the weights. */
    const char *opt = nnkit__snapshot_restore_opt(&x->good, x->opt, x->net)
                          ? " (and the optimizer's state)"
                          : "";
    if (x->good_epoch > x->first_epoch)
      snprintf(restored, sizeof restored,
               "the weights from the end of epoch %zu were restored%s", x->good_epoch,
               opt);
    else
      snprintf(restored, sizeof restored,
               "the weights from the start of this fit were restored%s", opt);
  } else {
    snprintf(restored, sizeof restored, "the parameters hold the last step's values");
  }
  return nnkit__err(NNKIT_E_DIVERGED,
                    "%s at epoch %zu / %zu, batch %zu; learning rate %.0e is likely "
                    "too high, try %.0e; %s",
                    what, epoch + 1, x->total_epochs, batch + 1, lr, lr / 10, restored);
}

nnkit_status nnkit__tx_diverged(nnkit__trainer_x *x, size_t epoch, size_t batch,
                                double loss)
{
  record_batch(x, epoch, batch, loss);
  return diverge(x, epoch, batch, loss,
                 isnan(loss) ? "cost became nan" : "cost became inf");
}

/* ---- per batch ----------------------------------------------------------- */

void nnkit__tx_before_step(nnkit__trainer_x *x, int last)
{
  if (!x->sample_stats || !last)
    return;
  nnkit_net *net = x->net;
  nnkit__layer_stats_row(x->row, net, 1, x->alive);
  if (net->num_params)
    memcpy(x->pre, net->params, net->num_params * sizeof(float));
  x->row_ready = 2; /* 2: waiting for the step */
}

nnkit_status nnkit__tx_after_step(nnkit__trainer_x *x, size_t epoch,
                                  size_t batch, size_t samples, double loss)
{
  if (x->row_ready == 2) {
    nnkit__layer_update_ratios(x->row, x->net, x->pre);
    x->row_ready = 1;
  }
  record_batch(x, epoch, batch, loss);
  if (!x->have_ref) {
    x->ref_loss = loss;
    x->have_ref = 1;
  }
  /* Exploding: far above the first batch's loss ... */
  if (x->diverge_factor > 0 && x->ref_loss > 0 && loss > x->diverge_factor * x->ref_loss) {
    char what[160];
    snprintf(what, sizeof what,
             "cost became %.3g, more than %g times the first batch's %.3g,",
             loss, x->diverge_factor, x->ref_loss);
    return diverge(x, epoch, batch, loss, what);
  }
  /* ... or the smoothed loss grew tenfold over the window, above the start. */
  x->ema = x->ema_n ? EMA_BETA * x->ema + (1 - EMA_BETA) * loss : loss;
  x->ema_n++;
  if (x->diverge_window) {
    size_t K = x->diverge_window;
    if (x->ring_n == K) {
      double old = x->ring[x->ring_pos];
      if (x->ema > GROWTH * old && x->ema > x->ref_loss) {
        char what[160];
        snprintf(what, sizeof what,
                 "cost became %.3g as its running mean grew from %.3g to %.3g over "
                 "%zu batches,",
                 loss, old, x->ema, K);
        return diverge(x, epoch, batch, loss, what);
      }
    } else {
      x->ring_n++;
    }
    x->ring[x->ring_pos] = x->ema;
    x->ring_pos = (x->ring_pos + 1) % K;
  }
  x->epoch_seen += samples;
  x->epoch_loss_sum += loss * (double)samples;
  progress(x, epoch);
  size_t k = 0;
  for (size_t i = 0; i < x->num_cbs; i++) {
    const nnkit__cb *c = &x->cbs[i];
    if (!c->batch_fn)
      continue;
    k++;
    int r = c->batch_fn(x->owner, epoch, batch, loss, c->user);
    if (r > 0) {
      x->stop = 1;
      snprintf(x->stop_reason, sizeof x->stop_reason,
               "batch callback %zu asked to stop at epoch %zu, batch %zu", k,
               epoch + 1, batch + 1);
      break;
    }
    if (r < 0) {
      nnkit__tx_clear_line(x);
      return nnkit__err(NNKIT_E_USER,
                        "batch callback %zu returned %d at epoch %zu, batch %zu; "
                        "training aborted", k, r, epoch + 1, batch + 1);
    }
  }
  return NNKIT_OK;
}

/* ---- per epoch ----------------------------------------------------------- */

static void early_stopping(nnkit__trainer_x *x, size_t epoch,
                           const nnkit__hist_epoch *e)
{
  double v = NAN;
  switch (x->es_metric) {
  case NNKIT_METRIC_TRAIN_LOSS: v = e->train_loss; break;
  case NNKIT_METRIC_TRAIN_ACC: v = e->train_acc; break;
  case NNKIT_METRIC_VAL_LOSS: v = e->val_loss; break;
  case NNKIT_METRIC_VAL_ACC: v = e->val_acc; break;
  default: return;
  }
  int lower = x->es_metric == NNKIT_METRIC_TRAIN_LOSS ||
              x->es_metric == NNKIT_METRIC_VAL_LOSS;
  int better = isfinite(v) && (!x->es_have_best ||
                               (lower ? v < x->es_best - x->es_min_delta
                                      : v > x->es_best + x->es_min_delta));
  if (better) {
    x->es_best = v;
    x->es_best_epoch = epoch;
    x->es_have_best = 1;
    x->es_wait = 0;
    nnkit__snapshot_save(&x->best, x->net);
    return;
  }
  x->es_wait++;
  if (x->es_wait >= x->es_patience && !x->stop) {
    x->stop = 1;
    if (x->es_have_best)
      snprintf(x->stop_reason, sizeof x->stop_reason,
               "early stopping: %s did not improve by more than %g for %zu epoch%s "
               "(best %f at epoch %zu)",
               metric_name(x->es_metric), x->es_min_delta, x->es_wait,
               x->es_wait == 1 ? "" : "s", x->es_best, x->es_best_epoch + 1);
    else
      snprintf(x->stop_reason, sizeof x->stop_reason,
               "early stopping: %s was never finite in %zu epochs",
               metric_name(x->es_metric), x->es_wait);
    if (x->verbose) {
      char line[300];
      snprintf(line, sizeof line, "Stopped after epoch %zu: %s", epoch + 1,
               x->stop_reason);
      nnkit__tx_log(x, line);
    }
  }
}

nnkit_status nnkit__tx_epoch_end(nnkit__trainer_x *x, size_t epoch,
                                 double train_loss, double train_acc,
                                 double val_loss, double val_acc, double lr,
                                 double seconds, double reg_loss)
{
  nnkit_history *h = &x->hist;
  if (h->num_epochs < h->cap_epochs) {
    nnkit__hist_epoch *e = &h->epochs[h->num_epochs];
    e->train_loss = train_loss;
    e->train_acc = train_acc;
    e->val_loss = val_loss;
    e->val_acc = val_acc;
    e->lr = lr;
    e->seconds = seconds;
    e->reg_loss = reg_loss;
    size_t first = 0;
    if (h->num_epochs) {
      const nnkit__hist_epoch *p = &h->epochs[h->num_epochs - 1];
      first = p->first_batch + p->num_batches;
    }
    e->first_batch = first;
    e->num_batches = h->num_batches - first;
    e->has_stats = x->row_ready == 1 && h->num_layers == x->net->num_layers;
    if (e->has_stats)
      memcpy(h->stats + h->num_epochs * h->num_layers * NNKIT__NSTATS, x->row,
             h->num_layers * NNKIT__NSTATS * sizeof(double));
    h->num_epochs++;
    x->row_ready = 0;
    if (x->keep_good) {
      nnkit__snapshot_save(&x->good, x->net);
      nnkit__snapshot_save_opt(&x->good, x->opt);
      x->good_epoch = epoch + 1;
    }
    if (x->es_metric)
      early_stopping(x, epoch, e);
  }
  size_t k = 0;
  for (size_t i = 0; i < x->num_cbs; i++) {
    const nnkit__cb *c = &x->cbs[i];
    if (!c->epoch_fn)
      continue;
    k++;
    int r = c->epoch_fn(x->owner, epoch, c->user);
    if (r > 0) {
      if (!x->stop)
        snprintf(x->stop_reason, sizeof x->stop_reason,
                 "epoch callback %zu asked to stop after epoch %zu", k, epoch + 1);
      x->stop = 1;
      break;
    }
    if (r < 0)
      return nnkit__err(NNKIT_E_USER,
                        "epoch callback %zu returned %d after epoch %zu; training "
                        "aborted", k, r, epoch + 1);
  }
  start_epoch(x);
  return NNKIT_OK;
}

/* ---- public: callbacks, early stopping, getters -------------------------- */

static nnkit_status add_cb(nnkit_trainer *tr, nnkit_batch_fn bf, nnkit_epoch_fn ef,
                           void *user, const char *fn)
{
  if (!tr || (!bf && !ef))
    return nnkit__err(NNKIT_E_INVALID, "%s: the trainer and the function must be "
                      "non-NULL", fn);
  nnkit__trainer_x *x = nnkit__tx(tr);
  if (x->in_fit)
    return nnkit__err(NNKIT_E_STATE, "%s: cannot add a callback during a fit", fn);
  if (x->num_cbs == x->cap_cbs) {
    size_t cap = x->cap_cbs ? 2 * x->cap_cbs : 4;
    nnkit__cb *c = nnkit__realloc(x->cbs, cap * sizeof *c);
    if (!c)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
    x->cbs = c;
    x->cap_cbs = cap;
  }
  nnkit__cb *c = &x->cbs[x->num_cbs++];
  c->batch_fn = bf;
  c->epoch_fn = ef;
  c->user = user;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_add_batch_callback(nnkit_trainer *tr,
                                                        nnkit_batch_fn fn,
                                                        void *user)
{
  return add_cb(tr, fn, NULL, user, "nnkit_trainer_add_batch_callback");
}

NNKIT_API nnkit_status nnkit_trainer_add_epoch_callback(nnkit_trainer *tr,
                                                        nnkit_epoch_fn fn,
                                                        void *user)
{
  return add_cb(tr, NULL, fn, user, "nnkit_trainer_add_epoch_callback");
}

NNKIT_API void nnkit_trainer_clear_callbacks(nnkit_trainer *tr)
{
  if (tr && !nnkit__tx(tr)->in_fit)
    nnkit__tx(tr)->num_cbs = 0;
}

NNKIT_API nnkit_net *nnkit_trainer_net(const nnkit_trainer *tr)
{
  return tr ? nnkit__tx(tr)->net : NULL;
}

NNKIT_API nnkit_optimizer *nnkit_trainer_optimizer(const nnkit_trainer *tr)
{
  return tr ? nnkit__tx(tr)->opt : NULL;
}

NNKIT_API const char *nnkit_trainer_stop_reason(const nnkit_trainer *tr)
{
  return tr ? nnkit__tx(tr)->stop_reason : "";
}

NNKIT_API nnkit_status nnkit_trainer_set_early_stopping(nnkit_trainer *tr,
                                                        nnkit_metric monitor,
                                                        size_t patience,
                                                        double min_delta)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set_early_stopping: tr is NULL");
  nnkit__trainer_x *x = nnkit__tx(tr);
  if (x->in_fit)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_set_early_stopping: cannot change during a fit");
  if ((int)monitor != 0 && monitor != NNKIT_METRIC_VAL_LOSS &&
      monitor != NNKIT_METRIC_VAL_ACC && monitor != NNKIT_METRIC_TRAIN_LOSS &&
      monitor != NNKIT_METRIC_TRAIN_ACC)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_set_early_stopping: metric %d cannot be watched; "
                      "use NNKIT_METRIC_VAL_LOSS, _VAL_ACC, _TRAIN_LOSS or _TRAIN_ACC "
                      "(0 turns early stopping off)", (int)monitor);
  if (monitor && (patience < 1 || patience > 1000000))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_set_early_stopping: patience %zu is outside "
                      "[1, 1e6]", patience);
  if (!isfinite(min_delta) || min_delta < 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_set_early_stopping: min_delta %g must be finite "
                      "and >= 0", min_delta);
  x->es_metric = monitor;
  x->es_patience = patience;
  x->es_min_delta = min_delta;
  x->es_best_valid = 0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_best_epoch(size_t *out,
                                                const nnkit_trainer *tr)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_best_epoch: NULL argument");
  const nnkit__trainer_x *x = nnkit__tx(tr);
  if (!x->es_metric || !x->es_best_valid)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_best_epoch: no best epoch; turn early stopping on "
                      "and fit first");
  *out = x->es_best_epoch;
  return NNKIT_OK;
}
