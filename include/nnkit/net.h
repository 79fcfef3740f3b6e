/**
 * @file nnkit/net.h
 * Sequential networks: every nnkit_net_* call -- layers and their keyed
 * options, losses, parameters, forward/backward, predict and evaluate,
 * statistics and metrics on a net, model files.
 *
 * Tensors are float32, sample-major, NCHW. A net's parameters live in one
 * contiguous buffer with a twin gradient buffer of the same length, so
 * optimizers are flat loops that know nothing of layers.
 */
#ifndef NNKIT_NET_H
#define NNKIT_NET_H

#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/init.h"
#include "nnkit/normalizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Networks                                                             */
/* ------------------------------------------------------------------ */

/** Activation functions. Values are fixed forever. */
typedef enum nnkit_activation {
  NNKIT_ACT_RELU = 1,
  NNKIT_ACT_LEAKY_RELU = 2, /**< slope 0.01 unless nnkit_net_add_leaky_relu() */
  NNKIT_ACT_TANH = 3,
  NNKIT_ACT_SIGMOID = 4,
  NNKIT_ACT_SOFTMAX = 5     /**< over each sample's features */
} nnkit_activation;

/** Losses. Values are fixed forever. */
typedef enum nnkit_loss {
  /** Softmax followed by cross-entropy, fused and numerically stable
   *  (log-sum-exp). Takes logits; when the net ends in a softmax layer the
   *  loss uses that layer's input, so the softmax is not applied twice.
   *  Needs labels. The reported loss is the batch mean. */
  NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY = 1,
  /** Mean over batch and outputs of (y - t)^2 (PyTorch's MSELoss). Takes
   *  float targets, or one-hot vectors made from labels. */
  NNKIT_LOSS_MSE = 2
} nnkit_loss;

/** A sequential network. Owns its layers, parameters, gradients and all
 *  working memory. */
typedef struct nnkit_net nnkit_net;

/**
 * Creates an empty network for samples of the given shape.
 * @param shape  sample shape, e.g. {784} or {1, 28, 28} (copied).
 * @param ndim   1..NNKIT_MAX_SAMPLE_DIMS.
 * @param seed   every random draw of this net (initialization, and later
 *               dropout) derives from it.
 * The loss defaults to NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY; the net starts in
 * training mode.
 * @return NNKIT_E_INVALID for a NULL/zero dimension or bad ndim; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_create(nnkit_net **out, const size_t *shape,
                                        size_t ndim, uint64_t seed);

/** Frees the network and everything it owns; NULL is ignored. */
NNKIT_API void nnkit_net_free(nnkit_net *net);

/**
 * Appends a fully connected layer y = x W^T + b with W of shape
 * [units, in] (PyTorch's layout) and b of shape [units]. Any input shape is
 * flattened to in = prod(shape). Default initialization: He-normal when the
 * next layer is a ReLU or leaky ReLU, Xavier-uniform otherwise; zero bias.
 * @return NNKIT_E_INVALID for units == 0 or above 2^24.
 */
NNKIT_API nnkit_status nnkit_net_add_dense(nnkit_net *net, size_t units);

/** Appends an activation layer. @return NNKIT_E_INVALID for an unknown kind. */
NNKIT_API nnkit_status nnkit_net_add_activation(nnkit_net *net,
                                                nnkit_activation act);

/** Appends a leaky ReLU with the given negative slope, in [0, 1e6] (kept
 *  as a float, as the activations are; the key NNKIT_LAYER_SLOPE).
 *  @return NNKIT_E_INVALID for a NULL net or a slope outside [0, 1e6]. */
NNKIT_API nnkit_status nnkit_net_add_leaky_relu(nnkit_net *net, double slope);

/**
 * Sets the initializers of layer `layer`'s weights and biases (copied; NULL
 * keeps the current choice). Takes effect at the next
 * nnkit_net_init_params(), or at first use if the layer has never been
 * initialized.
 * @return NNKIT_E_INVALID if the layer has no parameters or is out of range.
 */
NNKIT_API nnkit_status nnkit_net_set_init(nnkit_net *net, size_t layer,
                                          const nnkit_init *weights,
                                          const nnkit_init *bias);

/** (Re)draws every parameter from the layers' initializers and the net's
 *  seed. Layer i always uses stream i, so results do not depend on what was
 *  drawn before. @return NNKIT_E_NOMEM. */
NNKIT_API nnkit_status nnkit_net_init_params(nnkit_net *net);

/** Chooses the loss. @return NNKIT_E_INVALID for an unknown kind. */
NNKIT_API nnkit_status nnkit_net_set_loss(nnkit_net *net, nnkit_loss loss);
/** The current loss kind. */
NNKIT_API nnkit_loss nnkit_net_get_loss(const nnkit_net *net);

/** Training mode (1, the default) or evaluation mode (0). Predict and
 *  evaluate always run in evaluation mode and restore the previous mode. */
