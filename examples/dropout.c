/* dropout: regularization on a small training set.
 *
 * Takes the first 1,000 training digits (--data, default data/digits) as
 * the training set and the next 1,000 as the validation set, and trains a
 * wide network (784-512-512-10, ReLU) long enough to overfit, once as is
 * and once with inverted dropout (p = 0.2 on the input, 0.5 after each
 * hidden layer). Dropout only acts in training mode; the accuracies below
 * are all measured in evaluation mode. Prints, for both, the gap between
 * training and validation accuracy (the lecture's sign of overfitting) and
 * the test accuracy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: dropout [options]\n"
    "Trains the same network on 1,000 digits with and without dropout and\n"
    "prints the train/validation accuracy gaps and the test accuracies.\n";

#define TRAIN_N 1000
#define VAL_N 1000

typedef struct result {
  double train_acc, val_acc, test_acc;
} result;

static nnkit_status run(result *res, int dropout, const nnkit_dataset *train,
                        const nnkit_dataset *val, const nnkit_dataset *test,
                        const example_args *args)
{
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_status st;
  size_t in = nnkit_dataset_sample_size(train);
  TRY(nnkit_net_create(&net, &in, 1, (uint64_t)args->seed));
  if (dropout)
    TRY(nnkit_net_add_dropout(net, 0.2));
  TRY(nnkit_net_add_dense(net, 512));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  if (dropout)
    TRY(nnkit_net_add_dropout(net, 0.5));
  TRY(nnkit_net_add_dense(net, 512));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  if (dropout)
    TRY(nnkit_net_add_dropout(net, 0.5));
  TRY(nnkit_net_add_dense(net, 10));
  for (size_t i = 0; i < nnkit_net_num_layers(net); i++)
    printf("  layer %zu: %s\n", i, nnkit_net_layer_describe(net, i));

  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.02));
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)args->epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)args->seed));
  TRY(nnkit_trainer_fit(tr, train, val));
  size_t last = nnkit_trainer_epochs_done(tr) - 1;
  for (size_t e = 0; e <= last; e++)
    if ((e + 1) % 10 == 0 || e == last) {
      double cost, va;
      TRY(nnkit_trainer_metric(&cost, tr, e, NNKIT_METRIC_TRAIN_LOSS));
      TRY(nnkit_trainer_metric(&va, tr, e, NNKIT_METRIC_VAL_ACC));
      printf("  epoch %3zu: cost %.4f, validation accuracy %.4f\n", e + 1, cost, va);
    }
  /* All three in evaluation mode (no dropout). */
  TRY(nnkit_net_evaluate(NULL, &res->train_acc, net, train));
  TRY(nnkit_net_evaluate(NULL, &res->val_acc, net, val));
  TRY(nnkit_net_evaluate(NULL, &res->test_acc, net, test));
out:
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 100, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  nnkit_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
  size_t idx[TRAIN_N + VAL_N];
  int rc = EXIT_FAILURE;
  nnkit_status st;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test, args.data));
  if (nnkit_dataset_count(all) < TRAIN_N + VAL_N) {
    fprintf(stderr, "dropout: %s holds %zu training images, %d are needed\n",
            args.data, nnkit_dataset_count(all), TRAIN_N + VAL_N);
    goto out;
  }
  for (size_t i = 0; i < TRAIN_N + VAL_N; i++)
    idx[i] = i;
  TRY(nnkit_dataset_subset(&train, all, idx, TRAIN_N));
  TRY(nnkit_dataset_subset(&val, all, idx + TRAIN_N, VAL_N));
  /* Normalize with the 1,000 training images' statistics only. */
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(train);
  size_t npx = nnkit_dataset_count(train) * nnkit_dataset_sample_size(train);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  double mean = sum / (double)npx, sd = sqrt(sq / (double)npx - mean * mean);
  float a = (float)(1.0 / sd), b = (float)(-mean / sd);
  TRY(nnkit_dataset_scale(train, a, b));
  TRY(nnkit_dataset_scale(val, a, b));
  TRY(nnkit_dataset_scale(test, a, b));

  printf("dropout: %d training, %d validation and %zu test digits from %s; "
         "SGD lr 0.02, batch 32, %ld epochs; %d thread(s)\n",
         TRAIN_N, VAL_N, nnkit_dataset_count(test), args.data, args.epochs,
         nnkit_get_num_threads());
  result plain, drop;
  printf("\n-- without dropout --\n");
  TRY(run(&plain, 0, train, val, test, &args));
  printf("\n-- with dropout (inverted; p = 0.2 on the input, 0.5 after each hidden "
         "layer) --\n");
  TRY(run(&drop, 1, train, val, test, &args));

  printf("\n%-16s %10s %10s %10s %10s\n", "", "train acc", "val acc", "gap", "test acc");
  printf("%-16s %10.4f %10.4f %10.4f %10.4f\n", "without dropout", plain.train_acc,
         plain.val_acc, plain.train_acc - plain.val_acc, plain.test_acc);
  printf("%-16s %10.4f %10.4f %10.4f %10.4f\n", "with dropout", drop.train_acc,
         drop.val_acc, drop.train_acc - drop.val_acc, drop.test_acc);
  printf("train/validation gap without dropout: %.4f\n", plain.train_acc - plain.val_acc);
  printf("train/validation gap with dropout:    %.4f\n", drop.train_acc - drop.val_acc);
  printf("test accuracy without dropout: %.4f\n", plain.test_acc);
  printf("test accuracy with dropout:    %.4f\n", drop.test_acc);
  rc = EXIT_SUCCESS;
out:
  nnkit_dataset_free(all);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  nnkit_dataset_free(test);
  return rc;
}
