/* Ensembles, snapshot ensembles, weight averaging and hard-sample mining:
 * an ensemble of one net is the net; equal weights give the mean of the
 * probabilities; mismatched nets are refused with a sentence; ensemble
 * files round-trip and refuse damage; snapshots are taken at the cycle
 * ends; the average follows its formula and its batch-norm statistics are
 * recomputed; per-sample losses sum to the batch loss; OHEM with k = batch
 * size is plain training bit for bit, and with a smaller k back-propagates
 * exactly the k hardest samples; uncertainty scores match their formulas. */
#include <sys/stat.h>

#include "testutil.h"
#include "io/io_internal.h"
#include "train/train_internal.h"

static nnkit_net *mlp(uint64_t seed, size_t in, size_t classes)
{
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, seed));
  ck_ok(nnkit_net_add_dense(net, 12));
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_TANH));
  ck_ok(nnkit_net_add_dense(net, classes));
  return net;
}

/* A net trained a little on the blobs, so its answers are not uniform. */
static nnkit_net *trained(uint64_t seed, const nnkit_dataset *ds)
{
  nnkit_net *net = mlp(seed, 2, 4);
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.2));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, seed));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  return net;
}

START_TEST(ensemble_of_one_equals_the_net)
{
  nnkit_dataset *ds = tu_blobs4(300, 0.8, 1);
  nnkit_net *net = trained(2, ds);
  nnkit_ensemble *ens = NULL;
  ck_ok(nnkit_ensemble_create(&ens, NNKIT_ENSEMBLE_MEAN));
  ck_ok(nnkit_ensemble_add(ens, net, 2.5));
  ck_assert_uint_eq(nnkit_ensemble_size(ens), 1);
  ck_assert_int_eq(nnkit_ensemble_get_kind(ens), NNKIT_ENSEMBLE_MEAN);
  ck_assert_double_eq(nnkit_ensemble_weight(ens, 0), 2.5);
  ck_assert_ptr_nonnull(nnkit_ensemble_member(ens, 0));
  ck_assert_ptr_ne(nnkit_ensemble_member(ens, 0), net); /* a copy */
  ck_assert_ptr_null(nnkit_ensemble_member(ens, 1));
  ck_assert_double_eq(nnkit_ensemble_weight(ens, 1), 0);
  size_t n = nnkit_dataset_count(ds);
  const float *x = nnkit_dataset_data(ds);
  float *pn = malloc(n * 4 * sizeof *pn), *pe = malloc(n * 4 * sizeof *pe);
  int32_t *cn = malloc(n * sizeof *cn), *ce = malloc(n * sizeof *ce);
  ck_ok(nnkit_net_predict_proba(pn, n * 4, net, x, n));
  ck_ok(nnkit_ensemble_predict_proba(pe, n * 4, ens, x, n));
  ck_assert(memcmp(pn, pe, n * 4 * sizeof *pn) == 0);
  ck_ok(nnkit_net_predict(cn, net, x, n));
  ck_ok(nnkit_ensemble_predict(ce, ens, x, n));
  ck_assert(memcmp(cn, ce, n * sizeof *cn) == 0);
  double ln, an, le, ae;
  ck_ok(nnkit_net_evaluate(&ln, &an, net, ds));
  ck_ok(nnkit_ensemble_evaluate(&le, &ae, ens, ds));
  ck_assert_double_eq(an, ae);
  ck_assert_double_eq_tol(ln, le, 1e-5);
  /* A vote of one is the net's class too. */
  nnkit_ensemble *vote = NULL;
  ck_ok(nnkit_ensemble_create(&vote, NNKIT_ENSEMBLE_VOTE));
  ck_ok(nnkit_ensemble_add(vote, net, 1));
  ck_ok(nnkit_ensemble_predict(ce, vote, x, n));
  ck_assert(memcmp(cn, ce, n * sizeof *cn) == 0);
  ck_ok(nnkit_ensemble_evaluate(NULL, &ae, vote, ds));
  ck_assert_double_eq(an, ae);
  free(pn);
  free(pe);
  free(cn);
  free(ce);
  nnkit_ensemble_free(vote);
  nnkit_ensemble_free(ens);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(weights_give_the_weighted_mean_and_vote)
{
  nnkit_dataset *ds = tu_blobs4(200, 1.0, 3);
  nnkit_net *nets[3];
  for (int m = 0; m < 3; m++)
    nets[m] = trained(10 + (uint64_t)m, ds);
  size_t n = nnkit_dataset_count(ds);
  const float *x = nnkit_dataset_data(ds);
  float *p[3], *pe = malloc(n * 4 * sizeof *pe);
  for (int m = 0; m < 3; m++) {
    p[m] = malloc(n * 4 * sizeof *p[m]);
    ck_ok(nnkit_net_predict_proba(p[m], n * 4, nets[m], x, n));
  }
  const double w[2][3] = {{1, 1, 1}, {1, 2, 3}};
  for (int c = 0; c < 2; c++) {
    nnkit_ensemble *ens = NULL;
    ck_ok(nnkit_ensemble_create(&ens, NNKIT_ENSEMBLE_MEAN));
    for (int m = 0; m < 3; m++)
      ck_ok(nnkit_ensemble_add(ens, nets[m], w[c][m]));
    ck_ok(nnkit_ensemble_predict_proba(pe, n * 4, ens, x, n));
    double wsum = w[c][0] + w[c][1] + w[c][2];
    for (size_t i = 0; i < n * 4; i++) {
      double mean = (w[c][0] * p[0][i] + w[c][1] * p[1][i] + w[c][2] * p[2][i]) / wsum;
      ck_assert_double_eq_tol(pe[i], mean, 1e-6);
    }
    /* evaluate's loss is the mean of -log p(label) of those probabilities */
    double loss, acc, want = 0;
    size_t hits = 0;
    const int32_t *y = nnkit_dataset_labels(ds);
    for (size_t i = 0; i < n; i++) {
      want -= log(pe[i * 4 + (size_t)y[i]]);
      size_t best = 0;
      for (size_t j = 1; j < 4; j++)
        if (pe[i * 4 + j] > pe[i * 4 + best])
          best = j;
      hits += best == (size_t)y[i];
    }
    ck_ok(nnkit_ensemble_evaluate(&loss, &acc, ens, ds));
    ck_assert_double_eq_tol(loss, want / (double)n, 1e-9);
    ck_assert_double_eq(acc, (double)hits / (double)n);
    nnkit_ensemble_free(ens);
  }
  /* The vote: each net's argmax with its weight (1, 2, 4 of 7: no ties). */
  const double wv[3] = {1, 2, 4};
  nnkit_ensemble *vote = NULL;
  ck_ok(nnkit_ensemble_create(&vote, NNKIT_ENSEMBLE_VOTE));
  for (int m = 0; m < 3; m++)
    ck_ok(nnkit_ensemble_add(vote, nets[m], wv[m]));
  int32_t *cls = malloc(n * sizeof *cls);
  ck_ok(nnkit_ensemble_predict_proba(pe, n * 4, vote, x, n));
  ck_ok(nnkit_ensemble_predict(cls, vote, x, n));
  for (size_t i = 0; i < n; i++) {
    double share[4] = {0, 0, 0, 0};
    for (int m = 0; m < 3; m++) {
      size_t best = 0;
      for (size_t j = 1; j < 4; j++)
        if (p[m][i * 4 + j] > p[m][i * 4 + best])
          best = j;
      share[best] += wv[m] / 7.0;
    }
    size_t win = 0;
    for (size_t j = 0; j < 4; j++) {
      ck_assert_double_eq_tol(pe[i * 4 + j], share[j], 1e-6);
      if (share[j] > share[win] + 1e-9)
        win = j;
    }
    ck_assert_int_eq(cls[i], (int32_t)win);
  }
  free(cls);
  nnkit_ensemble_free(vote);
  for (int m = 0; m < 3; m++) {
    free(p[m]);
    nnkit_net_free(nets[m]);
  }
  free(pe);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(mismatched_nets_are_refused)
{
  nnkit_ensemble *ens = (nnkit_ensemble *)1;
  ck_fails(nnkit_ensemble_create(&ens, (nnkit_ensemble_kind)9), NNKIT_E_INVALID,
           "NNKIT_ENSEMBLE_MEAN");
  ck_assert_ptr_null(ens);
  ck_ok(nnkit_ensemble_create(&ens, NNKIT_ENSEMBLE_MEAN));
  nnkit_net *a = mlp(1, 2, 4), *wide = mlp(2, 3, 4), *out5 = mlp(3, 2, 5);
  nnkit_net *mse = mlp(4, 2, 4), *empty = NULL;
  size_t two = 2;
  ck_ok(nnkit_net_create(&empty, &two, 1, 5));
  ck_ok(nnkit_net_set_loss(mse, NNKIT_LOSS_MSE));
  float x[2] = {0.5f, -0.5f}, p[4];
  int32_t c;
  ck_fails(nnkit_ensemble_predict(&c, ens, x, 1), NNKIT_E_STATE, "no members");
  ck_fails(nnkit_ensemble_add(ens, empty, 1), NNKIT_E_INVALID, "no layers");
  ck_fails(nnkit_ensemble_add(ens, a, 0), NNKIT_E_INVALID, "weight 0 is outside");
  ck_fails(nnkit_ensemble_add(ens, a, NAN), NNKIT_E_INVALID, "weight");
  ck_fails(nnkit_ensemble_add(NULL, a, 1), NNKIT_E_INVALID, "non-NULL");
  ck_ok(nnkit_ensemble_add(ens, a, 1));
  ck_fails(nnkit_ensemble_add(ens, wide, 1), NNKIT_E_SHAPE,
           "the net's input shape 3 differs from member 0's 2");
  ck_fails(nnkit_ensemble_add(ens, out5, 1), NNKIT_E_SHAPE,
           "the net has 5 outputs, member 0 has 4");
  ck_fails(nnkit_ensemble_add(ens, mse, 1), NNKIT_E_SHAPE,
           "the net's loss (MSE) differs from member 0's (cross-entropy)");
  ck_assert_uint_eq(nnkit_ensemble_size(ens), 1); /* unchanged */
  ck_fails(nnkit_ensemble_predict_proba(p, 3, ens, x, 1), NNKIT_E_INVALID, "4 are");
  ck_ok(nnkit_ensemble_predict_proba(p, 4, ens, x, 1));
  /* A dataset that does not fit. */
  nnkit_dataset *ds = tu_blobs4(8, 0.5, 1), *wide_ds = NULL;
  float xs[9] = {0};
  int32_t ys[3] = {0, 1, 2};
  size_t three = 3;
  ck_ok(nnkit_dataset_from_buffers(&wide_ds, xs, ys, 3, &three, 1, 3));
  ck_fails(nnkit_ensemble_evaluate(NULL, NULL, ens, wide_ds), NNKIT_E_SHAPE,
           "have 3 values, the members take 2");
  ck_ok(nnkit_ensemble_evaluate(NULL, NULL, ens, ds));
  nnkit_dataset_free(ds);
  nnkit_dataset_free(wide_ds);
  nnkit_net_free(a);
  nnkit_net_free(wide);
  nnkit_net_free(out5);
  nnkit_net_free(mse);
  nnkit_net_free(empty);
  nnkit_ensemble_free(ens);
}
END_TEST

START_TEST(ensemble_files_round_trip)
{
  nnkit_dataset *ds = tu_blobs4(120, 0.8, 5);
  nnkit_normalizer *nz = NULL;
  ck_ok(nnkit_normalizer_create(&nz, NNKIT_NORM_STANDARDIZE));
  ck_ok(nnkit_normalizer_fit(nz, ds));
  nnkit_ensemble *ens = NULL;
  ck_ok(nnkit_ensemble_create(&ens, NNKIT_ENSEMBLE_VOTE));
  const char *names[4] = {"east", "north", "west", "south"};
  for (int m = 0; m < 3; m++) {
    nnkit_net *net = trained(20 + (uint64_t)m, ds);
    if (m == 1) {
      ck_ok(nnkit_net_set_normalizer(net, nz));
      ck_ok(nnkit_net_set_class_names(net, names, 4));
    }
    ck_ok(nnkit_ensemble_add(ens, net, 0.5 + m));
    nnkit_net_free(net);
  }
  char path[512], model[512];
  tu_tmp_path(path, sizeof path, "ens.safetensors");
  tu_tmp_path(model, sizeof model, "model.safetensors");
  ck_ok(nnkit_ensemble_save(ens, path));
  nnkit_ensemble *back = NULL;
  ck_ok(nnkit_ensemble_load(&back, path));
  ck_assert_uint_eq(nnkit_ensemble_size(back), 3);
  ck_assert_int_eq(nnkit_ensemble_get_kind(back), NNKIT_ENSEMBLE_VOTE);
  for (size_t m = 0; m < 3; m++)
    ck_assert_double_eq(nnkit_ensemble_weight(back, m), 0.5 + (double)m);
  ck_assert_str_eq(nnkit_net_class_name(nnkit_ensemble_member(back, 1), 3), "south");
  ck_assert_ptr_nonnull(nnkit_net_normalizer(nnkit_ensemble_member(back, 1)));
  ck_assert_ptr_null(nnkit_net_normalizer(nnkit_ensemble_member(back, 0)));
  size_t n = nnkit_dataset_count(ds);
  float *a = malloc(n * 4 * sizeof *a), *b = malloc(n * 4 * sizeof *b);
  ck_ok(nnkit_ensemble_predict_proba(a, n * 4, ens, nnkit_dataset_data(ds), n));
  ck_ok(nnkit_ensemble_predict_proba(b, n * 4, back, nnkit_dataset_data(ds), n));
  ck_assert(memcmp(a, b, n * 4 * sizeof *a) == 0);
  /* A model file is not an ensemble file, and the other way round. */
  ck_ok(nnkit_net_save(nnkit_ensemble_member(ens, 0), NULL, model));
  nnkit_ensemble *bad = (nnkit_ensemble *)1;
  ck_fails(nnkit_ensemble_load(&bad, model), NNKIT_E_FORMAT,
           "a model file of one net, not an ensemble file; load it with nnkit_net_load");
  ck_assert_ptr_null(bad);
  nnkit_net *net = NULL;
  ck_fails(nnkit_net_load(&net, NULL, path), NNKIT_E_FORMAT,
           "is an ensemble of nets, not a model file");
  /* A damaged byte anywhere in the tensors fails the checksum. */
  FILE *f = fopen(path, "r+b");
  ck_assert_ptr_nonnull(f);
  ck_assert_int_eq(fseek(f, -5, SEEK_END), 0);
  int ch = fgetc(f);
  ck_assert_int_eq(fseek(f, -5, SEEK_END), 0);
  fputc(ch ^ 0x10, f);
  fclose(f);
  ck_fails(nnkit_ensemble_load(&bad, path), NNKIT_E_FORMAT, "checksum mismatch");
  /* Empty ensembles are not written; nothing is left behind. */
  nnkit_ensemble *empty = NULL;
  ck_ok(nnkit_ensemble_create(&empty, NNKIT_ENSEMBLE_MEAN));
  char path2[512];
  tu_tmp_path(path2, sizeof path2, "empty.safetensors");
  ck_fails(nnkit_ensemble_save(empty, path2), NNKIT_E_STATE, "no members");
  ck_assert_int_ne(access(path2, F_OK), 0);
  free(a);
  free(b);
  nnkit_ensemble_free(empty);
  nnkit_ensemble_free(back);
  nnkit_ensemble_free(ens);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(ds);
}
END_TEST

static char sweep_path[512];

static nnkit_status load_op(const void *arg)
{
  (void)arg;
  nnkit_ensemble *e = NULL;
  nnkit_status st = nnkit_ensemble_load(&e, sweep_path);
  nnkit_ensemble_free(e);
  return st;
}

static nnkit_status add_op(const void *arg)
{
  nnkit_ensemble *e = NULL;
  nnkit_status st = nnkit_ensemble_create(&e, NNKIT_ENSEMBLE_MEAN);
  if (st == NNKIT_OK)
    st = nnkit_ensemble_add(e, arg, 1);
  nnkit_ensemble_free(e);
  return st;
}

START_TEST(allocation_failures_leave_nothing_behind)
{
  nnkit_net *net = mlp(7, 2, 4);
  nnkit_ensemble *ens = NULL;
  ck_ok(nnkit_ensemble_create(&ens, NNKIT_ENSEMBLE_MEAN));
  ck_ok(nnkit_ensemble_add(ens, net, 1));
  ck_ok(nnkit_ensemble_add(ens, net, 2));
  tu_tmp_path(sweep_path, sizeof sweep_path, "sweep.safetensors");
  ck_ok(nnkit_ensemble_save(ens, sweep_path));
  tu_alloc_sweep(load_op, NULL, "nnkit_ensemble_load", NNKIT_E_FORMAT);
  tu_alloc_sweep(add_op, net, "nnkit_ensemble_add", NNKIT_OK);
  nnkit_ensemble_free(ens);
  nnkit_net_free(net);
}
END_TEST

/* ---- snapshots ------------------------------------------------------------ */

/* A trainer over mlp() with SGD on n blobs: batch and epochs set; with
 * sched != 0 a schedule of that kind with (key, value) and PER_BATCH
 * per_batch attached. */
typedef struct rig {
  nnkit_dataset *ds;
  nnkit_net *net;
  nnkit_optimizer *opt;
  nnkit_trainer *tr;
} rig;

static void rig_make(rig *g, size_t n, uint64_t seed, double batch, double epochs,
                     nnkit_sched_kind sched, nnkit_sched_param key, double value,
                     int per_batch)
{
  g->ds = tu_blobs4(n, 0.8, seed);
  g->net = mlp(seed + 10, 2, 4);
  ck_ok(nnkit_optimizer_create(&g->opt, NNKIT_OPTIM_SGD));
  if (sched) {
    nnkit_schedule *s = NULL;
    ck_ok(nnkit_schedule_create(&s, sched));
    ck_ok(nnkit_schedule_set(s, key, value));
    ck_ok(nnkit_schedule_set(s, NNKIT_SCHED_PER_BATCH, per_batch));
    ck_ok(nnkit_optimizer_set_schedule(g->opt, s));
  }
  ck_ok(nnkit_trainer_create(&g->tr, g->net, g->opt));
  ck_ok(nnkit_trainer_set(g->tr, NNKIT_TRAIN_BATCH_SIZE, batch));
  ck_ok(nnkit_trainer_set(g->tr, NNKIT_TRAIN_EPOCHS, epochs));
}

static void rig_free(rig *g)
{
  nnkit_trainer_free(g->tr);
  nnkit_optimizer_free(g->opt);
  nnkit_net_free(g->net);
  nnkit_dataset_free(g->ds);
}

typedef struct recorder {
  const nnkit_trainer *tr;
  float rec[16][200];
  size_t n, np;
  uint64_t every;
} recorder;

/* Batch callback: the parameters after every `every`-th optimizer step. */
static int record_params(const nnkit_trainer *tr, size_t epoch, size_t batch,
                         double loss, void *user)
{
  (void)epoch;
  (void)batch;
  (void)loss;
  recorder *r = user;
  nnkit_optimizer *opt = nnkit_trainer_optimizer(tr);
  if (opt->steps % r->every == 0 && r->n < 16)
    memcpy(r->rec[r->n++], nnkit_net_params(nnkit_trainer_net(tr)),
           r->np * sizeof(float));
  return 0;
}

START_TEST(snapshots_are_taken_at_cycle_ends)
{
  rig g; /* 10 steps an epoch, 3 epochs; SGDR periods of 6 steps */
  rig_make(&g, 160, 9, 16, 3, NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_T_0, 6, 1);
  nnkit_trainer *tr = g.tr;
  nnkit_net *net = g.net;
  nnkit_dataset *ds = g.ds;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, 3));
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(tr), 0);
  nnkit_ensemble *ens = (nnkit_ensemble *)1;
  ck_fails(nnkit_trainer_apply_snapshots(&ens, tr, 1, NNKIT_ENSEMBLE_MEAN),
           NNKIT_E_STATE, "holds 0 snapshots");
  ck_assert_ptr_null(ens);
  static recorder r;
  memset(&r, 0, sizeof r);
  r.np = nnkit_net_num_params(net);
  ck_assert_uint_le(r.np, 200);
  r.every = 6;
  ck_ok(nnkit_trainer_add_batch_callback(tr, record_params, &r));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  /* 30 steps: cycles end after steps 6, 12, 18, 24, 30; the newest 3 kept. */
  ck_assert_uint_eq(r.n, 5);
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(tr), 3);
  ck_fails(nnkit_trainer_apply_snapshots(&ens, tr, 4, NNKIT_ENSEMBLE_MEAN),
           NNKIT_E_STATE, "holds 3 snapshots, 4 were asked for");
  ck_fails(nnkit_trainer_apply_snapshots(&ens, tr, 0, NNKIT_ENSEMBLE_MEAN),
           NNKIT_E_INVALID, "at least 1");
  ck_ok(nnkit_trainer_apply_snapshots(&ens, tr, 3, NNKIT_ENSEMBLE_MEAN));
  ck_assert_uint_eq(nnkit_ensemble_size(ens), 3);
  for (size_t m = 0; m < 3; m++)
    ck_assert(memcmp(nnkit_net_params(nnkit_ensemble_member(ens, m)), r.rec[2 + m],
                     r.np * sizeof(float)) == 0);
  nnkit_ensemble_free(ens);
  ck_ok(nnkit_trainer_apply_snapshots(&ens, tr, 2, NNKIT_ENSEMBLE_VOTE));
  ck_assert_uint_eq(nnkit_ensemble_size(ens), 2);
  ck_assert(memcmp(nnkit_net_params(nnkit_ensemble_member(ens, 1)), r.rec[4],
                   r.np * sizeof(float)) == 0);
  nnkit_ensemble_free(ens);
  /* Changing the count drops them; files need a folder. */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, 2));
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(tr), 0);
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOT_FILES, 1));
  ck_fails(nnkit_trainer_fit(tr, ds, NULL), NNKIT_E_STATE, "snapshot files need a folder");
  ck_fails(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, 1001), NNKIT_E_INVALID,
           "trainer snapshots 1001");
  rig_free(&g);
}
END_TEST

