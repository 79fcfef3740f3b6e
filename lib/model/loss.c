/* Losses on the net's output: each returns the batch-mean loss and writes
 * d(mean loss)/d(input); and the net's loss on its last forward batch
 * (label checks, the softmax folded into cross-entropy, accuracy). */
#include <math.h>
#include <string.h>

#include "internal.h"

double nnkit__softmax_ce(const float *logits, const int32_t *labels,
                         float *grad, size_t batch, size_t classes)
{
  return nnkit__softmax_ce_each(logits, labels, grad, batch, classes, NULL);
}

double nnkit__softmax_ce_each(const float *logits, const int32_t *labels,
                              float *grad, size_t batch, size_t classes, double *each)
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
    double lse = (double)m + log(s), li = lse - (double)z[labels[i]];
    total += li;
    if (each)
      each[i] = li;
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
  return nnkit__mse_each(y, targets, labels, grad, batch, n, NULL);
}

double nnkit__mse_each(const float *y, const float *targets, const int32_t *labels,
                       float *grad, size_t batch, size_t n, double *each)
{
  double total = 0;
  float scale = 2.0f / (float)(batch * n);
  for (size_t i = 0; i < batch; i++) {
    double row = 0;
    for (size_t j = 0; j < n; j++) {
      float t = targets ? targets[i * n + j]
                        : (labels[i] == (int32_t)j ? 1.0f : 0.0f);
      float d = y[i * n + j] - t;
      total += (double)d * d;
      row += (double)d * d;
      grad[i * n + j] = scale * d;
    }
    if (each)
      each[i] = row / (double)n;
  }
  return total / (double)(batch * n);
}

/* ---- the net's loss ------------------------------------------------------ */

/* Softmax cross-entropy folds a trailing softmax layer into the loss. */
int nnkit__net_fused_softmax(const nnkit_net *net)
{
  const nnkit__layer *last = &net->layers[net->num_layers - 1];
  return net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY &&
         nnkit__layer_activation(last, NULL) == NNKIT_ACT_SOFTMAX;
}

/* Loss of the last forward batch; gradient w.r.t. the loss input goes to
 * net->probs. *first_out receives the index of the last layer to
 * back-propagate through (num_layers when the whole net, i.e. one past). */
nnkit_status nnkit__net_loss(nnkit_net *net, const int32_t *labels,
                             const float *targets, double *loss_out,
                             size_t *first_out)
{
  return nnkit__net_loss_each(net, labels, targets, loss_out, first_out, NULL);
}

nnkit_status nnkit__net_loss_each(nnkit_net *net, const int32_t *labels,
                                  const float *targets, double *loss_out,
                                  size_t *first_out, double *each)
{
  size_t batch = net->last_batch, L = net->num_layers;
  size_t outw = nnkit_net_output_size(net);
  if (batch == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_backward: no forward batch to compute a loss on; "
                      "call nnkit_net_forward first");
  int ce = net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  if (ce && !labels)
    return nnkit__err(NNKIT_E_INVALID,
                      "softmax cross-entropy needs labels; pass them, or use "
                      "NNKIT_LOSS_MSE for float targets");
  if (!ce && !labels && !targets)
    return nnkit__err(NNKIT_E_INVALID, "mean squared error needs targets or labels");
  if (labels && (ce || !targets))
    for (size_t i = 0; i < batch; i++)
      if (labels[i] < 0 || (size_t)labels[i] >= outw)
        return nnkit__err(NNKIT_E_INVALID,
                          "sample %zu of the batch: label %d is outside [0, %zu) "
                          "(the net has %zu outputs)", i, (int)labels[i], outw, outw);
  const float *y = net->acts[L - 1];
  size_t first = L;
  if (ce) {
    if (nnkit__net_fused_softmax(net)) {
      first = L - 1;
      y = L >= 2 ? net->acts[L - 2] : net->x0;
    }
    *loss_out = nnkit__softmax_ce_each(y, labels, net->probs, batch, outw, each);
  } else {
    *loss_out = nnkit__mse_each(y, targets, targets ? NULL : labels, net->probs, batch,
                                outw, each);
  }
  size_t correct = 0;
  if (labels)
    for (size_t i = 0; i < batch; i++) {
      const float *r = y + i * outw;
      size_t best = 0;
      for (size_t j = 1; j < outw; j++)
        if (r[j] > r[best])
          best = j;
      correct += best == (size_t)labels[i];
    }
  net->last_correct = correct;
  *first_out = first;
  return NNKIT_OK;
}

nnkit_status nnkit__net_batch_loss(nnkit_net *net, const int32_t *labels,
                                   const float *targets, double *loss_out,
                                   size_t *correct_out)
{
  size_t first;
  double loss = 0;
  nnkit_status st = nnkit__net_loss(net, labels, targets, &loss, &first);
  if (st != NNKIT_OK)
    return st;
  if (loss_out)
    *loss_out = loss;
  if (correct_out)
    *correct_out = net->last_correct;
  return NNKIT_OK;
}
