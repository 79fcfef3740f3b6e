/*
 * Internal declarations of lib/train/: the trainer struct every file of
 * the folder shares (fit loop and settings in trainer.c; history,
 * callbacks, divergence, early stopping, progress and per-layer statistics
 * in monitor.c and history.c; sanity checks, diagnosis, LR finder), and the
 * hooks the fit loop calls. Never installed.
 */
#ifndef NNKIT_TRAIN_INTERNAL_H
#define NNKIT_TRAIN_INTERNAL_H

#include <stdio.h>

#include "internal.h"

/* Statistics per layer and epoch, indexed by nnkit_layer_stat - 1. */
#define NNKIT__NSTATS 7

/* ---- snapshots of a net's trainable state ------------------------------ */
/* The parameter buffer plus every layer's non-trained state (tensors of
 * role NNKIT__ROLE_STATE: running statistics), whatever the layer kinds.
 * Sized once (reserve), then saved and restored without allocating. */
typedef struct nnkit__snapshot {
  float *params;
  size_t n, cap;
  float *bn; /* the NNKIT__ROLE_STATE tensors, in layer and tensor order */
  size_t nbn, bn_cap;
  int valid;
  /* optionally the optimizer's state (nnkit_optimizer_get_state()) */
  float *ost;
  size_t ost_n, ost_cap;
  double *osc;
  size_t osc_n, osc_cap;
  int opt_valid;
} nnkit__snapshot;

nnkit_status nnkit__snapshot_reserve(nnkit__snapshot *s, nnkit_net *net);
void nnkit__snapshot_save(nnkit__snapshot *s, const nnkit_net *net);
void nnkit__snapshot_restore(const nnkit__snapshot *s, nnkit_net *net);
void nnkit__snapshot_free(nnkit__snapshot *s);
/* Adds / puts back the optimizer's state. Saving grows the buffers only
 * when the state grew (its first step sizes it); on failure the snapshot
 * simply has no optimizer state. Restoring returns 1 when it did. */
void nnkit__snapshot_save_opt(nnkit__snapshot *s, const nnkit_optimizer *opt);
int nnkit__snapshot_restore_opt(const nnkit__snapshot *s, nnkit_optimizer *opt,
                                const nnkit_net *net);

/* ---- history (history.c) ------------------------------------------------ */
typedef struct nnkit__hist_epoch {
  double train_loss, train_acc, val_loss, val_acc, lr, seconds, reg_loss;
  size_t first_batch, num_batches; /* into the batch records */
  int has_stats;                   /* a row of layer statistics exists */
} nnkit__hist_epoch;

typedef struct nnkit__hist_batch {
  double loss, lr;
  uint32_t epoch, batch;
} nnkit__hist_batch;

struct nnkit_history {
  nnkit__hist_epoch *epochs;
  size_t num_epochs, cap_epochs;
  nnkit__hist_batch *batches;
  size_t num_batches, cap_batches;
  /* Layer statistics: cap_epochs rows of num_layers * NNKIT__NSTATS. */
  size_t num_layers;
  double *stats;
  char (*kinds)[16]; /* num_layers short kind names for the CSV */
  /* Divergence of the last fit that diverged. */
  int diverged;
  size_t div_epoch, div_batch;
  double div_loss, div_lr;
  uint32_t num_classes; /* of the training set of the last fit */
};

/* Makes room for `epochs` more epochs and `batches` more batch records
 * (and stats rows of num_layers layers when num_layers > 0), growing
 * geometrically so that repeated fits rarely allocate. */
nnkit_status nnkit__history_reserve(nnkit_history *h, size_t epochs,
                                    size_t batches, const nnkit_net *net,
                                    int with_stats);
void nnkit__history_free(nnkit_history *h);
/* Short kind name of layer l of net ("dense", "relu", "tanh", ...). */
const char *nnkit__layer_kind_name(const nnkit__layer *l);

