/* Element-wise activations and the per-sample softmax. Shape-preserving. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__activation_kind; /* below */

/* The layer's kind of activation and leaky ReLU's negative slope. */
typedef struct act_state {
  nnkit_activation act;
  float slope;
} act_state;

static nnkit_activation act_of(const nnkit__layer *l)
{
  return ((const act_state *)l->state)->act;
}

static float slope_of(const nnkit__layer *l)
{
  return ((const act_state *)l->state)->slope;
}

static nnkit_status act_setup(nnkit__layer *l)
{
  l->out = l->in;
  l->num_params = 0;
  return NNKIT_OK;
}

void nnkit__softmax_rows(const float *x, float *y, size_t rows, size_t cols)
{
  for (size_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    float *yr = y + i * cols;
    float m = xr[0];
    for (size_t j = 1; j < cols; j++)
      if (xr[j] > m)
        m = xr[j];
    double s = 0;
    for (size_t j = 0; j < cols; j++) {
      yr[j] = expf(xr[j] - m);
      s += yr[j];
    }
    float inv = (float)(1.0 / s);
    for (size_t j = 0; j < cols; j++)
      yr[j] *= inv;
  }
}

/* The ReLU family, written so the compiler vectorizes them: restrict
 * pointers (the net never passes overlapping buffers) and unconditional
 * loads, so the select becomes a blend instead of a data-dependent branch
 * that mispredicts on half the units. Same results as the plain loops. */
static void relu_forward(const float *restrict x, float *restrict y, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

/* In place (the net's training forward may run ReLU over the previous
 * layer's output, x == y). */
static void relu_inplace(float *restrict y, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float v = y[i];
    y[i] = v > 0.0f ? v : 0.0f;
  }
}

/* From the output: y > 0 exactly where x > 0 (NaN gives 0 in both), and
 * the input may have been overwritten by an in-place forward. */
static void relu_backward(const float *restrict y, const float *restrict dy,
                          float *restrict dx, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    float g = dy[i];
    dx[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

static void leaky_forward(const float *restrict x, float *restrict y, size_t n, float s)
{
  for (size_t i = 0; i < n; i++) {
    float v = x[i];
    y[i] = v > 0.0f ? v : s * v;
  }
}

static void leaky_backward(const float *restrict x, const float *restrict dy,
                           float *restrict dx, size_t n, float s)
{
  for (size_t i = 0; i < n; i++) {
    float g = dy[i];
    dx[i] = x[i] > 0.0f ? g : s * g;
  }
}

/* Element-wise work is split over nnkit's threads in contiguous ranges
 * (softmax by rows). */
typedef struct act_job {
  const nnkit__layer *l;
  const float *x, *y, *dy;
  float *out;
  size_t batch;
} act_job;

static void forward_task(void *ctx, int t, int n)
{
  const act_job *j = ctx;
  size_t cols = nnkit__shape_size(&j->l->in), lo, hi;
  if (act_of(j->l) == NNKIT_ACT_SOFTMAX) {
    nnkit__split(j->batch, t, n, &lo, &hi);
    nnkit__softmax_rows(j->x + lo * cols, j->out + lo * cols, hi - lo, cols);
    return;
  }
  nnkit__split(j->batch * cols, t, n, &lo, &hi);
  const float *x = j->x + lo;
  float *y = j->out + lo;
  size_t m = hi - lo;
  switch (act_of(j->l)) {
  case NNKIT_ACT_RELU:
    if (x == y)
      relu_inplace(y, m);
    else
      relu_forward(x, y, m);
    break;
  case NNKIT_ACT_LEAKY_RELU:
    leaky_forward(x, y, m, slope_of(j->l));
    break;
  case NNKIT_ACT_TANH:
    for (size_t i = 0; i < m; i++)
      y[i] = tanhf(x[i]);
    break;
  case NNKIT_ACT_SIGMOID:
    for (size_t i = 0; i < m; i++)
      y[i] = 1.0f / (1.0f + expf(-x[i]));
    break;
  case NNKIT_ACT_SOFTMAX:
    break;
  }
}

static void backward_task(void *ctx, int t, int n)
{
  const act_job *j = ctx;
  size_t cols = nnkit__shape_size(&j->l->in), lo, hi;
  if (act_of(j->l) == NNKIT_ACT_SOFTMAX) {
    /* dx_j = y_j (dy_j - sum_k dy_k y_k) */
    nnkit__split(j->batch, t, n, &lo, &hi);
    for (size_t r = lo; r < hi; r++) {
      const float *yr = j->y + r * cols, *gr = j->dy + r * cols;
      double dot = 0;
      for (size_t c = 0; c < cols; c++)
        dot += (double)gr[c] * yr[c];
      for (size_t c = 0; c < cols; c++)
        j->out[r * cols + c] = yr[c] * (gr[c] - (float)dot);
    }
    return;
  }
  nnkit__split(j->batch * cols, t, n, &lo, &hi);
  const float *x = j->x + lo, *y = j->y + lo, *dy = j->dy + lo;
  float *dx = j->out + lo;
  size_t m = hi - lo;
  switch (act_of(j->l)) {
  case NNKIT_ACT_RELU:
    relu_backward(y, dy, dx, m);
    break;
  case NNKIT_ACT_LEAKY_RELU:
    leaky_backward(x, dy, dx, m, slope_of(j->l));
    break;
  case NNKIT_ACT_TANH:
    for (size_t i = 0; i < m; i++)
      dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    break;
  case NNKIT_ACT_SIGMOID:
    for (size_t i = 0; i < m; i++)
      dx[i] = dy[i] * y[i] * (1.0f - y[i]);
    break;
  case NNKIT_ACT_SOFTMAX:
    break;
  }
}

static int act_tasks(const nnkit__layer *l, size_t batch)
{
  /* an element costs a fraction of a multiply-add's share of memory
   * traffic; ranges under ~1M elements stay on one thread */
  return nnkit__tasks_for((double)batch * (double)nnkit__shape_size(&l->in) / 10.0);
}

static void act_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  act_job j = {l, x, NULL, NULL, y, batch};
  nnkit__parallel(forward_task, &j, act_tasks(l, batch));
}

static void act_backward(nnkit__layer *l, const float *x, const float *y,
                         const float *dy, float *dx, size_t batch)
{
  if (!dx)
    return;
  act_job j = {l, x, y, dy, dx, batch};
  nnkit__parallel(backward_task, &j, act_tasks(l, batch));
}

const char *nnkit__activation_name(int a)
{
  switch (a) {
  case NNKIT_ACT_RELU: return "relu";
  case NNKIT_ACT_LEAKY_RELU: return "leaky_relu";
  case NNKIT_ACT_TANH: return "tanh";
  case NNKIT_ACT_SIGMOID: return "sigmoid";
  case NNKIT_ACT_SOFTMAX: return "softmax";
  }
  return "?";
}

static void act_describe(const nnkit__layer *l, char *buf, size_t len)
{
  if (act_of(l) == NNKIT_ACT_LEAKY_RELU)
    snprintf(buf, len, "leaky_relu(%g) %zu", (double)slope_of(l),
             nnkit__shape_size(&l->in));
  else
    snprintf(buf, len, "%s %zu", nnkit__activation_name(act_of(l)), nnkit__shape_size(&l->in));
}

static void act_destroy(nnkit__layer *l)
{
  nnkit__free(l->state);
  l->state = NULL;
}

static int act_activation(const nnkit__layer *l, float *slope)
{
  *slope = act_of(l) == NNKIT_ACT_LEAKY_RELU ? slope_of(l) : 0.0f;
  return (int)act_of(l);
}

static nnkit_status add_act(nnkit_net *net, nnkit_activation act, float slope);

NNKIT_API nnkit_status nnkit_net_add_activation(nnkit_net *net,
                                                nnkit_activation act)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_activation: net is NULL");
  if (act < NNKIT_ACT_RELU || act > NNKIT_ACT_SOFTMAX)
    return nnkit__err(NNKIT_E_INVALID,
                      "layer %zu: unknown activation %d; use an NNKIT_ACT_* value",
                      net->num_layers, (int)act);
  return add_act(net, act, 0.01f);
}

