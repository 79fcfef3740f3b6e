/* The sequential network as a container: the layer list, one contiguous
 * parameter buffer with a twin gradient buffer (the parameter arena),
 * initialization, the getters, the keyed layer options and the layers'
 * tensors by role. Running the net (planning, slices, threads, forward,
 * backward, predict, evaluate) is exec.c; its loss is loss.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

size_t nnkit__shape_size(const nnkit__shape *s)
{
  size_t n = 1;
  for (size_t i = 0; i < s->ndim; i++)
    n *= s->d[i];
  return n;
}

static int shape_from_user(nnkit__shape *s, const size_t *shape, size_t ndim,
                           const char *fn)
{
  if (!shape || ndim < 1 || ndim > NNKIT_MAX_SAMPLE_DIMS) {
    nnkit__err(NNKIT_E_INVALID, "%s: sample shape needs 1 to %d dimensions (got %zu)",
               fn, NNKIT_MAX_SAMPLE_DIMS, ndim);
    return 0;
  }
  int ovf = 0;
  size_t total = 1;
  for (size_t i = 0; i < ndim; i++) {
    if (shape[i] == 0) {
      nnkit__err(NNKIT_E_INVALID, "%s: sample dimension %zu is 0; every dimension "
                 "must be positive", fn, i);
      return 0;
    }
    total = nnkit__mul_size(total, shape[i], &ovf);
    s->d[i] = shape[i];
  }
  if (ovf || total > ((size_t)1 << 31)) {
    nnkit__err(NNKIT_E_INVALID, "%s: a sample of more than 2^31 floats is not "
               "supported", fn);
    return 0;
  }
  s->ndim = ndim;
  return 1;
}

NNKIT_API nnkit_status nnkit_net_create(nnkit_net **out, const size_t *shape,
                                        size_t ndim, uint64_t seed)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_create: out is NULL");
  *out = NULL;
  nnkit__shape in;
  if (!shape_from_user(&in, shape, ndim, "nnkit_net_create"))
    return NNKIT_E_INVALID;
  nnkit_net *net = nnkit__calloc(1, sizeof *net);
  if (!net)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_create: out of memory");
  net->in = in;
  net->seed = seed;
  net->loss = NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  net->training = 1;
  *out = net;
  return NNKIT_OK;
}

NNKIT_API void nnkit_net_free(nnkit_net *net)
{
  if (!net)
    return;
  nnkit__net_free_work(net);
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    if (l->ops->destroy)
      l->ops->destroy(l);
    nnkit_init_free(l->w_init);
    nnkit_init_free(l->b_init);
  }
  nnkit__free(net->layers);
  nnkit__free(net->params);
  nnkit__free(net->grads);
  nnkit__net_free_preprocess(net); /* the normalizer and class names */
  nnkit__free(net->prof);
  nnkit__free(net);
}

static const nnkit__shape *current_out(const nnkit_net *net)
{
  return net->num_layers ? &net->layers[net->num_layers - 1].out : &net->in;
}

/* Appends a layer whose kind-specific fields are in *proto; the net takes
 * ownership of proto->state (destroyed on failure too). Shape inference
 * runs now, with l->index and l->seed already set; on failure nothing
 * changes. */
nnkit_status nnkit__net_add_layer(nnkit_net *net, const nnkit__layer *proto)
{
  nnkit__layer l = *proto;
  l.in = *current_out(net);
  l.index = net->num_layers;
  l.seed = net->seed;
  nnkit_status st = l.ops->setup(&l);
  if (st != NNKIT_OK) {
    if (l.ops->destroy)
      l.ops->destroy(&l);
    return st;
  }
  if (net->num_layers == net->cap_layers) {
    size_t cap = net->cap_layers ? 2 * net->cap_layers : 8;
    nnkit__layer *nl = nnkit__realloc(net->layers, cap * sizeof *nl);
    if (!nl) {
      if (l.ops->destroy)
        l.ops->destroy(&l);
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_add_%s: out of memory", l.ops->name);
    }
    net->layers = nl;
    net->cap_layers = cap;
  }
  /* Working memory is per layer list; drop it and rebuild at next use. */
  nnkit__net_free_work(net);
  l.param_offset = net->num_params;
  l.lr_mult = 1.0f;
  l.params = l.grads = NULL;
  net->layers[net->num_layers++] = l;
  net->num_params += l.num_params;
  net->built = 0;
  return NNKIT_OK;
}

