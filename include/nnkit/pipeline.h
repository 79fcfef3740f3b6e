/**
 * @file nnkit/pipeline.h
 * Data pipelines: augmentation and the batch pipeline that feeds a net
 * shuffled, normalized (nnkit/normalizer.h), augmented mini-batches
 * prepared by a background thread. Loaders, splits and class names are
 * nnkit/data.h.
 *
 * Everything random here (splits, fit subsets, augmentation, batch order)
 * draws from nnkit's counter-based generator keyed by an explicit seed, so
 * the same seed gives bitwise-identical results on every run, whatever the
 * number of threads or the timing of the prefetching thread.
 */
#ifndef NNKIT_PIPELINE_H
#define NNKIT_PIPELINE_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/normalizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Augmentation                                                         */
/* ------------------------------------------------------------------ */

/**
 * Kinds of random transform, with the meaning of their parameters a and b
 * in nnkit_augmenter_add(). Values are fixed forever. Ranges [a, b] are
 * drawn uniformly (a <= b; a == b gives a fixed value).
 *
 * Geometric kinds act on the pixel grid about the image centre; all those
 * that fire for a sample are composed, in chain order, into ONE affine map
 * applied with bilinear interpolation, so a rotation followed by a scaling
 * blurs once. Points that fall outside the source image read as 0. The
 * other kinds act on values afterwards, in chain order.
 */
typedef enum nnkit_aug_kind {
  NNKIT_AUG_HFLIP = 1,      /**< mirror left-right; a = b = 0 */
  NNKIT_AUG_VFLIP = 2,      /**< mirror top-bottom; a = b = 0 */
  NNKIT_AUG_ROTATE = 3,     /**< rotate by [a, b] degrees, counter-clockwise
                                 as seen on screen; |a|, |b| <= 360 */
  NNKIT_AUG_SCALE = 4,      /**< zoom by a factor in [a, b], 0 < a, b <= 16 */
  NNKIT_AUG_STRETCH = 5,    /**< zoom x and y by independent factors in [a, b] */
  NNKIT_AUG_SHEAR_X = 6,    /**< x += tan(s) * y, s in [a, b] degrees, |s| < 80 */
  NNKIT_AUG_SHEAR_Y = 7,    /**< y += tan(s) * x, s in [a, b] degrees */
  NNKIT_AUG_TRANSLATE = 8,  /**< shift by dx in [-a, a] and dy in [-b, b]
                                 pixels (fractions interpolate), a, b >= 0 */
  NNKIT_AUG_CROP = 9,       /**< pad a pixels of 0 on every side and crop a
                                 random window of the original size (a whole
                                 number in [1, 1024], b = 0); an integer shift */
  NNKIT_AUG_BRIGHTNESS = 10,/**< add delta in [a, b] to every value */
  NNKIT_AUG_CONTRAST = 11,  /**< m + f (x - m), f in [a, b] >= 0, m the sample's
                                 mean over all its values */
  NNKIT_AUG_SATURATION = 12,/**< RGB samples only: g + f (x - g) with g the
                                 pixel's luma 0.299 R + 0.587 G + 0.114 B,
                                 f in [a, b] >= 0 (0 = grayscale) */
  NNKIT_AUG_NOISE = 13,     /**< add Gaussian noise of std in [a, b] >= 0 */
  NNKIT_AUG_ERASE = 14      /**< random erasing: zero a rectangle (all
                                 channels) covering a fraction in [a, b] of
                                 the area, 0 < a <= b <= 1, aspect ratio
                                 log-uniform in [0.3, 3.3], placed uniformly */
} nnkit_aug_kind;

/** A chain of random transforms, each applied with its own probability. */
typedef struct nnkit_augmenter nnkit_augmenter;

/** Creates an empty chain (the identity). @return NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_augmenter_create(nnkit_augmenter **out);

/** Frees an augmenter; NULL is ignored. */
NNKIT_API void nnkit_augmenter_free(nnkit_augmenter *aug);

