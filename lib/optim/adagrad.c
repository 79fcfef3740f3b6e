/* Adagrad (torch.optim.Adagrad, lr_decay 0, initial accumulator 0). */
#include <math.h>

#include "internal.h"

#define LO NNKIT_BOUND_LO_OPEN

/* Defaults are PyTorch's. */
static const nnkit__spec keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 0.01, 0},
  {0, NNKIT_OPT_EPS, "eps", 0, 1, 1e-10, LO},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
};

static const char *const state_names[] = {"sum"};

static size_t state_needed(const nnkit_optimizer *o)
{
  (void)o;
  return 1;
}

/* Vectorizes with -fno-math-errno (see rmsprop.c). */
static void update(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  float *restrict p = x->p, *restrict s = x->s[0];
  const float *restrict g = x->g;
  size_t n = x->n;
  float lr = (float)x->lr, wd = (float)o->hp[NNKIT_OPT_WEIGHT_DECAY];
  float eps = (float)o->hp[NNKIT_OPT_EPS];
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float si = s[i] + d * d;
    s[i] = si;
    p[i] = p[i] - lr * (d / (sqrtf(si) + eps));
  }
}

const nnkit__optim_kind_desc nnkit__optim_adagrad = {
  .kind = NNKIT_OPTIM_ADAGRAD,
  .name = "Adagrad",
  .keys = keys,
  .num_keys = sizeof keys / sizeof keys[0],
  .state_names = state_names,
  .max_state = 1,
  .state_needed = state_needed,
  .update = update,
};