NNKIT_API void nnkit_net_set_training(nnkit_net *net, int training);
/** 1 in training mode, 0 in evaluation mode. */
NNKIT_API int nnkit_net_is_training(const nnkit_net *net);

/** Number of layers (an activation counts as one layer). */
NNKIT_API size_t nnkit_net_num_layers(const nnkit_net *net);

/** Floats in one input sample. */
NNKIT_API size_t nnkit_net_input_size(const nnkit_net *net);
/** Floats in one output sample (the last layer's output). */
NNKIT_API size_t nnkit_net_output_size(const nnkit_net *net);

/**
 * Writes the output shape of layer `layer` (up to NNKIT_MAX_SAMPLE_DIMS
 * values) into dims_out and its rank into ndim_out.
 * @return NNKIT_E_INVALID for a layer out of range or len too small.
 */
NNKIT_API nnkit_status nnkit_net_layer_shape(size_t *dims_out, size_t len,
                                             size_t *ndim_out,
                                             const nnkit_net *net, size_t layer);

/**
 * A one-line description of layer `layer`, e.g.
 * "dense 784 -> 128 (100480 params)". Borrowed from the net; valid until
 * the next call of this function on the same net. "" when out of range,
 * NULL for a NULL net.
 */
NNKIT_API const char *nnkit_net_layer_describe(nnkit_net *net, size_t layer);

/**
 * Where layer `layer`'s parameters live in the contiguous buffer: floats
 * [offset, offset + count). Weights come first, then the bias.
 * @return NNKIT_E_INVALID for a layer out of range.
 */
NNKIT_API nnkit_status nnkit_net_layer_params(size_t *offset_out,
                                              size_t *count_out,
                                              const nnkit_net *net,
                                              size_t layer);

/** Options of a layer, read and changed with nnkit_net_layer_get(),
 *  nnkit_net_layer_set() and nnkit_net_layer_bounds(). Each kind has the
 *  options of its nnkit_net_add_* call; options that change shapes are
 *  fixed once the layer is added (reading them works, setting them is
 *  NNKIT_E_STATE). Values are doubles; whole-number options hold -1 for
 *  NNKIT_PAD_SAME. New options are appended. */
typedef enum nnkit_layer_param {
  NNKIT_LAYER_UNITS = 1,        /**< dense: output units (fixed) */
  NNKIT_LAYER_OUT_CHANNELS = 2, /**< conv2d: output channels (fixed) */
  NNKIT_LAYER_KERNEL_H = 3,     /**< conv2d, pooling: kernel height (fixed) */
  NNKIT_LAYER_KERNEL_W = 4,     /**< conv2d, pooling: kernel width (fixed) */
  NNKIT_LAYER_STRIDE_H = 5,     /**< conv2d, pooling: vertical stride (fixed) */
  NNKIT_LAYER_STRIDE_W = 6,     /**< conv2d, pooling: horizontal stride (fixed) */
  NNKIT_LAYER_PAD_H = 7,        /**< conv2d, pooling: rows of zero padding, -1 =
                                     NNKIT_PAD_SAME (fixed) */
  NNKIT_LAYER_PAD_W = 8,        /**< conv2d, pooling: columns of padding (fixed) */
  NNKIT_LAYER_BIAS = 9,         /**< conv2d: 1 with a bias (fixed) */
  NNKIT_LAYER_DROP_P = 10,      /**< dropout, spatial dropout: drop probability,
                                     [0, 1); settable (takes effect at the next
                                     training forward) */
  NNKIT_LAYER_MOMENTUM = 11,    /**< batch norm: running-statistics momentum,
                                     [0, 1]; settable */
  NNKIT_LAYER_EPS = 12,         /**< batch norm, layer norm: epsilon added to
                                     the variance, (0, 1]; settable */
  NNKIT_LAYER_ACTIVATION = 13,  /**< activation: its nnkit_activation (fixed) */
  NNKIT_LAYER_SLOPE = 14        /**< leaky ReLU: negative slope, [0, 1e6];
                                     settable */
} nnkit_layer_param;

/**
 * Reads option `key` of layer `layer` into *out.
 * @return NNKIT_E_INVALID for a layer out of range or a key the layer's
 * kind does not have (the sentence names the kind).
 */
NNKIT_API nnkit_status nnkit_net_layer_get(double *out, const nnkit_net *net,
                                           size_t layer, nnkit_layer_param key);

/**
 * Changes option `key` of layer `layer` (see ::nnkit_layer_param for which
 * options are settable). Parameters and statistics are kept.
 * @return NNKIT_E_INVALID for a layer out of range, a key the kind does
 * not have or a value outside the option's bounds (the sentence gives
 * them); NNKIT_E_STATE for an option fixed once the layer is added.
 */
NNKIT_API nnkit_status nnkit_net_layer_set(nnkit_net *net, size_t layer,
                                           nnkit_layer_param key, double value);

/**
 * The range of option `key` of layer `layer`: lo, hi and ::nnkit_bound_flag
 * bits (NULL outputs are skipped), as nnkit_optimizer_bounds().
 * @return NNKIT_E_INVALID for a layer out of range or an unknown key.
 */
