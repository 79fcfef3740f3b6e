/* Learning-rate schedules: closed-form rates of a step counter t (with an
 * optional linear warm-up in front), and reduce-on-plateau, which keeps a
 * little state fed by a monitored value. Each kind is one descriptor in
 * the table below (its keys, its rate, its advance), after one group of
 * static functions per kind; the functions after the table are generic.
 * Settings use the keyed-settings engine (nnkit__spec, lib/core/settings.c). */
#include <math.h>
#include <string.h>

#include "internal.h"

/* One more than the largest nnkit_sched_param. */
#define NKEYS 15

typedef struct sched_desc sched_desc;

struct nnkit_schedule {
  const sched_desc *desc;
  double set[NKEYS]; /* settings by key (NNKIT_SCHED_*); keys the kind lacks stay 0 */
  uint64_t *milestones;
  size_t num_milestones;
  int attached;
  /* position */
  uint64_t t;
  double base;
  double scale;           /* plateau: product of the reductions made */
  double best;            /* plateau: best monitored value, NaN = none yet */
  uint64_t num_bad;       /* plateau: steps without improvement */
  uint64_t cooldown_left; /* plateau */
};

/* A schedule kind. */
struct sched_desc {
  nnkit_sched_kind kind;
  const char *name;        /* in sentences */
  const nnkit__spec *keys; /* its own keys (the warm-up keys are common) */
  size_t num_keys;
  /* The rate at step u of the schedule proper (after any warm-up). */
  double (*lr)(const nnkit_schedule *s, uint64_t u);
  /* Called with the monitored value when a step after the warm-up ends,
   * before the counter moves (NULL: nothing but the counter). */
  void (*advance)(nnkit_schedule *s, double monitored);
  int has_milestones; /* takes nnkit_schedule_set_milestones() */
};

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN
#define INT NNKIT_BOUND_INTEGER

#define MAX_MILESTONES 1024

/* Setting NNKIT_SCHED_<key> of s. */
#define G(s, key) ((s)->set[NNKIT_SCHED_##key])

/* Keys of every kind, looked up after the kind's own. */
static const nnkit__spec common_keys[] = {
  {0, NNKIT_SCHED_WARMUP_STEPS, "warm-up steps", 0, 1e9, 0, INT},
  {0, NNKIT_SCHED_WARMUP_START, "warm-up start factor", 0, 1, 1.0 / 3.0, 0},
};
#define NCOMMON (sizeof common_keys / sizeof common_keys[0])

/* Every kind but PLATEAU may advance per batch. */
#define PER_BATCH {0, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT}

/* Defaults are PyTorch's (ExponentialLR has none; 0.95 here). */

/* ---- constant ---- */
static const nnkit__spec constant_keys[] = {PER_BATCH};

static double constant_lr(const nnkit_schedule *s, uint64_t u)
{
  (void)u;
  return s->base;
}

/* ---- step (StepLR) ---- */
static const nnkit__spec step_keys[] = {
  {0, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.1, LO},
  {0, NNKIT_SCHED_STEP_SIZE, "step size", 1, 1e9, 10, INT},
  PER_BATCH,
};

static double step_lr(const nnkit_schedule *s, uint64_t u)
{
  return s->base * pow(G(s, GAMMA), (double)(u / (uint64_t)G(s, STEP_SIZE)));
}

/* ---- multi-step (MultiStepLR) ---- */
static const nnkit__spec multistep_keys[] = {
  {0, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.1, LO},
  PER_BATCH,
};

static double multistep_lr(const nnkit_schedule *s, uint64_t u)
{
  size_t k = 0;
  while (k < s->num_milestones && s->milestones[k] <= u)
    k++;
  return s->base * pow(G(s, GAMMA), (double)k);
}

/* ---- exponential (ExponentialLR) ---- */
static const nnkit__spec exponential_keys[] = {
  {0, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.95, LO},
  PER_BATCH,
};

static double exponential_lr(const nnkit_schedule *s, uint64_t u)
{
  return s->base * pow(G(s, GAMMA), (double)u);
}

/* ---- cosine (CosineAnnealingLR) and SGDR (CosineAnnealingWarmRestarts) ---- */
static double cosine(double base, double min, double cur, double period)
{
  const double pi = 3.14159265358979323846;
  return min + (base - min) * (1.0 + cos(pi * cur / period)) / 2.0;
}

static const nnkit__spec cosine_keys[] = {
  {0, NNKIT_SCHED_T_MAX, "T_max", 1, 1e9, 10, INT},
  {0, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6, 0, 0},
  PER_BATCH,
};

