/* batchnorm: the lecture's "robustness against poor initialization".
 *
 * The same deep network -- eight dense layers, 784-128x7-10 with ReLUs --
 * is initialized badly, every weight drawn from N(0, 0.01^2): each layer
 * then shrinks its input by about sqrt(128 / 2) * 0.01 = 0.08, so after
 * seven layers the signal and the gradients have all but vanished and
 * SGD stalls at chance. The twin network with a batch normalization after
 * each hidden dense layer (before the ReLU) starts from exactly the same
 * weights, but every layer's output is re-standardized per batch, so it
 * trains normally. Both are trained with the same SGD settings on the
 * digits (--data, default data/digits) and the program prints both final
 * accuracies. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: batchnorm [options]\n"
    "Trains the same 8-layer network, badly initialized (weights ~ N(0, 0.01^2)),\n"
    "with and without batch normalization and prints both test accuracies.\n";

#define HIDDEN_LAYERS 7
#define UNITS 128

/* Builds the deep net, with or without batch norm, and gives every dense
 * layer's weights the poor initializer. */
static nnkit_status build(nnkit_net **out, size_t in, int bn, uint64_t seed,
                          const nnkit_init *poor)
{
  nnkit_net *net = NULL;
  nnkit_status st;
  TRY(nnkit_net_create(&net, &in, 1, seed));
  for (int i = 0; i < HIDDEN_LAYERS; i++) {
    TRY(nnkit_net_add_dense(net, UNITS));
    TRY(nnkit_net_set_init(net, nnkit_net_num_layers(net) - 1, poor, NULL));
    if (bn)
      TRY(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
    TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  }
  TRY(nnkit_net_add_dense(net, 10));
  TRY(nnkit_net_set_init(net, nnkit_net_num_layers(net) - 1, poor, NULL));
  *out = net;
  return NNKIT_OK;
out:
  nnkit_net_free(net);
  return st;
}

/* Trains and returns the test accuracy and the first epoch's training cost. */
static nnkit_status run(double *acc_out, double *cost0_out, nnkit_net *net,
                        const nnkit_dataset *train, const nnkit_dataset *test,
                        const example_args *args, double lr)
{
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_status st;
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)args->epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 64));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)args->seed));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  TRY(nnkit_trainer_fit(tr, train, test));
  TRY(nnkit_trainer_metric(cost0_out, tr, 0, NNKIT_METRIC_TRAIN_LOSS));
  TRY(nnkit_net_evaluate(NULL, acc_out, net, test));
out:
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 10, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  nnkit_dataset *train = NULL, *test = NULL;
  nnkit_net *plain = NULL, *bn = NULL;
  nnkit_init *poor = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;
  const double lr = 0.05;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&train, &test, args.data));
  /* Inputs are well scaled (training-set mean 0, std 1): the trouble is
   * only in the weights. */
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(train);
  size_t npx = nnkit_dataset_count(train) * nnkit_dataset_sample_size(train);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  double mean = sum / (double)npx, sd = sqrt(sq / (double)npx - mean * mean);
  TRY(nnkit_dataset_scale(train, (float)(1.0 / sd), (float)(-mean / sd)));
  TRY(nnkit_dataset_scale(test, (float)(1.0 / sd), (float)(-mean / sd)));

  TRY(nnkit_init_create(&poor, NNKIT_INIT_NORMAL, 0.0, 0.01));
  size_t in = nnkit_dataset_sample_size(train);
  TRY(build(&plain, in, 0, (uint64_t)args.seed, poor));
  TRY(build(&bn, in, 1, (uint64_t)args.seed, poor));
  printf("batchnorm: %zu training and %zu test digits from %s; %d thread(s)\n",
         nnkit_dataset_count(train), nnkit_dataset_count(test), args.data,
         nnkit_get_num_threads());
  printf("network: 784 -> %d x [dense %d, ReLU] -> dense 10, every weight ~ "
         "N(0, 0.01^2); SGD lr %g, batch 64, %ld epochs\n",
         HIDDEN_LAYERS, UNITS, lr, args.epochs);
  printf("(validation lines below are on the test set)\n");

  double acc_plain, acc_bn, cost_plain, cost_bn;
  printf("\n-- without batch normalization --\n");
  TRY(run(&acc_plain, &cost_plain, plain, train, test, &args, lr));
  printf("\n-- with batch normalization after each hidden dense layer --\n");
  for (size_t i = 0; i < 3; i++)
    printf("  layer %zu: %s\n", i, nnkit_net_layer_describe(bn, i));
  printf("  ...\n");
  TRY(run(&acc_bn, &cost_bn, bn, train, test, &args, lr));

  printf("\nfirst-epoch cost: without %.4f, with %.4f (chance: ln 10 = %.4f)\n",
         cost_plain, cost_bn, log(10.0));
  printf("test accuracy without batch norm: %.4f%s\n", acc_plain,
         acc_plain < 0.2 ? " (stalled at chance)" : "");
  printf("test accuracy with batch norm:    %.4f\n", acc_bn);
  rc = EXIT_SUCCESS;
out:
  nnkit_init_free(poor);
  nnkit_net_free(plain);
  nnkit_net_free(bn);
  nnkit_dataset_free(train);
  nnkit_dataset_free(test);
  return rc;
}
