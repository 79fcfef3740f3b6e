/* Checkpoints: a trainer's whole state -- the net's tensors (random stream
 * positions included), the optimizer's keys, state buffers and schedule
 * position, the trainer's settings, the position in the fit, the history,
 * early stopping and the kept snapshots -- as a safetensors file of the
 * model files' family with a CRC-32 (layout in doc/file-format.md), and
 * resuming from one so that the rest of the fit is the uninterrupted
 * run's, bit for bit. Everything goes through the layer and optimizer
 * descriptors (tensors by name and role, state buffers by name); no layer
 * or optimizer kind is named here. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io_internal.h"
#include "train/train_internal.h"

#define CKPT_VERSION "1"
#define FORMAT_VERSION "1"
#define NET_ROLES (NNKIT__ROLE_PARAMS | NNKIT__ROLE_STATE | NNKIT__ROLE_COUNTER)
/* Layout of the scalars of nnkit_optimizer_get_state() (optimizer.c):
 * version 1, kind, steps, sized_params, state_bufs, L, then the L layer
 * step counts, the L x k layer scalars, has_schedule and the schedule's
 * NNKIT__SCHED_STATE values. */
#define OPT_STATE_VERSION 1
#define OPT_HEAD 6
/* Figures of a history epoch, in the order of trainer.history.epochs. */
#define EPOCH_FIGURES 7
#define MAX_COUNT 9007199254740992.0

#define BAD(...) nnkit__err(NNKIT_E_FORMAT, __VA_ARGS__)

static const char *loss_name(nnkit_loss l)
{
  return l == NNKIT_LOSS_MSE ? "mse" : "softmax_cross_entropy";
}

/* ---- JSON numbers ------------------------------------------------------------ */

/* A double as a JSON string that reads back exactly ("%.17g"; "nan",
 * "inf", "-inf"): cJSON's own numbers may round the last bit. */
static cJSON *dnum(double v)
{
  char buf[40];
  if (isnan(v))
    snprintf(buf, sizeof buf, "nan");
  else
    snprintf(buf, sizeof buf, "%.17g", v); /* "inf", "-inf" */
  return cJSON_CreateString(buf);
}

static int add_d(cJSON *o, const char *key, double v)
{
  return nnkit__st_add_item(o, key, dnum(v));
}

static int add_n(cJSON *o, const char *key, size_t v)
{
  return cJSON_AddNumberToObject(o, key, (double)v) != NULL;
}

/* A value written by dnum(). */
static int val_d(const cJSON *v, double *out)
{
  if (!cJSON_IsString(v) || !v->valuestring[0])
    return 0;
  char *end = NULL;
  errno = 0;
  double d = strtod(v->valuestring, &end);
  if (*end)
    return 0;
  *out = d;
  return 1;
}

static int get_d(const cJSON *o, const char *key, double *out)
{
  return val_d(cJSON_GetObjectItemCaseSensitive(o, key), out);
}

static int get_n(const cJSON *o, const char *key, size_t *out)
{
  return nnkit__st_whole(cJSON_GetObjectItemCaseSensitive(o, key), MAX_COUNT, out);
}

/* ---- writing --------------------------------------------------------------------- */

/* Buffers a checkpoint borrows while it is written. */
typedef struct scratch {
  double *d;
  uint64_t *u;
} scratch;

static nnkit_status add_snapshot(nnkit__st_writer *w, const char *prefix,
                                 const nnkit__snapshot *s, int with_opt)
{
  nnkit_status st = NNKIT_OK;
  if (s->n)
    st = nnkit__st_add(w, prefix, "params", "F32", s->params, 1, &s->n);
  if (st == NNKIT_OK && s->nbn)
    st = nnkit__st_add(w, prefix, "state", "F32", s->bn, 1, &s->nbn);
  if (st == NNKIT_OK && with_opt && s->opt_valid && s->ost_n)
    st = nnkit__st_add(w, prefix, "optimizer_state", "F32", s->ost, 1, &s->ost_n);
  if (st == NNKIT_OK && with_opt && s->opt_valid && s->osc_n)
    st = nnkit__st_add(w, prefix, "optimizer_scalars", "F64", s->osc, 1, &s->osc_n);
  return st;
}

/* The "optimizer" object and its tensors. */
static cJSON *optimizer_json(nnkit__st_writer *w, nnkit_trainer *tr,
                             const nnkit__fit_pos *pos, double *lsc, nnkit_status *st)
{
  const nnkit_optimizer *opt = tr->opt;
  const nnkit__optim_kind_desc *d = opt->desc;
  cJSON *o = cJSON_CreateObject(), *keys, *bufs, *scal;
  if (!o || !cJSON_AddStringToObject(o, "kind", d->name) ||
      !add_n(o, "kind_id", (size_t)d->kind) || !(keys = cJSON_AddObjectToObject(o, "keys")))
    goto nomem;
  for (int k = 1; k < NNKIT__OPT_KEYS; k++) {
    double v;
    char name[16];
    if (nnkit_optimizer_get(&v, opt, (nnkit_optim_param)k) != NNKIT_OK)
      continue;
    snprintf(name, sizeof name, "%d", k);
    if (!add_d(keys, name, v))
      goto nomem;
  }
  nnkit_clear_error(); /* the keys this kind lacks */
  size_t L = opt->num_counts, nk = d->num_scalars, n = opt->sized_params;
  if (!add_n(o, "steps", (size_t)opt->steps) || !add_n(o, "sized_params", n) ||
      !add_n(o, "layers", L) || !(bufs = cJSON_AddArrayToObject(o, "state_buffers")) ||
      !(scal = cJSON_AddArrayToObject(o, "layer_scalars")))
    goto nomem;
  for (size_t b = 0; b < opt->state_bufs; b++) {
    const char *name = nnkit__optimizer_state_name(opt, b);
    cJSON *s = cJSON_CreateString(name);
    if (!s || !cJSON_AddItemToArray(bufs, s)) {
      cJSON_Delete(s);
      goto nomem;
    }
    if ((*st = nnkit__st_add(w, "optimizer.", name, "F32", opt->state + b * n, 1, &n)) !=
        NNKIT_OK)
      goto fail;
  }
  if (L && (*st = nnkit__st_add(w, "optimizer.", "layer_steps", "U64", opt->layer_steps,
                                1, &L)) != NNKIT_OK)
    goto fail;
  for (size_t j = 0; j < nk; j++) {
    const char *name = nnkit__optimizer_scalar_name(opt, j);
    cJSON *s = cJSON_CreateString(name);
    if (!s || !cJSON_AddItemToArray(scal, s)) {
      cJSON_Delete(s);
      goto nomem;
    }
    for (size_t i = 0; i < L; i++)
      lsc[j * L + i] = opt->layer_scalars[i * nk + j];
    if (L && (*st = nnkit__st_add(w, "optimizer.", name, "F64", lsc + j * L, 1, &L)) !=
        NNKIT_OK)
      goto fail;
  }
  if (opt->sched) {
    double sp[NNKIT__SCHED_STATE];
    if (pos->pre && pos->has_sched)
      memcpy(sp, pos->sched, sizeof sp);
    else
      nnkit__schedule_save(opt->sched, sp);
    cJSON *a = cJSON_AddArrayToObject(o, "schedule");
    for (int i = 0; a && i < NNKIT__SCHED_STATE; i++) {
      cJSON *v = dnum(sp[i]);
      if (!v || !cJSON_AddItemToArray(a, v)) {
        cJSON_Delete(v);
        a = NULL;
      }
    }
    if (!a)
      goto nomem;
  }
  return o;
nomem:
  *st = nnkit__st_nomem(w);
fail:
  cJSON_Delete(o);
  return NULL;
}

