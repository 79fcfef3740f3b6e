/**
 * @file nnkit/search.h
 * Hyperparameter search: a space of named dimensions, strategies (grid,
 * random, coarse-to-fine, successive halving, Hyperband), an objective
 * (a callback, or the built-in "build, train, validate" one with optional
 * k-fold cross-validation), parallel trials, a results file that a killed
 * search resumes from, and the results table (CSV, JSON Lines).
 *
 * The lecture's recipe in a few calls:
 * @code
 *   nnkit_space *sp;  nnkit_space_create(&sp);
 *   nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-6, 1e-3,
 *                   NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD, NNKIT_OPT_LR);
 *   nnkit_space_add(sp, "reg", NNKIT_DIM_LOG_UNIFORM, 1e-5, 1e5,
 *                   NNKIT_TARGET_REGULARIZER, NNKIT_REG_L2, NNKIT_REG_STRENGTH);
 *   nnkit_search *s;  nnkit_search_create(&s, sp);
 *   nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_COARSE_FINE);
 *   nnkit_search_run_training(s, build, NULL, train, val);
 * @endcode
 */
#ifndef NNKIT_SEARCH_H
#define NNKIT_SEARCH_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/net.h"
#include "nnkit/optim.h"
#include "nnkit/pipeline.h"
#include "nnkit/train.h"

