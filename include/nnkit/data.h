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
 * The most classes nnkit infers from labels. Where a call takes
 * num_classes = 0 (nnkit_dataset_from_buffers(), _from_bytes()), the class
 * count becomes the largest label + 1,
 * and a largest label of NNKIT_MAX_INFERRED_CLASSES or more is refused
 * with NNKIT_E_INVALID and a sentence naming the sample and the label: a
 * stray label such as INT32_MAX would otherwise make 2^31 classes, and
 * per-class arrays (splits, balanced sampling, class counts) of many GB.
 * Pass the class count explicitly (num_classes >= 1) to use more classes.
 */
#define NNKIT_MAX_INFERRED_CLASSES 65536u

/**
 * The most pixels (height x width) of one image that
 * nnkit_dataset_load_image_folder() decodes: 2^26 (e.g. 8192 x 8192), and
 * at most 65,536 a side. The size an image's header declares is checked
 * before any pixel is decoded, so a few bytes claiming 60000 x 60000 cost
 * nothing; larger images are NNKIT_E_FORMAT naming the file and its size
 * (shrink them first).
 */
#define NNKIT_MAX_IMAGE_PIXELS 67108864u

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
 * @param num_classes  >= 1 when labels are given (0 = max label + 1, at
 *                     most NNKIT_MAX_INFERRED_CLASSES); ignored when labels
 *                     is NULL.
 * @return NNKIT_E_INVALID for a NULL buffer, zero count or dimension, a label
 *         outside [0, num_classes) (the sentence names the sample), an
 *         inferred class count above NNKIT_MAX_INFERRED_CLASSES, or a
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
 * root/CLASS/IMAGE: every sub-folder of root is a class, classes are
 * numbered in byte order of their folder names, and each class's files are
 * read in byte order of their names. Files ending in .png, .jpg or .jpeg
 * (any case) are images; other files and names starting with '.' are
 * ignored. PNG files are decoded by stb_image, JPEG files by
 * libjpeg-turbo (which also refuses corrupt data it could paint over and
 * progressive files of more than 500 scans), after two checks of each
 * file: its first bytes must be the signature of the format its extension
 * names (PNG for .png, JPEG for .jpg/.jpeg; a TGA, PNM or HDR file so
 * named is refused), and the size its header declares must be at least
 * 1x1, at most 2^16 a side and at most NNKIT_MAX_IMAGE_PIXELS.
 *
 * Samples have shape [channels, height, width] (NCHW) with values 0..255
 * unchanged (see nnkit_dataset_scale()); with resize 0 they are kept as
 * bytes in memory, a quarter of the floats' size (see nnkit/data.h). Grayscale images loaded as RGB
 * repeat the gray value; RGB images loaded as grayscale (PNG and JPEG)
 * use stb_image's luma (77 R + 150 G + 29 B) / 256.
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
 *         image cannot be decoded (path and decoder's reason), is not the
 *         format its extension names, declares a size of 0, above 2^16 a
 *         side or above NNKIT_MAX_IMAGE_PIXELS (path and size) or, with
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

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_DATA_H */