NNKIT_API nnkit_status nnkit_net_layer_bounds(double *lo_out, double *hi_out,
                                              int *flags_out,
                                              const nnkit_net *net, size_t layer,
                                              nnkit_layer_param key);

/** Total number of parameters. */
NNKIT_API size_t nnkit_net_num_params(const nnkit_net *net);

/** Borrowed pointer to the contiguous parameter buffer (num_params floats),
 *  writable; initializes parameters first if needed. Valid until a layer is
 *  added or the net is freed. NULL when the net has no parameters or an
 *  allocation failed. */
NNKIT_API float *nnkit_net_params(nnkit_net *net);

/** Borrowed pointer to the gradient buffer, the twin of nnkit_net_params(). */
NNKIT_API float *nnkit_net_grads(nnkit_net *net);

/**
 * Runs the net on `batch` samples (batch * input_size floats, borrowed) in
 * the current mode, and keeps what backward needs. Takes already-normalized
 * input: a normalizer attached with nnkit_net_set_normalizer() is NOT
 * applied here (nor by nnkit_net_backward(), nnkit_net_layer_stats(),
 * nnkit_optimizer_train_batch() or the trainer, which all take samples
 * the way the net's first layer sees them); nnkit_net_predict(),
 * nnkit_net_predict_proba() and nnkit_net_evaluate() are the raw-input
 * calls. When out is not NULL it
 * receives batch * output_size floats (out_len must be at least that).
 * The first call for a batch size larger than any before allocates working
 * memory; later calls allocate nothing.
 * @return NNKIT_E_INVALID for NULL x, batch 0 or a short out_len;
 *         NNKIT_E_STATE for a net without layers; NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_forward(nnkit_net *net, const float *x,
                                         size_t batch, float *out,
                                         size_t out_len);

/**
 * Computes the mean loss of the last forward batch and back-propagates it,
 * overwriting the gradient buffer with d(mean loss)/d(params). Like
 * nnkit_net_forward() it works on already-normalized input.
 * @param labels   batch class ids (for softmax cross-entropy, or MSE against
 *                 one-hot vectors), or NULL.
 * @param targets  batch * output_size floats (MSE), or NULL.
 * @param loss_out receives the mean data loss (may be NULL).
 * @return NNKIT_E_STATE without a preceding forward; NNKIT_E_INVALID when
 *         the loss needs labels/targets that are missing or a label is out of
 *         range (named).
 */
NNKIT_API nnkit_status nnkit_net_backward(nnkit_net *net, const int32_t *labels,
                                          const float *targets,
                                          double *loss_out);

/**
 * Predicts class ids (argmax of the output) for count samples of x, in
 * evaluation mode, in chunks. classes_out receives count ids.
 * x holds raw samples: with a normalizer attached (nnkit_net_set_normalizer())
 * each chunk of 256 samples goes through it first, and x holds count x the
 * normalizer's input size floats (the net's input size without one). The
 * results equal nnkit_net_forward()'s argmax on the samples that
 * nnkit_normalizer_transform() gives, bit for bit; no allocation after the
 * first call for a chunk size.
 * @return NNKIT_E_INVALID for NULL buffers or count 0; NNKIT_E_STATE for a net
 *         without layers.
 */
NNKIT_API nnkit_status nnkit_net_predict(int32_t *classes_out,
                                         nnkit_net *net, const float *x,
                                         size_t count);

/**
 * Class probabilities for count samples: softmax of the outputs for a
 * softmax cross-entropy net (or the outputs unchanged when the net already
 * ends in softmax), the raw outputs for MSE. probs_out receives
 * count * output_size floats; probs_len must be at least that. x holds raw
 * samples, run through the attached normalizer as by nnkit_net_predict().
 */
NNKIT_API nnkit_status nnkit_net_predict_proba(float *probs_out,
                                               size_t probs_len,
                                               nnkit_net *net, const float *x,
                                               size_t count);

/**
 * Mean loss and accuracy (fraction of argmax == label) of the net on a
 * labelled dataset, in evaluation mode. For a regression set acc_out gets 0.
 * Either out pointer may be NULL. The dataset holds raw samples: with a
 * normalizer attached they go through it first (as in nnkit_net_predict();
 * the dataset is only read). The trainer's own validation figures do not
 * apply the attached normalizer: its validation set comes normalized like
 * its training set.
 * @return NNKIT_E_SHAPE when the dataset's sample size differs from the
 *         net's input size (the normalizer's input size when one is
 *         attached), or its class count exceeds the output size.
 */
NNKIT_API nnkit_status nnkit_net_evaluate(double *loss_out, double *acc_out,
                                          nnkit_net *net,
                                          const nnkit_dataset *ds);

/* ------------------------------------------------------------------ */
/* Convolutional and regularizing layers                                */
/* ------------------------------------------------------------------ */

