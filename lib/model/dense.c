/* Fully connected layer: y[B, out] = x[B, in] W[out, in]^T + b[out].
 * Parameters: W (row-major, PyTorch's layout) then b. The products run
 * through nnkit__gemm (gemm.c) with one packing workspace per thread,
 * owned by the layer and sized by reserve; without one (a batch larger
 * than reserved, or out of memory) they fall back to cblas_sgemm. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__dense_kind; /* below */

typedef struct dense_state {
  size_t units;     /* outputs */
  size_t last_batch; /* the largest forward batch so far (profiles) */
  int last_dx;       /* 1: the last backward computed dx */
  int nws;          /* per-thread workspaces */
  size_t ws_floats; /* floats in each */
  float **ws;
} dense_state;

static void free_ws(dense_state *s)
{
  for (int t = 0; t < s->nws; t++)
    nnkit__free(s->ws[t]);
  nnkit__free(s->ws);
  s->ws = NULL;
  s->nws = 0;
  s->ws_floats = 0;
}

static void dense_destroy(nnkit__layer *l)
{
  dense_state *s = l->state;
  if (!s)
    return;
  free_ws(s);
  nnkit__free(s);
  l->state = NULL;
}

static size_t units_of(const nnkit__layer *l)
{
  return ((const dense_state *)l->state)->units;
}

/* Workspace floats for the three products of a batch of `batch`. */
static size_t dense_ws_need(const nnkit__layer *l, size_t batch)
{
  size_t in = nnkit__shape_size(&l->in), out = units_of(l);
  size_t a = nnkit__gemm_ws_floats(batch, in);  /* forward: M = batch, K = in */
  size_t b = nnkit__gemm_ws_floats(out, batch); /* dW: M = out, K = batch */
  size_t c = nnkit__gemm_ws_floats(batch, out); /* dX: M = batch, K = out */
  size_t m = a > b ? a : b;
  return m > c ? m : c;
}

static nnkit_status dense_reserve(nnkit__layer *l, size_t batch)
{
  if (!nnkit__gemm_fast())
    return NNKIT_OK; /* cblas_sgemm packs for itself */
  int n = nnkit__num_threads();
  size_t need = dense_ws_need(l, batch);
  dense_state *s = l->state;
  if (s->nws >= n && s->ws_floats >= need)
    return NNKIT_OK;
  free_ws(s);
  s->ws = nnkit__calloc((size_t)n, sizeof *s->ws);
  int ok = s->ws != NULL;
  for (int t = 0; ok && t < n; t++) {
    s->ws[t] = nnkit__malloc(need * sizeof(float));
    ok = s->ws[t] != NULL;
    s->nws = t + 1;
  }
  s->ws_floats = need;
  if (!ok) {
    free_ws(s);
    return nnkit__err(NNKIT_E_NOMEM,
                      "dense (layer %zu): out of memory for %d GEMM workspaces of %zu "
                      "KB",
                      l->index, n, need * sizeof(float) / 1024);
  }
  return NNKIT_OK;
}

/* This thread's workspace for products of up to `need` floats, or NULL
 * (cblas_sgemm). */
static float *dense_ws(const nnkit__layer *l, size_t need)
{
  const dense_state *s = l->state;
  int slot = nnkit__task_slot();
  if (slot >= s->nws || need > s->ws_floats)
    return NULL;
  return s->ws[slot];
}

static nnkit_status dense_setup(nnkit__layer *l)
{
  size_t in = nnkit__shape_size(&l->in);
  int ovf = 0;
  size_t w = nnkit__mul_size(in, units_of(l), &ovf);
  if (ovf || w > ((size_t)1 << 31))
    return nnkit__err(NNKIT_E_SHAPE,
                      "dense %zu -> %zu: %zu x %zu weights are too many (limit 2^31)",
                      in, units_of(l), units_of(l), in);
  l->out.ndim = 1;
  l->out.d[0] = units_of(l);
  l->num_params = w + units_of(l);
  return NNKIT_OK;
}

static void dense_fans(const nnkit__layer *l, size_t *fan_in, size_t *fan_out,
                       size_t *num_weights)
{
  *fan_in = nnkit__shape_size(&l->in);
  *fan_out = units_of(l);
  *num_weights = *fan_in * units_of(l);
}

/* The GEMMs are split over nnkit's threads by the dimension whose operand
 * is largest, so no thread packs another's share of the weights: forward
 * and dW/db by output units, dX by input units. Every part is a
 * single-threaded sgemm on its own block, so no partial sums are needed. */