/**
 * Appends a transform to the chain.
 * @param probability  chance in [0, 1] that it fires for a sample.
 * @param a, b         parameters, see ::nnkit_aug_kind (unused ones 0).
 * @return NNKIT_E_INVALID for an unknown kind, a probability outside
 *         [0, 1], or parameters outside their ranges (the sentence says
 *         which); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_augmenter_add(nnkit_augmenter *aug,
                                           nnkit_aug_kind kind,
                                           double probability, double a,
                                           double b);

/** Number of transforms in the chain. */
NNKIT_API size_t nnkit_augmenter_count(const nnkit_augmenter *aug);

/**
 * Augments count samples of shape [C, H, W] (or [H, W]) in place. Sample i
 * draws its random choices from (seed, epoch, first_index + i) only, so a
 * sample's augmentation depends on nothing else (not the batch, the batch
 * order or the thread count). Labels are not touched: no transform changes
 * a sample's class.
 * @return NNKIT_E_INVALID for NULL x, count 0 or a bad shape;
 *         NNKIT_E_SHAPE for SATURATION on samples without 3 channels;
 *         NNKIT_E_NOMEM (one sample of working memory per call).
 */
NNKIT_API nnkit_status nnkit_augmenter_apply(const nnkit_augmenter *aug,
                                             float *x, size_t count,
                                             const size_t *shape, size_t ndim,
                                             uint64_t seed, uint64_t epoch,
                                             uint64_t first_index);

/* ------------------------------------------------------------------ */
/* Batch pipelines                                                      */
/* ------------------------------------------------------------------ */

/** Pipeline settings. Values are fixed forever (append only). */
typedef enum nnkit_pipe_param {
  NNKIT_PIPE_BATCH_SIZE = 1, /**< samples per batch, [1, 65536], default 64 */
  NNKIT_PIPE_SHUFFLE = 2,    /**< new random order each epoch, {0, 1}, default 1 */
  NNKIT_PIPE_DROP_LAST = 3,  /**< drop a last, smaller batch, {0, 1}, default 0 */
  /** Class-balanced sampling, {0, 1}, default 0: each epoch draws as many
   *  samples as the set holds, each from a class chosen uniformly among the
   *  classes present, then a sample of that class uniformly (with
   *  replacement). Labelled sets only. */
  NNKIT_PIPE_BALANCED = 4,
  /** Batches a background thread prepares ahead, [0, 16], default 2;
   *  0 prepares each batch in nnkit_pipeline_next() (no thread). The
   *  batches are the same either way. */
  NNKIT_PIPE_PREFETCH = 5,
  NNKIT_PIPE_SEED = 6        /**< seed of order and augmentation, [0, 2^53], default 0 */
} nnkit_pipe_param;

/** dataset -> normalizer -> augmenter -> mini-batches. */
typedef struct nnkit_pipeline nnkit_pipeline;

/**
 * Creates a pipeline over ds (borrowed: it must outlive the pipeline and
 * stay unchanged while the pipeline is used) with default settings, no
 * normalizer and no augmenter.
 * @return NNKIT_E_INVALID for NULL arguments; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_pipeline_create(nnkit_pipeline **out,
                                             const nnkit_dataset *ds);

/** Stops the background thread and frees the pipeline (not its dataset);
 *  NULL is ignored. */
NNKIT_API void nnkit_pipeline_free(nnkit_pipeline *p);

/** Changes a setting. Ends the current epoch (call
 *  nnkit_pipeline_begin_epoch() again). @return NNKIT_E_INVALID for an
 *  unknown key or a value outside its bounds; BALANCED 1 on a set without
 *  labels. */
NNKIT_API nnkit_status nnkit_pipeline_set(nnkit_pipeline *p,
                                          nnkit_pipe_param key, double value);

