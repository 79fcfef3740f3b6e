/* Optimizers: the generic machinery over kind descriptors (one file per
 * kind, listed in registry.c): enum-keyed hyperparameters with bounds
 * (lib/core/settings.c), state sizing, checkpoints, clipping, frozen
 * layers, learning-rate multipliers and the schedule and regularizer
 * hooks. The update rules are flat loops over the net's contiguous
 * parameter and gradient buffers; this file walks the net's layers only to
 * skip frozen ones and to scale the learning rate by each layer's
 * multiplier. Nothing here names a kind. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- optimizer hyperparameters ------------------------------------------ */

/* The keys every kind has, after the kind's own (desc->keys). */
static const nnkit__spec common_keys[] = {
  {0, NNKIT_OPT_CLIP_NORM, "gradient clipping norm", 0, 1e30, 0, 0},
  {0, NNKIT_OPT_CLIP_VALUE, "gradient clipping value", 0, 1e30, 0, 0},
};
#define NCOMMON (sizeof common_keys / sizeof common_keys[0])

static const char *kind_name(nnkit_optim_kind kind)
{
  const nnkit__optim_kind_desc *d = nnkit__optim_kind_of(kind);
  return d ? d->name : "unknown optimizer";
}

static const nnkit__spec *find_spec(const nnkit__optim_kind_desc *d,
                                    nnkit_optim_param key)
{
  if (!d)
    return NULL;
  const nnkit__spec *s = nnkit__spec_find(d->keys, d->num_keys, 0, (int)key);
  return s ? s : nnkit__spec_find(common_keys, NCOMMON, 0, (int)key);
}

static double *slot(nnkit_optimizer *opt, nnkit_optim_param key)
{
  return key == NNKIT_OPT_LR ? &opt->lr : &opt->hp[key];
}

static nnkit_status no_key(nnkit_optim_kind kind, int key)
{
  return nnkit__err(NNKIT_E_INVALID,
                    "%s has no hyperparameter with key %d; see nnkit_optim_kind "
                    "for the keys of each optimizer", kind_name(kind), key);
}

NNKIT_API nnkit_status nnkit_optimizer_create(nnkit_optimizer **out,
                                              nnkit_optim_kind kind)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_create: out is NULL");
  *out = NULL;
  const nnkit__optim_kind_desc *d = nnkit__optim_kind_of(kind);
  if (!d)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_create: unknown optimizer %d; use an "
                      "NNKIT_OPTIM_* value", (int)kind);
  nnkit_optimizer *opt = nnkit__calloc(1, sizeof *opt);
  if (!opt)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_optimizer_create: out of memory");
  opt->desc = d;
  for (size_t i = 0; i < d->num_keys; i++)
    *slot(opt, (nnkit_optim_param)d->keys[i].key) = d->keys[i].def;
  for (size_t i = 0; i < NCOMMON; i++)
    *slot(opt, (nnkit_optim_param)common_keys[i].key) = common_keys[i].def;
  opt->last_grad_norm = NAN;
  *out = opt;
  return NNKIT_OK;
}

static void free_state(nnkit_optimizer *opt)
{
  nnkit__free(opt->state);
  nnkit__free(opt->layer_steps);
  nnkit__free(opt->layer_scalars);
  opt->state = NULL;
  opt->layer_steps = NULL;
  opt->layer_scalars = NULL;
  opt->sized_params = opt->state_bufs = opt->num_counts = 0;
}

NNKIT_API void nnkit_optimizer_free(nnkit_optimizer *opt)
{
  if (!opt)
    return;
  free_state(opt);
  nnkit__schedule_destroy(opt->sched);
  for (size_t i = 0; i < opt->num_regs; i++)
    nnkit__regularizer_destroy(opt->regs[i]);
  nnkit__free(opt->regs);
  nnkit__free(opt);
}

NNKIT_API nnkit_optim_kind nnkit_optimizer_kind(const nnkit_optimizer *opt)
{
  return opt ? opt->desc->kind : (nnkit_optim_kind)0;
}