static double cosine_lr(const nnkit_schedule *s, uint64_t u)
{
  return cosine(s->base, G(s, MIN_LR), (double)u, G(s, T_MAX));
}

static const nnkit__spec restarts_keys[] = {
  {0, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6, 0, 0},
  {0, NNKIT_SCHED_T_0, "T_0", 1, 1e9, 10, INT},
  {0, NNKIT_SCHED_T_MULT, "T_mult", 1, 1e3, 1, INT},
  PER_BATCH,
};

/* Where step u of SGDR stands: *cur steps into a period of *period. */
static void restarts_pos(const nnkit_schedule *s, uint64_t u, uint64_t *cur_out,
                         uint64_t *period_out)
{
  uint64_t period = (uint64_t)G(s, T_0), mult = (uint64_t)G(s, T_MULT), cur = u;
  if (mult == 1) {
    cur = u % period;
  } else {
    while (cur >= period) {
      cur -= period;
      if (period > UINT64_MAX / mult)
        break;
      period *= mult;
    }
  }
  *cur_out = cur;
  *period_out = period;
}

static double restarts_lr(const nnkit_schedule *s, uint64_t u)
{
  uint64_t cur, period;
  restarts_pos(s, u, &cur, &period);
  return cosine(s->base, G(s, MIN_LR), (double)cur, (double)period);
}

/* ---- reduce on plateau (ReduceLROnPlateau) ---- */
static const nnkit__spec plateau_keys[] = {
  {0, NNKIT_SCHED_GAMMA, "reduction factor", 0, 1, 0.1, LO | HI},
  {0, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6, 0, 0},
  {0, NNKIT_SCHED_PATIENCE, "patience", 0, 1e9, 10, INT},
  {0, NNKIT_SCHED_THRESHOLD, "threshold", 0, 1e6, 1e-4, 0},
  {0, NNKIT_SCHED_THRESHOLD_ABS, "absolute threshold", 0, 1, 0, INT},
  {0, NNKIT_SCHED_COOLDOWN, "cooldown", 0, 1e9, 0, INT},
  {0, NNKIT_SCHED_MAXIMIZE, "maximize", 0, 1, 0, INT},
};

static double plateau_lr(const nnkit_schedule *s, uint64_t u)
{
  (void)u;
  return s->base * s->scale;
}

/* PyTorch's ReduceLROnPlateau.step(). */
static void plateau_step(nnkit_schedule *s, double m)
{
  double threshold = G(s, THRESHOLD);
  int better;
  if (isnan(m))
    better = 0;
  else if (isnan(s->best))
    better = 1;
  else if (G(s, MAXIMIZE) != 0)
    better = G(s, THRESHOLD_ABS) != 0 ? m > s->best + threshold
                                      : m > s->best * (1.0 + threshold);
  else
    better = G(s, THRESHOLD_ABS) != 0 ? m < s->best - threshold
                                      : m < s->best * (1.0 - threshold);
  if (better) {
    s->best = m;
    s->num_bad = 0;
  } else {
    s->num_bad++;
  }
  if (s->cooldown_left > 0) {
    s->cooldown_left--;
    s->num_bad = 0;
  }
  if ((double)s->num_bad > G(s, PATIENCE)) {
    double old = s->base * s->scale;
    double lr = old * G(s, GAMMA);
    if (lr < G(s, MIN_LR))
      lr = G(s, MIN_LR);
    if (old - lr > 1e-8 && s->base > 0)
      s->scale = lr / s->base;
    s->cooldown_left = (uint64_t)G(s, COOLDOWN);
    s->num_bad = 0;
  }
}

/* ---- the kinds ----------------------------------------------------------- */

#define KEYS(t) t, sizeof t / sizeof t[0]
static const sched_desc kinds[] = {
  {NNKIT_SCHEDULE_CONSTANT, "constant schedule", KEYS(constant_keys), constant_lr,
   NULL, 0},
  {NNKIT_SCHEDULE_STEP, "step schedule", KEYS(step_keys), step_lr, NULL, 0},
  {NNKIT_SCHEDULE_MULTISTEP, "multi-step schedule", KEYS(multistep_keys),
   multistep_lr, NULL, 1},
  {NNKIT_SCHEDULE_EXPONENTIAL, "exponential schedule", KEYS(exponential_keys),
   exponential_lr, NULL, 0},
  {NNKIT_SCHEDULE_COSINE, "cosine schedule", KEYS(cosine_keys), cosine_lr, NULL, 0},
  {NNKIT_SCHEDULE_COSINE_RESTARTS, "cosine-with-restarts schedule",
   KEYS(restarts_keys), restarts_lr, NULL, 0},
  {NNKIT_SCHEDULE_PLATEAU, "reduce-on-plateau schedule", KEYS(plateau_keys),
   plateau_lr, plateau_step, 0},
};
#define NUM_KINDS (sizeof kinds / sizeof kinds[0])

