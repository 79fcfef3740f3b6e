/* ensemble: model ensembles on Fashion-MNIST (the lecture's "improve test
 * performance": ensembles, snapshots of one run, running averages of the
 * weights).
 *
 * Loads Fashion-MNIST from --data (default /usr/share/datasets/fashion-mnist,
 * Debian's dataset-fashion-mnist: 60,000 training and 10,000 test images),
 * holds out a stratified 10% and standardizes the pixels with the training
 * split's statistics, keeps the first --train of the training images
 * (default 10,000: the small-data regime where averaging models pays; 0
 * keeps all 54,000), and trains a 784-512-256-10 MLP (batch norm and ReLU
 * after each hidden layer, SGD with Nesterov momentum 0.9, batch 64) four
 * ways, each for --epochs epochs (default 20):
 *
 *   single    one net, learning rate 0.05 annealed to 0 along a cosine over
 *             the run; the same run keeps an exponential moving average of
 *             its weights (NNKIT_TRAIN_EMA_DECAY 0.999), which is the
 *   average   row: the averaged weights, with the batch-norm statistics
 *             recomputed for them (nnkit_trainer_apply_average());
 *   seeded    --members independently seeded nets (default 3) trained like
 *             the single one, averaged (nnkit_ensemble, MEAN);
 *   snapshot  one run of the same length with warm restarts (SGDR, 5
 *             cycles, learning rate 0.2 to 0 in each), the weights kept at
 *             the end of each cycle (NNKIT_TRAIN_SNAPSHOTS), all 5
 *             averaged (nnkit_trainer_apply_snapshots()).
 *
 * Prints test accuracy and training time of each, and ends with the best
 * ensemble's "test accuracy: X". --quick: 3,000 training images, 2 epochs,
 * 2 members (the test suite's smoke run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: ensemble [options] [--members N] [--quick]\n"
    "Single model vs N independently seeded models vs a snapshot ensemble of\n"
    "one run vs weight averaging, on Fashion-MNIST: test accuracy and\n"
    "training time of each.\n"
    "  --members N    seeded models in the ensemble (default 3)\n"
    "  --train N      training images used (default 10000; 0: all)\n"
    "  --quick        3,000 training images, 2 epochs, 2 members\n";

enum { CYCLES = 5, BATCH = 64 };

typedef struct run {
  nnkit_net *net;
  nnkit_optimizer *opt;
  nnkit_trainer *tr;
  double seconds;
} run;

static void run_free(run *r)
{
  nnkit_trainer_free(r->tr);
  nnkit_optimizer_free(r->opt);
  nnkit_net_free(r->net);
  memset(r, 0, sizeof *r);
}

/* Trains one MLP of init seed `seed` for `epochs`: a cosine from lr to 0
 * over the run, or with snapshots != 0 SGDR with CYCLES cycles keeping a
 * snapshot at each cycle end; ema: the decay of the weight average (0:
 * none). */
static nnkit_status train_run(run *r, const nnkit_dataset *data, uint64_t seed, long epochs,
                          int snapshots, double ema)
{
  nnkit_status st;
  nnkit_schedule *sched = NULL;
  size_t in = nnkit_dataset_sample_size(data);
  size_t steps = (nnkit_dataset_count(data) + BATCH - 1) / BATCH * (size_t)epochs;
  memset(r, 0, sizeof *r);
  TRY(nnkit_net_create(&r->net, &in, 1, seed));
  for (int h = 0; h < 2; h++) {
    TRY(nnkit_net_add_dense(r->net, h ? 256 : 512));
    TRY(nnkit_net_add_batchnorm(r->net, 0.1, 1e-5));
    TRY(nnkit_net_add_activation(r->net, NNKIT_ACT_RELU));
  }
  TRY(nnkit_net_add_dense(r->net, 10));
  TRY(nnkit_optimizer_create(&r->opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(r->opt, NNKIT_OPT_LR, snapshots ? 0.2 : 0.05));
  TRY(nnkit_optimizer_set(r->opt, NNKIT_OPT_MOMENTUM, 0.9));
  TRY(nnkit_optimizer_set(r->opt, NNKIT_OPT_NESTEROV, 1));
  TRY(nnkit_schedule_create(&sched, snapshots ? NNKIT_SCHEDULE_COSINE_RESTARTS
                                              : NNKIT_SCHEDULE_COSINE));
  TRY(nnkit_schedule_set(sched, NNKIT_SCHED_PER_BATCH, 1));
  if (snapshots)
    TRY(nnkit_schedule_set(sched, NNKIT_SCHED_T_0, (double)(steps / CYCLES)));
  else
    TRY(nnkit_schedule_set(sched, NNKIT_SCHED_T_MAX, (double)steps));
  TRY(nnkit_optimizer_set_schedule(r->opt, sched));
  sched = NULL;
  TRY(nnkit_trainer_create(&r->tr, r->net, r->opt));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_BATCH_SIZE, BATCH));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_SEED, (double)seed));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_LAYER_STATS, 0));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_SNAPSHOTS, snapshots ? CYCLES : 0));
  TRY(nnkit_trainer_set(r->tr, NNKIT_TRAIN_EMA_DECAY, ema));
  double t0 = example_now();
  TRY(nnkit_trainer_fit(r->tr, data, NULL));
  r->seconds = example_now() - t0;