START_TEST(snapshot_files_and_epoch_cycles)
{
  rig g; /* 2 steps an epoch, 7 epochs; a cosine per epoch, minima after 2, 6 */
  rig_make(&g, 64, 9, 32, 7, NNKIT_SCHEDULE_COSINE, NNKIT_SCHED_T_MAX, 2, 0);
  nnkit_trainer *tr = g.tr;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, 5));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOT_FILES, 1));
  char dir[512];
  tu_tmp_path(dir, sizeof dir, "snapdir");
  ck_assert_int_eq(mkdir(dir, 0700), 0);
  ck_ok(nnkit_trainer_set_checkpoint_dir(tr, dir));
  ck_ok(nnkit_trainer_fit(tr, g.ds, NULL));
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(tr), 2);
  /* Written after the steps of epochs 2 and 6: steps 4 and 12. */
  char p4[600], p12[600];
  snprintf(p4, sizeof p4, "%s/snapshot-000004.safetensors", dir);
  snprintf(p12, sizeof p12, "%s/snapshot-000012.safetensors", dir);
  nnkit_net *a = NULL;
  ck_ok(nnkit_net_load(&a, NULL, p12));
  nnkit_ensemble *ens = NULL;
  ck_ok(nnkit_trainer_apply_snapshots(&ens, tr, 2, NNKIT_ENSEMBLE_MEAN));
  ck_assert(memcmp(nnkit_net_params(a), nnkit_net_params(nnkit_ensemble_member(ens, 1)),
                   nnkit_net_num_params(a) * sizeof(float)) == 0);
  ck_assert_int_eq(access(p4, F_OK), 0);
  unlink(p4);
  unlink(p12);
  rmdir(dir);
  nnkit_net_free(a);
  nnkit_ensemble_free(ens);
  rig_free(&g);
}
END_TEST

