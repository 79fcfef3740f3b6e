/* Regularizers: L2, L1 and elastic-net penalties (value and gradient over
 * the weights of chosen layers) and the max-norm constraint. Which floats
 * are penalized comes from the roles of each layer's tensors: weights
 * always, biases with WITH_BIASES, the scale and shift of normalization
 * layers with WITH_BATCHNORM; the layer kinds are never named. */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct nnkit_regularizer {
  nnkit_reg_kind kind;
  /* settings (NNKIT_REG_*) */
  double strength, l1_ratio, max, with_biases, with_batchnorm;
  size_t *layers; /* sorted; NULL = every layer */
  size_t num_layers;
  int attached;
};

#define LO NNKIT_BOUND_LO_OPEN
#define INT NNKIT_BOUND_INTEGER

static const nnkit__spec specs[] = {
  {NNKIT_REG_L2, NNKIT_REG_STRENGTH, "strength", 0, 1e6, 0, 0},
  {NNKIT_REG_L1, NNKIT_REG_STRENGTH, "strength", 0, 1e6, 0, 0},
  {NNKIT_REG_ELASTIC_NET, NNKIT_REG_STRENGTH, "strength", 0, 1e6, 0, 0},
  {NNKIT_REG_ELASTIC_NET, NNKIT_REG_L1_RATIO, "L1 ratio", 0, 1, 0.5, 0},
  {NNKIT_REG_MAX_NORM, NNKIT_REG_MAX, "maximum norm", 0, 1e6, 1, LO},
  {NNKIT_REG_L2, NNKIT_REG_WITH_BIASES, "with biases", 0, 1, 0, INT},
  {NNKIT_REG_L1, NNKIT_REG_WITH_BIASES, "with biases", 0, 1, 0, INT},
  {NNKIT_REG_ELASTIC_NET, NNKIT_REG_WITH_BIASES, "with biases", 0, 1, 0, INT},
  {NNKIT_REG_L2, NNKIT_REG_WITH_BATCHNORM, "with batch norm", 0, 1, 0, INT},
  {NNKIT_REG_L1, NNKIT_REG_WITH_BATCHNORM, "with batch norm", 0, 1, 0, INT},
  {NNKIT_REG_ELASTIC_NET, NNKIT_REG_WITH_BATCHNORM, "with batch norm", 0, 1, 0, INT},
};
#define NSPECS (sizeof specs / sizeof specs[0])

static int valid_kind(nnkit_reg_kind kind)
{
  return kind >= NNKIT_REG_L2 && kind <= NNKIT_REG_MAX_NORM;
}

static const char *kind_name(nnkit_reg_kind kind)
{
  switch (kind) {
  case NNKIT_REG_L2: return "L2 regularizer";
  case NNKIT_REG_L1: return "L1 regularizer";
  case NNKIT_REG_ELASTIC_NET: return "elastic-net regularizer";
  case NNKIT_REG_MAX_NORM: return "max-norm constraint";
  }
  return "unknown regularizer";
}

static const nnkit__spec *find_spec(nnkit_reg_kind kind, nnkit_reg_param key)
{
  if (!valid_kind(kind))
    return NULL;
  return nnkit__spec_find(specs, NSPECS, (int)kind, (int)key);
}

static double *slot(nnkit_regularizer *r, nnkit_reg_param key)
{
  switch (key) {
  case NNKIT_REG_STRENGTH: return &r->strength;
  case NNKIT_REG_L1_RATIO: return &r->l1_ratio;
  case NNKIT_REG_MAX: return &r->max;
  case NNKIT_REG_WITH_BIASES: return &r->with_biases;
  case NNKIT_REG_WITH_BATCHNORM: return &r->with_batchnorm;
  }
  return NULL;
}

static nnkit_status no_key(nnkit_reg_kind kind, int key)
{
  return nnkit__err(NNKIT_E_INVALID,
                    "%s has no setting with key %d; see nnkit_reg_param for the keys "
                    "of each kind", kind_name(kind), key);
}

