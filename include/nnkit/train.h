/**
 * @file nnkit/train.h
 * The fit loop: epochs of shuffled mini-batches, an optional validation
 * set, and a per-epoch record of loss, accuracy, learning rate and time.
 */
#ifndef NNKIT_TRAIN_H
#define NNKIT_TRAIN_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/net.h"
#include "nnkit/optim.h"
#include "nnkit/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Trainer settings. Values are fixed forever (append only). */
typedef enum nnkit_train_param {
  NNKIT_TRAIN_EPOCHS = 1,     /**< epochs per fit, [1, 1e6], default 10 */
  NNKIT_TRAIN_BATCH_SIZE = 2, /**< samples per step, [1, 65536], default 64 */
  NNKIT_TRAIN_SHUFFLE = 3,    /**< reshuffle every epoch, {0, 1}, default 1 */
  NNKIT_TRAIN_SEED = 4,       /**< seed of the data order, [0, 2^53], default 0 */
  /** 0 silent (default); 1 one line per epoch, plus a progress bar redrawn
   *  in place when standard output is a terminal and no logger is set;
   *  2 also plain progress lines (every tenth of an epoch) otherwise. */
  NNKIT_TRAIN_VERBOSE = 5,

  /* -- monitoring (nnkit/monitor.h); values 16.. are this block's -- */

  /** Record per-layer statistics (nnkit_layer_stat) on the last batch of
   *  every epoch, {0, 1}, default 1. */
  NNKIT_TRAIN_LAYER_STATS = 16,
  /** Sanity checks before the first epoch of a trainer
   *  (nnkit_trainer_sanity_check()): 0 off (default), 1 run and log them,
   *  2 also fail the fit with NNKIT_E_STATE when one fails. */
  NNKIT_TRAIN_SANITY = 17,
  /** Divergence: a batch loss above this many times the trainer's first
   *  batch loss stops the fit with NNKIT_E_DIVERGED. [0, 1e15], default
   *  1000; 0 turns this test off (NaN/Inf are always caught). */
  NNKIT_TRAIN_DIVERGE_FACTOR = 18,
  /** Divergence: the running mean of the batch loss (exponential, beta
   *  0.9) growing more than tenfold over this many batches, to above the
   *  first batch loss, stops the fit likewise. [0, 1e6], default 50; 0
   *  turns this test off. */
  NNKIT_TRAIN_DIVERGE_WINDOW = 19,
  /** Keep a copy of the weights, batch-norm statistics and optimizer state
   *  at the start of each fit and each epoch end, and restore it when the
   *  fit diverges, {0, 1}, default 1 (costs one copy of the parameters and
   *  of the optimizer's state). */
  NNKIT_TRAIN_KEEP_GOOD = 20,
  /** Log the diagnosis (nnkit_trainer_diagnose()) after each fit when
   *  VERBOSE is on, {0, 1}, default 0. */
  NNKIT_TRAIN_DIAGNOSE = 21,

  /* -- checkpoints (nnkit_trainer_save_checkpoint()); values 32.. -- */

  /** Write a checkpoint every this many epochs of a fit into the folder of
   *  nnkit_trainer_set_checkpoint_dir(), as
   *  "checkpoint-epoch-<NNNNNN>.safetensors" (the epochs done, 1-based);
   *  [0, 1e6], default 0 (off). */
  NNKIT_TRAIN_CHECKPOINT_EVERY = 32,
  /** Write "checkpoint-best.safetensors" into that folder at every epoch
   *  that early stopping (nnkit_trainer_set_early_stopping(), which must be
   *  on) finds the best so far, {0, 1}, default 0. */
  NNKIT_TRAIN_CHECKPOINT_BEST = 33,
  /** Keep the newest this many "checkpoint-epoch-*" files in the folder
   *  and remove older ones (whoever wrote them); 0 keeps all. [0, 1e6],
   *  default 3. */
  NNKIT_TRAIN_CHECKPOINT_KEEP = 34,

  /* -- snapshots, weight averaging, hard examples (nnkit/ensemble.h,
   *    nnkit/mining.h); values 64.. -- */

  /** Keep the newest this many cycle-end snapshots of the weights (see
   *  nnkit_trainer_num_snapshots(); nnkit_trainer_apply_snapshots() makes
   *  a snapshot ensemble of them), in memory; [0, 1000], default 0 (off).
   *  Changing it drops the snapshots held. */
  NNKIT_TRAIN_SNAPSHOTS = 64,
  /** Also write each snapshot as a model file
   *  "snapshot-<NNNNNN>.safetensors" (the optimizer steps done) into the
   *  folder of nnkit_trainer_set_checkpoint_dir(), which must be set;
   *  {0, 1}, default 0. */
  NNKIT_TRAIN_SNAPSHOT_FILES = 65,
  /** Keep an exponential moving average of the parameters (Polyak
   *  averaging): at the first step of a fit without an average it starts
   *  as the parameters, then after every optimizer step
   *  avg = decay avg + (1 - decay) params. nnkit_trainer_apply_average()
   *  gives a net with those weights. [0, 1), default 0 (off; typical
   *  0.99 to 0.9999). Not an integer. Changing it drops the average.
   *  The average and the snapshots are not part of checkpoints. */
  NNKIT_TRAIN_EMA_DECAY = 66,
  /** Online hard example mining: of each batch, back-propagate only the k
   *  samples with the largest loss (their gradient scaled so that it is
   *  the mean over those k); the others still count in the batch's
   *  reported loss and accuracy. Ties go to the earlier sample. [0,
   *  65536], default 0 (off); k at least the batch's size is plain
   *  training, bit for bit. */
  NNKIT_TRAIN_OHEM_K = 67
} nnkit_train_param;