typedef struct dense_job {
  nnkit__layer *l;
  const float *x, *dy;
  float *y, *dx;
  size_t batch;
} dense_job;

static void forward_task(void *ctx, int t, int n)
{
  const dense_job *j = ctx;
  size_t in = nnkit__shape_size(&j->l->in), out = units_of(j->l), lo, hi;
  const float *w = j->l->params, *b = j->l->params + in * out;
  nnkit__split(out, t, n, &lo, &hi);
  if (hi == lo)
    return;
  /* Y[:, lo:hi] = X W[lo:hi, :]^T + b[lo:hi] */
  nnkit__gemm(NNKIT__GEMM_NT, j->batch, hi - lo, in, j->x, in, w + lo * in, in, 0.0f,
              j->y + lo, out, b + lo,
              dense_ws(j->l, nnkit__gemm_ws_floats(j->batch, in)));
}

static void backward_task(void *ctx, int t, int n)
{
  const dense_job *j = ctx;
  size_t in = nnkit__shape_size(&j->l->in), out = units_of(j->l), batch = j->batch, lo, hi;
  const float *w = j->l->params;
  float *dw = j->l->grads, *db = j->l->grads + in * out;
  /* dW[out, in] = dY^T[out, B] X[B, in], rows [lo, hi) of dW (written, not
   * added: grads_overwrite) */
  nnkit__split(out, t, n, &lo, &hi);
  if (hi > lo) {
    nnkit__gemm(NNKIT__GEMM_TN, hi - lo, in, batch, j->dy + lo, out, j->x, in, 0.0f,
                dw + lo * in, in, NULL,
                dense_ws(j->l, nnkit__gemm_ws_floats(hi - lo, batch)));
    memset(db + lo, 0, (hi - lo) * sizeof(float));
    for (size_t i = 0; i < batch; i++) {
      const float *r = j->dy + i * out;
      for (size_t u = lo; u < hi; u++)
        db[u] += r[u];
    }
  }
  /* dX[B, in] = dY[B, out] W[out, in], input columns [lo, hi) */
  nnkit__split(in, t, n, &lo, &hi);
  if (j->dx && hi > lo)
    nnkit__gemm(NNKIT__GEMM_NN, batch, hi - lo, out, j->dy, out, w + lo, in, 0.0f,
                j->dx + lo, in, NULL, dense_ws(j->l, nnkit__gemm_ws_floats(batch, out)));
}

static int dense_tasks(const nnkit__layer *l, size_t batch)
{
  return nnkit__tasks_for((double)batch * (double)nnkit__shape_size(&l->in) *
                          (double)units_of(l));
}

static void dense_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  dense_state *s = l->state;
  if (batch > s->last_batch) /* the profile names the full batch's products */
    s->last_batch = batch;
  dense_job j = {l, x, NULL, y, NULL, batch};
  nnkit__parallel(forward_task, &j, dense_tasks(l, batch));
}

static void dense_backward(nnkit__layer *l, const float *x, const float *y,
                           const float *dy, float *dx, size_t batch)
{
  (void)y;
  ((dense_state *)l->state)->last_dx = dx != NULL;
  dense_job j = {l, x, dy, NULL, dx, batch};
  nnkit__parallel(backward_task, &j, dense_tasks(l, batch));
}

static double dense_macs(const nnkit__layer *l)
{
  return (double)nnkit__shape_size(&l->in) * (double)units_of(l);
}

/* The kernels of the first task's share of the largest batch's products. */
static void dense_kernel(const nnkit__layer *l, char *buf, size_t len)
{
  size_t in = nnkit__shape_size(&l->in), out = units_of(l);
  size_t batch = ((const dense_state *)l->state)->last_batch, lo, hi, lo2, hi2, n = 0;
  int tasks = nnkit__num_threads(), most = dense_tasks(l, batch);
  if (tasks > most)
    tasks = most;
  nnkit__split(out, 0, tasks, &lo, &hi);
  nnkit__split(in, 0, tasks, &lo2, &hi2);
  const struct {
    const char *what;
    nnkit__gemm_form form;
    size_t m, n, k;
  } p[3] = {{"fwd", NNKIT__GEMM_NT, batch, hi - lo, in},
            {"dW", NNKIT__GEMM_TN, hi - lo, in, batch},
            {"dX", NNKIT__GEMM_NN, batch, hi2 - lo2, out}};
  if (len)
    buf[0] = '\0';
  int parts = ((const dense_state *)l->state)->last_dx ? 3 : 2; /* no dX: first layer */
  for (int i = 0; i < parts && batch && n < len; i++) {
    char why[128];
    nnkit__gemm_explain(why, sizeof why, p[i].form, p[i].m, p[i].n, p[i].k);
    int w = snprintf(buf + n, len - n, "%s%s %zux%zux%zu: %s", i ? "; " : "", p[i].what,
                     p[i].m, p[i].n, p[i].k, why);
    n += w > 0 ? (size_t)w : 0;
  }
}

