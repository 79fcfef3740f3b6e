/**
 * @file nnkit/normalizer.h
 * Normalizers fitted on the training set only: mean image, per-channel
 * mean, standardization, PCA, PCA and ZCA whitening. A fitted normalizer
 * transforms samples, goes into a pipeline (nnkit/pipeline.h) and is saved
 * with the net it feeds (nnkit_net_save()).
 */
#ifndef NNKIT_NORMALIZER_H
#define NNKIT_NORMALIZER_H

#include "nnkit/core.h"
#include "nnkit/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Normalizers                                                          */
/* ------------------------------------------------------------------ */

/** Kinds of normalizer. Values are fixed forever. In the formulas x is a
 *  sample, mean and std are per feature of the training set (or per
 *  channel for CHANNEL_MEAN), and U, lambda are the eigenvectors and
 *  eigenvalues of its covariance in decreasing order of lambda. */
typedef enum nnkit_norm_kind {
  /** y = x - mean image (one mean per feature, e.g. C x H x W). */
  NNKIT_NORM_MEAN_IMAGE = 1,
  /** y = x - mean[c] for every value of channel c (samples [C, H, W];
   *  [H, W] and 1-D samples are one channel); divided by the channel's std
   *  when NNKIT_NORM_WITH_STD is 1. */
  NNKIT_NORM_CHANNEL_MEAN = 2,
  /** y = (x - mean) / std per feature, scikit-learn's StandardScaler:
   *  population std (divisor n), and a feature of zero variance is only
   *  centred. NNKIT_NORM_WITH_STD 0 skips the division (= MEAN_IMAGE). */
  NNKIT_NORM_STANDARDIZE = 3,
  /** y = (x - mean) U_k: k = NNKIT_NORM_COMPONENTS outputs, scikit-learn's
   *  PCA (covariance with divisor n - 1). The output sample shape is [k]. */
  NNKIT_NORM_PCA = 4,
  /** y = (x - mean) U_k diag(1 / sqrt(lambda_k + eps)): PCA with unit
   *  variance outputs (scikit-learn's PCA(whiten=True) when eps = 0). */
  NNKIT_NORM_PCA_WHITEN = 5,
  /** y = (x - mean) U_k diag(1 / sqrt(lambda_k + eps)) U_k^T: whitened,
   *  then rotated back, so the output keeps the input's shape (images stay
   *  images). k = all components unless set. */
  NNKIT_NORM_ZCA_WHITEN = 6
} nnkit_norm_kind;

/** Normalizer settings, read by nnkit_normalizer_fit(). Values are fixed
 *  forever (append only). */
typedef enum nnkit_norm_param {
  /** Divide by the std: {0, 1}. CHANNEL_MEAN (default 0) and STANDARDIZE
   *  (default 1) only. */
  NNKIT_NORM_WITH_STD = 1,
  /** PCA kinds: components kept, [0, 2^24]; 0 (default) = as many as
   *  NNKIT_NORM_VARIANCE asks for. More than the sample size is an error
   *  at fit time. */
  NNKIT_NORM_COMPONENTS = 2,
  /** PCA kinds, when COMPONENTS is 0: keep the fewest components whose
   *  variance exceeds this fraction of the total (scikit-learn's
   *  n_components = fraction); [0, 1], default 1; 0 and 1 keep all. */
  NNKIT_NORM_VARIANCE = 3,
  /** Whitening kinds: eps added to each eigenvalue, [0, 1e6], default 1e-5.
   *  With 0, a component of zero variance is an error at fit time. */
  NNKIT_NORM_EPSILON = 4,
  /** Fit on a random subset of this many samples (the law of large
   *  numbers: statistics of a few thousand samples are close to the full
   *  set's; see nnkit_normalizer_compare()); [0, 2^53], 0 (default) = all.
   *  A value >= the set's size uses all samples. */
  NNKIT_NORM_FIT_SAMPLES = 5,
  /** Seed of that subset, [0, 2^53], default 0. */
  NNKIT_NORM_SEED = 6
} nnkit_norm_param;

/** Parameter arrays of a fitted normalizer, for saving it. Values are
 *  fixed forever. Every kind computes y = (x - MEAN) * SCALE (elementwise
 *  kinds, broadcast per channel for CHANNEL_MEAN) or y = (x - MEAN) *
 *  PROJECTION (PCA kinds, a matrix product). */