/** Per-epoch figures recorded by a fit. Values are fixed forever. */
typedef enum nnkit_metric {
  NNKIT_METRIC_TRAIN_LOSS = 1, /**< mean of the epoch's batch losses */
  NNKIT_METRIC_TRAIN_ACC = 2,  /**< accuracy over the epoch's batches (training mode) */
  NNKIT_METRIC_VAL_LOSS = 3,   /**< validation loss (evaluation mode), NaN without a validation set */
  NNKIT_METRIC_VAL_ACC = 4,    /**< validation accuracy, NaN without a validation set */
  NNKIT_METRIC_LR = 5,         /**< learning rate of the epoch's last step (before a
                                    per-epoch schedule steps) */
  NNKIT_METRIC_SECONDS = 6,    /**< wall-clock seconds of the epoch */
  NNKIT_METRIC_REG_LOSS = 7    /**< mean regularization penalty of the epoch's steps
                                    (nnkit_optimizer_reg_loss()); the logged cost is
                                    TRAIN_LOSS + REG_LOSS */
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

/** Sets a setting. The old value is kept on failure.
 *  @return NNKIT_E_INVALID for an unknown key or a value outside its range
 *  (the sentence gives it, e.g. "trainer epochs 0 must be an integer in
 *  [1, 1e+06]"); NNKIT_E_STATE during a fit (from a callback). */
NNKIT_API nnkit_status nnkit_trainer_set(nnkit_trainer *tr,
                                         nnkit_train_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_trainer_get(double *out, const nnkit_trainer *tr,
                                         nnkit_train_param key);

/** The range of a trainer setting: lo, hi and ::nnkit_bound_flag bits (every
 *  trainer setting but NNKIT_TRAIN_EMA_DECAY is a whole number:
 *  NNKIT_BOUND_INTEGER). Any out pointer
 *  may be NULL. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_trainer_bounds(double *lo_out, double *hi_out,
                                            int *flags_out,
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
 * "Finished epoch 1 / 10: cost 2.186654, train: 0.308000, val 0.306000, lr 3.000000e-03",
 * where cost is the data loss plus the optimizer's regularization penalty
 * (NNKIT_METRIC_TRAIN_LOSS + NNKIT_METRIC_REG_LOSS). A schedule attached to
 * the optimizer steps at the end of each epoch, fed the validation loss (or
 * the training cost without val), or after each batch when it is set to
 * (NNKIT_SCHED_PER_BATCH). Each fit appends to the trainer's record.
 * The batches are those of a plain pipeline over train with the trainer's
 * BATCH_SIZE, SHUFFLE and SEED (no normalizer, augmenter or balancing):
 * nnkit_trainer_fit_pipeline() with such a pipeline gives the same run,
 * bit for bit. Trainer settings cannot change while a fit runs (from a
 * callback), and a fit does not start inside another (NNKIT_E_STATE).
 * @param train  labelled (or regression) dataset, borrowed.
 * @param val    validation dataset or NULL, borrowed.
 * Callbacks, early stopping, the history, sanity checks and the
 * divergence detector are in nnkit/monitor.h.
 * @return NNKIT_E_SHAPE when a dataset does not fit the net;
 *         NNKIT_E_DIVERGED when the cost becomes NaN or infinite or
 *         explodes (see NNKIT_TRAIN_DIVERGE_FACTOR; the epoch, batch and
 *         learning rate are named, and with NNKIT_TRAIN_KEEP_GOOD the
 *         weights of the last completed epoch are restored);
 *         NNKIT_E_USER when a callback aborts; NNKIT_E_STATE when a sanity
 *         check fails with NNKIT_TRAIN_SANITY 2; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_fit(nnkit_trainer *tr,
                                         const nnkit_dataset *train,
                                         const nnkit_dataset *val);

/**
 * As nnkit_trainer_fit(), with batches from a pipeline (normalization,
 * augmentation, balanced sampling, prefetching): epoch e of the trainer
 * is epoch e of the pipeline (nnkit_pipeline_begin_epoch(train, e)), so
 * the pipeline's BATCH_SIZE, SHUFFLE and SEED apply and the trainer's do
 * not. The validation figures come from val's batches in evaluation mode
 * (give it the same normalizer, no augmentation). Sanity checks
 * (NNKIT_TRAIN_SANITY) are skipped: run nnkit_trainer_sanity_check() on a
 * normalized dataset instead.
 * @param train  training pipeline, borrowed; used by this call only.
 * @param val    validation pipeline or NULL, borrowed; not train.
 * @return as nnkit_trainer_fit(), and the pipelines' errors.
 */
NNKIT_API nnkit_status nnkit_trainer_fit_pipeline(nnkit_trainer *tr,
                                                  nnkit_pipeline *train,
                                                  nnkit_pipeline *val);

/**
 * Writes the trainer's whole state to a checkpoint file (a safetensors
 * file of the model files' family with a CRC-32; doc/file-format.md),
 * atomically (temporary file in the same folder, fsync, rename, fsync of
 * the folder): every tensor of the net (weights, running statistics and
 * random stream positions such as dropout's mask step), the optimizer's
 * keys, state buffers, per-layer step counts and scalars and its
 * schedule's position, every NNKIT_TRAIN_* setting, where the fit stands
 * (the epoch and batch reached and the fit's last epoch), the history
 * (epoch and batch records, layer statistics), early stopping (settings,
 * best value, epoch, wait counter, best-weights snapshot) and the
 * KEEP_GOOD snapshot. Callbacks, the logger, the checkpoint folder and the
 * data (datasets, pipelines, augmenters) are not saved: the resuming
 * program sets them up again.
 *
 * Where the fit stands: after a fit that ran all its epochs, at its end;
 * after a fit that an epoch callback or early stopping stopped, after its
 * last epoch, with the fit's remaining epochs still to run; after a fit a
 * batch callback stopped within an epoch (which that fit recorded as a
 * shorter epoch), after that batch, as if the epoch were still running.
 * A fit that ends with early stopping on restores the best weights (see
 * nnkit_trainer_set_early_stopping()), so a checkpoint saved after it
 * holds those; the periodic checkpoints (NNKIT_TRAIN_CHECKPOINT_EVERY)
 * are written within the fit and hold each epoch's own.
 * @param path  the file to write (borrowed); replaced if it exists.
 * @return NNKIT_E_STATE during a fit or for a net without layers;
 *         NNKIT_E_IO with the path and the system's reason (nothing is
 *         left on disk); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_save_checkpoint(nnkit_trainer *tr,
                                                     const char *path);

/**
 * Restores a checkpoint into tr, whose net and optimizer must be built as
 * the checkpoint's were: the same input shape, loss, layer kinds and layer
 * options (NNKIT_E_SHAPE otherwise, naming the first difference), an
 * optimizer of the same kind with a schedule of the same kind attached
 * when the checkpoint's had one (NNKIT_E_INVALID otherwise); the net's
 * tensors, its layers' trainable flags and learning-rate multipliers, the
 * optimizer's keys and state and everything nnkit_trainer_save_checkpoint()
 * lists are replaced by the checkpoint's. Callbacks and the logger stay.
 *
 * The next nnkit_trainer_fit() or nnkit_trainer_fit_pipeline() then
 * continues the checkpoint's fit where it stood -- within an epoch after
 * its last saved batch (that epoch's earlier batches are drawn from the
 * pipeline again and skipped) -- until that fit's last epoch, whatever
 * NNKIT_TRAIN_EPOCHS says; later fits run EPOCHS more epochs as usual. A
 * checkpoint of a finished fit arms nothing: the next fit runs EPOCHS more.
 * Given the same data (and the same pipeline settings, augmenter and
 * seed), the same thread count and the same callbacks, the result is bit
 * for bit that of the uninterrupted run: batch order, augmentation and
 * dropout masks are drawn from (seed, epoch, index) and the saved stream
 * positions. With another thread count the sums are grouped differently
 * and the weights agree to about 1e-5 relative.
 * @param path  the checkpoint (borrowed).
 * @return NNKIT_E_FORMAT with a sentence naming the file and what is wrong
 *         (truncated, a damaged byte, a missing or inconsistent part, not a
 *         checkpoint); NNKIT_E_SHAPE / NNKIT_E_INVALID for a net or optimizer
 *         unlike the checkpoint's; NNKIT_E_IO; NNKIT_E_STATE during a fit;
 *         NNKIT_E_NOMEM. The trainer, its net and its optimizer are
 *         unchanged on any failure.
 */
NNKIT_API nnkit_status nnkit_trainer_resume(nnkit_trainer *tr, const char *path);

/**
 * The folder of the periodic checkpoints (NNKIT_TRAIN_CHECKPOINT_EVERY,
 * _BEST, _KEEP), copied; NULL turns them off. A folder that does not
 * exist is created, with its missing parents (mode 0777 narrowed by the
 * umask), at once. A fit with
 * CHECKPOINT_EVERY or CHECKPOINT_BEST set and no folder fails at its start
 * with NNKIT_E_STATE; a checkpoint that cannot be written fails the fit
 * with NNKIT_E_IO.
 * @return NNKIT_E_IO when dir exists and is not a folder or cannot be
 *         created; NNKIT_E_INVALID for an empty path or one longer than
 *         3000 characters; NNKIT_E_STATE during a fit;
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_trainer_set_checkpoint_dir(nnkit_trainer *tr,
                                                        const char *dir);

/** Number of epochs recorded by all fits so far. */
NNKIT_API size_t nnkit_trainer_epochs_done(const nnkit_trainer *tr);

/** Reads a recorded figure of the epoch at index `epoch` (0-based: index i
 *  holds epoch number i + 1, the number the log lines print).
 *  @return NNKIT_E_INVALID for an epoch not yet recorded or an unknown metric. */
NNKIT_API nnkit_status nnkit_trainer_metric(double *out,
                                            const nnkit_trainer *tr,
                                            size_t epoch, nnkit_metric metric);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_TRAIN_H */
