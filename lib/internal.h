/*
 * Internal declarations shared by the library's modules and its tests.
 * Never installed. Cross-file helpers are named nnkit__*.
 */
#ifndef NNKIT_INTERNAL_H
#define NNKIT_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "nnkit.h"

#if defined(__GNUC__)
#  define NNKIT__PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#  define NNKIT__PRINTF(f, a)
#endif

/* ---- errors (lib/core/error.c) ---------------------------------------- */

/* Records a sentence for nnkit_last_error() and returns status. */
nnkit_status nnkit__err(nnkit_status status, const char *fmt, ...)
    NNKIT__PRINTF(2, 3);

/* ---- allocation (lib/core/alloc.c) ------------------------------------ */
/* Every allocation in the library goes through these, so tests can count
 * them (no allocation per training step) and inject failures. */
void *nnkit__malloc(size_t size);
void *nnkit__calloc(size_t n, size_t size);
void *nnkit__realloc(void *p, size_t size);
void nnkit__free(void *p);
/* Duplicates a string with nnkit__malloc. */
char *nnkit__strdup(const char *s);
/* Number of successful malloc/calloc/realloc calls so far (all threads). */
uint64_t nnkit__alloc_count(void);
/* Makes the n-th allocation from now on (1 = the next) fail; 0 disables. */
void nnkit__alloc_fail_after(uint64_t n);
/* a * b, or 0 with *overflow = 1 when it does not fit in size_t. */
size_t nnkit__mul_size(size_t a, size_t b, int *overflow);

/* ---- random numbers (lib/core/rng.c) ---------------------------------- */
/* Counter-based: draw i of (seed, stream) is a pure function of the three,
 * so a draw never depends on the order in which other streams were used. */
typedef struct nnkit__rng {
  uint64_t key;
  uint64_t counter;
} nnkit__rng;