/* The "trainer" object and its tensors. */
static cJSON *trainer_json(nnkit__st_writer *w, nnkit_trainer *tr,
                           const nnkit__fit_pos *pos, scratch *sc, nnkit_status *st)
{
  const nnkit_history *h = &tr->hist;
  /* An open epoch was recorded (shorter) when its fit ended: the
   * checkpoint keeps its batches but not that record. */
  size_t E = pos->epoch < h->num_epochs ? pos->epoch : h->num_epochs;
  size_t B = h->num_batches, L = h->num_layers;
  cJSON *o = cJSON_CreateObject(), *set, *p, *es, *dv, *kg, *hj;
  if (!o || !(set = cJSON_AddObjectToObject(o, "settings")))
    goto nomem;
  size_t ns;
  const nnkit__spec *specs = nnkit__trainer_specs(&ns);
  for (size_t i = 0; i < ns; i++)
    if (!add_d(set, specs[i].name, *nnkit__trainer_slot(tr, (nnkit_train_param)specs[i].key)))
      goto nomem;
  if (!(p = cJSON_AddObjectToObject(o, "position")) || !add_n(p, "epoch", pos->epoch) ||
      !add_n(p, "batch", pos->batch) || !add_n(p, "total", pos->total) ||
      !add_d(p, "loss_sum", pos->loss_sum) || !add_d(p, "reg_sum", pos->reg_sum) ||
      !add_d(p, "lr", pos->lr) || !add_n(p, "correct", pos->correct) ||
      !add_n(p, "seen", pos->seen))
    goto nomem;
  int pre = pos->pre;
  if (!(es = cJSON_AddObjectToObject(o, "early_stopping")) ||
      !add_n(es, "metric", (size_t)tr->es_metric) ||
      !add_n(es, "patience", tr->es_patience) || !add_d(es, "min_delta", tr->es_min_delta) ||
      !add_d(es, "best", pre ? pos->es_best : tr->es_best) ||
      !add_n(es, "best_epoch", pre ? pos->es_best_epoch : tr->es_best_epoch) ||
      !add_n(es, "wait", pre ? pos->es_wait : tr->es_wait) ||
      !add_n(es, "have_best", (size_t)(pre ? pos->es_have_best : tr->es_have_best)) ||
      !add_n(es, "best_valid", (size_t)tr->es_best_valid))
    goto nomem;
  if (!(dv = cJSON_AddObjectToObject(o, "divergence")) ||
      !add_d(dv, "ref_loss", tr->ref_loss) || !add_n(dv, "have_ref", (size_t)tr->have_ref) ||
      !add_d(dv, "ema", tr->ema) || !add_n(dv, "ema_n", tr->ema_n) ||
      !add_n(dv, "ring_n", tr->ring_n) || !add_n(dv, "ring_pos", tr->ring_pos))
    goto nomem;
  if (!(kg = cJSON_AddObjectToObject(o, "keep_good")) ||
      !add_n(kg, "epoch", tr->good_epoch < pos->epoch ? tr->good_epoch : pos->epoch))
    goto nomem;
  if (!(hj = cJSON_AddObjectToObject(o, "history")) || !add_n(hj, "epochs", E) ||
      !add_n(hj, "batches", B) || !add_n(hj, "layers", L) ||
      !add_n(hj, "num_classes", h->num_classes) ||
      !add_n(hj, "diverged", (size_t)h->diverged) || !add_n(hj, "div_epoch", h->div_epoch) ||
      !add_n(hj, "div_batch", h->div_batch) || !add_d(hj, "div_loss", h->div_loss) ||
      !add_d(hj, "div_lr", h->div_lr))
    goto nomem;
  /* History tensors, from sc (sized by the caller). */
  double *ep = sc->d, *bt = ep + E * EPOCH_FIGURES, *stats = bt + 2 * B;
  uint64_t *enb = sc->u, *ehs = enb + E, *bix = ehs + E;
  for (size_t e = 0; e < E; e++) {
    const nnkit__hist_epoch *r = &h->epochs[e];
    double f[EPOCH_FIGURES] = {r->train_loss, r->train_acc, r->val_loss, r->val_acc,
                               r->lr, r->seconds, r->reg_loss};
    memcpy(ep + e * EPOCH_FIGURES, f, sizeof f);
    enb[e] = r->num_batches;
    ehs[e] = (uint64_t)r->has_stats;
    for (size_t k = 0; k < L * NNKIT__NSTATS; k++)
      stats[e * L * NNKIT__NSTATS + k] =
          r->has_stats ? h->stats[e * L * NNKIT__NSTATS + k] : NAN;
  }
  for (size_t b = 0; b < B; b++) {
    bt[2 * b] = h->batches[b].loss;
    bt[2 * b + 1] = h->batches[b].lr;
    bix[2 * b] = h->batches[b].epoch;
    bix[2 * b + 1] = h->batches[b].batch;
  }
  size_t d2[2] = {E, EPOCH_FIGURES}, b2[2] = {B, 2}, s2[2] = {E, L * NNKIT__NSTATS};
  const char *pf = "trainer.history.";
  if (E && ((*st = nnkit__st_add(w, pf, "epochs", "F64", ep, 2, d2)) != NNKIT_OK ||
            (*st = nnkit__st_add(w, pf, "epoch_batches", "U64", enb, 1, &E)) != NNKIT_OK ||
            (*st = nnkit__st_add(w, pf, "has_stats", "U64", ehs, 1, &E)) != NNKIT_OK))
    goto fail;
  if (E && L && (*st = nnkit__st_add(w, pf, "layer_stats", "F64", stats, 2, s2)) != NNKIT_OK)
    goto fail;
  if (B && ((*st = nnkit__st_add(w, pf, "batches", "F64", bt, 2, b2)) != NNKIT_OK ||
            (*st = nnkit__st_add(w, pf, "batch_index", "U64", bix, 2, b2)) != NNKIT_OK))
    goto fail;
  int best = tr->es_metric && tr->best.valid && tr->best.n == tr->net->num_params;
  int good = tr->good.valid && tr->good.n == tr->net->num_params;
  if (!add_n(es, "snapshot", (size_t)best) || !add_n(kg, "snapshot", (size_t)good) ||
      !add_n(kg, "optimizer", (size_t)(good && tr->good.opt_valid)))
    goto nomem;
  if (best && (*st = add_snapshot(w, "trainer.best.", &tr->best, 0)) != NNKIT_OK)
    goto fail;
  if (good && (*st = add_snapshot(w, "trainer.good.", &tr->good, 1)) != NNKIT_OK)
    goto fail;
  if (tr->ring_n &&
      (*st = nnkit__st_add(w, "trainer.", "divergence_ring", "F64", tr->ring, 1,
                           &tr->ring_n)) != NNKIT_OK)
    goto fail;
  return o;
nomem:
  *st = nnkit__st_nomem(w);
fail:
  cJSON_Delete(o);
  return NULL;
}

