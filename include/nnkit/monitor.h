/**
 * @file nnkit/monitor.h
 * Watching a training run: callbacks, the history of a fit (per epoch, per
 * batch, per layer) with CSV and JSON Lines export, early stopping,
 * sanity checks, classification metrics, per-layer statistics, a
 * diagnosis of the curves and a learning-rate finder.
 *
 * The lecture's "how can I monitor my training?" and "why can loss curves
 * go up?", answered by the library: everything here is recorded by
 * nnkit_trainer_fit() as it runs (settings in nnkit/train.h) or computed
 * on demand from a net and a dataset.
 */
#ifndef NNKIT_MONITOR_H
#define NNKIT_MONITOR_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/net.h"
#include "nnkit/optim.h"
#include "nnkit/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Callbacks                                                            */
/* ------------------------------------------------------------------ */

/**
 * Called after every optimizer step of a fit. epoch is the 0-based epoch
 * index over all fits of the trainer, batch the 0-based batch index in the
 * epoch, loss the batch's mean loss (before the step).
 * Return 0 to go on, > 0 to stop cleanly after this batch (the partial
 * epoch is recorded and nnkit_trainer_fit() returns NNKIT_OK), < 0 to abort
 * (nnkit_trainer_fit() returns NNKIT_E_USER at once, weights as they are).
 * The trainer is borrowed for the call; do not call nnkit_trainer_fit() or
 * change trainer settings from a callback.
 */
typedef int (*nnkit_batch_fn)(const nnkit_trainer *tr, size_t epoch,
                              size_t batch, double loss, void *user);

/**
 * Called at the end of every epoch, after the epoch is recorded (read it
 * with nnkit_trainer_metric(tr, epoch, ...)) and after early stopping has
 * looked at it. Return values as for ::nnkit_batch_fn; > 0 stops after this
 * epoch.
 */
typedef int (*nnkit_epoch_fn)(const nnkit_trainer *tr, size_t epoch,
                              void *user);

/**
 * Registers a per-batch callback; several may be registered and are called
 * in registration order until one returns non-zero. fn and user are
 * borrowed (user must stay valid while the trainer may call fn).
 * @return NNKIT_E_INVALID for a NULL trainer or fn; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_add_batch_callback(nnkit_trainer *tr,
                                                        nnkit_batch_fn fn,
                                                        void *user);

/** Registers a per-epoch callback (rules as for batch callbacks). */
NNKIT_API nnkit_status nnkit_trainer_add_epoch_callback(nnkit_trainer *tr,
                                                        nnkit_epoch_fn fn,
                                                        void *user);

/** Removes every registered callback. NULL is ignored. */
NNKIT_API void nnkit_trainer_clear_callbacks(nnkit_trainer *tr);

/** The net the trainer drives (borrowed from the caller of
 *  nnkit_trainer_create()); lets a callback inspect or change weights. */
NNKIT_API nnkit_net *nnkit_trainer_net(const nnkit_trainer *tr);

/** The optimizer the trainer drives (borrowed likewise); lets a callback
 *  change hyperparameters between steps. */
NNKIT_API nnkit_optimizer *nnkit_trainer_optimizer(const nnkit_trainer *tr);

/**
 * Why the last fit ended before its last epoch, e.g. "early stopping: val
 * loss did not improve by more than 0.0001 for 5 epochs (best 0.081234 at
 * epoch 9)" or "epoch callback 1 asked to stop after epoch 3". "" when it
 * ran all its epochs or failed; NULL for a NULL trainer. Borrowed; valid
 * until the next fit.
 */
NNKIT_API const char *nnkit_trainer_stop_reason(const nnkit_trainer *tr);

/* ------------------------------------------------------------------ */
/* Early stopping                                                       */
/* ------------------------------------------------------------------ */

/**
 * Watches `monitor` at the end of every epoch of each fit:
 * NNKIT_METRIC_VAL_LOSS or NNKIT_METRIC_TRAIN_LOSS (lower is better),
 * NNKIT_METRIC_VAL_ACC or NNKIT_METRIC_TRAIN_ACC (higher is better). An
 * epoch improves when it beats the best value so far of this fit by more
 * than min_delta; after `patience` epochs in a row without improvement the
 * fit stops (Keras's rule; it returns NNKIT_OK, see
 * nnkit_trainer_stop_reason()). At the end of the fit -- stopped or not --
 * the parameters (and batch-norm running statistics) of the best epoch are
 * restored bit for bit (not the optimizer's state). A fit that fails
 * restores nothing, except that a diverged one restores its last good
 * epoch (NNKIT_TRAIN_KEEP_GOOD).
 * @param monitor    a metric above, or 0 to turn early stopping off.
 * @param patience   epochs in a row without improvement that stop the fit,
 *                   [1, 1e6] (ignored when monitor is 0).
 * @param min_delta  finite, >= 0, in the metric's units.
 * @return NNKIT_E_INVALID for another metric or a value out of range. A fit
 *         that monitors a validation metric without a validation set fails
 *         with NNKIT_E_INVALID.
 */