out:
  nnkit_schedule_free(sched);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"/usr/share/datasets/fashion-mnist", 20, 1, 0, NULL, 0, NULL, 0};
  long members = 3, ntrain = 10000;
  int quick = 0, kept = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--members")) {
      if (i + 1 >= argc || !parse_long("--members", argv[i + 1], 2, 50, &members))
        return 2;
      i++;
    } else if (!strcmp(argv[i], "--train")) {
      if (i + 1 >= argc || !parse_long("--train", argv[i + 1], 0, 100000000, &ntrain))
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
  long epochs = quick ? 2 : args.epochs;
  if (quick) {
    members = 2;
    ntrain = 3000;
  }

  digits_data d = {0};
  nnkit_dataset *train = NULL;
  nnkit_ensemble *seeded = NULL, *snap = NULL;
  nnkit_net *avg = NULL;
  run single = {0}, member = {0}, snaprun = {0};
  size_t *ix = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;
  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load(&d, args.data, (uint64_t)args.seed));
  size_t n = nnkit_dataset_count(d.train);
  if (ntrain && (size_t)ntrain < n)
    n = (size_t)ntrain;
  ix = malloc(n * sizeof *ix);
  if (!ix) {
    fprintf(stderr, "ensemble: out of memory\n");
    goto out;
  }
  for (size_t i = 0; i < n; i++)
    ix[i] = i;
  TRY(nnkit_dataset_subset(&train, d.train, ix, n));
  printf("ensemble: %zu training and %zu test images from %s; MLP 784-512-256-10 "
         "with batch norm, "
         "%ld epochs per run, %d thread(s)\n",
         n, nnkit_dataset_count(d.test), args.data, epochs, nnkit_get_num_threads());

  /* One net (its run also keeps the weight average). */
  double acc_single, acc_avg, acc_seeded, acc_snap, acc;
  TRY(train_run(&single, train, (uint64_t)args.seed, epochs, 0, 0.999));
  TRY(nnkit_net_evaluate(NULL, &acc_single, single.net, d.test));
  double t0 = example_now();
  TRY(nnkit_trainer_apply_average(&avg, single.tr, train));
  double avg_extra = example_now() - t0;
  TRY(nnkit_net_evaluate(NULL, &acc_avg, avg, d.test));

  /* N seeded nets: the single one and N - 1 more. */
  double seeded_seconds = single.seconds;
  TRY(nnkit_ensemble_create(&seeded, NNKIT_ENSEMBLE_MEAN));
  TRY(nnkit_ensemble_add(seeded, single.net, 1));
  for (long m = 1; m < members; m++) {
    TRY(train_run(&member, train, (uint64_t)args.seed + 1000 * (uint64_t)m, epochs, 0, 0));
    TRY(nnkit_net_evaluate(NULL, &acc, member.net, d.test));
    printf("  seeded member %ld: test accuracy %.4f (%.1f s)\n", m + 1, acc,
           member.seconds);
    seeded_seconds += member.seconds;
    TRY(nnkit_ensemble_add(seeded, member.net, 1));
    run_free(&member);
  }
  TRY(nnkit_ensemble_evaluate(NULL, &acc_seeded, seeded, d.test));

  /* One SGDR run, its cycle-end snapshots. */
  TRY(train_run(&snaprun, train, (uint64_t)args.seed, epochs, 1, 0));
  size_t m = nnkit_trainer_num_snapshots(snaprun.tr);
  TRY(nnkit_trainer_apply_snapshots(&snap, snaprun.tr, m, NNKIT_ENSEMBLE_MEAN));
  for (size_t i = 0; i < m; i++) {
    TRY(nnkit_net_evaluate(NULL, &acc, nnkit_ensemble_member(snap, i), d.test));
    printf("  snapshot %zu (end of cycle %zu): test accuracy %.4f\n", i + 1,
           CYCLES - m + i + 1, acc);
  }
  TRY(nnkit_ensemble_evaluate(NULL, &acc_snap, snap, d.test));

  printf("\n%-38s %14s %14s\n", "method", "test accuracy", "training (s)");
  printf("%-38s %14.4f %14.1f\n", "single model", acc_single, single.seconds);
  char what[64];
  snprintf(what, sizeof what, "%ld independently seeded models", members);
  printf("%-38s %14.4f %14.1f\n", what, acc_seeded, seeded_seconds);
  snprintf(what, sizeof what, "snapshot ensemble (%zu of one run)", m);
  printf("%-38s %14.4f %14.1f\n", what, acc_snap, snaprun.seconds);
  printf("%-38s %14.4f %14.1f\n", "weight averaging (EMA 0.999)", acc_avg,
         single.seconds + avg_extra);
  printf("(weight averaging is the single model's run; its extra pass for the "
         "statistics took %.2f s)\n", avg_extra);
  printf("ensembles minus single model: seeded %+.4f, snapshot %+.4f; averaging %+.4f\n",
         acc_seeded - acc_single, acc_snap - acc_single, acc_avg - acc_single);
  printf("test accuracy: %.4f\n", acc_seeded > acc_snap ? acc_seeded : acc_snap);
  rc = EXIT_SUCCESS;
out:
  run_free(&single);
  run_free(&member);
  run_free(&snaprun);
  nnkit_ensemble_free(seeded);
  nnkit_ensemble_free(snap);
  nnkit_net_free(avg);
  nnkit_dataset_free(train);
  free(ix);
  digits_free(&d);
  return rc;
}