/* ---- weight averaging ------------------------------------------------------ */

START_TEST(ema_follows_its_formula)
{
  rig g; /* 3 steps */
  rig_make(&g, 48, 4, 16, 1, 0, 0, 0, 0);
  nnkit_trainer *tr = g.tr;
  nnkit_net *net = g.net;
  nnkit_dataset *ds = g.ds;
  ck_ok(nnkit_optimizer_set(g.opt, NNKIT_OPT_LR, 0.5));
  nnkit_net *avg = (nnkit_net *)1;
  ck_fails(nnkit_trainer_apply_average(&avg, tr, NULL), NNKIT_E_STATE,
           "set NNKIT_TRAIN_EMA_DECAY");
  ck_assert_ptr_null(avg);
  ck_fails(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 1), NNKIT_E_INVALID,
           "trainer EMA decay 1 is outside its range [0, 1)");
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 0.75));
  double lo, hi;
  int flags;
  ck_ok(nnkit_trainer_bounds(&lo, &hi, &flags, NNKIT_TRAIN_EMA_DECAY));
  ck_assert_int_eq(flags & NNKIT_BOUND_INTEGER, 0);
  static recorder r;
  memset(&r, 0, sizeof r);
  r.np = nnkit_net_num_params(net);
  r.every = 1;
  memcpy(r.rec[r.n++], nnkit_net_params(net), r.np * sizeof(float)); /* start */
  ck_ok(nnkit_trainer_add_batch_callback(tr, record_params, &r));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_uint_eq(r.n, 4);
  ck_ok(nnkit_trainer_apply_average(&avg, tr, NULL));
  const float *a = nnkit_net_params(avg);
  for (size_t i = 0; i < r.np; i++) {
    /* avg = p0, then avg = 0.75 avg + 0.25 p_t for t = 1, 2, 3 */
    double e = r.rec[0][i];
    for (int t = 1; t <= 3; t++)
      e = 0.75 * e + 0.25 * r.rec[t][i];
    ck_assert_double_eq_tol(a[i], e, 1e-6 * (1 + fabs(e)));
  }
  ck_assert(memcmp(a, nnkit_net_params(net), r.np * sizeof(float)) != 0);
  ck_assert_int_eq(nnkit_net_is_training(avg), 0);
  nnkit_net_free(avg);
  /* Changing the decay drops the average. */
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 0.5));
  ck_fails(nnkit_trainer_apply_average(&avg, tr, NULL), NNKIT_E_STATE, "no average");
  rig_free(&g);
}
END_TEST