typedef enum nnkit_norm_array {
  NNKIT_NORM_ARRAY_MEAN = 1,       /**< in_size values (C for CHANNEL_MEAN) */
  NNKIT_NORM_ARRAY_SCALE = 2,      /**< multipliers, same length as MEAN;
                                        empty for MEAN_IMAGE and PCA kinds */
  NNKIT_NORM_ARRAY_PROJECTION = 3, /**< in_size x out_size, row-major; PCA kinds */
  NNKIT_NORM_ARRAY_VARIANCES = 4   /**< PCA kinds: lambda of each kept component
                                        (information only; not needed to load) */
} nnkit_norm_array;

/** A normalizer: settings, then (after fitting) the statistics of a
 *  training set. Immutable once fitted, except by refitting. A fitted
 *  normalizer may be used by several threads at once (transform, apply,
 *  getters) as long as none refits or frees it. */
typedef struct nnkit_normalizer nnkit_normalizer;

/** Creates an unfitted normalizer of the given kind with default settings.
 *  @return NNKIT_E_INVALID for an unknown kind; NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_normalizer_create(nnkit_normalizer **out,
                                               nnkit_norm_kind kind);

/** Frees a normalizer; NULL is ignored. */
NNKIT_API void nnkit_normalizer_free(nnkit_normalizer *nz);

/** The normalizer's kind. */
NNKIT_API nnkit_norm_kind nnkit_normalizer_kind(const nnkit_normalizer *nz);

/** Changes a setting; takes effect at the next nnkit_normalizer_fit().
 *  @return NNKIT_E_INVALID for a key this kind does not have, a value
 *          outside its bounds (the sentence gives them) or a fraction where
 *          a whole number is needed. */
