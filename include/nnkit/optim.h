/**
 * @file nnkit/optim.h
 * Optimizers, learning-rate schedules, regularizers and gradient clipping.
 *
 * Optimizers are flat update loops over a net's contiguous parameter and
 * gradient buffers; they walk the net's layers only to skip frozen ones and
 * to scale the learning rate by each layer's multiplier (see "Fine-tuning"
 * in nnkit/net.h). Hyperparameters of optimizers, schedules and
 * regularizers are enum keys with queryable bounds (zstd's
 * ZSTD_CCtx_setParameter style), so schedules and searches can change and
 * enumerate them generically.
 *
 * One optimizer step (nnkit_optimizer_step()) does, in this order:
 *  1. adds the gradients of the attached penalty regularizers (L2, L1,
 *     elastic net) to the net's gradient buffer and records their penalty;
 *  2. clips the gradients of the trainable layers, by value
 *     (NNKIT_OPT_CLIP_VALUE) and then by global norm (NNKIT_OPT_CLIP_NORM);
 *  3. updates the parameters of every trainable layer with the algorithm's
 *     rule and the layer's learning rate (LR times its multiplier);
 *  4. applies the max-norm constraints of attached regularizers.
 * Steps 1 and 2 change the gradient buffer in place.
 */
#ifndef NNKIT_OPTIM_H
#define NNKIT_OPTIM_H

#include "nnkit/core.h"
#include "nnkit/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Optimizers                                                           */
/* ------------------------------------------------------------------ */

/**
 * Optimizer algorithms. Values are fixed forever (append only). In the
 * formulas g is a parameter's gradient after regularization and clipping,
 * with PyTorch's coupled weight decay already added for every kind but
 * AdamW (g += WEIGHT_DECAY * x), lr the layer's learning rate and t the
 * number of updates the parameter's layer has received, this one included.
 * Every rule equals the torch.optim class named, with its defaults.
 */
typedef enum nnkit_optim_kind {
  /** Stochastic gradient descent, with the lecture's momentum and Nesterov
   *  momentum as settings of the same kind (PyTorch's SGD with
   *  dampening 0): without MOMENTUM x -= lr g; with MOMENTUM rho > 0 the
   *  velocity v = rho v + g (v starts at 0) and x -= lr v, or with
   *  NESTEROV 1, x -= lr (g + rho v). Keys: LR (0.01), MOMENTUM (0),
   *  NESTEROV (0), WEIGHT_DECAY (0). */
  NNKIT_OPTIM_SGD = 1,
  /** RMSProp (torch.optim.RMSprop): s = gamma s + (1 - gamma) g^2,
   *  x -= lr g / (sqrt(s) + eps) -- eps outside the square root. With
   *  MOMENTUM mu > 0: b = mu b + g / (sqrt(s) + eps), x -= lr b.
   *  Keys: LR (0.01), DECAY gamma (0.99), EPS (1e-8), MOMENTUM (0),
   *  WEIGHT_DECAY (0). */
  NNKIT_OPTIM_RMSPROP = 2,
  /** Adagrad (torch.optim.Adagrad, lr_decay 0, initial accumulator 0):
   *  s += g^2, x -= lr g / (sqrt(s) + eps).
   *  Keys: LR (0.01), EPS (1e-10), WEIGHT_DECAY (0). */
  NNKIT_OPTIM_ADAGRAD = 3,
  /** Adam (torch.optim.Adam): m = b1 m + (1 - b1) g,
   *  v = b2 v + (1 - b2) g^2, x -= lr/(1 - b1^t) m / (sqrt(v)/sqrt(1 - b2^t) + eps).
   *  Keys: LR (0.001), BETA1 (0.9), BETA2 (0.999), EPS (1e-8),
   *  WEIGHT_DECAY (0, coupled: added to the gradient). */
  NNKIT_OPTIM_ADAM = 4,
  /** AdamW (torch.optim.AdamW): Adam with decoupled weight decay, applied
   *  to the parameters before the Adam update: x *= 1 - lr WEIGHT_DECAY.
   *  Keys as Adam; WEIGHT_DECAY defaults to 0.01. */
  NNKIT_OPTIM_ADAMW = 5,
  /** NAdam, Adam with Nesterov momentum (torch.optim.NAdam, coupled weight
   *  decay): m and v as Adam, the momentum schedule
   *  mu_t = b1 (1 - 0.96^(t psi) / 2) (psi = MOMENTUM_DECAY) with the
   *  product P_t = mu_1 ... mu_t kept per layer (in double precision), and
   *  x -= lr ((1 - mu_t) / (1 - P_t) g + mu_(t+1) / (1 - P_t mu_(t+1)) m)
   *        / (sqrt(v)/sqrt(1 - b2^t) + eps).
   *  Keys: LR (0.002), BETA1 (0.9), BETA2 (0.999), EPS (1e-8),
   *  WEIGHT_DECAY (0), MOMENTUM_DECAY (0.004). */
  NNKIT_OPTIM_NADAM = 6
} nnkit_optim_kind;

