/* Element-wise activations and the per-sample softmax. Shape-preserving. */
#include <math.h>
#include <stdio.h>

#include "internal.h"

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
  if (j->l->act == NNKIT_ACT_SOFTMAX) {
    nnkit__split(j->batch, t, n, &lo, &hi);
    nnkit__softmax_rows(j->x + lo * cols, j->out + lo * cols, hi - lo, cols);
    return;
  }
  nnkit__split(j->batch * cols, t, n, &lo, &hi);
  const float *x = j->x + lo;
  float *y = j->out + lo;
  size_t m = hi - lo;
  switch (j->l->act) {
  case NNKIT_ACT_RELU:
    if (x == y)
      relu_inplace(y, m);
    else
      relu_forward(x, y, m);
    break;
  case NNKIT_ACT_LEAKY_RELU:
    leaky_forward(x, y, m, j->l->slope);
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
  if (j->l->act == NNKIT_ACT_SOFTMAX) {
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
  switch (j->l->act) {
  case NNKIT_ACT_RELU:
    relu_backward(y, dy, dx, m);
    break;
  case NNKIT_ACT_LEAKY_RELU:
    leaky_backward(x, dy, dx, m, j->l->slope);
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

static const char *act_name(nnkit_activation a)
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
  if (l->act == NNKIT_ACT_LEAKY_RELU)
    snprintf(buf, len, "leaky_relu(%g) %zu", (double)l->slope,
             nnkit__shape_size(&l->in));
  else
    snprintf(buf, len, "%s %zu", act_name(l->act), nnkit__shape_size(&l->in));
}

const nnkit__layer_ops nnkit__activation_ops = {
  .name = "activation",
  .setup = act_setup,
  .fans = NULL,
  .forward = act_forward,
  .backward = act_backward,
  .describe = act_describe,
  .destroy = NULL,
  .slice_ok = 1,
};

/* Model files: the kind and, for leaky ReLU, the slope. */
static const char *const act_args[] = {"activation", "slope", NULL};

static void act_get_args(const nnkit__layer *l, double *v)
{
  v[0] = (double)l->act;
  v[1] = (double)l->slope;
}

static nnkit_status act_add(nnkit_net *net, const double *v)
{
  if (v[0] == NNKIT_ACT_LEAKY_RELU)
    return nnkit_net_add_leaky_relu(net, (float)v[1]);
  return nnkit_net_add_activation(net, v[0] >= 1 && v[0] <= 5 ? (nnkit_activation)v[0]
                                                              : (nnkit_activation)0);
}

const nnkit__layer_io nnkit__activation_io = {
  &nnkit__activation_ops, act_args, 1u << 1, act_get_args, act_add, NULL,
};
