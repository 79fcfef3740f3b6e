/* Ensembles of nets: copies of nets with the same input and output shapes
 * and loss, combined by the weighted mean of their class probabilities or
 * by a weighted majority vote; and the net copy (nnkit__net_clone) that
 * ensembles, snapshot ensembles and weight averaging are made of. The
 * file format is lib/io/ensemble_file.c's. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* Raw samples go through the members in chunks of this many. */
#define CHUNK NNKIT__NORM_CHUNK

nnkit_status nnkit__net_clone(nnkit_net **out, const nnkit_net *csrc)
{
  nnkit_net *src = (nnkit_net *)csrc;
  *out = NULL;
  nnkit_status st = nnkit__net_build(src); /* lazy initialization, as a save */
  if (st != NNKIT_OK)
    return st;
  nnkit_net *net = NULL;
  st = nnkit_net_create(&net, src->in.d, src->in.ndim, src->seed);
  if (st == NNKIT_OK)
    st = nnkit_net_set_loss(net, src->loss);
  for (size_t i = 0; st == NNKIT_OK && i < src->num_layers; i++) {
    const nnkit__layer *l = &src->layers[i];
    const nnkit__layer_kind *k = l->ops;
    if (!k->add) {
      st = nnkit__err(NNKIT_E_INVALID, "layer %zu is a %s layer, which cannot be "
                      "copied", i, k->name);
      break;
    }
    double v[NNKIT__MAX_LAYER_ARGS] = {0};
    if (k->get_opts)
      k->get_opts(l, v);
    st = k->add(net, v);
    if (st == NNKIT_OK) {
      net->layers[i].frozen = l->frozen;
      net->layers[i].lr_mult = l->lr_mult;
    }
  }
  if (st == NNKIT_OK)
    st = nnkit__net_build(net);
  for (size_t i = 0; st == NNKIT_OK && i < src->num_layers; i++) {
    nnkit__tensor a[NNKIT__MAX_LAYER_TENSORS], b[NNKIT__MAX_LAYER_TENSORS];
    nnkit__layer *ls = &src->layers[i], *ld = &net->layers[i];
    size_t na = ls->ops->tensors ? ls->ops->tensors(ls, a) : 0;
    size_t nb = ld->ops->tensors ? ld->ops->tensors(ld, b) : 0;
    for (size_t j = 0; j < na && j < nb; j++) {
      if (a[j].role == NNKIT__ROLE_COUNTER) {
        *b[j].count = *a[j].count;
        continue;
      }
      memcpy(b[j].data, a[j].data, nnkit__tensor_floats(&a[j]) * sizeof(float));
    }
  }
  if (st == NNKIT_OK && src->nz)
    st = nnkit_net_set_normalizer(net, src->nz);
  if (st == NNKIT_OK && src->class_names)
    st = nnkit_net_set_class_names(net, (const char *const *)src->class_names,
                                   src->num_names);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  net->training = src->training;
  *out = net;
  return NNKIT_OK;
}

NNKIT_API nnkit_status nnkit_ensemble_create(nnkit_ensemble **out,
                                             nnkit_ensemble_kind kind)
{
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_create: out is NULL");
  *out = NULL;
  if (kind != NNKIT_ENSEMBLE_MEAN && kind != NNKIT_ENSEMBLE_VOTE)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_create: unknown kind %d; use "
                      "NNKIT_ENSEMBLE_MEAN or NNKIT_ENSEMBLE_VOTE", (int)kind);
  nnkit_ensemble *e = nnkit__calloc(1, sizeof *e);
  if (!e)
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_ensemble_create: out of memory");
  e->kind = kind;
  *out = e;
  return NNKIT_OK;
}

NNKIT_API void nnkit_ensemble_free(nnkit_ensemble *ens)
{
  if (!ens)
    return;
  for (size_t i = 0; i < ens->n; i++)
    nnkit_net_free(ens->nets[i]);
  nnkit__free(ens->nets);
  nnkit__free(ens->w);
  nnkit__free(ens->member);
  nnkit__free(ens->comb);
  nnkit__free(ens->scratch);
  nnkit__free(ens);
}

