/* Diagnosis of training curves: names what the curves show -- learning
 * rate too high (exploding or oscillating) or too low, overfitting,
 * underfitting, vanishing or saturating activations, dead ReLUs, noisy
 * batches -- with the numbers behind each verdict and a next step.
 *
 * The rules, in the order they are tried (S = the initial loss: the median
 * of the first three batch losses, or the first epoch's loss without
 * batch records; E = epochs):
 *  - LR_TOO_HIGH: a NaN/Inf or exploded loss; or a batch loss above 3 S; or
 *    the last epoch's loss above both its start and 1.2 x its minimum.
 *  - OSCILLATING: with >= 4 epochs, the epoch loss rises (by more than 2%
 *    of S) in at least 2 and at least a third of the epoch transitions.
 *  - LR_TOO_LOW: with >= 2 epochs or >= 10 batches, the loss fell less
 *    than 2% from S, or less than 5% per epoch on average while staying
 *    above S / 2 and without slowing down (the last third of the epochs
 *    falls at least half the average rate: slow and steady, unlike a
 *    plateau); for a classifier it also stays above 0.3 ln C.
 *  - OVERFITTING: the validation loss ends more than 5% above its minimum
 *    reached at least 2 epochs before (or more than 20% above it) while
 *    the training loss kept falling; or the train-validation accuracy gap
 *    exceeds 0.1 and has grown.
 *  - UNDERFITTING: with >= 3 epochs, the loss improved less than 1% per
 *    epoch over the last third and stays high (train accuracy below 0.9,
 *    or above 0.25 S without accuracies), with validation no worse than
 *    training by more than 10%.
 *  - SATURATING / VANISHING / DEAD_RELUS from the last per-layer
 *    statistics: a tanh/sigmoid layer with more than half its outputs
 *    saturated; activation spread falling by more than 100x from the first
 *    to the last hidden activation layer, or the first layer's gradient
 *    norm below 1e-3 of the last one's; a ReLU layer with more than half
 *    its units dead.
 *  - NOISY_BATCHES: the last epoch's batch losses scatter by more than
 *    half their mean (batch-to-batch, so a trend does not count) while the
 *    epoch loss improved less than 5% and is still above S / 10.
 *  - TOO_SHORT (fewer than 2 epochs) or HEALTHY when nothing else holds.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "train_internal.h"

#define MAXV 12
#define EVIDENCE_LEN 480
#define ADVICE_LEN 320

struct nnkit_diagnosis {
  size_t n;
  nnkit_verdict v[MAXV];
  char evidence[MAXV][EVIDENCE_LEN];
  char advice[MAXV][ADVICE_LEN];
  char report[MAXV * (EVIDENCE_LEN + ADVICE_LEN + 80)];
};

typedef struct curves {
  const double *tl, *vl, *ta, *va;
  size_t E;
  const double *bl;
  size_t B;
  size_t last_first, last_n; /* batches of the last epoch */
  const size_t *batch_epoch; /* epoch of each batch, or NULL */
  double lr;
  uint32_t C;
  size_t kept; /* 1-based epoch whose weights early stopping kept, or 0 */
  /* from a trainer */
  int diverged;
  size_t div_epoch, div_batch;
  double div_loss;
  const double *stats; /* last epoch's layer statistics, or NULL */
  size_t L, stats_epoch;
  const char (*kinds)[16];
} curves;

static void add(nnkit_diagnosis *d, nnkit_verdict v, const char *advice,
                const char *fmt, ...) NNKIT__PRINTF(4, 5);
static void add(nnkit_diagnosis *d, nnkit_verdict v, const char *advice,
                const char *fmt, ...)
{
  if (d->n == MAXV)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->evidence[d->n], EVIDENCE_LEN, fmt, ap);
  va_end(ap);
  snprintf(d->advice[d->n], ADVICE_LEN, "%s", advice);
  d->v[d->n++] = v;
}

static int has(const nnkit_diagnosis *d, nnkit_verdict v)
{
  for (size_t i = 0; i < d->n; i++)
    if (d->v[i] == v)
      return 1;
  return 0;
}

static int fin(const double *a, size_t i)
{
  return a && isfinite(a[i]);
}