nnkit_status nnkit__checkpoint_write(nnkit_trainer *tr, const char *path,
                                     const nnkit__fit_pos *pos)
{
  nnkit_net *net = tr->net;
  if (net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the trainer's net has no layers; a checkpoint "
                      "needs a net", path);
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  nnkit__st_writer w = {path, "checkpoint", NULL, 0, 0, NULL};
  const nnkit_history *h = &tr->hist;
  size_t E = pos->epoch < h->num_epochs ? pos->epoch : h->num_epochs;
  size_t B = h->num_batches, L = h->num_layers;
  size_t nlsc = tr->opt->num_counts * tr->opt->desc->num_scalars;
  scratch sc = {NULL, NULL};
  double *lsc = NULL;
  cJSON *hd = NULL;
  /* Sizes are bounded by what the trainer holds already. */
  sc.d = nnkit__malloc((E * EPOCH_FIGURES + 2 * B + E * L * NNKIT__NSTATS + 1) *
                       sizeof(double));
  sc.u = nnkit__malloc((2 * E + 2 * B + 1) * sizeof(uint64_t));
  lsc = nnkit__malloc((nlsc + 1) * sizeof(double));
  hd = cJSON_CreateObject();
  cJSON *meta = hd ? cJSON_AddObjectToObject(hd, "__metadata__") : NULL;
  if (!sc.d || !sc.u || !lsc || !meta) {
    st = nnkit__st_nomem(&w);
    goto done;
  }
  char seed[32];
  snprintf(seed, sizeof seed, "%llu", (unsigned long long)net->seed);
  if (!cJSON_AddStringToObject(meta, "format", "nnkit") ||
      !cJSON_AddStringToObject(meta, "format_version", FORMAT_VERSION) ||
      !cJSON_AddStringToObject(meta, "kind", "checkpoint") ||
      !cJSON_AddStringToObject(meta, "checkpoint_version", CKPT_VERSION) ||
      !cJSON_AddStringToObject(meta, "nnkit_version", nnkit_version()) ||
      !nnkit__st_add_json_string(meta, "input_shape",
                                 nnkit__st_shape_json(net->in.d, net->in.ndim)) ||
      !cJSON_AddStringToObject(meta, "seed", seed) ||
      !cJSON_AddStringToObject(meta, "loss", loss_name(net->loss))) {
    st = nnkit__st_nomem(&w);
    goto done;
  }
  cJSON *j = nnkit__st_architecture(&w, path, net, NET_ROLES, &st);
  if (!j)
    goto done;
  if (!nnkit__st_add_json_string(meta, "architecture", j)) {
    st = nnkit__st_nomem(&w);
    goto done;
  }
  j = optimizer_json(&w, tr, pos, lsc, &st);
  if (!j)
    goto done;
  if (!nnkit__st_add_json_string(meta, "optimizer", j)) {
    st = nnkit__st_nomem(&w);
    goto done;
  }
  j = trainer_json(&w, tr, pos, &sc, &st);
  if (!j)
    goto done;
  if (!nnkit__st_add_json_string(meta, "trainer", j)) {
    st = nnkit__st_nomem(&w);
    goto done;
  }
  st = nnkit__st_write(&w, hd, 1);
done:
  cJSON_Delete(hd);
  nnkit__st_writer_free(&w);
  nnkit__free(sc.d);
  nnkit__free(sc.u);
  nnkit__free(lsc);
  return st;
}

/* Where tr stands: the armed resume, the open epoch of its last fit, or
 * the end of its last epoch. */
static void current_pos(const nnkit_trainer *tr, nnkit__fit_pos *p)
{
  if (tr->resume_armed) {
    *p = tr->resume;
  } else if (tr->open_valid) {
    *p = tr->open;
  } else {
    memset(p, 0, sizeof *p);
    p->epoch = tr->hist.num_epochs;
    p->total = tr->total_epochs > p->epoch ? tr->total_epochs : p->epoch;
  }
}

NNKIT_API nnkit_status nnkit_trainer_save_checkpoint(nnkit_trainer *tr, const char *path)
{
  if (!tr || !path)
    return nnkit__err(NNKIT_E_INVALID,
                      "nnkit_trainer_save_checkpoint: tr and path must be non-NULL");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_save_checkpoint: a fit is running; save after it "
                      "returns, or set NNKIT_TRAIN_CHECKPOINT_EVERY");
  nnkit__fit_pos pos;
  current_pos(tr, &pos);
  return nnkit__checkpoint_write(tr, path, &pos);
}

/* ---- periodic checkpoints ------------------------------------------------------- */

NNKIT_API nnkit_status nnkit_trainer_set_checkpoint_dir(nnkit_trainer *tr, const char *dir)
{
  if (!tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set_checkpoint_dir: tr is NULL");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE,
                      "nnkit_trainer_set_checkpoint_dir: cannot change during a fit");
  char *copy = NULL;
  if (dir) {
    /* Periodic checkpoints' paths are the folder's plus 40 characters. */
    if (strlen(dir) > 3000)
      return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set_checkpoint_dir: the folder's "
                        "path has %zu characters, more than 3000", strlen(dir));
    if (!*dir)
      return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_set_checkpoint_dir: the folder's "
                        "path is empty; give a folder, or NULL to turn checkpoints off");
    nnkit_status st = nnkit__mkdirs(dir, "nnkit_trainer_set_checkpoint_dir");
    if (st != NNKIT_OK)
      return st;
    copy = nnkit__strdup(dir);
    if (!copy)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_set_checkpoint_dir: out of memory");
  }
  nnkit__free(tr->ckpt_dir);
  tr->ckpt_dir = copy;
  return NNKIT_OK;
}

#define EPOCH_PREFIX "checkpoint-epoch-"
#define SUFFIX ".safetensors"

static int cmp_size(const void *a, const void *b)
{
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return x < y ? -1 : x > y;
}

/* Removes all but the newest `keep` checkpoint-epoch-* files of dir. */
static nnkit_status prune(const char *dir, size_t keep)
{
  DIR *d = opendir(dir);
  if (!d)
    return nnkit__err(NNKIT_E_IO, "%s: cannot list the checkpoint folder: %s", dir,
                      strerror(errno));
  size_t *num = NULL, n = 0, cap = 0;
  nnkit_status st = NNKIT_OK;
  struct dirent *e;
  size_t pl = strlen(EPOCH_PREFIX), sl = strlen(SUFFIX);
  while ((e = readdir(d)) != NULL) {
    const char *s = e->d_name;
    size_t len = strlen(s);
    if (len <= pl + sl || strncmp(s, EPOCH_PREFIX, pl) != 0 ||
        strcmp(s + len - sl, SUFFIX) != 0 || strspn(s + pl, "0123456789") != len - pl - sl)
      continue;
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 16;
      size_t *p = nnkit__realloc(num, nc * sizeof *p);
      if (!p) {
        st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing checkpoints", dir);
        break;
      }
      num = p;
      cap = nc;
    }
    num[n++] = (size_t)strtoull(s + pl, NULL, 10);
  }
  closedir(d);
  if (st == NNKIT_OK && n > keep) {
    qsort(num, n, sizeof *num, cmp_size);
    for (size_t i = 0; i + keep < n; i++) {
      char path[4096];
      snprintf(path, sizeof path, "%s/" EPOCH_PREFIX "%06zu" SUFFIX, dir, num[i]);
      if (unlink(path) != 0 && errno != ENOENT) {
        st = nnkit__err(NNKIT_E_IO, "%s: cannot remove an old checkpoint: %s", path,
                        strerror(errno));
        break;
      }
    }
  }
  nnkit__free(num);
  return st;
}

