/**
 * @file nnkit/data.h
 * Datasets: samples read as float32 in NCHW order, with optional integer
 * class labels or float regression targets.
 *
 * Memory: a set built from bytes (nnkit_dataset_from_bytes(), an IDX ubyte
 * file, an image folder loaded without resizing) is kept compact, one byte
 * per value plus a table of the 256 float values (a quarter of the float size:
 * Fashion-MNIST's 60k images take 47 MB instead of 188 MB). Every function
 * reads it as the same floats. nnkit_dataset_data() is the one that makes a
 * float copy (once, on first call), and nnkit_normalizer_apply() turns the
 * set into floats, since its results are no longer bytes.
 */
#ifndef NNKIT_DATA_H
#define NNKIT_DATA_H

#include "nnkit/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A dataset owns a copy of its samples (count x sample_size values, as
 *  floats or compact bytes) and its labels or targets. Immutable once built,
 *  except nnkit_dataset_scale() and nnkit_normalizer_apply(); a const set may
 *  be read from several threads at once. */
typedef struct nnkit_dataset nnkit_dataset;

/** Most dimensions a sample may have (C, H, W). */
#define NNKIT_MAX_SAMPLE_DIMS 3

/**
 * Builds a dataset by copying caller buffers.
 * @param out          receives the new dataset; the caller frees it with
 *                     nnkit_dataset_free().
 * @param x            count * prod(shape) floats, sample-major (copied).
 * @param labels       count class ids in [0, num_classes), or NULL for an
 *                     unlabelled set (copied).
 * @param count        number of samples, >= 1.
 * @param shape        sample shape, e.g. {784} or {1, 28, 28} (copied).
 * @param ndim         1..NNKIT_MAX_SAMPLE_DIMS.
 * @param num_classes  >= 1 when labels are given (0 = max label + 1);
 *                     ignored when labels is NULL.
 * @return NNKIT_E_INVALID for a NULL buffer, zero count or dimension, a label
 *         outside [0, num_classes) (the sentence names the sample), or a
 *         non-finite value in x (named likewise); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_dataset_from_buffers(nnkit_dataset **out,
                                                  const float *x,
                                                  const int32_t *labels,
                                                  size_t count,
                                                  const size_t *shape,
                                                  size_t ndim,
                                                  uint32_t num_classes);

/**
 * Builds a dataset from bytes (e.g. 8-bit images), kept compact: one byte
 * per value in memory, read as the floats 0..255 (nnkit_dataset_scale()
 * maps them, e.g. to [0, 1]). Arguments as nnkit_dataset_from_buffers(),
 * with x holding count * prod(shape) bytes (copied).
 * @return NNKIT_E_INVALID for a NULL buffer, zero count or dimension, or a
 *         label outside [0, num_classes) (the sentence names the sample);
 *         NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_dataset_from_bytes(nnkit_dataset **out,
                                                const uint8_t *x,
                                                const int32_t *labels,
                                                size_t count,
                                                const size_t *shape,
                                                size_t ndim,
                                                uint32_t num_classes);

/**
 * Builds a regression dataset: each sample has target_dim float targets
 * (used by the mean-squared-error loss). Buffers are copied.
 * @return NNKIT_E_INVALID as nnkit_dataset_from_buffers(), and for
 *         target_dim == 0 or a non-finite target.
 */
NNKIT_API nnkit_status nnkit_dataset_from_targets(nnkit_dataset **out,
                                                  const float *x,
                                                  const float *targets,
                                                  size_t count,
                                                  const size_t *shape,
                                                  size_t ndim,
                                                  size_t target_dim);

/**
 * Loads IDX files (the MNIST format). The images file may hold unsigned
 * bytes (type 0x08) or big-endian float32 (0x0D) with 1 to 4 dimensions
 * (the first is the sample count; a 3-dimensional file of N x H x W
 * becomes samples of shape {1, H, W}). Each file may be gzip-compressed
 * (detected by the gzip magic, not the name) or plain. Values read as
 * floats unchanged (bytes as 0..255; see nnkit_dataset_scale()). Ubyte
 * images are kept as bytes in memory (see the top of this file).
 * @param images_path  path of the images file (borrowed).
 * @param labels_path  path of a 1-dimensional ubyte labels file, or NULL.
 * @param num_classes  labels must lie in [0, num_classes); 0 = max label + 1.
 * @return NNKIT_E_IO if a file cannot be opened or read; NNKIT_E_FORMAT for a
 *         wrong magic, unsupported type, truncated data, dimensions whose
 *         product overflows, trailing garbage or a label/image count
 *         mismatch; NNKIT_E_INVALID for a label out of range; NNKIT_E_NOMEM.
 *         The sentence names the file.
 */