/* Appends "; ..." to the evidence of the last verdict. */
static void more(nnkit_diagnosis *d, const char *fmt, ...) NNKIT__PRINTF(2, 3);
static void more(nnkit_diagnosis *d, const char *fmt, ...)
{
  if (!d->n)
    return;
  char *e = d->evidence[d->n - 1];
  size_t used = strlen(e);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e + used, EVIDENCE_LEN - used, fmt, ap);
  va_end(ap);
}

static void lr_advice(char *buf, size_t len, double lr, double factor,
                      const char *what, const char *tail)
{
  if (lr > 0)
    snprintf(buf, len, "%s the learning rate about %gx (try %.0e instead of %.0e)%s",
             what, factor, !strcmp(what, "raise") ? lr * factor : lr / factor, lr, tail);
  else
    snprintf(buf, len, "%s the learning rate about %gx%s", what, factor, tail);
}

static void diagnose(nnkit_diagnosis *d, const curves *c)
{
  size_t E = c->E, B = c->B;
  /* Initial loss S: the median of the first three batch losses (before
   * the steps have taught the net much), else epoch 1's loss. */
  double S = NAN;
  if (B && isfinite(c->bl[0])) {
    S = c->bl[0];
    if (B >= 3 && isfinite(c->bl[1]) && isfinite(c->bl[2])) {
      double a = c->bl[0], b = c->bl[1], e = c->bl[2];
      S = a > b ? (b > e ? b : (a > e ? e : a)) : (a > e ? a : (b > e ? e : b));
    }
  }
  if (!isfinite(S))
    S = c->tl[0];
  /* The last finite epoch loss and the minimum. */
  size_t last = E;
  for (size_t e = E; e-- > 0;)
    if (fin(c->tl, e)) {
      last = e;
      break;
    }
  double Lend = last < E ? c->tl[last] : NAN;
  double lnC = c->C >= 2 ? log((double)c->C) : NAN;
  char adv[ADVICE_LEN];

  /* ---- learning rate too high: exploded ---- */
  size_t bad_e = E, bad_b = B;
  for (size_t e = 0; e < E; e++)
    if (!isfinite(c->tl[e])) {
      bad_e = e;
      break;
    }
  for (size_t i = 0; i < B; i++)
    if (!isfinite(c->bl[i])) {
      bad_b = i;
      break;
    }
  lr_advice(adv, sizeof adv, c->lr, 10, "lower",
            ", or run the learning-rate finder; if it still explodes, check that "
            "the inputs are normalized and the initialization (Xavier/He)");
  if (c->diverged) {
    /* Against the very first batch: the next ones may have exploded. */
    double first = B && isfinite(c->bl[0]) ? c->bl[0] : S;
    if (isfinite(c->div_loss))
      add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv,
          "the cost exploded to %.3g at epoch %zu, batch %zu (%.3g times the first "
          "batch's %.4g) with learning rate %.0e",
          c->div_loss, c->div_epoch + 1, c->div_batch + 1, c->div_loss / first, first,
          c->lr);
    else
      add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv,
          "the cost became %s at epoch %zu, batch %zu with learning rate %.0e",
          isnan(c->div_loss) ? "nan" : "inf", c->div_epoch + 1, c->div_batch + 1,
          c->lr);
  } else if (bad_b < B) {
    add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv, "the batch loss became %s at step %zu%s",
        isnan(c->bl[bad_b]) ? "nan" : "inf", bad_b + 1,
        c->batch_epoch ? "" : " of the run");
    if (c->batch_epoch)
      more(d, " (epoch %zu)", c->batch_epoch[bad_b] + 1);
  } else if (bad_e < E) {
    add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv, "the train loss became %s at epoch %zu",
        isnan(c->tl[bad_e]) ? "nan" : "inf", bad_e + 1);
  } else {
    /* Finite, but spiking far above the start, or ending above it. */
    size_t peak = 0;
    for (size_t i = 1; i < B; i++)
      if (c->bl[i] > c->bl[peak])
        peak = i;
    size_t emin = 0;
    for (size_t e = 1; e < E; e++)
      if (c->tl[e] < c->tl[emin])
        emin = e;
    if (B && S > 0 && c->bl[peak] > 3 * S) {
      add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv,
          "batch losses spiked to %.4g at step %zu, %.1f times the initial %.4g",
          c->bl[peak], peak + 1, c->bl[peak] / S, S);
      if (c->batch_epoch)
        more(d, " (epoch %zu)", c->batch_epoch[peak] + 1);
    } else if (E >= 2 && Lend > c->tl[0] && Lend > 1.2 * c->tl[emin]) {
      add(d, NNKIT_VERDICT_LR_TOO_HIGH, adv,
          "the train loss rose from %.4g at epoch %zu to %.4g at epoch %zu, above its "
          "start %.4g", c->tl[emin], emin + 1, Lend, last + 1, c->tl[0]);
    }
    if (has(d, NNKIT_VERDICT_LR_TOO_HIGH) && isfinite(lnC) &&
        fabs(Lend - lnC) < 0.05 * lnC)
      more(d, "; the loss is stuck at %.4f, about ln(%u) = %.4f, the chance level%s",
           Lend, c->C, lnC, fin(c->ta, last) ? "" : "");
    if (has(d, NNKIT_VERDICT_LR_TOO_HIGH) && fin(c->ta, last))
      more(d, " (train accuracy %.3f)", c->ta[last]);
  }
  int too_high = has(d, NNKIT_VERDICT_LR_TOO_HIGH);

  /* ---- oscillating ---- */
  if (!too_high && E >= 4) {
    size_t ups = 0, worst = 0;
    double worst_rel = 0;
    for (size_t e = 1; e < E; e++) {
      double rise = c->tl[e] - c->tl[e - 1];
      if (rise > 0.02 * S) {
        ups++;
        double rel = rise / c->tl[e - 1];
        if (rel > worst_rel) {
          worst_rel = rel;
          worst = e;
        }
      }
    }
    if (ups >= 2 && 3 * ups >= E - 1) {
      lr_advice(adv, sizeof adv, c->lr, 3, "lower",
                ", or decay it with a schedule");
      add(d, NNKIT_VERDICT_OSCILLATING, adv,
          "the train loss went up in %zu of %zu epochs, by up to %.0f%% (epoch %zu: "
          "%.4g -> %.4g); overall %.4g -> %.4g",
          ups, E - 1, 100 * worst_rel, worst + 1, c->tl[worst - 1], c->tl[worst], S,
          Lend);
    }
  }
  int lr_issue = too_high || has(d, NNKIT_VERDICT_OSCILLATING);

  /* ---- learning rate too low ---- */
  /* Average relative fall per epoch, and over the last third of the run. */
  double drop = S > 0 ? (S - Lend) / S : NAN;
  double r_avg = S > 0 && Lend > 0 ? 1 - pow(Lend / S, 1.0 / (double)E) : NAN;
  size_t k3 = E / 3 ? E / 3 : 1;
  double r_last = NAN;
  if (E >= 2 && last == E - 1 && c->tl[E - 1 - k3] > 0 && Lend > 0)
    r_last = 1 - pow(Lend / c->tl[E - 1 - k3], 1.0 / (double)k3);
  int slow = isfinite(drop) && drop < 0.02;
  int steady = isfinite(r_avg) && r_avg < 0.05 && Lend > 0.5 * S &&
               (!isfinite(r_last) || r_last >= 0.5 * r_avg);
  if (!lr_issue && (slow || steady) && (E >= 2 || B >= 10) &&
      (!isfinite(lnC) || Lend > 0.3 * lnC)) {
    lr_advice(adv, sizeof adv, c->lr, 10, "raise", ", or run the learning-rate finder");
    add(d, NNKIT_VERDICT_LR_TOO_LOW, adv,
        "the train loss barely moved: it fell %.1f%% in %zu epoch%s (%.4g -> %.4g), "
        "%.1f%% per epoch",
        100 * drop, E, E == 1 ? "" : "s", S, Lend, 100 * (isfinite(r_avg) ? r_avg : 0));
    if (isfinite(lnC))
      more(d, "; chance level ln(%u) = %.4f", c->C, lnC);
    if (fin(c->ta, last))
      more(d, "; train accuracy %.3f", c->ta[last]);
  }

  /* ---- overfitting ---- */
  size_t vbest = E, nv = 0;
  for (size_t e = 0; e < E; e++)
    if (fin(c->vl, e)) {
      nv++;
      if (vbest == E || c->vl[e] < c->vl[vbest])
        vbest = e;
    }
  size_t vlast = E;
  for (size_t e = E; e-- > 0;)
    if (fin(c->vl, e)) {
      vlast = e;
      break;
    }
  int overfit = 0;
  if (!lr_issue && nv >= 3 && vbest < vlast && fin(c->tl, vbest) &&
      ((vlast >= vbest + 2 && c->vl[vlast] > 1.05 * c->vl[vbest]) ||
       c->vl[vlast] > 1.2 * c->vl[vbest]) &&
      c->tl[vlast] < c->tl[vbest]) {
    char a[ADVICE_LEN];
    if (c->kept)
      snprintf(a, sizeof a,
               "early stopping kept the weights of epoch %zu; to do better, add weight "
               "decay (L2) or dropout, or get more data (augmentation)", c->kept);
    else
      snprintf(a, sizeof a,
               "stop near epoch %zu (early stopping on the val loss), add weight "
               "decay (L2) or dropout, or get more data (augmentation)", vbest + 1);
    add(d, NNKIT_VERDICT_OVERFITTING, a,
        "the val loss rose %.0f%% from its minimum %.4g at epoch %zu to %.4g at epoch "
        "%zu while the train loss fell from %.4g to %.4g",
        100 * (c->vl[vlast] / c->vl[vbest] - 1), c->vl[vbest], vbest + 1,
        c->vl[vlast], vlast + 1, c->tl[vbest], c->tl[vlast]);
    overfit = 1;
  }
  if (!lr_issue && fin(c->ta, last) && fin(c->va, last) && fin(c->ta, 0) &&
      fin(c->va, 0)) {
    double g0 = c->ta[0] - c->va[0], g1 = c->ta[last] - c->va[last];
    if (overfit)
      more(d, "; the train-val accuracy gap went from %.1f%% to %.1f%%", 100 * g0,
           100 * g1);
    else if (g1 > 0.1 && g1 > g0 + 0.02) {
      add(d, NNKIT_VERDICT_OVERFITTING,
          "add weight decay (L2) or dropout, get more data (augmentation), or use a "
          "smaller model",
          "train accuracy %.3f but val accuracy %.3f: the gap grew from %.1f%% to "
          "%.1f%%", c->ta[last], c->va[last], 100 * g0, 100 * g1);
      overfit = 1;
    }
  }

  /* ---- underfitting ---- */
  if (!lr_issue && !has(d, NNKIT_VERDICT_LR_TOO_LOW) && !overfit && E >= 3 &&
      last == E - 1) {
    size_t k = E / 3 ? E / 3 : 1;
    double from = c->tl[E - 1 - k];
    double per = from > 0 ? (from - Lend) / from / (double)k : 0;
    int high = fin(c->ta, last) ? c->ta[last] < 0.9 : Lend > 0.25 * S;
    int close = !fin(c->vl, last) || c->vl[last] < 1.1 * Lend + 1e-12;
    if (per < 0.01 && high && close) {
      add(d, NNKIT_VERDICT_UNDERFITTING,
          "give the model more capacity (wider or more layers), regularize less, "
          "or train longer with a higher learning rate",
          "the train loss levelled off at %.4g (%.1f%% better per epoch over the last "
          "%zu epochs)", Lend, 100 * per, k);
      if (fin(c->ta, last))
        more(d, " with train accuracy %.3f", c->ta[last]);
      if (fin(c->va, last))
        more(d, " and val accuracy %.3f", c->va[last]);
    }
  }

  /* ---- per-layer statistics ---- */
  if (c->stats && c->L) {
    const double *st = c->stats;
#define STAT(l, s) st[(l) * NNKIT__NSTATS + (s) - 1]
    char ev[EVIDENCE_LEN] = "";
    size_t used = 0, nsat = 0;
    for (size_t l = 0; l < c->L; l++) {
      double sat = STAT(l, NNKIT_LSTAT_SATURATED);
      if (isfinite(sat) && sat > 0.5 && used < sizeof ev - 80) {
        used += (size_t)snprintf(ev + used, sizeof ev - used,
                                 "%slayer %zu (%s): %.0f%% of outputs saturated",
                                 nsat ? "; " : "", l + 1, c->kinds[l], 100 * sat);
        nsat++;
      }
    }
    if (nsat)
      add(d, NNKIT_VERDICT_SATURATING,
          "use smaller initial weights (Xavier for tanh/sigmoid), normalize the "
          "inputs, or add batch normalization before the activation",
          "%s (epoch %zu)", ev, c->stats_epoch + 1);
    /* Vanishing: activation spread through hidden activation layers. */
    size_t first = c->L, lastact = c->L;
    for (size_t l = 0; l + 1 < c->L; l++) {
      const char *k = c->kinds[l];
      if (!strcmp(k, "tanh") || !strcmp(k, "sigmoid") || !strcmp(k, "relu") ||
          !strcmp(k, "leaky_relu")) {
        if (first == c->L)
          first = l;
        lastact = l;
      }
    }
    double s1 = first < c->L ? STAT(first, NNKIT_LSTAT_ACT_STD) : NAN;
    double s2 = lastact < c->L ? STAT(lastact, NNKIT_LSTAT_ACT_STD) : NAN;
    size_t gp1 = c->L, gp2 = c->L;
    for (size_t l = 0; l < c->L; l++)
      if (isfinite(STAT(l, NNKIT_LSTAT_GRAD_NORM))) {
        if (gp1 == c->L)
          gp1 = l;
        gp2 = l;
      }
    double g1 = gp1 < c->L ? STAT(gp1, NNKIT_LSTAT_GRAD_NORM) : NAN;
    double g2 = gp2 < c->L ? STAT(gp2, NNKIT_LSTAT_GRAD_NORM) : NAN;
    int van_act = lastact > first && isfinite(s1) && isfinite(s2) && s1 > 0 &&
                  s2 < 0.01 * s1;
    int van_grad = gp2 > gp1 && isfinite(g1) && isfinite(g2) && g2 > 0 &&
                   g1 < 1e-3 * g2;
    if (van_act || van_grad) {
      add(d, NNKIT_VERDICT_VANISHING,
          "initialize with Xavier (tanh/sigmoid) or He (ReLU) instead of small "
          "weights, or add batch normalization",
          "%s", "");
      if (van_act)
        more(d, "the activation spread falls from std %.3g at layer %zu (%s) to %.3g "
             "at layer %zu (%s)", s1, first + 1, c->kinds[first], s2, lastact + 1,
             c->kinds[lastact]);
      if (van_grad)
        more(d, "%sthe gradient norm of layer %zu is %.3g, %.1e times that of layer "
             "%zu", van_act ? "; " : "", gp1 + 1, g1, g1 / g2, gp2 + 1);
      more(d, " (epoch %zu)", c->stats_epoch + 1);
    }
    ev[0] = '\0';
    used = 0;
    size_t ndead = 0;
    for (size_t l = 0; l < c->L; l++) {
      double dead = STAT(l, NNKIT_LSTAT_DEAD);
      if (isfinite(dead) && dead > 0.5 && used < sizeof ev - 80) {
        used += (size_t)snprintf(ev + used, sizeof ev - used,
                                 "%slayer %zu (relu): %.0f%% of units never fired",
                                 ndead ? "; " : "", l + 1, 100 * dead);
        ndead++;
      }
    }
    if (ndead)
      add(d, NNKIT_VERDICT_DEAD_RELUS,
          "lower the learning rate, use He initialization, or switch to leaky ReLU",
          "%s on the last batch of epoch %zu", ev, c->stats_epoch + 1);
#undef STAT
  }

  /* ---- noisy batches ---- */
  if (!lr_issue && c->last_n >= 10 && E >= 2 && last == E - 1) {
    const double *b = c->bl + c->last_first;
    size_t n = c->last_n;
    double mean = 0, sq = 0;
    for (size_t i = 0; i < n; i++)
      mean += b[i];
    mean /= (double)n;
    for (size_t i = 1; i < n; i++)
      sq += (b[i] - b[i - 1]) * (b[i] - b[i - 1]);
    double scatter = sqrt(sq / (double)(n - 1) / 2);
    double prev = c->tl[E - 2], gain = prev > 0 ? (prev - Lend) / prev : 0;
    /* A converged run's tiny batch losses scatter too: not a problem. */
    if (mean > 0.1 * S && scatter > 0.5 * mean && gain < 0.05 && isfinite(gain))
      add(d, NNKIT_VERDICT_NOISY_BATCHES,
          "use bigger batches (e.g. 4x) or a lower learning rate, and judge progress "
          "by the epoch means",
          "the batch losses of the last epoch scatter by %.0f%% of their mean %.4g "
          "while the epoch loss improved %.1f%%", 100 * scatter / mean, mean,
          100 * gain);
  }

  /* ---- nothing wrong ---- */
  if (d->n == 0) {
    if (E < 2) {
      add(d, NNKIT_VERDICT_TOO_SHORT, "train for at least 3 epochs before judging",
          "only %zu epoch recorded; the train loss went %.4g -> %.4g", E, S, Lend);
    } else {
      double gain = c->tl[E - 2] > 0 ? (c->tl[E - 2] - Lend) / c->tl[E - 2] : 0;
      add(d, NNKIT_VERDICT_HEALTHY,
          gain > 0.05 ? "keep training while the val loss falls (with early "
                        "stopping; a higher learning rate gets there sooner if the "
                        "loss falls slowly), then tune the learning rate and "
                        "regularization with a search"
                      : "the loss has levelled off: lower the learning rate (a "
                        "schedule) to refine, or tune the model with a search",
          "the train loss fell from %.4g to %.4g (%.0f%%) in %zu epochs and improved "
          "%.1f%% in the last one",
          S, Lend, 100 * drop, E, 100 * gain);
      if (vbest < E && vlast < E)
        more(d, "; val loss %.4g%s", c->vl[vlast],
             vbest == vlast ? " is at its minimum" : "");
      if (fin(c->ta, last) && fin(c->va, last))
        more(d, "; train-val accuracy gap %.1f%%", 100 * (c->ta[last] - c->va[last]));
    }
  }
}