/** Hyperparameter keys. Values are fixed forever (append only). Which
 *  kinds have which key, and the defaults, are listed at ::nnkit_optim_kind;
 *  nnkit_optimizer_bounds() gives each range. */
typedef enum nnkit_optim_param {
  NNKIT_OPT_LR = 1,           /**< learning rate, [0, 1e6] */
  NNKIT_OPT_MOMENTUM = 2,     /**< SGD, RMSProp: momentum, [0, 1) */
  NNKIT_OPT_NESTEROV = 3,     /**< SGD: 1 for Nesterov momentum, 0 or 1 */
  NNKIT_OPT_WEIGHT_DECAY = 4, /**< every kind: weight decay, [0, 1e6]; applies to
                                   every parameter the optimizer updates (biases
                                   too, as in PyTorch) and is not part of the
                                   reported cost -- use an L2 regularizer for that */
  NNKIT_OPT_BETA1 = 5,        /**< Adam, AdamW, NAdam: first-moment decay, [0, 1) */
  NNKIT_OPT_BETA2 = 6,        /**< Adam, AdamW, NAdam: second-moment decay, [0, 1) */
  NNKIT_OPT_EPS = 7,          /**< RMSProp, Adagrad, Adam, AdamW, NAdam: (0, 1] */
  NNKIT_OPT_DECAY = 8,        /**< RMSProp: decay rate gamma (PyTorch's alpha), [0, 1) */
  NNKIT_OPT_CLIP_NORM = 9,    /**< every kind: largest global L2 norm of the trainable
                                   layers' gradients, which are scaled by
                                   c / (norm + 1e-6) when norm exceeds c (PyTorch's
                                   clip_grad_norm_); 0 = off (default); [0, 1e30] */
  NNKIT_OPT_CLIP_VALUE = 10,  /**< every kind: gradients clamped to [-c, c] (PyTorch's
                                   clip_grad_value_); 0 = off (default); [0, 1e30] */
  NNKIT_OPT_MOMENTUM_DECAY = 11 /**< NAdam: psi of the momentum schedule, [0, 1e6] */
} nnkit_optim_param;

/** An optimizer, its state (sized at the first step), and the schedule and
 *  regularizers attached to it. */
typedef struct nnkit_optimizer nnkit_optimizer;

/** A learning-rate schedule; see nnkit_schedule_create(). */
typedef struct nnkit_schedule nnkit_schedule;

/** A regularizer; see nnkit_regularizer_create(). */
typedef struct nnkit_regularizer nnkit_regularizer;

/** Creates an optimizer with default hyperparameters.
 *  @param out receives it; free with nnkit_optimizer_free().
 *  @return NNKIT_E_INVALID for an unknown kind; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_optimizer_create(nnkit_optimizer **out,
                                              nnkit_optim_kind kind);

/** Frees an optimizer with its state, schedule and regularizers; NULL is
 *  ignored. */
NNKIT_API void nnkit_optimizer_free(nnkit_optimizer *opt);

