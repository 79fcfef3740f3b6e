/* Optimizers: enum-keyed hyperparameters with bounds (the one table
 * mechanism that schedules and regularizers share), and flat update loops
 * over the net's contiguous parameter and gradient buffers. The loops walk
 * the net's layers only to skip frozen ones and to scale the learning rate
 * by each layer's multiplier. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* ---- optimizer hyperparameters ------------------------------------------ */

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN
#define INT NNKIT_BOUND_INTEGER

/* One row per (algorithm, key), kind 0 for keys every algorithm has. New
 * algorithms and keys add rows; nothing else needs to know them. Defaults
 * are PyTorch's. */
static const nnkit__spec specs[] = {
  {NNKIT_OPTIM_SGD, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {NNKIT_OPTIM_SGD, NNKIT_OPT_MOMENTUM, "momentum", 0, 1, 0, HI},
  {NNKIT_OPTIM_SGD, NNKIT_OPT_NESTEROV, "nesterov", 0, 1, 0, INT},
  {NNKIT_OPTIM_SGD, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
  {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_DECAY, "decay rate", 0, 1, 0.99, HI},
  {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_MOMENTUM, "momentum", 0, 1, 0, HI},
  {NNKIT_OPTIM_RMSPROP, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
  {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_EPS, "eps", 0, 1, 1e-10, LO},
  {NNKIT_OPTIM_ADAGRAD, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
  {NNKIT_OPTIM_ADAM, NNKIT_OPT_LR, "learning rate", 0, 1e6, 1e-3, 0},
  {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA1, "beta1", 0, 1, 0.9, HI},
  {NNKIT_OPTIM_ADAM, NNKIT_OPT_BETA2, "beta2", 0, 1, 0.999, HI},
  {NNKIT_OPTIM_ADAM, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {NNKIT_OPTIM_ADAM, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
  {NNKIT_OPTIM_ADAMW, NNKIT_OPT_LR, "learning rate", 0, 1e6, 1e-3, 0},
  {NNKIT_OPTIM_ADAMW, NNKIT_OPT_BETA1, "beta1", 0, 1, 0.9, HI},
  {NNKIT_OPTIM_ADAMW, NNKIT_OPT_BETA2, "beta2", 0, 1, 0.999, HI},
  {NNKIT_OPTIM_ADAMW, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {NNKIT_OPTIM_ADAMW, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0.01, 0},
  {0, NNKIT_OPT_CLIP_NORM, "gradient clipping norm", 0, 1e30, 0, 0},
  {0, NNKIT_OPT_CLIP_VALUE, "gradient clipping value", 0, 1e30, 0, 0},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static int valid_kind(nnkit_optim_kind kind)
{
  return kind >= NNKIT_OPTIM_SGD && kind <= NNKIT_OPTIM_ADAMW;
}

static const char *kind_name(nnkit_optim_kind kind)
{
  switch (kind) {
  case NNKIT_OPTIM_SGD: return "SGD";
  case NNKIT_OPTIM_RMSPROP: return "RMSProp";
  case NNKIT_OPTIM_ADAGRAD: return "Adagrad";
  case NNKIT_OPTIM_ADAM: return "Adam";
  case NNKIT_OPTIM_ADAMW: return "AdamW";
  }
  return "unknown optimizer";
}

static const nnkit__spec *find_spec(nnkit_optim_kind kind, nnkit_optim_param key)
{
  if (!valid_kind(kind))
    return NULL;
  return nnkit__spec_find(specs, NSPECS, (int)kind, (int)key);
}

static double *slot(nnkit_optimizer *opt, nnkit_optim_param key)
{
  switch (key) {
  case NNKIT_OPT_LR: return &opt->lr;
  case NNKIT_OPT_MOMENTUM: return &opt->momentum;
  case NNKIT_OPT_NESTEROV: return &opt->nesterov;
  case NNKIT_OPT_WEIGHT_DECAY: return &opt->weight_decay;
  case NNKIT_OPT_BETA1: return &opt->beta1;
  case NNKIT_OPT_BETA2: return &opt->beta2;
  case NNKIT_OPT_EPS: return &opt->eps;
  case NNKIT_OPT_DECAY: return &opt->decay;
  case NNKIT_OPT_CLIP_NORM: return &opt->clip_norm;
  case NNKIT_OPT_CLIP_VALUE: return &opt->clip_value;
  }
  return NULL;
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
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_optimizer_create: unknown optimizer %d; use an "
                      "NNKIT_OPTIM_* value", (int)kind);
  nnkit_optimizer *opt = nnkit__calloc(1, sizeof *opt);
  if (!opt)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_optimizer_create: out of memory");
  opt->kind = kind;
  for (size_t i = 0; i < NSPECS; i++)
    if (specs[i].kind == (int)kind || specs[i].kind == 0)
      *slot(opt, (nnkit_optim_param)specs[i].key) = specs[i].def;
  opt->last_grad_norm = NAN;
  *out = opt;
  return NNKIT_OK;
}

static void free_state(nnkit_optimizer *opt)
{
  nnkit__free(opt->state);
  nnkit__free(opt->layer_steps);
  opt->state = NULL;
  opt->layer_steps = NULL;
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
  return opt->kind;
}

NNKIT_API nnkit_status nnkit_optimizer_bounds(double *lo_out, double *hi_out,
                                              int *flags_out,
                                              nnkit_optim_kind kind,
                                              nnkit_optim_param key)
{
  const nnkit__spec *s = find_spec(kind, key);
  if (!s)
    return no_key(kind, (int)key);
  if (lo_out)
    *lo_out = s->lo;
  if (hi_out)
    *hi_out = s->hi;
  if (flags_out)
    *flags_out = s->flags;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_optimizer_set(nnkit_optimizer *opt,
                                           nnkit_optim_param key, double value)
{
  if (!opt)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_optimizer_set: opt is NULL");
  const nnkit__spec *s = find_spec(opt->kind, key);
  if (!s)
    return no_key(opt->kind, (int)key);
  nnkit_status st = nnkit__spec_check(s, kind_name(opt->kind), value);
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
  if (!find_spec(opt->kind, key))
    return no_key(opt->kind, (int)key);
  *out = *slot((nnkit_optimizer *)opt, key);
  return NNKIT_OK;
}

/* ---- state -------------------------------------------------------------- */

/* Most state buffers an algorithm can use. */
static size_t max_bufs(nnkit_optim_kind kind)
{
  switch (kind) {
  case NNKIT_OPTIM_SGD: return 1;
  case NNKIT_OPTIM_RMSPROP: return 2;
  case NNKIT_OPTIM_ADAGRAD: return 1;
  case NNKIT_OPTIM_ADAM:
  case NNKIT_OPTIM_ADAMW: return 2;
  }
  return 0;
}

/* Buffers the current settings need: momentum buffers only with momentum. */
static size_t bufs_needed(const nnkit_optimizer *opt)
{
  switch (opt->kind) {
  case NNKIT_OPTIM_SGD: return opt->momentum > 0;
  case NNKIT_OPTIM_RMSPROP: return 1 + (opt->momentum > 0);
  case NNKIT_OPTIM_ADAGRAD: return 1;
  case NNKIT_OPTIM_ADAM:
  case NNKIT_OPTIM_ADAMW: return 2;
  }
  return 0;
}

/* Sizes the state for net at the first step; grows it (once) when a
 * setting needs another buffer or the net gained layers without
 * parameters. Allocates nothing in the steady state. */
static nnkit_status ensure_state(nnkit_optimizer *opt, const nnkit_net *net)
{
  size_t n = net->num_params, L = net->num_layers;
  if (opt->sized_params && opt->sized_params != n)
    return nnkit__err(NNKIT_E_STATE,
                      "%s: the optimizer's state is sized for a net with %zu "
                      "parameters, this net has %zu; call nnkit_optimizer_reset() "
                      "to start over with it", kind_name(opt->kind),
                      opt->sized_params, n);
  if (L > opt->num_counts) {
    uint64_t *c = nnkit__realloc(opt->layer_steps, L * sizeof *c);
    if (!c)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for step counters",
                        kind_name(opt->kind));
    memset(c + opt->num_counts, 0, (L - opt->num_counts) * sizeof *c);
    opt->layer_steps = c;
    opt->num_counts = L;
  }
  size_t need = bufs_needed(opt);
  if (need > opt->state_bufs) {
    int ovf = 0;
    size_t bytes = nnkit__mul_size(nnkit__mul_size(need, n, &ovf), sizeof(float), &ovf);
    float *s = ovf ? NULL : nnkit__realloc(opt->state, bytes);
    if (!s)
      return nnkit__err(NNKIT_E_NOMEM,
                        "%s: out of memory for %zu x %zu floats of state",
                        kind_name(opt->kind), need, n);
    memset(s + opt->state_bufs * n, 0, (need - opt->state_bufs) * n * sizeof *s);
    opt->state = s;
    opt->state_bufs = need;
  }
  opt->sized_params = n;
  return NNKIT_OK;
}

/* ---- update rules (flat loops over one layer's slice) ------------------- */

/* Each loop is branch-free so that the compiler vectorizes it. The loops
 * with a square root vectorize only when sqrtf need not set errno
 * (-fno-math-errno; GCC ignores it as a function attribute); their
 * arguments are never negative. */

typedef struct slice {
  float *p;
  const float *g;
  float *s0, *s1; /* the slice's part of state buffers 0 and 1 (or NULL) */
  size_t n;
  double lr;
  uint64_t t; /* updates this layer has received, this one included */
} slice;

/* A weight decay of 0 adds 0 * x, which leaves every finite gradient
 * unchanged. */
static void update_sgd(const nnkit_optimizer *o, const slice *x)
{
  float *restrict p = x->p, *restrict v = x->s0;
  const float *restrict g = x->g;
  size_t n = x->n;
  float lr = (float)x->lr, wd = (float)o->weight_decay, mu = (float)o->momentum;
  if (mu == 0.0f) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      p[i] = p[i] - lr * d;
    }
  } else if (o->nesterov != 0) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float b = mu * v[i] + d; /* v = rho v + g, the lecture's velocity */
      v[i] = b;
      p[i] = p[i] - lr * (d + mu * b);
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float b = mu * v[i] + d;
      v[i] = b;
      p[i] = p[i] - lr * b;
    }
  }
}

static void update_rmsprop(const nnkit_optimizer *o, const slice *x)
{
  float *restrict p = x->p, *restrict s = x->s0, *restrict b = x->s1;
  const float *restrict g = x->g;
  size_t n = x->n;
  float lr = (float)x->lr, wd = (float)o->weight_decay, mu = (float)o->momentum;
  float gamma = (float)o->decay, omg = (float)(1.0 - o->decay), eps = (float)o->eps;
  if (mu == 0.0f) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float si = gamma * s[i] + omg * d * d;
      s[i] = si;
      p[i] = p[i] - lr * (d / (sqrtf(si) + eps));
    }
  } else {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      float si = gamma * s[i] + omg * d * d;
      s[i] = si;
      float bi = mu * b[i] + d / (sqrtf(si) + eps);
      b[i] = bi;
      p[i] = p[i] - lr * bi;
    }
  }
}

