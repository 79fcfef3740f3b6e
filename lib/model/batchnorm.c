/* Batch normalization, per channel of [C, H, W] feature maps (BatchNorm2d)
 * or per feature of any other sample shape (BatchNorm1d).
 *
 *   x [B, C, S] (S = H W, or 1 per feature)   gamma [C], beta [C]
 *   y = gamma (x - mean) * invstd + beta,  invstd = 1 / sqrt(var + eps)
 *
 * Training mode: mean and biased var over the B S values of each channel;
 * running_mean/var move towards them with PyTorch's convention
 *   running = (1 - momentum) running + momentum batch
 * where the batch variance fed to the running average is the unbiased one
 * (times n / (n - 1), n = B S; n = 1 feeds the biased 0).
 * Evaluation mode: mean/var are the running statistics.
 *
 * Backward, training mode (xhat = (x - mean) invstd, sums over b and s):
 *   dgamma += sum(dy xhat),  dbeta += sum(dy),
 *   dx = gamma invstd (dy - sum(dy) / n - xhat sum(dy xhat) / n).
 * Evaluation mode: the statistics are constants, dx = gamma invstd dy.
 * Per-channel vectors are sized at add time; nothing depends on the batch. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__batchnorm_kind; /* below */

typedef struct bn_state {
  double momentum, eps;
  size_t channels;    /* C */
  size_t spatial;     /* S: values per channel in one sample */
  float *run_mean;    /* [C] */
  float *run_var;     /* [C] */
  float *mean;        /* [C] statistics used by the last forward */
  float *invstd;      /* [C] */
  double *acc1, *acc2;/* [C] scratch sums */
  int fwd_training;   /* mode of the last forward */
} bn_state;

/* Row reductions with eight float lanes (vectorizable without reordering
 * a serial sum) folded into a double: rows are one channel of one sample,
 * short enough for float partial sums. */
#define LANES 8

static double row_sum(const float *x, size_t n)
{
  float a[LANES] = {0};
  size_t k = 0;
  for (; k + LANES <= n; k += LANES)
    for (size_t q = 0; q < LANES; q++)
      a[q] += x[k + q];
  double s = 0;
  for (; k < n; k++)
    s += x[k];
  for (size_t q = 0; q < LANES; q++)
    s += a[q];
  return s;
}

/* sum (x - m)^2 */
static double row_sqdev(const float *x, size_t n, float m)
{
  float a[LANES] = {0};
  size_t k = 0;
  for (; k + LANES <= n; k += LANES)
    for (size_t q = 0; q < LANES; q++) {
      float d = x[k + q] - m;
      a[q] += d * d;
    }
  double s = 0;
  for (; k < n; k++)
    s += ((double)x[k] - m) * ((double)x[k] - m);
  for (size_t q = 0; q < LANES; q++)
    s += a[q];
  return s;
}

/* *s1 = sum g, *s2 = sum g (x - m) is */
static void row_grad_sums(const float *g, const float *x, size_t n, float m,
                          float is, double *s1, double *s2)
{
  float a[LANES] = {0}, b[LANES] = {0};
  size_t k = 0;
  for (; k + LANES <= n; k += LANES)
    for (size_t q = 0; q < LANES; q++) {
      a[q] += g[k + q];
      b[q] += g[k + q] * ((x[k + q] - m) * is);
    }
  double t1 = 0, t2 = 0;
  for (; k < n; k++) {
    t1 += g[k];
    t2 += (double)g[k] * ((x[k] - m) * is);
  }
  for (size_t q = 0; q < LANES; q++) {
    t1 += a[q];
    t2 += b[q];
  }
  *s1 = t1;
  *s2 = t2;
}

static void bn_free_vectors(bn_state *s)
{
  nnkit__free(s->run_mean);
  nnkit__free(s->run_var);
  nnkit__free(s->mean);
  nnkit__free(s->invstd);
  nnkit__free(s->acc1);
  nnkit__free(s->acc2);
  s->run_mean = s->run_var = s->mean = s->invstd = NULL;
  s->acc1 = s->acc2 = NULL;
}