NNKIT_API nnkit_status nnkit_optimizer_bounds(double *lo_out, double *hi_out,
                                              int *flags_out,
                                              nnkit_optim_kind kind,
                                              nnkit_optim_param key)
{
  const nnkit__spec *s = find_spec(nnkit__optim_kind_of(kind), key);
  if (!s)
    return no_key(kind, (int)key);
  nnkit__spec_bounds(s, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_set(nnkit_optimizer *opt,
                                           nnkit_optim_param key, double value)
{
  if (!opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_set: opt is NULL");
  const nnkit__spec *s = find_spec(opt->desc, key);
  if (!s)
    return no_key(opt->desc->kind, (int)key);
  nnkit_status st = nnkit__spec_check(s, opt->desc->name, value);
  if (st != NNKIT_OK)
    return st;
  if (key == NNKIT_OPT_LR && opt->sched) {
    nnkit__schedule_set_base(opt->sched, value);
    opt->lr = nnkit__schedule_lr(opt->sched);
    return NNKIT_OK;
  }
  *slot(opt, key) = value;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_get(double *out, const nnkit_optimizer *opt,
                                           nnkit_optim_param key)
{
  if (!out || !opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_get: NULL argument");
  if (!find_spec(opt->desc, key))
    return no_key(opt->desc->kind, (int)key);
  *out = nnkit__opt_hp(opt, key);
  return NNKIT_OK;
}

/* ---- state -------------------------------------------------------------- */

const char *nnkit__optimizer_state_name(const nnkit_optimizer *opt, size_t buf)
{
  return buf < opt->desc->max_state ? opt->desc->state_names[buf] : NULL;
}

const char *nnkit__optimizer_scalar_name(const nnkit_optimizer *opt, size_t i)
{
  return i < opt->desc->num_scalars ? opt->desc->scalars[i].name : NULL;
}

/* Sizes the state for net at the first step; grows it (once) when a
 * setting needs another buffer or the net gained layers without
 * parameters. Allocates nothing in the steady state. */
static nnkit_status ensure_state(nnkit_optimizer *opt, const nnkit_net *net)
{
  const nnkit__optim_kind_desc *d = opt->desc;
  size_t n = net->num_params, L = net->num_layers, k = d->num_scalars;
  if (opt->sized_params && opt->sized_params != n)
    return nnkit__err(NNKIT_E_STATE,
                      "%s: the optimizer's state is sized for a net with %zu "
                      "parameters, this net has %zu; call nnkit_optimizer_reset() "
                      "to start over with it", d->name, opt->sized_params, n);
  if (L > opt->num_counts) {
    uint64_t *c = nnkit__realloc(opt->layer_steps, L * sizeof *c);
    if (!c)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for step counters",
                        d->name);
    opt->layer_steps = c; /* larger; num_counts still the old count */
    if (k) {
      double *sc = nnkit__realloc(opt->layer_scalars, L * k * sizeof *sc);
      if (!sc)
        return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for per-layer state",
                          d->name);
      for (size_t i = opt->num_counts * k; i < L * k; i++)
        sc[i] = d->scalars[i % k].def;
      opt->layer_scalars = sc;
    }
    memset(c + opt->num_counts, 0, (L - opt->num_counts) * sizeof *c);
    opt->num_counts = L;
  }
  size_t need = d->state_needed(opt);
  if (need > opt->state_bufs) {
    int ovf = 0;
    size_t bytes = nnkit__mul_size(nnkit__mul_size(need, n, &ovf), sizeof(float), &ovf);
    float *s = ovf ? NULL : nnkit__realloc(opt->state, bytes);
    if (!s)
      return nnkit__err(NNKIT_E_NOMEM,
                        "%s: out of memory for %zu x %zu floats of state",
                        d->name, need, n);
    memset(s + opt->state_bufs * n, 0, (need - opt->state_bufs) * n * sizeof *s);
    opt->state = s;
    opt->state_bufs = need;
  }
  opt->sized_params = n;
  return NNKIT_OK;
}

/* ---- the step ----------------------------------------------------------- */

/* The element-wise update, split over nnkit's threads: task t updates its
 * share of every trainable layer's parameters (each element is
 * independent, so the split does not change the result). */
typedef struct step_job {
  const nnkit_optimizer *opt;
  nnkit_net *net;
} step_job;

static void step_task(void *ctx, int t, int nt)
{
  const step_job *j = ctx;
  const nnkit_optimizer *opt = j->opt;
  nnkit_net *net = j->net;
  size_t n = net->num_params, k = opt->desc->num_scalars;
  for (size_t li = 0; li < net->num_layers; li++) {
    const nnkit__layer *l = &net->layers[li];
    if (!l->num_params || l->frozen)
      continue;
    size_t lo, hi;
    nnkit__split(l->num_params, t, nt, &lo, &hi);
    size_t off = l->param_offset + lo;
    nnkit__optim_slice x;
    x.p = net->params + off;
    x.g = net->grads + off;
    for (size_t b = 0; b < NNKIT__OPT_MAX_BUFS; b++)
      x.s[b] = b < opt->state_bufs ? opt->state + b * n + off : NULL;
    x.n = hi - lo;
    x.lr = opt->lr * (double)l->lr_mult;
    x.t = opt->layer_steps[li];
    x.scalars = k ? opt->layer_scalars + li * k : NULL;
    opt->desc->update(opt, &x);
  }
}

/* Clips the trainable layers' gradients by value, then by global norm. */
static void clip(nnkit_optimizer *opt, nnkit_net *net)
{
  opt->last_grad_norm = NAN;
  double clip_value = opt->hp[NNKIT_OPT_CLIP_VALUE];
  double clip_norm = opt->hp[NNKIT_OPT_CLIP_NORM];
  if (clip_value > 0) {
    float c = (float)clip_value;
    for (size_t k = 0; k < net->num_layers; k++) {
      const nnkit__layer *l = &net->layers[k];
      if (!l->num_params || l->frozen)
        continue;
      for (size_t i = 0; i < l->num_params; i++) {
        float v = l->grads[i];
        l->grads[i] = v > c ? c : (v < -c ? -c : v);
      }
    }
  }
  if (clip_norm > 0) {
    double ss = 0;
    for (size_t k = 0; k < net->num_layers; k++) {
      const nnkit__layer *l = &net->layers[k];
      if (!l->num_params || l->frozen)
        continue;
      for (size_t i = 0; i < l->num_params; i++)
        ss += (double)l->grads[i] * l->grads[i];
    }
    double norm = sqrt(ss), coef = clip_norm / (norm + 1e-6);
    opt->last_grad_norm = norm;
    if (coef < 1.0) {
      float c = (float)coef;
      for (size_t k = 0; k < net->num_layers; k++) {
        const nnkit__layer *l = &net->layers[k];
        if (!l->num_params || l->frozen)
          continue;
        for (size_t i = 0; i < l->num_params; i++)
          l->grads[i] *= c;
      }
    }
  }
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
  for (size_t r = 0; r < opt->num_regs && st == NNKIT_OK; r++)
    st = nnkit__regularizer_check(opt->regs[r], net);
  if (st == NNKIT_OK)
    st = ensure_state(opt, net);
  if (st != NNKIT_OK)
    return st;

  double penalty = 0;
  for (size_t r = 0; r < opt->num_regs; r++)
    penalty += nnkit__regularizer_apply(opt->regs[r], net, 1);
  opt->last_reg_loss = penalty;

  clip(opt, net);

  const nnkit__optim_kind_desc *d = opt->desc;
  size_t trainable = 0;
  for (size_t k = 0; k < net->num_layers; k++) {
    const nnkit__layer *l = &net->layers[k];
    if (l->num_params && !l->frozen) {
      uint64_t t = ++opt->layer_steps[k];
      if (d->layer_begin)
        d->layer_begin(opt, opt->layer_scalars + k * d->num_scalars, t);
      trainable += l->num_params;
    }
  }
  step_job j = {opt, net};
  nnkit__parallel(step_task, &j, nnkit__tasks_for((double)trainable / 4.0));

  for (size_t r = 0; r < opt->num_regs; r++)
    nnkit__regularizer_constrain(opt->regs[r], net);
  opt->steps++;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_train_batch(double *loss_out,
                                                   nnkit_optimizer *opt,
                                                   nnkit_net *net, const float *x,
                                                   size_t batch,
                                                   const int32_t *labels,
                                                   const float *targets)
{
  if (!opt || !net)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_train_batch: an optimizer and a net are required");
  double loss = 0;
  nnkit_status st = nnkit_net_forward(net, x, batch, NULL, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_backward(net, labels, targets, &loss);
  if (st != NNKIT_OK)
    return st;
  if (loss_out)
    *loss_out = loss;
  if (!isfinite(loss))
    return nnkit__err(NNKIT_E_DIVERGED,
                      "nnkit_optimizer_train_batch: the loss is %g; the parameters were "
                      "not updated (lower the learning rate or check the data for NaN)",
                      loss);
  return nnkit_optimizer_step(opt, net);
}

NNKIT_API uint64_t nnkit_optimizer_steps(const nnkit_optimizer *opt)
{
  return opt ? opt->steps : 0;
}

NNKIT_API double nnkit_optimizer_reg_loss(const nnkit_optimizer *opt)
{
  return opt ? opt->last_reg_loss : 0.0;
}

NNKIT_API void nnkit_optimizer_reset(nnkit_optimizer *opt)
{
  if (!opt)
    return;
  free_state(opt);
  opt->steps = 0;
  opt->last_reg_loss = 0;
  opt->last_grad_norm = NAN;
  if (opt->sched) {
    nnkit__schedule_start(opt->sched, nnkit__schedule_base(opt->sched));
    opt->lr = nnkit__schedule_lr(opt->sched);
  }
}

/* Scalars, version 1: [version, kind, steps, sized_params, state_bufs, L,
 * layer_steps x L, layer scalars x L x desc->num_scalars (layer by layer;
 * none for most kinds), has_schedule, schedule position x
 * NNKIT__SCHED_STATE when has_schedule]. */
#define STATE_VERSION 1
#define HEAD 6

NNKIT_API size_t nnkit_optimizer_state_size(const nnkit_optimizer *opt)
{
  return opt ? opt->state_bufs * opt->sized_params : 0;
}

NNKIT_API size_t nnkit_optimizer_state_scalars(const nnkit_optimizer *opt)
{
  if (!opt)
    return 0;
  return HEAD + opt->num_counts * (1 + opt->desc->num_scalars) + 1 +
         (opt->sched ? NNKIT__SCHED_STATE : 0);
}

NNKIT_API nnkit_status nnkit_optimizer_get_state(float *state_out, size_t state_len,
                                                 double *scalars_out,
                                                 size_t scalars_len,
                                                 const nnkit_optimizer *opt)
{
  if (!opt || !scalars_out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_get_state: NULL argument");
  size_t ns = nnkit_optimizer_state_size(opt), nc = nnkit_optimizer_state_scalars(opt);
  if (state_len < ns || (ns && !state_out))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_get_state: the state needs %zu floats, "
                      "state_out holds %zu", ns, state_out ? state_len : 0);
  if (scalars_len < nc)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_get_state: the state needs %zu scalars, "
                      "scalars_out holds %zu", nc, scalars_len);
  if (ns)
    memcpy(state_out, opt->state, ns * sizeof(float));
  size_t L = opt->num_counts, nls = L * opt->desc->num_scalars;
  double *c = scalars_out;
  c[0] = STATE_VERSION;
  c[1] = (double)opt->desc->kind;
  c[2] = (double)opt->steps;
  c[3] = (double)opt->sized_params;
  c[4] = (double)opt->state_bufs;
  c[5] = (double)L;
  for (size_t i = 0; i < L; i++)
    c[HEAD + i] = (double)opt->layer_steps[i];
  for (size_t i = 0; i < nls; i++)
    c[HEAD + L + i] = opt->layer_scalars[i];
  c[HEAD + L + nls] = opt->sched != NULL;
  if (opt->sched)
    nnkit__schedule_save(opt->sched, c + HEAD + L + nls + 1);
  return NNKIT_OK;
}

/* A count stored as a double: a whole number in [0, 2^53]. */
static int is_count(double v)
{
  return v >= 0 && v <= 9007199254740992.0 && v == floor(v);
}

NNKIT_API nnkit_status nnkit_optimizer_set_state(nnkit_optimizer *opt,
                                                 const nnkit_net *net,
                                                 const float *state, size_t state_len,
                                                 const double *scalars,
                                                 size_t scalars_len)
{
  if (!opt || !net || !scalars)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_set_state: NULL argument");
  const nnkit__optim_kind_desc *d = opt->desc;
  const double *c = scalars;
  const char *fn = "nnkit_optimizer_set_state";
  if (scalars_len < HEAD + 1 || c[0] != STATE_VERSION)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the scalars are not a saved optimizer state (version %g, "
                      "%zu values)", fn, scalars_len ? c[0] : 0.0, scalars_len);
  if (c[1] != (double)d->kind)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the state is of optimizer kind %g, this optimizer is %s (%d)",
                      fn, c[1], d->name, (int)d->kind);
  for (int i = 2; i < HEAD; i++)
    if (!is_count(c[i]))
      return nnkit__err(NNKIT_E_INVALID, "%s: scalar %d (%g) is not a count", fn, i,
                        c[i]);
  size_t sized = (size_t)c[3], bufs = (size_t)c[4], L = (size_t)c[5];
  if (sized && sized != net->num_params)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the state is for a net with %zu parameters, this net has %zu",
                      fn, sized, net->num_params);
  if (bufs > d->max_state || (!sized && (bufs || L)) || L > net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: %zu state buffers and %zu layer counters do not fit %s "
                      "and a net of %zu layers", fn, bufs, L, d->name,
                      net->num_layers);
  size_t k = d->num_scalars, nls = L * k; /* L <= num_layers: no overflow */
  if (scalars_len < HEAD + L + nls + 1)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu scalars are too few for %zu layers", fn,
                      scalars_len, L);
  for (size_t i = 0; i < L; i++)
    if (!is_count(c[HEAD + i]))
      return nnkit__err(NNKIT_E_INVALID, "%s: layer %zu's step count %g is not a count",
                        fn, i, c[HEAD + i]);
  for (size_t i = 0; i < nls; i++) {
    char owner[96];
    snprintf(owner, sizeof owner, "%s: %s layer %zu's", fn, d->name, i / k);
    nnkit_status st = nnkit__spec_check(&d->scalars[i % k], owner, c[HEAD + L + i]);
    if (st != NNKIT_OK)
      return st;
  }
  double has = c[HEAD + L + nls];
  if (has != 0 && has != 1)
    return nnkit__err(NNKIT_E_INVALID, "%s: scalar %zu (%g) must be 0 or 1", fn,
                      HEAD + L + nls, has);
  if ((has != 0) != (opt->sched != NULL))
    return nnkit__err(NNKIT_E_INVALID,
                      has != 0 ? "%s: the state has a schedule; attach one of the same "
                                 "kind first"
                               : "%s: the state has no schedule but one is attached",
                      fn);
  size_t want = HEAD + L + nls + 1 + (has != 0 ? NNKIT__SCHED_STATE : 0);
  if (scalars_len != want)
    return nnkit__err(NNKIT_E_INVALID, "%s: the state has %zu scalars, %zu expected", fn,
                      scalars_len, want);
  size_t ns = bufs * sized;
  if (state_len != ns || (ns && !state))
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the state needs %zu floats (%zu buffers of %zu), got %zu", fn,
                      ns, bufs, sized, state ? state_len : 0);
  float *ns_buf = NULL;
  uint64_t *counts = NULL;
  double *lsc = NULL;
  if ((ns && !(ns_buf = nnkit__malloc(ns * sizeof *ns_buf))) ||
      (L && !(counts = nnkit__malloc(L * sizeof *counts))) ||
      (nls && !(lsc = nnkit__malloc(nls * sizeof *lsc)))) {
    nnkit__free(ns_buf);
    nnkit__free(counts);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  if (opt->sched) {
    nnkit_status st = nnkit__schedule_restore(opt->sched, c + HEAD + L + nls + 1);
    if (st != NNKIT_OK) {
      nnkit__free(ns_buf);
      nnkit__free(counts);
      nnkit__free(lsc);
      return st;
    }
    opt->lr = nnkit__schedule_lr(opt->sched);
  }
  free_state(opt);
  if (ns)
    memcpy(ns_buf, state, ns * sizeof *ns_buf);
  for (size_t i = 0; i < L; i++)
    counts[i] = (uint64_t)c[HEAD + i];
  if (nls)
    memcpy(lsc, c + HEAD + L, nls * sizeof *lsc);
  opt->state = ns_buf;
  opt->layer_steps = counts;
  opt->layer_scalars = lsc;
  opt->sized_params = sized;
  opt->state_bufs = bufs;
  opt->num_counts = L;
  opt->steps = (uint64_t)c[2];
  return NNKIT_OK;
}

/* ---- schedules and regularizers attached to an optimizer ---------------- */

NNKIT_API nnkit_status nnkit_optimizer_set_schedule(nnkit_optimizer *opt,
                                                    nnkit_schedule *sched)
{
  if (!opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_set_schedule: opt is NULL");
  if (sched && sched == opt->sched)
    return NNKIT_OK;
  if (sched && nnkit__schedule_attached(sched))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_set_schedule: the schedule is attached to "
                      "another optimizer already; create one per optimizer");
  double base = opt->sched ? nnkit__schedule_base(opt->sched) : opt->lr;
  nnkit__schedule_destroy(opt->sched);
  opt->sched = sched;
  if (sched) {
    nnkit__schedule_set_attached(sched, 1);
    nnkit__schedule_start(sched, base);
    opt->lr = nnkit__schedule_lr(sched);
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_schedule *nnkit_optimizer_schedule(nnkit_optimizer *opt)
{
  return opt ? opt->sched : NULL;
}

NNKIT_API nnkit_status nnkit_optimizer_schedule_step(nnkit_optimizer *opt,
                                                     double monitored)
{
  if (!opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_schedule_step: opt is NULL");
  if (!opt->sched)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_optimizer_schedule_step: no schedule is attached; see "
                      "nnkit_optimizer_set_schedule()");
  nnkit__schedule_advance(opt->sched, monitored);
  opt->lr = nnkit__schedule_lr(opt->sched);
  return NNKIT_OK;
}

nnkit_status nnkit__optimizer_batch_end(nnkit_optimizer *opt)
{
  if (opt->sched && nnkit__schedule_per_batch(opt->sched))
    return nnkit_optimizer_schedule_step(opt, NAN);
  return NNKIT_OK;
}

nnkit_status nnkit__optimizer_epoch_end(nnkit_optimizer *opt, double monitored)
{
  if (opt->sched && !nnkit__schedule_per_batch(opt->sched))
    return nnkit_optimizer_schedule_step(opt, monitored);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_add_regularizer(nnkit_optimizer *opt,
                                                       nnkit_regularizer *reg)
{
  if (!opt || !reg)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_add_regularizer: NULL argument");
  if (nnkit__regularizer_attached(reg))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_add_regularizer: the regularizer is attached "
                      "already; create one per optimizer");
  if (opt->num_regs == opt->cap_regs) {
    size_t cap = opt->cap_regs ? 2 * opt->cap_regs : 4;
    nnkit_regularizer **r = nnkit__realloc(opt->regs, cap * sizeof *r);
    if (!r)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_optimizer_add_regularizer: out of memory");
    opt->regs = r;
    opt->cap_regs = cap;
  }
  opt->regs[opt->num_regs++] = reg;
  nnkit__regularizer_set_attached(reg, 1);
  return NNKIT_OK;
}

NNKIT_API size_t nnkit_optimizer_num_regularizers(const nnkit_optimizer *opt)
{
  return opt ? opt->num_regs : 0;
}

nnkit_status nnkit__optimizer_clone(nnkit_optimizer **out, const nnkit_optimizer *opt)
{
  nnkit_status st = nnkit_optimizer_create(out, opt->desc->kind);
  if (st != NNKIT_OK)
    return st;
  nnkit_optimizer *c = *out;
  c->lr = opt->sched ? nnkit__schedule_base(opt->sched) : opt->lr;
  memcpy(c->hp, opt->hp, sizeof c->hp);
  for (size_t i = 0; i < opt->num_regs; i++) {
    nnkit_regularizer *r = NULL;
    st = nnkit__regularizer_copy(&r, opt->regs[i]);
    if (st == NNKIT_OK) {
      st = nnkit_optimizer_add_regularizer(c, r);
      if (st != NNKIT_OK)
        nnkit__regularizer_destroy(r);
    }
    if (st != NNKIT_OK) {
      nnkit_optimizer_free(c);
      *out = NULL;
      return st;
    }
  }
  return NNKIT_OK;
}