START_TEST(average_recomputes_batchnorm_statistics)
{
  /* Batch norm right on the input: the statistics the pass computes are
   * those of the data, the cumulative mean over the batches. */
  size_t n = 96, bs = 32, in = 2;
  nnkit_dataset *ds = tu_blobs4(n, 0.8, 6);
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 3));
  ck_ok(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  ck_ok(nnkit_net_add_dense(net, 4));
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)bs));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 0.9));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  nnkit_net *avg = NULL;
  ck_ok(nnkit_trainer_apply_average(&avg, tr, ds));
  float mean[2], var[2];
  ck_ok(nnkit_net_batchnorm_stats(mean, var, 2, avg, 0));
  const float *x = nnkit_dataset_data(ds);
  for (size_t c = 0; c < 2; c++) {
    double em = 0, ev = 0;
    for (size_t b = 0; b < n / bs; b++) {
      double s = 0, ss = 0;
      for (size_t i = b * bs; i < (b + 1) * bs; i++)
        s += x[i * 2 + c];
      double m = s / (double)bs;
      for (size_t i = b * bs; i < (b + 1) * bs; i++)
        ss += (x[i * 2 + c] - m) * (x[i * 2 + c] - m);
      em += m / (double)(n / bs);
      ev += ss / (double)(bs - 1) / (double)(n / bs);
    }
    ck_assert_double_eq_tol(mean[c], em, 1e-4);
    ck_assert_double_eq_tol(var[c], ev, 1e-3 * ev);
  }
  /* The momentum of the copy is as it was. */
  double mo;
  ck_ok(nnkit_net_layer_get(&mo, avg, 0, NNKIT_LAYER_MOMENTUM));
  ck_assert_double_eq_tol(mo, 0.1, 1e-12);
  nnkit_dataset *wide = NULL;
  float xs[6] = {0};
  int32_t ys[2] = {0, 1};
  size_t three = 3;
  ck_ok(nnkit_dataset_from_buffers(&wide, xs, ys, 2, &three, 1, 2));
  nnkit_net *bad = NULL;
  ck_fails(nnkit_trainer_apply_average(&bad, tr, wide), NNKIT_E_SHAPE, "the net takes 2");
  nnkit_dataset_free(wide);
  nnkit_net_free(avg);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* ---- hard-sample mining ---------------------------------------------------- */

