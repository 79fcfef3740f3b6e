/* hparam_search: the lecture's hyperparameter search on the handwritten
 * digits, in one call.
 *
 * The lecture's recipe: a coarse random search of the learning rate and
 * the L2 strength, both sampled in log space, with one epoch per trial;
 * then a finer search, with more epochs, in ranges narrowed around the
 * best coarse trials; random rather than grid. nnkit_search does both
 * phases (NNKIT_STRATEGY_COARSE_FINE) on two workers and prints one line
 * per trial, "val_acc: 0.412000, lr: 1.405206e-04, reg: 4.793564e-01,
 * (1 / 20)". The best values are then retrained on the whole training
 * split (the 7,200 training digits plus the 800 held out for validation)
 * and the test accuracy is printed next to the hand-tuned digits
 * example's.
 *
 * --compare-halving runs the other experiment of the issue instead:
 * successive halving against plain random search with the same budget of
 * epochs, printing the best validation accuracy each found and its wall
 * time.
 *
 * The net is the digits example's 784-256-128-10 ReLU perceptron (no
 * dropout: the L2 strength is what is searched), trained by SGD with
 * momentum 0.9 and batches of 64. --quick searches on a quarter of the
 * training digits with fewer trials (the test suite's run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: hparam_search [--quick] [--workers N] [--compare-halving] [options]\n"
    "Coarse-to-fine random search of the learning rate and L2 strength on the\n"
    "digits (one line per trial), then the best retrained and tested; writes\n"
    "hparam_search.csv and hparam_search.jsonl. --epochs sets the retraining's\n"
    "epochs.\n";

/* The hand-tuned digits example (examples/digits.c: dropout 0.2, SGD +
 * momentum, lr 0.02 with cosine annealing, 20 epochs, early stopping):
 * its test accuracy on data/digits, mean over seeds 1-3 as its comment
 * records. */
#define HAND_TUNED_TEST_ACC 0.9643

static int build(nnkit_net **net_out, nnkit_optimizer **opt_out, const nnkit_trial *t,
                 void *user)
{
  size_t in = *(const size_t *)user;
  nnkit_regularizer *reg = NULL;
  nnkit_status st = digits_mlp(net_out, in, nnkit_trial_seed(t), 0);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_create(opt_out, NNKIT_OPTIM_SGD);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set(*opt_out, NNKIT_OPT_MOMENTUM, 0.9);
  /* the strength is the trial's: the search sets it (NNKIT_TARGET_REGULARIZER) */
  if (st == NNKIT_OK)
    st = nnkit_regularizer_create(&reg, NNKIT_REG_L2, 0);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_add_regularizer(*opt_out, reg);
  if (st != NNKIT_OK) {
    nnkit_regularizer_free(reg);
    return -1; /* the search frees what was made */
  }
  return 0;
}

