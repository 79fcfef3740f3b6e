/* Running the net: working memory sized at first use (nnkit__net_reserve),
 * the plan of leading layers run slice by slice on the pool's threads,
 * in-place ReLU folding, forward, backward through the loss, predict and
 * evaluate. The container and parameter arena are net.c; the loss on the
 * last layer's output is loss.c. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

/* Samples per chunk in predict/evaluate: the normalizer's chunk, so an
 * attached normalizer transforms each chunk exactly as
 * nnkit_normalizer_transform() transforms the same samples. */
#define EVAL_CHUNK NNKIT__NORM_CHUNK
_Static_assert(EVAL_CHUNK == 256, "predict and evaluate work in chunks of 256");

void nnkit__net_free_work(nnkit_net *net)
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

/* ---- profiles ------------------------------------------------------------
 * With net->prof set, every layer call is timed and its FLOPs counted.
 * Slices run as tasks on several threads at once: their calls add their
 * thread's seconds divided by the threads sharing the batch (about the
 * layer's wall time when the threads keep busy), under a lock. */
static pthread_mutex_t prof_lock = PTHREAD_MUTEX_INITIALIZER;

static inline double prof_t0(const nnkit_net *net)
{
  return net->prof ? nnkit__now() : 0.0;
}

static void prof_add(nnkit_net *net, size_t i, int bwd, double t0, size_t m, int dx)
{
  if (!net->prof || i >= net->prof_n)
    return;
  double dt = nnkit__now() - t0;
  const nnkit__layer *l = &net->layers[i];
  if (net->slice_threads > 1 && i < net->slice_layers)
    dt /= (double)net->slice_threads;
  double f = l->ops->macs ? 2.0 * l->ops->macs(l) * (double)m : 0.0;
  pthread_mutex_lock(&prof_lock);
  nnkit__layer_profile *p = &net->prof[i];
  if (bwd) {
    p->bwd_s += dt;
    p->bwd_flop += f * ((l->num_params && !l->frozen ? 1 : 0) + (dx ? 1 : 0));
    p->bwd_calls++;
  } else {
    p->fwd_s += dt;
    p->fwd_flop += f;
    p->fwd_calls++;
  }
  pthread_mutex_unlock(&prof_lock);
}

nnkit_status nnkit__profile_enable(nnkit_net *net, int on)
{
  nnkit__free(net->prof);
  net->prof = NULL;
  net->prof_n = 0;
  if (!on || net->num_layers == 0)
    return NNKIT_OK;
  net->prof = nnkit__calloc(net->num_layers, sizeof *net->prof);
  if (!net->prof)
    return nnkit__err(NNKIT_E_NOMEM, "net: out of memory for a profile of %zu layers",
                      net->num_layers);
  net->prof_n = net->num_layers;
  return NNKIT_OK;
}

size_t nnkit__profile_get(const nnkit_net *net, size_t layer, nnkit__layer_profile *out)
{
  if (!net->prof || layer >= net->prof_n)
    return 0;
  *out = net->prof[layer];
  const nnkit__layer *l = &net->layers[layer];
  out->kind = l->ops->name;
  out->kernel[0] = '\0';
  if (l->ops->kernel)
    l->ops->kernel(l, out->kernel, sizeof out->kernel);
  return 1;
}

/* Layer i's forward / backward, timed into the profile when it is on. */
static void layer_forward(nnkit_net *net, size_t i, const float *x, float *y, size_t m)
{
  nnkit__layer *l = &net->layers[i];
  double t0 = prof_t0(net);
  l->ops->forward(l, x, y, m);
  prof_add(net, i, 0, t0, m, 0);
}

static void layer_backward(nnkit_net *net, size_t k, const float *x, const float *y,
                           const float *dy, float *dx, size_t m)
{
  nnkit__layer *l = &net->layers[k];
  double t0 = prof_t0(net);
  l->ops->backward(l, x, y, dy, dx, m);
  prof_add(net, k, 1, t0, m, dx != NULL);
}

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

/* Bytes of rows x cols floats; SIZE_MAX (an allocation that fails) when
 * the product does not fit in size_t. */
static size_t float_bytes(size_t rows, size_t cols)
{
  int ovf = 0;
  size_t n = nnkit__mul_size(nnkit__mul_size(rows, cols, &ovf), sizeof(float), &ovf);
  return ovf ? SIZE_MAX : n;
}