START_TEST(per_sample_losses_sum_to_the_batch_loss)
{
  nnkit_dataset *ds = tu_blobs4(300, 1.0, 8);
  size_t n = nnkit_dataset_count(ds);
  for (int loss = 1; loss <= 2; loss++) {
    nnkit_net *net = mlp(30, 2, 4);
    ck_ok(nnkit_net_set_loss(net, (nnkit_loss)loss));
    double *each = malloc(n * sizeof *each), sum = 0, mean;
    ck_fails(nnkit_net_sample_losses(each, n - 1, net, ds), NNKIT_E_INVALID, "300");
    ck_ok(nnkit_net_sample_losses(each, n, net, ds));
    for (size_t i = 0; i < n; i++)
      sum += each[i];
    ck_ok(nnkit_net_evaluate(&mean, NULL, net, ds));
    ck_assert_double_eq_tol(sum / (double)n, mean, 1e-9);
    /* ... and the loss of one batch of all of them, as backward sees it */
    nnkit_net_set_training(net, 0);
    double batch = tu_loss_at(net, nnkit_dataset_data(ds), n, nnkit_dataset_labels(ds),
                              NULL);
    ck_assert_double_eq_tol(sum, batch * (double)n, 1e-5 * sum);
    /* each is the loss of that sample alone */
    for (size_t i = 0; i < n; i += 37) {
      double one = tu_loss_at(net, nnkit_dataset_data(ds) + 2 * i, 1,
                              nnkit_dataset_labels(ds) + i, NULL);
      ck_assert_double_eq_tol(each[i], one, 1e-5 * (1 + one));
    }
    free(each);
    nnkit_net_free(net);
  }
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(uncertainty_matches_its_formulas)
{
  const float p[3 * 3] = {0.7f, 0.2f, 0.1f, 1.0f, 0.0f, 0.0f, 0.4f, 0.4f, 0.2f};
  double s[3];
  ck_ok(nnkit_mining_uncertainty(s, 3, p, 3, 3, NNKIT_UNCERTAINTY_MAX_PROB));
  ck_assert_double_eq_tol(s[0], 1 - 0.7, 1e-7);
  ck_assert_double_eq_tol(s[1], 0, 1e-12);
  ck_assert_double_eq_tol(s[2], 0.6, 1e-7);
  ck_ok(nnkit_mining_uncertainty(s, 3, p, 3, 3, NNKIT_UNCERTAINTY_MARGIN));
  ck_assert_double_eq_tol(s[0], 1 - (0.7 - 0.2), 1e-7);
  ck_assert_double_eq_tol(s[1], 0, 1e-12);
  ck_assert_double_eq_tol(s[2], 1, 1e-7);
  ck_ok(nnkit_mining_uncertainty(s, 3, p, 3, 3, NNKIT_UNCERTAINTY_ENTROPY));
  ck_assert_double_eq_tol(s[0], -(0.7 * log(0.7) + 0.2 * log(0.2) + 0.1 * log(0.1)),
                          1e-6);
  ck_assert_double_eq_tol(s[1], 0, 1e-12);
  ck_assert_double_eq_tol(s[2], -(2 * 0.4 * log(0.4) + 0.2 * log(0.2)), 1e-6);
  ck_fails(nnkit_mining_uncertainty(s, 2, p, 3, 3, NNKIT_UNCERTAINTY_ENTROPY),
           NNKIT_E_INVALID, "3 are needed");
  ck_fails(nnkit_mining_uncertainty(s, 3, p, 3, 3, (nnkit_uncertainty)7),
           NNKIT_E_INVALID, "unknown kind 7");
  ck_fails(nnkit_mining_uncertainty(s, 3, p, 3, 1, NNKIT_UNCERTAINTY_MARGIN),
           NNKIT_E_INVALID, "at least 2 classes");
  /* The net's: predict_proba, then the formula. */
  nnkit_dataset *ds = tu_blobs4(300, 1.0, 2);
  nnkit_net *net = trained(5, ds);
  size_t n = nnkit_dataset_count(ds);
  float *pr = malloc(n * 4 * sizeof *pr);
  double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
  ck_ok(nnkit_net_predict_proba(pr, n * 4, net, nnkit_dataset_data(ds), n));
  for (int k = 1; k <= 3; k++) {
    ck_ok(nnkit_mining_uncertainty(a, n, pr, n, 4, (nnkit_uncertainty)k));
    ck_ok(nnkit_net_uncertainty(b, n, net, nnkit_dataset_data(ds), n,
                                (nnkit_uncertainty)k));
    ck_assert(memcmp(a, b, n * sizeof *a) == 0);
  }
  ck_fails(nnkit_net_uncertainty(b, n - 1, net, nnkit_dataset_data(ds), n,
                                 NNKIT_UNCERTAINTY_ENTROPY), NNKIT_E_INVALID, "needed");
  free(pr);
  free(a);
  free(b);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

START_TEST(top_k_and_subsets)
{
  const double s[6] = {0.5, 2.0, NAN, 2.0, -1.0, 0.7};
  size_t idx[6];
  ck_ok(nnkit_mining_top_k(idx, 6, s, 6));
  const size_t want[6] = {2, 1, 3, 5, 0, 4};
  for (int i = 0; i < 6; i++)
    ck_assert_uint_eq(idx[i], want[i]);
  ck_fails(nnkit_mining_top_k(idx, 7, s, 6), NNKIT_E_INVALID, "k 7 is outside [1, 6]");
  ck_fails(nnkit_mining_top_k(idx, 0, s, 6), NNKIT_E_INVALID, "k 0");
  nnkit_dataset *ds = tu_blobs4(6, 0.5, 1), *sub = NULL;
  ck_ok(nnkit_mining_subset(&sub, ds, s, 3));
  ck_assert_uint_eq(nnkit_dataset_count(sub), 3);
  for (size_t i = 0; i < 3; i++) {
    ck_assert_int_eq(nnkit_dataset_labels(sub)[i], nnkit_dataset_labels(ds)[want[i]]);
    ck_assert(memcmp(nnkit_dataset_data(sub) + 2 * i,
                     nnkit_dataset_data(ds) + 2 * want[i], 2 * sizeof(float)) == 0);
  }
  nnkit_dataset *bad = (nnkit_dataset *)1;
  ck_fails(nnkit_mining_subset(&bad, ds, s, 7), NNKIT_E_INVALID, "dataset's count");
  ck_assert_ptr_null(bad);
  nnkit_dataset_free(sub);
  nnkit_dataset_free(ds);
}
END_TEST

static void train_ohem(float *out, size_t np, double k, uint64_t seed)
{
  nnkit_dataset *ds = tu_blobs4(200, 1.0, seed);
  nnkit_net *net = mlp(seed, 2, 4);
  ck_ok(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  ck_ok(nnkit_net_add_dropout(net, 0.2));
  ck_ok(nnkit_net_add_dense(net, 4));
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM));
  ck_ok(nnkit_trainer_create(&tr, net, opt));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 3));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_OHEM_K, k));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_uint_eq(nnkit_net_num_params(net), np);
  memcpy(out, nnkit_net_params(net), np * sizeof *out);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}

