/* Optimizers: enum-keyed hyperparameters with bounds, and flat update
 * loops over the net's contiguous parameter and gradient buffers. */
#include <math.h>

#include "internal.h"

/* One row per (algorithm, key): inclusive bounds and default. New
 * algorithms and keys add rows; nothing else needs to know them. */
typedef struct param_spec {
  nnkit_optim_kind kind;
  nnkit_optim_param key;
  const char *name;
  double lo, hi, def;
} param_spec;

static const param_spec specs[] = {
  {NNKIT_OPTIM_SGD, NNKIT_OPT_LR, "learning rate", 0.0, 1e6, 0.01},
};

static const param_spec *find_spec(nnkit_optim_kind kind, nnkit_optim_param key)
{
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    if (specs[i].kind == kind && specs[i].key == key)
      return &specs[i];
  return NULL;
}

static const char *kind_name(nnkit_optim_kind kind)
{
  switch (kind) {
  case NNKIT_OPTIM_SGD: return "SGD";
  }
  return "unknown optimizer";
}

static double *slot(nnkit_optimizer *opt, nnkit_optim_param key)
{
  switch (key) {
  case NNKIT_OPT_LR: return &opt->lr;
  }
  return NULL;
}

NNKIT_API nnkit_status nnkit_optimizer_create(nnkit_optimizer **out,
                                              nnkit_optim_kind kind)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_create: out is NULL");
  *out = NULL;
  if (kind != NNKIT_OPTIM_SGD)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_create: unknown optimizer %d; use an "
                      "NNKIT_OPTIM_* value", (int)kind);
  nnkit_optimizer *opt = nnkit__calloc(1, sizeof *opt);
  if (!opt)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_optimizer_create: out of memory");
  opt->kind = kind;
  for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
    if (specs[i].kind == kind)
      *slot(opt, specs[i].key) = specs[i].def;
  *out = opt;
  return NNKIT_OK;
}

NNKIT_API void nnkit_optimizer_free(nnkit_optimizer *opt)
{
  if (!opt)
    return;
  nnkit__free(opt->state);
  nnkit__free(opt);
}

NNKIT_API nnkit_optim_kind nnkit_optimizer_kind(const nnkit_optimizer *opt)
{
  return opt->kind;
}

NNKIT_API nnkit_status nnkit_optimizer_bounds(double *lo_out, double *hi_out,
                                              nnkit_optim_kind kind,
                                              nnkit_optim_param key)
{
  const param_spec *s = find_spec(kind, key);
  if (!s)
    return nnkit__err(NNKIT_E_INVALID, "%s has no hyperparameter with key %d",
                      kind_name(kind), (int)key);
  if (lo_out)
    *lo_out = s->lo;
  if (hi_out)
    *hi_out = s->hi;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_set(nnkit_optimizer *opt,
                                           nnkit_optim_param key, double value)
{
  if (!opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_set: opt is NULL");
  const param_spec *s = find_spec(opt->kind, key);
  if (!s)
    return nnkit__err(NNKIT_E_INVALID, "%s has no hyperparameter with key %d",
                      kind_name(opt->kind), (int)key);
  if (!(value >= s->lo && value <= s->hi))
    return nnkit__err(NNKIT_E_INVALID, "%s %s %g is outside its range [%g, %g]",
                      kind_name(opt->kind), s->name, value, s->lo, s->hi);
  *slot(opt, key) = value;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_get(double *out, const nnkit_optimizer *opt,
                                           nnkit_optim_param key)
{
  if (!out || !opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_get: NULL argument");
  if (!find_spec(opt->kind, key))
    return nnkit__err(NNKIT_E_INVALID, "%s has no hyperparameter with key %d",
                      kind_name(opt->kind), (int)key);
  *out = *slot((nnkit_optimizer *)opt, key);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_step(nnkit_optimizer *opt, nnkit_net *net)
{
  if (!opt || !net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_step: NULL argument");
  size_t n = net->num_params;
  if (n == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_optimizer_step: the net has no parameters to update");
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  float *p = net->params;
  const float *g = net->grads;
  float lr = (float)opt->lr;
  for (size_t i = 0; i < n; i++)
    p[i] -= lr * g[i];
  opt->steps++;
  return NNKIT_OK;
}

NNKIT_API uint64_t nnkit_optimizer_steps(const nnkit_optimizer *opt)
{
  return opt->steps;
}
