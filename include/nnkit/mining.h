/**
 * @file nnkit/mining.h
 * Hard-sample mining (the lecture's section of that name): rank a labelled
 * set by each sample's loss, or an unlabelled pool by how unsure the net
 * is about each sample, and take the top k -- as indices, or as a new
 * dataset to label or to train on. Online hard example mining inside the
 * fit loop is the trainer key NNKIT_TRAIN_OHEM_K (nnkit/train.h).
 */
#ifndef NNKIT_MINING_H
#define NNKIT_MINING_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Uncertainty scores of a class-probability row p; every kind is larger
 *  for a sample the net is less sure of. Values are fixed forever. */
typedef enum nnkit_uncertainty {
  /** 1 - max_j p_j (least confidence), in [0, 1 - 1/C]. */
  NNKIT_UNCERTAINTY_MAX_PROB = 1,
  /** 1 - (p_(1) - p_(2)), one minus the margin between the two largest
   *  probabilities, in [0, 1]. Needs at least two classes. */
  NNKIT_UNCERTAINTY_MARGIN = 2,
  /** -sum_j p_j ln p_j (terms with p_j = 0 count 0), in nats, in
   *  [0, ln C]. */
  NNKIT_UNCERTAINTY_ENTROPY = 3
} nnkit_uncertainty;

/**
 * The loss of each sample of a labelled (or regression) dataset of raw
 * samples, in evaluation mode, as nnkit_net_evaluate() computes them
 * (through the attached normalizer): the cross-entropy of the sample for
 * softmax cross-entropy nets, the mean over the outputs of the squared
 * error for MSE nets. Their mean is nnkit_net_evaluate()'s loss.
 * @param losses_out  receives ds's count values; len at least that.
 * @return NNKIT_E_INVALID for NULL arguments, a short len or a set
 *         without labels or targets; NNKIT_E_SHAPE when the set does not
 *         fit the net; NNKIT_E_STATE for a net without layers;
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_sample_losses(double *losses_out, size_t len,
                                               nnkit_net *net,
                                               const nnkit_dataset *ds);

/**
 * Uncertainty scores of count rows of class probabilities (such as
 * nnkit_net_predict_proba() or nnkit_ensemble_predict_proba() give).
 * @param scores_out  receives count values; len at least that.
 * @param probs       count x classes floats, borrowed (rows need not sum
 *                    to 1 exactly; they are used as given).
 * @return NNKIT_E_INVALID for NULL buffers, count or classes 0, a short
 *         len, an unknown kind, or MARGIN with one class.
 */
NNKIT_API nnkit_status nnkit_mining_uncertainty(double *scores_out, size_t len,
                                                const float *probs,
                                                size_t count, size_t classes,
                                                nnkit_uncertainty kind);

/**
 * The uncertainty of net about count raw samples of x (an unlabelled
 * pool): nnkit_net_predict_proba() followed by nnkit_mining_uncertainty(),
 * 256 samples at a time.
 * @return as those two calls; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_uncertainty(double *scores_out, size_t len,
                                             nnkit_net *net, const float *x,
                                             size_t count,
                                             nnkit_uncertainty kind);

/**
 * The indices of the k largest of n scores (the hardest samples: largest
 * loss, largest uncertainty), largest first; equal scores in index order.
 * NaN scores count as the largest. Allocates a working copy of n indices.
 * @param idx_out  receives k indices.
 * @return NNKIT_E_INVALID for NULL buffers or k outside [1, n];
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_mining_top_k(size_t *idx_out, size_t k,
                                          const double *scores, size_t n);

/**
 * A new dataset (owned by the caller) of the k samples of ds with the
 * largest scores (one per sample of ds), in the order of
 * nnkit_mining_top_k(); labels, targets and class names come along.
 * @return NNKIT_E_INVALID for NULL arguments or k outside [1, count];
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_mining_subset(nnkit_dataset **out,
                                           const nnkit_dataset *ds,
                                           const double *scores, size_t k);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_MINING_H */