nnkit_status nnkit__net_reserve(nnkit_net *net, size_t batch)
{
  /* Layers keep per-thread workspaces: a larger thread count reserves too. */
  int threads = nnkit__num_threads();
  if (batch <= net->batch_cap && threads <= net->threads_cap)
    return NNKIT_OK;
  if (batch < net->batch_cap)
    batch = net->batch_cap;
  size_t in = nnkit__shape_size(&net->in), width = max_width(net);
  size_t outw = nnkit_net_output_size(net);
  /* Every buffer holds batch x (at most width) floats: check the widest
   * product before freeing or allocating anything, so a huge batch is an
   * error and never a wrapped, too small size. */
  int ovf = 0;
  if (float_bytes(batch, width) == SIZE_MAX)
    return nnkit__err(NNKIT_E_INVALID,
                      "net: a batch of %zu samples of up to %zu values does not fit "
                      "in memory (more than SIZE_MAX bytes a buffer); use a smaller "
                      "batch", batch, width);
  nnkit__net_free_work(net);
  net->acts = nnkit__calloc(net->num_layers, sizeof *net->acts);
  if (!net->acts)
    goto nomem;
  for (size_t i = 0; i < net->num_layers; i++) {
    net->acts[i] = nnkit__malloc(float_bytes(batch, nnkit__shape_size(&net->layers[i].out)));
    if (!net->acts[i])
      goto nomem;
  }
  net->input = nnkit__malloc(float_bytes(batch, in));
  net->dbuf[0] = nnkit__malloc(float_bytes(batch, width));
  net->dbuf[1] = nnkit__malloc(float_bytes(batch, width));
  net->probs = nnkit__malloc(float_bytes(batch, outw));
  net->dinput = nnkit__malloc(float_bytes(batch, in));
  if (!net->input || !net->dbuf[0] || !net->dbuf[1] || !net->probs || !net->dinput)
    goto nomem;
  plan_slices(net, batch, threads);
  if (net->slice) {
    size_t sb = float_bytes(nnkit__mul_size(2 * (size_t)threads, net->slice, &ovf), width);
    net->sbuf = ovf ? NULL : nnkit__malloc(sb);
    if (!net->sbuf)
      goto nomem;
  }
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    if (l->ops->reserve) {
      nnkit_status st = l->ops->reserve(l, batch);
      if (st != NNKIT_OK) {
        nnkit__net_free_work(net);
        return st;
      }
    }
  }
  net->batch_cap = batch;
  net->threads_cap = threads;
  net->max_width = width;
  return NNKIT_OK;
nomem:
  nnkit__net_free_work(net);
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
      layer_forward(net, i, sx, sy, m);
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
      layer_backward(net, k, x, net->acts[k] + a * outw, sdy, dx, m);
      sdy = dx;
      f ^= 1;
    }
  }
  tl_slice0 = 0;
}

typedef struct slice_job {
  nnkit_net *net;
  size_t batch, top, slices; /* slices: of net->slice samples (the last may be short) */
  const float *dy; /* NULL: forward */
} slice_job;

/* Task t of n owns whole slices [t ns / n, (t + 1) ns / n) of the ns
 * slices of the batch. */
static void slice_task(void *ctx, int t, int n)
{
  const slice_job *j = ctx;
  size_t a, b;
  nnkit__split(j->slices, t, n, &a, &b);
  size_t lo = a * j->net->slice, hi = b * j->net->slice;
  if (hi > j->batch)
    hi = j->batch;
  if (lo >= hi)
    return;
  if (j->dy)
    slices_backward(j->net, j->top, j->dy, lo, hi, nnkit__task_slot());
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
  slice_job j = {net, batch, top, (batch + net->slice - 1) / net->slice, dy};
  nnkit__parallel(slice_task, &j, j.slices < 1024 ? (int)j.slices : 1024);
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
  if (out && outw && out_len / outw < batch)
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
    layer_forward(net, i, cur, y, batch);
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
  nnkit_status st = nnkit__net_loss(net, labels, targets, &loss, &first);
  if (st != NNKIT_OK)
    return st;
  nnkit__net_backprop(net, first);
  if (loss_out)
    *loss_out = loss;
  return NNKIT_OK;
}

void nnkit__net_backprop(nnkit_net *net, size_t first)
{
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
    const float *x = k ? net->acts[k - 1] : net->x0;
    float *dx;
    if (k == 0)
      dx = net->want_dinput ? net->dinput : NULL;
    else
      dx = net->dbuf[flip];
    layer_backward(net, k, x, net->acts[k], dy, dx, batch);
    dy = dx;
    flip ^= 1;
  }
  if (top)
    run_slices(net, batch, top, dy);
  net->have_dinput = net->want_dinput && first > 0;
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