/** The optimizer's algorithm. */
NNKIT_API nnkit_optim_kind nnkit_optimizer_kind(const nnkit_optimizer *opt);

/** Sets a hyperparameter. With a schedule attached, NNKIT_OPT_LR sets the
 *  schedule's base learning rate and the current rate becomes what the
 *  schedule gives for its current step.
 *  @return NNKIT_E_INVALID for a key the algorithm does not have, or a value
 *  outside its bounds; the sentence gives the range, e.g. "SGD momentum 1 is
 *  outside its range [0, 1)". The old value is kept on failure. */
NNKIT_API nnkit_status nnkit_optimizer_set(nnkit_optimizer *opt,
                                           nnkit_optim_param key, double value);

/** Reads a hyperparameter; NNKIT_OPT_LR gives the current learning rate
 *  (as set by an attached schedule). @return NNKIT_E_INVALID for a key the
 *  algorithm does not have. */
NNKIT_API nnkit_status nnkit_optimizer_get(double *out,
                                           const nnkit_optimizer *opt,
                                           nnkit_optim_param key);

/** The range of a key for an algorithm: lo, hi and ::nnkit_bound_flag bits
 *  saying which ends are excluded and whether only integers are allowed.
 *  Any out pointer may be NULL.
 *  @return NNKIT_E_INVALID when the algorithm does not have the key. */
NNKIT_API nnkit_status nnkit_optimizer_bounds(double *lo_out, double *hi_out,
                                              int *flags_out,
                                              nnkit_optim_kind kind,
                                              nnkit_optim_param key);

/** Applies one update to net's parameters from net's gradient buffer (see
 *  the file comment for what a step does). The first step sizes the state
 *  for net; later steps allocate nothing (unless MOMENTUM is first set
 *  above 0 after the first step, which adds a velocity buffer once).
 *  @return NNKIT_E_STATE for a net without parameters or with a different
 *  parameter count than the state was sized for (call
 *  nnkit_optimizer_reset() to start over with another net);
 *  NNKIT_E_INVALID when a regularizer names a layer the net does not have;
 *  NNKIT_E_NOMEM. Nothing changes on failure. */
NNKIT_API nnkit_status nnkit_optimizer_step(nnkit_optimizer *opt,
                                            nnkit_net *net);

/**
 * One training step on one batch, in one call: nnkit_net_forward() of x in
 * the net's current mode, nnkit_net_backward() with labels or targets, then
 * nnkit_optimizer_step() -- Keras's train_on_batch. For loops driven from
 * another language (one foreign call per batch instead of three) or by
 * the application's own batching; nnkit_trainer_fit() remains the loop
 * with history, callbacks and checks.
 * @param loss_out  the batch's data loss before the step (may be NULL).
 * @param x         batch x nnkit_net_input_size() floats, borrowed.
 * @param labels, targets  as nnkit_net_backward().
 * @return the errors of those three calls; NNKIT_E_DIVERGED, with the
 *         parameters left unchanged, when the loss is NaN or infinite.
 */
NNKIT_API nnkit_status nnkit_optimizer_train_batch(double *loss_out,
                                                   nnkit_optimizer *opt,
                                                   nnkit_net *net, const float *x,
                                                   size_t batch,
                                                   const int32_t *labels,
                                                   const float *targets);

/** Number of steps taken since creation or the last reset. */
NNKIT_API uint64_t nnkit_optimizer_steps(const nnkit_optimizer *opt);

/** The regularization penalty the regularizers added at the last step (0
 *  before the first step or without penalty regularizers): the part of the
 *  cost that is not data loss. */
NNKIT_API double nnkit_optimizer_reg_loss(const nnkit_optimizer *opt);

/** Forgets the state: moments, velocities and step counts, so the next step
 *  sizes it again (possibly for another net), and rewinds an attached
 *  schedule to its first step. Hyperparameters, schedule and regularizers
 *  stay. NULL is ignored. */
NNKIT_API void nnkit_optimizer_reset(nnkit_optimizer *opt);