NNKIT_API nnkit_status nnkit_trainer_set_early_stopping(nnkit_trainer *tr,
                                                        nnkit_metric monitor,
                                                        size_t patience,
                                                        double min_delta);

/**
 * The epoch (over all fits) whose weights early stopping kept in the last
 * fit, numbered from 1 as the log lines and the history CSV number it
 * ("Restored the weights of epoch 13" is 13 here); its figures are at
 * index 12 of nnkit_trainer_metric, which indexes from 0.
 * @return NNKIT_E_STATE when early stopping is off or no fit has recorded
 *         an epoch with it.
 */
NNKIT_API nnkit_status nnkit_trainer_best_epoch(size_t *out,
                                                const nnkit_trainer *tr);

/* ------------------------------------------------------------------ */
/* History                                                              */
/* ------------------------------------------------------------------ */

/** Everything a trainer recorded: one row per epoch (the ::nnkit_metric
 *  values), one per batch (loss and learning rate), and per-layer
 *  statistics per epoch when NNKIT_TRAIN_LAYER_STATS is on. Fits append. */
typedef struct nnkit_history nnkit_history;

/** The trainer's history; borrowed, lives as long as the trainer. Never
 *  NULL for a non-NULL trainer. */
NNKIT_API const nnkit_history *nnkit_trainer_history(const nnkit_trainer *tr);

/** Number of recorded epochs (equals nnkit_trainer_epochs_done()). */
NNKIT_API size_t nnkit_history_epochs(const nnkit_history *h);

/** One figure of epoch `epoch` (0-based); as nnkit_trainer_metric().
 *  A partial epoch (a fit stopped by a batch callback) averages the
 *  batches it ran. @return NNKIT_E_INVALID for an epoch not recorded or an
 *  unknown metric. */
NNKIT_API nnkit_status nnkit_history_get(double *out, const nnkit_history *h,
                                         size_t epoch, nnkit_metric metric);

/** Copies metric `metric` of epochs [0, min(len, epochs)) into out.
 *  @return NNKIT_E_INVALID for NULL out with len > 0 or an unknown metric. */
NNKIT_API nnkit_status nnkit_history_column(double *out, size_t len,
                                            const nnkit_history *h,
                                            nnkit_metric metric);

/** Number of recorded batches (optimizer steps) over all fits. */
NNKIT_API size_t nnkit_history_batches(const nnkit_history *h);

/**
 * Copies the records of batches [first, first + len) (clipped to what was
 * recorded): losses_out their mean losses (before the step), lrs_out the
 * learning rates of their steps. Either output may be NULL. *count_out
 * (may be NULL) receives how many were copied.
 * @return NNKIT_E_INVALID for first beyond the recorded batches.
 */
NNKIT_API nnkit_status nnkit_history_batch_losses(double *losses_out,
                                                  double *lrs_out, size_t len,
                                                  size_t *count_out,
                                                  const nnkit_history *h,
                                                  size_t first);

/** Number of layers in the history's per-layer rows; 0 before any fit
 *  recorded statistics. */
NNKIT_API size_t nnkit_history_num_layers(const nnkit_history *h);

/**
 * Reads the per-layer statistics of epoch `epoch`: out[l * num_stats + j]
 * receives statistic stats[j] of layer l, for every layer l of the net
 * (len must be at least num_layers * num_stats).
 * @return NNKIT_E_INVALID for an unknown statistic, a short len or an
 *         epoch out of range; NNKIT_E_STATE when that epoch has no
 *         statistics (NNKIT_TRAIN_LAYER_STATS was off).
 */
NNKIT_API nnkit_status nnkit_history_layer_stats(double *out, size_t len,
                                                 const nnkit_layer_stat *stats,
                                                 size_t num_stats,
                                                 const nnkit_history *h,
                                                 size_t epoch);

/** Tables of a history for export. Values are fixed forever. */
typedef enum nnkit_history_table {
  /** epoch,train_loss,reg_loss,train_acc,val_loss,val_acc,lr,seconds,batches
   *  (train_loss is the data loss; the logged cost is train_loss + reg_loss) */
  NNKIT_HISTORY_EPOCHS = 1,
  /** step,epoch,batch,loss,lr */
  NNKIT_HISTORY_BATCHES = 2,
  /** epoch,layer,kind,act_mean,act_std,saturated,dead,grad_norm,
   *  update_ratio,param_norm */
  NNKIT_HISTORY_LAYERS = 3
} nnkit_history_table;