static void make_report(nnkit_diagnosis *d)
{
  size_t used = 0, cap = sizeof d->report;
  d->report[0] = '\0';
  for (size_t i = 0; i < d->n && used < cap; i++) {
    int k = snprintf(d->report + used, cap - used, "%s: %s.\n  next step: %s.\n",
                     nnkit_verdict_name(d->v[i]), d->evidence[i], d->advice[i]);
    if (k < 0)
      break;
    used += (size_t)k;
  }
}

NNKIT_API nnkit_status nnkit_diagnose_curves(nnkit_diagnosis **out,
                                             const double *train_loss,
                                             const double *val_loss,
                                             const double *train_acc,
                                             const double *val_acc,
                                             size_t epochs,
                                             const double *batch_loss,
                                             size_t batches, double lr,
                                             uint32_t num_classes)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_diagnose_curves: out is NULL");
  *out = NULL;
  if (!train_loss || epochs == 0 || (batches && !batch_loss))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_diagnose_curves: need train_loss with epochs > 0 (and "
                      "batch_loss when batches > 0)");
  if (!(lr >= 0) || !isfinite(lr))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_diagnose_curves: lr %g must be finite and >= 0", lr);
  nnkit_diagnosis *d = nnkit__calloc(1, sizeof *d);
  if (!d)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_diagnose_curves: out of memory");
  curves c = {0};
  c.tl = train_loss;
  c.vl = val_loss;
  c.ta = train_acc;
  c.va = val_acc;
  c.E = epochs;
  c.bl = batch_loss;
  c.B = batches;
  if (batches >= epochs) {
    c.last_n = batches / epochs;
    c.last_first = batches - c.last_n;
  }
  c.lr = lr;
  c.C = num_classes;
  diagnose(d, &c);
  make_report(d);
  *out = d;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_trainer_diagnose(nnkit_diagnosis **out,
                                              const nnkit_trainer *tr)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_diagnose: out is NULL");
  *out = NULL;
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_diagnose: tr is NULL");
  const nnkit_history *h = &tr->hist;
  size_t E = h->num_epochs, B = h->num_batches;
  /* A fit that diverged in its first epoch recorded batches but no epoch:
   * the batches alone are still worth a diagnosis. */
  if (E == 0 && !(h->diverged && B))
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_diagnose: nothing recorded yet; fit first");
  size_t En = E ? E : 1;
  double *buf = nnkit__malloc((4 * En + B) * sizeof *buf);
  size_t *be = nnkit__malloc((B ? B : 1) * sizeof *be);
  nnkit_diagnosis *d = nnkit__calloc(1, sizeof *d);
  if (!buf || !be || !d) {
    nnkit__free(buf);
    nnkit__free(be);
    nnkit__free(d);
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_diagnose: out of memory");
  }
  double *tl = buf, *vl = buf + En, *ta = buf + 2 * En, *va = buf + 3 * En;
  double *bl = buf + 4 * En;
  for (size_t e = 0; e < E; e++) {
    tl[e] = h->epochs[e].train_loss;
    vl[e] = h->epochs[e].val_loss;
    ta[e] = h->epochs[e].train_acc;
    va[e] = h->epochs[e].val_acc;
  }
  for (size_t i = 0; i < B; i++) {
    bl[i] = h->batches[i].loss;
    be[i] = h->batches[i].epoch;
  }
  curves c = {0};
  c.tl = tl;
  c.E = E;
  if (E == 0) { /* diverged in the first epoch: the mean of its batches */
    double s = 0;
    size_t m = 0;
    for (size_t i = 0; i < B; i++)
      if (isfinite(bl[i])) {
        s += bl[i];
        m++;
      }
    tl[0] = m ? s / (double)m : NAN;
    c.E = 1;
  }
  int labelled = h->num_classes > 0;
  c.vl = vl;
  c.ta = labelled ? ta : NULL;
  c.va = labelled ? va : NULL;
  c.bl = bl;
  c.B = B;
  c.batch_epoch = be;
  if (E) {
    c.last_first = h->epochs[E - 1].first_batch;
    c.last_n = h->epochs[E - 1].num_batches;
  }
  c.lr = h->diverged ? h->div_lr : (E ? h->epochs[E - 1].lr : tr->opt->lr);
  c.C = tr->net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY ? h->num_classes : 0;
  c.kept = tr->es_metric && tr->es_best_valid ? tr->es_best_epoch + 1 : 0;
  c.diverged = h->diverged;
  c.div_epoch = h->div_epoch;
  c.div_batch = h->div_batch;
  c.div_loss = h->div_loss;
  for (size_t e = E; e-- > 0;)
    if (h->epochs[e].has_stats) {
      c.stats = h->stats + e * h->num_layers * NNKIT__NSTATS;
      c.L = h->num_layers;
      c.kinds = (const char(*)[16])h->kinds;
      c.stats_epoch = e;
      break;
    }
  diagnose(d, &c);
  make_report(d);
  nnkit__free(buf);
  nnkit__free(be);
  *out = d;
  return NNKIT_OK;
}

