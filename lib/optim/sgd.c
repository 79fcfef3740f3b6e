/* SGD (torch.optim.SGD, dampening 0), with the lecture's momentum and
 * Nesterov momentum as settings of the same kind. */
#include "internal.h"

#define HI NNKIT_BOUND_HI_OPEN
#define INT NNKIT_BOUND_INTEGER

/* Defaults are PyTorch's. */
static const nnkit__spec keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {0, NNKIT_OPT_MOMENTUM, "momentum", 0, 1, 0, HI},
  {0, NNKIT_OPT_NESTEROV, "nesterov", 0, 1, 0, INT},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
};

static const char *const state_names[] = {"momentum_buffer"};

/* The velocity only with momentum. */
static size_t state_needed(const nnkit_optimizer *o)
{
  return o->hp[NNKIT_OPT_MOMENTUM] > 0;
}

/* A weight decay of 0 adds 0 * x, which leaves every finite gradient
 * unchanged. */
static void update(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  float *restrict p = x->p, *restrict v = x->s[0];
  const float *restrict g = x->g;
  size_t n = x->n;
  float lr = (float)x->lr, wd = (float)o->hp[NNKIT_OPT_WEIGHT_DECAY];
  float mu = (float)o->hp[NNKIT_OPT_MOMENTUM];
  if (mu == 0.0f) {
    for (size_t i = 0; i < n; i++) {
      float d = g[i] + wd * p[i];
      p[i] = p[i] - lr * d;
    }
  } else if (o->hp[NNKIT_OPT_NESTEROV] != 0) {
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

const nnkit__optim_kind_desc nnkit__optim_sgd = {
  .kind = NNKIT_OPTIM_SGD,
  .name = "SGD",
  .keys = keys,
  .num_keys = sizeof keys / sizeof keys[0],
  .state_names = state_names,
  .max_state = 1,
  .state_needed = state_needed,
  .update = update,
};