static void update_adagrad(const nnkit_optimizer *o, const slice *x)
{
  float *restrict p = x->p, *restrict s = x->s0;
  const float *restrict g = x->g;
  size_t n = x->n;
  float lr = (float)x->lr, wd = (float)o->weight_decay, eps = (float)o->eps;
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float si = s[i] + d * d;
    s[i] = si;
    p[i] = p[i] - lr * (d / (sqrtf(si) + eps));
  }
}

/* decoupled: AdamW's x *= 1 - lr wd before the update instead of Adam's
 * g += wd x. */
static void update_adam(const nnkit_optimizer *o, const slice *x, int decoupled)
{
  float *restrict p = x->p, *restrict m = x->s0, *restrict v = x->s1;
  const float *restrict g = x->g;
  size_t n = x->n;
  double bc1 = 1.0 - pow(o->beta1, (double)x->t);
  double bc2 = 1.0 - pow(o->beta2, (double)x->t);
  float step = (float)(x->lr / bc1), bc2s = (float)sqrt(bc2);
  float b1 = (float)o->beta1, omb1 = (float)(1.0 - o->beta1);
  float b2 = (float)o->beta2, omb2 = (float)(1.0 - o->beta2);
  float eps = (float)o->eps;
  float wd = decoupled ? 0.0f : (float)o->weight_decay;
  float shrink = decoupled ? (float)(1.0 - x->lr * o->weight_decay) : 1.0f;
  for (size_t i = 0; i < n; i++) {
    float pi = p[i] * shrink;
    float d = g[i] + wd * pi;
    float mi = b1 * m[i] + omb1 * d;
    float vi = b2 * v[i] + omb2 * d * d;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi - step * (mi / (sqrtf(vi) / bc2s + eps));
  }
}

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
  size_t n = net->num_params;
  for (size_t k = 0; k < net->num_layers; k++) {
    const nnkit__layer *l = &net->layers[k];
    if (!l->num_params || l->frozen)
      continue;
    size_t lo, hi;
    nnkit__split(l->num_params, t, nt, &lo, &hi);
    size_t off = l->param_offset + lo;
    slice x;
    x.p = net->params + off;
    x.g = net->grads + off;
    x.s0 = opt->state_bufs > 0 ? opt->state + off : NULL;
    x.s1 = opt->state_bufs > 1 ? opt->state + n + off : NULL;
    x.n = hi - lo;
    x.lr = opt->lr * (double)l->lr_mult;
    x.t = opt->layer_steps[k];
    switch (opt->kind) {
    case NNKIT_OPTIM_SGD: update_sgd(opt, &x); break;
    case NNKIT_OPTIM_RMSPROP: update_rmsprop(opt, &x); break;
    case NNKIT_OPTIM_ADAGRAD: update_adagrad(opt, &x); break;
    case NNKIT_OPTIM_ADAM: update_adam(opt, &x, 0); break;
    case NNKIT_OPTIM_ADAMW: update_adam(opt, &x, 1); break;
    }
  }
}