static nnkit_status copy_init(nnkit_init **dst, const nnkit_init *src)
{
  if (!src)
    return NNKIT_OK;
  nnkit_init *c = NULL;
  nnkit_status st = nnkit_init_create(&c, src->kind, src->a, src->b);
  if (st != NNKIT_OK)
    return st;
  nnkit_init_free(*dst);
  *dst = c;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_set_init(nnkit_net *net, size_t layer,
                                          const nnkit_init *weights,
                                          const nnkit_init *bias)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_set_init: net is NULL");
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_set_init: layer %zu does not exist (the net has %zu)",
                      layer, net->num_layers);
  nnkit__layer *l = &net->layers[layer];
  if (!l->ops->fans)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_set_init: layer %zu (%s) has no parameters", layer,
                      l->ops->name);
  nnkit_init *w = NULL, *b = NULL;
  nnkit_status st = copy_init(&w, weights);
  if (st == NNKIT_OK)
    st = copy_init(&b, bias);
  if (st != NNKIT_OK) {
    nnkit_init_free(w);
    nnkit_init_free(b);
    return st;
  }
  if (w) {
    nnkit_init_free(l->w_init);
    l->w_init = w;
  }
  if (b) {
    nnkit_init_free(l->b_init);
    l->b_init = b;
  }
  return NNKIT_OK;
}

/* Draws layer i's parameters: weights from its initializer (or the default
 * for what follows it), bias from its bias initializer (or zeros). */
static nnkit_status init_layer(nnkit_net *net, size_t i)
{
  nnkit__layer *l = &net->layers[i];
  if (!l->ops->fans || l->num_params == 0) {
    if (l->ops->init && l->num_params)
      l->ops->init(l);
    l->initialized = 1;
    return NNKIT_OK;
  }
  size_t fan_in, fan_out, nw;
  l->ops->fans(l, &fan_in, &fan_out, &nw);
  nnkit_status st;
  if (l->w_init) {
    st = nnkit_init_fill(l->w_init, l->params, nw, fan_in, fan_out, net->seed,
                         2 * i);
  } else {
    const nnkit__layer *next = i + 1 < net->num_layers ? &net->layers[i + 1] : NULL;
    float slope = 0.0f;
    int act = next ? nnkit__layer_activation(next, &slope) : 0;
    nnkit_init def = {NNKIT_INIT_XAVIER_UNIFORM, 1.0, 0.0};
    if (act == NNKIT_ACT_RELU || act == NNKIT_ACT_LEAKY_RELU) {
      def.kind = NNKIT_INIT_HE_NORMAL;
      def.a = act == NNKIT_ACT_LEAKY_RELU ? slope : 0.0;
    }
    st = nnkit_init_fill(&def, l->params, nw, fan_in, fan_out, net->seed, 2 * i);
  }
  if (st != NNKIT_OK)
    return st;
  size_t nb = l->num_params - nw;
  if (l->b_init)
    st = nnkit_init_fill(l->b_init, l->params + nw, nb, fan_in, fan_out, net->seed,
                         2 * i + 1);
  else
    memset(l->params + nw, 0, nb * sizeof(float));
  if (st == NNKIT_OK)
    l->initialized = 1;
  return st;
}