/* NNKIT_OK when net may join ens: layers, and the first member's shapes and
 * loss. */
static nnkit_status check_member(const nnkit_ensemble *ens, const nnkit_net *net,
                                 double weight)
{
  if (!(weight > 0 && weight <= 1e6))
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_add: weight %g is outside "
                      "its range (0, 1e6]", weight);
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_add: the net has no layers; "
                      "add some first");
  if (ens->n == 0)
    return NNKIT_OK;
  const nnkit_net *f = ens->nets[0];
  int same_in = f->in.ndim == net->in.ndim;
  for (size_t d = 0; same_in && d < f->in.ndim; d++)
    same_in = f->in.d[d] == net->in.d[d];
  if (!same_in) {
    char a[64], b[64];
    nnkit__shape_text(&net->in, a, sizeof a);
    nnkit__shape_text(&f->in, b, sizeof b);
    return nnkit__err(NNKIT_E_SHAPE, "nnkit_ensemble_add: the net's input shape %s "
                      "differs from member 0's %s; every member takes the same "
                      "samples", a, b);
  }
  if (nnkit__net_raw_input_size(net) != nnkit__net_raw_input_size(f))
    return nnkit__err(NNKIT_E_SHAPE, "nnkit_ensemble_add: the net takes raw samples "
                      "of %zu values (through its normalizer), member 0 of %zu",
                      nnkit__net_raw_input_size(net), nnkit__net_raw_input_size(f));
  if (nnkit_net_output_size(net) != nnkit_net_output_size(f))
    return nnkit__err(NNKIT_E_SHAPE, "nnkit_ensemble_add: the net has %zu outputs, "
                      "member 0 has %zu; every member answers for the same classes",
                      nnkit_net_output_size(net), nnkit_net_output_size(f));
  if (net->loss != f->loss)
    return nnkit__err(NNKIT_E_SHAPE, "nnkit_ensemble_add: the net's loss (%s) "
                      "differs from member 0's (%s); combine nets of one kind of "
                      "output", net->loss == NNKIT_LOSS_MSE ? "MSE" : "cross-entropy",
                      f->loss == NNKIT_LOSS_MSE ? "MSE" : "cross-entropy");
  return NNKIT_OK;
}

/* Appends net (owned from here; freed on NNKIT_E_NOMEM) with weight. */
static nnkit_status append(nnkit_ensemble *ens, nnkit_net *net, double weight)
{
  nnkit_status st = NNKIT_OK;
  if (ens->n == ens->cap) {
    size_t cap = ens->cap ? 2 * ens->cap : 4;
    nnkit_net **nets = nnkit__realloc(ens->nets, cap * sizeof *nets);
    if (nets)
      ens->nets = nets;
    double *w = nets ? nnkit__realloc(ens->w, cap * sizeof *w) : NULL;
    if (w) {
      ens->w = w;
      ens->cap = cap;
    } else {
      st = nnkit__err(NNKIT_E_NOMEM, "nnkit_ensemble_add: out of memory");
    }
  }
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  ens->nets[ens->n] = net;
  ens->w[ens->n++] = weight;
  return NNKIT_OK;
}

nnkit_status nnkit__ensemble_take(nnkit_ensemble *ens, nnkit_net *net, double weight)
{
  nnkit_status st = check_member(ens, net, weight);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  return append(ens, net, weight);
}

NNKIT_API nnkit_status nnkit_ensemble_add(nnkit_ensemble *ens, const nnkit_net *net,
                                          double weight)
{
  if (!ens || !net)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_ensemble_add: ens and net must be "
                      "non-NULL");
  nnkit_status st = check_member(ens, net, weight);
  nnkit_net *copy = NULL;
  if (st == NNKIT_OK)
    st = nnkit__net_clone(&copy, net);
  return st == NNKIT_OK ? append(ens, copy, weight) : st; /* checked above */
}