/* predict, predict_proba and evaluate take raw samples: a chunk goes
 * through the attached normalizer (nnkit__net_preprocess) first. */

NNKIT_API nnkit_status nnkit_net_predict(int32_t *classes_out, nnkit_net *net,
                                         const float *x, size_t count)
{
  nnkit_status st = check_predict_args(classes_out, net, x, count,
                                       "nnkit_net_predict");
  if (st != NNKIT_OK)
    return st;
  size_t in = nnkit__net_raw_input_size(net), outw = nnkit_net_output_size(net);
  int mode = net->training;
  net->training = 0;
  for (size_t s = 0; s < count && st == NNKIT_OK; s += EVAL_CHUNK) {
    size_t n = count - s < EVAL_CHUNK ? count - s : EVAL_CHUNK;
    st = nnkit_net_forward(net, nnkit__net_preprocess(net, x + s * in, n), n, NULL, 0);
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
  size_t in = nnkit__net_raw_input_size(net), outw = nnkit_net_output_size(net);
  if (probs_len / outw < count)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_net_predict_proba: probs_out holds %zu floats, %zu x %zu "
                      "are needed", probs_len, count, outw);
  int softmax = net->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY && !nnkit__net_fused_softmax(net);
  int mode = net->training;
  net->training = 0;
  for (size_t s = 0; s < count; s += EVAL_CHUNK) {
    size_t n = count - s < EVAL_CHUNK ? count - s : EVAL_CHUNK;
    st = nnkit_net_forward(net, nnkit__net_preprocess(net, x + s * in, n), n, NULL, 0);
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

/* Evaluation on a dataset; raw: its samples go through the attached
 * normalizer first (nnkit_net_evaluate), else they are taken as they are
 * (nnkit__net_evaluate_normalized). Sentences name nnkit_net_evaluate. */
static nnkit_status evaluate(double *loss_out, double *acc_out, nnkit_net *net,
                             const nnkit_dataset *ds, int raw, double *each)
{
  if (!net || !ds)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_net_evaluate: net and ds must be non-NULL");
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_net_evaluate: the net has no layers; add some first");
  int pre = raw && net->nz;
  size_t in = nnkit_net_input_size(net), outw = nnkit_net_output_size(net);
  if (pre && ds->sample_size != nnkit__net_raw_input_size(net))
    return nnkit__err(NNKIT_E_SHAPE,
                      "nnkit_net_evaluate: dataset samples have %zu values, the net's "
                      "normalizer takes %zu (the net evaluates raw samples)",
                      ds->sample_size, nnkit__net_raw_input_size(net));
  if (!pre && ds->sample_size != in)
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
  /* A compact (byte) set is decoded one chunk at a time: into the
   * normalizer's buffer (then transformed in place) when there is one. */
  float *scratch = NULL;
  if (ds->x8 && !pre) {
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
    const float *xb = pre ? nnkit__net_preprocess(
                                net, nnkit__dataset_block(ds, s, n, net->nz_buf), n)
                          : nnkit__dataset_block(ds, s, n, scratch);
    st = nnkit_net_forward(net, xb, n, NULL, 0);
    double loss = 0;
    size_t c = 0;
    size_t first;
    if (st == NNKIT_OK)
      st = nnkit__net_loss_each(net, ds->labels ? ds->labels + s : NULL,
                                ds->targets ? ds->targets + s * outw : NULL, &loss,
                                &first, each ? each + s : NULL);
    c = net->last_correct;
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

NNKIT_API nnkit_status nnkit_net_evaluate(double *loss_out, double *acc_out,
                                          nnkit_net *net, const nnkit_dataset *ds)
{
  return evaluate(loss_out, acc_out, net, ds, 1, NULL);
}

nnkit_status nnkit__net_evaluate_each(double *loss_out, double *acc_out, nnkit_net *net,
                                      const nnkit_dataset *ds, double *each)
{
  return evaluate(loss_out, acc_out, net, ds, 1, each);
}

nnkit_status nnkit__net_evaluate_normalized(double *loss_out, double *acc_out,
                                            nnkit_net *net, const nnkit_dataset *ds)
{
  return evaluate(loss_out, acc_out, net, ds, 0, NULL);
}