/* Clips the trainable layers' gradients by value, then by global norm. */
static void clip(nnkit_optimizer *opt, nnkit_net *net)
{
  opt->last_grad_norm = NAN;
  if (opt->clip_value > 0) {
    float c = (float)opt->clip_value;
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
  if (opt->clip_norm > 0) {
    double ss = 0;
    for (size_t k = 0; k < net->num_layers; k++) {
      const nnkit__layer *l = &net->layers[k];
      if (!l->num_params || l->frozen)
        continue;
      for (size_t i = 0; i < l->num_params; i++)
        ss += (double)l->grads[i] * l->grads[i];
    }
    double norm = sqrt(ss), coef = opt->clip_norm / (norm + 1e-6);
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

  size_t trainable = 0;
  for (size_t k = 0; k < net->num_layers; k++) {
    const nnkit__layer *l = &net->layers[k];
    if (l->num_params && !l->frozen) {
      ++opt->layer_steps[k];
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
  return opt->steps;
}

NNKIT_API double nnkit_optimizer_reg_loss(const nnkit_optimizer *opt)
{
  return opt->last_reg_loss;
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
 * layer_steps x L, has_schedule, schedule position x NNKIT__SCHED_STATE
 * when has_schedule]. */
#define STATE_VERSION 1
#define HEAD 6

NNKIT_API size_t nnkit_optimizer_state_size(const nnkit_optimizer *opt)
{
  return opt->state_bufs * opt->sized_params;
}

NNKIT_API size_t nnkit_optimizer_state_scalars(const nnkit_optimizer *opt)
{
  return HEAD + opt->num_counts + 1 + (opt->sched ? NNKIT__SCHED_STATE : 0);
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
  double *c = scalars_out;
  c[0] = STATE_VERSION;
  c[1] = (double)opt->kind;
  c[2] = (double)opt->steps;
  c[3] = (double)opt->sized_params;
  c[4] = (double)opt->state_bufs;
  c[5] = (double)opt->num_counts;
  for (size_t i = 0; i < opt->num_counts; i++)
    c[HEAD + i] = (double)opt->layer_steps[i];
  c[HEAD + opt->num_counts] = opt->sched != NULL;
  if (opt->sched)
    nnkit__schedule_save(opt->sched, c + HEAD + opt->num_counts + 1);
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
  const double *c = scalars;
  const char *fn = "nnkit_optimizer_set_state";
  if (scalars_len < HEAD + 1 || c[0] != STATE_VERSION)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the scalars are not a saved optimizer state (version %g, "
                      "%zu values)", fn, scalars_len ? c[0] : 0.0, scalars_len);
  if (c[1] != (double)opt->kind)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the state is of optimizer kind %g, this optimizer is %s (%d)",
                      fn, c[1], kind_name(opt->kind), (int)opt->kind);
  for (int i = 2; i < HEAD; i++)
    if (!is_count(c[i]))
      return nnkit__err(NNKIT_E_INVALID, "%s: scalar %d (%g) is not a count", fn, i,
                        c[i]);
  size_t sized = (size_t)c[3], bufs = (size_t)c[4], L = (size_t)c[5];
  if (sized && sized != net->num_params)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the state is for a net with %zu parameters, this net has %zu",
                      fn, sized, net->num_params);
  if (bufs > max_bufs(opt->kind) || (!sized && (bufs || L)) || L > net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: %zu state buffers and %zu layer counters do not fit %s "
                      "and a net of %zu layers", fn, bufs, L, kind_name(opt->kind),
                      net->num_layers);
  if (scalars_len < HEAD + L + 1)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zu scalars are too few for %zu layers", fn,
                      scalars_len, L);
  for (size_t i = 0; i < L; i++)
    if (!is_count(c[HEAD + i]))
      return nnkit__err(NNKIT_E_INVALID, "%s: layer %zu's step count %g is not a count",
                        fn, i, c[HEAD + i]);
  double has = c[HEAD + L];
  if (has != 0 && has != 1)
    return nnkit__err(NNKIT_E_INVALID, "%s: scalar %zu (%g) must be 0 or 1", fn,
                      HEAD + L, has);
  if ((has != 0) != (opt->sched != NULL))
    return nnkit__err(NNKIT_E_INVALID,
                      has != 0 ? "%s: the state has a schedule; attach one of the same "
                                 "kind first"
                               : "%s: the state has no schedule but one is attached",
                      fn);
  size_t want = HEAD + L + 1 + (has != 0 ? NNKIT__SCHED_STATE : 0);
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
  if (ns && !(ns_buf = nnkit__malloc(ns * sizeof *ns_buf)))
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  if (L && !(counts = nnkit__malloc(L * sizeof *counts))) {
    nnkit__free(ns_buf);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  }
  if (opt->sched) {
    nnkit_status st = nnkit__schedule_restore(opt->sched, c + HEAD + L + 1);
    if (st != NNKIT_OK) {
      nnkit__free(ns_buf);
      nnkit__free(counts);
      return st;
    }
    opt->lr = nnkit__schedule_lr(opt->sched);
  }
  free_state(opt);
  if (ns)
    memcpy(ns_buf, state, ns * sizeof *ns_buf);
  for (size_t i = 0; i < L; i++)
    counts[i] = (uint64_t)c[HEAD + i];
  opt->state = ns_buf;
  opt->layer_steps = counts;
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
  nnkit_status st = nnkit_optimizer_create(out, opt->kind);
  if (st != NNKIT_OK)
    return st;
  nnkit_optimizer *c = *out;
  c->lr = opt->sched ? nnkit__schedule_base(opt->sched) : opt->lr;
  c->momentum = opt->momentum;
  c->nesterov = opt->nesterov;
  c->weight_decay = opt->weight_decay;
  c->beta1 = opt->beta1;
  c->beta2 = opt->beta2;
  c->eps = opt->eps;
  c->decay = opt->decay;
  c->clip_norm = opt->clip_norm;
  c->clip_value = opt->clip_value;
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