NNKIT_API nnkit_status nnkit_regularizer_create(nnkit_regularizer **out,
                                                nnkit_reg_kind kind, double value)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_create: out is NULL");
  *out = NULL;
  if (!valid_kind(kind))
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_regularizer_create: unknown regularizer %d; use an "
                      "NNKIT_REG_* kind", (int)kind);
  nnkit_reg_param key = kind == NNKIT_REG_MAX_NORM ? NNKIT_REG_MAX : NNKIT_REG_STRENGTH;
  nnkit_status st = nnkit__spec_check(find_spec(kind, key), kind_name(kind), value);
  if (st != NNKIT_OK)
    return st;
  nnkit_regularizer *r = nnkit__calloc(1, sizeof *r);
  if (!r)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_regularizer_create: out of memory");
  r->kind = kind;
  for (size_t i = 0; i < NSPECS; i++)
    if (specs[i].kind == (int)kind)
      *slot(r, (nnkit_reg_param)specs[i].key) = specs[i].def;
  *slot(r, key) = value;
  *out = r;
  return NNKIT_OK;
}

void nnkit__regularizer_destroy(nnkit_regularizer *r)
{
  if (!r)
    return;
  nnkit__free(r->layers);
  nnkit__free(r);
}

NNKIT_API void nnkit_regularizer_free(nnkit_regularizer *reg)
{
  if (reg && !reg->attached)
    nnkit__regularizer_destroy(reg);
}

NNKIT_API nnkit_reg_kind nnkit_regularizer_kind(const nnkit_regularizer *reg)
{
  return reg->kind;
}

NNKIT_API nnkit_status nnkit_regularizer_set(nnkit_regularizer *reg,
                                             nnkit_reg_param key, double value)
{
  if (!reg)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_set: reg is NULL");
  const nnkit__spec *s = find_spec(reg->kind, key);
  if (!s)
    return no_key(reg->kind, (int)key);
  nnkit_status st = nnkit__spec_check(s, kind_name(reg->kind), value);
  if (st == NNKIT_OK)
    *slot(reg, key) = value;
  return st;
}

