/* Learning-rate schedules: closed-form rates of a step counter t (with an
 * optional linear warm-up in front), and reduce-on-plateau, which keeps a
 * little state fed by a monitored value. Settings use the optimizer's
 * key/bounds table mechanism (nnkit__spec). */
#include <math.h>
#include <string.h>

#include "internal.h"

struct nnkit_schedule {
  nnkit_sched_kind kind;
  /* settings (NNKIT_SCHED_*) */
  double gamma, step_size, t_max, min_lr, t_0, t_mult, patience, threshold;
  double threshold_abs, cooldown, maximize, warmup_steps, warmup_start, per_batch;
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

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN
#define INT NNKIT_BOUND_INTEGER

/* Defaults are PyTorch's (ExponentialLR has none; 0.95 here). */
static const nnkit__spec specs[] = {
  {NNKIT_SCHEDULE_STEP, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.1, LO},
  {NNKIT_SCHEDULE_MULTISTEP, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.1, LO},
  {NNKIT_SCHEDULE_EXPONENTIAL, NNKIT_SCHED_GAMMA, "gamma", 0, 1, 0.95, LO},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_GAMMA, "reduction factor", 0, 1, 0.1, LO | HI},
  {NNKIT_SCHEDULE_STEP, NNKIT_SCHED_STEP_SIZE, "step size", 1, 1e9, 10, INT},
  {NNKIT_SCHEDULE_COSINE, NNKIT_SCHED_T_MAX, "T_max", 1, 1e9, 10, INT},
  {NNKIT_SCHEDULE_COSINE, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6, 0, 0},
  {NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6,
   0, 0},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_MIN_LR, "minimum learning rate", 0, 1e6, 0, 0},
  {NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_T_0, "T_0", 1, 1e9, 10, INT},
  {NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_T_MULT, "T_mult", 1, 1e3, 1, INT},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_PATIENCE, "patience", 0, 1e9, 10, INT},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_THRESHOLD, "threshold", 0, 1e6, 1e-4, 0},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_THRESHOLD_ABS, "absolute threshold", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_COOLDOWN, "cooldown", 0, 1e9, 0, INT},
  {NNKIT_SCHEDULE_PLATEAU, NNKIT_SCHED_MAXIMIZE, "maximize", 0, 1, 0, INT},
  {0, NNKIT_SCHED_WARMUP_STEPS, "warm-up steps", 0, 1e9, 0, INT},
  {0, NNKIT_SCHED_WARMUP_START, "warm-up start factor", 0, 1, 1.0 / 3.0, 0},
  {NNKIT_SCHEDULE_CONSTANT, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_STEP, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_MULTISTEP, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_EXPONENTIAL, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_COSINE, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
  {NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_PER_BATCH, "per batch", 0, 1, 0, INT},
};
#define NSPECS (sizeof specs / sizeof specs[0])

#define MAX_MILESTONES 1024

static int valid_kind(nnkit_sched_kind kind)
{
  return kind >= NNKIT_SCHEDULE_CONSTANT && kind <= NNKIT_SCHEDULE_PLATEAU;
}

static const char *kind_name(nnkit_sched_kind kind)
{
  switch (kind) {
  case NNKIT_SCHEDULE_CONSTANT: return "constant schedule";
  case NNKIT_SCHEDULE_STEP: return "step schedule";
  case NNKIT_SCHEDULE_MULTISTEP: return "multi-step schedule";
  case NNKIT_SCHEDULE_EXPONENTIAL: return "exponential schedule";
  case NNKIT_SCHEDULE_COSINE: return "cosine schedule";
  case NNKIT_SCHEDULE_COSINE_RESTARTS: return "cosine-with-restarts schedule";
  case NNKIT_SCHEDULE_PLATEAU: return "reduce-on-plateau schedule";
  }
  return "unknown schedule";
}

static const nnkit__spec *find_spec(nnkit_sched_kind kind, nnkit_sched_param key)
{
  if (!valid_kind(kind))
    return NULL;
  return nnkit__spec_find(specs, NSPECS, (int)kind, (int)key);
}

static double *slot(nnkit_schedule *s, nnkit_sched_param key)
{
  switch (key) {
  case NNKIT_SCHED_GAMMA: return &s->gamma;
  case NNKIT_SCHED_STEP_SIZE: return &s->step_size;
  case NNKIT_SCHED_T_MAX: return &s->t_max;
  case NNKIT_SCHED_MIN_LR: return &s->min_lr;
  case NNKIT_SCHED_T_0: return &s->t_0;
  case NNKIT_SCHED_T_MULT: return &s->t_mult;
  case NNKIT_SCHED_PATIENCE: return &s->patience;
  case NNKIT_SCHED_THRESHOLD: return &s->threshold;
  case NNKIT_SCHED_THRESHOLD_ABS: return &s->threshold_abs;
  case NNKIT_SCHED_COOLDOWN: return &s->cooldown;
  case NNKIT_SCHED_MAXIMIZE: return &s->maximize;
  case NNKIT_SCHED_WARMUP_STEPS: return &s->warmup_steps;
  case NNKIT_SCHED_WARMUP_START: return &s->warmup_start;
  case NNKIT_SCHED_PER_BATCH: return &s->per_batch;
  }
  return NULL;
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
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_schedule_create: unknown schedule %d; use an "
                      "NNKIT_SCHEDULE_* value", (int)kind);
  nnkit_schedule *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_schedule_create: out of memory");
  s->kind = kind;
  for (size_t i = 0; i < NSPECS; i++)
    if (specs[i].kind == (int)kind || specs[i].kind == 0)
      *slot(s, (nnkit_sched_param)specs[i].key) = specs[i].def;
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
  return sched->kind;
}