START_TEST(ohem_with_k_the_batch_size_is_plain_training)
{
  size_t np = 2 * 12 + 12 + 12 * 4 + 4 + 4 * 4 + 4;
  float *plain = malloc(np * sizeof *plain), *k16 = malloc(np * sizeof *k16);
  float *k99 = malloc(np * sizeof *k99), *k4 = malloc(np * sizeof *k4);
  train_ohem(plain, np, 0, 3);
  train_ohem(k16, np, 16, 3);
  train_ohem(k99, np, 99, 3);
  train_ohem(k4, np, 4, 3);
  ck_assert(memcmp(plain, k16, np * sizeof *plain) == 0);
  ck_assert(memcmp(plain, k99, np * sizeof *plain) == 0);
  ck_assert(memcmp(plain, k4, np * sizeof *plain) != 0);
  free(plain);
  free(k16);
  free(k99);
  free(k4);
}
END_TEST

/* The mask back-propagates exactly the k hardest samples: the gradients
 * equal those of a batch of just them. */
START_TEST(ohem_back_propagates_the_k_hardest)
{
  nnkit_dataset *ds = tu_blobs4(24, 1.2, 5);
  nnkit_net *net = mlp(7, 2, 4);
  const float *x = nnkit_dataset_data(ds);
  const int32_t *y = nnkit_dataset_labels(ds);
  size_t b = 24, k = 5, np = nnkit_net_num_params(net);
  double each[24], loss;
  size_t first;
  nnkit__scored pairs[24];
  ck_ok(nnkit_net_forward(net, x, b, NULL, 0));
  ck_ok(nnkit__net_loss_each(net, y, NULL, &loss, &first, each));
  nnkit__ohem_mask(net->probs, b, 4, each, k, pairs);
  nnkit__net_backprop(net, first);
  float *g = malloc(np * sizeof *g);
  memcpy(g, nnkit_net_grads(net), np * sizeof *g);
  /* the k hardest by hand */
  float xs[5 * 2];
  int32_t ys[5];
  int used[24] = {0};
  for (size_t r = 0; r < k; r++) {
    size_t best = 0;
    while (used[best])
      best++;
    for (size_t i = 0; i < b; i++)
      if (!used[i] && each[i] > each[best])
        best = i;
    used[best] = 1;
    xs[2 * r] = x[2 * best];
    xs[2 * r + 1] = x[2 * best + 1];
    ys[r] = y[best];
  }
  ck_ok(nnkit_net_forward(net, xs, k, NULL, 0));
  ck_ok(nnkit_net_backward(net, ys, NULL, &loss));
  const float *h = nnkit_net_grads(net);
  for (size_t i = 0; i < np; i++)
    ck_assert_double_eq_tol(g[i], h[i], 1e-5 * (1 + fabs(h[i])));
  free(g);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}
