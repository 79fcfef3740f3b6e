/* digits_best: the handwritten-digits case study, finished -- everything
 * the lecture recommends, together, and what each of them adds.
 *
 * Data: --data (default data/digits, the split scripts/quickstart.sh
 * uses: 8,000 training digits and 2,000 held-out test digits); a
 * stratified 10% of the training digits is held out for validation
 * (7,200 / 800).
 *
 * The ablation table: one row per technique, added to everything above
 * it; every row but the last trains a fresh convnet for --ablation-epochs
 * epochs (default 4) and is measured on the test digits by this program:
 *
 *   baseline      conv 3x3 (32) - ReLU - pool - conv 3x3 (64) - ReLU - pool
 *                 - dense 128 - ReLU - dense 10, Xavier-uniform weights,
 *                 pixels scaled to [0, 1], SGD momentum 0.9, lr 0.01 fixed
 *   + normalization     pixels standardized with the training mean and std
 *   + He init           He-normal weights (for the ReLUs)
 *   + batch norm        after each convolution
 *   + dropout           0.3 before the last dense layer
 *   + augmentation      rotation, zoom, shear, translation (a pipeline)
 *   + cosine restarts   SGDR (lr 0.05 to 0, restarts), per batch
 *   + early stopping    the best validation epoch's weights
 *   + snapshot ensemble the cycle-end snapshots, averaged
 *   (weight averaging)  the EMA of the same run's weights, for comparison
 *
 * then the full recipe, longer: --epochs epochs (default 24, 4 cosine
 * cycles) with all of the above; its snapshot ensemble's accuracy is the
 * result, printed last as "test accuracy: X". --quick: 1,500 training
 * digits, 1 epoch per row, 2 for the final run (the test suite's smoke
 * run). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: digits_best [options] [--ablation-epochs N] [--quick]\n"
    "Trains the digits convnet with each of the lecture's recommendations added\n"
    "in turn (an ablation table measured here), then the full recipe with a\n"
    "snapshot ensemble, and prints its test accuracy.\n"
    "  --ablation-epochs N  epochs of each ablation row (default 4; 0: no table)\n"
    "  --quick              1,500 training digits, 1 epoch per row (smoke test)\n";

enum { BATCH = 32, CYCLES = 4 };

/* What a row turns on (each implies the ones before it). */
enum stage {
  BASELINE, NORMALIZE, HE_INIT, BATCH_NORM, DROPOUT, AUGMENT, RESTARTS, NUM_STAGES
};

static const char *const stage_names[NUM_STAGES] = {
    "baseline", "+ normalization", "+ He init", "+ batch norm", "+ dropout",
    "+ augmentation", "+ cosine restarts (SGDR)"};

typedef struct result {
  double acc, seconds;
  double acc_early, acc_snap, acc_avg; /* RESTARTS runs only */
  size_t best_epoch, snapshots; /* best_epoch: 1-based, as the log */
} result;

/* Gives the layer just added the weight initializer init. */
static nnkit_status with_init(nnkit_net *net, const nnkit_init *init)
{
  return nnkit_net_set_init(net, nnkit_net_num_layers(net) - 1, init, NULL);
}