void nnkit__rng_init(nnkit__rng *r, uint64_t seed, uint64_t stream);
uint64_t nnkit__rng_u64(nnkit__rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double nnkit__rng_uniform(nnkit__rng *r);
/* Standard normal (Box-Muller in double). */
double nnkit__rng_normal(nnkit__rng *r);
/* Uniform integer in [0, n), unbiased; n >= 1. */
uint64_t nnkit__rng_below(nnkit__rng *r, uint64_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void nnkit__rng_shuffle(nnkit__rng *r, size_t *idx, size_t n);

/* ---- threads and BLAS (lib/core/threads.c) ---------------------------- */
int nnkit__num_threads(void);

/* ---- time (lib/core/threads.c) ---------------------------------------- */
double nnkit__now(void); /* monotonic seconds */

/* ---- datasets (lib/data/dataset.c) ------------------------------------ */
struct nnkit_dataset {
  size_t count;
  size_t ndim;
  size_t shape[NNKIT_MAX_SAMPLE_DIMS];
  size_t sample_size;
  uint32_t num_classes; /* 0 when unlabelled or regression */
  size_t target_dim;    /* 0 unless regression */
  float *x;             /* count * sample_size */
  int32_t *labels;      /* count, or NULL */
  float *targets;       /* count * target_dim, or NULL */
};

/* Allocates an empty dataset with room for count samples of shape; labels
 * allocated when labelled != 0, targets when target_dim > 0. Checks the
 * size products for overflow. */
nnkit_status nnkit__dataset_alloc(nnkit_dataset **out, size_t count,
                                  const size_t *shape, size_t ndim,
                                  int labelled, size_t target_dim);

/* ---- initializers (lib/model/init.c) ---------------------------------- */
struct nnkit_init {
  nnkit_init_kind kind;
  double a, b; /* validated by nnkit_init_create; Xavier gain 0 stored as 1 */
};

/* ---- layers (lib/model/) ---------------------------------------------- */
typedef struct nnkit__shape {
  size_t ndim;
  size_t d[NNKIT_MAX_SAMPLE_DIMS];
} nnkit__shape;

size_t nnkit__shape_size(const nnkit__shape *s);

typedef struct nnkit__layer nnkit__layer;

/* One layer kind = one file implementing this table + one registry line. */
typedef struct nnkit__layer_ops {
  const char *name;
  /* Shape inference at add time: sets l->out and l->num_params from l->in,
   * or returns NNKIT_E_SHAPE with a sentence naming the layer and sizes. */
  nnkit_status (*setup)(nnkit__layer *l);
  /* Fan-in and fan-out for initializers. NULL when no parameters. */
  void (*fans)(const nnkit__layer *l, size_t *fan_in, size_t *fan_out,
               size_t *num_weights);
  /* y[batch, out] = f(x[batch, in]). */
  void (*forward)(nnkit__layer *l, const float *x, float *y, size_t batch);
  /* Given dy, accumulates parameter gradients into l->grads (+=) and, when
   * dx is not NULL, writes dx (=). x and y are forward's input and output. */
  void (*backward)(nnkit__layer *l, const float *x, const float *y,
                   const float *dy, float *dx, size_t batch);
  /* Optional: initializes parameters of layers without fans (e.g. batch
   * norm's gamma = 1, beta = 0). NULL for layers with fans or no params. */
  void (*init)(nnkit__layer *l);
  /* Writes a one-line description. */
  void (*describe)(const nnkit__layer *l, char *buf, size_t len);
  /* Frees l->state (may be NULL when there is no state). */
  void (*destroy)(nnkit__layer *l);
} nnkit__layer_ops;

struct nnkit__layer {
  const nnkit__layer_ops *ops;
  nnkit__shape in, out;
  size_t num_params;   /* floats in this layer's slice */
  size_t param_offset; /* into net->params */
  float *params;       /* net->params + param_offset (NULL when none) */
  float *grads;        /* net->grads + param_offset */
  int initialized;
  int training;        /* copy of the net's mode, set before forward */
  size_t index;        /* position in the net */
  uint64_t seed;       /* the net's seed; layers draw from stream 2^32 + index */
  int frozen;          /* 1: the optimizer leaves this layer's params alone */
  float lr_mult;       /* per-layer learning-rate multiplier (default 1) */
  nnkit_init *w_init;  /* owned; NULL = default */
  nnkit_init *b_init;  /* owned; NULL = zeros */
  nnkit_activation act;/* for activation layers */
  float slope;         /* leaky ReLU slope */
  size_t units;        /* dense */
  void *state;         /* kind-specific, owned */
};

extern const nnkit__layer_ops nnkit__dense_ops;
extern const nnkit__layer_ops nnkit__activation_ops;

/* Reference twins of BLAS-backed kernels, used by the tests. */
void nnkit__dense_forward_naive(const float *x, const float *w, const float *b,
                                float *y, size_t batch, size_t in, size_t out);
void nnkit__dense_backward_naive(const float *x, const float *w,
                                 const float *dy, float *dx, float *dw,
                                 float *db, size_t batch, size_t in,
                                 size_t out);

/* Softmax of each row (numerically stable). */
void nnkit__softmax_rows(const float *x, float *y, size_t rows, size_t cols);

/* Losses (lib/model/loss.c). Each returns the mean loss and writes the
 * gradient of the mean loss with respect to its input into grad.
 * Softmax cross-entropy takes logits [batch, classes]. */
double nnkit__softmax_ce(const float *logits, const int32_t *labels,
                         float *grad, size_t batch, size_t classes);
/* MSE over [batch, n]: mean of (y - t)^2; targets or one-hot labels. */
double nnkit__mse(const float *y, const float *targets, const int32_t *labels,
                  float *grad, size_t batch, size_t n);

/* ---- the net (lib/model/net.c) ---------------------------------------- */
struct nnkit_net {
  nnkit__shape in;
  uint64_t seed;
  nnkit_loss loss;
  int training;
  size_t num_layers, cap_layers;
  nnkit__layer *layers;
  /* parameters */
  size_t num_params;
  float *params, *grads;
  int built; /* params allocated for the current layer list */
  /* working memory, sized for batch_cap samples */
  size_t batch_cap;
  float **acts;      /* acts[i] = output of layer i */
  float *input;      /* copy of the last forward input (for backward) */
  float *dbuf[2];    /* ping-pong gradient buffers */
  float *probs;      /* softmax/loss scratch [batch_cap, output] */
  float *dinput;     /* gradient w.r.t. the input */
  size_t max_width;  /* widest layer input/output */
  size_t last_batch; /* batch of the last forward, 0 = none */
  int want_dinput;  /* backward also fills dinput (tests, later saliency) */
  int have_dinput;
  size_t last_correct; /* argmax hits of the last loss computation */
  char describe_buf[256];
};

/* Allocates params for all layers (keeping existing values of initialized
 * layers) and initializes layers never initialized. */
nnkit_status nnkit__net_build(nnkit_net *net);
/* Ensures working memory for batch samples. */
nnkit_status nnkit__net_reserve(nnkit_net *net, size_t batch);
/* Output of the last layer of the last forward. */
const float *nnkit__net_output(const nnkit_net *net);
/* Mean loss of the last forward and the number of correct argmax
 * predictions (labels only), without backward. */
nnkit_status nnkit__net_batch_loss(nnkit_net *net, const int32_t *labels,
                                   const float *targets, double *loss_out,
                                   size_t *correct_out);

/* ---- optimizers (lib/optim/optimizer.c) ------------------------------- */
struct nnkit_optimizer {
  nnkit_optim_kind kind;
  double lr;
  uint64_t steps;
  size_t state_len; /* floats of state per parameter buffer */
  float *state;
};

#endif /* NNKIT_INTERNAL_H */