/* ---- layer statistics (layer_stats.c) ---------------------------------- */
/* Fills row[l * NNKIT__NSTATS + k] for every layer from the net's last
 * forward (activations) and its gradient buffer (when with_grads). alive
 * is scratch of at least the widest layer's unit count. Update ratios are
 * left NaN. */
void nnkit__layer_stats_row(double *row, nnkit_net *net, int with_grads,
                            unsigned char *alive);
/* Units scratch needed by nnkit__layer_stats_row for net. */
size_t nnkit__layer_stats_scratch(const nnkit_net *net);
/* Writes the update ratios of every layer into row from the parameters
 * before the step (pre) and the net's current parameters. */
void nnkit__layer_update_ratios(double *row, const nnkit_net *net,
                                const float *pre);

/* ---- where a fit stands (checkpoints, lib/io/checkpoint.c) --------------- */
/* A position in a fit: the next batch to run and the fit's end. When a
 * batch callback stops a fit before an epoch's last batch, the epoch is
 * open: the fit records it as it stands (a shorter epoch) and ends it as
 * usual, and the trainer keeps here what the epoch's end changed, so that
 * a checkpoint resumes the uninterrupted run instead. */
typedef struct nnkit__fit_pos {
  size_t epoch; /* the epoch to run next, 0-based (= epochs recorded) */
  size_t batch; /* its batches already run (0: at its start) */
  size_t total; /* one past the fit's last epoch */
  /* The open epoch (batch > 0): its sums so far and its last step's rate. */
  double loss_sum, reg_sum, lr;
  size_t correct, seen;
  /* pre != 0: the schedule's position and early stopping's state as they
   * were before the open epoch's end (it stepped and judged it since). */
  int pre;
  int has_sched;
  double sched[NNKIT__SCHED_STATE];
  double es_best;
  size_t es_best_epoch, es_wait;
  int es_have_best;
} nnkit__fit_pos;

/* ---- the trainer --------------------------------------------------------- */
typedef struct nnkit__cb {
  nnkit_batch_fn batch_fn;
  nnkit_epoch_fn epoch_fn;
  void *user;
} nnkit__cb;

/* The one trainer. Every file of lib/train/ works on this struct: the fit
 * loop and the settings (trainer.c), the watcher of the loop (monitor.c),
 * the record (history.c), sanity checks, diagnosis and the LR finder. */