NNKIT_API size_t nnkit_ensemble_size(const nnkit_ensemble *ens)
{
  return ens ? ens->n : 0;
}

NNKIT_API nnkit_ensemble_kind nnkit_ensemble_get_kind(const nnkit_ensemble *ens)
{
  return ens ? ens->kind : (nnkit_ensemble_kind)0;
}

NNKIT_API nnkit_net *nnkit_ensemble_member(const nnkit_ensemble *ens, size_t i)
{
  return ens && i < ens->n ? ens->nets[i] : NULL;
}

NNKIT_API double nnkit_ensemble_weight(const nnkit_ensemble *ens, size_t i)
{
  return ens && i < ens->n ? ens->w[i] : 0.0;
}

/* Grows *buf to hold n floats. */
static nnkit_status grow(float **buf, size_t *cap, size_t n, const char *fn)
{
  if (*cap >= n)
    return NNKIT_OK;
  float *p = nnkit__realloc(*buf, n * sizeof *p);
  if (!p)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu floats", fn, n);
  *buf = p;
  *cap = n;
  return NNKIT_OK;
}

static size_t argmax(const float *r, size_t n)
{
  size_t best = 0;
  for (size_t j = 1; j < n; j++)
    if (r[j] > r[best])
      best = j;
  return best;
}

/* Combined probabilities of n <= CHUNK raw samples x into out (n x outw). */
static nnkit_status combine(nnkit_ensemble *ens, const float *x, size_t n, float *out)
{
  size_t outw = nnkit_net_output_size(ens->nets[0]);
  double wsum = 0;
  for (size_t m = 0; m < ens->n; m++)
    wsum += ens->w[m];
  memset(out, 0, n * outw * sizeof *out);
  for (size_t m = 0; m < ens->n; m++) {
    nnkit_status st = nnkit_net_predict_proba(ens->member, n * outw, ens->nets[m], x, n);
    if (st != NNKIT_OK)
      return st;
    float c = (float)(ens->w[m] / wsum);
    if (ens->kind == NNKIT_ENSEMBLE_VOTE) {
      for (size_t i = 0; i < n; i++)
        out[i * outw + argmax(ens->member + i * outw, outw)] += c;
    } else {
      for (size_t i = 0; i < n * outw; i++)
        out[i] += c * ens->member[i];
    }
  }
  return NNKIT_OK;
}

/* Checks and working memory of the predict calls. */
static nnkit_status begin(nnkit_ensemble *ens, int args_ok, const char *fn)
{
  if (!ens || !args_ok)
    return nnkit__err(NNKIT_E_INVALID, "%s: ens and buffers must be non-NULL and "
                      "count > 0", fn);
  if (ens->n == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the ensemble has no members; add nets with "
                      "nnkit_ensemble_add first", fn);
  size_t outw = nnkit_net_output_size(ens->nets[0]);
  nnkit_status st = grow(&ens->member, &ens->member_cap, CHUNK * outw, fn);
  if (st == NNKIT_OK)
    st = grow(&ens->comb, &ens->comb_cap, CHUNK * outw, fn);
  return st;
}

NNKIT_API nnkit_status nnkit_ensemble_predict_proba(float *probs_out, size_t probs_len,
                                                    nnkit_ensemble *ens, const float *x,
                                                    size_t count)
{
  const char *fn = "nnkit_ensemble_predict_proba";
  nnkit_status st = begin(ens, probs_out && x && count, fn);
  if (st != NNKIT_OK)
    return st;
  size_t outw = nnkit_net_output_size(ens->nets[0]);
  size_t in = nnkit__net_raw_input_size(ens->nets[0]);
  if (probs_len / outw < count)
    return nnkit__err(NNKIT_E_INVALID, "%s: probs_out holds %zu floats, %zu x %zu are "
                      "needed", fn, probs_len, count, outw);
  for (size_t s = 0; s < count && st == NNKIT_OK; s += CHUNK) {
    size_t n = count - s < CHUNK ? count - s : CHUNK;
    st = combine(ens, x + s * in, n, probs_out + s * outw);
  }
  return st;
}