nnkit_status nnkit__net_build(nnkit_net *net)
{
  if (net->built)
    return NNKIT_OK;
  if (net->num_params > 0) {
    /* Layers are only appended, so existing offsets stay valid and realloc
     * keeps the values of layers already initialized. */
    float *p = nnkit__realloc(net->params, net->num_params * sizeof *p);
    if (!p)
      return nnkit__err(NNKIT_E_NOMEM, "net: out of memory for %zu parameters",
                        net->num_params);
    net->params = p;
    float *g = nnkit__realloc(net->grads, net->num_params * sizeof *g);
    if (!g)
      return nnkit__err(NNKIT_E_NOMEM, "net: out of memory for %zu gradients",
                        net->num_params);
    net->grads = g;
  }
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    l->params = l->num_params ? net->params + l->param_offset : NULL;
    l->grads = l->num_params ? net->grads + l->param_offset : NULL;
    if (l->params && !l->initialized) {
      memset(l->grads, 0, l->num_params * sizeof(float));
      nnkit_status st = init_layer(net, i);
      if (st != NNKIT_OK)
        return st;
    }
  }
  net->built = 1;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_init_params(nnkit_net *net)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_init_params: net is NULL");
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  for (size_t i = 0; i < net->num_layers; i++) {
    st = init_layer(net, i);
    if (st != NNKIT_OK)
      return st;
  }
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_set_loss(nnkit_net *net, nnkit_loss loss)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_set_loss: net is NULL");
  if (loss != NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY && loss != NNKIT_LOSS_MSE)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_set_loss: unknown loss %d; use an NNKIT_LOSS_* value",
                      (int)loss);
  net->loss = loss;
  return NNKIT_OK;
}

NNKIT_API nnkit_loss nnkit_net_get_loss(const nnkit_net *net)
{
  return net ? net->loss : (nnkit_loss)0;
}

NNKIT_API void nnkit_net_set_training(nnkit_net *net, int training)
{
  if (net)
    net->training = training != 0;
}

NNKIT_API int nnkit_net_is_training(const nnkit_net *net)
{
  return net ? net->training : 0;
}

NNKIT_API size_t nnkit_net_num_layers(const nnkit_net *net)
{
  return net ? net->num_layers : 0;
}

NNKIT_API size_t nnkit_net_input_size(const nnkit_net *net)
{
  return net ? nnkit__shape_size(&net->in) : 0;
}

NNKIT_API size_t nnkit_net_output_size(const nnkit_net *net)
{
  return net ? nnkit__shape_size(current_out(net)) : 0;
}

NNKIT_API nnkit_status nnkit_net_layer_shape(size_t *dims_out, size_t len,
                                             size_t *ndim_out,
                                             const nnkit_net *net, size_t layer)
{
  if (!net || !dims_out || !ndim_out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_layer_shape: NULL argument");
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_layer_shape: layer %zu does not exist (the net has %zu)",
                      layer, net->num_layers);
  const nnkit__shape *s = &net->layers[layer].out;
  if (len < s->ndim)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_layer_shape: dims_out holds %zu values, layer %zu "
                      "needs %zu", len, layer, s->ndim);
  for (size_t i = 0; i < s->ndim; i++)
    dims_out[i] = s->d[i];
  *ndim_out = s->ndim;
  return NNKIT_OK;
}

NNKIT_API const char *nnkit_net_layer_describe(nnkit_net *net, size_t layer)
{
  if (!net)
    return NULL;
  if (layer >= net->num_layers)
    return "";
  const nnkit__layer *l = &net->layers[layer];
  l->ops->describe(l, net->describe_buf, sizeof net->describe_buf);
  return net->describe_buf;
}

NNKIT_API nnkit_status nnkit_net_layer_params(size_t *offset_out,
                                              size_t *count_out,
                                              const nnkit_net *net, size_t layer)
{
  if (!net || !offset_out || !count_out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_layer_params: NULL argument");
  if (layer >= net->num_layers)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_layer_params: layer %zu does not exist (the net has %zu)",
                      layer, net->num_layers);
  *offset_out = net->layers[layer].param_offset;
  *count_out = net->layers[layer].num_params;
  return NNKIT_OK;
}

NNKIT_API size_t nnkit_net_num_params(const nnkit_net *net)
{
  return net ? net->num_params : 0;
}

NNKIT_API float *nnkit_net_params(nnkit_net *net)
{
  if (!net || net->num_params == 0 || nnkit__net_build(net) != NNKIT_OK)
    return NULL;
  return net->params;
}

