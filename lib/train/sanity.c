/* Sanity checks before training (the lecture's "start training" advice):
 * the initial loss of a softmax classifier is about ln(C), and the net can
 * overfit a tiny subset. Both leave the net's parameters as they were. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_internal.h"

#define SANITY_LOSS_SAMPLES 1024
#define SANITY_TINY 20
#define SANITY_STEPS 200
#define SANITY_MAX_RATIO 3.0
#define SANITY_OVERFIT_FRACTION 0.1

/* A seeded random order of n indices (caller frees). */
static size_t *shuffled(size_t n, uint64_t seed)
{
  size_t *idx = nnkit__malloc(n * sizeof *idx);
  if (!idx)
    return NULL;
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  nnkit__rng r;
  nnkit__rng_init(&r, seed, 0x5a171e5ULL);
  nnkit__rng_shuffle(&r, idx, n);
  return idx;
}

static void report(nnkit_trainer *tr, const char *fmt, ...) NNKIT__PRINTF(2, 3);
static void report(nnkit_trainer *tr, const char *fmt, ...)
{
  size_t used = strlen(tr->sanity_report);
  if (used + 1 >= sizeof tr->sanity_report)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(tr->sanity_report + used, sizeof tr->sanity_report - used, fmt, ap);
  va_end(ap);
}

/* Trains a fresh copy of the optimizer on `tiny` for SANITY_STEPS full
 * batches; returns the fit's status. */
static nnkit_status overfit(nnkit_trainer *tr, const nnkit_dataset *tiny)
{
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *t = NULL;
  nnkit_status st = nnkit__optimizer_clone(&opt, tr->opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_create(&t, tr->net, opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_EPOCHS, SANITY_STEPS);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_BATCH_SIZE, (double)tiny->count);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_SHUFFLE, 0);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_LAYER_STATS, 0);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_KEEP_GOOD, 0);
  if (st == NNKIT_OK)
    st = nnkit_trainer_fit(t, tiny, NULL);
  nnkit_trainer_free(t);
  nnkit_optimizer_free(opt);
  return st;
}