/*
 * Feature maps are NCHW: a sample of shape [C, H, W] stores channel c's
 * row y at offset (c * H + y) * W. Layers that take feature maps accept a
 * 2-D sample shape [H, W] as one channel. Every add function infers the
 * new layer's output shape from the previous one at once; a window that
 * does not fit fails there with NNKIT_E_SHAPE and a sentence naming the
 * layer and the sizes, and the net is left unchanged. All of them return
 * NNKIT_E_INVALID for a NULL net and NNKIT_E_NOMEM when memory runs out.
 */

/**
 * Padding value for nnkit_net_add_conv2d() and the pooling layers that
 * asks for "same" padding along that axis: ceil(in / stride) outputs, with
 * the needed zero rows/columns split evenly and the odd one after the
 * input (TensorFlow's "SAME"; PyTorch's padding="same" for stride 1).
 */
#define NNKIT_PAD_SAME ((size_t)-1)

/**
 * Appends a 2-D convolution (cross-correlation, like PyTorch's Conv2d)
 * over an input of shape [C, H, W] with output [out_channels, OH, OW],
 * OH = (H + 2 pad_h - kernel_h) / stride_h + 1 (rounded down), likewise OW.
 * Parameters: weights of shape [out_channels, C, kernel_h, kernel_w]
 * (PyTorch's layout), then, when bias != 0, a bias of shape [out_channels].
 * Default initialization as for dense layers with fan_in = C kh kw and
 * fan_out = out_channels kh kw; zero bias.
 * @param stride_h, stride_w  >= 1.
 * @param pad_h, pad_w  zero rows/columns on each side, or NNKIT_PAD_SAME.
 * @param bias  1 for a bias, 0 without (e.g. before batch normalization).
 * @return NNKIT_E_INVALID for a zero or too large count (out_channels,
 *         kernel and strides are limited to 2^16, padding to 2^16 unless
 *         NNKIT_PAD_SAME); NNKIT_E_SHAPE for an input that is not 2-D or
 *         3-D, or a kernel that does not fit the padded input.
 */
NNKIT_API nnkit_status nnkit_net_add_conv2d(nnkit_net *net, size_t out_channels,
                                            size_t kernel_h, size_t kernel_w,
                                            size_t stride_h, size_t stride_w,
                                            size_t pad_h, size_t pad_w,
                                            int bias);

/**
 * Appends a max pooling layer over [C, H, W] inputs: each output is the
 * largest input of its kernel_h x kernel_w window (padding never wins).
 * Output size as for nnkit_net_add_conv2d(), channels unchanged.
 * @param stride_h, stride_w  0 means the kernel size (PyTorch's default).
 * @param pad_h, pad_w  at most half the kernel size, or NNKIT_PAD_SAME.
 * @return NNKIT_E_INVALID for a zero kernel, a padding above half the
 *         kernel, or sizes above 2^16; NNKIT_E_SHAPE as for conv2d.
 */
NNKIT_API nnkit_status nnkit_net_add_maxpool2d(nnkit_net *net, size_t kernel_h,
                                               size_t kernel_w, size_t stride_h,
                                               size_t stride_w, size_t pad_h,
                                               size_t pad_w);

/**
 * Appends an average pooling layer: each output is the sum of its window
 * divided by kernel_h * kernel_w, padding zeros included (PyTorch's
 * AvgPool2d with count_include_pad=True). Arguments and errors as for
 * nnkit_net_add_maxpool2d().
 */
NNKIT_API nnkit_status nnkit_net_add_avgpool2d(nnkit_net *net, size_t kernel_h,
                                               size_t kernel_w, size_t stride_h,
                                               size_t stride_w, size_t pad_h,
                                               size_t pad_w);

/**
 * Appends a global average pooling layer: [C, H, W] -> [C], the mean of
 * each channel's map.
 * @return NNKIT_E_SHAPE for an input that is not 2-D or 3-D.
 */
NNKIT_API nnkit_status nnkit_net_add_global_avgpool(nnkit_net *net);

/**
 * Appends a flatten layer: any shape -> [prod(shape)], values unchanged.
 * Optional before a dense layer (which flattens by itself); it makes the
 * architecture explicit.
 */
NNKIT_API nnkit_status nnkit_net_add_flatten(nnkit_net *net);

/**
 * Appends batch normalization. For a [C, H, W] input it normalizes each
 * channel over the batch and the map (PyTorch's BatchNorm2d); for any
 * other shape each value of the sample is its own feature, normalized over
 * the batch (BatchNorm1d). y = gamma (x - mean) / sqrt(var + eps) + beta.
 *
 * Parameters: gamma (initialized to 1) then beta (0), one each per
 * channel/feature; they are not "weights" (no fans, so nnkit_net_set_init()
 * refuses them and weight regularizers skip them).
 *
 * Training mode uses the batch's mean and biased variance, and updates the
 * running statistics with PyTorch's convention:
 * running = (1 - momentum) running + momentum batch, where the variance
 * fed to the running average is the unbiased one (n / (n - 1) times the
 * batch variance, n = values per channel in the batch; n = 1 uses the
 * biased 0). Running mean starts at 0, running variance at 1. Evaluation
 * mode uses the running statistics.
 * @param momentum  in [0, 1]; PyTorch's default is 0.1 (0 freezes the
 *                  running statistics).
 * @param eps       in (0, 1]; PyTorch's default is 1e-5.
 * @return NNKIT_E_INVALID for a value outside its range or non-finite.
 */