NNKIT_API float *nnkit_net_grads(nnkit_net *net)
{
  if (!net || net->num_params == 0 || nnkit__net_build(net) != NNKIT_OK)
    return NULL;
  return net->grads;
}

/* ---- keyed layer options ------------------------------------------------ */

static nnkit__layer *layer_at(const nnkit_net *net, size_t layer, const char *fn)
{
  if (!net) {
    nnkit__err(NNKIT_E_INVALID, "%s: net is NULL", fn);
    return NULL;
  }
  if (layer >= net->num_layers) {
    nnkit__err(NNKIT_E_INVALID, "%s: layer %zu does not exist (the net has %zu)", fn,
               layer, net->num_layers);
    return NULL;
  }
  return &net->layers[layer];
}

static const nnkit__spec *layer_key(const nnkit__layer *l, int key, const char *fn)
{
  const nnkit__spec *s = nnkit__layer_opt(l, key);
  if (!s)
    nnkit__err(NNKIT_E_INVALID, "%s: layer %zu (%s) has no option %d; its options "
               "are the arguments of its nnkit_net_add_%s call", fn, l->index,
               l->ops->name, key, l->ops->name);
  return s;
}

NNKIT_API nnkit_status nnkit_net_layer_get(double *out, const nnkit_net *net,
                                           size_t layer, nnkit_layer_param key)
{
  static const char fn[] = "nnkit_net_layer_get";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL", fn);
  const nnkit__layer *l = layer_at(net, layer, fn);
  const nnkit__spec *s = l ? layer_key(l, (int)key, fn) : NULL;
  if (!s)
    return NNKIT_E_INVALID;
  double v[NNKIT__MAX_LAYER_ARGS];
  l->ops->get_opts(l, v);
  *out = v[s - l->ops->opts];
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_layer_set(nnkit_net *net, size_t layer,
                                           nnkit_layer_param key, double value)
{
  static const char fn[] = "nnkit_net_layer_set";
  nnkit__layer *l = layer_at(net, layer, fn);
  const nnkit__spec *s = l ? layer_key(l, (int)key, fn) : NULL;
  if (!s)
    return NNKIT_E_INVALID;
  char owner[64];
  snprintf(owner, sizeof owner, "%s (layer %zu)", l->ops->name, l->index);
  nnkit_status st = nnkit__spec_check(s, owner, value);
  if (st != NNKIT_OK)
    return st;
  if (!l->ops->set_opt)
    return nnkit__err(NNKIT_E_STATE, "%s: %s is fixed once the layer is added (it "
                      "sets shapes); build the net with the value you want", owner,
                      s->name);
  return l->ops->set_opt(l, (int)key, value);
}

NNKIT_API nnkit_status nnkit_net_layer_bounds(double *lo_out, double *hi_out,
                                              int *flags_out,
                                              const nnkit_net *net, size_t layer,
                                              nnkit_layer_param key)
{
  static const char fn[] = "nnkit_net_layer_bounds";
  const nnkit__layer *l = layer_at(net, layer, fn);
  const nnkit__spec *s = l ? layer_key(l, (int)key, fn) : NULL;
  if (!s)
    return NNKIT_E_INVALID;
  nnkit__spec_bounds(s, lo_out, hi_out, flags_out);
  return NNKIT_OK;
}

/* ---- tensors by role ----------------------------------------------------- */

size_t nnkit__net_role_floats(nnkit_net *net, int roles)
{
  size_t n = 0;
  nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0;
    for (size_t k = 0; k < nt; k++)
      if ((t[k].role & roles) && t[k].data)
        n += nnkit__tensor_floats(&t[k]);
  }
  return n;
}

void nnkit__net_role_copy(nnkit_net *net, int roles, float *buf, int to_net)
{
  nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0;
    for (size_t k = 0; k < nt; k++) {
      if (!(t[k].role & roles) || !t[k].data)
        continue;
      size_t n = nnkit__tensor_floats(&t[k]);
      if (to_net)
        memcpy(t[k].data, buf, n * sizeof(float));
      else
        memcpy(buf, t[k].data, n * sizeof(float));
      buf += n;
    }
  }
}
