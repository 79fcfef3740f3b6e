/* Inverted dropout and spatial dropout. Shape-preserving.
 *
 * Training mode: each mask entry is kept with probability 1 - p and kept
 * values are scaled by 1 / (1 - p); evaluation mode is the identity. Plain
 * dropout has one mask entry per value, spatial dropout one per channel of
 * each sample (a [C, H, W] map is dropped or kept whole).
 *
 * Randomness: the mask of training forward number `step` of layer i is
 * drawn from the counter-based generator (net seed, stream 2^32 + i) at
 * counters step * 2^40 + 1, 2, ..., one draw per mask entry in sample-major
 * order, so it depends only on the seed, the layer's position, the step and
 * the batch size. The mask (one byte per entry, sized by the reserve hook)
 * is kept for backward. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

extern const nnkit__layer_kind nnkit__dropout_kind; /* below */
extern const nnkit__layer_kind nnkit__spatial_dropout_kind; /* below */

typedef struct drop_state {
  double p;
  float scale;        /* 1 / (1 - p) */
  uint64_t threshold; /* drop when the draw's top 32 bits are below it */
  int spatial;
  size_t units;       /* mask entries per sample */
  size_t group;       /* values per mask entry */
  uint64_t step;      /* training forwards so far */
  int frozen;         /* keep drawing the mask of `step` */
  int fwd_training;   /* mode of the last forward */
  size_t cap;         /* samples `keep` holds */
  uint8_t *keep;      /* [cap * units] */
} drop_state;

static nnkit_status drop_setup(nnkit__layer *l)
{
  drop_state *s = l->state;
  size_t n = nnkit__shape_size(&l->in);
  if (s->spatial) {
    if (l->in.ndim < 2) {
      char sbuf[64];
      nnkit__shape_text(&l->in, sbuf, sizeof sbuf);
      return nnkit__err(NNKIT_E_SHAPE,
                        "spatial_dropout (layer %zu): needs feature maps [channels, "
                        "height, width], got an input of shape [%s]; use "
                        "nnkit_net_add_dropout for flat features",
                        l->index, sbuf);
    }
    s->units = l->in.d[0];
    s->group = n / s->units;
  } else {
    s->units = n;
    s->group = 1;
  }
  l->out = l->in;
  l->num_params = 0;
  return NNKIT_OK;
}

static nnkit_status drop_reserve(nnkit__layer *l, size_t batch)
{
  drop_state *s = l->state;
  if (batch <= s->cap)
    return NNKIT_OK;
  int ovf = 0;
  size_t n = nnkit__mul_size(batch, s->units, &ovf);
  uint8_t *k = ovf ? NULL : nnkit__malloc(n);
  if (!k)
    return nnkit__err(NNKIT_E_NOMEM, "%s (layer %zu): out of memory for a batch of %zu",
                      l->ops->name, l->index, batch);
  nnkit__free(s->keep);
  s->keep = k;
  s->cap = batch;
  return NNKIT_OK;
}

static void drop_forward(nnkit__layer *l, const float *x, float *y, size_t batch)
{
  drop_state *s = l->state;
  const size_t G = s->group, M = batch * s->units;
  s->fwd_training = l->training;
  if (!l->training) {
    memcpy(y, x, M * G * sizeof *y);
    return;
  }
  nnkit__rng r;
  nnkit__rng_init(&r, l->seed, ((uint64_t)1 << 32) + l->index);
  r.counter = s->step << 40;
  if (!s->frozen)
    s->step++;
  for (size_t m = 0; m < M; m++)
    s->keep[m] = (nnkit__rng_u64(&r) >> 32) >= s->threshold;
  const float sc = s->scale;
  if (G == 1) {
    for (size_t m = 0; m < M; m++)
      y[m] = s->keep[m] ? x[m] * sc : 0.0f;
  } else {
    for (size_t m = 0; m < M; m++) {
      const float *xs = x + m * G;
      float *ys = y + m * G;
      if (s->keep[m])
        for (size_t k = 0; k < G; k++)
          ys[k] = xs[k] * sc;
      else
        memset(ys, 0, G * sizeof *ys);
    }
  }
}

static void drop_backward(nnkit__layer *l, const float *x, const float *y,
                          const float *dy, float *dx, size_t batch)
{
  (void)x;
  (void)y;
  if (!dx)
    return;
  drop_state *s = l->state;
  const size_t G = s->group, M = batch * s->units;
  if (!s->fwd_training) {
    memcpy(dx, dy, M * G * sizeof *dx);
    return;
  }
  const float sc = s->scale;
  for (size_t m = 0; m < M; m++) {
    const float *ds = dy + m * G;
    float *dxs = dx + m * G;
    if (s->keep[m])
      for (size_t k = 0; k < G; k++)
        dxs[k] = ds[k] * sc;
    else
      memset(dxs, 0, G * sizeof *dxs);
  }
}