nnkit_status nnkit__checkpoint_epoch_end(nnkit_trainer *tr, size_t epoch, size_t total)
{
  if (!tr->ckpt_dir || (!tr->ckpt_every && !tr->ckpt_best))
    return NNKIT_OK;
  nnkit__fit_pos pos = {0};
  pos.epoch = epoch + 1;
  pos.total = total;
  char path[4096];
  nnkit_status st = NNKIT_OK;
  size_t every = (size_t)tr->ckpt_every;
  if (every && (epoch + 1) % every == 0) {
    snprintf(path, sizeof path, "%s/" EPOCH_PREFIX "%06zu" SUFFIX, tr->ckpt_dir,
             epoch + 1);
    st = nnkit__checkpoint_write(tr, path, &pos);
    if (st == NNKIT_OK && tr->ckpt_keep > 0)
      st = prune(tr->ckpt_dir, (size_t)tr->ckpt_keep);
  }
  if (st == NNKIT_OK && tr->ckpt_best && tr->es_have_best && tr->es_best_epoch == epoch) {
    snprintf(path, sizeof path, "%s/checkpoint-best" SUFFIX, tr->ckpt_dir);
    st = nnkit__checkpoint_write(tr, path, &pos);
  }
  return st;
}

/* ---- resuming ------------------------------------------------------------------- */

/* Everything a resume replaces, read and checked before any of it is used. */
typedef struct staged {
  float *net;        /* the PARAMS | STATE tensors, in layer and tensor order */
  uint64_t *counts;  /* the COUNTER tensors, in order */
  size_t num_counts;
  uint64_t seed;
  int *trainable;
  double *lr_mult;
  /* optimizer */
  double keys[NNKIT__OPT_KEYS];
  int has_key[NNKIT__OPT_KEYS];
  float *ostate;
  size_t ostate_n;
  double *oscal;
  size_t oscal_n;
  /* trainer */
  double settings[64];
  nnkit__fit_pos pos;
  nnkit_metric es_metric;
  size_t es_patience;
  double es_min_delta, es_best;
  size_t es_best_epoch, es_wait;
  int es_have_best, es_best_valid;
  double ref_loss, ema;
  int have_ref;
  size_t ema_n, ring_n, ring_pos, ring_cap;
  double *ring;
  size_t good_epoch;
  nnkit_history hist;
  nnkit__snapshot best, good;
} staged;

static void staged_free(staged *s)
{
  nnkit__free(s->net);
  nnkit__free(s->counts);
  nnkit__free(s->trainable);
  nnkit__free(s->lr_mult);
  nnkit__free(s->ostate);
  nnkit__free(s->oscal);
  nnkit__free(s->ring);
  nnkit__history_free(&s->hist);
  nnkit__snapshot_free(&s->best);
  nnkit__snapshot_free(&s->good);
}

/* The file's net against tr's: same input, loss and layers (kinds and
 * options); stages the tensors, trainable flags and multipliers. */
static nnkit_status check_net(nnkit__st_reader *r, nnkit_net *net, staged *s)
{
  nnkit_status st = NNKIT_OK;
  size_t dims[NNKIT_MAX_SAMPLE_DIMS], ndim = 0;
  cJSON *shape = nnkit__st_meta_json(r, "input_shape", &st);
  if (!shape)
    return st;
  int ok = nnkit__st_shape_of(shape, NNKIT_MAX_SAMPLE_DIMS, dims, &ndim);
  cJSON_Delete(shape);
  if (!ok)
    return BAD("%s: the input shape must be 1 to %d positive whole numbers", r->path,
               NNKIT_MAX_SAMPLE_DIMS);
  nnkit__shape in = {ndim, {0}};
  memcpy(in.d, dims, ndim * sizeof *dims);
  char a[64], b[64];
  if (ndim != net->in.ndim || memcmp(dims, net->in.d, ndim * sizeof *dims) != 0) {
    nnkit__shape_text(&in, a, sizeof a);
    nnkit__shape_text(&net->in, b, sizeof b);
    return nnkit__err(NNKIT_E_SHAPE, "%s: the checkpoint's net takes %s inputs, the "
                      "trainer's %s; resume into a net built like the checkpoint's",
                      r->path, a, b);
  }
  const char *seed_s = nnkit__st_meta_string(r->meta, "seed");
  char *end = NULL;
  errno = 0;
  unsigned long long seed = seed_s ? strtoull(seed_s, &end, 10) : 0;
  if (!seed_s || end == seed_s || *end || errno || seed_s[0] == '-')
    return BAD("%s: the metadata's \"seed\" must be a decimal number", r->path);
  s->seed = (uint64_t)seed;
  const char *loss = nnkit__st_meta_string(r->meta, "loss");
  if (!loss || (strcmp(loss, "mse") != 0 && strcmp(loss, "softmax_cross_entropy") != 0))
    return BAD("%s: the metadata's \"loss\" must be \"softmax_cross_entropy\" or \"mse\"",
               r->path);
  if (strcmp(loss, loss_name(net->loss)) != 0)
    return nnkit__err(NNKIT_E_SHAPE, "%s: the checkpoint's net has the %s loss, the "
                      "trainer's the %s loss", r->path, loss, loss_name(net->loss));
  cJSON *arch = nnkit__st_meta_json(r, "architecture", &st);
  if (!arch)
    return st;
  size_t L = net->num_layers;
  if (!cJSON_IsArray(arch)) {
    st = BAD("%s: the architecture must be an array of layers", r->path);
  } else if ((size_t)cJSON_GetArraySize(arch) != L) {
    st = nnkit__err(NNKIT_E_SHAPE, "%s: the checkpoint's net has %d layers, the "
                    "trainer's %zu; resume into a net built like the checkpoint's",
                    r->path, cJSON_GetArraySize(arch), L);
  }
  if (st == NNKIT_OK) {
    s->trainable = nnkit__calloc(L, sizeof *s->trainable);
    s->lr_mult = nnkit__calloc(L, sizeof *s->lr_mult);
    if (!s->trainable || !s->lr_mult)
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", r->path);
  }
  size_t i = 0;
  const cJSON *o;
  cJSON_ArrayForEach(o, arch) {
    if (st != NNKIT_OK)
      break;
    const nnkit__layer *l = &net->layers[i];
    const nnkit__layer_kind *k = l->ops;
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (!cJSON_IsObject(o) || !cJSON_IsString(kind)) {
      st = BAD("%s: layer %zu of the architecture has no \"kind\"", r->path, i);
      break;
    }
    if (strcmp(kind->valuestring, k->name) != 0) {
      st = nnkit__err(NNKIT_E_SHAPE, "%s: layer %zu is a %s layer in the checkpoint, a "
                      "%s layer in the trainer's net; resume into a net built like the "
                      "checkpoint's", r->path, i, kind->valuestring, k->name);
      break;
    }
    double v[NNKIT__MAX_LAYER_ARGS] = {0};
    if (k->get_opts)
      k->get_opts(l, v);
    for (size_t j = 0; j < k->num_opts && st == NNKIT_OK; j++) {
      double f;
      const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k->opts[j].name);
      f = cJSON_IsNumber(x) ? x->valuedouble : NAN;
      if (!isfinite(f))
        st = BAD("%s: layer %zu (%s) needs \"%s\", a finite number", r->path, i, k->name,
                 k->opts[j].name);
      else if (fabs(f - v[j]) > 1e-12 * fmax(fabs(f), fabs(v[j]))) /* cJSON's digits */
        st = nnkit__err(NNKIT_E_SHAPE, "%s: layer %zu (%s) has %s %g in the checkpoint, "
                        "%g in the trainer's net; resume into a net built like the "
                        "checkpoint's", r->path, i, k->name, k->opts[j].name, f, v[j]);
    }
    const cJSON *tb = cJSON_GetObjectItemCaseSensitive(o, "trainable");
    double lr = 1;
    const cJSON *lm = cJSON_GetObjectItemCaseSensitive(o, "lr_multiplier");
    if (cJSON_IsNumber(lm))
      lr = lm->valuedouble;
    if (st == NNKIT_OK && (!cJSON_IsBool(tb) || !cJSON_IsNumber(lm) || !(lr >= 0 && lr <= 1e6)))
      st = BAD("%s: layer %zu (%s) needs \"trainable\" (true or false) and "
               "\"lr_multiplier\" (a number in [0, 1e6])", r->path, i, k->name);
    if (st == NNKIT_OK) {
      s->trainable[i] = cJSON_IsTrue(tb);
      s->lr_mult[i] = lr;
    }
    i++;
  }
  cJSON_Delete(arch);
  if (st != NNKIT_OK)
    return st;
  /* The tensors, through the descriptors. */
  size_t nf = nnkit__net_role_floats(net, NNKIT__ROLE_PARAMS | NNKIT__ROLE_STATE), nc = 0;
  for (i = 0; i < L; i++) {
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = net->layers[i].ops->tensors ? net->layers[i].ops->tensors(&net->layers[i], t)
                                            : 0;
    for (size_t j = 0; j < nt; j++)
      nc += t[j].role == NNKIT__ROLE_COUNTER;
  }
  s->net = nnkit__malloc((nf ? nf : 1) * sizeof(float));
  s->counts = nnkit__malloc((nc ? nc : 1) * sizeof(uint64_t));
  if (!s->net || !s->counts)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %zu values", r->path, nf);
  s->num_counts = nc;
  size_t at = 0, ac = 0;
  for (i = 0; i < L && st == NNKIT_OK; i++) {
    nnkit__layer *l = &net->layers[i];
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0;
    char need[64];
    snprintf(need, sizeof need, "the trainer's %s layer %zu", l->ops->name, i);
    for (size_t j = 0; j < nt && st == NNKIT_OK; j++) {
      char name[96];
      snprintf(name, sizeof name, "layers.%zu.%s", i, t[j].name);
      if (t[j].role == NNKIT__ROLE_COUNTER) {
        static const size_t one = 1;
        st = nnkit__st_take_u64(r, name, &s->counts[ac++], &one, 1, need);
      } else {
        st = nnkit__st_take_f32(r, name, s->net + at, t[j].dims, t[j].ndim, need);
        at += nnkit__tensor_floats(&t[j]);
      }
    }
  }
  return st;
}