/* The first n samples of ds (the split is already shuffled). */
static nnkit_status head(nnkit_dataset **out, const nnkit_dataset *ds, size_t n)
{
  size_t *idx = malloc(n * sizeof *idx);
  if (!idx)
    return NNKIT_E_NOMEM;
  for (size_t i = 0; i < n; i++)
    idx[i] = i;
  nnkit_status st = nnkit_dataset_subset(out, ds, idx, n);
  free(idx);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 20, 1, 0, NULL, 0, NULL, 0};
  int quick = 0, compare = 0;
  long workers = 2;
  /* this example's own options, then the shared ones */
  int m = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) {
      quick = 1;
    } else if (!strcmp(argv[i], "--compare-halving")) {
      compare = 1;
    } else if (!strcmp(argv[i], "--workers") && i + 1 < argc) {
      if (!parse_long("--workers", argv[++i], 1, 256, &workers))
        return 2;
    } else {
      argv[m++] = argv[i];
    }
  }
  argc = m;
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  digits_data dd = {0};
  nnkit_space *sp = NULL;
  nnkit_search *s = NULL, *r = NULL;
  nnkit_dataset *train = NULL, *val = NULL, *all = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load(&dd, args.data, (uint64_t)args.seed));
  size_t nt = nnkit_dataset_count(dd.train), nv = nnkit_dataset_count(dd.val);
  if (quick) {
    nt /= 4;
    nv /= 2;
  }
  TRY(head(&train, dd.train, nt));
  TRY(head(&val, dd.val, nv));
  size_t in = nnkit_dataset_sample_size(train);

  /* The lecture's coarse ranges, in log space: lr = 10^uniform(-4, 0) for
   * SGD with momentum (the lecture's -6..-3 is for plain SGD on raw
   * pixels) and reg = 10^uniform(-5, 0). Each range is checked against
   * its key's bounds here. */
  TRY(nnkit_space_create(&sp));
  TRY(nnkit_space_add(sp, "lr", NNKIT_DIM_LOG_UNIFORM, 1e-4, 1,
                      NNKIT_TARGET_OPTIMIZER, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  TRY(nnkit_space_add(sp, "reg", NNKIT_DIM_LOG_UNIFORM, 1e-5, 1,
                      NNKIT_TARGET_REGULARIZER, NNKIT_REG_L2, NNKIT_REG_STRENGTH));
  TRY(nnkit_search_create(&s, sp));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_SEED, (double)args.seed));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_WORKERS, (double)workers));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_VERBOSE, 1));
  printf("hparam_search: %zu training and %zu validation digits, %ld worker(s)\n", nt,
         nv, workers);

  if (compare) {
    /* Successive halving: 27 configurations of 1 epoch, the best third
     * going on with 3 times the epochs, up to 9 (27 + 9*3 + 3*9 = 81
     * epochs); random search with the same 81 epochs: 9 trials of 9. */
    size_t n0 = quick ? 9 : 27, rmax = quick ? 3 : 9;
    TRY(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_HALVING));
    TRY(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, (double)n0));
    TRY(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
    TRY(nnkit_search_set(s, NNKIT_SEARCH_MAX_EPOCHS, (double)rmax));
    TRY(nnkit_search_set(s, NNKIT_SEARCH_ETA, 3));
    double t0 = example_now();
    TRY(nnkit_search_run_training(s, build, &in, train, val));
    double t_sh = example_now() - t0;
    size_t budget = 0, best;
    for (size_t i = 0; i < nnkit_search_num_trials(s); i++) {
      double e;
      TRY(nnkit_search_result(&e, s, i, NNKIT_RESULT_EPOCHS));
      budget += (size_t)e;
    }
    double acc_sh, acc_rs;
    TRY(nnkit_search_best(&best, s));
    TRY(nnkit_search_result(&acc_sh, s, best, NNKIT_RESULT_SCORE));
    TRY(nnkit_search_create(&r, sp));
    TRY(nnkit_search_set(r, NNKIT_SEARCH_SEED, (double)args.seed));
    TRY(nnkit_search_set(r, NNKIT_SEARCH_WORKERS, (double)workers));
    TRY(nnkit_search_set(r, NNKIT_SEARCH_VERBOSE, 1));
    TRY(nnkit_search_set(r, NNKIT_SEARCH_TRIALS, (double)(budget / rmax)));
    TRY(nnkit_search_set(r, NNKIT_SEARCH_EPOCHS, (double)rmax));
    t0 = example_now();
    TRY(nnkit_search_run_training(r, build, &in, train, val));
    double t_rs = example_now() - t0;
    TRY(nnkit_search_best(&best, r));
    TRY(nnkit_search_result(&acc_rs, r, best, NNKIT_RESULT_SCORE));
    printf("same budget of %zu epochs:\n", budget);
    printf("  successive halving (%zu configurations): best val_acc %.4f in %.1f s\n",
           n0, acc_sh, t_sh);
    printf("  random search (%zu configurations of %zu epochs): best val_acc %.4f in "
           "%.1f s\n", budget / rmax, rmax, acc_rs, t_rs);
    rc = EXIT_SUCCESS;
    goto out;
  }

  TRY(nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, NNKIT_STRATEGY_COARSE_FINE));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_TRIALS, quick ? 8 : 20));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_EPOCHS, 1));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_TOP_K, quick ? 3 : 5));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_FINE_TRIALS, quick ? 4 : 10));
  TRY(nnkit_search_set(s, NNKIT_SEARCH_FINE_EPOCHS, quick ? 2 : 5));
  double t0 = example_now();
  TRY(nnkit_search_run_training(s, build, &in, train, val));
  printf("search: %zu trials in %.1f s\n", nnkit_search_num_trials(s),
         example_now() - t0);
  TRY(nnkit_search_save_csv(s, "hparam_search.csv"));
  TRY(nnkit_search_save_jsonl(s, "hparam_search.jsonl"));
  printf("results written to hparam_search.csv and hparam_search.jsonl\n");
  size_t best;
  double lr, reg, acc;
  TRY(nnkit_search_best(&best, s));
  TRY(nnkit_search_value(&lr, s, best, 0));
  TRY(nnkit_search_value(&reg, s, best, 1));
  TRY(nnkit_search_result(&acc, s, best, NNKIT_RESULT_SCORE));
  printf("best: trial %zu, val_acc %.4f, lr %e, reg %e\n", best + 1, acc, lr, reg);

  /* Retrain the best on the whole training split and test it. */
  const nnkit_dataset *parts[2] = {dd.train, dd.val};
  TRY(nnkit_dataset_concat(&all, parts, 2));
  nnkit_regularizer *l2 = NULL;
  TRY(digits_mlp(&net, in, (uint64_t)args.seed, 0));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  TRY(nnkit_regularizer_create(&l2, NNKIT_REG_L2, reg));
  TRY(nnkit_optimizer_add_regularizer(opt, l2));
  TRY(nnkit_trainer_create(&tr, net, opt));
  long epochs = quick ? 2 : args.epochs;
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)args.seed));
  t0 = example_now();
  TRY(nnkit_trainer_fit(tr, all, NULL));
  double test_loss, test_acc;
  TRY(nnkit_net_evaluate(&test_loss, &test_acc, net, dd.test));
  printf("retrained on all %zu training digits for %ld epochs in %.1f s\n",
         nnkit_dataset_count(all), epochs, example_now() - t0);
  printf("hand-tuned digits example (dropout 0.2, lr 0.02 with cosine annealing): "
         "test accuracy %.4f\n", HAND_TUNED_TEST_ACC);
  printf("test accuracy: %.4f\n", test_acc);
  rc = EXIT_SUCCESS;
out:
  nnkit_trainer_free(tr);
  nnkit_net_free(net);
  nnkit_optimizer_free(opt);
  nnkit_dataset_free(all);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  nnkit_search_free(s);
  nnkit_search_free(r);
  nnkit_space_free(sp);
  digits_free(&dd);
  return rc;
}