static nnkit_status build(nnkit_net **out, const size_t *shape, enum stage s,
                          uint64_t seed)
{
  nnkit_status st;
  nnkit_net *net = NULL;
  nnkit_init *init = NULL;
  TRY(nnkit_init_create(&init, s >= HE_INIT ? NNKIT_INIT_HE_NORMAL
                                            : NNKIT_INIT_XAVIER_UNIFORM, 0, 0));
  TRY(nnkit_net_create(&net, shape, 3, seed));
  for (int b = 0; b < 2; b++) {
    TRY(nnkit_net_add_conv2d(net, b ? 64 : 32, 3, 3, 1, 1, NNKIT_PAD_SAME,
                             NNKIT_PAD_SAME, 0));
    TRY(with_init(net, init));
    if (s >= BATCH_NORM)
      TRY(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
    TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  }
  TRY(nnkit_net_add_flatten(net));
  TRY(nnkit_net_add_dense(net, 128));
  TRY(with_init(net, init));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  if (s >= DROPOUT)
    TRY(nnkit_net_add_dropout(net, 0.3));
  TRY(nnkit_net_add_dense(net, 10));
  TRY(with_init(net, init));
  *out = net;
  net = NULL;
out:
  nnkit_init_free(init);
  nnkit_net_free(net);
  return st;
}

/* Mild geometric changes a digit survives. */
static nnkit_status make_augmenter(nnkit_augmenter **out)
{
  nnkit_status st;
  nnkit_augmenter *aug = NULL;
  TRY(nnkit_augmenter_create(&aug));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.7, -10, 10));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SCALE, 0.5, 0.92, 1.08));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 0.3, -10, 10));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 0.7, 2, 2));
  *out = aug;
  aug = NULL;
out:
  nnkit_augmenter_free(aug);
  return st;
}

/* Trains the stage-s recipe for `epochs` on train (validation val) and
 * measures it on test. */
static nnkit_status run(result *res, enum stage s, long epochs, const nnkit_dataset *train,
                        const nnkit_dataset *val, const nnkit_dataset *test,
                        uint64_t seed)
{
  nnkit_status st;
  nnkit_net *net = NULL, *avg = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_schedule *sched = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_pipeline *tp = NULL, *vp = NULL;
  nnkit_augmenter *aug = NULL;
  nnkit_ensemble *snap = NULL;
  memset(res, 0, sizeof *res);
  /* [1, H, W] images (an [H, W] set is one channel) */
  size_t shape[3] = {1, nnkit_dataset_dim(train, 0), nnkit_dataset_dim(train, 1)};
  if (nnkit_dataset_ndim(train) == 3) {
    shape[0] = nnkit_dataset_dim(train, 0);
    shape[1] = nnkit_dataset_dim(train, 1);
    shape[2] = nnkit_dataset_dim(train, 2);
  }
  TRY(build(&net, shape, s, seed));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, s >= RESTARTS ? 0.02 : 0.01));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  size_t per_epoch = (nnkit_dataset_count(train) + BATCH - 1) / BATCH;
  if (s >= RESTARTS) {
    TRY(nnkit_schedule_create(&sched, NNKIT_SCHEDULE_COSINE_RESTARTS));
    TRY(nnkit_schedule_set(sched, NNKIT_SCHED_PER_BATCH, 1));
    size_t cycle = (size_t)epochs / CYCLES;
    TRY(nnkit_schedule_set(sched, NNKIT_SCHED_T_0,
                           (double)(per_epoch * (cycle ? cycle : 1))));
    TRY(nnkit_optimizer_set_schedule(opt, sched));
    sched = NULL;
  }
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0));
  if (s >= RESTARTS) {
    TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SNAPSHOTS, CYCLES));
    TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EMA_DECAY, 0.999));
    /* Patience longer than the run: early stopping keeps the best epoch's
     * weights without cutting a cosine cycle short. */
    TRY(nnkit_trainer_set_early_stopping(tr, NNKIT_METRIC_VAL_ACC, (size_t)epochs + 1,
                                         0));
  }
  TRY(nnkit_pipeline_create(&tp, train));
  TRY(nnkit_pipeline_set(tp, NNKIT_PIPE_BATCH_SIZE, BATCH));
  TRY(nnkit_pipeline_set(tp, NNKIT_PIPE_SEED, (double)seed));
  if (s >= AUGMENT) {
    TRY(make_augmenter(&aug));
    TRY(nnkit_pipeline_set_augmenter(tp, aug));
  }
  TRY(nnkit_pipeline_create(&vp, val));
  TRY(nnkit_pipeline_set(vp, NNKIT_PIPE_SHUFFLE, 0));
  TRY(nnkit_pipeline_set(vp, NNKIT_PIPE_BATCH_SIZE, 256));
  double t0 = example_now();
  TRY(nnkit_trainer_fit_pipeline(tr, tp, vp));
  res->seconds = example_now() - t0;
  if (s >= RESTARTS) {
    /* The last epoch's weights, before early stopping's restore: the
     * last snapshot (the run ends at a cycle end). */
    res->snapshots = nnkit_trainer_num_snapshots(tr);
    TRY(nnkit_trainer_apply_snapshots(&snap, tr, res->snapshots, NNKIT_ENSEMBLE_MEAN));
    TRY(nnkit_net_evaluate(NULL, &res->acc,
                           nnkit_ensemble_member(snap, res->snapshots - 1), test));
    TRY(nnkit_net_evaluate(NULL, &res->acc_early, net, test));
    TRY(nnkit_trainer_best_epoch(&res->best_epoch, tr));
    nnkit_ensemble *last = NULL;
    /* the snapshots of the later cycles: the first is the least trained */
    size_t m = res->snapshots > 2 ? res->snapshots - 1 : res->snapshots;
    TRY(nnkit_trainer_apply_snapshots(&last, tr, m, NNKIT_ENSEMBLE_MEAN));
    st = nnkit_ensemble_evaluate(NULL, &res->acc_snap, last, test);
    nnkit_ensemble_free(last);
    res->snapshots = m;
    TRY(st);
    TRY(nnkit_trainer_apply_average(&avg, tr, train));
    TRY(nnkit_net_evaluate(NULL, &res->acc_avg, avg, test));
  } else {
    TRY(nnkit_net_evaluate(NULL, &res->acc, net, test));
  }