/* Reads an F32 tensor of n values (absent when n is 0) into a new buffer. */
static nnkit_status take_f32_new(nnkit__st_reader *r, const char *name, size_t n,
                                 float **out, const char *need)
{
  *out = NULL;
  if (!n)
    return NNKIT_OK;
  *out = nnkit__malloc(n * sizeof(float));
  if (!*out)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for %s", r->path, name);
  return nnkit__st_take_f32(r, name, *out, &n, 1, need);
}

static nnkit_status check_optimizer(nnkit__st_reader *r, const nnkit_trainer *tr,
                                    staged *s)
{
  const nnkit_optimizer *opt = tr->opt;
  const nnkit__optim_kind_desc *d = opt->desc;
  nnkit_status st = NNKIT_OK;
  cJSON *o = nnkit__st_meta_json(r, "optimizer", &st);
  if (!o)
    return st;
  nnkit_optimizer *probe = NULL;
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "kind");
  const cJSON *keys = cJSON_GetObjectItemCaseSensitive(o, "keys");
  const cJSON *bufs = cJSON_GetObjectItemCaseSensitive(o, "state_buffers");
  const cJSON *scal = cJSON_GetObjectItemCaseSensitive(o, "layer_scalars");
  const cJSON *sched = cJSON_GetObjectItemCaseSensitive(o, "schedule");
  size_t steps, sized, L;
  if (!cJSON_IsObject(o) || !cJSON_IsString(kind) || !cJSON_IsObject(keys) ||
      !cJSON_IsArray(bufs) || !cJSON_IsArray(scal) || !get_n(o, "steps", &steps) ||
      !get_n(o, "sized_params", &sized) || !get_n(o, "layers", &L)) {
    st = BAD("%s: the optimizer needs \"kind\", \"keys\", \"steps\", \"sized_params\", "
             "\"layers\", \"state_buffers\" and \"layer_scalars\"", r->path);
    goto done;
  }
  if (strcmp(kind->valuestring, d->name) != 0) {
    st = nnkit__err(NNKIT_E_INVALID, "%s: the checkpoint's optimizer is %s, the "
                    "trainer's is %s; create the trainer with a %s optimizer", r->path,
                    kind->valuestring, d->name, kind->valuestring);
    goto done;
  }
  if ((sized && sized != tr->net->num_params) || L > tr->net->num_layers ||
      (size_t)cJSON_GetArraySize(bufs) > d->max_state ||
      (size_t)cJSON_GetArraySize(scal) != d->num_scalars) {
    st = BAD("%s: the optimizer's state (%zu parameters, %zu layers, %d buffers, %d "
             "layer scalars) does not fit %s and the trainer's net", r->path, sized, L,
             cJSON_GetArraySize(bufs), cJSON_GetArraySize(scal), d->name);
    goto done;
  }
  /* Keys: each checked by setting it on a state-less copy. */
  st = nnkit__optimizer_clone(&probe, opt);
  if (st != NNKIT_OK)
    goto done;
  const cJSON *k;
  cJSON_ArrayForEach(k, keys) {
    char *end;
    long key = strtol(k->string, &end, 10);
    double v;
    if (*end || key < 1 || key >= NNKIT__OPT_KEYS || !get_d(keys, k->string, &v)) {
      st = BAD("%s: the optimizer has a bad key \"%s\"", r->path, k->string);
      goto done;
    }
    st = nnkit_optimizer_set(probe, (nnkit_optim_param)key, v);
    if (st == NNKIT_E_NOMEM)
      goto done;
    if (st != NNKIT_OK) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", nnkit_last_error());
      st = BAD("%s: the optimizer's key %ld: %s", r->path, key, msg);
      goto done;
    }
    s->keys[key] = v;
    s->has_key[key] = 1;
  }
  /* The state, reassembled as nnkit_optimizer_get_state() lays it out;
   * nnkit_optimizer_set_state() checks it again and applies it. */
  size_t nb = (size_t)cJSON_GetArraySize(bufs), nk = d->num_scalars;
  int has_sched = sched != NULL && !cJSON_IsNull(sched);
  s->ostate_n = nb * sized;
  s->oscal_n = OPT_HEAD + L + L * nk + 1 + (has_sched ? NNKIT__SCHED_STATE : 0);
  if (s->ostate_n) {
    s->ostate = nnkit__malloc(s->ostate_n * sizeof(float));
    if (!s->ostate) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the optimizer's state",
                      r->path);
      goto done;
    }
  }
  s->oscal = nnkit__malloc(s->oscal_n * sizeof(double));
  uint64_t *ls = L ? nnkit__malloc(L * sizeof *ls) : NULL;
  double *col = L ? nnkit__malloc(L * sizeof *col) : NULL;
  if (!s->oscal || (L && (!ls || !col))) {
    nnkit__free(ls);
    nnkit__free(col);
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the optimizer's state", r->path);
    goto done;
  }
  double *c = s->oscal;
  c[0] = OPT_STATE_VERSION;
  c[1] = (double)d->kind;
  c[2] = (double)steps;
  c[3] = (double)sized;
  c[4] = (double)nb;
  c[5] = (double)L;
  for (size_t b = 0; b < nb && st == NNKIT_OK; b++) {
    const cJSON *nm = cJSON_GetArrayItem(bufs, (int)b);
    const char *want = nnkit__optimizer_state_name(opt, b);
    char name[96];
    if (!cJSON_IsString(nm) || strcmp(nm->valuestring, want) != 0) {
      st = BAD("%s: the optimizer's state buffer %zu must be \"%s\"", r->path, b, want);
      break;
    }
    snprintf(name, sizeof name, "optimizer.%s", want);
    st = nnkit__st_take_f32(r, name, s->ostate + b * sized, &sized, 1, "the optimizer");
  }
  if (st == NNKIT_OK && L) {
    st = nnkit__st_take_u64(r, "optimizer.layer_steps", ls, &L, 1, "the optimizer");
    for (size_t i = 0; st == NNKIT_OK && i < L; i++) {
      if ((double)ls[i] > MAX_COUNT)
        st = BAD("%s: layer %zu's optimizer step count is too large", r->path, i);
      c[OPT_HEAD + i] = (double)ls[i];
    }
  }
  for (size_t j = 0; st == NNKIT_OK && j < nk; j++) {
    const cJSON *nm = cJSON_GetArrayItem(scal, (int)j);
    const char *want = nnkit__optimizer_scalar_name(opt, j);
    char name[96];
    if (!cJSON_IsString(nm) || strcmp(nm->valuestring, want) != 0) {
      st = BAD("%s: the optimizer's layer scalar %zu must be \"%s\"", r->path, j, want);
      break;
    }
    snprintf(name, sizeof name, "optimizer.%s", want);
    if (L)
      st = nnkit__st_take_f64(r, name, col, &L, 1, "the optimizer");
    for (size_t i = 0; st == NNKIT_OK && i < L; i++)
      c[OPT_HEAD + L + i * nk + j] = col[i];
  }
  nnkit__free(ls);
  nnkit__free(col);
  if (st != NNKIT_OK)
    goto done;
  c[OPT_HEAD + L + L * nk] = has_sched;
  if (has_sched) {
    if (!cJSON_IsArray(sched) || cJSON_GetArraySize(sched) != NNKIT__SCHED_STATE) {
      st = BAD("%s: the optimizer's schedule position must be %d numbers", r->path,
               NNKIT__SCHED_STATE);
      goto done;
    }
    for (int i = 0; i < NNKIT__SCHED_STATE; i++)
      if (!val_d(cJSON_GetArrayItem(sched, i), &c[OPT_HEAD + L + L * nk + 1 + i])) {
        st = BAD("%s: the optimizer's schedule position must be %d numbers", r->path,
                 NNKIT__SCHED_STATE);
        goto done;
      }
  }
  if (has_sched != (opt->sched != NULL))
    st = nnkit__err(NNKIT_E_INVALID, has_sched
                    ? "%s: the checkpoint's optimizer has a schedule; attach one of the "
                      "same kind before resuming"
                    : "%s: the checkpoint's optimizer has no schedule but the trainer's "
                      "has one; detach it before resuming", r->path);
