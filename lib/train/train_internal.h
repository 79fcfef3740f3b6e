/*
 * Internal declarations of lib/train/: the trainer's monitoring extension
 * (history, callbacks, divergence, early stopping, progress, per-layer
 * statistics, sanity checks) and the hooks the fit loop in trainer.c calls.
 * Never installed.
 *
 * trainer.c owns the fit loop and the basic settings; everything that
 * watches the loop lives in an nnkit__trainer_x embedded in the trainer,
 * reached from other files through nnkit__tx(). The loop calls:
 *
 *   fit_begin -> [per batch: (diverged) | before_step, step, after_step]
 *             -> epoch_end ... -> fit_end
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

/* ---- the trainer extension ---------------------------------------------- */
typedef struct nnkit__cb {
  nnkit_batch_fn batch_fn;
  nnkit_epoch_fn epoch_fn;
  void *user;
} nnkit__cb;

typedef struct nnkit__trainer_x {
  const nnkit_trainer *owner;
  nnkit_net *net;       /* borrowed */
  nnkit_optimizer *opt; /* borrowed */
  nnkit_log_fn log_fn;
  void *log_user;
  /* settings */
  int layer_stats, sanity_mode, keep_good, diagnose;
  double diverge_factor;
  size_t diverge_window;
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
  int in_fit, verbose, stop;
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
  nnkit_history hist;
  /* sanity checks */
  double sanity[8];
  char sanity_report[768];
} nnkit__trainer_x;

/* The extension of a trainer (defined in trainer.c). */
nnkit__trainer_x *nnkit__tx(const nnkit_trainer *tr);

/* Hooks of the fit loop (monitor.c). */
void nnkit__tx_init(nnkit__trainer_x *x, const nnkit_trainer *tr,
                    nnkit_net *net, nnkit_optimizer *opt);
void nnkit__tx_free(nnkit__trainer_x *x);
/* Trainer settings owned by the extension: returns 1 when key is one of
 * them, with *st the result of setting it (bounds checked here). */
int nnkit__tx_set(nnkit__trainer_x *x, nnkit_train_param key, double value,
                  nnkit_status *st);
int nnkit__tx_get(const nnkit__trainer_x *x, nnkit_train_param key,
                  double *out);
/* Erases a progress bar before a log line is written to standard output. */
void nnkit__tx_clear_line(nnkit__trainer_x *x);
/* samples and batches: per epoch; sanity: 1 when the sanity checks may run
 * on train (not for a pipeline, whose batches differ from its dataset). */
nnkit_status nnkit__tx_fit_begin(nnkit__trainer_x *x,
                                 const nnkit_dataset *train, int has_val,
                                 size_t first_epoch, size_t total_epochs,
                                 size_t samples, size_t batches, int verbose,
                                 int sanity);
/* A non-finite batch loss: records it, restores the last good weights and
 * returns NNKIT_E_DIVERGED with the sentence. */
nnkit_status nnkit__tx_diverged(nnkit__trainer_x *x, size_t epoch,
                                size_t batch, double loss);
/* Before the optimizer step of a batch; last != 0 for the epoch's last. */
void nnkit__tx_before_step(nnkit__trainer_x *x, int last);
/* After the step: records the batch, checks for an exploding loss, draws
 * progress and runs batch callbacks. */
nnkit_status nnkit__tx_after_step(nnkit__trainer_x *x, size_t epoch,
                                  size_t batch, size_t samples, double loss);
nnkit_status nnkit__tx_epoch_end(nnkit__trainer_x *x, size_t epoch,
                                 double train_loss, double train_acc,
                                 double val_loss, double val_acc, double lr,
                                 double seconds, double reg_loss);
/* Every exit of a fit after fit_begin passes through here. */
nnkit_status nnkit__tx_fit_end(nnkit__trainer_x *x, nnkit_status st);
/* Mean loss and accuracy of net over one pass of a pipeline's batches, in
 * evaluation mode (evaluate.c). Allocates nothing after the pipeline's
 * first epoch. */
nnkit_status nnkit__evaluate_pipeline(double *loss_out, double *acc_out,
                                      nnkit_net *net, nnkit_pipeline *p);
/* Logs a line as the trainer does (logger, or standard output). */
void nnkit__tx_log(nnkit__trainer_x *x, const char *line);

#endif /* NNKIT_TRAIN_INTERNAL_H */