out:
  nnkit_ensemble_free(snap);
  nnkit_net_free(avg);
  nnkit_pipeline_free(tp);
  nnkit_pipeline_free(vp);
  nnkit_augmenter_free(aug);
  nnkit_trainer_free(tr);
  nnkit_schedule_free(sched);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 24, 1, 0, NULL, 0, NULL, 0};
  long abl_epochs = 4;
  int quick = 0, kept = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--ablation-epochs")) {
      if (i + 1 >= argc || !parse_long(argv[i], argv[i + 1], 0, 1000, &abl_epochs))
        return 2;
      i++;
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  long epochs = args.epochs;
  if (quick) {
    abl_epochs = 1;
    epochs = 2;
  }

  nnkit_dataset *all = NULL, *test = NULL, *train[2] = {NULL, NULL};
  nnkit_dataset *val[2] = {NULL, NULL}, *test_n = NULL;
  nnkit_normalizer *nz = NULL;
  size_t *ix = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;
  double t_start = example_now();
  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test_n, args.data));
  if (quick && nnkit_dataset_count(all) > 1500) {
    ix = malloc(1500 * sizeof *ix);
    if (!ix) {
      fprintf(stderr, "digits_best: out of memory\n");
      goto out;
    }
    for (size_t i = 0; i < 1500; i++)
      ix[i] = i;
    nnkit_dataset *few = NULL;
    TRY(nnkit_dataset_subset(&few, all, ix, 1500));
    nnkit_dataset_free(all);
    all = few;
  }
  /* A stratified 10% for validation, then two copies of everything:
   * [0] pixels scaled to [0, 1]; [1] standardized with the training
   * split's mean and std (the lecture's normalization). */
  TRY(nnkit_dataset_split(&train[1], &val[1], all, 0.1, (uint64_t)args.seed));
  TRY(nnkit_dataset_concat(&train[0], (const nnkit_dataset *const *)&train[1], 1));
  TRY(nnkit_dataset_concat(&val[0], (const nnkit_dataset *const *)&val[1], 1));
  TRY(nnkit_dataset_concat(&test, (const nnkit_dataset *const *)&test_n, 1));
  TRY(nnkit_dataset_scale(train[0], 1.0f / 255, 0));
  TRY(nnkit_dataset_scale(val[0], 1.0f / 255, 0));
  TRY(nnkit_dataset_scale(test, 1.0f / 255, 0));
  TRY(nnkit_normalizer_create(&nz, NNKIT_NORM_CHANNEL_MEAN));
  TRY(nnkit_normalizer_set(nz, NNKIT_NORM_WITH_STD, 1));
  TRY(nnkit_normalizer_fit(nz, train[1]));
  TRY(nnkit_normalizer_apply(nz, train[1]));
  TRY(nnkit_normalizer_apply(nz, val[1]));
  TRY(nnkit_normalizer_apply(nz, test_n));
  size_t nt = nnkit_dataset_count(train[1]), nv = nnkit_dataset_count(val[1]);
  printf("digits_best: %zu train, %zu validation, %zu test digits from %s; "
         "%d thread(s)\n", nt, nv, nnkit_dataset_count(test), args.data,
         nnkit_get_num_threads());
  double prev = NAN;
  result r = {0};
  if (abl_epochs) {
    printf("ablation: each row adds one technique to the rows above and trains a fresh "
           "net for %ld epoch(s)\n\n", abl_epochs);
    printf("%-30s %8s %14s %10s %10s\n", "technique", "epochs", "test accuracy",
           "added", "time (s)");
  }
  for (int s = BASELINE; abl_epochs && s < NUM_STAGES; s++) {
    int z = s >= NORMALIZE;
    TRY(run(&r, (enum stage)s, abl_epochs, train[z], val[z], z ? test_n : test,
            (uint64_t)args.seed));
    printf("%-30s %8ld %14.4f %+10.4f %10.1f\n", stage_names[s], abl_epochs, r.acc,
           isnan(prev) ? 0.0 : r.acc - prev, r.seconds);
    fflush(stdout);
    prev = r.acc;
  }
  if (abl_epochs) {
    printf("%-30s %8ld %14.4f %+10.4f %10s   (epoch %zu's weights)\n",
           "+ early stopping", abl_epochs, r.acc_early, r.acc_early - prev, "-",
           r.best_epoch);
    prev = r.acc_early;
    printf("%-30s %8ld %14.4f %+10.4f %10s   (%zu snapshots)\n", "+ snapshot ensemble",
           abl_epochs, r.acc_snap, r.acc_snap - prev, "-", r.snapshots);
    printf("%-30s %8ld %14.4f %+10.4f %10s   (instead of the ensemble)\n",
           "(weight averaging, EMA)", abl_epochs, r.acc_avg, r.acc_avg - prev, "-");
  }

  /* The full recipe, longer. */
  result f = {0};
  TRY(run(&f, RESTARTS, epochs, train[1], val[1], test_n, (uint64_t)args.seed));
  printf("\nfull recipe, %ld epochs (%d cosine cycles), %.1f s of training:\n", epochs,
         CYCLES, f.seconds);
  printf("  last epoch's weights        %.4f\n", f.acc);
  printf("  early stopping (epoch %2zu)   %.4f\n", f.best_epoch, f.acc_early);
  printf("  weight averaging (EMA)      %.4f\n", f.acc_avg);
  printf("  snapshot ensemble of %zu     %.4f\n", f.snapshots, f.acc_snap);
  printf("total wall time: %.1f s\n", example_now() - t_start);
  printf("test accuracy: %.4f\n", f.acc_snap);
  rc = EXIT_SUCCESS;
out:
  free(ix);
  nnkit_normalizer_free(nz);
  for (int i = 0; i < 2; i++) {
    nnkit_dataset_free(train[i]);
    nnkit_dataset_free(val[i]);
  }
  nnkit_dataset_free(all);
  nnkit_dataset_free(test);
  nnkit_dataset_free(test_n);
  return rc;
}