END_TEST

/* With snapshots, the average and OHEM on, a second fit allocates nothing
 * (their memory is sized at the first). */
START_TEST(steady_state_allocates_nothing)
{
  rig g;
  rig_make(&g, 160, 3, 16, 1, NNKIT_SCHEDULE_COSINE_RESTARTS, NNKIT_SCHED_T_0, 4, 1);
  nnkit_trainer *tr = g.tr;
  nnkit_dataset *ds = g.ds;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, 2));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 0.9));
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_OHEM_K, 5));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  uint64_t before = nnkit__alloc_count();
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 2));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  ck_assert_uint_eq(nnkit__alloc_count(), before);
  ck_assert_uint_eq(nnkit_trainer_num_snapshots(tr), 2);
  rig_free(&g);
}
END_TEST

/* Rewrites the checkpoint at `from` into `to` without the trainer settings
 * of this issue (as a checkpoint of the nnkit before them), with a fresh
 * checksum. */
static void strip_new_settings(const char *from, const char *to)
{
  nnkit__st_reader r = {0};
  r.path = from;
  r.what = "checkpoint";
  static const char *const dtypes[] = {"F32", "F64", "U64", NULL};
  ck_ok(nnkit__st_read_file(&r));
  ck_ok(nnkit__st_parse_header(&r));
  ck_ok(nnkit__st_read_tensors(&r, dtypes));
  nnkit__st_writer w = {to, "checkpoint", NULL, 0, 0, NULL};
  for (size_t i = 0; i < r.n; i++)
    ck_ok(nnkit__st_add(&w, "", r.t[i].name, r.t[i].dtype, r.data + r.t[i].begin,
                        r.t[i].ndim, r.t[i].dims));
  cJSON *h = cJSON_CreateObject();
  cJSON *meta = cJSON_Duplicate(r.meta, 1);
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "crc32");
  nnkit_status st = NNKIT_OK;
  cJSON *trainer = nnkit__st_meta_json(&r, "trainer", &st);
  ck_assert_ptr_nonnull(trainer);
  cJSON *set = cJSON_GetObjectItemCaseSensitive(trainer, "settings");
  const char *keys[] = {"snapshots", "snapshot files", "EMA decay",
                        "hard examples per batch"};
  for (int k = 0; k < 4; k++) {
    ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(set, keys[k]));
    cJSON_DeleteItemFromObjectCaseSensitive(set, keys[k]);
  }
  cJSON_DeleteItemFromObjectCaseSensitive(meta, "trainer");
  ck_assert(nnkit__st_add_json_string(meta, "trainer", trainer));
  cJSON_AddItemToObject(h, "__metadata__", meta);
  ck_ok(nnkit__st_write(&w, h, 1));
  cJSON_Delete(h);
  nnkit__st_writer_free(&w);
  nnkit__st_reader_free(&r);
}