NNKIT_API void nnkit_diagnosis_free(nnkit_diagnosis *d) { nnkit__free(d); }

NNKIT_API size_t nnkit_diagnosis_count(const nnkit_diagnosis *d)
{
  return d ? d->n : 0;
}

NNKIT_API nnkit_verdict nnkit_diagnosis_verdict(const nnkit_diagnosis *d, size_t i)
{
  return d && i < d->n ? d->v[i] : (nnkit_verdict)0;
}

NNKIT_API int nnkit_diagnosis_has(const nnkit_diagnosis *d, nnkit_verdict v)
{
  return d ? has(d, v) : 0;
}

NNKIT_API const char *nnkit_diagnosis_evidence(const nnkit_diagnosis *d, size_t i)
{
  if (!d)
    return NULL;
  return i < d->n ? d->evidence[i] : "";
}

NNKIT_API const char *nnkit_diagnosis_advice(const nnkit_diagnosis *d, size_t i)
{
  if (!d)
    return NULL;
  return i < d->n ? d->advice[i] : "";
}

NNKIT_API const char *nnkit_diagnosis_report(const nnkit_diagnosis *d)
{
  return d ? d->report : NULL;
}

NNKIT_API const char *nnkit_verdict_name(nnkit_verdict v)
{
  switch (v) {
  case NNKIT_VERDICT_HEALTHY: return "healthy";
  case NNKIT_VERDICT_LR_TOO_HIGH: return "learning rate too high (exploding)";
  case NNKIT_VERDICT_OSCILLATING: return "learning rate too high (oscillating)";
  case NNKIT_VERDICT_LR_TOO_LOW: return "learning rate too low";
  case NNKIT_VERDICT_OVERFITTING: return "overfitting";
  case NNKIT_VERDICT_UNDERFITTING: return "underfitting";
  case NNKIT_VERDICT_VANISHING: return "vanishing activations";
  case NNKIT_VERDICT_SATURATING: return "saturating activations";
  case NNKIT_VERDICT_DEAD_RELUS: return "dead ReLUs";
  case NNKIT_VERDICT_NOISY_BATCHES: return "noisy batches";
  case NNKIT_VERDICT_TOO_SHORT: return "too short to judge";
  }
  return "unknown verdict";
}