NNKIT_API nnkit_status nnkit_schedule_set(nnkit_schedule *sched,
                                          nnkit_sched_param key, double value)
{
  if (!sched)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_set: sched is NULL");
  const nnkit__spec *sp = find_spec(sched->kind, key);
  if (!sp)
    return no_key(sched->kind, (int)key);
  nnkit_status st = nnkit__spec_check(sp, kind_name(sched->kind), value);
  if (st == NNKIT_OK)
    *slot(sched, key) = value;
  return st;
}

NNKIT_API nnkit_status nnkit_schedule_get(double *out, const nnkit_schedule *sched,
                                          nnkit_sched_param key)
{
  if (!out || !sched)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_get: NULL argument");
  if (!find_spec(sched->kind, key))
    return no_key(sched->kind, (int)key);
  *out = *slot((nnkit_schedule *)sched, key);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_schedule_bounds(double *lo_out, double *hi_out,
                                             int *flags_out, nnkit_sched_kind kind,
                                             nnkit_sched_param key)
{
  const nnkit__spec *sp = find_spec(kind, key);
  if (!sp)
    return no_key(kind, (int)key);
  if (lo_out)
    *lo_out = sp->lo;
  if (hi_out)
    *hi_out = sp->hi;
  if (flags_out)
    *flags_out = sp->flags;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_schedule_set_milestones(nnkit_schedule *sched,
                                                     const uint64_t *milestones,
                                                     size_t count)
{
  if (!sched || (count && !milestones))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_schedule_set_milestones: NULL argument");
  if (sched->kind != NNKIT_SCHEDULE_MULTISTEP)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_schedule_set_milestones: a %s has no milestones; only "
                      "NNKIT_SCHEDULE_MULTISTEP does", kind_name(sched->kind));
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
  return sched->t;
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

int nnkit__schedule_per_batch(const nnkit_schedule *s) { return s->per_batch != 0; }

int nnkit__schedule_attached(const nnkit_schedule *s) { return s->attached; }

void nnkit__schedule_set_attached(nnkit_schedule *s, int attached)
{
  s->attached = attached;
}

static double cosine(double base, double min, double cur, double period)
{
  const double pi = 3.14159265358979323846;
  return min + (base - min) * (1.0 + cos(pi * cur / period)) / 2.0;
}

double nnkit__schedule_lr(const nnkit_schedule *s)
{
  uint64_t w = (uint64_t)s->warmup_steps, t = s->t;
  if (t < w)
    return s->base * (s->warmup_start + (1.0 - s->warmup_start) * (double)t / (double)w);
  uint64_t u = t - w;
  switch (s->kind) {
  case NNKIT_SCHEDULE_CONSTANT:
    return s->base;
  case NNKIT_SCHEDULE_STEP:
    return s->base * pow(s->gamma, (double)(u / (uint64_t)s->step_size));
  case NNKIT_SCHEDULE_MULTISTEP: {
    size_t k = 0;
    while (k < s->num_milestones && s->milestones[k] <= u)
      k++;
    return s->base * pow(s->gamma, (double)k);
  }
  case NNKIT_SCHEDULE_EXPONENTIAL:
    return s->base * pow(s->gamma, (double)u);
  case NNKIT_SCHEDULE_COSINE:
    return cosine(s->base, s->min_lr, (double)u, s->t_max);
  case NNKIT_SCHEDULE_COSINE_RESTARTS: {
    uint64_t period = (uint64_t)s->t_0, mult = (uint64_t)s->t_mult, cur = u;
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
    return cosine(s->base, s->min_lr, (double)cur, (double)period);
  }
  case NNKIT_SCHEDULE_PLATEAU:
    return s->base * s->scale;
  }
  return s->base;
}

/* Reduce on plateau, PyTorch's ReduceLROnPlateau.step(). */
static void plateau_step(nnkit_schedule *s, double m)
{
  int better;
  if (isnan(m))
    better = 0;
  else if (isnan(s->best))
    better = 1;
  else if (s->maximize != 0)
    better = s->threshold_abs != 0 ? m > s->best + s->threshold
                                   : m > s->best * (1.0 + s->threshold);
  else
    better = s->threshold_abs != 0 ? m < s->best - s->threshold
                                   : m < s->best * (1.0 - s->threshold);
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
  if ((double)s->num_bad > s->patience) {
    double old = s->base * s->scale;
    double lr = old * s->gamma;
    if (lr < s->min_lr)
      lr = s->min_lr;
    if (old - lr > 1e-8 && s->base > 0)
      s->scale = lr / s->base;
    s->cooldown_left = (uint64_t)s->cooldown;
    s->num_bad = 0;
  }
}

void nnkit__schedule_advance(nnkit_schedule *s, double monitored)
{
  if (s->kind == NNKIT_SCHEDULE_PLATEAU && s->t >= (uint64_t)s->warmup_steps)
    plateau_step(s, monitored);
  s->t++;
}

void nnkit__schedule_save(const nnkit_schedule *s, double *out)
{
  out[0] = (double)s->kind;
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
  if (in[0] != (double)s->kind)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_set_state: the saved schedule is of kind %g, "
                      "the attached one is a %s (%d)", in[0], kind_name(s->kind),
                      (int)s->kind);
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