NNKIT_API nnkit_status nnkit_regularizer_get(double *out, const nnkit_regularizer *reg,
                                             nnkit_reg_param key)
{
  if (!out || !reg)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_get: NULL argument");
  if (!find_spec(reg->kind, key))
    return no_key(reg->kind, (int)key);
  *out = *slot((nnkit_regularizer *)reg, key);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_regularizer_bounds(double *lo_out, double *hi_out,
                                                int *flags_out, nnkit_reg_kind kind,
                                                nnkit_reg_param key)
{
  const nnkit__spec *s = find_spec(kind, key);
  if (!s)
    return no_key(kind, (int)key);
  if (lo_out)
    *lo_out = s->lo;
  if (hi_out)
    *hi_out = s->hi;
  if (flags_out)
    *flags_out = s->flags;
  return NNKIT_OK;
}

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

NNKIT_API nnkit_status nnkit_regularizer_set_layers(nnkit_regularizer *reg,
                                                    const size_t *layers, size_t count)
{
  if (!reg || (count && !layers))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_set_layers: NULL argument");
  size_t *copy = NULL;
  if (count) {
    int ovf = 0;
    size_t bytes = nnkit__mul_size(count, sizeof *copy, &ovf);
    copy = ovf ? NULL : nnkit__malloc(bytes);
    if (!copy)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_regularizer_set_layers: out of memory");
    memcpy(copy, layers, count * sizeof *copy);
    qsort(copy, count, sizeof *copy, cmp_size);
    for (size_t i = 1; i < count; i++)
      if (copy[i] == copy[i - 1]) {
        size_t dup = copy[i];
        nnkit__free(copy);
        return nnkit__err(NNKIT_E_INVALID,
                          "nnkit_regularizer_set_layers: layer %zu is listed twice",
                          dup);
      }
  }
  nnkit__free(reg->layers);
  reg->layers = copy;
  reg->num_layers = count;
  return NNKIT_OK;
}

nnkit_status nnkit__regularizer_check(const nnkit_regularizer *r, const nnkit_net *net)
{
  /* layers is sorted: the last index is the largest. */
  if (r->num_layers && r->layers[r->num_layers - 1] >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: layer %zu does not exist (the net has %zu layers)",
                      kind_name(r->kind), r->layers[r->num_layers - 1],
                      net->num_layers);
  return NNKIT_OK;
}

/* Layer index of the i-th selected layer. */
static size_t nth_layer(const nnkit_regularizer *r, size_t i)
{
  return r->num_layers ? r->layers[i] : i;
}

static size_t count_selected(const nnkit_regularizer *r, const nnkit_net *net)
{
  return r->num_layers ? r->num_layers : net->num_layers;
}

double nnkit__regularizer_apply(const nnkit_regularizer *r, nnkit_net *net,
                                int add_grad)
{
  if (r->kind == NNKIT_REG_MAX_NORM || r->strength == 0)
    return 0.0;
  double ratio = r->kind == NNKIT_REG_L1 ? 1.0
               : r->kind == NNKIT_REG_L2 ? 0.0
                                         : r->l1_ratio;
  /* d/dw lambda (ratio |w| + (1 - ratio) w^2) */
  float c1 = (float)(r->strength * ratio), c2 = (float)(2.0 * r->strength * (1.0 - ratio));
  double sum_abs = 0, sum_sq = 0;
  int roles = NNKIT__ROLE_WEIGHT | (r->with_biases != 0 ? NNKIT__ROLE_BIAS : 0) |
              (r->with_batchnorm != 0 ? NNKIT__ROLE_NORM : 0);
  size_t n = count_selected(r, net);
  for (size_t i = 0; i < n; i++) {
    const nnkit__layer *l = &net->layers[nth_layer(r, i)];
    if (!l->num_params || l->frozen)
      continue;
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = l->ops->tensors ? l->ops->tensors((nnkit__layer *)l, t) : 0;
    for (size_t j = 0; j < nt; j++) {
      if (!(t[j].role & roles) || !t[j].data)
        continue;
      size_t seg = 1;
      for (size_t d = 0; d < t[j].ndim; d++)
        seg *= t[j].dims[d];
      const float *w = t[j].data;
      float *g = l->grads + (t[j].data - l->params);
      for (size_t k = 0; k < seg; k++) {
        float v = w[k];
        sum_abs += fabsf(v);
        sum_sq += (double)v * v;
        if (add_grad) {
          float sign = (float)((v > 0) - (v < 0));
          g[k] += c1 * sign + c2 * v;
        }
      }
    }
  }
  return r->strength * (ratio * sum_abs + (1.0 - ratio) * sum_sq);
}

void nnkit__regularizer_constrain(const nnkit_regularizer *r, nnkit_net *net)
{
  if (r->kind != NNKIT_REG_MAX_NORM)
    return;
  size_t n = count_selected(r, net);
  for (size_t i = 0; i < n; i++) {
    const nnkit__layer *l = &net->layers[nth_layer(r, i)];
    if (!l->num_params || l->frozen || !l->ops->fans)
      continue;
    size_t fan_in, fan_out, nw;
    l->ops->fans(l, &fan_in, &fan_out, &nw);
    if (fan_in == 0)
      continue;
    /* Rows of fan_in weights: a dense unit's inputs, a conv filter. */
    for (size_t row = 0; row < nw / fan_in; row++) {
      float *w = l->params + row * fan_in;
      double ss = 0;
      for (size_t k = 0; k < fan_in; k++)
        ss += (double)w[k] * w[k];
      double norm = sqrt(ss);
      if (norm > r->max) {
        /* A hair under the bound, so rounding cannot leave it above. */
        float s = (float)(r->max / norm * (1.0 - 2.0 * FLT_EPSILON));
        for (size_t k = 0; k < fan_in; k++)
          w[k] *= s;
      }
    }
  }
}

NNKIT_API nnkit_status nnkit_regularizer_penalty(double *out,
                                                 const nnkit_regularizer *reg,
                                                 nnkit_net *net)
{
  if (!out || !reg || !net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_penalty: NULL argument");
  nnkit_status st = nnkit__regularizer_check(reg, net);
  if (st == NNKIT_OK)
    st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  *out = nnkit__regularizer_apply(reg, net, 0);
  return NNKIT_OK;
}

int nnkit__regularizer_attached(const nnkit_regularizer *r) { return r->attached; }

void nnkit__regularizer_set_attached(nnkit_regularizer *r, int attached)
{
  r->attached = attached;
}

nnkit_status nnkit__regularizer_copy(nnkit_regularizer **out, const nnkit_regularizer *r)
{
  nnkit_regularizer *c = nnkit__calloc(1, sizeof *c);
  if (!c)
    return nnkit__err(NNKIT_E_NOMEM, "regularizer copy: out of memory");
  *c = *r;
  c->attached = 0;
  c->layers = NULL;
  if (r->num_layers) {
    c->layers = nnkit__malloc(r->num_layers * sizeof *c->layers);
    if (!c->layers) {
      nnkit__free(c);
      return nnkit__err(NNKIT_E_NOMEM, "regularizer copy: out of memory");
    }
    memcpy(c->layers, r->layers, r->num_layers * sizeof *c->layers);
  }
  *out = c;
  return NNKIT_OK;
}
