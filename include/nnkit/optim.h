/**
 * @file nnkit/optim.h
 * Optimizers: flat update loops over a net's contiguous parameter and
 * gradient buffers. Hyperparameters are enum keys with queryable bounds
 * (zstd's ZSTD_CCtx_setParameter style), so schedules and searches can
 * change and enumerate them generically.
 */
#ifndef NNKIT_OPTIM_H
#define NNKIT_OPTIM_H

#include "nnkit/core.h"
#include "nnkit/model.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Optimizer algorithms. Values are fixed forever. */
typedef enum nnkit_optim_kind {
  NNKIT_OPTIM_SGD = 1 /**< x <- x - lr * g */
} nnkit_optim_kind;

/** Hyperparameter keys. Values are fixed forever (append only). */
typedef enum nnkit_optim_param {
  NNKIT_OPT_LR = 1 /**< learning rate, [0, 1e6], default 0.01 */
} nnkit_optim_param;

/** An optimizer and its state (sized at the first step). */
typedef struct nnkit_optimizer nnkit_optimizer;

/** Creates an optimizer with default hyperparameters.
 *  @param out receives it; free with nnkit_optimizer_free().
 *  @return NNKIT_E_INVALID for an unknown kind. */
NNKIT_API nnkit_status nnkit_optimizer_create(nnkit_optimizer **out,
                                              nnkit_optim_kind kind);

/** Frees an optimizer; NULL is ignored. */
NNKIT_API void nnkit_optimizer_free(nnkit_optimizer *opt);

/** The optimizer's algorithm. */
NNKIT_API nnkit_optim_kind nnkit_optimizer_kind(const nnkit_optimizer *opt);

/** Sets a hyperparameter. @return NNKIT_E_INVALID for a key the algorithm
 *  does not have, or a value outside its bounds (the sentence gives them). */
NNKIT_API nnkit_status nnkit_optimizer_set(nnkit_optimizer *opt,
                                           nnkit_optim_param key, double value);

/** Reads a hyperparameter. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_optimizer_get(double *out,
                                           const nnkit_optimizer *opt,
                                           nnkit_optim_param key);

/** The inclusive range [lo, hi] of a key for an algorithm.
 *  @return NNKIT_E_INVALID when the algorithm does not have the key. */
NNKIT_API nnkit_status nnkit_optimizer_bounds(double *lo_out, double *hi_out,
                                              nnkit_optim_kind kind,
                                              nnkit_optim_param key);

/** Applies one update to net's parameters from net's gradient buffer.
 *  Allocates state only at the first step for a given parameter count.
 *  @return NNKIT_E_STATE for a net without parameters; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_optimizer_step(nnkit_optimizer *opt,
                                            nnkit_net *net);

/** Number of steps taken since creation. */
NNKIT_API uint64_t nnkit_optimizer_steps(const nnkit_optimizer *opt);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_OPTIM_H */
