/* Adam (torch.optim.Adam) and AdamW (torch.optim.AdamW): one update rule,
 * with PyTorch's coupled weight decay (g += wd x) or the decoupled one
 * (x *= 1 - lr wd before the update). */
#include <math.h>

#include "internal.h"

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN

/* Defaults are PyTorch's. */
static const nnkit__spec adam_keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 1e-3, 0},
  {0, NNKIT_OPT_BETA1, "beta1", 0, 1, 0.9, HI},
  {0, NNKIT_OPT_BETA2, "beta2", 0, 1, 0.999, HI},
  {0, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
};

static const nnkit__spec adamw_keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 1e-3, 0},
  {0, NNKIT_OPT_BETA1, "beta1", 0, 1, 0.9, HI},
  {0, NNKIT_OPT_BETA2, "beta2", 0, 1, 0.999, HI},
  {0, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0.01, 0},
};

static const char *const state_names[] = {"exp_avg", "exp_avg_sq"};

static size_t state_needed(const nnkit_optimizer *o)
{
  (void)o;
  return 2;
}

/* Bias corrections count the layer's own updates t. Vectorizes with
 * -fno-math-errno (see rmsprop.c). */
static void update_adam(const nnkit_optimizer *o, const nnkit__optim_slice *x,
                        int decoupled)
{
  float *restrict p = x->p, *restrict m = x->s[0], *restrict v = x->s[1];
  const float *restrict g = x->g;
  size_t n = x->n;
  double beta1 = o->hp[NNKIT_OPT_BETA1], beta2 = o->hp[NNKIT_OPT_BETA2];
  double weight_decay = o->hp[NNKIT_OPT_WEIGHT_DECAY];
  double bc1 = 1.0 - pow(beta1, (double)x->t);
  double bc2 = 1.0 - pow(beta2, (double)x->t);
  float step = (float)(x->lr / bc1), bc2s = (float)sqrt(bc2);
  float b1 = (float)beta1, omb1 = (float)(1.0 - beta1);
  float b2 = (float)beta2, omb2 = (float)(1.0 - beta2);
  float eps = (float)o->hp[NNKIT_OPT_EPS];
  float wd = decoupled ? 0.0f : (float)weight_decay;
  float shrink = decoupled ? (float)(1.0 - x->lr * weight_decay) : 1.0f;
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

static void update_coupled(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  update_adam(o, x, 0);
}

static void update_decoupled(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  update_adam(o, x, 1);
}

const nnkit__optim_kind_desc nnkit__optim_adam = {
  .kind = NNKIT_OPTIM_ADAM,
  .name = "Adam",
  .keys = adam_keys,
  .num_keys = sizeof adam_keys / sizeof adam_keys[0],
  .state_names = state_names,
  .max_state = 2,
  .state_needed = state_needed,
  .update = update_coupled,
};

const nnkit__optim_kind_desc nnkit__optim_adamw = {
  .kind = NNKIT_OPTIM_ADAMW,
  .name = "AdamW",
  .keys = adamw_keys,
  .num_keys = sizeof adamw_keys / sizeof adamw_keys[0],
  .state_names = state_names,
  .max_state = 2,
  .state_needed = state_needed,
  .update = update_decoupled,
};