/**
 * Writes a table as CSV: a header line with the column names above, then
 * one line per row; epochs are 1-based as in the log line, numbers are
 * printed with 17 significant digits (they parse back exactly), missing
 * values as "nan". The file is replaced atomically (temporary file, fsync,
 * rename): a failure leaves no partial file.
 * @return NNKIT_E_INVALID for NULL arguments or an unknown table;
 *         NNKIT_E_IO when the file cannot be written.
 */
NNKIT_API nnkit_status nnkit_history_save_csv(const nnkit_history *h,
                                              nnkit_history_table table,
                                              const char *path);

/** Writes a table as JSON Lines: one object per row with the CSV's column
 *  names as keys; missing and non-finite values are null. Atomic, errors
 *  as nnkit_history_save_csv(). */
NNKIT_API nnkit_status nnkit_history_save_jsonl(const nnkit_history *h,
                                                nnkit_history_table table,
                                                const char *path);

/* ------------------------------------------------------------------ */
/* Classification metrics                                               */
/* ------------------------------------------------------------------ */

/** Fraction of predicted[i] == labels[i] over count samples.
 *  @return NNKIT_E_INVALID for NULL buffers or count 0. */
NNKIT_API nnkit_status nnkit_metrics_accuracy(double *out,
                                              const int32_t *labels,
                                              const int32_t *predicted,
                                              size_t count);

/**
 * Top-k accuracy: the fraction of samples whose label is among the k
 * largest of its num_classes scores, i.e. fewer than k classes score
 * strictly higher than the label (ties are resolved in the label's
 * favour). A NaN score never counts.
 * @param scores  count * num_classes floats (logits or probabilities).
 * @return NNKIT_E_INVALID for NULL buffers, count 0, k outside
 *         [1, num_classes] or a label outside [0, num_classes).
 */
NNKIT_API nnkit_status nnkit_metrics_top_k(double *out, const float *scores,
                                           size_t count, size_t num_classes,
                                           const int32_t *labels, size_t k);

/**
 * Confusion matrix: matrix_out[t * num_classes + p] counts samples of true
 * class t predicted as p. len must be at least num_classes^2.
 * @return NNKIT_E_INVALID for NULL buffers, count 0, num_classes 0 or
 *         above 65536, a short len, or a class id outside [0, num_classes)
 *         (the sentence names the sample).
 */
NNKIT_API nnkit_status nnkit_metrics_confusion(size_t *matrix_out, size_t len,
                                               const int32_t *labels,
                                               const int32_t *predicted,
                                               size_t count,
                                               uint32_t num_classes);

/**
 * Per-class precision, recall and F1 from a confusion matrix; each output
 * (may be NULL) receives num_classes values (len at least that). Undefined
 * ratios (no sample predicted or present) are 0, as scikit-learn's
 * zero_division=0.
 * @return NNKIT_E_INVALID for a NULL matrix, num_classes 0 or a short len.
 */
NNKIT_API nnkit_status nnkit_metrics_per_class(double *precision_out,
                                               double *recall_out,
                                               double *f1_out, size_t len,
                                               const size_t *matrix,
                                               uint32_t num_classes);

/**
 * Formats a confusion matrix as a printable table: one row per true class
 * with its counts per predicted class, its support, precision, recall and
 * F1, then the accuracy and macro F1. Writes at most len bytes including
 * the terminating NUL into buf; *needed_out (may be NULL) receives the
 * bytes the whole table needs including the NUL.
 * @return NNKIT_E_INVALID for a NULL matrix, num_classes 0 or above 1000,
 *         or a buffer too small for the table (call with len 0 to size it;
 *         buf may then be NULL).
 */
NNKIT_API nnkit_status nnkit_metrics_table(char *buf, size_t len,
                                           size_t *needed_out,
                                           const size_t *matrix,
                                           uint32_t num_classes);

/* ------------------------------------------------------------------ */
/* Sanity checks                                                        */
/* ------------------------------------------------------------------ */

