/**
 * @file nnkit/ensemble.h
 * Model ensembles (the lecture's "improve test performance" answers):
 * several nets with the same input and output shapes answering together,
 * by the (weighted) mean of their class probabilities or by a majority
 * vote; snapshot ensembles from the cycle ends of one cosine-annealed run;
 * and the running (Polyak) average of the weights a trainer keeps.
 *
 * An ensemble is used like a net: nnkit_ensemble_predict(),
 * nnkit_ensemble_predict_proba(), nnkit_ensemble_evaluate() take raw
 * samples, each member running them through its own attached normalizer,
 * and nnkit_ensemble_save() / nnkit_ensemble_load() keep it as one file.
 */
#ifndef NNKIT_ENSEMBLE_H
#define NNKIT_ENSEMBLE_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/net.h"
#include "nnkit/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How an ensemble combines its members. Values are fixed forever. */
typedef enum nnkit_ensemble_kind {
  /** The weighted mean of the members' class probabilities
   *  (nnkit_net_predict_proba()); the class is its argmax. */
  NNKIT_ENSEMBLE_MEAN = 1,
  /** Each member votes for its argmax class with its weight; the class is
   *  the one with the most weight (ties: the lowest class id).
   *  nnkit_ensemble_predict_proba() gives the vote shares. */
  NNKIT_ENSEMBLE_VOTE = 2
} nnkit_ensemble_kind;

/** Several nets answering together; owns its members. */
typedef struct nnkit_ensemble nnkit_ensemble;

/**
 * Creates an empty ensemble combining its members by `kind`.
 * @return NNKIT_E_INVALID for an unknown kind; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_ensemble_create(nnkit_ensemble **out,
                                             nnkit_ensemble_kind kind);

/** Frees the ensemble and its members; NULL is ignored. */
NNKIT_API void nnkit_ensemble_free(nnkit_ensemble *ens);

/**
 * Adds a copy of net (its layers, parameters, running statistics,
 * attached normalizer and class names are copied; the caller keeps and
 * frees its own) with the given weight. The net must have layers, and the
 * same input shape, output size and loss as the members before it.
 * @param weight  its share of the mean or the vote, finite and > 0, up to
 *                1e6 (weights are used as given; they need not sum to 1:
 *                the combination divides by their sum).
 * @return NNKIT_E_SHAPE for a net unlike the first member (the sentence
 *         names what differs: "the net's input shape 1x28x28 differs from
 *         member 0's 784"); NNKIT_E_INVALID for a NULL argument, a weight
 *         outside (0, 1e6] or a net without layers; NNKIT_E_NOMEM. The
 *         ensemble is unchanged on failure.
 */
NNKIT_API nnkit_status nnkit_ensemble_add(nnkit_ensemble *ens,
                                          const nnkit_net *net, double weight);

/** Number of members; 0 for NULL. */
NNKIT_API size_t nnkit_ensemble_size(const nnkit_ensemble *ens);

/** How the ensemble combines (0 for NULL). */
NNKIT_API nnkit_ensemble_kind nnkit_ensemble_get_kind(const nnkit_ensemble *ens);

/** Member i, borrowed from the ensemble (valid until it is freed); NULL
 *  for a NULL ensemble or i out of range. Predicting with it is fine;
 *  changing its layers is not. */
NNKIT_API nnkit_net *nnkit_ensemble_member(const nnkit_ensemble *ens, size_t i);

/** Member i's weight; 0 for a NULL ensemble or i out of range. */
NNKIT_API double nnkit_ensemble_weight(const nnkit_ensemble *ens, size_t i);

/**
 * The combined class probabilities of count raw samples: for MEAN the
 * weighted mean of the members' nnkit_net_predict_proba(), for VOTE the
 * weight share of the members voting for each class. probs_out receives
 * count x output-size floats (probs_len at least that). Runs in chunks,
 * allocating nothing after the first call for a count.
 * @return NNKIT_E_STATE for an empty ensemble; NNKIT_E_INVALID for NULL
 *         buffers, count 0 or a short probs_len; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_ensemble_predict_proba(float *probs_out,
                                                    size_t probs_len,
                                                    nnkit_ensemble *ens,
                                                    const float *x,
                                                    size_t count);

/** The combined class ids (argmax of nnkit_ensemble_predict_proba(), the
 *  lowest id on ties) of count raw samples into classes_out (count ids).
 *  @return as nnkit_ensemble_predict_proba(). */
NNKIT_API nnkit_status nnkit_ensemble_predict(int32_t *classes_out,
                                              nnkit_ensemble *ens,
                                              const float *x, size_t count);