/**
 * Floats of per-parameter state (velocities, moments): a multiple of the
 * parameter count of the net the optimizer stepped, 0 before the first step
 * and for plain SGD. Stored buffer after buffer, each in the parameter
 * buffer's order: SGD velocity; RMSProp s then momentum b; Adagrad s; Adam,
 * AdamW and NAdam m then v.
 */
NNKIT_API size_t nnkit_optimizer_state_size(const nnkit_optimizer *opt);

/** Doubles of scalar state: format version, kind, step counts (total and
 *  per layer), per-layer scalars of the kind (NAdam's momentum products)
 *  and the attached schedule's position. Treat as opaque. */
NNKIT_API size_t nnkit_optimizer_state_scalars(const nnkit_optimizer *opt);

/**
 * Copies the optimizer's state out, for a checkpoint.
 * @param state_out    nnkit_optimizer_state_size() floats (NULL when 0).
 * @param state_len    its length, at least that size.
 * @param scalars_out  nnkit_optimizer_state_scalars() doubles.
 * @param scalars_len  its length, at least that count.
 * @return NNKIT_E_INVALID for NULL or short buffers (the sentence gives the
 *         sizes).
 */
NNKIT_API nnkit_status nnkit_optimizer_get_state(float *state_out,
                                                 size_t state_len,
                                                 double *scalars_out,
                                                 size_t scalars_len,
                                                 const nnkit_optimizer *opt);

/**
 * Restores state written by nnkit_optimizer_get_state() (copied), so that
 * training resumes exactly where it stopped. opt must be of the same kind,
 * have a schedule of the same kind attached if the saved one had one, and
 * net (borrowed, only read) must have the parameter count the state was
 * sized for. Hyperparameters are not part of the state: set them as before.
 * @return NNKIT_E_INVALID for NULL arguments, lengths that do not fit,
 *         another kind or schedule, or values that are not a saved state
 *         (the sentence says which); NNKIT_E_NOMEM. Nothing changes on
 *         failure.
 */
NNKIT_API nnkit_status nnkit_optimizer_set_state(nnkit_optimizer *opt,
                                                 const nnkit_net *net,
                                                 const float *state,
                                                 size_t state_len,
                                                 const double *scalars,
                                                 size_t scalars_len);

/* ------------------------------------------------------------------ */
/* Learning-rate schedules                                              */
/* ------------------------------------------------------------------ */

/**
 * Schedule kinds. Values are fixed forever (append only). A schedule
 * counts steps t = 0, 1, 2, ...; the trainer advances it once at the end of
 * each epoch (PyTorch's convention) or, with NNKIT_SCHED_PER_BATCH 1, after
 * each optimizer step. base is the optimizer's learning rate when the
 * schedule was attached (or NNKIT_OPT_LR set later).
 *
 * Warm-up composes with every kind: with NNKIT_SCHED_WARMUP_STEPS W > 0,
 * lr(t) = base (s + (1 - s) t / W) for t < W (s = NNKIT_SCHED_WARMUP_START,
 * PyTorch's LinearLR), after which the schedule below runs from its own
 * step u = t - W (PyTorch's SequentialLR). Without warm-up u = t.
 */
typedef enum nnkit_sched_kind {
  NNKIT_SCHEDULE_CONSTANT = 1,    /**< base (useful with warm-up) */
  NNKIT_SCHEDULE_STEP = 2,        /**< base gamma^floor(u / STEP_SIZE) (StepLR) */
  NNKIT_SCHEDULE_MULTISTEP = 3,   /**< base gamma^(milestones <= u) (MultiStepLR);
                                       see nnkit_schedule_set_milestones() */
  NNKIT_SCHEDULE_EXPONENTIAL = 4, /**< base gamma^u (ExponentialLR) */
  /** min + (base - min) (1 + cos(pi u / T_MAX)) / 2 (CosineAnnealingLR;
   *  as there, the rate climbs back after T_MAX steps). */
  NNKIT_SCHEDULE_COSINE = 5,
  /** SGDR, cosine annealing with warm restarts (CosineAnnealingWarmRestarts):
   *  the cosine above over periods of T_0, T_0 T_MULT, T_0 T_MULT^2, ...
   *  steps, restarting at base at the start of each. */
  NNKIT_SCHEDULE_COSINE_RESTARTS = 6,
  /** Reduce on plateau (ReduceLROnPlateau): each step is fed a monitored
   *  value (the trainer feeds the validation loss, or the training cost
   *  data + regularization when there is no validation set); after more
   *  than PATIENCE steps without an improvement by THRESHOLD the rate is
   *  multiplied by GAMMA (not below MIN_LR), then COOLDOWN steps are
   *  ignored. Only per epoch. */
  NNKIT_SCHEDULE_PLATEAU = 7
} nnkit_sched_kind;