NNKIT_API nnkit_status nnkit_net_add_batchnorm(nnkit_net *net, double momentum,
                                               double eps);

/**
 * Copies the running mean and variance of batch-normalization layer
 * `layer` into caller buffers of len floats each; len must be at least the
 * layer's channel/feature count (half of its parameter count).
 * @return NNKIT_E_INVALID for NULL buffers, a layer out of range or not a
 *         batch normalization, or a short len (the sentence gives the count).
 */
NNKIT_API nnkit_status nnkit_net_batchnorm_stats(float *mean_out,
                                                 float *var_out, size_t len,
                                                 const nnkit_net *net,
                                                 size_t layer);

/**
 * Replaces the running mean and variance of batch-normalization layer
 * `layer` (copied from len floats each; len must equal its channel count).
 * @return NNKIT_E_INVALID for NULL buffers, a layer out of range or not a
 *         batch normalization, a len that differs from the count, a
 *         non-finite value or a negative variance.
 */
NNKIT_API nnkit_status nnkit_net_set_batchnorm_stats(nnkit_net *net,
                                                     size_t layer,
                                                     const float *mean,
                                                     const float *var,
                                                     size_t len);

/**
 * Appends inverted dropout: in training mode each value is zeroed with
 * probability p and the kept ones are scaled by 1 / (1 - p), so the
 * expected value is unchanged and evaluation mode is the identity. Each
 * training forward draws a new mask from the net's seed, the layer's
 * position and a per-layer step count (reproducible for a seed).
 * @param p  drop probability in [0, 1).
 * @return NNKIT_E_INVALID for p outside [0, 1) or non-finite.
 */
NNKIT_API nnkit_status nnkit_net_add_dropout(nnkit_net *net, double p);

/**
 * Appends spatial dropout for feature maps [C, H, W] (or [C, L]): like
 * nnkit_net_add_dropout() but it drops whole channels of each sample, since
 * neighbouring values of a map are too correlated for element dropout.
 * @return NNKIT_E_INVALID for p outside [0, 1); NNKIT_E_SHAPE for a 1-D
 *         input (use nnkit_net_add_dropout() there).
 */
NNKIT_API nnkit_status nnkit_net_add_spatial_dropout(nnkit_net *net, double p);

/**
 * Appends a layer normalization over each whole sample (PyTorch's
 * nn.LayerNorm with normalized_shape = the sample shape): the N values of
 * a sample are normalized by their own mean and biased variance, y = gamma
 * (x - mean) / sqrt(var + eps) + beta, with gamma and beta of the sample's
 * shape (initialized to 1 and 0; tensors "weight" and "bias" in model
 * files). Training and evaluation compute the same thing. Regularizers
 * treat gamma and beta as normalization parameters
 * (NNKIT_REG_WITH_BATCHNORM). eps is the key NNKIT_LAYER_EPS.
 * @param eps  added to the variance, (0, 1]; PyTorch's default is 1e-5.
 * @return NNKIT_E_INVALID for a NULL net or eps outside (0, 1];
 * NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_add_layernorm(nnkit_net *net, double eps);

/* ------------------------------------------------------------------ */
/* Fine-tuning                                                          */
/* ------------------------------------------------------------------ */

/*
 * Transfer learning freezes some layers and trains others, often the new
 * ones faster. These marks are read by every optimizer (nnkit/optim.h) at
 * each step: it leaves frozen layers' parameters bit-identical (no update,
 * no weight decay, no regularizer, no step count for Adam's bias
 * correction) and leaves them out of gradient clipping's global norm, and
 * it scales each layer's learning rate by its multiplier. Backward still
 * computes frozen layers' gradients, and batch normalization still updates
 * its running statistics in training mode (set evaluation mode for that).
 */

/**
 * Freezes (trainable 0) or unfreezes (non-zero) layer `layer`. Layers start
 * trainable. Allowed on layers without parameters (no effect).
 * @return NNKIT_E_INVALID for a NULL net or a layer out of range.
 */
NNKIT_API nnkit_status nnkit_net_set_trainable(nnkit_net *net, size_t layer,
                                               int trainable);

/** 1 when layer `layer` is trainable, 0 when frozen, for a NULL net or for
 *  a layer out of range (an is_ getter answers 1 or 0, never an error:
 *  check the layer count first when it may be out of range). */
NNKIT_API int nnkit_net_is_trainable(const nnkit_net *net, size_t layer);

/**
 * Sets layer `layer`'s learning-rate multiplier: the optimizer uses
 * learning rate x mult for its parameters (PyTorch's per-parameter-group
 * lr). Default 1.
 * @param mult  in [0, 1e6] (stored as a float).
 * @return NNKIT_E_INVALID for a NULL net, a layer out of range or a value
 *         outside the range (the sentence gives it).
 */
