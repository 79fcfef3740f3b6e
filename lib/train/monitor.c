/* The watcher of the fit loop: the hooks trainer.c calls around each batch
 * and epoch, on the one trainer struct (train_internal.h). Records the
 * history, samples per-layer statistics, detects divergence (NaN/Inf and
 * exploding losses) and restores the last good weights, runs callbacks,
 * early stopping and the progress display. */
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

void nnkit__monitor_free(nnkit_trainer *tr)
{
  nnkit__free(tr->cbs);
  nnkit__snapshot_free(&tr->best);
  nnkit__snapshot_free(&tr->good);
  nnkit__free(tr->ring);
  nnkit__free(tr->row);
  nnkit__free(tr->pre);
  nnkit__free(tr->alive);
  nnkit__history_free(&tr->hist);
}

/* ---- logging and progress ------------------------------------------------ */

void nnkit__trainer_clear_line(nnkit_trainer *tr)
{
  if (tr->bar_shown) {
    fputs("\r\033[K", stdout);
    fflush(stdout);
    tr->bar_shown = 0;
  }
}

void nnkit__trainer_log(nnkit_trainer *tr, const char *line)
{
  if (tr->log_fn) {
    tr->log_fn(line, tr->log_user);
  } else {
    nnkit__trainer_clear_line(tr);
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

static void progress(nnkit_trainer *tr, size_t epoch)
{
  int bar = tr->tty, plain = !tr->tty && tr->verbose >= 2;
  if (!bar && !plain)
    return;
  double now = nnkit__now();
  int done = tr->epoch_seen >= tr->n_train;
  if (bar && !done && now - tr->last_draw < DRAW_EVERY)
    return;
  if (plain && !done && tr->epoch_seen < tr->next_plain)
    return;
  tr->last_draw = now;
  double el = now - tr->epoch_t0;
  double rate = el > 0 ? (double)tr->epoch_seen / el : 0;
  double eta = rate > 0 ? (double)(tr->n_train - tr->epoch_seen) / rate : -1;
  double running = tr->epoch_seen ? tr->epoch_loss_sum / (double)tr->epoch_seen : NAN;
  char eta_s[32], line[256];
  fmt_duration(eta_s, sizeof eta_s, eta);
  if (bar) {
    enum { W = 24 };
    char b[W + 1];
    size_t fill = tr->n_train ? tr->epoch_seen * W / tr->n_train : 0;
    for (size_t i = 0; i < W; i++)
      b[i] = i < fill ? '=' : (i == fill ? '>' : ' ');
    b[W] = '\0';
    snprintf(line, sizeof line,
             "\repoch %zu / %zu [%s] %zu/%zu  %.0f samples/s  ETA %s  loss %.4f",
             epoch + 1, tr->total_epochs, b, tr->epoch_seen, tr->n_train, rate, eta_s,
             running);
    fputs(line, stdout);
    fputs("\033[K", stdout);
    fflush(stdout);
    tr->bar_shown = 1;
  } else {
    snprintf(line, sizeof line,
             "epoch %zu / %zu: %zu / %zu samples, %.0f samples/s, ETA %s, loss %.6f",
             epoch + 1, tr->total_epochs, tr->epoch_seen, tr->n_train, rate, eta_s,
             running);
    nnkit__trainer_log(tr, line);
    tr->next_plain += tr->n_train / 10 ? tr->n_train / 10 : 1;
  }
}

static void start_epoch(nnkit_trainer *tr)
{
  tr->epoch_seen = 0;
  tr->epoch_loss_sum = 0;
  tr->epoch_t0 = tr->last_draw = nnkit__now();
  tr->next_plain = tr->n_train / 10 ? tr->n_train / 10 : 1;
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

nnkit_status nnkit__monitor_fit_begin(nnkit_trainer *tr,
                                      const nnkit_dataset *train, int has_val,
                                      size_t first_epoch, size_t total_epochs,
                                      size_t samples, size_t batches, int sanity)
{
  nnkit_net *net = tr->net;
  tr->stop = 0;
  tr->stop_reason[0] = '\0';
  tr->es_best_valid = 0;
  if (tr->es_metric && is_val_metric(tr->es_metric) && !has_val)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_fit: early stopping watches the %s but no "
                      "validation set was given; pass one, or watch the train loss",
                      metric_name(tr->es_metric));
  size_t epochs = total_epochs - first_epoch;
  int ovf = 0;
  size_t nb = nnkit__mul_size(batches, epochs, &ovf);
  if (ovf)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_fit: too many steps to record");
  /* A resumed fit continues the checkpoint's: its early stopping,
   * divergence watch and kept snapshots go on (no sanity checks). */
  int resuming = tr->resuming;
  int keep_good_restored = resuming && tr->good.valid;
  int best_restored = resuming && tr->best.valid;
  nnkit_status st = nnkit__net_build(net);
  if (st == NNKIT_OK && tr->sanity_mode && sanity && first_epoch == 0 && !resuming) {
    /* Before the first epoch only: the checks are about the start. */
    st = nnkit_trainer_sanity_check(tr, train);
    if (tr->verbose) {
      const char *r = tr->sanity_report;
      char line[256];
      while (*r) {
        size_t k = strcspn(r, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 255 ? k : 255), r);
        nnkit__trainer_log(tr, line);
        r += k + (r[k] == '\n');
      }
    }
    if (st == NNKIT_E_STATE && tr->sanity_mode < 2)
      st = NNKIT_OK; /* reported, not fatal */
  }
  int stats = tr->layer_stats && net->num_layers > 0;
  if (st == NNKIT_OK)
    st = nnkit__history_reserve(&tr->hist, epochs, nb, net, stats);
  if (st == NNKIT_OK && tr->keep_good && !keep_good_restored)
    st = nnkit__snapshot_reserve(&tr->good, net);
  if (st == NNKIT_OK && tr->es_metric && !best_restored)
    st = nnkit__snapshot_reserve(&tr->best, net);
  if (st == NNKIT_OK && tr->diverge_window)
    st = reserve_doubles(&tr->ring, &tr->ring_cap, (size_t)tr->diverge_window);
  if (st == NNKIT_OK && stats) {
    st = reserve_doubles(&tr->row, &tr->row_cap, net->num_layers * NNKIT__NSTATS);
    size_t ns = nnkit__layer_stats_scratch(net);
    if (st == NNKIT_OK && net->num_params > tr->pre_cap) {
      nnkit__free(tr->pre);
      tr->pre = nnkit__malloc(net->num_params * sizeof(float));
      tr->pre_cap = tr->pre ? net->num_params : 0;
      if (!tr->pre)
        st = nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory");
    }
    if (st == NNKIT_OK && ns > tr->alive_cap) {
      nnkit__free(tr->alive);
      tr->alive = nnkit__malloc(ns);
      tr->alive_cap = tr->alive ? ns : 0;
      if (!tr->alive)
        st = nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory");
    }
  }
  if (st != NNKIT_OK)
    return st;
  if (tr->keep_good && !keep_good_restored) {
    nnkit__snapshot_save(&tr->good, net);
    nnkit__snapshot_save_opt(&tr->good, tr->opt);
    tr->good_epoch = first_epoch;
  }
  if (!resuming) {
    tr->es_have_best = 0;
    tr->es_wait = 0;
    tr->ring_n = tr->ring_pos = 0;
    tr->ema_n = 0;
  }
  tr->sample_stats = stats && (tr->hist.num_layers == net->num_layers);
  tr->row_ready = 0;
  tr->hist.num_classes = train->num_classes;
  tr->hist.diverged = 0;
  tr->first_epoch = first_epoch;
  tr->total_epochs = total_epochs;
  tr->n_train = samples;
  tr->tty = tr->verbose >= 1 && !tr->log_fn && isatty(fileno(stdout));
  tr->bar_shown = 0;
  tr->in_fit = 1;
  start_epoch(tr);
  return NNKIT_OK;
}

nnkit_status nnkit__monitor_fit_end(nnkit_trainer *tr, nnkit_status st)
{
  if (!tr->in_fit)
    return st;
  nnkit__trainer_clear_line(tr);
  tr->in_fit = 0;
  if (st == NNKIT_OK && tr->es_metric && tr->es_have_best) {
    nnkit__snapshot_restore(&tr->best, tr->net);
    tr->es_best_valid = 1;
    if (tr->verbose) {
      char line[256];
      snprintf(line, sizeof line, "Restored the weights of epoch %zu (%s %f)",
               tr->es_best_epoch + 1, metric_name(tr->es_metric), tr->es_best);
      nnkit__trainer_log(tr, line);
    }
  }
  if (tr->diagnose && tr->verbose && tr->hist.num_epochs) {
    nnkit_diagnosis *d = NULL;
    if (nnkit_trainer_diagnose(&d, tr) == NNKIT_OK) {
      const char *r = nnkit_diagnosis_report(d);
      char line[512];
      while (*r) {
        size_t k = strcspn(r, "\n");
        snprintf(line, sizeof line, "%.*s", (int)(k < 511 ? k : 511), r);
        nnkit__trainer_log(tr, line);
        r += k + (r[k] == '\n');
      }
    }
    nnkit_diagnosis_free(d);
  }
  return st;
}

/* ---- divergence ---------------------------------------------------------- */

static void record_batch(nnkit_trainer *tr, size_t epoch, size_t batch,
                         double loss)
{
  nnkit_history *h = &tr->hist;
  if (h->num_batches < h->cap_batches) {
    nnkit__hist_batch *b = &h->batches[h->num_batches++];
    b->loss = loss;
    b->lr = tr->opt->lr;
    b->epoch = (uint32_t)epoch;
    b->batch = (uint32_t)batch;
  }
}

/* Stops the fit as diverged: restores the last good weights and returns
 * NNKIT_E_DIVERGED with "<what> at epoch E / T, batch B; learning rate ...". */
static nnkit_status diverge(nnkit_trainer *tr, size_t epoch, size_t batch,
                            double loss, const char *what)
{
  nnkit_history *h = &tr->hist;
  double lr = tr->opt->lr;
  h->diverged = 1;
  h->div_epoch = epoch;
  h->div_batch = batch;
  h->div_loss = loss;
  h->div_lr = lr;
  nnkit__trainer_clear_line(tr);
  char restored[160];
  if (tr->keep_good && tr->good.valid) {
    nnkit__snapshot_restore(&tr->good, tr->net);
    /* The optimizer's momenta are as broken as the weights. */
    const char *opt = nnkit__snapshot_restore_opt(&tr->good, tr->opt, tr->net)
                          ? " (and the optimizer's state)"
                          : "";
    if (tr->good_epoch > tr->first_epoch)
      snprintf(restored, sizeof restored,
               "the weights from the end of epoch %zu were restored%s", tr->good_epoch,
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
                    what, epoch + 1, tr->total_epochs, batch + 1, lr, lr / 10, restored);
}

nnkit_status nnkit__monitor_diverged(nnkit_trainer *tr, size_t epoch, size_t batch,
                                double loss)
{
  record_batch(tr, epoch, batch, loss);
  return diverge(tr, epoch, batch, loss,
                 isnan(loss) ? "cost became nan" : "cost became inf");
}

/* ---- per batch ----------------------------------------------------------- */

void nnkit__monitor_before_step(nnkit_trainer *tr, int last)
{
  if (!tr->sample_stats || !last)
    return;
  nnkit_net *net = tr->net;
  nnkit__layer_stats_row(tr->row, net, 1, tr->alive);
  if (net->num_params)
    memcpy(tr->pre, net->params, net->num_params * sizeof(float));
  tr->row_ready = 2; /* 2: waiting for the step */
}

nnkit_status nnkit__monitor_after_step(nnkit_trainer *tr, size_t epoch,
                                  size_t batch, size_t samples, double loss)
{
  if (tr->row_ready == 2) {
    nnkit__layer_update_ratios(tr->row, tr->net, tr->pre);
    tr->row_ready = 1;
  }
  record_batch(tr, epoch, batch, loss);
  if (!tr->have_ref) {
    tr->ref_loss = loss;
    tr->have_ref = 1;
  }
  /* Exploding: far above the first batch's loss ... */
  if (tr->diverge_factor > 0 && tr->ref_loss > 0 && loss > tr->diverge_factor * tr->ref_loss) {
    char what[160];
    snprintf(what, sizeof what,
             "cost became %.3g, more than %g times the first batch's %.3g,",
             loss, tr->diverge_factor, tr->ref_loss);
    return diverge(tr, epoch, batch, loss, what);
  }
  /* ... or the smoothed loss grew tenfold over the window, above the start. */
  tr->ema = tr->ema_n ? EMA_BETA * tr->ema + (1 - EMA_BETA) * loss : loss;
  tr->ema_n++;
  if (tr->diverge_window) {
    size_t K = (size_t)tr->diverge_window;
    if (tr->ring_n == K) {
      double old = tr->ring[tr->ring_pos];
      if (tr->ema > GROWTH * old && tr->ema > tr->ref_loss) {
        char what[160];
        snprintf(what, sizeof what,
                 "cost became %.3g as its running mean grew from %.3g to %.3g over "
                 "%zu batches,",
                 loss, old, tr->ema, K);
        return diverge(tr, epoch, batch, loss, what);
      }
    } else {
      tr->ring_n++;
    }
    tr->ring[tr->ring_pos] = tr->ema;
    tr->ring_pos = (tr->ring_pos + 1) % K;
  }
  tr->epoch_seen += samples;
  tr->epoch_loss_sum += loss * (double)samples;
  progress(tr, epoch);
  size_t k = 0;
  for (size_t i = 0; i < tr->num_cbs; i++) {
    const nnkit__cb *c = &tr->cbs[i];
    if (!c->batch_fn)
      continue;
    k++;
    int r = c->batch_fn(tr, epoch, batch, loss, c->user);
    if (r > 0) {
      tr->stop = 1;
      snprintf(tr->stop_reason, sizeof tr->stop_reason,
               "batch callback %zu asked to stop at epoch %zu, batch %zu", k,
               epoch + 1, batch + 1);
      break;
    }
    if (r < 0) {
      nnkit__trainer_clear_line(tr);
      return nnkit__err(NNKIT_E_USER,
                        "batch callback %zu returned %d at epoch %zu, batch %zu; "
                        "training aborted", k, r, epoch + 1, batch + 1);
    }
  }
  return NNKIT_OK;
}

/* ---- per epoch ----------------------------------------------------------- */

static void early_stopping(nnkit_trainer *tr, size_t epoch,
                           const nnkit__hist_epoch *e)
{
  double v = NAN;
  switch (tr->es_metric) {
  case NNKIT_METRIC_TRAIN_LOSS: v = e->train_loss; break;
  case NNKIT_METRIC_TRAIN_ACC: v = e->train_acc; break;
  case NNKIT_METRIC_VAL_LOSS: v = e->val_loss; break;
  case NNKIT_METRIC_VAL_ACC: v = e->val_acc; break;
  default: return;
  }
  int lower = tr->es_metric == NNKIT_METRIC_TRAIN_LOSS ||
              tr->es_metric == NNKIT_METRIC_VAL_LOSS;
  int better = isfinite(v) && (!tr->es_have_best ||
                               (lower ? v < tr->es_best - tr->es_min_delta
                                      : v > tr->es_best + tr->es_min_delta));
  if (better) {
    tr->es_best = v;
    tr->es_best_epoch = epoch;
    tr->es_have_best = 1;
    tr->es_wait = 0;
    nnkit__snapshot_save(&tr->best, tr->net);
    return;
  }
  tr->es_wait++;
  if (tr->es_wait >= tr->es_patience && !tr->stop) {
    tr->stop = 1;
    if (tr->es_have_best)
      snprintf(tr->stop_reason, sizeof tr->stop_reason,
               "early stopping: %s did not improve by more than %g for %zu epoch%s "
               "(best %f at epoch %zu)",
               metric_name(tr->es_metric), tr->es_min_delta, tr->es_wait,
               tr->es_wait == 1 ? "" : "s", tr->es_best, tr->es_best_epoch + 1);
    else
      snprintf(tr->stop_reason, sizeof tr->stop_reason,
               "early stopping: %s was never finite in %zu epochs",
               metric_name(tr->es_metric), tr->es_wait);
    if (tr->verbose) {
      char line[300];
      snprintf(line, sizeof line, "Stopped after epoch %zu: %s", epoch + 1,
               tr->stop_reason);
      nnkit__trainer_log(tr, line);
    }
  }
}

nnkit_status nnkit__monitor_record_epoch(nnkit_trainer *tr,
                                         const nnkit__hist_epoch *rec)
{
  nnkit_history *h = &tr->hist;
  if (h->num_epochs >= h->cap_epochs) /* fit_begin made room: cannot happen */
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_fit: no room for the epoch's record");
  nnkit__hist_epoch *e = &h->epochs[h->num_epochs];
  *e = *rec;
  size_t first = 0;
  if (h->num_epochs) {
    const nnkit__hist_epoch *p = &h->epochs[h->num_epochs - 1];
    first = p->first_batch + p->num_batches;
  }
  e->first_batch = first;
  e->num_batches = h->num_batches - first;
  e->has_stats = tr->row_ready == 1 && h->num_layers == tr->net->num_layers;
  if (e->has_stats)
    memcpy(h->stats + h->num_epochs * h->num_layers * NNKIT__NSTATS, tr->row,
           h->num_layers * NNKIT__NSTATS * sizeof(double));
  h->num_epochs++;
  tr->row_ready = 0;
  return NNKIT_OK;
}

nnkit_status nnkit__monitor_epoch_end(nnkit_trainer *tr, size_t epoch)
{
  if (tr->keep_good) {
    nnkit__snapshot_save(&tr->good, tr->net);
    nnkit__snapshot_save_opt(&tr->good, tr->opt);
    tr->good_epoch = epoch + 1;
  }
  if (tr->es_metric)
    early_stopping(tr, epoch, &tr->hist.epochs[tr->hist.num_epochs - 1]);
  size_t k = 0;
  for (size_t i = 0; i < tr->num_cbs; i++) {
    const nnkit__cb *c = &tr->cbs[i];
    if (!c->epoch_fn)
      continue;
    k++;
    int r = c->epoch_fn(tr, epoch, c->user);
    if (r > 0) {
      if (!tr->stop)
        snprintf(tr->stop_reason, sizeof tr->stop_reason,
                 "epoch callback %zu asked to stop after epoch %zu", k, epoch + 1);
      tr->stop = 1;
      break;
    }
    if (r < 0)
      return nnkit__err(NNKIT_E_USER,
                        "epoch callback %zu returned %d after epoch %zu; training "
                        "aborted", k, r, epoch + 1);
  }
  start_epoch(tr);
  return NNKIT_OK;
}

/* ---- public: callbacks, early stopping, getters -------------------------- */

static nnkit_status add_cb(nnkit_trainer *tr, nnkit_batch_fn bf, nnkit_epoch_fn ef,
                           void *user, const char *fn)
{
  if (!tr || (!bf && !ef))
    return nnkit__err(NNKIT_E_INVALID, "%s: the trainer and the function must be "
                      "non-NULL", fn);
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "%s: cannot add a callback during a fit", fn);
  if (tr->num_cbs == tr->cap_cbs) {
    size_t cap = tr->cap_cbs ? 2 * tr->cap_cbs : 4;
    nnkit__cb *c = nnkit__realloc(tr->cbs, cap * sizeof *c);
    if (!c)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
    tr->cbs = c;
    tr->cap_cbs = cap;
  }
  nnkit__cb *c = &tr->cbs[tr->num_cbs++];
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
  if (tr && !tr->in_fit)
    tr->num_cbs = 0;
}

NNKIT_API nnkit_net *nnkit_trainer_net(const nnkit_trainer *tr)
{
  return tr ? tr->net : NULL;
}

NNKIT_API nnkit_optimizer *nnkit_trainer_optimizer(const nnkit_trainer *tr)
{
  return tr ? tr->opt : NULL;
}

NNKIT_API const char *nnkit_trainer_stop_reason(const nnkit_trainer *tr)
{
  return tr ? tr->stop_reason : NULL;
}

NNKIT_API nnkit_status nnkit_trainer_set_early_stopping(nnkit_trainer *tr,
                                                        nnkit_metric monitor,
                                                        size_t patience,
                                                        double min_delta)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set_early_stopping: tr is NULL");
  if (tr->in_fit)
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
  tr->es_metric = monitor;
  tr->es_patience = patience;
  tr->es_min_delta = min_delta;
  tr->es_best_valid = 0;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_best_epoch(size_t *out,
                                                const nnkit_trainer *tr)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_best_epoch: NULL argument");
  if (!tr->es_metric || !tr->es_best_valid)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_best_epoch: no best epoch; turn early stopping on "
                      "and fit first");
  *out = tr->es_best_epoch + 1; /* an epoch number, as printed */
  return NNKIT_OK;
}
