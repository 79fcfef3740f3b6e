/* RMSProp (torch.optim.RMSprop, centered off): eps outside the square
 * root, optional momentum on the scaled step. */
#include <math.h>

#include "internal.h"

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN

/* Defaults are PyTorch's. */
static const nnkit__spec keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {0, NNKIT_OPT_DECAY, "decay rate", 0, 1, 0.99, HI},
  {0, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {0, NNKIT_OPT_MOMENTUM, "momentum", 0, 1, 0, HI},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
};

static const char *const state_names[] = {"square_avg", "momentum_buffer"};

/* The momentum buffer only with momentum. */
static size_t state_needed(const nnkit_optimizer *o)
{
  return 1 + (o->hp[NNKIT_OPT_MOMENTUM] > 0);
}

/* The loops with a square root vectorize only when sqrtf need not set
 * errno (-fno-math-errno); their arguments are never negative. */
static void update(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  float *restrict p = x->p, *restrict s = x->s[0], *restrict b = x->s[1];
  const float *restrict g = x->g;
  size_t n = x->n;
  double decay = o->hp[NNKIT_OPT_DECAY];
  float lr = (float)x->lr, wd = (float)o->hp[NNKIT_OPT_WEIGHT_DECAY];
  float mu = (float)o->hp[NNKIT_OPT_MOMENTUM];
  float gamma = (float)decay, omg = (float)(1.0 - decay), eps = (float)o->hp[NNKIT_OPT_EPS];
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

const nnkit__optim_kind_desc nnkit__optim_rmsprop = {
  .kind = NNKIT_OPTIM_RMSPROP,
  .name = "RMSProp",
  .keys = keys,
  .num_keys = sizeof keys / sizeof keys[0],
  .state_names = state_names,
  .max_state = 2,
  .state_needed = state_needed,
  .update = update,
};