NNKIT_API nnkit_status nnkit_net_set_lr_multiplier(nnkit_net *net, size_t layer,
                                                   double mult);

/** Reads layer `layer`'s learning-rate multiplier.
 *  @return NNKIT_E_INVALID for NULL arguments or a layer out of range. */
NNKIT_API nnkit_status nnkit_net_get_lr_multiplier(double *out,
                                                   const nnkit_net *net,
                                                   size_t layer);

/* ------------------------------------------------------------------ */
/* Statistics and metrics of a net                                     */
/* ------------------------------------------------------------------ */

/** Per-layer statistics. Values are fixed forever (append only). Each is
 *  measured on one batch: the last batch of each epoch during a fit. */
typedef enum nnkit_layer_stat {
  NNKIT_LSTAT_ACT_MEAN = 1,  /**< mean of the layer's outputs */
  NNKIT_LSTAT_ACT_STD = 2,   /**< standard deviation of the layer's outputs */
  /** Fraction of outputs of a tanh layer with |a| > 0.99, or of a sigmoid
   *  layer with a < 0.01 or a > 0.99. NaN for other layers. */
  NNKIT_LSTAT_SATURATED = 3,
  /** Fraction of units of a ReLU layer never positive over the batch (a
   *  unit is an output feature, or a channel of a feature map). NaN for
   *  other layers. */
  NNKIT_LSTAT_DEAD = 4,
  NNKIT_LSTAT_GRAD_NORM = 5,   /**< L2 norm of the layer's parameter gradient; NaN without parameters */
  NNKIT_LSTAT_UPDATE_RATIO = 6,/**< ||step|| / ||params before the step||; NaN without parameters or step */
  NNKIT_LSTAT_PARAM_NORM = 7   /**< L2 norm of the layer's parameters; NaN without parameters */
} nnkit_layer_stat;

/**
 * Runs one batch through net in its current mode and measures every layer:
 * out[l * num_stats + j] = statistic stats[j] of layer l. With labels (or
 * targets) it also back-propagates, overwriting the net's gradient buffer,
 * so GRAD_NORM is measured; without, GRAD_NORM is NaN. UPDATE_RATIO is
 * always NaN here (no step is taken). Parameters are not changed.
 * @param x  batch * input_size floats, borrowed, already normalized (an
 *           attached normalizer is not applied, as in nnkit_net_forward()).
 * @return NNKIT_E_INVALID for NULL buffers, batch 0, a short len or an
 *         unknown statistic; errors of nnkit_net_forward()/backward().
 */
NNKIT_API nnkit_status nnkit_net_layer_stats(double *out, size_t len,
                                             const nnkit_layer_stat *stats,
                                             size_t num_stats, nnkit_net *net,
                                             const float *x,
                                             const int32_t *labels,
                                             const float *targets,
                                             size_t batch);

/**
 * Histogram of layer `layer`'s outputs in the net's last forward batch:
 * counts_out[i] counts values in [lo + i w, lo + (i + 1) w), w = (hi - lo) /
 * bins; values below lo count in bin 0 and values from hi up in the last
 * bin, NaN in none.
 * @return NNKIT_E_INVALID for NULL counts_out, bins 0, lo >= hi or a layer
 *         out of range; NNKIT_E_STATE before any forward, and for a layer
 *         whose outputs the ReLU after it overwrote in place during
 *         training (a fit stopped in mid-epoch; after a whole epoch every
 *         layer's outputs are there, and nnkit_net_forward() brings them
 *         back).
 */
NNKIT_API nnkit_status nnkit_net_activation_histogram(uint64_t *counts_out,
                                                      size_t bins, double lo,
                                                      double hi,
                                                      const nnkit_net *net,
                                                      size_t layer);

/**
 * Writes the histograms of every layer's outputs of the last forward batch
 * as CSV "layer,kind,bin_lo,bin_hi,count" (layers 1-based), atomically.
 * @return as nnkit_net_activation_histogram(), and NNKIT_E_IO.
 */
NNKIT_API nnkit_status nnkit_net_save_histograms_csv(const nnkit_net *net,
                                                     const char *path,
                                                     size_t bins, double lo,
                                                     double hi);

/**
 * Confusion matrix of net on a labelled dataset (evaluation mode):
 * matrix_out receives C x C counts, C = the dataset's class count. Raw
 * samples, through the attached normalizer as in nnkit_net_predict().
 * @return NNKIT_E_INVALID for an unlabelled set or a short len;
 *         NNKIT_E_SHAPE when the dataset does not fit the net.
 */
NNKIT_API nnkit_status nnkit_net_confusion(size_t *matrix_out, size_t len,
                                           nnkit_net *net,
                                           const nnkit_dataset *ds);

/** Top-k accuracy of net on a labelled dataset (evaluation mode), raw
 *  samples as nnkit_net_confusion().
 *  @return as nnkit_net_confusion(), and NNKIT_E_INVALID for k outside
 *          [1, output size]. */