/**
 * Mean loss and accuracy of the ensemble on a labelled dataset of raw
 * samples. The loss is the members' loss on the combined output: the mean
 * of -log p(label) (p clamped to at least 1e-12, so a unanimous wrong vote
 * costs 27.6, not infinity) for softmax cross-entropy members; the mean
 * squared error of the combined outputs against the targets (or one-hot
 * labels) for MSE members. Either out pointer may be NULL.
 * @return NNKIT_E_STATE for an empty ensemble; NNKIT_E_SHAPE when the set
 *         does not fit the members; NNKIT_E_INVALID for a set without
 *         labels or targets; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_ensemble_evaluate(double *loss_out,
                                               double *acc_out,
                                               nnkit_ensemble *ens,
                                               const nnkit_dataset *ds);

/**
 * Writes the ensemble to one file, atomically: a safetensors file of the
 * model files' family (doc/file-format.md) with a CRC-32, holding the
 * combination, the weights and every member as a model file would (its
 * architecture, tensors under "members.<i>.", normalizer, class names).
 * @param path  borrowed; replaced if it exists.
 * @return NNKIT_E_STATE for an empty ensemble; NNKIT_E_IO with the path
 *         and the system's reason (nothing is left on disk); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_ensemble_save(const nnkit_ensemble *ens,
                                           const char *path);

/**
 * Reads an ensemble written by nnkit_ensemble_save(); the caller owns
 * *out (nnkit_ensemble_free()). Members load in evaluation mode.
 * @return NNKIT_E_FORMAT with a sentence naming the file and what is
 *         wrong (truncated, a damaged byte, a model file or checkpoint
 *         instead of an ensemble, a missing member); NNKIT_E_IO;
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_ensemble_load(nnkit_ensemble **out,
                                           const char *path);

/* ------------------------------------------------------------------ */
/* Snapshot ensembles and weight averaging (the trainer's part)         */
/* ------------------------------------------------------------------ */

/**
 * Number of cycle-end snapshots the trainer holds now (at most
 * NNKIT_TRAIN_SNAPSHOTS, the newest ones). A snapshot is taken after the
 * optimizer step at which the attached schedule ends a cosine cycle:
 * COSINE_RESTARTS at the end of each period (T_0, T_0 T_MULT, ...),
 * COSINE at each T_MAX steps (its minimum); schedules of other kinds take
 * none. Snapshots survive fits (a later fit adds to them) until
 * NNKIT_TRAIN_SNAPSHOTS changes. 0 for NULL.
 */
NNKIT_API size_t nnkit_trainer_num_snapshots(const nnkit_trainer *tr);

/**
 * A snapshot ensemble: a new ensemble of `kind` holding the newest m
 * cycle-end snapshots of tr (each a copy of tr's net with that
 * snapshot's weights and running statistics), equally weighted, oldest
 * first. The caller owns *out.
 * @param m  1 .. nnkit_trainer_num_snapshots(tr).
 * @return NNKIT_E_STATE when the trainer holds fewer than m snapshots
 *         (the sentence gives how many, and how to get some);
 *         NNKIT_E_INVALID for m 0 or a bad kind; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_apply_snapshots(nnkit_ensemble **out,
                                                     nnkit_trainer *tr,
                                                     size_t m,
                                                     nnkit_ensemble_kind kind);

/**
 * Weight averaging: a new net (owned by the caller), a copy of tr's net
 * whose parameters are the exponential moving average the trainer kept
 * (NNKIT_TRAIN_EMA_DECAY must have been on during the fits), with its
 * batch-normalization running statistics recomputed for those weights by
 * one pass over `train` in training mode (each layer's running mean and
 * variance reset, then the cumulative mean over the pass's batches, as
 * PyTorch's torch.optim.swa_utils.update_bn). Evaluate it and save it
 * (nnkit_net_save()) instead of the raw weights. The trainer's net is
 * not changed.
 * @param train  the training set as the trainer saw it (already
 *               normalized: the copy's attached normalizer is not applied
 *               in this pass), borrowed; NULL skips the pass (for nets
 *               without batch normalization). Batches of the trainer's
 *               BATCH_SIZE, in order.
 * @return NNKIT_E_STATE when the trainer kept no average (the sentence
 *         says to set NNKIT_TRAIN_EMA_DECAY before fitting) or when the
 *         net changed shape since; NNKIT_E_SHAPE when train does not fit
 *         the net; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_apply_average(nnkit_net **out,
                                                   nnkit_trainer *tr,
                                                   const nnkit_dataset *train);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_ENSEMBLE_H */
