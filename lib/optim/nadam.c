/* NAdam (torch.optim.NAdam with coupled weight decay): Adam's moments with
 * Nesterov momentum through the momentum schedule
 * mu_t = beta1 (1 - 0.96^(t psi) / 2), whose running product each layer
 * keeps as scalar state (torch keeps one per parameter tensor; a layer's
 * tensors always step together). */
#include <math.h>

#include "internal.h"

#define LO NNKIT_BOUND_LO_OPEN
#define HI NNKIT_BOUND_HI_OPEN

/* Defaults are PyTorch's. */
static const nnkit__spec keys[] = {
  {0, NNKIT_OPT_LR, "learning rate", 0, 1e6, 2e-3, 0},
  {0, NNKIT_OPT_BETA1, "beta1", 0, 1, 0.9, HI},
  {0, NNKIT_OPT_BETA2, "beta2", 0, 1, 0.999, HI},
  {0, NNKIT_OPT_EPS, "eps", 0, 1, 1e-8, LO},
  {0, NNKIT_OPT_WEIGHT_DECAY, "weight decay", 0, 1e6, 0, 0},
  {0, NNKIT_OPT_MOMENTUM_DECAY, "momentum decay", 0, 1e6, 4e-3, 0},
};

static const char *const state_names[] = {"exp_avg", "exp_avg_sq"};

/* mu_1 ... mu_t, starting at 1 (torch's state["mu_product"]). */
static const nnkit__spec scalars[] = {
  {0, 0, "mu_product", 0, 1, 1.0, 0},
};

static size_t state_needed(const nnkit_optimizer *o)
{
  (void)o;
  return 2;
}

/* The momentum coefficient of update t. */
static double mu_at(const nnkit_optimizer *o, double t)
{
  return o->hp[NNKIT_OPT_BETA1] *
         (1.0 - 0.5 * pow(0.96, t * o->hp[NNKIT_OPT_MOMENTUM_DECAY]));
}

static void layer_begin(const nnkit_optimizer *o, double *sc, uint64_t t)
{
  sc[0] *= mu_at(o, (double)t);
}

/* Vectorizes with -fno-math-errno (see rmsprop.c). */
static void update(const nnkit_optimizer *o, const nnkit__optim_slice *x)
{
  float *restrict p = x->p, *restrict m = x->s[0], *restrict v = x->s[1];
  const float *restrict g = x->g;
  size_t n = x->n;
  double beta1 = o->hp[NNKIT_OPT_BETA1], beta2 = o->hp[NNKIT_OPT_BETA2];
  double t = (double)x->t;
  double mu = mu_at(o, t), mu_next = mu_at(o, t + 1.0);
  double prod = x->scalars[0], prod_next = prod * mu_next;
  float cg = (float)(x->lr * (1.0 - mu) / (1.0 - prod));
  float cm = (float)(x->lr * mu_next / (1.0 - prod_next));
  float bc2s = (float)sqrt(1.0 - pow(beta2, t));
  float b1 = (float)beta1, omb1 = (float)(1.0 - beta1);
  float b2 = (float)beta2, omb2 = (float)(1.0 - beta2);
  float eps = (float)o->hp[NNKIT_OPT_EPS];
  float wd = (float)o->hp[NNKIT_OPT_WEIGHT_DECAY];
  for (size_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float mi = b1 * m[i] + omb1 * d;
    float vi = b2 * v[i] + omb2 * d * d;
    m[i] = mi;
    v[i] = vi;
    float den = sqrtf(vi) / bc2s + eps;
    p[i] = p[i] - cg * (d / den) - cm * (mi / den);
  }
}

const nnkit__optim_kind_desc nnkit__optim_nadam = {
  .kind = NNKIT_OPTIM_NADAM,
  .name = "NAdam",
  .keys = keys,
  .num_keys = sizeof keys / sizeof keys[0],
  .state_names = state_names,
  .max_state = 2,
  .state_needed = state_needed,
  .scalars = scalars,
  .num_scalars = 1,
  .layer_begin = layer_begin,
  .update = update,
};
