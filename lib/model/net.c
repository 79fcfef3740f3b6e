/* The sequential network: layer list, one contiguous parameter buffer with
 * a twin gradient buffer, working memory sized at first use, forward,
 * backward through the loss, predict and evaluate. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Samples per chunk in predict/evaluate. */
#define EVAL_CHUNK 256

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

static void free_work(nnkit_net *net)
{
  if (net->acts)
    for (size_t i = 0; i < net->num_layers; i++)
      nnkit__free(net->acts[i]);
  nnkit__free(net->acts);
  net->acts = NULL;
  nnkit__free(net->input);
  nnkit__free(net->dbuf[0]);
  nnkit__free(net->dbuf[1]);
  nnkit__free(net->probs);
  nnkit__free(net->dinput);
  nnkit__free(net->sbuf);
  net->input = net->dbuf[0] = net->dbuf[1] = net->probs = net->dinput = NULL;
  net->sbuf = NULL;
  net->x0 = NULL;
  net->slice_layers = net->slice = 0;
  net->slice_threads = 0;
  net->batch_cap = 0;
  net->last_batch = 0;
  net->have_dinput = 0;
}

NNKIT_API void nnkit_net_free(nnkit_net *net)
{
  if (!net)
    return;
  free_work(net);
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
  free_work(net);
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

NNKIT_API nnkit_loss nnkit_net_get_loss(const nnkit_net *net) { return net->loss; }

NNKIT_API void nnkit_net_set_training(nnkit_net *net, int training)
{
  net->training = training != 0;
}

NNKIT_API int nnkit_net_is_training(const nnkit_net *net) { return net->training; }

NNKIT_API size_t nnkit_net_num_layers(const nnkit_net *net) { return net->num_layers; }

NNKIT_API size_t nnkit_net_input_size(const nnkit_net *net)
{
  return nnkit__shape_size(&net->in);
}

NNKIT_API size_t nnkit_net_output_size(const nnkit_net *net)
{
  return nnkit__shape_size(current_out(net));
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
  if (!net || layer >= net->num_layers)
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

NNKIT_API size_t nnkit_net_num_params(const nnkit_net *net) { return net->num_params; }

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

static size_t max_width(const nnkit_net *net)
{
  size_t w = nnkit__shape_size(&net->in);
  for (size_t i = 0; i < net->num_layers; i++) {
    size_t o = nnkit__shape_size(&net->layers[i].out);
    if (o > w)
      w = o;
  }
  return w;
}

/* Slice-wise runs. The leading layers with slice_ok (a CNN's conv, ReLU
 * and pooling layers) run on slices of the batch, each slice through all
 * of them before the next: a slice's activations (about SLICE_BYTES of
 * the widest of those layers' outputs) are still in cache when the next
 * layer reads them, instead of each layer streaming a whole batch of
 * activations through memory. With several threads each thread owns a
 * share of the batch and runs its slices through the layers on its own:
 * one fork-join for all of them, the layers' own parallel calls running
 * inline in the thread's slot (nnkit__parallel's nested calls), and
 * per-thread gradient partials gathered in slot order at the end. */
#define SLICE_BYTES ((size_t)768 * 1024)

static _Thread_local size_t tl_slice0;

size_t nnkit__net_slice0(void)
{
  return tl_slice0;
}

static void plan_slices(nnkit_net *net, size_t batch, int threads)
{
  size_t n = 0, widest = 1;
  while (n < net->num_layers && net->layers[n].ops->slice_ok) {
    size_t o = nnkit__shape_size(&net->layers[n].out);
    if (o > widest)
      widest = o;
    n++;
  }
  size_t per = SLICE_BYTES / (widest * sizeof(float));
  if (per < 4)
    per = 4;
  if (net->slice_force && net->slice_force != SIZE_MAX)
    per = net->slice_force;
  /* One thread: slices only pay when there is more than one. */
  net->slice_layers = n >= 2 && net->slice_force != SIZE_MAX &&
                              (threads > 1 || per < batch)
                          ? n
                          : 0;
  net->slice = net->slice_layers ? per : 0;
  net->slice_threads = net->slice_layers ? threads : 0;
}

void nnkit__net_force_slice(nnkit_net *net, size_t samples)
{
  net->slice_force = samples;
  net->batch_cap = 0; /* re-plan at the next reserve */
}

nnkit_status nnkit__net_reserve(nnkit_net *net, size_t batch)
{
  /* Layers keep per-thread workspaces: a larger thread count reserves too. */
  int threads = nnkit__num_threads();
  if (batch <= net->batch_cap && threads <= net->threads_cap)
    return NNKIT_OK;
  if (batch < net->batch_cap)
    batch = net->batch_cap;
  free_work(net);
  size_t in = nnkit__shape_size(&net->in), width = max_width(net);
  size_t outw = nnkit_net_output_size(net);
  net->acts = nnkit__calloc(net->num_layers, sizeof *net->acts);
  if (!net->acts)
    goto nomem;
  for (size_t i = 0; i < net->num_layers; i++) {
    net->acts[i] = nnkit__malloc(batch * nnkit__shape_size(&net->layers[i].out) *
                                 sizeof(float));
    if (!net->acts[i])
      goto nomem;
  }
  net->input = nnkit__malloc(batch * in * sizeof(float));
  net->dbuf[0] = nnkit__malloc(batch * width * sizeof(float));
  net->dbuf[1] = nnkit__malloc(batch * width * sizeof(float));
  net->probs = nnkit__malloc(batch * outw * sizeof(float));
  net->dinput = nnkit__malloc(batch * in * sizeof(float));
  if (!net->input || !net->dbuf[0] || !net->dbuf[1] || !net->probs || !net->dinput)
    goto nomem;
  plan_slices(net, batch, threads);
  if (net->slice) {
    net->sbuf = nnkit__malloc(2 * (size_t)threads * net->slice * width * sizeof(float));
    if (!net->sbuf)
      goto nomem;
  }
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    if (l->ops->reserve) {
      nnkit_status st = l->ops->reserve(l, batch);
      if (st != NNKIT_OK) {
        free_work(net);
        return st;
      }
    }
  }
  net->batch_cap = batch;
  net->threads_cap = threads;
  net->max_width = width;
  return NNKIT_OK;
nomem:
  free_work(net);
  return nnkit__err(NNKIT_E_NOMEM, "net: out of memory for a batch of %zu samples",
                    batch);
}

const float *nnkit__net_output(const nnkit_net *net)
{
  return net->acts[net->num_layers - 1];
}

/* Samples [lo, hi) forward through layers [0, top), slice by slice. */
static void slices_forward(nnkit_net *net, size_t top, size_t lo, size_t hi)
{
  const size_t in = nnkit__shape_size(&net->in);
  for (size_t a = lo; a < hi; a += net->slice) {
    size_t m = hi - a < net->slice ? hi - a : net->slice;
    const float *sx = net->x0 + a * in;
    tl_slice0 = a;
    for (size_t i = 0; i < top; i++) {
      nnkit__layer *l = &net->layers[i];
      float *sy = net->acts[i] + a * nnkit__shape_size(&l->out);
      if (i && net->layers[i - 1].out_stale) /* in place: see fold_relus() */
        sy = (float *)sx;
      l->ops->forward(l, sx, sy, m);
      sx = sy;
    }
  }
  tl_slice0 = 0;
}

/* Samples [lo, hi) backward through layers [0, top), slice by slice; dy is
 * the whole batch's gradient w.r.t. layer top-1's output; slot picks the
 * thread's pair of slice buffers. */
static void slices_backward(nnkit_net *net, size_t top, const float *dy,
                            size_t lo, size_t hi, int slot)
{
  const size_t span = net->slice * net->max_width;
  float *buf[2] = {net->sbuf + 2 * (size_t)slot * span,
                   net->sbuf + (2 * (size_t)slot + 1) * span};
  for (size_t a = lo; a < hi; a += net->slice) {
    size_t m = hi - a < net->slice ? hi - a : net->slice;
    const float *sdy = dy + a * nnkit__shape_size(&net->layers[top - 1].out);
    int f = 0;
    tl_slice0 = a;
    for (size_t k = top; k-- > 0;) {
      nnkit__layer *l = &net->layers[k];
      size_t inw = nnkit__shape_size(&l->in), outw = nnkit__shape_size(&l->out);
      const float *x = (k ? net->acts[k - 1] : net->x0) + a * inw;
      float *dx;
      if (k == 0)
        dx = net->want_dinput ? net->dinput + a * inw : NULL;
      else
        dx = buf[f];
      l->ops->backward(l, x, net->acts[k] + a * outw, sdy, dx, m);
      sdy = dx;
      f ^= 1;
    }
  }
  tl_slice0 = 0;
}

typedef struct slice_job {
  nnkit_net *net;
  size_t batch, top;
  const float *dy; /* NULL: forward */
} slice_job;

static void slice_task(void *ctx, int t, int n)
{
  const slice_job *j = ctx;
  size_t lo, hi;
  nnkit__split(j->batch, t, n, &lo, &hi);
  if (j->dy)
    slices_backward(j->net, j->top, j->dy, lo, hi, nnkit__task_slot(t));
  else
    slices_forward(j->net, j->top, lo, hi);
}

/* Layers [0, top) on the whole batch, slice-wise: on the calling thread,
 * or with each of the pool's threads owning a share (then the layers'
 * gradient partials are gathered after the join). dy NULL: forward. */
static void run_slices(nnkit_net *net, size_t batch, size_t top, const float *dy)
{
  if (net->slice_threads <= 1) {
    if (dy)
      slices_backward(net, top, dy, 0, batch, 0);
    else
      slices_forward(net, top, 0, batch);
    return;
  }
  slice_job j = {net, batch, top, dy};
  nnkit__parallel(slice_task, &j, net->slice_threads);
  if (dy)
    for (size_t k = 0; k < top; k++)
      if (net->layers[k].ops->gather)
        net->layers[k].ops->gather(&net->layers[k]);
}

/* In-place ReLUs (nnkit__net_forward_fit): marks layer i - 1 out_stale for
 * each ReLU layer i whose predecessor's backward ignores its output; the
 * forward then runs such a ReLU over acts[i - 1] in place. */
static void fold_relus(nnkit_net *net, int inplace)
{
  for (size_t i = 0; i < net->num_layers; i++)
    net->layers[i].out_stale = 0;
  if (!inplace)
    return;
  for (size_t i = 1; i < net->num_layers; i++) {
    const nnkit__layer *l = &net->layers[i];
    if (nnkit__layer_activation(l, NULL) == NNKIT_ACT_RELU &&
        net->layers[i - 1].ops->backward_ignores_y)
      net->layers[i - 1].out_stale = 1;
  }
}

/* After an in-place forward the ReLU's output sits in acts[i - 1]: swap
 * the two buffers (same size: ReLU keeps the shape) so that acts[i] is
 * the ReLU's output again; acts[i - 1] now holds nothing of this batch. */
static void unfold_relus(nnkit_net *net)
{
  for (size_t i = 1; i < net->num_layers; i++)
    if (net->layers[i - 1].out_stale) {
      float *t = net->acts[i - 1];
      net->acts[i - 1] = net->acts[i];
      net->acts[i] = t;
    }
}

static nnkit_status forward(nnkit_net *net, const float *x, size_t batch, float *out,
                            size_t out_len, int borrow, int inplace)
{
  if (!net || !x || batch == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_forward: net and x must be non-NULL and batch > 0");
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_forward: the net has no layers; add some first");
  size_t outw = nnkit_net_output_size(net);
  if (out && out_len < batch * outw)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_forward: out holds %zu floats, %zu x %zu are needed",
                      out_len, batch, outw);
  nnkit_status st = nnkit__net_build(net);
  if (st == NNKIT_OK)
    st = nnkit__net_reserve(net, batch);
  if (st != NNKIT_OK)
    return st;
  const size_t in = nnkit__shape_size(&net->in);
  if (!borrow) {
    memcpy(net->input, x, batch * in * sizeof(float));
    x = net->input;
  }
  net->x0 = x;
  fold_relus(net, inplace);
  const float *cur = x;
  size_t first = net->slice_layers;
  if (first) {
    for (size_t i = 0; i < first; i++)
      net->layers[i].training = net->training;
    run_slices(net, batch, first, NULL);
    /* the last sliced layer's output; a ReLU run in place left it one
     * buffer down */
    cur = net->acts[first - 1];
    if (first >= 2 && net->layers[first - 2].out_stale)
      cur = net->acts[first - 2];
  }
  for (size_t i = first; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    l->training = net->training;
    float *y = i && net->layers[i - 1].out_stale ? (float *)cur : net->acts[i];
    l->ops->forward(l, cur, y, batch);
    cur = y;
  }
  unfold_relus(net);
  net->last_batch = batch;
  net->have_dinput = 0;
  if (out)
    memcpy(out, cur, batch * outw * sizeof(float));
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_forward(nnkit_net *net, const float *x,
                                         size_t batch, float *out,
                                         size_t out_len)
{
  return forward(net, x, batch, out, out_len, 0, 0);
}

nnkit_status nnkit__net_forward_fit(nnkit_net *net, const float *x, size_t batch,
                                    int borrow, int inplace)
{
  return forward(net, x, batch, NULL, 0, borrow, inplace);
}

void nnkit__net_keep_input(nnkit_net *net)
{
  if (net->x0 && net->x0 != net->input && net->last_batch)
    memcpy(net->input, net->x0,
           net->last_batch * nnkit__shape_size(&net->in) * sizeof(float));
  net->x0 = net->input;
}

/* Softmax cross-entropy folds a trailing softmax layer into the loss. */
static int fused_softmax(const nnkit_net *net)
{
  const nnkit__layer *last = &net->layers[net->num_layers - 1];
  return net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY &&
         nnkit__layer_activation(last, NULL) == NNKIT_ACT_SOFTMAX;
}

/* Loss of the last forward batch; gradient w.r.t. the loss input goes to
 * net->probs. *first_out receives the index of the last layer to
 * back-propagate through (num_layers when the whole net, i.e. one past). */
static nnkit_status compute_loss(nnkit_net *net, const int32_t *labels,
                                 const float *targets, double *loss_out,
                                 size_t *first_out)
{
  size_t batch = net->last_batch, L = net->num_layers;
  size_t outw = nnkit_net_output_size(net);
  if (batch == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_backward: no forward batch to compute a loss on; "
                      "call nnkit_net_forward first");
  int ce = net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  if (ce && !labels)
    return nnkit__err(NNKIT_E_INVALID,
                      "softmax cross-entropy needs labels; pass them, or use "
                      "NNKIT_LOSS_MSE for float targets");
  if (!ce && !labels && !targets)
    return nnkit__err(NNKIT_E_INVALID, "mean squared error needs targets or labels");
  if (labels && (ce || !targets))
    for (size_t i = 0; i < batch; i++)
      if (labels[i] < 0 || (size_t)labels[i] >= outw)
        return nnkit__err(NNKIT_E_INVALID,
                          "sample %zu of the batch: label %d is outside [0, %zu) "
                          "(the net has %zu outputs)", i, (int)labels[i], outw, outw);
  const float *y = net->acts[L - 1];
  size_t first = L;
  if (ce) {
    if (fused_softmax(net)) {
      first = L - 1;
      y = L >= 2 ? net->acts[L - 2] : net->x0;
    }
    *loss_out = nnkit__softmax_ce(y, labels, net->probs, batch, outw);
  } else {
    *loss_out = nnkit__mse(y, targets, targets ? NULL : labels, net->probs, batch,
                           outw);
  }
  size_t correct = 0;
  if (labels)
    for (size_t i = 0; i < batch; i++) {
      const float *r = y + i * outw;
      size_t best = 0;
      for (size_t j = 1; j < outw; j++)
        if (r[j] > r[best])
          best = j;
      correct += best == (size_t)labels[i];
    }
  net->last_correct = correct;
  *first_out = first;
  return NNKIT_OK;
}

nnkit_status nnkit__net_batch_loss(nnkit_net *net, const int32_t *labels,
                                   const float *targets, double *loss_out,
                                   size_t *correct_out)
{
  size_t first;
  double loss = 0;
  nnkit_status st = compute_loss(net, labels, targets, &loss, &first);
  if (st != NNKIT_OK)
    return st;
  if (loss_out)
    *loss_out = loss;
  if (correct_out)
    *correct_out = net->last_correct;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_backward(nnkit_net *net, const int32_t *labels,
                                          const float *targets, double *loss_out)
{
  if (!net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_backward: net is NULL");
  if (net->num_layers == 0 || net->last_batch == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_backward: no forward batch; call nnkit_net_forward first");
  size_t first;
  double loss = 0;
  nnkit_status st = compute_loss(net, labels, targets, &loss, &first);
  if (st != NNKIT_OK)
    return st;
  size_t batch = net->last_batch;
  for (size_t k = 0; k < net->num_layers; k++) { /* what backward adds to */
    nnkit__layer *l = &net->layers[k];
    if (l->num_params && (!l->ops->grads_overwrite || k >= first))
      memset(l->grads, 0, l->num_params * sizeof(float));
  }
  /* Walk back from layer first-1 to 0; dy starts as the loss gradient.
   * Layers below `top` ran slice-wise in forward and do so here too. */
  size_t top = net->slice_layers;
  if (top > first)
    top = first;
  const float *dy = net->probs;
  int flip = 0;
  for (size_t k = first; k-- > top;) {
    nnkit__layer *l = &net->layers[k];
    const float *x = k ? net->acts[k - 1] : net->x0;
    float *dx;
    if (k == 0)
      dx = net->want_dinput ? net->dinput : NULL;
    else
      dx = net->dbuf[flip];
    l->ops->backward(l, x, net->acts[k], dy, dx, batch);
    dy = dx;
    flip ^= 1;
  }
  if (top)
    run_slices(net, batch, top, dy);
  net->have_dinput = net->want_dinput && first > 0;
  if (loss_out)
    *loss_out = loss;
  return NNKIT_OK;
}

static nnkit_status check_predict_args(const void *dst, nnkit_net *net,
                                       const float *x, size_t count,
                                       const char *fn)
{
  if (!dst || !net || !x || count == 0)
    return nnkit__err(NNKIT_E_INVALID,
                      "%s: buffers must be non-NULL and count > 0", fn);
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the net has no layers; add some first", fn);
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_net_predict(int32_t *classes_out, nnkit_net *net,
                                         const float *x, size_t count)
{
  nnkit_status st = check_predict_args(classes_out, net, x, count,
                                       "nnkit_net_predict");
  if (st != NNKIT_OK)
    return st;
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  int mode = net->training;
  net->training = 0;
  for (size_t s = 0; s < count && st == NNKIT_OK; s += EVAL_CHUNK) {
    size_t n = count - s < EVAL_CHUNK ? count - s : EVAL_CHUNK;
    st = nnkit_net_forward(net, x + s * in, n, NULL, 0);
    if (st != NNKIT_OK)
      break;
    const float *y = nnkit__net_output(net);
    for (size_t i = 0; i < n; i++) {
      const float *r = y + i * outw;
      size_t best = 0;
      for (size_t j = 1; j < outw; j++)
        if (r[j] > r[best])
          best = j;
      classes_out[s + i] = (int32_t)best;
    }
  }
  net->training = mode;
  return st;
}

NNKIT_API nnkit_status nnkit_net_predict_proba(float *probs_out, size_t probs_len,
                                               nnkit_net *net, const float *x,
                                               size_t count)
{
  nnkit_status st = check_predict_args(probs_out, net, x, count,
                                       "nnkit_net_predict_proba");
  if (st != NNKIT_OK)
    return st;
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  if (probs_len / outw < count)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_predict_proba: probs_out holds %zu floats, %zu x %zu "
                      "are needed", probs_len, count, outw);
  int softmax = net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY && !fused_softmax(net);
  int mode = net->training;
  net->training = 0;
  for (size_t s = 0; s < count; s += EVAL_CHUNK) {
    size_t n = count - s < EVAL_CHUNK ? count - s : EVAL_CHUNK;
    st = nnkit_net_forward(net, x + s * in, n, NULL, 0);
    if (st != NNKIT_OK)
      break;
    const float *y = nnkit__net_output(net);
    if (softmax)
      nnkit__softmax_rows(y, probs_out + s * outw, n, outw);
    else
      memcpy(probs_out + s * outw, y, n * outw * sizeof(float));
  }
  net->training = mode;
  return st;
}

NNKIT_API nnkit_status nnkit_net_evaluate(double *loss_out, double *acc_out,
                                          nnkit_net *net, const nnkit_dataset *ds)
{
  if (!net || !ds)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_evaluate: net and ds must be non-NULL");
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_evaluate: the net has no layers; add some first");
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  if (ds->sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_net_evaluate: dataset samples have %zu values, the net "
                      "takes %zu", ds->sample_size, in);
  if (ds->num_classes > outw)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_net_evaluate: dataset has %u classes, the net only %zu "
                      "outputs", ds->num_classes, outw);
  if (ds->target_dim && ds->target_dim != outw)
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_net_evaluate: dataset targets have %zu values, the net "
                      "outputs %zu", ds->target_dim, outw);
  if (!ds->labels && !ds->targets)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_evaluate: the dataset has no labels or targets");
  /* A compact (byte) set is decoded one chunk at a time. */
  float *scratch = NULL;
  if (ds->x8) {
    size_t m = ds->count < EVAL_CHUNK ? ds->count : EVAL_CHUNK;
    scratch = nnkit__malloc(m * in * sizeof *scratch);
    if (!scratch)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_net_evaluate: out of memory "
                        "for %zu samples of %zu values", m, in);
  }
  int mode = net->training;
  net->training = 0;
  double total = 0;
  size_t correct = 0;
  nnkit_status st = NNKIT_OK;
  for (size_t s = 0; s < ds->count; s += EVAL_CHUNK) {
    size_t n = ds->count - s < EVAL_CHUNK ? ds->count - s : EVAL_CHUNK;
    st = nnkit_net_forward(net, nnkit__dataset_block(ds, s, n, scratch), n,
                           NULL, 0);
    double loss = 0;
    size_t c = 0;
    if (st == NNKIT_OK)
      st = nnkit__net_batch_loss(net, ds->labels ? ds->labels + s : NULL,
                                 ds->targets ? ds->targets + s * outw : NULL, &loss,
                                 &c);
    if (st != NNKIT_OK)
      break;
    total += loss * (double)n;
    correct += c;
  }
  net->training = mode;
  nnkit__free(scratch);
  if (st != NNKIT_OK)
    return st;
  if (loss_out)
    *loss_out = total / (double)ds->count;
  if (acc_out)
    *acc_out = ds->labels ? (double)correct / (double)ds->count : 0.0;
  return NNKIT_OK;
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

static size_t tensor_floats(const nnkit__tensor *t)
{
  size_t n = 1;
  for (size_t d = 0; d < t->ndim; d++)
    n *= t->dims[d];
  return n;
}

size_t nnkit__net_role_floats(nnkit_net *net, int roles)
{
  size_t n = 0;
  nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0;
    for (size_t k = 0; k < nt; k++)
      if ((t[k].role & roles) && t[k].data)
        n += tensor_floats(&t[k]);
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
      size_t n = tensor_floats(&t[k]);
      if (to_net)
        memcpy(t[k].data, buf, n * sizeof(float));
      else
        memcpy(buf, t[k].data, n * sizeof(float));
      buf += n;
    }
  }
}
