/**
 * @file nnkit/pipeline.h
 * Data pipelines: CSV and image-folder loaders, concatenation and class
 * names, stratified splits, normalizers (mean image, per-channel mean,
 * standardization, PCA, PCA and ZCA whitening), augmentation, and the batch
 * pipeline that feeds a net shuffled, normalized, augmented mini-batches
 * prepared by a background thread.
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

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Loaders                                                              */
/* ------------------------------------------------------------------ */

/** How nnkit_dataset_load_csv() treats the first row. Values are fixed
 *  forever. */
typedef enum nnkit_csv_header {
  /** A header when some column holds a non-number in row 1 and a number
   *  in row 2 (a one-row file is a header when any cell is a non-number).
   *  A label column given by name always implies a header. */
  NNKIT_CSV_HEADER_AUTO = 0,
  NNKIT_CSV_HEADER_YES = 1, /**< row 1 names the columns */
  NNKIT_CSV_HEADER_NO = 2   /**< row 1 is data */
} nnkit_csv_header;

/** label_index of nnkit_dataset_load_csv() meaning "no label column". */
#define NNKIT_CSV_NO_LABEL INT64_MIN

/**
 * Loads a CSV file (RFC 4180 quoting, parsed by libcsv) into a dataset of
 * 1-D samples: every column but the label column is a numeric feature.
 * Numbers are read the same way whatever the process locale ("1.5" with a
 * dot; no thousands separators); surrounding spaces are ignored; empty
 * lines are skipped.
 *
 * Labels: when every label cell is a decimal integer in [0, 65535] the ids
 * are those integers (num_classes = max + 1, class names "0", "1", ...);
 * otherwise each distinct string is a class and the classes are numbered
 * in byte order of their names ("cat" = 0, "dog" = 1, ...). Either way
 * nnkit_dataset_class_name() maps ids back to names. A UTF-8 byte order
 * mark at the start of the file is skipped.
 *
 * Errors name the file, the row (1-based, the header counts as row 1) and
 * the column (1-based, with its header name when there is one).
 *
 * @param out          receives the dataset; free with nnkit_dataset_free().
 * @param path         file path (borrowed).
 * @param delimiter    field separator, e.g. ',' ';' '\\t'; 0 means ','.
 *                     Must not be '"', '\\r', '\\n' or a space.
 * @param header       see ::nnkit_csv_header.
 * @param label_name   the label column by header name (borrowed), or NULL.
 * @param label_index  used when label_name is NULL: the label column's
 *                     0-based index, negative to count from the end (-1 =
 *                     the last column), or NNKIT_CSV_NO_LABEL for an
 *                     unlabelled set.
 * @return NNKIT_E_IO when the file cannot be opened or read;
 *         NNKIT_E_FORMAT for an empty file, a header without data rows, a
 *         ragged row, an empty or non-numeric feature cell, a number that
 *         overflows float, an empty label cell, a label column that does not
 *         exist (the sentence lists the header's names) or malformed
 *         quoting; NNKIT_E_INVALID for a bad delimiter or header value, or
 *         a label_name with NNKIT_CSV_HEADER_NO; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_dataset_load_csv(nnkit_dataset **out,
                                              const char *path, char delimiter,
                                              nnkit_csv_header header,
                                              const char *label_name,
                                              int64_t label_index);

/**
 * Loads images stored in torchvision's ImageFolder layout,
 * root/<class>/<image>: every sub-folder of root is a class, classes are
 * numbered in byte order of their folder names, and each class's files are
 * read in byte order of their names. Files ending in .png, .jpg or .jpeg
 * (any case) are images; other files and names starting with '.' are
 * ignored. Images are decoded by stb_image.
 *
 * Samples have shape [channels, height, width] (NCHW) with values 0..255
 * unchanged (see nnkit_dataset_scale()); with resize 0 they are kept as
 * bytes in memory, a quarter of the floats' size (see nnkit/data.h). Grayscale images loaded as RGB
 * repeat the gray value; RGB images loaded as grayscale use stb_image's
 * luma 0.30 R + 0.59 G + 0.11 B.
 *
 * @param root      the folder holding one sub-folder per class (borrowed).
 * @param channels  1 (grayscale) or 3 (RGB).
 * @param height, width  the common size; both 0 = the size of the first
 *                  image (first class, first file).
 * @param resize    1: images of another size are resized to height x width
 *                  by bilinear interpolation (pixel centres aligned, edges
 *                  clamped; no anti-aliasing); 0: they are an error.
 * @return NNKIT_E_IO when root or a class folder cannot be listed or an
 *         image cannot be opened (the path is named); NNKIT_E_FORMAT when
 *         root holds no class folder, a class folder holds no image, an
 *         image cannot be decoded (path and decoder's reason) or, with
 *         resize 0, has another size; NNKIT_E_INVALID for channels other
 *         than 1 or 3, only one of height and width 0, or sizes above
 *         2^16; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_dataset_load_image_folder(nnkit_dataset **out,
                                                       const char *root,
                                                       size_t channels,
                                                       size_t height,
                                                       size_t width,
                                                       int resize);

/* ------------------------------------------------------------------ */
/* Concatenation and class names                                        */
/* ------------------------------------------------------------------ */

