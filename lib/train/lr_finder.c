/* Learning-rate range test: the fit loop, driven by a batch callback that
 * raises the rate exponentially each step, on a copy of the parameters. */
#include <math.h>
#include <string.h>

#include "train_internal.h"

#define LRF_DEFAULT_MIN 1e-6
#define LRF_DEFAULT_MAX 10.0
#define LRF_DEFAULT_STEPS 100
#define LRF_BETA 0.9      /* smoothing of the stop test */
#define LRF_STOP_FACTOR 4 /* stop once the smoothed loss is 4x its minimum */

typedef struct sweep {
  nnkit_optimizer *opt;
  double lr_min, ratio; /* lr of step i = lr_min * ratio^i */
  size_t steps, n;
  double *lrs, *raw;
  double avg, best;
  int exploded;
} sweep;

static int on_batch(const nnkit_trainer *tr, size_t epoch, size_t batch,
                    double loss, void *user)
{
  (void)tr;
  (void)epoch;
  (void)batch;
  sweep *s = user;
  size_t i = s->n++;
  s->lrs[i] = s->lr_min * pow(s->ratio, (double)i);
  s->raw[i] = loss;
  s->avg = LRF_BETA * s->avg + (1 - LRF_BETA) * loss;
  double sm = s->avg / (1 - pow(LRF_BETA, (double)(i + 1)));
  if (i == 0 || sm < s->best)
    s->best = sm;
  if (i > 0 && sm > LRF_STOP_FACTOR * s->best) {
    s->exploded = 1;
    return 1;
  }
  if (s->n >= s->steps)
    return 1;
  nnkit_optimizer_set(s->opt, NNKIT_OPT_LR, s->lr_min * pow(s->ratio, (double)s->n));
  return 0;
}

/* Centered moving average of v[0..n) over +-w into out. */
static void smooth(double *out, const double *v, size_t n, size_t w)
{
  for (size_t i = 0; i < n; i++) {
    size_t a = i >= w ? i - w : 0, b = i + w < n ? i + w : n - 1;
    double s = 0;
    for (size_t j = a; j <= b; j++)
      s += v[j];
    out[i] = s / (double)(b - a + 1);
  }
}

NNKIT_API nnkit_status nnkit_trainer_find_lr(double *suggested_out,
                                             double *lrs_out,
                                             double *losses_out, size_t len,
                                             size_t *count_out,
                                             nnkit_trainer *tr,
                                             const nnkit_dataset *train,
                                             double lr_min, double lr_max,
                                             size_t steps)
{
  if (count_out)
    *count_out = 0;
  if (!suggested_out || !tr || !train)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_find_lr: suggested_out, tr and train are required");
  if (lr_min == 0 && lr_max == 0) {
    lr_min = LRF_DEFAULT_MIN;
    lr_max = LRF_DEFAULT_MAX;
  }
  if (steps == 0)
    steps = LRF_DEFAULT_STEPS;
  if (!(lr_min > 0 && lr_min < lr_max && lr_max <= 1e6))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_find_lr: need 0 < lr_min < lr_max <= 1e6 (got %g "
                      "and %g)", lr_min, lr_max);
  if (steps < 8 || steps > 100000)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_find_lr: %zu steps is outside [8, 100000]", steps);
  if ((lrs_out || losses_out) && len < steps)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_find_lr: the output buffers hold %zu values, %zu "
                      "steps need %zu", len, steps, steps);
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_find_lr: cannot run during a fit");
  nnkit_net *net = tr->net;
  double bs = 64, seed = 0, shuffle = 1;
  nnkit_trainer_get(&bs, tr, NNKIT_TRAIN_BATCH_SIZE);
  nnkit_trainer_get(&seed, tr, NNKIT_TRAIN_SEED);
  nnkit_trainer_get(&shuffle, tr, NNKIT_TRAIN_SHUFFLE);
  size_t per_epoch = (train->count + (size_t)bs - 1) / (size_t)bs;
  size_t epochs = (steps + per_epoch - 1) / per_epoch;

  sweep s = {0};
  s.lr_min = lr_min;
  s.steps = steps;
  s.ratio = pow(lr_max / lr_min, 1.0 / (double)(steps - 1));
  s.lrs = nnkit__malloc(steps * sizeof *s.lrs);
  s.raw = nnkit__malloc(steps * sizeof *s.raw);
  double *sm = nnkit__malloc(steps * sizeof *sm);
  nnkit__snapshot snap = {0};
  nnkit_trainer *t = NULL;
  nnkit_status st = s.lrs && s.raw && sm
                        ? NNKIT_OK
                        : nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_find_lr: out of memory");
  if (st == NNKIT_OK)
    st = nnkit__snapshot_reserve(&snap, net);
  if (st == NNKIT_OK)
    st = nnkit__optimizer_clone(&s.opt, tr->opt);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set(s.opt, NNKIT_OPT_LR, lr_min);
  if (st == NNKIT_OK)
    st = nnkit_trainer_create(&t, net, s.opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_EPOCHS, (double)(epochs < 1 ? 1 : epochs));
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_BATCH_SIZE, bs);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_SEED, seed);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_SHUFFLE, shuffle);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_LAYER_STATS, 0);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(t, NNKIT_TRAIN_KEEP_GOOD, 0);
  if (st == NNKIT_OK)
    st = nnkit_trainer_add_batch_callback(t, on_batch, &s);
  if (st != NNKIT_OK)
    goto out;
  nnkit__snapshot_save(&snap, net);
  st = nnkit_trainer_fit(t, train, NULL);
  nnkit__snapshot_restore(&snap, net);
  if (st == NNKIT_E_DIVERGED)
    st = NNKIT_OK; /* the sweep went past the point of divergence: its end */
  if (st != NNKIT_OK)
    goto out;
  size_t n = s.n;
  size_t w = steps / 25 ? steps / 25 : 1;
  smooth(sm, s.raw, n, w);
  if (count_out)
    *count_out = n;
  for (size_t i = 0; i < n; i++) {
    if (lrs_out)
      lrs_out[i] = s.lrs[i];
    if (losses_out)
      losses_out[i] = sm[i];
  }
  /* Steepest descent of the smoothed loss against log(lr), before its
   * minimum. */
  size_t lo = 0;
  for (size_t i = 1; i < n; i++)
    if (sm[i] < sm[lo])
      lo = i;
  size_t best = 0;
  double best_slope = 0;
  for (size_t i = 1; i + 1 <= lo && i + 1 < n; i++) {
    size_t a = i >= w ? i - w : 0, b = i + w < lo ? i + w : lo;
    if (b <= a)
      continue;
    double slope = (sm[b] - sm[a]) / (log(s.lrs[b]) - log(s.lrs[a]));
    if (slope < best_slope) {
      best_slope = slope;
      best = i;
    }
  }
  if (best == 0 || !(sm[lo] < 0.9 * sm[0])) {
    st = nnkit__err(NNKIT_E_STATE,
                    "nnkit_trainer_find_lr: the loss never fell by 10%% over %zu steps "
                    "from %g to %g (from %.4g to at best %.4g at step %zu); widen the "
                    "range or check the net", n, lr_min, s.lrs[n ? n - 1 : 0], sm[0],
                    sm[lo], lo + 1);
    goto out;
  }
  *suggested_out = s.lrs[best];
out:
  nnkit_trainer_free(t);
  nnkit_optimizer_free(s.opt);
  nnkit__snapshot_free(&snap);
  nnkit__free(s.lrs);
  nnkit__free(s.raw);
  nnkit__free(sm);
  return st;
}
