/* Losses on the net's output: each returns the batch-mean loss and writes
 * d(mean loss)/d(input). */
#include <math.h>

#include "internal.h"

double nnkit__softmax_ce(const float *logits, const int32_t *labels,
                         float *grad, size_t batch, size_t classes)
{
  /* loss_i = logsumexp(z_i) - z_i[y_i]; grad = (softmax(z) - onehot) / B */
  double total = 0;
  float invb = 1.0f / (float)batch;
  for (size_t i = 0; i < batch; i++) {
    const float *z = logits + i * classes;
    float *g = grad + i * classes;
    float m = z[0];
    for (size_t j = 1; j < classes; j++)
      if (z[j] > m)
        m = z[j];
    double s = 0;
    for (size_t j = 0; j < classes; j++) {
      float e = expf(z[j] - m);
      g[j] = e;
      s += e;
    }
    double lse = (double)m + log(s);
    total += lse - (double)z[labels[i]];
    float inv = (float)(1.0 / s) * invb;
    for (size_t j = 0; j < classes; j++)
      g[j] *= inv;
    g[labels[i]] -= invb;
  }
  return total / (double)batch;
}

double nnkit__mse(const float *y, const float *targets, const int32_t *labels,
                  float *grad, size_t batch, size_t n)
{
  double total = 0;
  float scale = 2.0f / (float)(batch * n);
  for (size_t i = 0; i < batch; i++)
    for (size_t j = 0; j < n; j++) {
      float t = targets ? targets[i * n + j]
                        : (labels[i] == (int32_t)j ? 1.0f : 0.0f);
      float d = y[i * n + j] - t;
      total += (double)d * d;
      grad[i * n + j] = scale * d;
    }
  return total / (double)(batch * n);
}