done:
  nnkit_optimizer_free(probe);
  cJSON_Delete(o);
  return st;
}

static nnkit_status take_snapshot(nnkit__st_reader *r, const char *prefix,
                                  const nnkit_net *net, nnkit__snapshot *s, int with_opt)
{
  char name[64];
  size_t n = net->num_params, nb = nnkit__net_role_floats((nnkit_net *)net,
                                                           NNKIT__ROLE_STATE);
  snprintf(name, sizeof name, "%sparams", prefix);
  nnkit_status st = take_f32_new(r, name, n, &s->params, "a kept snapshot");
  s->n = s->cap = n;
  snprintf(name, sizeof name, "%sstate", prefix);
  if (st == NNKIT_OK)
    st = take_f32_new(r, name, nb, &s->bn, "a kept snapshot");
  s->nbn = s->bn_cap = nb;
  if (st == NNKIT_OK && with_opt) {
    snprintf(name, sizeof name, "%soptimizer_state", prefix);
    nnkit__st_in *t = nnkit__st_find(r, name);
    size_t on = t && t->ndim == 1 ? t->dims[0] : 0;
    st = take_f32_new(r, name, on, &s->ost, "a kept snapshot");
    s->ost_n = s->ost_cap = on;
    snprintf(name, sizeof name, "%soptimizer_scalars", prefix);
    t = nnkit__st_find(r, name);
    size_t sn = t && t->ndim == 1 ? t->dims[0] : 0;
    if (st == NNKIT_OK && !sn)
      st = BAD("%s: tensor %s is missing", r->path, name);
    if (st == NNKIT_OK && !(s->osc = nnkit__malloc(sn * sizeof(double))))
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", r->path);
    if (st == NNKIT_OK)
      st = nnkit__st_take_f64(r, name, s->osc, &sn, 1, "a kept snapshot");
    s->osc_n = s->osc_cap = sn;
    s->opt_valid = st == NNKIT_OK;
  }
  s->valid = st == NNKIT_OK;
  return st;
}