/** Schedule settings. Values are fixed forever (append only); defaults
 *  are PyTorch's. nnkit_schedule_bounds() gives each range. */
typedef enum nnkit_sched_param {
  NNKIT_SCHED_GAMMA = 1,          /**< STEP, MULTISTEP (0.1), EXPONENTIAL (0.95): (0, 1];
                                       PLATEAU, the reduction factor: (0, 1), 0.1 */
  NNKIT_SCHED_STEP_SIZE = 2,      /**< STEP: steps per decay, integer >= 1, 10 */
  NNKIT_SCHED_T_MAX = 3,          /**< COSINE: half period, integer >= 1, 10 */
  NNKIT_SCHED_MIN_LR = 4,         /**< COSINE, COSINE_RESTARTS: eta_min; PLATEAU:
                                       floor of the rate; [0, 1e6], 0 */
  NNKIT_SCHED_T_0 = 5,            /**< COSINE_RESTARTS: first period, integer >= 1, 10 */
  NNKIT_SCHED_T_MULT = 6,         /**< COSINE_RESTARTS: period growth, integer >= 1, 1 */
  NNKIT_SCHED_PATIENCE = 7,       /**< PLATEAU: integer >= 0, 10 */
  NNKIT_SCHED_THRESHOLD = 8,      /**< PLATEAU: smallest improvement, [0, 1e6], 1e-4 */
  NNKIT_SCHED_THRESHOLD_ABS = 9,  /**< PLATEAU: 0 relative (default), 1 absolute */
  NNKIT_SCHED_COOLDOWN = 10,      /**< PLATEAU: integer >= 0, 0 */
  NNKIT_SCHED_MAXIMIZE = 11,      /**< PLATEAU: 0 lower is better (default), 1 higher */
  NNKIT_SCHED_WARMUP_STEPS = 12,  /**< every kind: W, integer >= 0, 0 = no warm-up */
  NNKIT_SCHED_WARMUP_START = 13,  /**< every kind: s, [0, 1], 1/3 */
  NNKIT_SCHED_PER_BATCH = 14      /**< every kind but PLATEAU: 1 to advance after each
                                       optimizer step instead of each epoch, 0 or 1 */
} nnkit_sched_param;

/** Creates a schedule with default settings.
 *  @param out receives it; free with nnkit_schedule_free() unless it is
 *  attached to an optimizer, which then owns it.
 *  @return NNKIT_E_INVALID for an unknown kind; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_schedule_create(nnkit_schedule **out,
                                             nnkit_sched_kind kind);

/** Frees a schedule that is not attached to an optimizer; NULL and an
 *  attached schedule (freed with its optimizer) are ignored. */
NNKIT_API void nnkit_schedule_free(nnkit_schedule *sched);

/** The schedule's kind. */
NNKIT_API nnkit_sched_kind nnkit_schedule_kind(const nnkit_schedule *sched);

/** Sets a setting; it takes effect at the schedule's next step.
 *  @return NNKIT_E_INVALID for a key the kind does not have or a value
 *  outside its range (the sentence gives the range). */