/**
 * New dataset holding copies of the samples of parts[0], then parts[1], ...
 * All parts must have the same sample shape and be all labelled, all
 * unlabelled, or all regression sets with the same target dimension.
 * num_classes is the largest of the parts'. Class names are kept; parts
 * that both carry names must agree on every id they share.
 * @param parts      num_parts datasets (borrowed; may repeat).
 * @return NNKIT_E_INVALID for NULL or zero parts, or a part that does not
 *         match parts[0] (named with the reason), or names that disagree
 *         (the id and both names are given); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_dataset_concat(nnkit_dataset **out,
                                            const nnkit_dataset *const *parts,
                                            size_t num_parts);

/** The name of class `id` (borrowed, valid while ds lives and its names
 *  are not replaced), or NULL when the set has no class names or id >=
 *  num_classes. CSV and image-folder sets have names; subsets and
 *  concatenations keep them. */
NNKIT_API const char *nnkit_dataset_class_name(const nnkit_dataset *ds,
                                               uint32_t id);

/**
 * Looks up the id of the class called `name`.
 * @return NNKIT_E_INVALID when the set has no class names or no class of
 *         that name (the sentence lists the names).
 */
NNKIT_API nnkit_status nnkit_dataset_class_id(int32_t *out,
                                              const nnkit_dataset *ds,
                                              const char *name);

/**
 * Gives the classes of a labelled dataset names (copied), replacing any.
 * @param names  count == num_classes non-NULL, distinct strings.
 * @return NNKIT_E_INVALID for an unlabelled set, a count other than
 *         num_classes, a NULL or duplicated name; NNKIT_E_NOMEM (the old
 *         names are then kept).
 */
NNKIT_API nnkit_status nnkit_dataset_set_class_names(nnkit_dataset *ds,
                                                     const char *const *names,
                                                     size_t count);

/* ------------------------------------------------------------------ */
/* Splits                                                               */
/* ------------------------------------------------------------------ */

/*
 * Splits are stratified for labelled sets (each class is split in the same
 * proportion) and plainly random otherwise. They depend only on the labels
 * and the seed: the same seed gives the same split on every machine.
 */

/**
 * Hold-out split: assign_out[i] = 1 when sample i is held out (validation
 * or test), 0 when it is for training. The held-out count is
 * round(fraction * count), shared among the classes in proportion to their
 * sizes (largest remainders first, ties to the smaller class id); which
 * samples of a class are held out is random.
 * @param assign_out  len >= count values.
 * @param fraction    in (0, 1); both parts must end up non-empty.
 * @return NNKIT_E_INVALID for NULL arguments, a short len, a fraction
 *         outside (0, 1) or one that leaves a part empty.
 */
NNKIT_API nnkit_status nnkit_split_holdout(uint32_t *assign_out, size_t len,
                                           const nnkit_dataset *ds,
                                           double fraction, uint64_t seed);

/**
 * k-fold split: fold_out[i] in [0, k) is the fold of sample i. The folds
 * are disjoint and cover the set; each class is dealt round-robin over the
 * folds after a random shuffle, so every fold holds floor or ceil of
 * (class size / k) samples of each class and fold sizes differ by at most
 * one.
 * @param k  2 <= k <= the smallest class's size (labelled sets; classes
 *           without samples are ignored) or the sample count.
 * @return NNKIT_E_INVALID for NULL arguments, a short len, k < 2, or k
 *         larger than the smallest class (the class, its name when known,
 *         and the largest usable k are given).
 */
NNKIT_API nnkit_status nnkit_split_kfold(uint32_t *fold_out, size_t len,
                                         const nnkit_dataset *ds, size_t k,
                                         uint64_t seed);

/**
 * Hold-out split as two new datasets (samples in their original order):
 * train_out receives the training part and held_out the held-out part of
 * nnkit_split_holdout(). Both are the caller's; num_classes and class names
 * are kept. On failure both are NULL.
 */
NNKIT_API nnkit_status nnkit_dataset_split(nnkit_dataset **train_out,
                                           nnkit_dataset **held_out,
                                           const nnkit_dataset *ds,
                                           double fraction, uint64_t seed);

/**
 * Fold `fold` of nnkit_split_kfold() as two new datasets: val_out receives
 * the samples of that fold and train_out all the others (original order).
 * @return as nnkit_split_kfold(), and NNKIT_E_INVALID for fold >= k.
 */
NNKIT_API nnkit_status nnkit_dataset_fold(nnkit_dataset **train_out,
                                          nnkit_dataset **val_out,
                                          const nnkit_dataset *ds, size_t k,
                                          size_t fold, uint64_t seed);

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

/** The inclusive range [lo, hi] of a key for a kind.
 *  @return NNKIT_E_INVALID when the kind does not have the key. */
NNKIT_API nnkit_status nnkit_normalizer_bounds(double *lo_out, double *hi_out,
                                               nnkit_norm_kind kind,
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

/** The inclusive range [lo, hi] of a key.
 *  @return NNKIT_E_INVALID for an unknown key. */
NNKIT_API nnkit_status nnkit_pipeline_bounds(double *lo_out, double *hi_out,
                                             nnkit_pipe_param key);

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