NNKIT_API nnkit_status nnkit_net_top_k_accuracy(double *out, nnkit_net *net,
                                                const nnkit_dataset *ds,
                                                size_t k);

/* ------------------------------------------------------------------ */
/* Preprocessing and labels a net carries                               */
/* ------------------------------------------------------------------ */

/*
 * A net can own the normalizer its training data went through and the
 * names of its outputs, so that a saved and reloaded model takes raw input
 * and names its answers. Only the raw-input calls apply the normalizer:
 * nnkit_net_predict(), nnkit_net_predict_proba(), nnkit_net_evaluate(),
 * nnkit_net_confusion() and nnkit_net_top_k_accuracy(). The lower-level
 * calls (nnkit_net_forward(), nnkit_net_backward(), nnkit_net_layer_stats(),
 * the optimizer's and the trainer's) take already-normalized input, as the
 * pipeline delivers it.
 */

/**
 * Attaches a copy of nz, a fitted normalizer, as the net's input
 * normalizer (replacing any before); NULL removes it. nz is copied: the
 * caller keeps and frees its own. The working memory the raw-input calls
 * need is allocated here (256 samples' worth), so they allocate nothing
 * per call for it.
 * @return NNKIT_E_INVALID for a NULL net; NNKIT_E_STATE for an unfitted
 *         normalizer; NNKIT_E_SHAPE when its output size is not the net's
 *         input size; NNKIT_E_NOMEM. On failure the net keeps what it had.
 */
NNKIT_API nnkit_status nnkit_net_set_normalizer(nnkit_net *net,
                                                const nnkit_normalizer *nz);

/** The net's input normalizer, or NULL when it has none (or net is NULL).
 *  Borrowed from the net: valid until the next nnkit_net_set_normalizer()
 *  or nnkit_net_free(); only read it (it may be passed to
 *  nnkit_normalizer_transform(), nnkit_net_save() or another net's
 *  nnkit_net_set_normalizer()). */
NNKIT_API const nnkit_normalizer *nnkit_net_normalizer(const nnkit_net *net);

/**
 * Names the net's outputs: names[i] is class i's name (copied). n must
 * equal the output size; n 0 (names may then be NULL) removes the names.
 * Model files keep them. Layers added afterwards that change the output
 * size leave names that nnkit_net_save() refuses (set them again).
 * @return NNKIT_E_INVALID for a NULL net, NULL names with n > 0 or a NULL
 *         name; NNKIT_E_STATE for a net without layers; NNKIT_E_SHAPE
 *         when n is not the output size; NNKIT_E_NOMEM. On failure the
 *         old names stay.
 */
NNKIT_API nnkit_status nnkit_net_set_class_names(nnkit_net *net,
                                                 const char *const *names,
                                                 size_t n);

/** Class i's name, or NULL when the net has no names or i is out of
 *  range. Borrowed from the net: valid until the next
 *  nnkit_net_set_class_names() or nnkit_net_free(). */
NNKIT_API const char *nnkit_net_class_name(const nnkit_net *net, size_t i);

/* ------------------------------------------------------------------ */
/* Model files (the format: doc/file-format.md)                        */
/* ------------------------------------------------------------------ */

/**
 * Writes net (its architecture, parameters, batch-normalization running
 * statistics, trainable flags, learning-rate multipliers and class names)
 * and the fitted normalizer its inputs go through -- nz when it is not
 * NULL, else the net's own (nnkit_net_normalizer()), if any -- to a model
 * file at path, with a CRC-32 checksum of the whole file. Both are
 * borrowed and only read (a net whose parameters
 * were never initialized gets them drawn first, as by
 * nnkit_net_params()). The write is atomic: a temporary file next to path
 * is written, flushed to disk (fsync) and renamed over path, so on any
 * failure path is untouched (an existing file keeps its old contents) and
 * no temporary file is left.
 * Optimizer state is not saved: the file is for inference and
 * fine-tuning (nnkit_trainer_save_checkpoint() saves a run to resume).
 * @param nz  a fitted normalizer whose output size equals the net's input
 *            size, or NULL for the net's own (none when it has none).
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
 * (in evaluation mode) with its class names and, when the file has one,
 * its normalizer attached (nnkit_net_normalizer()), so nnkit_net_predict()
 * of the loaded net on raw samples equals the saved net's on normalized
 * ones, bit for bit. Everything is validated before anything is returned:
 * the checksum (files of format version 1, written by nnkit 0.1.0, have
 * none and still load), the header length against the
 * file size, the JSON, the format version, every layer kind and
 * argument, dtypes (F32 only), shapes against the architecture, data
 * offsets (in bounds, not overlapping, covering the data) and that every
 * value is finite.
 * @param net_out  receives the net (the caller's; nnkit_net_free()), NULL
 *                 on failure.
 * @param nz_out   NULL, or receives a second copy of the saved normalizer
 *                 (the caller's, independent of the one attached to the
 *                 net; nnkit_normalizer_free()), or NULL when the file has
 *                 none or on failure.
 * @param path     borrowed.
 * @return NNKIT_E_INVALID for a NULL net_out or path; NNKIT_E_IO when the
 *         file cannot be opened or read; NNKIT_E_FORMAT for anything
 *         malformed, truncated, corrupt (a checksum mismatch:
 *         "model.safetensors: checksum mismatch: the file is corrupt
 *         (stored 1a2b3c4d, computed 5e6f7a8b)") or from a newer format
 *         version, with a sentence naming path and the problem (e.g.
 *         "model.safetensors: tensor layers.0.weight has shape [512, 784]
 *         but dense layer 0 needs [256, 784]"); NNKIT_E_NOMEM. Nothing is left allocated on
 *         failure.
 */