/* ---- generic ------------------------------------------------------------- */

static const sched_desc *desc_of(nnkit_sched_kind kind)
{
  for (size_t i = 0; i < NUM_KINDS; i++)
    if (kinds[i].kind == kind)
      return &kinds[i];
  return NULL;
}

static const char *kind_name(nnkit_sched_kind kind)
{
  const sched_desc *d = desc_of(kind);
  return d ? d->name : "unknown schedule";
}

static const nnkit__spec *find_spec(const sched_desc *d, nnkit_sched_param key)
{
  if (!d)
    return NULL;
  const nnkit__spec *s = nnkit__spec_find(d->keys, d->num_keys, 0, (int)key);
  return s ? s : nnkit__spec_find(common_keys, NCOMMON, 0, (int)key);
}

static nnkit_status no_key(nnkit_sched_kind kind, int key)
{
  return nnkit__err(NNKIT_E_INVALID,
                    "%s has no setting with key %d; see nnkit_sched_param for the "
                    "keys of each kind", kind_name(kind), key);
}

NNKIT_API nnkit_status nnkit_schedule_create(nnkit_schedule **out,
                                             nnkit_sched_kind kind)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_create: out is NULL");
  *out = NULL;
  const sched_desc *d = desc_of(kind);
  if (!d)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_schedule_create: unknown schedule %d; use an "
                      "NNKIT_SCHEDULE_* value", (int)kind);
  nnkit_schedule *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_schedule_create: out of memory");
  s->desc = d;
  for (size_t i = 0; i < d->num_keys; i++)
    s->set[d->keys[i].key] = d->keys[i].def;
  for (size_t i = 0; i < NCOMMON; i++)
    s->set[common_keys[i].key] = common_keys[i].def;
  nnkit__schedule_start(s, 0.0);
  *out = s;
  return NNKIT_OK;
}

void nnkit__schedule_destroy(nnkit_schedule *s)
{
  if (!s)
    return;
  nnkit__free(s->milestones);
  nnkit__free(s);
}

NNKIT_API void nnkit_schedule_free(nnkit_schedule *sched)
{
  if (sched && !sched->attached)
    nnkit__schedule_destroy(sched);
}

NNKIT_API nnkit_sched_kind nnkit_schedule_kind(const nnkit_schedule *sched)
{
  return sched ? sched->desc->kind : (nnkit_sched_kind)0;
}

NNKIT_API nnkit_status nnkit_schedule_set(nnkit_schedule *sched,
                                          nnkit_sched_param key, double value)
{
  if (!sched)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_set: sched is NULL");
  const nnkit__spec *sp = find_spec(sched->desc, key);
  if (!sp)
    return no_key(sched->desc->kind, (int)key);
  nnkit_status st = nnkit__spec_check(sp, sched->desc->name, value);
  if (st == NNKIT_OK)
    sched->set[key] = value;
  return st;
}