/** Reads a setting. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_pipeline_get(double *out, const nnkit_pipeline *p,
                                          nnkit_pipe_param key);

/** The range of a key: lo, hi and ::nnkit_bound_flag bits (NULL outputs
 *  are skipped), as nnkit_optimizer_bounds(); every pipeline key is a
 *  whole number. @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_pipeline_bounds(double *lo_out, double *hi_out,
                                             int *flags_out, nnkit_pipe_param key);

/**
 * Normalizes every batch with a copy of nz (fitted; copied, so nz may be
 * freed afterwards), or removes the normalizer when nz is NULL. Ends the
 * current epoch. The pipeline applies the normalizer once, at the next
 * nnkit_pipeline_begin_epoch(), to its own copy of the dataset (count x
 * output sample size floats), so epochs do not pay for it again.
 * @return NNKIT_E_STATE for an unfitted nz; NNKIT_E_SHAPE when nz was
 *         fitted on another sample shape; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_pipeline_set_normalizer(nnkit_pipeline *p,
                                                     const nnkit_normalizer *nz);

/**
 * Augments every batch (after normalization) with a copy of aug, or
 * removes augmentation when aug is NULL. Ends the current epoch. The
 * samples reaching it must be images: [C, H, W] or [H, W].
 * @return NNKIT_E_SHAPE for samples that are not images (e.g. after PCA)
 *         or SATURATION without 3 channels; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_pipeline_set_augmenter(nnkit_pipeline *p,
                                                    const nnkit_augmenter *aug);

/**
 * Starts epoch `epoch`: draws its sample order from (SEED, epoch) and, with
 * PREFETCH > 0, lets the background thread (started at the first call)
 * prepare the first batches. Batch contents are a pure function of the
 * dataset, the settings, the seed and the epoch. Sizes working memory at
 * the first call after a setting changed; later epochs allocate nothing.
 * @return NNKIT_E_INVALID when DROP_LAST leaves no batch (batch size above
 *         the sample count); NNKIT_E_NOMEM; NNKIT_E_STATE when the thread
 *         cannot be started.
 */
NNKIT_API nnkit_status nnkit_pipeline_begin_epoch(nnkit_pipeline *p,
                                                  uint64_t epoch);

/**
 * Moves to the next batch of the epoch and writes its sample count into
 * batch_out: 0 once the epoch is over (then again 0 until the next
 * nnkit_pipeline_begin_epoch()). The batch is read with
 * nnkit_pipeline_batch_data(), _labels() and _targets(); calling this
 * releases the previous batch's buffers to the background thread.
 * @return NNKIT_E_STATE without a begun epoch (or after a setting changed).
 */
NNKIT_API nnkit_status nnkit_pipeline_next(size_t *batch_out,
                                           nnkit_pipeline *p);

/** The current batch's samples: batch * sample_size floats (borrowed,
 *  valid until the next nnkit_pipeline_next(), begin_epoch, setter or
 *  free); NULL when there is no current batch. */
NNKIT_API const float *nnkit_pipeline_batch_data(const nnkit_pipeline *p);
/** The current batch's labels (borrowed, as above), NULL when the set is
 *  unlabelled or there is no current batch. */
NNKIT_API const int32_t *nnkit_pipeline_batch_labels(const nnkit_pipeline *p);
/** The current batch's regression targets (batch * target_dim floats,
 *  borrowed, as above), NULL when the set has none. */
NNKIT_API const float *nnkit_pipeline_batch_targets(const nnkit_pipeline *p);

/** Batches per epoch with the current settings (at least 1 unless
 *  DROP_LAST leaves none). */
NNKIT_API size_t nnkit_pipeline_batches_per_epoch(const nnkit_pipeline *p);
/** Floats per output sample (after the normalizer). */
NNKIT_API size_t nnkit_pipeline_sample_size(const nnkit_pipeline *p);
/** Rank of the output sample shape (1..3). */
NNKIT_API size_t nnkit_pipeline_ndim(const nnkit_pipeline *p);
/** Size of output sample dimension `axis` (0 when axis >= ndim). */
NNKIT_API size_t nnkit_pipeline_dim(const nnkit_pipeline *p, size_t axis);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_PIPELINE_H */