/** Results of the sanity checks. Values are fixed forever. */
typedef enum nnkit_sanity_value {
  NNKIT_SANITY_INITIAL_LOSS = 1,  /**< mean loss on up to 1024 training samples before training */
  NNKIT_SANITY_EXPECTED_LOSS = 2, /**< ln(C) for softmax cross-entropy with C classes; NaN otherwise */
  NNKIT_SANITY_LOSS_RATIO = 3,    /**< initial / expected (NaN without an expectation) */
  NNKIT_SANITY_OVERFIT_START = 4, /**< loss on the tiny subset before its steps */
  NNKIT_SANITY_OVERFIT_END = 5,   /**< loss on the tiny subset after them */
  NNKIT_SANITY_OVERFIT_ACC = 6,   /**< accuracy on the tiny subset after them (NaN for regression) */
  NNKIT_SANITY_PASSED = 7         /**< 1 when every check passed, 0 otherwise */
} nnkit_sanity_value;

/**
 * Runs the sanity checks of the lecture's "start training" advice on the
 * trainer's net, leaving its parameters exactly as they were:
 *  1. the initial loss of a softmax classifier is close to ln(C) (fails
 *     when it is more than 3 times that: the last layer's outputs are too
 *     large, usually a bad initialization);
 *  2. the net can overfit a tiny subset: 20 training samples (drawn with
 *     NNKIT_TRAIN_SEED), 200 full-batch steps with a fresh copy of the
 *     trainer's optimizer (same kind and hyperparameters) on a copy of the
 *     parameters; fails unless the loss falls below 10% of its start
 *     (and, for labels, every sample is classified right).
 * Results are readable with nnkit_trainer_sanity_value() and
 * nnkit_trainer_sanity_report(). nnkit_trainer_fit() runs this before the
 * first epoch when NNKIT_TRAIN_SANITY is 1 or 2.
 * @return NNKIT_OK when both pass; NNKIT_E_STATE with a sentence naming
 *         the failed check and its numbers; errors of the fit loop.
 */
NNKIT_API nnkit_status nnkit_trainer_sanity_check(nnkit_trainer *tr,
                                                  const nnkit_dataset *train);

/** A result of the last sanity check (NaN before any).
 *  @return NNKIT_E_INVALID for an unknown value. */
NNKIT_API nnkit_status nnkit_trainer_sanity_value(double *out,
                                                  const nnkit_trainer *tr,
                                                  nnkit_sanity_value what);

/** The last sanity check's report, one line per check ("" before any;
 *  NULL for a NULL trainer).
 *  Borrowed; valid until the next check. */
NNKIT_API const char *nnkit_trainer_sanity_report(const nnkit_trainer *tr);

/* ------------------------------------------------------------------ */
/* Diagnosis                                                            */
/* ------------------------------------------------------------------ */

/** What a set of curves shows. Values are fixed forever (append only). */
typedef enum nnkit_verdict {
  NNKIT_VERDICT_HEALTHY = 1,        /**< loss falls steadily, no warning sign */
  NNKIT_VERDICT_LR_TOO_HIGH = 2,    /**< the loss exploded (NaN/Inf, or far above its start) */
  NNKIT_VERDICT_OSCILLATING = 3,    /**< the loss goes up and down between epochs: learning rate too high */
  NNKIT_VERDICT_LR_TOO_LOW = 4,     /**< the loss barely moves */
  NNKIT_VERDICT_OVERFITTING = 5,    /**< validation loss rises while training loss falls; the gap grows */
  NNKIT_VERDICT_UNDERFITTING = 6,   /**< the loss has levelled off high, train and validation alike */
  NNKIT_VERDICT_VANISHING = 7,      /**< activations or gradients shrink by orders of magnitude with depth */
  NNKIT_VERDICT_SATURATING = 8,     /**< most tanh/sigmoid outputs are saturated */
  NNKIT_VERDICT_DEAD_RELUS = 9,     /**< many ReLU units never fire */
  NNKIT_VERDICT_NOISY_BATCHES = 10, /**< batch losses scatter more than the epochs improve */
  NNKIT_VERDICT_TOO_SHORT = 11      /**< too few epochs to judge the curves */
} nnkit_verdict;

/** The verdicts about one run, with the numbers behind each. Immutable. */
typedef struct nnkit_diagnosis nnkit_diagnosis;