static nnkit_status bn_setup(nnkit__layer *l)
{
  bn_state *s = l->state;
  size_t n = nnkit__shape_size(&l->in);
  if (l->in.ndim == 3) {
    s->channels = l->in.d[0];
    s->spatial = l->in.d[1] * l->in.d[2];
  } else {
    s->channels = n;
    s->spatial = 1;
  }
  size_t C = s->channels;
  s->run_mean = nnkit__calloc(C, sizeof(float));
  s->run_var = nnkit__malloc(C * sizeof(float));
  s->mean = nnkit__calloc(C, sizeof(float));
  s->invstd = nnkit__calloc(C, sizeof(float));
  s->acc1 = nnkit__calloc(C, sizeof(double));
  s->acc2 = nnkit__calloc(C, sizeof(double));
  if (!s->run_mean || !s->run_var || !s->mean || !s->invstd || !s->acc1 || !s->acc2) {
    bn_free_vectors(s);
    return nnkit__err(NNKIT_E_NOMEM, "batchnorm (layer %zu): out of memory", l->index);
  }
  for (size_t c = 0; c < C; c++)
    s->run_var[c] = 1.0f;
  l->out = l->in;
  l->num_params = 2 * C;
  return NNKIT_OK;
}

static void bn_init(nnkit__layer *l)
{
  const bn_state *s = l->state;
  for (size_t c = 0; c < s->channels; c++) {
    l->params[c] = 1.0f;
    l->params[s->channels + c] = 0.0f;
  }
}

/* Channels are independent: forward and backward split them over the
 * pool's threads (task t takes channels [lo, hi)), each channel's sums
 * running over the batch in the same order whatever the split, so the
 * results do not depend on the thread count. */
typedef struct bn_job {
  nnkit__layer *l;
  const float *x, *dy;
  float *y, *dx;
  size_t batch;
} bn_job;

static int bn_tasks(const nnkit__layer *l, size_t batch)
{
  const bn_state *s = l->state;
  /* about 4 passes over the batch's values */
  return nnkit__tasks_for(4.0 * (double)batch * (double)(s->channels * s->spatial));
}

static void bn_forward_task(void *ctx, int t, int nt)
{
  const bn_job *j = ctx;
  nnkit__layer *l = j->l;
  bn_state *s = l->state;
  const size_t C = s->channels, S = s->spatial, batch = j->batch, n = batch * S;
  const float *gamma = l->params, *beta = l->params + C, *x = j->x;
  size_t lo, hi;
  nnkit__split(C, t, nt, &lo, &hi);
  if (l->training) {
    for (size_t c = lo; c < hi; c++)
      s->acc1[c] = s->acc2[c] = 0.0;
    for (size_t b = 0; b < batch; b++)
      for (size_t c = lo; c < hi; c++)
        s->acc1[c] += row_sum(x + (b * C + c) * S, S);
    for (size_t c = lo; c < hi; c++) {
      s->acc1[c] /= (double)n;
      s->mean[c] = (float)s->acc1[c];
    }
    /* two-pass variance around the (float) mean */
    for (size_t b = 0; b < batch; b++)
      for (size_t c = lo; c < hi; c++)
        s->acc2[c] += row_sqdev(x + (b * C + c) * S, S, s->mean[c]);
    const double mo = s->momentum;
    for (size_t c = lo; c < hi; c++) {
      double mean = s->mean[c], var = s->acc2[c] / (double)n;
      double unbiased = n > 1 ? var * (double)n / (double)(n - 1) : var;
      s->mean[c] = (float)mean;
      s->invstd[c] = (float)(1.0 / sqrt(var + s->eps));
      s->run_mean[c] = (float)((1.0 - mo) * s->run_mean[c] + mo * mean);
      s->run_var[c] = (float)((1.0 - mo) * s->run_var[c] + mo * unbiased);
    }
  } else {
    for (size_t c = lo; c < hi; c++) {
      s->mean[c] = s->run_mean[c];
      s->invstd[c] = (float)(1.0 / sqrt((double)s->run_var[c] + s->eps));
    }
  }
  for (size_t b = 0; b < batch; b++)
    for (size_t c = lo; c < hi; c++) {
      const float *xc = x + (b * C + c) * S;
      float *yc = j->y + (b * C + c) * S;
      float scale = gamma[c] * s->invstd[c], m = s->mean[c], sh = beta[c];
      for (size_t k = 0; k < S; k++)
        yc[k] = (xc[k] - m) * scale + sh;
    }
}

static void bn_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  bn_state *s = l->state;
  s->fwd_training = l->training;
  bn_job j = {l, x, NULL, y, NULL, batch};
  nnkit__parallel(bn_forward_task, &j, bn_tasks(l, batch));
}

