/* What a trainer keeps of a run besides its net: the cycle-end snapshots
 * of a cosine schedule (NNKIT_TRAIN_SNAPSHOTS, _SNAPSHOT_FILES) and the
 * exponential moving average of the parameters (NNKIT_TRAIN_EMA_DECAY), and
 * the nets and ensembles made of them (nnkit_trainer_apply_snapshots(),
 * nnkit_trainer_apply_average()); plus the working memory of online hard
 * example mining (NNKIT_TRAIN_OHEM_K). The fit loop (trainer.c) calls the
 * nnkit__average_* hooks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "train_internal.h"

static void drop_snapshots(nnkit_trainer *tr)
{
  for (size_t i = 0; i < tr->snaps_cap; i++)
    nnkit__snapshot_free(&tr->snaps[i]);
  nnkit__free(tr->snaps);
  tr->snaps = NULL;
  tr->snaps_cap = tr->snaps_n = tr->snaps_next = 0;
  tr->snap_last = 0;
}

void nnkit__average_free(nnkit_trainer *tr)
{
  drop_snapshots(tr);
  nnkit__free(tr->avg);
  tr->avg = NULL;
}

void nnkit__average_setting_changed(nnkit_trainer *tr, nnkit_train_param key)
{
  if (key == NNKIT_TRAIN_SNAPSHOTS)
    drop_snapshots(tr);
  else if (key == NNKIT_TRAIN_EMA_DECAY)
    tr->avg_valid = 0;
}

nnkit_status nnkit__average_fit_begin(nnkit_trainer *tr)
{
  nnkit_net *net = tr->net;
  if (tr->snapshot_files && !tr->ckpt_dir)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_fit: snapshot files need a folder; "
                      "call nnkit_trainer_set_checkpoint_dir() first (or set "
                      "NNKIT_TRAIN_SNAPSHOT_FILES to 0)");
  nnkit_status st = nnkit__net_build(net);
  if (st != NNKIT_OK)
    return st;
  size_t m = (size_t)tr->snapshots;
  if (tr->snaps_cap && (tr->snaps_cap != m || tr->snaps[0].n != net->num_params))
    drop_snapshots(tr); /* the count changed (a resumed checkpoint's), or the net */
  if (m && !tr->snaps) {
    tr->snaps = nnkit__calloc(m, sizeof *tr->snaps);
    if (!tr->snaps)
      return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for %zu "
                        "snapshots", m);
    tr->snaps_cap = m;
    for (size_t i = 0; i < m; i++) {
      st = nnkit__snapshot_reserve(&tr->snaps[i], net);
      if (st != NNKIT_OK) {
        drop_snapshots(tr);
        return st;
      }
    }
  }
  if (tr->ema_decay > 0) {
    if (tr->avg_valid && tr->avg_n != net->num_params)
      tr->avg_valid = 0;
    if (!tr->avg_valid) {
      if (tr->avg_n < net->num_params || !tr->avg) {
        float *a = nnkit__realloc(tr->avg, (net->num_params ? net->num_params : 1) *
                                               sizeof *a);
        if (!a)
          return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_fit: out of memory for the "
                            "average of %zu parameters", net->num_params);
        tr->avg = a;
      }
      tr->avg_n = net->num_params;
      memcpy(tr->avg, net->params, net->num_params * sizeof *tr->avg);
      tr->avg_valid = 1;
    }
  }
  return NNKIT_OK;
}

void nnkit__average_after_step(nnkit_trainer *tr)
{
  if (!(tr->ema_decay > 0) || !tr->avg_valid)
    return;
  const float *p = tr->net->params;
  float *a = tr->avg;
  float d = (float)tr->ema_decay, e = (float)(1.0 - tr->ema_decay);
  for (size_t i = 0; i < tr->avg_n; i++)
    a[i] = d * a[i] + e * p[i];
}

nnkit_status nnkit__average_cycle_check(nnkit_trainer *tr)
{
  if (!tr->snapshots || !tr->opt->sched)
    return NNKIT_OK;
  uint64_t t = nnkit__schedule_cycle_end(tr->opt->sched);
  if (!t || t == tr->snap_last)
    return NNKIT_OK;
  tr->snap_last = t;
  nnkit__snapshot_save(&tr->snaps[tr->snaps_next], tr->net);
  tr->snaps_next = (tr->snaps_next + 1) % tr->snaps_cap;
  if (tr->snaps_n < tr->snaps_cap)
    tr->snaps_n++;
  if (!tr->snapshot_files)
    return NNKIT_OK;
  char path[4096];
  snprintf(path, sizeof path, "%s/snapshot-%06llu.safetensors", tr->ckpt_dir,
           (unsigned long long)tr->opt->steps);
  return nnkit_net_save(tr->net, NULL, path);
}

NNKIT_API size_t nnkit_trainer_num_snapshots(const nnkit_trainer *tr)
{
  return tr ? tr->snaps_n : 0;
}