static void dense_describe(const nnkit__layer *l, char *buf, size_t len)
{
  snprintf(buf, len, "dense %zu -> %zu (%zu params)", nnkit__shape_size(&l->in),
           units_of(l), l->num_params);
}

static const nnkit__spec dense_opts[] = {
  {0, NNKIT_LAYER_UNITS, "units", 1, 16777216, 1, NNKIT_BOUND_INTEGER},
};

static size_t dense_tensors(nnkit__layer *l, nnkit__tensor *t);
static void dense_get_args(const nnkit__layer *l, double *v);
static nnkit_status dense_add(nnkit_net *net, const double *v);

const nnkit__layer_kind nnkit__dense_kind = {
  .name = "dense",
  .opts = dense_opts,
  .num_opts = 1,
  .get_opts = dense_get_args,
  .add = dense_add,
  .tensors = dense_tensors,
  .setup = dense_setup,
  .fans = dense_fans,
  .forward = dense_forward,
  .backward = dense_backward,
  .describe = dense_describe,
  .destroy = dense_destroy,
  .reserve = dense_reserve,
  .macs = dense_macs,
  .kernel = dense_kernel,
  .grads_overwrite = 1,
  .backward_ignores_y = 1,
};

/* Plain-loop twins of the BLAS path, for the tests. */
void nnkit__dense_forward_naive(const float *x, const float *w, const float *b,
                                float *y, size_t batch, size_t in, size_t out)
{
  for (size_t i = 0; i < batch; i++)
    for (size_t j = 0; j < out; j++) {
      double s = b[j];
      for (size_t k = 0; k < in; k++)
        s += (double)x[i * in + k] * w[j * in + k];
      y[i * out + j] = (float)s;
    }
}

void nnkit__dense_backward_naive(const float *x, const float *w,
                                 const float *dy, float *dx, float *dw,
                                 float *db, size_t batch, size_t in, size_t out)
{
  for (size_t j = 0; j < out; j++) {
    double sb = 0;
    for (size_t i = 0; i < batch; i++)
      sb += dy[i * out + j];
    db[j] = (float)sb;
    for (size_t k = 0; k < in; k++) {
      double s = 0;
      for (size_t i = 0; i < batch; i++)
        s += (double)dy[i * out + j] * x[i * in + k];
      dw[j * in + k] = (float)s;
    }
  }
  for (size_t i = 0; i < batch; i++)
    for (size_t k = 0; k < in; k++) {
      double s = 0;
      for (size_t j = 0; j < out; j++)
        s += (double)dy[i * out + j] * w[j * in + k];
      dx[i * in + k] = (float)s;
    }
}

/* ---- dense: weight [units, in] (PyTorch's layout, as stored), bias ------ */

NNKIT_API nnkit_status nnkit_net_add_dense(nnkit_net *net, size_t units)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_dense: net is NULL");
  if (units == 0 || units > ((size_t)1 << 24))
    return nnkit__err(NNKIT_E_INVALID,
                      "dense layer %zu: %zu units is outside [1, 2^24]",
                      net->num_layers, units);
  dense_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_dense: out of memory");
  s->units = units;
  nnkit__layer l = {0};
  l.ops = &nnkit__dense_kind;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

static void dense_get_args(const nnkit__layer *l, double *v)
{
  v[0] = (double)units_of(l);
}

static nnkit_status dense_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_dense(net, nnkit__arg_size(v[0]));
}

static size_t dense_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  size_t in = nnkit__shape_size(&l->in);
  size_t u = units_of(l);
  t[0] = (nnkit__tensor){"weight", l->params, 2, {u, in}, NNKIT__ROLE_WEIGHT, NULL};
  t[1] = (nnkit__tensor){"bias", l->params + u * in, 1, {u}, NNKIT__ROLE_BIAS, NULL};
  return 2;
}