static void bn_backward_task(void *ctx, int t, int nt)
{
  const bn_job *j = ctx;
  nnkit__layer *l = j->l;
  bn_state *s = l->state;
  const size_t C = s->channels, S = s->spatial, batch = j->batch, n = batch * S;
  const float *gamma = l->params, *x = j->x, *dy = j->dy;
  float *dgamma = l->grads, *dbeta = l->grads + C;
  size_t lo, hi;
  nnkit__split(C, t, nt, &lo, &hi);
  /* acc1 = sum(dy), acc2 = sum(dy xhat) per channel */
  for (size_t c = lo; c < hi; c++)
    s->acc1[c] = s->acc2[c] = 0.0;
  for (size_t b = 0; b < batch; b++)
    for (size_t c = lo; c < hi; c++) {
      double s1, s2;
      row_grad_sums(dy + (b * C + c) * S, x + (b * C + c) * S, S, s->mean[c],
                    s->invstd[c], &s1, &s2);
      s->acc1[c] += s1;
      s->acc2[c] += s2;
    }
  for (size_t c = lo; c < hi; c++) {
    dgamma[c] += (float)s->acc2[c];
    dbeta[c] += (float)s->acc1[c];
  }
  if (!j->dx)
    return;
  for (size_t b = 0; b < batch; b++)
    for (size_t c = lo; c < hi; c++) {
      const float *xc = x + (b * C + c) * S, *gc = dy + (b * C + c) * S;
      float *dc = j->dx + (b * C + c) * S;
      float m = s->mean[c], is = s->invstd[c], k1 = gamma[c] * is;
      if (s->fwd_training) {
        float mdy = (float)(s->acc1[c] / (double)n);
        float mdyx = (float)(s->acc2[c] / (double)n);
        for (size_t k = 0; k < S; k++)
          dc[k] = k1 * (gc[k] - mdy - (xc[k] - m) * is * mdyx);
      } else {
        for (size_t k = 0; k < S; k++)
          dc[k] = k1 * gc[k];
      }
    }
}

static void bn_backward(nnkit__layer *l, const float *x, const float *y,
                        const float *dy, float *dx, size_t batch)
{
  (void)y;
  bn_job j = {l, x, dy, NULL, dx, batch};
  nnkit__parallel(bn_backward_task, &j, bn_tasks(l, batch));
}

static void bn_describe(const nnkit__layer *l, char *buf, size_t len)
{
  const bn_state *s = l->state;
  if (l->in.ndim == 3)
    snprintf(buf, len,
             "batchnorm %zu channels of %zux%zu, momentum %g, eps %g (%zu params)",
             s->channels, l->in.d[1], l->in.d[2], s->momentum, s->eps, l->num_params);
  else
    snprintf(buf, len, "batchnorm %zu features, momentum %g, eps %g (%zu params)",
             s->channels, s->momentum, s->eps, l->num_params);
}

static void bn_destroy(nnkit__layer *l)
{
  bn_state *s = l->state;
  if (!s)
    return;
  bn_free_vectors(s);
  nnkit__free(s);
  l->state = NULL;
}


NNKIT_API nnkit_status nnkit_net_add_batchnorm(nnkit_net *net, double momentum,
                                               double eps)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_batchnorm: net is NULL");
  if (!isfinite(momentum) || momentum < 0.0 || momentum > 1.0)
    return nnkit__err(NNKIT_E_INVALID,
                      "batchnorm (layer %zu): momentum %g is outside [0, 1] "
                      "(PyTorch's default is 0.1)", net->num_layers, momentum);
  if (!isfinite(eps) || eps <= 0.0 || eps > 1.0)
    return nnkit__err(NNKIT_E_INVALID,
                      "batchnorm (layer %zu): eps %g is outside (0, 1] "
                      "(PyTorch's default is 1e-5)", net->num_layers, eps);
  bn_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_batchnorm: out of memory");
  s->momentum = momentum;
  s->eps = eps;
  nnkit__layer l = {0};
  l.ops = &nnkit__batchnorm_kind;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

/* The batch-norm state of layer `layer`, or NULL with an error recorded. */
static bn_state *find_bn(const nnkit_net *net, size_t layer, const char *fn)
{
  if (layer >= net->num_layers) {
    nnkit__err(NNKIT_E_INVALID, "%s: layer %zu does not exist (the net has %zu)", fn,
               layer, net->num_layers);
    return NULL;
  }
  const nnkit__layer *l = &net->layers[layer];
  if (l->ops != &nnkit__batchnorm_kind) {
    nnkit__err(NNKIT_E_INVALID, "%s: layer %zu is a %s layer, not batch normalization",
               fn, layer, l->ops->name);
    return NULL;
  }
  return l->state;
}