NNKIT_API nnkit_status nnkit_trainer_apply_snapshots(nnkit_ensemble **out,
                                                     nnkit_trainer *tr, size_t m,
                                                     nnkit_ensemble_kind kind)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_apply_snapshots: out and tr "
                      "must be non-NULL");
  *out = NULL;
  if (m == 0)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_apply_snapshots: m must be at "
                      "least 1");
  if (m > tr->snaps_n)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_apply_snapshots: the trainer holds "
                      "%zu snapshots, %zu were asked for; set NNKIT_TRAIN_SNAPSHOTS "
                      "and fit with a cosine schedule (COSINE_RESTARTS) long enough "
                      "for that many cycles", tr->snaps_n, m);
  nnkit_ensemble *ens = NULL;
  nnkit_status st = nnkit_ensemble_create(&ens, kind);
  for (size_t i = 0; st == NNKIT_OK && i < m; i++) {
    /* oldest of the newest m first */
    size_t slot = (tr->snaps_next + tr->snaps_cap - m + i) % tr->snaps_cap;
    nnkit_net *net = NULL;
    st = nnkit__net_clone(&net, tr->net);
    if (st != NNKIT_OK)
      break;
    nnkit__snapshot_restore(&tr->snaps[slot], net);
    net->training = 0;
    st = nnkit__ensemble_take(ens, net, 1.0);
  }
  if (st != NNKIT_OK) {
    nnkit_ensemble_free(ens);
    return st;
  }
  *out = ens;
  return NNKIT_OK;
}

/* Running statistics of the batch-norm layers of net (those with a
 * MOMENTUM option) recomputed by one pass over train in training mode:
 * batch k (0-based) runs with momentum 1 / (k + 1), so the first batch
 * replaces the old statistics and the pass ends at their cumulative mean.
 * Each layer's momentum is restored after. */
static nnkit_status recompute_stats(nnkit_net *net, const nnkit_dataset *train,
                                    size_t batch)
{
  size_t in = nnkit_net_input_size(net);
  if (train->sample_size != in)
    return nnkit__err(NNKIT_E_SHAPE, "nnkit_trainer_apply_average: training samples "
                      "have %zu values, the net takes %zu", train->sample_size, in);
  size_t L = net->num_layers, have = 0;
  double *mom = nnkit__calloc(L ? L : 1, sizeof *mom);
  float *scratch = NULL;
  if (mom && train->x8)
    scratch = nnkit__malloc(batch * in * sizeof *scratch);
  if (!mom || (train->x8 && !scratch)) {
    nnkit__free(mom);
    return nnkit__err(NNKIT_E_NOMEM, "nnkit_trainer_apply_average: out of memory");
  }
  for (size_t i = 0; i < L; i++) {
    if (nnkit__layer_opt(&net->layers[i], NNKIT_LAYER_MOMENTUM) &&
        nnkit_net_layer_get(&mom[i], net, i, NNKIT_LAYER_MOMENTUM) == NNKIT_OK)
      have++;
    else
      mom[i] = NAN;
  }
  nnkit_status st = NNKIT_OK;
  int mode = net->training;
  net->training = 1;
  for (size_t s = 0, k = 0; have && st == NNKIT_OK && s < train->count; s += batch, k++) {
    size_t n = train->count - s < batch ? train->count - s : batch;
    for (size_t i = 0; st == NNKIT_OK && i < L; i++)
      if (!isnan(mom[i]))
        st = nnkit_net_layer_set(net, i, NNKIT_LAYER_MOMENTUM, 1.0 / (double)(k + 1));
    if (st == NNKIT_OK)
      st = nnkit_net_forward(net, nnkit__dataset_block(train, s, n, scratch), n, NULL, 0);
  }
  for (size_t i = 0; i < L; i++)
    if (!isnan(mom[i]))
      nnkit_net_layer_set(net, i, NNKIT_LAYER_MOMENTUM, mom[i]);
  net->training = mode;
  nnkit__free(mom);
  nnkit__free(scratch);
  return st;
}

NNKIT_API nnkit_status nnkit_trainer_apply_average(nnkit_net **out, nnkit_trainer *tr,
                                                   const nnkit_dataset *train)
{
  if (!out || !tr)
    return nnkit__err(NNKIT_E_INVALID, "nnkit_trainer_apply_average: out and tr must "
                      "be non-NULL");
  *out = NULL;
  if (!tr->avg_valid)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_apply_average: the trainer kept no "
                      "average of the weights; set NNKIT_TRAIN_EMA_DECAY (e.g. 0.999) "
                      "before fitting");
  if (tr->avg_n != tr->net->num_params)
    return nnkit__err(NNKIT_E_STATE, "nnkit_trainer_apply_average: the average holds "
                      "%zu parameters, the net now has %zu; fit again to average the "
                      "new net", tr->avg_n, tr->net->num_params);
  nnkit_net *net = NULL;
  nnkit_status st = nnkit__net_clone(&net, tr->net);
  if (st != NNKIT_OK)
    return st;
  memcpy(net->params, tr->avg, tr->avg_n * sizeof *tr->avg);
  if (train)
    st = recompute_stats(net, train, (size_t)tr->batch_size);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    return st;
  }
  net->training = 0;
  *out = net;
  return NNKIT_OK;
}