NNKIT_API nnkit_status nnkit_schedule_get(double *out, const nnkit_schedule *sched,
                                          nnkit_sched_param key)
{
  if (!out || !sched)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_get: NULL argument");
  if (!find_spec(sched->desc, key))
    return no_key(sched->desc->kind, (int)key);
  *out = sched->set[key];
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_schedule_bounds(double *lo_out, double *hi_out,
                                             int *flags_out, nnkit_sched_kind kind,
                                             nnkit_sched_param key)
{
  const nnkit__spec *sp = find_spec(desc_of(kind), key);
  if (!sp)
    return no_key(kind, (int)key);
  nnkit__spec_bounds(sp, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_schedule_set_milestones(nnkit_schedule *sched,
                                                     const uint64_t *milestones,
                                                     size_t count)
{
  if (!sched || (count && !milestones))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_set_milestones: NULL argument");
  if (!sched->desc->has_milestones)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_schedule_set_milestones: a %s has no milestones; only "
                      "NNKIT_SCHEDULE_MULTISTEP does", sched->desc->name);
  if (count > MAX_MILESTONES)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_schedule_set_milestones: %zu milestones, at most %d",
                      count, MAX_MILESTONES);
  for (size_t i = 1; i < count; i++)
    if (milestones[i] <= milestones[i - 1])
      return nnkit__err(NNKIT_E_INVALID,
                        "nnkit_schedule_set_milestones: milestone %zu (%llu) is not "
                        "above the one before (%llu); they must increase strictly",
                        i, (unsigned long long)milestones[i],
                        (unsigned long long)milestones[i - 1]);
  uint64_t *m = NULL;
  if (count) {
    m = nnkit__malloc(count * sizeof *m);
    if (!m)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_schedule_set_milestones: out of memory");
    memcpy(m, milestones, count * sizeof *m);
  }
  nnkit__free(sched->milestones);
  sched->milestones = m;
  sched->num_milestones = count;
  return NNKIT_OK;
}

NNKIT_API uint64_t nnkit_schedule_steps(const nnkit_schedule *sched)
{
  return sched ? sched->t : 0;
}

/* ---- internal: position and rates --------------------------------------- */

void nnkit__schedule_start(nnkit_schedule *s, double base)
{
  s->t = 0;
  s->base = base;
  s->scale = 1.0;
  s->best = NAN;
  s->num_bad = 0;
  s->cooldown_left = 0;
}

double nnkit__schedule_base(const nnkit_schedule *s) { return s->base; }

void nnkit__schedule_set_base(nnkit_schedule *s, double base) { s->base = base; }

int nnkit__schedule_per_batch(const nnkit_schedule *s)
{
  return s->set[NNKIT_SCHED_PER_BATCH] != 0;
}

int nnkit__schedule_attached(const nnkit_schedule *s) { return s->attached; }

void nnkit__schedule_set_attached(nnkit_schedule *s, int attached)
{
  s->attached = attached;
}

double nnkit__schedule_lr(const nnkit_schedule *s)
{
  uint64_t w = (uint64_t)G(s, WARMUP_STEPS), t = s->t;
  double start = G(s, WARMUP_START);
  if (t < w)
    return s->base * (start + (1.0 - start) * (double)t / (double)w);
  return s->desc->lr(s, t - w);
}

uint64_t nnkit__schedule_cycle_end(const nnkit_schedule *s)
{
  uint64_t w = (uint64_t)G(s, WARMUP_STEPS);
  if (s->t <= w)
    return 0;
  uint64_t u = s->t - w, cur = 1, period = 0;
  if (s->desc->kind == NNKIT_SCHEDULE_COSINE_RESTARTS)
    restarts_pos(s, u, &cur, &period);
  else if (s->desc->kind == NNKIT_SCHEDULE_COSINE)
    cur = u % (2 * (uint64_t)G(s, T_MAX)) == (uint64_t)G(s, T_MAX) ? 0 : 1;
  return cur == 0 ? s->t : 0;
}

void nnkit__schedule_advance(nnkit_schedule *s, double monitored)
{
  if (s->desc->advance && s->t >= (uint64_t)G(s, WARMUP_STEPS))
    s->desc->advance(s, monitored);
  s->t++;
}

void nnkit__schedule_save(const nnkit_schedule *s, double *out)
{
  out[0] = (double)s->desc->kind;
  out[1] = (double)s->t;
  out[2] = s->base;
  out[3] = s->scale;
  out[4] = s->best;
  out[5] = (double)s->num_bad;
  out[6] = (double)s->cooldown_left;
}

static int is_count(double v)
{
  return v >= 0 && v <= 9007199254740992.0 && v == floor(v);
}

nnkit_status nnkit__schedule_restore(nnkit_schedule *s, const double *in)
{
  if (in[0] != (double)s->desc->kind)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_set_state: the saved schedule is of kind %g, "
                      "the attached one is a %s (%d)", in[0], s->desc->name,
                      (int)s->desc->kind);
  if (!is_count(in[1]) || !is_count(in[5]) || !is_count(in[6]) ||
      !(in[2] >= 0 && in[2] <= 1e6) || !(in[3] > 0 && in[3] <= 1) || isinf(in[4]))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_set_state: the saved schedule position "
                      "(step %g, base %g, scale %g) is not valid", in[1], in[2], in[3]);
  s->t = (uint64_t)in[1];
  s->base = in[2];
  s->scale = in[3];
  s->best = in[4];
  s->num_bad = (uint64_t)in[5];
  s->cooldown_left = (uint64_t)in[6];
  return NNKIT_OK;
}