NNKIT_API nnkit_status nnkit_dataset_load_idx(nnkit_dataset **out,
                                              const char *images_path,
                                              const char *labels_path,
                                              uint32_t num_classes);

/**
 * Writes the samples (as IDX float32, or as ubyte when every value is an
 * integer in 0..255) and, when labelled, the labels as IDX files.
 * gzip != 0 compresses both. Each file is written atomically (temporary
 * file + rename): on failure no partial file is left.
 * @return NNKIT_E_IO on a write failure; NNKIT_E_INVALID for NULL paths or
 *         a labels_path given for an unlabelled set.
 */
NNKIT_API nnkit_status nnkit_dataset_save_idx(const nnkit_dataset *ds,
                                              const char *images_path,
                                              const char *labels_path,
                                              int gzip);

/** New dataset holding copies of the samples at `indices` (in that order;
 *  repeats allowed). @return NNKIT_E_INVALID for an index >= count. */
NNKIT_API nnkit_status nnkit_dataset_subset(nnkit_dataset **out,
                                            const nnkit_dataset *src,
                                            const size_t *indices,
                                            size_t count);

/** Applies x = x * scale + shift to every sample value in place (e.g.
 *  scale 1/255 maps bytes to [0, 1]). A compact set stays compact (its
 *  table of 256 values is scaled) and gives exactly the values the float
 *  form would. @return NNKIT_E_INVALID when scale or shift is not finite,
 *  or when a value would overflow (the sentence names the sample); the
 *  set is then unchanged. */
NNKIT_API nnkit_status nnkit_dataset_scale(nnkit_dataset *ds, float scale,
                                           float shift);

/** Frees the dataset; NULL is ignored. */
NNKIT_API void nnkit_dataset_free(nnkit_dataset *ds);

/** Number of samples. */
NNKIT_API size_t nnkit_dataset_count(const nnkit_dataset *ds);
/** Number of sample dimensions (1..3). */
NNKIT_API size_t nnkit_dataset_ndim(const nnkit_dataset *ds);
/** Size of sample dimension `axis` (0 when axis >= ndim). */
NNKIT_API size_t nnkit_dataset_dim(const nnkit_dataset *ds, size_t axis);
/** Floats per sample (product of the sample shape). */
NNKIT_API size_t nnkit_dataset_sample_size(const nnkit_dataset *ds);
/** Number of classes; 0 for unlabelled and regression sets. */
NNKIT_API uint32_t nnkit_dataset_num_classes(const nnkit_dataset *ds);
/** Floats of target per sample for a regression set; 0 otherwise. */
NNKIT_API size_t nnkit_dataset_target_dim(const nnkit_dataset *ds);
/** Borrowed pointer to count * sample_size floats, valid while ds lives.
 *  For a compact set (IDX ubyte) the first call allocates the float copy
 *  (4 bytes per value, kept beside the bytes); NULL with NNKIT_E_NOMEM in
 *  nnkit_last_error() if that allocation fails. Training and evaluation
 *  never need it. */
NNKIT_API const float *nnkit_dataset_data(const nnkit_dataset *ds);
/** Borrowed pointer to count labels, or NULL when unlabelled. */
NNKIT_API const int32_t *nnkit_dataset_labels(const nnkit_dataset *ds);
/** Borrowed pointer to count * target_dim targets, or NULL. */
NNKIT_API const float *nnkit_dataset_targets(const nnkit_dataset *ds);
/** Writes num_classes counts (samples per class) into counts_out.
 *  @return NNKIT_E_INVALID when unlabelled or len < num_classes. */
NNKIT_API nnkit_status nnkit_dataset_class_counts(size_t *counts_out,
                                                  size_t len,
                                                  const nnkit_dataset *ds);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_DATA_H */
