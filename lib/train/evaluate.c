/* Evaluation of a net over a pipeline's batches (the validation figures of
 * nnkit_trainer_fit_pipeline()). */
#include "train_internal.h"

nnkit_status nnkit__evaluate_pipeline(double *loss_out, double *acc_out,
                                      nnkit_net *net, nnkit_pipeline *p)
{
  /* Epoch 0 every time: a validation pipeline gives the same batches. */
  nnkit_status st = nnkit__pipeline_begin_epoch(p, 0);
  if (st != NNKIT_OK)
    return st;
  int mode = net->training;
  net->training = 0;
  double total = 0;
  size_t correct = 0, seen = 0, b = 0;
  int labelled = 0;
  for (;;) {
    const float *x, *t;
    const int32_t *y;
    st = nnkit__pipeline_next(p, &x, &y, &t, &b);
    if (st != NNKIT_OK || b == 0)
      break;
    double loss = 0;
    size_t c = 0;
    st = nnkit_net_forward(net, x, b, NULL, 0);
    if (st == NNKIT_OK)
      st = nnkit__net_batch_loss(net, y, t, &loss, &c);
    if (st != NNKIT_OK)
      break;
    labelled = y != NULL;
    total += loss * (double)b;
    correct += c;
    seen += b;
  }
  net->training = mode;
  if (st != NNKIT_OK)
    return st;
  if (seen == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_fit_pipeline: the validation pipeline gave no "
                      "batch (DROP_LAST with a batch larger than the set?)");
  *loss_out = total / (double)seen;
  *acc_out = labelled ? (double)correct / (double)seen : 0.0;
  return NNKIT_OK;
}