struct nnkit_trainer {
  nnkit_net *net;       /* borrowed */
  nnkit_optimizer *opt; /* borrowed */
  /* Settings, one slot per NNKIT_TRAIN_* key of trainer.c's table (doubles
   * as the table's ranges; integers where the row says so). Fixed during a
   * fit. */
  double epochs, batch_size, shuffle, seed, verbose;
  double layer_stats, sanity_mode, diverge_factor, diverge_window, keep_good,
      diagnose;
  nnkit_log_fn log_fn;
  void *log_user;
  /* Batches: the pipelines of the running fit -- the caller's
   * (nnkit_trainer_fit_pipeline()), or own, the trainer's default one over
   * the dataset of nnkit_trainer_fit() (made at its first call, kept for the
   * next fits so that they allocate nothing). */
  nnkit_pipeline *pipe, *vpipe;
  nnkit_pipeline *own;
  /* callbacks */
  nnkit__cb *cbs;
  size_t num_cbs, cap_cbs;
  /* early stopping */
  nnkit_metric es_metric; /* 0 = off */
  size_t es_patience;
  double es_min_delta;
  double es_best;
  size_t es_best_epoch, es_wait;
  int es_have_best;
  int es_best_valid; /* es_best_epoch names a kept epoch of the last fit */
  nnkit__snapshot best, good;
  size_t good_epoch; /* epochs done when `good` was saved */
  /* divergence */
  double ref_loss; /* loss of the trainer's first batch */
  int have_ref;
  double *ring; /* last diverge_window smoothed losses */
  size_t ring_cap, ring_n, ring_pos;
  double ema;
  size_t ema_n;
  /* the current fit */
  int in_fit, stop;
  char stop_reason[256];
  size_t first_epoch, total_epochs, n_train;
  size_t epoch_seen;      /* samples done in the current epoch */
  double epoch_loss_sum;  /* for the running loss of the progress bar */
  double epoch_t0, last_draw;
  int tty, bar_shown;
  size_t next_plain;      /* sample count of the next plain progress line */
  /* per-layer statistics of the current epoch */
  int sample_stats, row_ready;
  double *row;            /* num_layers * NNKIT__NSTATS */
  size_t row_cap;
  float *pre;             /* parameters before the sampled step */
  size_t pre_cap;
  unsigned char *alive;
  size_t alive_cap;
  /* the record of every fit: the one store of epoch figures */
  nnkit_history hist;
  /* sanity checks */
  double sanity[8];
  char sanity_report[768];
  /* checkpoints: the keys' slots, the folder (owned, or NULL), the open
   * epoch of the last fit (open_valid), and the position
   * nnkit_trainer_resume() armed for the next fit (resume_armed) */
  double ckpt_every, ckpt_best, ckpt_keep;
  char *ckpt_dir;
  nnkit__fit_pos open;
  int open_valid;
  nnkit__fit_pos resume;
  int resume_armed;
  int resuming; /* the running fit continues a resumed one */
  /* snapshots, weight averaging, hard examples (average.c, mining.c): the
   * keys' slots; a ring of snaps_cap cycle-end snapshots (snaps_n held,
   * the next written at snaps_next; snap_last: the schedule step of the
   * last one); the average of avg_n parameters (valid or not); OHEM's
   * per-sample losses and ranking for batches of up to ohem_cap */
  double snapshots, snapshot_files, ema_decay, ohem_k;
  nnkit__snapshot *snaps;
  size_t snaps_cap, snaps_n, snaps_next;
  uint64_t snap_last;
  float *avg;
  size_t avg_n;
  int avg_valid;
  double *ohem_each;
  struct nnkit__scored *ohem_pairs;
  size_t ohem_cap;
};

/* ---- snapshots, weight averaging, hard examples (average.c, mining.c) ---- */
/* A score and the sample it belongs to. */
typedef struct nnkit__scored {
  double score;
  size_t index;
} nnkit__scored;
/* Sorts pairs[0..n) made from scores[0..n): largest score first (NaN
 * above all), equal scores by index. */
void nnkit__rank_scores(nnkit__scored *pairs, const double *scores, size_t n);
/* Online hard example mining on a loss gradient grad [batch, outw] (the
 * mean over batch): the rows of the k samples with the largest losses
 * (each[0..batch)) are scaled by batch / k, the others zeroed. pairs:
 * scratch of batch entries. */
void nnkit__ohem_mask(float *grad, size_t batch, size_t outw, const double *each,
                      size_t k, nnkit__scored *pairs);
/* OHEM's memory (tr->ohem_each, ohem_pairs) for batches of up to `batch`
 * when NNKIT_TRAIN_OHEM_K is set, at a fit's start (NNKIT_E_NOMEM); freed
 * with the trainer. */
nnkit_status nnkit__ohem_fit_begin(nnkit_trainer *tr, size_t batch);
void nnkit__ohem_free(nnkit_trainer *tr);
/* Hooks of the fit loop: at its start (snapshot ring, average;
 * NNKIT_E_STATE for snapshot files without a folder); after every optimizer step (the average); after each schedule
 * step (a snapshot when a cycle ended; NNKIT_E_IO when its file cannot be
 * written). */
nnkit_status nnkit__average_fit_begin(nnkit_trainer *tr);
void nnkit__average_after_step(nnkit_trainer *tr);
nnkit_status nnkit__average_cycle_check(nnkit_trainer *tr);
/* A key of the block changed: SNAPSHOTS drops the snapshots, EMA_DECAY
 * the average. */
void nnkit__average_setting_changed(nnkit_trainer *tr, nnkit_train_param key);
/* Frees what the block holds (nnkit_trainer_free). */
void nnkit__average_free(nnkit_trainer *tr);

