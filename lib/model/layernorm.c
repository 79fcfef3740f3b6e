/* Layer normalization (Ba, Kiros & Hinton 2016), as PyTorch's
 * nn.LayerNorm(normalized_shape = the whole sample shape): each sample is
 * normalized over all of its N values, then scaled and shifted per value.
 * Shape-preserving.
 *
 *   mean = sum x / N,  var = sum (x - mean)^2 / N  (biased, as PyTorch)
 *   xhat = (x - mean) * invstd,  invstd = 1 / sqrt(var + eps)
 *   y    = gamma * xhat + beta                      (gamma, beta: [N])
 *
 * Backward (g = dy * gamma):
 *   dgamma += sum_b dy * xhat,  dbeta += sum_b dy
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat))
 *
 * Unlike batch norm there are no running statistics: training and
 * evaluation compute the same thing. Parameters: gamma then beta (role
 * NNKIT__ROLE_NORM, PyTorch's "weight" and "bias"), initialized to 1 and 0.
 * Each sample's mean and invstd are kept (sized by reserve) for backward,
 * which recomputes xhat from x. Sums run in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__layernorm_kind; /* below */

typedef struct ln_state {
  double eps;
  size_t cap;     /* samples mean and invstd hold */
  double *mean;   /* [cap] */
  double *invstd; /* [cap] */
} ln_state;

static nnkit_status ln_setup(nnkit__layer *l)
{
  l->out = l->in;
  l->num_params = 2 * nnkit__shape_size(&l->in);
  return NNKIT_OK;
}

static void ln_init(nnkit__layer *l)
{
  size_t n = l->num_params / 2;
  for (size_t i = 0; i < n; i++) {
    l->params[i] = 1.0f;
    l->params[n + i] = 0.0f;
  }
}

static nnkit_status ln_reserve(nnkit__layer *l, size_t batch)
{
  ln_state *s = l->state;
  if (batch <= s->cap)
    return NNKIT_OK;
  int ovf = 0;
  size_t bytes = nnkit__mul_size(batch, sizeof(double), &ovf);
  double *m = ovf ? NULL : nnkit__malloc(bytes);
  double *v = m ? nnkit__malloc(bytes) : NULL;
  if (!v) {
    nnkit__free(m);
    return nnkit__err(NNKIT_E_NOMEM, "layernorm (layer %zu): out of memory for a "
                      "batch of %zu", l->index, batch);
  }
  nnkit__free(s->mean);
  nnkit__free(s->invstd);
  s->mean = m;
  s->invstd = v;
  s->cap = batch;
  return NNKIT_OK;
}

static void ln_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  ln_state *s = l->state;
  const size_t n = l->num_params / 2;
  const float *gamma = l->params, *beta = l->params + n;
  for (size_t b = 0; b < batch; b++) {
    const float *xb = x + b * n;
    float *yb = y + b * n;
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++)
      sum += xb[i];
    double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) {
      double d = xb[i] - mean;
      sq += d * d;
    }
    double invstd = 1.0 / sqrt(sq / (double)n + s->eps);
    s->mean[b] = mean;
    s->invstd[b] = invstd;
    for (size_t i = 0; i < n; i++)
      yb[i] = (float)(gamma[i] * ((xb[i] - mean) * invstd) + beta[i]);
  }
}

static void ln_backward(nnkit__layer *l, const float *x, const float *y,
                        const float *dy, float *dx, size_t batch)
{
  (void)y;
  const ln_state *s = l->state;
  const size_t n = l->num_params / 2;
  const float *gamma = l->params;
  float *dgamma = l->grads, *dbeta = l->grads + n;
  for (size_t b = 0; b < batch; b++) {
    const float *xb = x + b * n, *db = dy + b * n;
    const double mean = s->mean[b], invstd = s->invstd[b];
    double sg = 0, sgx = 0;
    for (size_t i = 0; i < n; i++) {
      double xhat = (xb[i] - mean) * invstd;
      double g = (double)db[i] * gamma[i];
      dgamma[i] += (float)(db[i] * xhat);
      dbeta[i] += db[i];
      sg += g;
      sgx += g * xhat;
    }
    if (!dx)
      continue;
    const double mg = sg / (double)n, mgx = sgx / (double)n;
    float *dxb = dx + b * n;
    for (size_t i = 0; i < n; i++) {
      double xhat = (xb[i] - mean) * invstd;
      dxb[i] = (float)(invstd * ((double)db[i] * gamma[i] - mg - xhat * mgx));
    }
  }
}

static void ln_describe(const nnkit__layer *l, char *buf, size_t len)
{
  const ln_state *s = l->state;
  char ins[64];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  snprintf(buf, len, "layernorm %s, eps %g (%zu params)", ins, s->eps, l->num_params);
}

static void ln_destroy(nnkit__layer *l)
{
  ln_state *s = l->state;
  if (!s)
    return;
  nnkit__free(s->mean);
  nnkit__free(s->invstd);
  nnkit__free(s);
  l->state = NULL;
}

NNKIT_API nnkit_status nnkit_net_add_layernorm(nnkit_net *net, double eps)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_layernorm: net is NULL");
  if (!isfinite(eps) || eps <= 0.0 || eps > 1.0)
    return nnkit__err(NNKIT_E_INVALID,
                      "layernorm (layer %zu): eps %g is outside (0, 1] "
                      "(PyTorch's default is 1e-5)", net->num_layers, eps);
  ln_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_layernorm: out of memory");
  s->eps = eps;
  nnkit__layer l = {0};
  l.ops = &nnkit__layernorm_kind;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

/* ---- options and tensors ------------------------------------------------ */

static const nnkit__spec ln_opts[] = {
  {0, NNKIT_LAYER_EPS, "eps", 0, 1, 1e-5, NNKIT_BOUND_LO_OPEN},
};

static void ln_get_opts(const nnkit__layer *l, double *v)
{
  v[0] = ((const ln_state *)l->state)->eps;
}

static nnkit_status ln_set_opt(nnkit__layer *l, int key, double value)
{
  (void)key; /* eps, the only option */
  ((ln_state *)l->state)->eps = value;
  return NNKIT_OK;
}

static nnkit_status ln_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_layernorm(net, v[0]);
}

/* gamma and beta in the sample's shape, as PyTorch's weight and bias. */
static size_t ln_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  size_t n = l->num_params / 2;
  t[0] = (nnkit__tensor){"weight", l->params, l->in.ndim, {0}, NNKIT__ROLE_NORM, NULL};
  t[1] = (nnkit__tensor){"bias", l->params ? l->params + n : NULL, l->in.ndim, {0},
                         NNKIT__ROLE_NORM, NULL};
  for (size_t d = 0; d < l->in.ndim && d < 4; d++)
    t[0].dims[d] = t[1].dims[d] = l->in.d[d];
  return 2;
}

const nnkit__layer_kind nnkit__layernorm_kind = {
  .name = "layernorm",
  .opts = ln_opts,
  .num_opts = 1,
  .get_opts = ln_get_opts,
  .set_opt = ln_set_opt,
  .add = ln_add,
  .tensors = ln_tensors,
  .setup = ln_setup,
  .forward = ln_forward,
  .backward = ln_backward,
  .init = ln_init,
  .describe = ln_describe,
  .destroy = ln_destroy,
  .reserve = ln_reserve,
  .backward_ignores_y = 1,
};
