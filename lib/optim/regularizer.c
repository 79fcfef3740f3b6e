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

/* Settings by key: v[NNKIT_REG_STRENGTH] ... v[NNKIT_REG_WITH_BATCHNORM]. */
#define NKEYS (NNKIT_REG_WITH_BATCHNORM + 1)

/* A regularizer kind: what nnkit_regularizer_create's value sets, and how
 * the kind acts. New kinds add a row here and their keys below. */
typedef struct reg_kind {
  nnkit_reg_kind kind;
  const char *name;
  nnkit_reg_param main_key; /* the value nnkit_regularizer_create takes */
  /* Penalty lambda (r |w| + (1 - r) w^2): r, or NAN to read the
   * L1_RATIO key. Unused by constraints. */
  double l1_ratio;
  int constraint; /* 1: rescales weights after each step, no penalty */
} reg_kind;

static const reg_kind kinds[] = {
  {NNKIT_REG_L2, "L2 regularizer", NNKIT_REG_STRENGTH, 0.0, 0},
  {NNKIT_REG_L1, "L1 regularizer", NNKIT_REG_STRENGTH, 1.0, 0},
  {NNKIT_REG_ELASTIC_NET, "elastic-net regularizer", NNKIT_REG_STRENGTH, NAN, 0},
  {NNKIT_REG_MAX_NORM, "max-norm constraint", NNKIT_REG_MAX, 0.0, 1},
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

struct nnkit_regularizer {
  const reg_kind *k;
  double v[NKEYS];
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

static const reg_kind *kind_of(nnkit_reg_kind kind)
{
  for (size_t i = 0; i < NKINDS; i++)
    if (kinds[i].kind == kind)
      return &kinds[i];
  return NULL;
}

static const char *kind_name(nnkit_reg_kind kind)
{
  const reg_kind *k = kind_of(kind);
  return k ? k->name : "unknown regularizer";
}

static const nnkit__spec *find_spec(nnkit_reg_kind kind, nnkit_reg_param key)
{
  if (!kind_of(kind))
    return NULL;
  return nnkit__spec_find(specs, NSPECS, (int)kind, (int)key);
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
  const reg_kind *k = kind_of(kind);
  if (!k)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_regularizer_create: unknown regularizer %d; use an "
                      "NNKIT_REG_* kind", (int)kind);
  nnkit_reg_param key = k->main_key;
  nnkit_status st = nnkit__spec_check(find_spec(kind, key), k->name, value);
  if (st != NNKIT_OK)
    return st;
  nnkit_regularizer *r = nnkit__calloc(1, sizeof *r);
  if (!r)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_regularizer_create: out of memory");
  r->k = k;
  for (size_t i = 0; i < NSPECS; i++)
    if (specs[i].kind == (int)kind)
      r->v[specs[i].key] = specs[i].def;
  r->v[key] = value;
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
  return reg ? reg->k->kind : (nnkit_reg_kind)0;
}

NNKIT_API nnkit_status nnkit_regularizer_set(nnkit_regularizer *reg,
                                             nnkit_reg_param key, double value)
{
  if (!reg)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_set: reg is NULL");
  const nnkit__spec *s = find_spec(reg->k->kind, key);
  if (!s)
    return no_key(reg->k->kind, (int)key);
  nnkit_status st = nnkit__spec_check(s, reg->k->name, value);
  if (st == NNKIT_OK)
    reg->v[key] = value;
  return st;
}

NNKIT_API nnkit_status nnkit_regularizer_get(double *out, const nnkit_regularizer *reg,
                                             nnkit_reg_param key)
{
  if (!out || !reg)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_regularizer_get: NULL argument");
  if (!find_spec(reg->k->kind, key))
    return no_key(reg->k->kind, (int)key);
  *out = reg->v[key];
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_regularizer_bounds(double *lo_out, double *hi_out,
                                                int *flags_out, nnkit_reg_kind kind,
                                                nnkit_reg_param key)
{
  const nnkit__spec *s = find_spec(kind, key);
  if (!s)
    return no_key(kind, (int)key);
  nnkit__spec_bounds(s, lo_out, hi_out, flags_out);
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
                      r->k->name, r->layers[r->num_layers - 1],
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
  const double strength = r->v[NNKIT_REG_STRENGTH];
  if (r->k->constraint || strength == 0)
    return 0.0;
  double ratio = isnan(r->k->l1_ratio) ? r->v[NNKIT_REG_L1_RATIO] : r->k->l1_ratio;
  /* d/dw lambda (ratio |w| + (1 - ratio) w^2) */
  float c1 = (float)(strength * ratio), c2 = (float)(2.0 * strength * (1.0 - ratio));
  double sum_abs = 0, sum_sq = 0;
  int roles = NNKIT__ROLE_WEIGHT |
              (r->v[NNKIT_REG_WITH_BIASES] != 0 ? NNKIT__ROLE_BIAS : 0) |
              (r->v[NNKIT_REG_WITH_BATCHNORM] != 0 ? NNKIT__ROLE_NORM : 0);
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
      size_t seg = nnkit__tensor_floats(&t[j]);
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
  return strength * (ratio * sum_abs + (1.0 - ratio) * sum_sq);
}

void nnkit__regularizer_constrain(const nnkit_regularizer *r, nnkit_net *net)
{
  if (!r->k->constraint)
    return;
  const double max = r->v[NNKIT_REG_MAX];
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
      if (norm > max) {
        /* A hair under the bound, so rounding cannot leave it above. */
        float s = (float)(max / norm * (1.0 - 2.0 * FLT_EPSILON));
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
