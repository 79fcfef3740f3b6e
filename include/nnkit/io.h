/**
 * @file nnkit/io.h
 * Model files: a trained net and its fitted normalizer in one file.
 *
 * Files are safetensors files (https://huggingface.co/docs/safetensors),
 * so PyTorch, NumPy and the `safetensors` package read the weights:
 *
 *  - 8 bytes: N, the header length, unsigned little-endian;
 *  - N bytes: a JSON object, padded with spaces so N is a multiple of 8:
 *    one entry per tensor, `{"dtype": "F32", "shape": [...],
 *    "data_offsets": [begin, end]}` (byte offsets into the data that
 *    follows), and `"__metadata__"`, a map of strings to strings;
 *  - the tensors' bytes, float32 little-endian, in header order, back to
 *    back.
 *
 * Tensors are named `layers.<i>.<name>` after layer i of the net (an
 * activation counts as a layer, as in PyTorch's nn.Sequential), with
 * PyTorch's names and shapes: a dense layer's `weight` [units, in] and
 * `bias` [units]; a conv2d layer's `weight` [out_channels, in_channels,
 * kernel_h, kernel_w] and `bias` [out_channels] (when it has one); a batch
 * normalization's `weight` (gamma), `bias` (beta), `running_mean` and
 * `running_var` [channels] (PyTorch's `num_batches_tracked` is not
 * stored). A saved normalizer's arrays are the tensors `normalizer.mean`,
 * `normalizer.scale` (CHANNEL_MEAN and STANDARDIZE) and
 * `normalizer.projection` [in_size, out_size] (PCA kinds); see
 * ::nnkit_norm_array.
 *
 * `__metadata__` holds, as strings: `"format": "nnkit"`,
 * `"format_version": "1"`, `"nnkit_version"`, `"input_shape"` (a JSON
 * array), `"seed"` (decimal), `"loss"` (`"softmax_cross_entropy"` or
 * `"mse"`), `"architecture"` (a JSON array with one object per layer: its
 * `"kind"`, the arguments of its nnkit_net_add_* call, `"trainable"` and
 * `"lr_multiplier"`) and, when a normalizer was saved, `"normalizer"` (a
 * JSON object: `"kind"`, `"input_shape"`, `"out_size"` and `"settings"`).
 */
#ifndef NNKIT_IO_H
#define NNKIT_IO_H

#include "nnkit/core.h"
#include "nnkit/model.h"
#include "nnkit/pipeline.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Writes net (its architecture, parameters, batch-normalization running
 * statistics, trainable flags and learning-rate multipliers) and, when nz
 * is not NULL, the fitted normalizer its inputs go through, to a model
 * file at path. Both are borrowed and only read (a net whose parameters
 * were never initialized gets them drawn first, as by
 * nnkit_net_params()). The write is atomic: a temporary file next to path
 * is written, flushed to disk (fsync) and renamed over path, so on any
 * failure path is untouched (an existing file keeps its old contents) and
 * no temporary file is left.
 * Optimizer state is not saved: the file is for inference and
 * fine-tuning.
 * @param nz  a fitted normalizer whose output size equals the net's input
 *            size, or NULL for none.
 * @return NNKIT_E_INVALID for a NULL net or path, or a net without layers;
 *         NNKIT_E_STATE for an unfitted normalizer; NNKIT_E_SHAPE when the
 *         normalizer's output size is not the net's input size;
 *         NNKIT_E_IO when the file cannot be written (the sentence names
 *         path and the system's reason); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_save(const nnkit_net *net,
                                      const nnkit_normalizer *nz,
                                      const char *path);

/**
 * Reads a model file written by nnkit_net_save() and rebuilds the net
 * (in evaluation mode) and, when nz_out is not NULL, the normalizer. The
 * rebuilt net predicts bit-identically to the saved one. Everything is
 * validated before anything is returned: the header length against the
 * file size, the JSON, the format version, every layer kind and
 * argument, dtypes (F32 only), shapes against the architecture, data
 * offsets (in bounds, not overlapping, covering the data) and that every
 * value is finite.
 * @param net_out  receives the net (the caller's; nnkit_net_free()), NULL
 *                 on failure.
 * @param nz_out   NULL to ignore a saved normalizer (it is still
 *                 validated); otherwise receives the normalizer (the
 *                 caller's; nnkit_normalizer_free()), or NULL when the file
 *                 has none or on failure.
 * @param path     borrowed.
 * @return NNKIT_E_INVALID for a NULL net_out or path; NNKIT_E_IO when the
 *         file cannot be opened or read; NNKIT_E_FORMAT for anything
 *         malformed, truncated or from a newer format version, with a
 *         sentence naming path and the problem (e.g. "model.safetensors:
 *         tensor layers.0.weight has shape [512, 784] but dense layer 0
 *         needs [256, 784]"); NNKIT_E_NOMEM. Nothing is left allocated on
 *         failure.
 */
NNKIT_API nnkit_status nnkit_net_load(nnkit_net **net_out,
                                      nnkit_normalizer **nz_out,
                                      const char *path);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_IO_H */
