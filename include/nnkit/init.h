/**
 * @file nnkit/init.h
 * Parameter initializers (Xavier, He, normal, uniform, constant), seeded:
 * a net's layers draw from them (nnkit_net_set_init()), and
 * nnkit_init_fill() fills any caller buffer.
 */
#ifndef NNKIT_INIT_H
#define NNKIT_INIT_H

#include "nnkit/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Initializers                                                         */
/* ------------------------------------------------------------------ */

/** Kinds of initializer. Values are fixed forever. */
typedef enum nnkit_init_kind {
  NNKIT_INIT_ZEROS = 0,
  NNKIT_INIT_CONSTANT = 1,       /**< every value = a */
  NNKIT_INIT_NORMAL = 2,         /**< N(mean a, std b) */
  NNKIT_INIT_UNIFORM = 3,        /**< U(lo a, hi b) */
  NNKIT_INIT_XAVIER_NORMAL = 4,  /**< N(0, gain^2 * 2 / (fan_in + fan_out)) */
  NNKIT_INIT_XAVIER_UNIFORM = 5, /**< U(+-gain * sqrt(6 / (fan_in + fan_out))) */
  NNKIT_INIT_HE_NORMAL = 6,      /**< N(0, 2 / ((1 + s^2) fan_in)) */
  NNKIT_INIT_HE_UNIFORM = 7      /**< U(+-sqrt(6 / ((1 + s^2) fan_in))) */
} nnkit_init_kind;

/** A recipe for drawing initial parameter values. Immutable. */
typedef struct nnkit_init nnkit_init;

/**
 * Creates an initializer. The meaning of a and b depends on kind:
 * CONSTANT: a = value; NORMAL: a = mean, b = std (>= 0); UNIFORM: a = lo,
 * b = hi (lo <= hi); XAVIER_*: a = gain (> 0; 0 means 1); HE_*: a = the
 * negative slope s of the following leaky ReLU (0 for ReLU, >= 0).
 * Unused values must be 0.
 * @param out receives the initializer; free it with nnkit_init_free().
 * @return NNKIT_E_INVALID for an unknown kind, a negative std or gain,
 *         lo > hi, or a non-finite value.
 */
NNKIT_API nnkit_status nnkit_init_create(nnkit_init **out, nnkit_init_kind kind,
                                         double a, double b);

/** Frees an initializer; NULL is ignored. */
NNKIT_API void nnkit_init_free(nnkit_init *init);

/** The initializer's kind. */
NNKIT_API nnkit_init_kind nnkit_init_get_kind(const nnkit_init *init);

/**
 * Fills n floats with draws from the initializer for a layer with the given
 * fans. The draw is a pure function of (seed, stream, index): the same
 * arguments give the same values on every machine and thread count.
 * @return NNKIT_E_INVALID for NULL buf with n > 0, or a zero fan for
 *         the Xavier/He kinds.
 */
NNKIT_API nnkit_status nnkit_init_fill(const nnkit_init *init, float *buf,
                                       size_t n, size_t fan_in, size_t fan_out,
                                       uint64_t seed, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_INIT_H */