/* The trainer's settings table (every NNKIT_TRAIN_* key) and the slot of
 * a key in tr (trainer.c), for checkpoints. */
const nnkit__spec *nnkit__trainer_specs(size_t *n);
double *nnkit__trainer_slot(nnkit_trainer *tr, nnkit_train_param key);

/* Checkpoints (lib/io/checkpoint.c). Writes tr's state at pos to path,
 * atomically. */
nnkit_status nnkit__checkpoint_write(nnkit_trainer *tr, const char *path,
                                     const nnkit__fit_pos *pos);
/* The fit loop's periodic checkpoints after epoch `epoch` of a fit ending
 * at total (NNKIT_TRAIN_CHECKPOINT_EVERY, _BEST, _KEEP). */
nnkit_status nnkit__checkpoint_epoch_end(nnkit_trainer *tr, size_t epoch,
                                         size_t total);

/* ---- hooks of the fit loop (monitor.c) ------------------------------------ */
/* The loop in trainer.c calls:
 *
 *   fit_begin -> [per batch: (diverged) | before_step, step, after_step]
 *             -> record_epoch, epoch_end ... -> fit_end
 */
void nnkit__monitor_free(nnkit_trainer *tr);
/* Erases a progress bar before a log line is written to standard output. */
void nnkit__trainer_clear_line(nnkit_trainer *tr);
/* Logs a line (to the logger, or standard output). */
void nnkit__trainer_log(nnkit_trainer *tr, const char *line);
/* samples and batches: per epoch; sanity: 1 when the sanity checks may run
 * on train (not for a caller's pipeline, whose batches differ from its
 * dataset). */
nnkit_status nnkit__monitor_fit_begin(nnkit_trainer *tr,
                                      const nnkit_dataset *train, int has_val,
                                      size_t first_epoch, size_t total_epochs,
                                      size_t samples, size_t batches,
                                      int sanity);
/* A non-finite batch loss: records it, restores the last good weights and
 * returns NNKIT_E_DIVERGED with the sentence. */
nnkit_status nnkit__monitor_diverged(nnkit_trainer *tr, size_t epoch,
                                     size_t batch, double loss);
/* Before the optimizer step of a batch; last != 0 for the epoch's last. */
void nnkit__monitor_before_step(nnkit_trainer *tr, int last);
/* After the step: records the batch, checks for an exploding loss, draws
 * progress and runs batch callbacks. */
nnkit_status nnkit__monitor_after_step(nnkit_trainer *tr, size_t epoch,
                                       size_t batch, size_t samples,
                                       double loss);
/* Appends the epoch's figures (all but first_batch, num_batches and
 * has_stats, which are filled here) to the history. */
nnkit_status nnkit__monitor_record_epoch(nnkit_trainer *tr,
                                         const nnkit__hist_epoch *rec);
/* After the epoch was recorded, logged and the schedule stepped: keeps the
 * good weights, early stopping, epoch callbacks. */
nnkit_status nnkit__monitor_epoch_end(nnkit_trainer *tr, size_t epoch);
/* Every exit of a fit after fit_begin passes through here. */
nnkit_status nnkit__monitor_fit_end(nnkit_trainer *tr, nnkit_status st);

/* ---- history readers (history.c) ----------------------------------------- */
/* One figure of a recorded epoch; fn names the public call in the error
 * sentences (nnkit_history_get(), nnkit_trainer_metric()). */
nnkit_status nnkit__history_value(double *out, const nnkit_history *h,
                                  size_t epoch, nnkit_metric metric,
                                  const char *fn);

/* Mean loss and accuracy of net over one pass of a pipeline's batches, in
 * evaluation mode (evaluate.c). Allocates nothing after the pipeline's
 * first epoch. */
nnkit_status nnkit__evaluate_pipeline(double *loss_out, double *acc_out,
                                      nnkit_net *net, nnkit_pipeline *p);

#endif /* NNKIT_TRAIN_INTERNAL_H */
