/**
 * @file nnkit/train.h
 * The fit loop: epochs of shuffled mini-batches, an optional validation
 * set, and a per-epoch record of loss, accuracy, learning rate and time.
 */
#ifndef NNKIT_TRAIN_H
#define NNKIT_TRAIN_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/model.h"
#include "nnkit/optim.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Trainer settings. Values are fixed forever (append only). */
typedef enum nnkit_train_param {
  NNKIT_TRAIN_EPOCHS = 1,     /**< epochs per fit, [1, 1e6], default 10 */
  NNKIT_TRAIN_BATCH_SIZE = 2, /**< samples per step, [1, 65536], default 64 */
  NNKIT_TRAIN_SHUFFLE = 3,    /**< reshuffle every epoch, {0, 1}, default 1 */
  NNKIT_TRAIN_SEED = 4,       /**< seed of the data order, [0, 2^53], default 0 */
  NNKIT_TRAIN_VERBOSE = 5     /**< 0 silent (default), 1 one line per epoch */
} nnkit_train_param;

/** Per-epoch figures recorded by a fit. Values are fixed forever. */
typedef enum nnkit_metric {
  NNKIT_METRIC_TRAIN_LOSS = 1, /**< mean of the epoch's batch losses */
  NNKIT_METRIC_TRAIN_ACC = 2,  /**< accuracy over the epoch's batches (training mode) */
  NNKIT_METRIC_VAL_LOSS = 3,   /**< validation loss (evaluation mode), NaN without a validation set */
  NNKIT_METRIC_VAL_ACC = 4,    /**< validation accuracy, NaN without a validation set */
  NNKIT_METRIC_LR = 5,         /**< learning rate at the epoch's end */
  NNKIT_METRIC_SECONDS = 6     /**< wall-clock seconds of the epoch */
} nnkit_metric;

/** Receives each log line (without the trailing newline). */
typedef void (*nnkit_log_fn)(const char *line, void *user);

/** Drives a net and an optimizer through epochs. */
typedef struct nnkit_trainer nnkit_trainer;

/**
 * Creates a trainer for net and opt, both borrowed: they must outlive the
 * trainer and are not freed by it.
 * @return NNKIT_E_INVALID for a NULL net or optimizer.
 */
NNKIT_API nnkit_status nnkit_trainer_create(nnkit_trainer **out, nnkit_net *net,
                                            nnkit_optimizer *opt);

/** Frees the trainer (not its net or optimizer); NULL is ignored. */
NNKIT_API void nnkit_trainer_free(nnkit_trainer *tr);

/** Sets a setting. @return NNKIT_E_INVALID for an unknown key or a value
 *  outside its range (the sentence gives it), or a non-integer value. */
NNKIT_API nnkit_status nnkit_trainer_set(nnkit_trainer *tr,
                                         nnkit_train_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_trainer_get(double *out, const nnkit_trainer *tr,
                                         nnkit_train_param key);

/** Sends log lines to fn(line, user) instead of standard output. fn NULL
 *  restores standard output. Lines are only produced when VERBOSE is 1. */
NNKIT_API void nnkit_trainer_set_logger(nnkit_trainer *tr, nnkit_log_fn fn,
                                        void *user);

/**
 * Trains for EPOCHS epochs. Each epoch visits every training sample once in
 * an order drawn from (SEED, epoch) and takes one optimizer step per batch
 * (the last batch may be smaller); then evaluates val when given. With
 * VERBOSE it logs the lecture's line:
 * "Finished epoch 1 / 10: cost 2.186654, train: 0.308000, val 0.306000, lr 3.000000e-03".
 * Each fit appends to the trainer's record.
 * @param train  labelled (or regression) dataset, borrowed.
 * @param val    validation dataset or NULL, borrowed.
 * @return NNKIT_E_SHAPE when a dataset does not fit the net;
 *         NNKIT_E_DIVERGED when the cost becomes NaN or infinite (the epoch
 *         and batch are named; parameters hold the last step's values);
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_fit(nnkit_trainer *tr,
                                         const nnkit_dataset *train,
                                         const nnkit_dataset *val);

/** Number of epochs recorded by all fits so far. */
NNKIT_API size_t nnkit_trainer_epochs_done(const nnkit_trainer *tr);

/** Reads a recorded figure of epoch `epoch` (0-based).
 *  @return NNKIT_E_INVALID for an epoch not yet recorded or an unknown metric. */
NNKIT_API nnkit_status nnkit_trainer_metric(double *out,
                                            const nnkit_trainer *tr,
                                            size_t epoch, nnkit_metric metric);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_TRAIN_H */