NNKIT_API nnkit_status nnkit_schedule_set(nnkit_schedule *sched,
                                          nnkit_sched_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for a key the kind does not have. */
NNKIT_API nnkit_status nnkit_schedule_get(double *out,
                                          const nnkit_schedule *sched,
                                          nnkit_sched_param key);

/** The range of a key for a kind, as nnkit_optimizer_bounds().
 *  @return NNKIT_E_INVALID when the kind does not have the key. */
NNKIT_API nnkit_status nnkit_schedule_bounds(double *lo_out, double *hi_out,
                                             int *flags_out,
                                             nnkit_sched_kind kind,
                                             nnkit_sched_param key);

/** Sets the milestones of a MULTISTEP schedule: count strictly increasing
 *  step numbers (copied); none by default.
 *  @return NNKIT_E_INVALID for another kind, NULL with count > 0, more than
 *  1024 milestones, or values that do not increase; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_schedule_set_milestones(nnkit_schedule *sched,
                                                     const uint64_t *milestones,
                                                     size_t count);

/** Steps the schedule has taken since it was attached (or rewound). */
NNKIT_API uint64_t nnkit_schedule_steps(const nnkit_schedule *sched);

/**
 * Attaches a schedule to an optimizer, which takes ownership of it (freeing
 * any schedule attached before): the schedule starts at step 0 with the
 * optimizer's current learning rate as its base, and sets the learning rate
 * to its step-0 value at once. sched stays readable and settable through
 * the pointer (borrowed) until the optimizer is freed or the schedule is
 * replaced. NULL detaches (and frees) the current schedule and leaves the
 * learning rate as it is.
 * @return NNKIT_E_INVALID for a NULL optimizer or a schedule attached to
 *         another optimizer; the caller keeps ownership on failure.
 */
NNKIT_API nnkit_status nnkit_optimizer_set_schedule(nnkit_optimizer *opt,
                                                    nnkit_schedule *sched);

/** The attached schedule (borrowed), or NULL. */
NNKIT_API nnkit_schedule *nnkit_optimizer_schedule(nnkit_optimizer *opt);

/**
 * Advances the attached schedule by one step and sets the learning rate
 * from it. nnkit_trainer_fit() calls this for you; call it yourself in
 * hand-written loops. monitored feeds a PLATEAU schedule (NaN counts as no
 * improvement) and is ignored by the other kinds.
 * @return NNKIT_E_STATE when no schedule is attached.
 */
NNKIT_API nnkit_status nnkit_optimizer_schedule_step(nnkit_optimizer *opt,
                                                     double monitored);

/* ------------------------------------------------------------------ */
/* Regularizers                                                         */
/* ------------------------------------------------------------------ */

/**
 * Regularizer kinds. Values are fixed forever (append only). The penalty
 * kinds add lambda R(w) to the cost (the lecture's R) and its gradient to
 * the gradient buffer at each optimizer step; the sums run over the
 * weights of the selected trainable layers (the first num_weights floats
 * of a dense or conv2d layer's slice), biases and batch-norm parameters
 * only when NNKIT_REG_WITH_BIASES / NNKIT_REG_WITH_BATCHNORM say so.
 */
typedef enum nnkit_reg_kind {
  /** lambda sum w^2 (gradient 2 lambda w; the same update as PyTorch's
   *  weight_decay = 2 lambda). */
  NNKIT_REG_L2 = 1,
  /** lambda sum |w| (gradient lambda sign(w), 0 at 0). */
  NNKIT_REG_L1 = 2,
  /** lambda (r sum |w| + (1 - r) sum w^2), r = NNKIT_REG_L1_RATIO. */
  NNKIT_REG_ELASTIC_NET = 3,
  /** Max-norm constraint: after each update every row of a dense layer's
   *  weight matrix (a unit's incoming weights) and every output filter of a
   *  conv2d layer is scaled back to L2 norm NNKIT_REG_MAX when it is
   *  longer. Adds nothing to the cost. */
  NNKIT_REG_MAX_NORM = 4
} nnkit_reg_kind;

/** Regularizer settings. Values are fixed forever (append only). */
typedef enum nnkit_reg_param {
  NNKIT_REG_STRENGTH = 1,        /**< L2, L1, ELASTIC_NET: lambda, [0, 1e6] */
  NNKIT_REG_L1_RATIO = 2,        /**< ELASTIC_NET: r, [0, 1], 0.5 */
  NNKIT_REG_MAX = 3,             /**< MAX_NORM: largest row norm, (0, 1e6] */
  NNKIT_REG_WITH_BIASES = 4,     /**< L2, L1, ELASTIC_NET: 1 to include biases, 0 (default) or 1 */
  NNKIT_REG_WITH_BATCHNORM = 5   /**< L2, L1, ELASTIC_NET: 1 to include the scale and
                                      shift of normalization layers (gamma and beta of
                                      batch norm and layer norm), 0 (default) or 1 */
} nnkit_reg_param;

/**
 * Creates a regularizer acting on every layer (see
 * nnkit_regularizer_set_layers() to choose layers).
 * @param value  lambda (NNKIT_REG_STRENGTH) for the penalty kinds, the
 *               largest norm (NNKIT_REG_MAX) for NNKIT_REG_MAX_NORM.
 * @param out    receives it; free with nnkit_regularizer_free() unless it
 *               is attached to an optimizer, which then owns it.
 * @return NNKIT_E_INVALID for an unknown kind or a value outside its range;
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_regularizer_create(nnkit_regularizer **out,
                                                nnkit_reg_kind kind,
                                                double value);

/** Frees a regularizer that is not attached to an optimizer; NULL and an
 *  attached regularizer (freed with its optimizer) are ignored. */
NNKIT_API void nnkit_regularizer_free(nnkit_regularizer *reg);

/** The regularizer's kind. */
NNKIT_API nnkit_reg_kind nnkit_regularizer_kind(const nnkit_regularizer *reg);

/** Sets a setting. @return NNKIT_E_INVALID for a key the kind does not have
 *  or a value outside its range (the sentence gives the range). */
NNKIT_API nnkit_status nnkit_regularizer_set(nnkit_regularizer *reg,
                                             nnkit_reg_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for a key the kind does not have. */
NNKIT_API nnkit_status nnkit_regularizer_get(double *out,
                                             const nnkit_regularizer *reg,
                                             nnkit_reg_param key);

/** The range of a key for a kind, as nnkit_optimizer_bounds().
 *  @return NNKIT_E_INVALID when the kind does not have the key. */
NNKIT_API nnkit_status nnkit_regularizer_bounds(double *lo_out, double *hi_out,
                                                int *flags_out,
                                                nnkit_reg_kind kind,
                                                nnkit_reg_param key);

/** Restricts the regularizer to count layers (indices copied, in any order,
 *  no repeats); count 0 means every layer again. Layers without
 *  parameters are allowed and ignored. Indices are checked against the net
 *  at each step.
 *  @return NNKIT_E_INVALID for NULL layers with count > 0 or a repeated
 *  index; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_regularizer_set_layers(nnkit_regularizer *reg,
                                                    const size_t *layers,
                                                    size_t count);

/** The penalty lambda R(w) the regularizer gives net's current parameters
 *  (0 for max-norm), as one optimizer step would add it to the cost.
 *  @return NNKIT_E_INVALID for NULL arguments or a selected layer the net
 *  does not have; NNKIT_E_NOMEM when the net's parameters cannot be
 *  allocated. */
NNKIT_API nnkit_status nnkit_regularizer_penalty(double *out,
                                                 const nnkit_regularizer *reg,
                                                 nnkit_net *net);

/** Attaches a regularizer to an optimizer, which takes ownership and
 *  applies it at every step, after the regularizers attached before it.
 *  reg stays readable and settable through the pointer (borrowed) until
 *  the optimizer is freed.
 *  @return NNKIT_E_INVALID for NULL arguments or a regularizer attached
 *  already; NNKIT_E_NOMEM. The caller keeps ownership on failure. */
NNKIT_API nnkit_status nnkit_optimizer_add_regularizer(nnkit_optimizer *opt,
                                                       nnkit_regularizer *reg);

/** Number of regularizers attached to the optimizer. */
NNKIT_API size_t nnkit_optimizer_num_regularizers(const nnkit_optimizer *opt);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_OPTIM_H */
