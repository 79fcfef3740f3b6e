/* hard_mining: choosing what to label by uncertainty (the lecture's
 * hard-sample mining; active learning).
 *
 * From the digits' training set (--data, default data/digits: 8,000
 * training and 2,000 test digits), a small labelled seed set of 200 digits
 * (20 per class) is drawn; the rest is the unlabelled pool. A network
 * trained on the seed set scores the pool by uncertainty (the margin
 * between its two most likely classes, NNKIT_UNCERTAINTY_MARGIN), and the
 * 500 most uncertain digits are "labelled" and added; for comparison 500
 * digits drawn at random from the pool are added instead. A fresh network
 * (same initialization) is trained on each 700-digit set and tested on the
 * 2,000 test digits. Repeated for 3 seeds (seed set, initialization and
 * random draw change), then averaged. Ends with the uncertainty-chosen
 * mean as "test accuracy: X". --quick: one seed, fewer epochs (the test
 * suite's run). Python twin: bindings/python/examples/hard_mining.py. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: hard_mining [options] [--quick]\n"
    "Trains on 200 labelled digits, then adds the 500 pool digits the net is\n"
    "least sure of (smallest margin) or 500 random ones, retrains, and compares\n"
    "the test accuracies over 3 seeds.\n"
    "  --quick        one seed and fewer epochs (a smoke test)\n";

enum { SEED_PER_CLASS = 20, ADD = 500 };

/* A fresh 784-128-10 MLP (init seed `seed`) trained on `train` with Adam;
 * its test accuracy into *acc; the net into *net_out when not NULL. */
static nnkit_status train_eval(double *acc, nnkit_net **net_out,
                               const nnkit_dataset *train, const nnkit_dataset *test,
                               uint64_t seed, long epochs)
{
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  size_t in = nnkit_dataset_sample_size(train);
  nnkit_status st;
  TRY(nnkit_net_create(&net, &in, 1, seed));
  TRY(nnkit_net_add_dense(net, 128));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dropout(net, 0.2));
  TRY(nnkit_net_add_dense(net, 10));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_ADAM));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 1e-3));
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)seed));
  TRY(nnkit_trainer_fit(tr, train, NULL));
  TRY(nnkit_net_evaluate(NULL, acc, net, test));
  if (net_out) {
    *net_out = net;
    net = NULL;
  }
out:
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 40, 1, 0, NULL, 0, NULL, 0};
  int quick = 0, kept = 1;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  int seeds = quick ? 1 : 3;
  long epochs = quick ? 8 : args.epochs;

  digits_data d = {0};
  nnkit_dataset *all = NULL;
  nnkit_status st = NNKIT_OK;
  int rc = EXIT_FAILURE;
  size_t *order = NULL, *seed_ix = NULL, *pool_ix = NULL;
  double *score = NULL, sum_unc = 0, sum_rand = 0, sum_seed = 0;
  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load(&d, args.data, (uint64_t)args.seed));
  /* The whole normalized training set (training and validation splits). */
  const nnkit_dataset *parts[2] = {d.train, d.val};
  TRY(nnkit_dataset_concat(&all, parts, 2));
  size_t n = nnkit_dataset_count(all);
  const int32_t *y = nnkit_dataset_labels(all);
  order = malloc(n * sizeof *order);
  seed_ix = malloc(n * sizeof *seed_ix);
  pool_ix = malloc(n * sizeof *pool_ix);
  score = malloc(n * sizeof *score);
  if (!order || !seed_ix || !pool_ix || !score) {
    fprintf(stderr, "hard_mining: out of memory\n");
    goto out;
  }
  printf("hard_mining: %zu training digits, %zu test digits; seed set %d per class, "
         "%d added, %ld epochs, %d seed(s), %d thread(s)\n",
         n, nnkit_dataset_count(d.test), SEED_PER_CLASS, ADD, epochs, seeds,
         nnkit_get_num_threads());
  printf("%6s %10s %14s %14s\n", "seed", "seed set", "+500 random", "+500 uncertain");
  for (int s = 0; s < seeds; s++) {
    uint64_t seed = (uint64_t)args.seed + 100 * (uint64_t)s;
    /* A seeded shuffle (xorshift, the example's own) picks the seed set. */
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++)
      order[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
      r ^= r << 13;
      r ^= r >> 7;
      r ^= r << 17;
      size_t j = (size_t)(r % (i + 1)), t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    size_t per[10] = {0}, ns = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
      size_t k = order[i];
      if (per[y[k]] < SEED_PER_CLASS) {
        per[y[k]]++;
        seed_ix[ns++] = k;
      } else {
        pool_ix[np++] = k;
      }
    }
    nnkit_dataset *seed_set = NULL, *pool = NULL, *chosen = NULL, *random_set = NULL;
    nnkit_dataset *grown = NULL;
    nnkit_net *net = NULL;
    double acc_seed = 0, acc_unc = 0, acc_rand = 0;
    TRY(nnkit_dataset_subset(&seed_set, all, seed_ix, ns));
    TRY(nnkit_dataset_subset(&pool, all, pool_ix, np));
    st = train_eval(&acc_seed, &net, seed_set, d.test, seed, epochs);
    /* Uncertainty of the pool; the 500 largest margins-to-one. */
    if (st == NNKIT_OK)
      st = nnkit_net_uncertainty(score, n, net, nnkit_dataset_data(pool), np,
                                 NNKIT_UNCERTAINTY_MARGIN);
    if (st == NNKIT_OK)
      st = nnkit_mining_subset(&chosen, pool, score, ADD);
    /* 500 at random: the first 500 of the (shuffled) pool order. */
    if (st == NNKIT_OK)
      st = nnkit_dataset_subset(&random_set, all, pool_ix, ADD);
    const nnkit_dataset *a[2] = {seed_set, chosen}, *b[2] = {seed_set, random_set};
    if (st == NNKIT_OK)
      st = nnkit_dataset_concat(&grown, a, 2);
    if (st == NNKIT_OK)
      st = train_eval(&acc_unc, NULL, grown, d.test, seed, epochs);
    nnkit_dataset_free(grown);
    grown = NULL;
    if (st == NNKIT_OK)
      st = nnkit_dataset_concat(&grown, b, 2);
    if (st == NNKIT_OK)
      st = train_eval(&acc_rand, NULL, grown, d.test, seed, epochs);
    nnkit_dataset_free(grown);
    nnkit_dataset_free(seed_set);
    nnkit_dataset_free(pool);
    nnkit_dataset_free(chosen);
    nnkit_dataset_free(random_set);
    nnkit_net_free(net);
    TRY(st);
    printf("%6llu %10.4f %14.4f %14.4f\n", (unsigned long long)seed, acc_seed, acc_rand,
           acc_unc);
    sum_seed += acc_seed;
    sum_unc += acc_unc;
    sum_rand += acc_rand;
  }
  printf("%6s %10.4f %14.4f %14.4f\n", "mean", sum_seed / seeds, sum_rand / seeds,
         sum_unc / seeds);
  printf("uncertainty-chosen minus random: %+.4f (mean of %d seed(s))\n",
         (sum_unc - sum_rand) / seeds, seeds);
  printf("random test accuracy: %.4f\n", sum_rand / seeds);
  printf("test accuracy: %.4f\n", sum_unc / seeds);
  rc = EXIT_SUCCESS;
out:
  free(order);
  free(seed_ix);
  free(pool_ix);
  free(score);
  nnkit_dataset_free(all);
  digits_free(&d);
  return rc;
}