NNKIT_API nnkit_status nnkit_net_batchnorm_stats(float *mean_out, float *var_out,
                                                 size_t len, const nnkit_net *net,
                                                 size_t layer)
{
  const char *fn = "nnkit_net_batchnorm_stats";
  if (!mean_out || !var_out || !net)
    return nnkit__err(NNKIT_E_INVALID, "%s: NULL argument", fn);
  bn_state *s = find_bn(net, layer, fn);
  if (!s)
    return NNKIT_E_INVALID;
  if (len < s->channels)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: the buffers hold %zu floats, layer %zu has %zu channels", fn,
                      len, layer, s->channels);
  memcpy(mean_out, s->run_mean, s->channels * sizeof(float));
  memcpy(var_out, s->run_var, s->channels * sizeof(float));
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_set_batchnorm_stats(nnkit_net *net, size_t layer,
                                                     const float *mean,
                                                     const float *var, size_t len)
{
  const char *fn = "nnkit_net_set_batchnorm_stats";
  if (!mean || !var || !net)
    return nnkit__err(NNKIT_E_INVALID, "%s: NULL argument", fn);
  bn_state *s = find_bn(net, layer, fn);
  if (!s)
    return NNKIT_E_INVALID;
  if (len != s->channels)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: got %zu values, layer %zu has %zu channels", fn, len, layer,
                      s->channels);
  for (size_t c = 0; c < len; c++)
    if (!isfinite(mean[c]) || !isfinite(var[c]) || var[c] < 0.0f)
      return nnkit__err(NNKIT_E_INVALID,
                        "%s: channel %zu has mean %g and variance %g; both must be "
                        "finite and the variance >= 0",
                        fn, c, (double)mean[c], (double)var[c]);
  memcpy(s->run_mean, mean, len * sizeof(float));
  memcpy(s->run_var, var, len * sizeof(float));
  return NNKIT_OK;
}

/* Model files: momentum and eps; tensors named as PyTorch's BatchNorm
 * names them (gamma is "weight", beta "bias"), then the running stats. */

static void bn_get_args(const nnkit__layer *l, double *v)
{
  const bn_state *s = l->state;
  v[0] = s->momentum;
  v[1] = s->eps;
}

static nnkit_status bn_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_batchnorm(net, v[0], v[1]);
}

static nnkit_status bn_set_opt(nnkit__layer *l, int key, double value)
{
  bn_state *s = l->state;
  if (key == NNKIT_LAYER_MOMENTUM)
    s->momentum = value;
  else
    s->eps = value;
  return NNKIT_OK;
}

static size_t bn_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  bn_state *s = l->state;
  size_t C = s->channels;
  t[0] = (nnkit__tensor){"weight", l->params, 1, {C}, NNKIT__ROLE_NORM, NULL};
  t[1] = (nnkit__tensor){"bias", l->params + C, 1, {C}, NNKIT__ROLE_NORM, NULL};
  t[2] = (nnkit__tensor){"running_mean", s->run_mean, 1, {C}, NNKIT__ROLE_STATE, NULL};
  t[3] = (nnkit__tensor){"running_var", s->run_var, 1, {C}, NNKIT__ROLE_STATE, NULL};
  return 4;
}

/* ---- the descriptor ---- */

static const nnkit__spec bn_opts[] = {
  {0, NNKIT_LAYER_MOMENTUM, "momentum", 0, 1, 0.1, 0},
  {0, NNKIT_LAYER_EPS, "eps", 0, 1, 1e-5, NNKIT_BOUND_LO_OPEN},
};

const nnkit__layer_kind nnkit__batchnorm_kind = {
  .name = "batchnorm",
  .opts = bn_opts,
  .num_opts = 2,
  .get_opts = bn_get_args,
  .set_opt = bn_set_opt,
  .add = bn_add,
  .tensors = bn_tensors,
  .setup = bn_setup,
  .fans = NULL,
  .forward = bn_forward,
  .backward = bn_backward,
  .init = bn_init,
  .describe = bn_describe,
  .destroy = bn_destroy,
  .reserve = NULL,
  .backward_ignores_y = 1,
};