START_TEST(checkpoints_from_before_the_keys_resume_with_defaults)
{
  rig g;
  rig_make(&g, 64, 2, 64, 1, 0, 0, 0, 0);
  nnkit_trainer *tr = g.tr;
  nnkit_dataset *ds = g.ds;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_OHEM_K, 3));
  ck_ok(nnkit_trainer_fit(tr, ds, NULL));
  char now[512], old[512];
  tu_tmp_path(now, sizeof now, "now.safetensors");
  tu_tmp_path(old, sizeof old, "old.safetensors");
  ck_ok(nnkit_trainer_save_checkpoint(tr, now));
  strip_new_settings(now, old);
  /* The saved key comes back; the stripped file gives the default. */
  double v;
  ck_ok(nnkit_trainer_set(tr, NNKIT_TRAIN_OHEM_K, 7));
  ck_ok(nnkit_trainer_resume(tr, now));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_OHEM_K));
  ck_assert_double_eq(v, 3);
  ck_ok(nnkit_trainer_resume(tr, old));
  ck_ok(nnkit_trainer_get(&v, tr, NNKIT_TRAIN_OHEM_K));
  ck_assert_double_eq(v, 0);
  rig_free(&g);
}
END_TEST

static Suite *ensemble_suite(void)
{
  Suite *s = suite_create("ensemble");
  TCase *tc = tcase_create("ensemble");
  tcase_add_test(tc, ensemble_of_one_equals_the_net);
  tcase_add_test(tc, weights_give_the_weighted_mean_and_vote);
  tcase_add_test(tc, mismatched_nets_are_refused);
  tcase_add_test(tc, ensemble_files_round_trip);
  tcase_add_test(tc, allocation_failures_leave_nothing_behind);
  tcase_add_test(tc, snapshots_are_taken_at_cycle_ends);
  tcase_add_test(tc, snapshot_files_and_epoch_cycles);
  tcase_add_test(tc, ema_follows_its_formula);
  tcase_add_test(tc, average_recomputes_batchnorm_statistics);
  tcase_add_test(tc, per_sample_losses_sum_to_the_batch_loss);
  tcase_add_test(tc, uncertainty_matches_its_formulas);
  tcase_add_test(tc, top_k_and_subsets);
  tcase_add_test(tc, ohem_with_k_the_batch_size_is_plain_training);
  tcase_add_test(tc, ohem_back_propagates_the_k_hardest);
  tcase_add_test(tc, steady_state_allocates_nothing);
  tcase_add_test(tc, checkpoints_from_before_the_keys_resume_with_defaults);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(ensemble_suite()); }