NNKIT_API nnkit_status nnkit_net_add_leaky_relu(nnkit_net *net, double slope)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_leaky_relu: net is NULL");
  if (!isfinite(slope) || slope < 0 || slope > 1e6)
    return nnkit__err(NNKIT_E_INVALID,
                      "layer %zu: leaky ReLU slope %g must be finite and in [0, 1e6]",
                      net->num_layers, slope);
  return add_act(net, NNKIT_ACT_LEAKY_RELU, (float)slope);
}

/* Options: the kind and, for leaky ReLU, the slope (settable). */
static const nnkit__spec act_opts[] = {
  {0, NNKIT_LAYER_ACTIVATION, "activation", 1, 5, 1, NNKIT_BOUND_INTEGER},
  {0, NNKIT_LAYER_SLOPE, "slope", 0, 1e6, 0.01, 0},
};

static void act_get_args(const nnkit__layer *l, double *v)
{
  v[0] = (double)act_of(l);
  v[1] = (double)slope_of(l);
}

static nnkit_status act_set_opt(nnkit__layer *l, int key, double value)
{
  if (key == NNKIT_LAYER_SLOPE && act_of(l) == NNKIT_ACT_LEAKY_RELU) {
    ((act_state *)l->state)->slope = (float)value;
    return NNKIT_OK;
  }
  if (key == NNKIT_LAYER_SLOPE)
    return nnkit__err(NNKIT_E_STATE, "%s (layer %zu): only a leaky ReLU has a "
                      "settable slope", nnkit__activation_name(act_of(l)), l->index);
  return nnkit__err(NNKIT_E_STATE, "activation (layer %zu): the kind of activation "
                    "is fixed once the layer is added; add a new layer instead",
                    l->index);
}

static nnkit_status act_add(nnkit_net *net, const double *v)
{
  if (v[0] == NNKIT_ACT_LEAKY_RELU)
    return nnkit_net_add_leaky_relu(net, v[1]);
  return nnkit_net_add_activation(net, v[0] >= 1 && v[0] <= 5 ? (nnkit_activation)v[0]
                                                              : (nnkit_activation)0);
}

const nnkit__layer_kind nnkit__activation_kind = {
  .name = "activation",
  .opts = act_opts,
  .num_opts = 2,
  .get_opts = act_get_args,
  .set_opt = act_set_opt,
  .add = act_add,
  .activation = act_activation,
  .setup = act_setup,
  .fans = NULL,
  .forward = act_forward,
  .backward = act_backward,
  .describe = act_describe,
  .destroy = act_destroy,
  .slice_ok = 1,
};

static nnkit_status add_act(nnkit_net *net, nnkit_activation act, float slope)
{
  act_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_%s: out of memory",
                      act == NNKIT_ACT_LEAKY_RELU ? "leaky_relu" : "activation");
  s->act = act;
  s->slope = slope;
  nnkit__layer l = {0};
  l.ops = &nnkit__activation_kind;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}