#ifdef __cplusplus
extern "C" {
#endif

/** How a dimension's values are drawn. Values are fixed forever. */
typedef enum nnkit_dim_kind {
  NNKIT_DIM_UNIFORM = 1,     /**< a real number, uniform in [lo, hi] */
  NNKIT_DIM_LOG_UNIFORM = 2, /**< a real number, uniform in log space; 0 < lo */
  NNKIT_DIM_INT = 3,         /**< a whole number, uniform in [lo, hi] */
  NNKIT_DIM_INT_LOG = 4,     /**< a whole number, log-uniform in [lo, hi]; 1 <= lo */
  NNKIT_DIM_CHOICE = 5       /**< one of a list of values (nnkit_space_add_choice()) */
} nnkit_dim_kind;

/** The library setting a dimension drives (or none). With a target, the
 *  dimension's range is checked against the key's bounds when it is added
 *  and the trial's value is set on the object before it trains
 *  (nnkit_trial_apply()). Values are fixed forever. */
typedef enum nnkit_search_target {
  NNKIT_TARGET_NONE = 0,        /**< a free value the objective reads (nnkit_trial_get()) */
  NNKIT_TARGET_OPTIMIZER = 1,   /**< kind: ::nnkit_optim_kind, key: ::nnkit_optim_param */
  NNKIT_TARGET_SCHEDULE = 2,    /**< the optimizer's schedule; kind: ::nnkit_sched_kind,
                                     key: ::nnkit_sched_param */
  NNKIT_TARGET_REGULARIZER = 3, /**< every regularizer of that kind attached to the
                                     optimizer; kind: ::nnkit_reg_kind, key: ::nnkit_reg_param */
  NNKIT_TARGET_TRAINER = 4,     /**< kind 0, key: ::nnkit_train_param */
  NNKIT_TARGET_PIPELINE = 5,    /**< the training pipeline; kind 0, key: ::nnkit_pipe_param */
  /** Layer `kind` (its index in the built net), key: ::nnkit_layer_param. The
   *  range is checked against every layer kind that has the key. An option
   *  fixed once the layer is added (a dense layer's units) is not set: the
   *  build callback reads it with nnkit_trial_get() and passes it to the add
   *  call, and nnkit_trial_apply() checks that it did. */
  NNKIT_TARGET_LAYER = 6
} nnkit_search_target;

/** A space of named dimensions. */
typedef struct nnkit_space nnkit_space;

/** Creates an empty space. @return NNKIT_E_INVALID for a NULL out;
 *  NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_space_create(nnkit_space **out);

/** Frees the space; NULL is ignored. */
NNKIT_API void nnkit_space_free(nnkit_space *sp);

/**
 * Appends a dimension drawn from [lo, hi] (both included).
 * @param name    1 to 63 characters of letters, digits, '_', '.' or '-',
 *                unique in the space (copied); the results' column name.
 * @param kind    any ::nnkit_dim_kind but NNKIT_DIM_CHOICE.
 * @param lo, hi  lo < hi, finite; 0 < lo for NNKIT_DIM_LOG_UNIFORM, whole
 *                numbers with 1 <= lo for NNKIT_DIM_INT_LOG, whole numbers
 *                for NNKIT_DIM_INT.
 * @param target, target_kind, key  the library setting driven (see
 *                ::nnkit_search_target), or NNKIT_TARGET_NONE, 0, 0.
 * @return NNKIT_E_INVALID with a sentence naming the dimension for a bad
 *         name, an empty, inverted or non-finite range, an unknown target,
 *         kind or key, or a range outside the key's bounds (integer keys
 *         need an integer dimension); NNKIT_E_NOMEM. The space is unchanged
 *         on failure.
 */
NNKIT_API nnkit_status nnkit_space_add(nnkit_space *sp, const char *name,
                                       nnkit_dim_kind kind, double lo, double hi,
                                       nnkit_search_target target, int target_kind,
                                       int key);

/**
 * Appends a categorical dimension: one of values[0..n) (copied), n >= 1,
 * each finite and inside the target key's bounds. A grid visits each
 * value; random draws pick one uniformly. Other arguments and errors as
 * nnkit_space_add().
 */
NNKIT_API nnkit_status nnkit_space_add_choice(nnkit_space *sp, const char *name,
                                              const double *values, size_t n,
                                              nnkit_search_target target,
                                              int target_kind, int key);

/** Number of dimensions (0 for NULL). */
NNKIT_API size_t nnkit_space_num_dims(const nnkit_space *sp);

/** Name of dimension `dim` (borrowed from the space until it is freed), or
 *  NULL when dim is out of range. */
NNKIT_API const char *nnkit_space_dim_name(const nnkit_space *sp, size_t dim);

/** Search strategies. Values are fixed forever. */
typedef enum nnkit_search_strategy {
  /** Every combination of GRID_POINTS values per dimension (evenly spaced,
   *  in log space for log dimensions; each value of a choice), EPOCHS each. */
  NNKIT_STRATEGY_GRID = 1,
  /** TRIALS random draws, EPOCHS each. */
  NNKIT_STRATEGY_RANDOM = 2,
  /** TRIALS random draws of EPOCHS each (coarse), then each range narrowed
   *  around the TOP_K best (a quarter of their spread added on each side,
   *  in log space for log dimensions, inside the original range; choices
   *  keep the values the top trials used) and FINE_TRIALS draws of
   *  FINE_EPOCHS each (fine). A warning (nnkit_search_warnings()) when a
   *  best value sits in the outer 10% of its original range (log
   *  space for log dimensions). */
  NNKIT_STRATEGY_COARSE_FINE = 3,
  /** Successive halving: TRIALS random configurations of EPOCHS epochs;
   *  the best 1/ETA of each rung go on with ETA times the epochs, until a
   *  rung reaches MAX_EPOCHS or one configuration is left. */
  NNKIT_STRATEGY_HALVING = 4,
  /** Hyperband: successive halving brackets s = s_max .. 0 (s_max =
   *  floor(log_ETA(MAX_EPOCHS / EPOCHS))), bracket s starting
   *  ceil((s_max + 1) / (s + 1) ETA^s) configurations at MAX_EPOCHS ETA^-s
   *  epochs; TRIALS is not used. */
  NNKIT_STRATEGY_HYPERBAND = 5
} nnkit_search_strategy;

/** Search settings (keyed, nnkit_search_set()). Values are fixed forever. */
typedef enum nnkit_search_param {
  NNKIT_SEARCH_STRATEGY = 1,    /**< ::nnkit_search_strategy, default RANDOM */
  NNKIT_SEARCH_TRIALS = 2,      /**< random, coarse phase, first rung: [1, 1e6], default 20 */
  NNKIT_SEARCH_EPOCHS = 3,      /**< epochs per trial (coarse phase, first rung), [1, 1e6], default 5 */
  NNKIT_SEARCH_FINE_TRIALS = 4, /**< coarse-to-fine: trials of the fine phase, [1, 1e6], default 20 */
  NNKIT_SEARCH_FINE_EPOCHS = 5, /**< coarse-to-fine: epochs per fine trial, [1, 1e6], default 10 */
  NNKIT_SEARCH_TOP_K = 6,       /**< coarse-to-fine: trials the ranges narrow around, [1, 1e6], default 5 */
  NNKIT_SEARCH_GRID_POINTS = 7, /**< grid: values per non-choice dimension, [1, 1e4], default 3 */
  NNKIT_SEARCH_ETA = 8,         /**< halving, Hyperband: [2, 64], default 3 */
  NNKIT_SEARCH_MAX_EPOCHS = 9,  /**< halving, Hyperband: largest epochs of a trial, [1, 1e6], default 27 */
  /** Trials run at once, each on its own thread with nnkit's math and BLAS
   *  at one thread, so the results are the same for every value; [1, 256],
   *  default 1. */
  NNKIT_SEARCH_WORKERS = 10,
  NNKIT_SEARCH_SEED = 11,       /**< draws and each trial's seed, [0, 2^53], default 0 */
  NNKIT_SEARCH_MAXIMIZE = 12,   /**< 1 a higher score is better (default), 0 lower */
  /** Median stopping, {0, 1}, default 0: a trial whose reported score at an
   *  epoch (nnkit_trial_report()) is worse than the median of the earlier
   *  trials of its phase at that epoch (at least 3 of them) is told to
   *  stop, and recorded as NNKIT_TRIAL_PRUNED. "Earlier" is by trial index,
   *  so the decision is the same with any number of workers. */
  NNKIT_SEARCH_PRUNE = 13,
  /** nnkit_search_run_training(): 0 scores on the validation set (default);
   *  k in [2, 100] scores by k-fold cross-validation on the training set
   *  (the mean over the folds, and their standard deviation). */
  NNKIT_SEARCH_FOLDS = 14,
  /** 1: one line per finished trial, in the lecture's format
   *  "val_acc: 0.412000, lr: 1.405206e-04, reg: 4.793564e-01, (1 / 100)",
   *  and one per phase, to the logger or standard output; 0 silent (default). */
  NNKIT_SEARCH_VERBOSE = 15
} nnkit_search_param;

/** What became of a trial. Values are fixed forever. */
typedef enum nnkit_trial_status {
  NNKIT_TRIAL_OK = 1,     /**< finished with a finite score */
  NNKIT_TRIAL_FAILED = 2, /**< the objective failed or its score was not finite; see the reason */
  NNKIT_TRIAL_PRUNED = 3  /**< stopped early by median stopping; score as reported */
} nnkit_trial_status;

/** Figures of a finished trial (nnkit_search_result()). Values are fixed forever. */
typedef enum nnkit_result_field {
  NNKIT_RESULT_SCORE = 1,     /**< the objective's score (NaN for a failed trial) */
  NNKIT_RESULT_SCORE_STD = 2, /**< spread over the folds (sample standard deviation), NaN without folds */
  NNKIT_RESULT_STATUS = 3,    /**< ::nnkit_trial_status; 0 for a trial that did not
                                   run because the objective stopped the search while
                                   a later trial ran on another worker */
  NNKIT_RESULT_EPOCHS = 4,    /**< the trial's epoch budget */
  NNKIT_RESULT_PHASE = 5,     /**< 0-based: coarse 0, fine 1; the rung (Hyperband: counted over brackets) */
  NNKIT_RESULT_CONFIG = 6,    /**< index of the first trial with these values (rungs repeat configurations) */
  NNKIT_RESULT_SECONDS = 7,   /**< wall-clock seconds of the trial */
  NNKIT_RESULT_SEED = 8       /**< the trial's seed (nnkit_trial_seed()) */
} nnkit_result_field;

/** A hyperparameter search. */
typedef struct nnkit_search nnkit_search;

/** One trial, handed to the objective (borrowed for the callback's call). */
typedef struct nnkit_trial nnkit_trial;

/**
 * The objective: trains and scores one trial. Write the score to
 * *score_out and return 0; return < 0 when the trial failed (set a reason
 * with nnkit_trial_set_reason(), or the calling thread's nnkit_last_error()
 * is used) -- it is recorded as failed and the search goes on; return > 0
 * to stop the search cleanly (this trial is not recorded; the finished
 * ones stay). Called from the search's worker threads (several at once
 * when WORKERS > 1): it must be thread-safe and use its own nnkit handles.
 */
typedef int (*nnkit_objective_fn)(double *score_out, nnkit_trial *trial, void *user);

/**
 * The built-in objective's architecture: build the net and its optimizer
 * (with any schedule and regularizers attached) for the trial -- fresh
 * each call, seeded from nnkit_trial_seed() -- and return 0, or < 0 to fail
 * the trial. The search takes both (it frees them). Threads as for
 * ::nnkit_objective_fn.
 */
typedef int (*nnkit_build_fn)(nnkit_net **net_out, nnkit_optimizer **opt_out,
                              const nnkit_trial *trial, void *user);

/** Creates a search over a copy of sp with default settings.
 *  @return NNKIT_E_INVALID for NULL arguments or a space without
 *  dimensions; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_search_create(nnkit_search **out, const nnkit_space *sp);

/** Frees the search; NULL is ignored. */
NNKIT_API void nnkit_search_free(nnkit_search *s);

/** Sets a setting (::nnkit_search_param). The old value is kept on failure.
 *  @return NNKIT_E_INVALID for an unknown key or a value outside its range
 *  ("search workers 0 must be an integer in [1, 256]"). */
NNKIT_API nnkit_status nnkit_search_set(nnkit_search *s, nnkit_search_param key,
                                        double value);

/** Reads a setting. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_search_get(double *out, const nnkit_search *s,
                                        nnkit_search_param key);

/** The range of a setting: lo, hi and ::nnkit_bound_flag bits; any out
 *  pointer may be NULL. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_search_bounds(double *lo_out, double *hi_out,
                                           int *flags_out, nnkit_search_param key);

/** Sends the trial lines to fn(line, user) instead of standard output; fn
 *  NULL restores standard output. Called from worker threads, one line at
 *  a time (never concurrently). */
NNKIT_API void nnkit_search_set_logger(nnkit_search *s, nnkit_log_fn fn, void *user);

/** The score's name in trial lines and results (copied). Default: "score"
 *  with a callback objective; "val_acc" (MAXIMIZE 1) or "val_loss"
 *  (MAXIMIZE 0) with the built-in one. @return NNKIT_E_INVALID for a bad name (rules of
 *  nnkit_space_add()); NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_search_set_score_name(nnkit_search *s, const char *name);

/**
 * The results file (path copied; NULL: none): JSON Lines, one object per
 * finished trial, appended and flushed to disk as each trial ends. When
 * nnkit_search_run() starts and the file exists, its trials are taken as
 * finished and not run again (a killed search resumes); a torn last line
 * (a write cut short) is dropped. Each record's values must be those this
 * search draws for that trial index, else the run fails with NNKIT_E_STATE
 * (the file belongs to another search: use a new file).
 * @return NNKIT_E_INVALID for a path longer than 3000 characters;
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_search_set_results_file(nnkit_search *s, const char *path);

/**
 * Runs the search with a callback objective (fn and user borrowed for the
 * call). The results of earlier runs of s are replaced.
 * @return NNKIT_OK when every planned trial finished (failed trials
 *         included) or the objective stopped the search;
 *         NNKIT_E_INVALID for a NULL fn, or a grid larger than 1e6 trials;
 *         NNKIT_E_FORMAT for a results file with a damaged line that is
 *         not the last; NNKIT_E_STATE for a results file of another
 *         search; NNKIT_E_IO when it cannot be read or written (the
 *         finished trials stay in it); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_search_run(nnkit_search *s, nnkit_objective_fn fn,
                                        void *user);

/**
 * Runs the search with the built-in objective: for each trial (and each
 * fold), build() makes a fresh net and optimizer, nnkit_trial_apply() sets
 * the trial's values, a trainer (SEED = the trial's seed, EPOCHS = its
 * budget) fits it on train and the score is the last epoch's validation
 * accuracy (MAXIMIZE 1) or validation loss (MAXIMIZE 0). With FOLDS k >= 2
 * it is the mean over the k folds of train (nnkit_dataset_fold(), seeded
 * with the search's SEED, the same folds for every trial) and val is not
 * used; otherwise val is the validation set and each epoch's score is
 * reported (median stopping). A diverged fit fails the trial with the
 * trainer's sentence.
 * @param train, val  borrowed; read by several workers at once.
 * @return as nnkit_search_run(), and NNKIT_E_INVALID for a NULL build or
 *         train, or no val without FOLDS.
 */
NNKIT_API nnkit_status nnkit_search_run_training(nnkit_search *s, nnkit_build_fn build,
                                                 void *user,
                                                 const nnkit_dataset *train,
                                                 const nnkit_dataset *val);

/** Number of trials recorded by the last run (resumed ones included). */
NNKIT_API size_t nnkit_search_num_trials(const nnkit_search *s);

/** A figure of recorded trial `trial` (0-based, in trial-index order).
 *  @return NNKIT_E_INVALID for a trial out of range or an unknown field. */
NNKIT_API nnkit_status nnkit_search_result(double *out, const nnkit_search *s,
                                           size_t trial, nnkit_result_field field);

/** The value of dimension `dim` in recorded trial `trial`.
 *  @return NNKIT_E_INVALID for a trial or dim out of range. */
NNKIT_API nnkit_status nnkit_search_value(double *out, const nnkit_search *s,
                                          size_t trial, size_t dim);

/** Why a recorded trial failed or was pruned ("" for a finished one);
 *  borrowed until the next run or free; NULL for a trial out of range. */
NNKIT_API const char *nnkit_search_reason(const nnkit_search *s, size_t trial);

/** The best trial: the best score among the NNKIT_TRIAL_OK trials with the
 *  largest epoch budget any of them had (the fine phase, the last rung);
 *  ties go to the lower index. @return NNKIT_E_STATE when no trial
 *  finished. */
NNKIT_API nnkit_status nnkit_search_best(size_t *out, const nnkit_search *s);

/** The warnings of the last run, one per line ("" when none): a best value
 *  at the edge of its range. Borrowed until the next run or free. */
NNKIT_API const char *nnkit_search_warnings(const nnkit_search *s);

/** Writes the results table as CSV (atomically): trial, phase, config,
 *  epochs, status, score, score_std, seconds, seed, one column per
 *  dimension, reason. @return NNKIT_E_IO; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_search_save_csv(const nnkit_search *s, const char *path);

/** Writes the results table as JSON Lines (atomically), the results file's
 *  format. @return NNKIT_E_IO; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_search_save_jsonl(const nnkit_search *s, const char *path);

/** The trial's value of dimension dim (0 for a dim out of range or a NULL trial). */
NNKIT_API double nnkit_trial_value(const nnkit_trial *t, size_t dim);

/** The trial's value of the dimension named name.
 *  @return NNKIT_E_INVALID for an unknown name. */
NNKIT_API nnkit_status nnkit_trial_get(double *out, const nnkit_trial *t,
                                       const char *name);

/** The trial's index (0-based, the results' order). */
NNKIT_API size_t nnkit_trial_index(const nnkit_trial *t);

/** The trial's seed, in [0, 2^53]: a function of the search's SEED and the
 *  trial's configuration, for the net's initialization and the data order. */
NNKIT_API uint64_t nnkit_trial_seed(const nnkit_trial *t);

/** The trial's epoch budget. */
NNKIT_API size_t nnkit_trial_epochs(const nnkit_trial *t);

/**
 * Reports the score after epoch `epoch` (0-based) of the trial. Returns 1
 * when the trial should stop now (median stopping, or a non-finite score),
 * 0 to go on. With PRUNE on it may wait for earlier trials of the phase to
 * reach that epoch. 0 for a NULL trial.
 */
NNKIT_API int nnkit_trial_report(nnkit_trial *t, size_t epoch, double score);

/** Sets why the trial failed (copied, truncated to 255 bytes), for an
 *  objective about to return < 0. NULL trial or reason: nothing. */
NNKIT_API void nnkit_trial_set_reason(nnkit_trial *t, const char *reason);

/**
 * Sets the trial's values of the dimensions with a target on the given
 * objects: optimizer keys on opt (of that kind), schedule keys on opt's
 * schedule, regularizer keys on every regularizer of that kind attached
 * to opt, trainer keys on tr, pipeline keys on p, layer keys on net. NULL
 * objects skip their targets.
 * @return NNKIT_E_INVALID (with the setting's sentence, naming the
 *         dimension) when a value cannot be set: an optimizer, schedule or
 *         regularizer of another kind, no such layer, or a fixed layer
 *         option whose value differs from the trial's.
 */
NNKIT_API nnkit_status nnkit_trial_apply(const nnkit_trial *t, nnkit_net *net,
                                         nnkit_optimizer *opt, nnkit_trainer *tr,
                                         nnkit_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_SEARCH_H */