static nnkit_status check_trainer(nnkit__st_reader *r, const nnkit_trainer *tr,
                                  staged *s)
{
  nnkit_status st = NNKIT_OK;
  cJSON *o = nnkit__st_meta_json(r, "trainer", &st);
  if (!o)
    return st;
  const nnkit_net *net = tr->net;
  const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "settings");
  const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "position");
  const cJSON *es = cJSON_GetObjectItemCaseSensitive(o, "early_stopping");
  const cJSON *dv = cJSON_GetObjectItemCaseSensitive(o, "divergence");
  const cJSON *kg = cJSON_GetObjectItemCaseSensitive(o, "keep_good");
  const cJSON *hj = cJSON_GetObjectItemCaseSensitive(o, "history");
  if (!cJSON_IsObject(set) || !cJSON_IsObject(p) || !cJSON_IsObject(es) ||
      !cJSON_IsObject(dv) || !cJSON_IsObject(kg) || !cJSON_IsObject(hj)) {
    st = BAD("%s: the trainer needs \"settings\", \"position\", \"early_stopping\", "
             "\"divergence\", \"keep_good\" and \"history\"", r->path);
    goto done;
  }
  size_t ns;
  const nnkit__spec *specs = nnkit__trainer_specs(&ns);
  if (ns > sizeof s->settings / sizeof s->settings[0]) {
    st = nnkit__err(NNKIT_E_STATE, "%s: too many trainer settings", r->path);
    goto done;
  }
  for (size_t i = 0; i < ns; i++) {
    double v;
    if (!cJSON_GetObjectItemCaseSensitive(set, specs[i].name) &&
        specs[i].key >= NNKIT_TRAIN_SNAPSHOTS) {
      v = specs[i].def; /* a checkpoint older than the key: its default */
    } else if (!get_d(set, specs[i].name, &v)) {
      st = BAD("%s: the trainer's settings lack \"%s\"", r->path, specs[i].name);
      goto done;
    }
    if (nnkit__spec_check(&specs[i], "trainer", v) != NNKIT_OK) {
      char msg[256];
      snprintf(msg, sizeof msg, "%s", nnkit_last_error());
      st = BAD("%s: %s", r->path, msg);
      goto done;
    }
    s->settings[i] = v;
  }
  nnkit__fit_pos *pos = &s->pos;
  size_t metric, have_best, best_valid, have_ref, E, B, L, nclass, div, snap_best,
      snap_good, good_opt;
  int ok = get_n(p, "epoch", &pos->epoch) && get_n(p, "batch", &pos->batch) &&
           get_n(p, "total", &pos->total) && get_d(p, "loss_sum", &pos->loss_sum) &&
           get_d(p, "reg_sum", &pos->reg_sum) && get_d(p, "lr", &pos->lr) &&
           get_n(p, "correct", &pos->correct) && get_n(p, "seen", &pos->seen) &&
           get_n(es, "metric", &metric) && get_n(es, "patience", &s->es_patience) &&
           get_d(es, "min_delta", &s->es_min_delta) && get_d(es, "best", &s->es_best) &&
           get_n(es, "best_epoch", &s->es_best_epoch) && get_n(es, "wait", &s->es_wait) &&
           get_n(es, "have_best", &have_best) && get_n(es, "best_valid", &best_valid) &&
           get_n(es, "snapshot", &snap_best) && get_d(dv, "ref_loss", &s->ref_loss) &&
           get_n(dv, "have_ref", &have_ref) && get_d(dv, "ema", &s->ema) &&
           get_n(dv, "ema_n", &s->ema_n) && get_n(dv, "ring_n", &s->ring_n) &&
           get_n(dv, "ring_pos", &s->ring_pos) && get_n(kg, "epoch", &s->good_epoch) &&
           get_n(kg, "snapshot", &snap_good) && get_n(kg, "optimizer", &good_opt) &&
           get_n(hj, "epochs", &E) && get_n(hj, "batches", &B) &&
           get_n(hj, "layers", &L) && get_n(hj, "num_classes", &nclass) &&
           get_n(hj, "diverged", &div) && get_n(hj, "div_epoch", &s->hist.div_epoch) &&
           get_n(hj, "div_batch", &s->hist.div_batch) &&
           get_d(hj, "div_loss", &s->hist.div_loss) && get_d(hj, "div_lr", &s->hist.div_lr);
  if (!ok) {
    st = BAD("%s: the trainer's position, early stopping, divergence, keep_good or "
             "history figures are missing or not numbers", r->path);
    goto done;
  }
  size_t window = 0;
  for (size_t i = 0; i < ns; i++)
    if (specs[i].key == NNKIT_TRAIN_DIVERGE_WINDOW)
      window = (size_t)s->settings[i];
  if (pos->epoch != E || pos->total < pos->epoch || pos->total - pos->epoch > 1000000 ||
      (pos->batch && pos->epoch == pos->total) || pos->seen < pos->batch ||
      metric > NNKIT_METRIC_VAL_ACC || have_best > 1 ||
      best_valid > 1 || have_ref > 1 || div > 1 || snap_best > 1 || snap_good > 1 ||
      good_opt > 1 || (metric && (s->es_patience < 1 || s->es_patience > 1000000)) ||
      !(s->es_min_delta >= 0 && isfinite(s->es_min_delta)) || s->ring_n > window ||
      (window && s->ring_pos >= window) || nclass > 0xffffffffu ||
      (L && L != net->num_layers) || B > ((size_t)1 << 40) || E > ((size_t)1 << 30) ||
      s->good_epoch > pos->epoch || !isfinite(pos->loss_sum) || !isfinite(pos->reg_sum)) {
    st = BAD("%s: the trainer's position (epoch %zu, batch %zu of a fit to epoch %zu), "
             "early stopping, divergence or history figures are not consistent",
             r->path, pos->epoch, pos->batch, pos->total);
    goto done;
  }
  s->es_metric = (nnkit_metric)metric;
  s->es_have_best = (int)have_best;
  s->es_best_valid = (int)best_valid;
  s->have_ref = (int)have_ref;
  /* History. */
  nnkit_history *h = &s->hist;
  h->num_classes = (uint32_t)nclass;
  h->diverged = (int)div;
  double *ep = NULL, *bt = NULL;
  uint64_t *enb = NULL, *ehs = NULL, *bix = NULL;
  size_t d2[2] = {E, EPOCH_FIGURES}, b2[2] = {B, 2}, s2[2] = {E, L * NNKIT__NSTATS};
  int ovf = 0;
  size_t ne = nnkit__mul_size(E, EPOCH_FIGURES + 2, &ovf) + 1;
  size_t nbt = nnkit__mul_size(B, 4, &ovf) + 1;
  ep = nnkit__malloc(ne * sizeof(double));
  enb = nnkit__malloc((2 * E + 1) * sizeof(uint64_t));
  bt = nnkit__malloc(nbt * sizeof(double));
  bix = nnkit__malloc(nbt * sizeof(uint64_t));
  h->epochs = nnkit__calloc(E ? E : 1, sizeof *h->epochs);
  h->batches = nnkit__calloc(B ? B : 1, sizeof *h->batches);
  if (L && E)
    h->stats = nnkit__malloc(E * L * NNKIT__NSTATS * sizeof(double));
  if (L)
    h->kinds = nnkit__calloc(L, sizeof *h->kinds);
  if (ovf || !ep || !enb || !bt || !bix || !h->epochs || !h->batches ||
      (L && E && !h->stats) || (L && !h->kinds)) {
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the history", r->path);
    goto hist_done;
  }
  h->cap_epochs = E ? E : 1;
  h->cap_batches = B ? B : 1;
  h->num_layers = L;
  for (size_t i = 0; i < L; i++)
    snprintf(h->kinds[i], sizeof h->kinds[i], "%s", nnkit__layer_kind_name(&net->layers[i]));
  ehs = enb + E;
  const char *need = "the history";
  if (E && ((st = nnkit__st_take_f64(r, "trainer.history.epochs", ep, d2, 2, need)) !=
                NNKIT_OK ||
            (st = nnkit__st_take_u64(r, "trainer.history.epoch_batches", enb, &E, 1,
                                     need)) != NNKIT_OK ||
            (st = nnkit__st_take_u64(r, "trainer.history.has_stats", ehs, &E, 1, need)) !=
                NNKIT_OK))
    goto hist_done;
  if (E && L &&
      (st = nnkit__st_take_f64(r, "trainer.history.layer_stats", h->stats, s2, 2, need)) !=
          NNKIT_OK)
    goto hist_done;
  if (B && ((st = nnkit__st_take_f64(r, "trainer.history.batches", bt, b2, 2, need)) !=
                NNKIT_OK ||
            (st = nnkit__st_take_u64(r, "trainer.history.batch_index", bix, b2, 2, need)) !=
                NNKIT_OK))
    goto hist_done;
  size_t first = 0;
  for (size_t e = 0; e < E; e++) {
    nnkit__hist_epoch *x = &h->epochs[e];
    const double *f = ep + e * EPOCH_FIGURES;
    x->train_loss = f[0];
    x->train_acc = f[1];
    x->val_loss = f[2];
    x->val_acc = f[3];
    x->lr = f[4];
    x->seconds = f[5];
    x->reg_loss = f[6];
    if (ehs[e] > 1 || (ehs[e] && !L) || enb[e] > B - first) {
      st = BAD("%s: the history's epoch %zu claims %llu batches or a bad statistics "
               "flag", r->path, e + 1, (unsigned long long)enb[e]);
      goto hist_done;
    }
    x->first_batch = first;
    x->num_batches = (size_t)enb[e];
    x->has_stats = (int)ehs[e];
    first += x->num_batches;
  }
  if (first + pos->batch != B) {
    st = BAD("%s: the history's %zu batch records do not match its epochs' %zu and the "
             "position's %zu", r->path, B, first, pos->batch);
    goto hist_done;
  }
  for (size_t b = 0; b < B; b++) {
    if (bix[2 * b] > 0xffffffffu || bix[2 * b + 1] > 0xffffffffu) {
      st = BAD("%s: the history's batch record %zu is not valid", r->path, b);
      goto hist_done;
    }
    h->batches[b].loss = bt[2 * b];
    h->batches[b].lr = bt[2 * b + 1];
    h->batches[b].epoch = (uint32_t)bix[2 * b];
    h->batches[b].batch = (uint32_t)bix[2 * b + 1];
  }
  h->num_epochs = E;
  h->num_batches = B;
