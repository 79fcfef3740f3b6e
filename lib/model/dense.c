/* Fully connected layer: y[B, out] = x[B, in] W[out, in]^T + b[out].
 * Parameters: W (row-major, PyTorch's layout) then b. */
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "internal.h"

static nnkit_status dense_setup(nnkit__layer *l)
{
  size_t in = nnkit__shape_size(&l->in);
  int ovf = 0;
  size_t w = nnkit__mul_size(in, l->units, &ovf);
  if (ovf || w > ((size_t)1 << 31))
    return nnkit__err(NNKIT_E_SHAPE,
                      "dense %zu -> %zu: %zu x %zu weights are too many (limit 2^31)",
                      in, l->units, l->units, in);
  l->out.ndim = 1;
  l->out.d[0] = l->units;
  l->num_params = w + l->units;
  return NNKIT_OK;
}

static void dense_fans(const nnkit__layer *l, size_t *fan_in, size_t *fan_out,
                       size_t *num_weights)
{
  *fan_in = nnkit__shape_size(&l->in);
  *fan_out = l->units;
  *num_weights = *fan_in * l->units;
}

static void dense_forward(nnkit__layer *l, const float *x, float *y,
                          size_t batch)
{
  size_t in = nnkit__shape_size(&l->in), out = l->units;
  const float *w = l->params, *b = l->params + in * out;
  for (size_t i = 0; i < batch; i++)
    memcpy(y + i * out, b, out * sizeof *y);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)batch, (int)out,
              (int)in, 1.0f, x, (int)in, w, (int)in, 1.0f, y, (int)out);
}

static void dense_backward(nnkit__layer *l, const float *x, const float *y,
                           const float *dy, float *dx, size_t batch)
{
  (void)y;
  size_t in = nnkit__shape_size(&l->in), out = l->units;
  const float *w = l->params;
  float *dw = l->grads, *db = l->grads + in * out;
  /* dW[out, in] += dY^T[out, B] X[B, in] */
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in,
              (int)batch, 1.0f, dy, (int)out, x, (int)in, 1.0f, dw, (int)in);
  for (size_t i = 0; i < batch; i++) {
    const float *r = dy + i * out;
    for (size_t j = 0; j < out; j++)
      db[j] += r[j];
  }
  /* dX[B, in] = dY[B, out] W[out, in] */
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)batch, (int)in,
                (int)out, 1.0f, dy, (int)out, w, (int)in, 0.0f, dx, (int)in);
}

static void dense_describe(const nnkit__layer *l, char *buf, size_t len)
{
  snprintf(buf, len, "dense %zu -> %zu (%zu params)", nnkit__shape_size(&l->in),
           l->units, l->num_params);
}

const nnkit__layer_ops nnkit__dense_ops = {
  .name = "dense",
  .setup = dense_setup,
  .fans = dense_fans,
  .forward = dense_forward,
  .backward = dense_backward,
  .describe = dense_describe,
  .destroy = NULL,
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