NNKIT_API nnkit_status nnkit_normalizer_set(nnkit_normalizer *nz,
                                            nnkit_norm_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for a key this kind does not
 *  have. */
NNKIT_API nnkit_status nnkit_normalizer_get(double *out,
                                            const nnkit_normalizer *nz,
                                            nnkit_norm_param key);

/** The range of a key for a kind: lo, hi and ::nnkit_bound_flag bits
 *  (NULL outputs are skipped), as nnkit_optimizer_bounds().
 *  @return NNKIT_E_INVALID for an unknown kind or a key the kind does not
 *  have. */
NNKIT_API nnkit_status nnkit_normalizer_bounds(double *lo_out, double *hi_out,
                                               int *flags_out, nnkit_norm_kind kind,
                                               nnkit_norm_param key);

/**
 * Fits the normalizer's statistics on a training set (borrowed; only read),
 * replacing earlier ones. Means and variances are accumulated in double;
 * the covariance of the PCA kinds is computed in double with BLAS and
 * decomposed with LAPACK's dsyevd; each eigenvector's sign is chosen so its
 * largest-magnitude entry is positive.
 * @return NNKIT_E_INVALID for a NULL set, fewer than 2 samples for the PCA
 *         kinds, more components than features, or (eps = 0) a kept
 *         component of zero variance; NNKIT_E_NOMEM; NNKIT_E_DIVERGED if
 *         LAPACK fails to converge. On failure an earlier fit is kept.
 */
NNKIT_API nnkit_status nnkit_normalizer_fit(nnkit_normalizer *nz,
                                            const nnkit_dataset *train);

/** 1 when fitted (or built from arrays), 0 otherwise. */
NNKIT_API int nnkit_normalizer_is_fitted(const nnkit_normalizer *nz);

/** Floats per input sample (0 before fitting). */
NNKIT_API size_t nnkit_normalizer_in_size(const nnkit_normalizer *nz);

/** Floats per output sample: in_size, or k for PCA and PCA_WHITEN. */
NNKIT_API size_t nnkit_normalizer_out_size(const nnkit_normalizer *nz);

/** Samples the last fit used (after NNKIT_NORM_FIT_SAMPLES); 0 when not
 *  fitted or built from arrays. */
NNKIT_API size_t nnkit_normalizer_fit_count(const nnkit_normalizer *nz);

/**
 * The input sample shape the normalizer was fitted on (or built for):
 * writes up to NNKIT_MAX_SAMPLE_DIMS sizes into dims_out and the rank into
 * ndim_out.
 * @return NNKIT_E_STATE when not fitted; NNKIT_E_INVALID for NULL pointers
 *         or len smaller than the rank.
 */
NNKIT_API nnkit_status nnkit_normalizer_shape(size_t *dims_out, size_t len,
                                              size_t *ndim_out,
                                              const nnkit_normalizer *nz);

/**
 * Applies the fitted transform in place to every sample of ds. For PCA and
 * PCA_WHITEN the samples become 1-D of out_size values; other kinds keep
 * the shape. A compact (byte) set becomes a float set, 4 bytes per value:
 * for training on a compact set, give the normalizer to a pipeline
 * instead (nnkit_pipeline_set_normalizer()).
 * @return NNKIT_E_STATE when not fitted; NNKIT_E_SHAPE when ds's sample
 *         shape differs from the fitted one (both are named); NNKIT_E_NOMEM
 *         (ds unchanged).
 */
NNKIT_API nnkit_status nnkit_normalizer_apply(const nnkit_normalizer *nz,
                                              nnkit_dataset *ds);

/**
 * Transforms count samples of in_size floats at x into count samples of
 * out_size floats at y. x and y may be the same buffer (then of at least
 * count * in_size floats) but must not otherwise overlap. Allocates a
 * working buffer of at most 256 samples per call.
 * @return NNKIT_E_STATE when not fitted; NNKIT_E_INVALID for NULL buffers
 *         or count 0; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_normalizer_transform(const nnkit_normalizer *nz,
                                                  const float *x, float *y,
                                                  size_t count);

/** Length in floats of a parameter array of the fitted normalizer (0 when
 *  the kind has no such array or it is not fitted). */
NNKIT_API size_t nnkit_normalizer_array_len(const nnkit_normalizer *nz,
                                            nnkit_norm_array which);

/**
 * Copies a parameter array into out (len >= nnkit_normalizer_array_len()).
 * @return NNKIT_E_STATE when not fitted; NNKIT_E_INVALID for an array the
 *         kind does not have, a NULL out or a short len.
 */
NNKIT_API nnkit_status nnkit_normalizer_get_array(float *out, size_t len,
                                                  const nnkit_normalizer *nz,
                                                  nnkit_norm_array which);

/**
 * Rebuilds a fitted normalizer from saved arrays (all copied), e.g. read
 * back from a model file. Settings read back as their defaults except
 * COMPONENTS (= out_size for PCA kinds).
 * @param shape, ndim  the input sample shape.
 * @param out_size     floats per output sample (in_size except for PCA and
 *                     PCA_WHITEN, where 1 <= out_size <= in_size).
 * @param mean         in_size values (C for CHANNEL_MEAN).
 * @param scale        as many values as mean for CHANNEL_MEAN and
 *                     STANDARDIZE (NULL = all ones); must be NULL with
 *                     scale_len 0 for the other kinds.
 * @param projection   in_size x out_size values for the PCA kinds, NULL
 *                     with projection_len 0 otherwise.
 * @return NNKIT_E_INVALID for an unknown kind, a bad shape, a length that
 *         does not match (expected and given are named) or a non-finite
 *         value; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_normalizer_from_arrays(
    nnkit_normalizer **out, nnkit_norm_kind kind, const size_t *shape,
    size_t ndim, size_t out_size, const float *mean, size_t mean_len,
    const float *scale, size_t scale_len, const float *projection,
    size_t projection_len);

/**
 * How far the fitted statistics are from those of ds (typically the full
 * training set after fitting on a subset): mean_diff_out receives the
 * largest absolute difference between a fitted mean and ds's mean of the
 * same feature (channel for CHANNEL_MEAN), std_diff_out the same for the
 * population standard deviations. Either pointer may be NULL. For a
 * normalizer built from arrays the std difference is NaN.
 * @return NNKIT_E_STATE when not fitted; NNKIT_E_SHAPE when ds's sample
 *         shape differs from the fitted one.
 */
NNKIT_API nnkit_status nnkit_normalizer_compare(double *mean_diff_out,
                                                double *std_diff_out,
                                                const nnkit_normalizer *nz,
                                                const nnkit_dataset *ds);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_NORMALIZER_H */