/**
 * Diagnoses the trainer's history (all fits so far): curves, per-batch
 * losses, per-layer statistics of the last recorded epoch and any
 * divergence. Works after a fit that returned NNKIT_E_DIVERGED.
 * @param out receives the diagnosis; free it with nnkit_diagnosis_free().
 * @return NNKIT_E_STATE when nothing was recorded yet; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_diagnose(nnkit_diagnosis **out,
                                              const nnkit_trainer *tr);

/**
 * Diagnoses curves given as arrays (e.g. from another framework, or made
 * up in a test). Every pointer except train_loss may be NULL; arrays are
 * borrowed for the call.
 * @param train_loss  epochs values: mean training loss per epoch.
 * @param val_loss, train_acc, val_acc  epochs values each, or NULL; NaN
 *        entries count as missing.
 * @param batch_loss  batches values: loss of each step in order, or NULL.
 * @param lr          the learning rate used (for concrete advice), 0 if
 *                    unknown.
 * @param num_classes classes of a softmax classifier (chance level), 0 if
 *                    not a classifier.
 * @return NNKIT_E_INVALID for NULL train_loss or epochs 0 (or a NULL
 *         batch_loss with batches > 0); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_diagnose_curves(nnkit_diagnosis **out,
                                             const double *train_loss,
                                             const double *val_loss,
                                             const double *train_acc,
                                             const double *val_acc,
                                             size_t epochs,
                                             const double *batch_loss,
                                             size_t batches, double lr,
                                             uint32_t num_classes);

/** Frees a diagnosis; NULL is ignored. */
NNKIT_API void nnkit_diagnosis_free(nnkit_diagnosis *d);

/** Number of verdicts (>= 1), the most important first. */
NNKIT_API size_t nnkit_diagnosis_count(const nnkit_diagnosis *d);

/** Verdict i (0-based); 0 when i is out of range. */
NNKIT_API nnkit_verdict nnkit_diagnosis_verdict(const nnkit_diagnosis *d,
                                                size_t i);

/** 1 when the diagnosis contains verdict v, else 0. */
NNKIT_API int nnkit_diagnosis_has(const nnkit_diagnosis *d, nnkit_verdict v);

/** The numbers behind verdict i, as a sentence ("" out of range, NULL
 *  for a NULL diagnosis).
 *  Borrowed from d. */
NNKIT_API const char *nnkit_diagnosis_evidence(const nnkit_diagnosis *d,
                                               size_t i);

/** The suggested next step for verdict i ("" out of range, NULL for a
 *  NULL diagnosis). Borrowed. */
NNKIT_API const char *nnkit_diagnosis_advice(const nnkit_diagnosis *d,
                                             size_t i);

/** The whole diagnosis as printable text, one paragraph per verdict:
 *  name, evidence, advice (NULL for a NULL d). Borrowed from d. */
NNKIT_API const char *nnkit_diagnosis_report(const nnkit_diagnosis *d);

/** Static short name of a verdict ("learning rate too high"); "unknown
 *  verdict" for other values. */
NNKIT_API const char *nnkit_verdict_name(nnkit_verdict v);

/* ------------------------------------------------------------------ */
/* Learning-rate finder                                                 */
/* ------------------------------------------------------------------ */

/**
 * Learning-rate range test (Smith 2017; fastai's lr_find): takes up to
 * `steps` training steps with the learning rate growing exponentially from
 * lr_min to lr_max, with a fresh copy of the trainer's optimizer (same
 * kind and hyperparameters, no state) and the trainer's batch size and
 * seed, on a copy of the net's parameters: the net (same handle) gets its
 * parameters and batch-norm statistics back bit for bit afterwards, and
 * the trainer's history is untouched. The sweep ends early once a running
 * mean of the loss (debiased exponential average, beta 0.9) exceeds 4
 * times its minimum, or the fit loop detects divergence.
 *
 * The suggestion is the rate where the smoothed loss (a centered moving
 * average over 2 w + 1 steps, w = steps / 25, so it does not lag behind
 * the rate) falls fastest against log(lr), looking only at the sweep
 * before the smoothed loss's minimum.
 *
 * @param suggested_out receives the suggested learning rate.
 * @param lrs_out, losses_out  len values each (either may be NULL): the
 *        rate of each step and the smoothed loss at it.
 * @param count_out  receives the number of steps taken (<= steps); may be
 *        NULL.
 * @param lr_min, lr_max  0 < lr_min < lr_max <= 1e6; 0 and 0 mean the
 *        defaults 1e-6 and 10.
 * @param steps  [8, 100000]; 0 means 100.
 * @return NNKIT_E_INVALID for bad ranges or len < steps with a non-NULL
 *         output buffer; NNKIT_E_STATE when the smoothed loss never fell
 *         below 90% of its start (no suggestion; the sentence gives the
 *         numbers); errors of the fit loop.
 */
NNKIT_API nnkit_status nnkit_trainer_find_lr(double *suggested_out,
                                             double *lrs_out,
                                             double *losses_out, size_t len,
                                             size_t *count_out,
                                             nnkit_trainer *tr,
                                             const nnkit_dataset *train,
                                             double lr_min, double lr_max,
                                             size_t steps);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_MONITOR_H */