NNKIT_API nnkit_status nnkit_net_load(nnkit_net **net_out,
                                      nnkit_normalizer **nz_out,
                                      const char *path);

/* ------------------------------------------------------------------ */
/* Transfer learning                                                    */
/* ------------------------------------------------------------------ */

/*
 * A net trained on one task becomes the start of another: cut it before
 * its head with nnkit_net_cut(), append a new head (nnkit_net_add_*) for
 * the new classes, freeze the first layers or give them a small
 * learning-rate multiplier (Fine-tuning, above) and train; or read the
 * activations of one layer for a whole dataset with nnkit_net_features()
 * ("CNN codes") and train a small classifier on them.
 */

/**
 * Keeps the first `keep` layers of net and destroys the others (their
 * parameters, state and initializers). The kept layers are unchanged:
 * their parameters bit for bit (the parameter buffer shrinks to their
 * floats, at the same offsets), batch-normalization statistics, dropout
 * positions, trainable flags, learning-rate multipliers and initializers.
 * Layers appended afterwards are initialized as usual at first use
 * (weights from the net's seed and their position), and the kept ones
 * keep their values. keep == nnkit_net_num_layers() changes nothing.
 *
 * Pointers from nnkit_net_params()/nnkit_net_grads() and the net's working
 * memory are invalidated. An optimizer that has stepped this net has
 * state sized for the old parameters: call nnkit_optimizer_reset() (or
 * use a new optimizer) after a cut; a step with a state of another size
 * fails with NNKIT_E_STATE, and a state that happens to have the same size
 * would carry the removed head's momentum into the new one. Regularizers
 * naming removed layers fail at the next step (NNKIT_E_INVALID).
 * @param keep  layers to keep, in [1, number of layers].
 * @return NNKIT_E_INVALID for a NULL net or keep outside that range (the
 *         sentence gives it); the net is then unchanged. Never fails for
 *         lack of memory (when shrinking the parameter buffer is refused,
 *         the larger one stays in use).
 */
NNKIT_API nnkit_status nnkit_net_cut(nnkit_net *net, size_t keep);

/**
 * The outputs of layer `layer` (0-based; see nnkit_net_layer_shape()) for
 * every sample of ds, as a new dataset: sample shape = that layer's output
 * shape, the same sample order, and copies of ds's labels, class count,
 * class names and regression targets. The net runs in evaluation mode
 * (dropout off, batch normalization on its running statistics) in chunks
 * of 256 samples, exactly as nnkit_net_forward() (whose per-layer outputs
 * these are, bit for bit, for the same chunk); its mode is restored. The
 * whole net runs, the layers after `layer` too.
 * @param out    receives the new dataset (the caller's;
 *               nnkit_dataset_free()); NULL on failure.
 * @param net    not const: its working memory is used (and may grow).
 * @param ds     borrowed, read only; float or compact (byte) samples.
 * @return NNKIT_E_INVALID for NULL arguments or a layer out of range;
 *         NNKIT_E_STATE for a net without layers;
 *         NNKIT_E_SHAPE when ds's sample size is not the net's input size;
 *         NNKIT_E_DIVERGED when an output is not finite (a dataset holds
 *         finite values only); errors of nnkit_net_forward(); NNKIT_E_NOMEM.
 */
NNKIT_API nnkit_status nnkit_net_features(nnkit_dataset **out, nnkit_net *net,
                                          size_t layer, const nnkit_dataset *ds);

/**
 * nnkit_net_features() for a batch in caller memory: out receives the
 * outputs of layer `layer` for `batch` samples of x (batch * input_size
 * floats, borrowed), batch * (that layer's output size) floats; len must
 * be at least that. Evaluation mode, in chunks of 256, the mode restored.
 * @return NNKIT_E_INVALID for NULL buffers, batch 0, a layer out of range
 *         or a short len; NNKIT_E_STATE for a net without layers;
 *         NNKIT_E_DIVERGED for a non-finite output (out
 *         then holds the chunks before it); errors of nnkit_net_forward().
 */
NNKIT_API nnkit_status nnkit_net_features_batch(float *out, size_t len,
                                                nnkit_net *net, size_t layer,
                                                const float *x, size_t batch);

#ifdef __cplusplus
}
#endif
#endif /* NNKIT_NET_H */