NNKIT_API nnkit_status nnkit_trainer_sanity_check(nnkit_trainer *tr,
                                                  const nnkit_dataset *train)
{
  if (!tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_sanity_check: a trainer and a training set are "
                      "required");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_sanity_check: cannot run during a fit");
  nnkit_net *net = tr->net;
  for (size_t i = 0; i < sizeof tr->sanity / sizeof tr->sanity[0]; i++)
    tr->sanity[i] = NAN;
  tr->sanity_report[0] = '\0';
  double seed_d = 0;
  nnkit_trainer_get(&seed_d, tr, NNKIT_TRAIN_SEED);
  size_t n = train->count;
  size_t *idx = shuffled(n, (uint64_t)seed_d);
  if (!idx)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_sanity_check: out of memory");
  nnkit_dataset *some = NULL, *tiny = NULL;
  nnkit__snapshot snap = {0};
  size_t m = n < SANITY_LOSS_SAMPLES ? n : SANITY_LOSS_SAMPLES;
  size_t k = n < SANITY_TINY ? n : SANITY_TINY;
  nnkit_status st = nnkit_dataset_subset(&some, train, idx, m);
  if (st == NNKIT_OK)
    st = nnkit_dataset_subset(&tiny, train, idx, k);
  nnkit__free(idx);
  if (st == NNKIT_OK)
    st = nnkit__snapshot_reserve(&snap, net);
  double loss0 = NAN;
  if (st == NNKIT_OK)
    st = nnkit__net_evaluate_normalized(&loss0, NULL, net, some);
  if (st != NNKIT_OK)
    goto out;

  /* 1. Initial loss against chance. */
  int ok1 = 1, ok2 = 1;
  char why[512] = "";
  size_t outw = nnkit_net_output_size(net);
  tr->sanity[NNKIT_SANITY_INITIAL_LOSS] = loss0;
  if (net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY && outw >= 2) {
    double expect = log((double)outw), ratio = loss0 / expect;
    tr->sanity[NNKIT_SANITY_EXPECTED_LOSS] = expect;
    tr->sanity[NNKIT_SANITY_LOSS_RATIO] = ratio;
    ok1 = ratio <= SANITY_MAX_RATIO;
    report(tr, "sanity: initial loss %.4f on %zu samples is %.2f x ln(%zu) = %.4f "
           "(chance level): %s\n", loss0, m, ratio, outw, expect,
           ok1 ? "ok" : "FAILED");
    if (!ok1)
      snprintf(why, sizeof why,
               "the initial loss %.4f is %.1f times ln(%zu) = %.4f, the loss of "
               "uniform predictions; the last layer's outputs are too large: use a "
               "smaller initialization (Xavier/He) and check the labels",
               loss0, ratio, outw, expect);
  } else {
    report(tr, "sanity: initial loss %.4f on %zu samples (no chance level for this "
           "loss)\n", loss0, m);
  }

  /* 2. Overfit a tiny subset, on a copy of the parameters. */
  nnkit__snapshot_save(&snap, net);
  double l0 = NAN, l1 = NAN, acc = NAN;
  st = nnkit__net_evaluate_normalized(&l0, NULL, net, tiny);
  nnkit_status fst = NNKIT_OK;
  char fit_err[300] = "";
  if (st == NNKIT_OK) {
    fst = overfit(tr, tiny);
    if (fst != NNKIT_OK)
      snprintf(fit_err, sizeof fit_err, "%s", nnkit_last_error());
    if (fst == NNKIT_OK)
      st = nnkit__net_evaluate_normalized(&l1, &acc, net, tiny);
  }
  nnkit__snapshot_restore(&snap, net);
  if (st != NNKIT_OK)
    goto out;
  if (fst != NNKIT_OK && fst != NNKIT_E_DIVERGED) {
    st = fst;
    nnkit__err(fst, "%s", fit_err);
    goto out;
  }
  if (!tiny->labels)
    acc = NAN;
  tr->sanity[NNKIT_SANITY_OVERFIT_START] = l0;
  tr->sanity[NNKIT_SANITY_OVERFIT_END] = l1;
  tr->sanity[NNKIT_SANITY_OVERFIT_ACC] = acc;
  if (fst == NNKIT_E_DIVERGED) {
    ok2 = 0;
    /* Only the cause: which weights the inner fit kept does not matter. */
    char *tail = strstr(fit_err, "; the ");
    if (tail)
      *tail = '\0';
    report(tr, "sanity: overfitting %zu samples diverged: %s: FAILED\n", k, fit_err);
  } else {
    ok2 = l1 < SANITY_OVERFIT_FRACTION * l0 && (!tiny->labels || acc >= 1.0);
    if (tiny->labels)
      report(tr, "sanity: overfitting %zu samples: loss %.4f -> %.4f in %d steps, "
             "accuracy %.2f: %s\n", k, l0, l1, SANITY_STEPS, acc,
             ok2 ? "ok" : "FAILED");
    else
      report(tr, "sanity: overfitting %zu samples: loss %.4g -> %.4g in %d steps: %s\n",
             k, l0, l1, SANITY_STEPS, ok2 ? "ok" : "FAILED");
  }
  tr->sanity[NNKIT_SANITY_PASSED] = ok1 && ok2;
  if (!ok1)
    st = nnkit__err(NNKIT_E_STATE, "sanity check failed: %s", why);
  else if (!ok2 && fst == NNKIT_E_DIVERGED)
    st = nnkit__err(NNKIT_E_STATE,
                    "sanity check failed: training on %zu samples diverged (%s); "
                    "lower the learning rate", k, fit_err);
  else if (!ok2)
    st = nnkit__err(NNKIT_E_STATE,
                    "sanity check failed: the net cannot overfit %zu samples: loss "
                    "%.4g -> %.4g in %d steps (needs < %.0f%% of the start%s); the "
                    "learning rate may be far too low, or the net, loss or labels "
                    "are broken", k, l0, l1, SANITY_STEPS,
                    100 * SANITY_OVERFIT_FRACTION,
                    tiny->labels ? " and accuracy 1" : "");
out:
  nnkit__snapshot_free(&snap);
  nnkit_dataset_free(some);
  nnkit_dataset_free(tiny);
  return st;
}

NNKIT_API nnkit_status nnkit_trainer_sanity_value(double *out,
                                                  const nnkit_trainer *tr,
                                                  nnkit_sanity_value what)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_sanity_value: NULL argument");
  if (what < NNKIT_SANITY_INITIAL_LOSS || what > NNKIT_SANITY_PASSED)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_sanity_value: unknown value %d; use an "
                      "NNKIT_SANITY_* value", (int)what);
  *out = tr->sanity[what];
  return NNKIT_OK;
}

NNKIT_API const char *nnkit_trainer_sanity_report(const nnkit_trainer *tr)
{
  return tr ? tr->sanity_report : NULL;
}