NNKIT_API nnkit_status nnkit_ensemble_predict(int32_t *classes_out, nnkit_ensemble *ens,
                                              const float *x, size_t count)
{
  nnkit_status st = begin(ens, classes_out && x && count, "nnkit_ensemble_predict");
  if (st != NNKIT_OK)
    return st;
  size_t outw = nnkit_net_output_size(ens->nets[0]);
  size_t in = nnkit__net_raw_input_size(ens->nets[0]);
  for (size_t s = 0; s < count && st == NNKIT_OK; s += CHUNK) {
    size_t n = count - s < CHUNK ? count - s : CHUNK;
    st = combine(ens, x + s * in, n, ens->comb);
    for (size_t i = 0; st == NNKIT_OK && i < n; i++)
      classes_out[s + i] = (int32_t)argmax(ens->comb + i * outw, outw);
  }
  return st;
}

NNKIT_API nnkit_status nnkit_ensemble_evaluate(double *loss_out, double *acc_out,
                                               nnkit_ensemble *ens,
                                               const nnkit_dataset *ds)
{
  const char *fn = "nnkit_ensemble_evaluate";
  nnkit_status st = begin(ens, ds != NULL, fn);
  if (st != NNKIT_OK)
    return st;
  const nnkit_net *f = ens->nets[0];
  size_t outw = nnkit_net_output_size(f), in = nnkit__net_raw_input_size(f);
  if (ds->sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE, "%s: dataset samples have %zu values, the "
                      "members take %zu", fn, ds->sample_size, in);
  if (ds->num_classes > outw)
    return nnkit__err(NNKIT_E_SHAPE, "%s: the dataset has %u classes, the members "
                      "only %zu outputs", fn, ds->num_classes, outw);
  if (ds->targets && ds->target_dim != outw)
    return nnkit__err(NNKIT_E_SHAPE, "%s: dataset targets have %zu values, the "
                      "members output %zu", fn, ds->target_dim, outw);
  int ce = f->loss == NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  if (!ds->labels && (ce || !ds->targets))
    return nnkit__err(NNKIT_E_INVALID, "%s: the dataset has no %s", fn,
                      ce ? "labels" : "labels or targets");
  if (ds->x8)
    st = grow(&ens->scratch, &ens->scratch_cap, CHUNK * in, fn);
  double total = 0;
  size_t correct = 0;
  for (size_t s = 0; s < ds->count && st == NNKIT_OK; s += CHUNK) {
    size_t n = ds->count - s < CHUNK ? ds->count - s : CHUNK;
    st = combine(ens, nnkit__dataset_block(ds, s, n, ens->scratch), n, ens->comb);
    for (size_t i = 0; st == NNKIT_OK && i < n; i++) {
      const float *p = ens->comb + i * outw;
      int32_t y = ds->labels ? ds->labels[s + i] : -1;
      if (ds->labels && (y < 0 || (size_t)y >= outw))
        return nnkit__err(NNKIT_E_INVALID, "%s: sample %zu has label %d, outside [0, "
                          "%zu)", fn, s + i, (int)y, outw);
      if (ce) {
        double py = p[y] > 1e-12f ? (double)p[y] : 1e-12;
        total -= log(py);
      } else {
        double se = 0;
        for (size_t j = 0; j < outw; j++) {
          double t = ds->targets ? ds->targets[(s + i) * outw + j]
                                 : (y == (int32_t)j ? 1.0 : 0.0);
          se += ((double)p[j] - t) * ((double)p[j] - t);
        }
        total += se / (double)outw;
      }
      if (ds->labels)
        correct += argmax(p, outw) == (size_t)y;
    }
  }
  if (st != NNKIT_OK)
    return st;
  if (loss_out)
    *loss_out = total / (double)ds->count;
  if (acc_out)
    *acc_out = ds->labels ? (double)correct / (double)ds->count : 0.0;
  return NNKIT_OK;
}