hist_done:
  nnkit__free(ep);
  nnkit__free(enb);
  nnkit__free(bt);
  nnkit__free(bix);
  if (st != NNKIT_OK)
    goto done;
  /* The divergence watch's ring, sized for the window as a fit would. */
  s->ring_cap = window;
  if (window && !(s->ring = nnkit__malloc(window * sizeof(double)))) {
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", r->path);
    goto done;
  }
  if (s->ring_n &&
      (st = nnkit__st_take_f64(r, "trainer.divergence_ring", s->ring, &s->ring_n, 1,
                               "the divergence watch")) != NNKIT_OK)
    goto done;
  if (snap_best && (st = take_snapshot(r, "trainer.best.", net, &s->best, 0)) != NNKIT_OK)
    goto done;
  if (snap_good &&
      (st = take_snapshot(r, "trainer.good.", net, &s->good, (int)good_opt)) != NNKIT_OK)
    goto done;
done:
  cJSON_Delete(o);
  return st;
}

static nnkit_status stage(nnkit__st_reader *r, nnkit_trainer *tr, staged *s)
{
  nnkit_status st = nnkit__st_read_file(r);
  if (st == NNKIT_OK)
    st = nnkit__st_parse_header(r);
  if (st != NNKIT_OK)
    return st;
  const char *fmt = nnkit__st_meta_string(r->meta, "format");
  const char *kind = nnkit__st_meta_string(r->meta, "kind");
  const char *ver = nnkit__st_meta_string(r->meta, "checkpoint_version");
  if (!fmt || strcmp(fmt, "nnkit") != 0 || !kind || strcmp(kind, "checkpoint") != 0)
    return BAD("%s: the metadata's \"format\" and \"kind\" are not \"nnkit\" and "
               "\"checkpoint\"; not an nnkit checkpoint (a model file loads with "
               "nnkit_net_load())", r->path);
  if (!ver || strcmp(ver, CKPT_VERSION) != 0)
    return BAD("%s: checkpoint version %s; this nnkit (%s) reads version %s", r->path,
               ver ? ver : "(missing)", nnkit_version(), CKPT_VERSION);
  st = nnkit__st_check_crc(r, 1);
  if (st != NNKIT_OK)
    return st;
  static const char *const dtypes[] = {"F32", "F64", "U64", NULL};
  st = nnkit__st_read_tensors(r, dtypes);
  if (st == NNKIT_OK)
    st = nnkit__net_build(tr->net);
  if (st == NNKIT_OK)
    st = check_net(r, tr->net, s);
  if (st == NNKIT_OK)
    st = check_optimizer(r, tr, s);
  if (st == NNKIT_OK)
    st = check_trainer(r, tr, s);
  for (size_t i = 0; st == NNKIT_OK && i < r->n; i++)
    if (!r->t[i].used)
      st = BAD("%s: tensor %s belongs to nothing a checkpoint holds", r->path,
               r->t[i].name);
  return st;
}

/* Puts the staged state in place; nothing here can fail. */
static void commit(nnkit_trainer *tr, staged *s)
{
  nnkit_net *net = tr->net;
  nnkit__net_role_copy(net, NNKIT__ROLE_PARAMS | NNKIT__ROLE_STATE, s->net, 1);
  net->seed = s->seed; /* the layers' random streams (dropout) */
  size_t ac = 0;
  for (size_t i = 0; i < net->num_layers; i++) {
    nnkit__layer *l = &net->layers[i];
    nnkit__tensor t[NNKIT__MAX_LAYER_TENSORS];
    size_t nt = l->ops->tensors ? l->ops->tensors(l, t) : 0;
    for (size_t j = 0; j < nt; j++)
      if (t[j].role == NNKIT__ROLE_COUNTER)
        *t[j].count = s->counts[ac++];
    l->seed = s->seed;
    l->frozen = !s->trainable[i];
    l->lr_mult = (float)s->lr_mult[i];
  }
  /* Keys (checked on a copy); with a schedule, the rate is the restored
   * schedule's, whose base the state held. */
  for (int k = 1; k < NNKIT__OPT_KEYS; k++)
    if (s->has_key[k] && !(k == NNKIT_OPT_LR && tr->opt->sched))
      (void)nnkit_optimizer_set(tr->opt, (nnkit_optim_param)k, s->keys[k]);
  size_t ns;
  const nnkit__spec *specs = nnkit__trainer_specs(&ns);
  for (size_t i = 0; i < ns; i++)
    *nnkit__trainer_slot(tr, (nnkit_train_param)specs[i].key) = s->settings[i];
  tr->es_metric = s->es_metric;
  tr->es_patience = s->es_patience;
  tr->es_min_delta = s->es_min_delta;
  tr->es_best = s->es_best;
  tr->es_best_epoch = s->es_best_epoch;
  tr->es_wait = s->es_wait;
  tr->es_have_best = s->es_have_best;
  tr->es_best_valid = s->es_best_valid;
  tr->ref_loss = s->ref_loss;
  tr->have_ref = s->have_ref;
  tr->ema = s->ema;
  tr->ema_n = s->ema_n;
  tr->ring_n = s->ring_n;
  tr->ring_pos = s->ring_pos;
  nnkit__free(tr->ring);
  tr->ring = s->ring;
  tr->ring_cap = s->ring_cap;
  s->ring = NULL;
  tr->good_epoch = s->good_epoch;
  nnkit__history_free(&tr->hist);
  tr->hist = s->hist;
  memset(&s->hist, 0, sizeof s->hist);
  nnkit__snapshot_free(&tr->best);
  tr->best = s->best;
  memset(&s->best, 0, sizeof s->best);
  nnkit__snapshot_free(&tr->good);
  tr->good = s->good;
  memset(&s->good, 0, sizeof s->good);
  tr->open_valid = 0;
  tr->total_epochs = s->pos.total;
  tr->resume = s->pos;
  tr->resume.pre = 0;
  tr->resume_armed = s->pos.epoch < s->pos.total;
}

NNKIT_API nnkit_status nnkit_trainer_resume(nnkit_trainer *tr, const char *path)
{
  if (!tr || !path)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_resume: tr and path must be non-NULL");
  if (tr->in_fit)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_resume: a fit is running");
  if (tr->net->num_layers == 0)
    return nnkit__err(NNKIT_E_STATE, "%s: the trainer's net has no layers; build it like "
                      "the checkpoint's before resuming", path);
  nnkit__st_reader r = {0};
  r.path = path;
  r.what = "checkpoint";
  staged s;
  memset(&s, 0, sizeof s);
  nnkit_status st = stage(&r, tr, &s);
  /* The last step that may fail: it changes nothing when it does. */
  if (st == NNKIT_OK) {
    st = nnkit_optimizer_set_state(tr->opt, tr->net, s.ostate, s.ostate_n, s.oscal,
                                   s.oscal_n);
    if (st != NNKIT_OK && st != NNKIT_E_NOMEM) {
      char msg[512];
      snprintf(msg, sizeof msg, "%s", nnkit_last_error());
      st = nnkit__err(st, "%s: %s", path, msg);
    }
  }
  if (st == NNKIT_OK)
    commit(tr, &s);
  staged_free(&s);
  nnkit__st_reader_free(&r);
  return st;
}