static void drop_describe(const nnkit__layer *l, char *buf, size_t len)
{
  const drop_state *s = l->state;
  char ins[64];
  nnkit__shape_text(&l->in, ins, sizeof ins);
  snprintf(buf, len, "%s p=%g %s", l->ops->name, s->p, ins);
}

static void drop_destroy(nnkit__layer *l)
{
  drop_state *s = l->state;
  if (!s)
    return;
  nnkit__free(s->keep);
  nnkit__free(s);
  l->state = NULL;
}



void nnkit__dropout_freeze(nnkit__layer *l, int frozen)
{
  if (l->ops == &nnkit__dropout_kind || l->ops == &nnkit__spatial_dropout_kind)
    ((drop_state *)l->state)->frozen = frozen != 0;
}

static nnkit_status add_dropout(nnkit_net *net, double p, int spatial)
{
  const nnkit__layer_kind *ops = spatial ? &nnkit__spatial_dropout_kind : &nnkit__dropout_kind;
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_add_%s: net is NULL", ops->name);
  if (!isfinite(p) || p < 0.0 || p >= 1.0)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s (layer %zu): drop probability %g is outside [0, 1)", ops->name,
                      net->num_layers, p);
  drop_state *s = nnkit__calloc(1, sizeof *s);
  if (!s)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_%s: out of memory", ops->name);
  s->p = p;
  s->scale = (float)(1.0 / (1.0 - p));
  s->threshold = (uint64_t)ldexp(p, 32);
  s->spatial = spatial;
  nnkit__layer l = {0};
  l.ops = ops;
  l.state = s;
  return nnkit__net_add_layer(net, &l);
}

NNKIT_API nnkit_status nnkit_net_add_dropout(nnkit_net *net, double p)
{
  return add_dropout(net, p, 0);
}

NNKIT_API nnkit_status nnkit_net_add_spatial_dropout(nnkit_net *net, double p)
{
  return add_dropout(net, p, 1);
}

/* Model files: the drop probability. */

static nnkit_status drop_set_opt(nnkit__layer *l, int key, double value)
{
  (void)key; /* p, the only option */
  drop_state *s = l->state;
  s->p = value;
  s->scale = (float)(1.0 / (1.0 - value));
  s->threshold = (uint64_t)ldexp(value, 32);
  return NNKIT_OK;
}

/* The mask step, for checkpoints: the position of the layer's stream. */
static size_t drop_tensors(nnkit__layer *l, nnkit__tensor *t)
{
  drop_state *s = l->state;
  t[0] = (nnkit__tensor){"mask_step", NULL, 1, {1}, NNKIT__ROLE_COUNTER, &s->step};
  return 1;
}

static void drop_get_args(const nnkit__layer *l, double *v)
{
  v[0] = ((const drop_state *)l->state)->p;
}

static nnkit_status dropout_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_dropout(net, v[0]);
}

static nnkit_status spatial_dropout_add(nnkit_net *net, const double *v)
{
  return nnkit_net_add_spatial_dropout(net, v[0]);
}

/* ---- the descriptors ---- */

static const nnkit__spec drop_opts[] = {
  {0, NNKIT_LAYER_DROP_P, "p", 0, 1, 0.5, NNKIT_BOUND_HI_OPEN},
};

const nnkit__layer_kind nnkit__dropout_kind = {
  .name = "dropout",
  .opts = drop_opts,
  .num_opts = 1,
  .get_opts = drop_get_args,
  .set_opt = drop_set_opt,
  .add = dropout_add,
  .tensors = drop_tensors,
  .setup = drop_setup,
  .fans = NULL,
  .forward = drop_forward,
  .backward = drop_backward,
  .init = NULL,
  .describe = drop_describe,
  .destroy = drop_destroy,
  .reserve = drop_reserve,
  .backward_ignores_y = 1,
};

const nnkit__layer_kind nnkit__spatial_dropout_kind = {
  .name = "spatial_dropout",
  .opts = drop_opts,
  .num_opts = 1,
  .get_opts = drop_get_args,
  .set_opt = drop_set_opt,
  .add = spatial_dropout_add,
  .tensors = drop_tensors,
  .setup = drop_setup,
  .fans = NULL,
  .forward = drop_forward,
  .backward = drop_backward,
  .init = NULL,
  .describe = drop_describe,
  .destroy = drop_destroy,
  .reserve = drop_reserve,
  .backward_ignores_y = 1,
};

