/* transfer: can we use convnets for small data sets? Transfer learning on
 * the handwritten digits.
 *
 * A small convnet is pretrained on the digits 0-4 (all ~4,000 training
 * images of them). The new task is the digits 5-9 with only PER_CLASS (50)
 * labelled images per class, tested on every 5-9 test image. Three ways:
 *
 *   (a) from scratch: the same architecture, freshly initialized, trained
 *       on the 250 images only;
 *   (b) feature extractor: the pretrained convolutional stack's outputs
 *       ("CNN codes", nnkit_net_features) for the 250 images, and a linear
 *       classifier (dense + softmax cross-entropy) trained on them;
 *   (c) fine-tuning: the pretrained net is loaded from its model file, cut
 *       before its head (nnkit_net_cut), given a new head for the 5 new
 *       classes, and trained with its convolutional layers frozen (the
 *       dense layer below the head and the new head learn).
 *
 * Each seed draws another 250 images and another initialization; the table
 * gives the test accuracy of each way per seed and the means. --epochs sets
 * the pretraining epochs (the small-data runs have their own fixed counts).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: transfer [options]\n"
    "Pretrains a small convnet on the digits 0-4, then learns the digits 5-9\n"
    "from 50 labelled images per class three ways (from scratch, the pretrained\n"
    "net's features + a linear classifier, fine-tuning the pretrained net) and\n"
    "prints their test accuracies for three seeds.\n";

#define PER_CLASS 50
#define NUM_SEEDS 5
/* Layer indices of the net below. */
#define CODES_LAYER 8  /* the conv stack's output, flattened: the CNN codes */
#define HEAD_LAYER 12  /* the 5-way output layer */
#define CONV_LAYERS 8  /* conv-BN-ReLU-pool x2: frozen when fine-tuning */

/* Settings of the runs: each way got its own learning rate and epochs,
 * tried over a few values (scratch: lr 0.005-0.02, 40-80 epochs, batch 10
 * or 25; codes: the flattened conv stack or the dense layer's outputs, lr
 * 0.01-0.05; fine-tuning: freezing 0, 4 or 8 layers, multipliers 0.1-1,
 * lr 0.005-0.02) and the best kept, so the comparison is fair to training
 * from scratch. The linear classifier's lr stays at 0.01: 0.05 diverges on
 * the codes of a net pretrained for one epoch only. */
static const double PRE_LR = 0.02, SCRATCH_LR = 0.005, LINEAR_LR = 0.01;
static const double FINETUNE_LR = 0.005, MOMENTUM = 0.9;
static const long SCRATCH_EPOCHS = 40, LINEAR_EPOCHS = 40, FINETUNE_EPOCHS = 40;
static const size_t PRE_BATCH = 32, SMALL_BATCH = 10;

/* splitmix64: the example's own generator for picking the small sets (the
 * Python twin uses the same). */
static uint64_t splitmix64(uint64_t *s)
{
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* The samples of src whose labels lie in [lo, lo + 5), relabelled 0..4,
 * as a new float dataset: all of them when per_class is 0, otherwise the
 * first per_class of each class in an order shuffled by seed. */
static nnkit_status digit_range(nnkit_dataset **out, const nnkit_dataset *src, int lo,
                                size_t per_class, uint64_t seed)
{
  size_t n = nnkit_dataset_count(src), per = nnkit_dataset_sample_size(src);
  const float *x = nnkit_dataset_data(src);
  const int32_t *y = nnkit_dataset_labels(src);
  size_t *order = malloc(n * sizeof *order), *pick = malloc(n * sizeof *pick);
  float *px = NULL;
  int32_t *py = NULL;
  nnkit_status st = NNKIT_E_NOMEM;
  if (!order || !pick || !x)
    goto done;
  for (size_t i = 0; i < n; i++)
    order[i] = i;
  if (per_class) { /* Fisher-Yates; without it the file's order */
    uint64_t s = seed;
    for (size_t i = n - 1; i > 0; i--) {
      size_t j = (size_t)(splitmix64(&s) % (i + 1));
      size_t t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
  }
  size_t taken[5] = {0}, m = 0;
  for (size_t k = 0; k < n; k++) {
    size_t i = order[k];
    int c = y[i] - lo;
    if (c < 0 || c >= 5 || (per_class && taken[c] == per_class))
      continue;
    taken[c]++;
    pick[m++] = i;
  }
  px = malloc(m * per * sizeof *px);
  py = malloc(m * sizeof *py);
  if (!px || !py)
    goto done;
  for (size_t k = 0; k < m; k++) {
    memcpy(px + k * per, x + pick[k] * per, per * sizeof *px);
    py[k] = y[pick[k]] - lo;
  }
  size_t shape[3] = {nnkit_dataset_dim(src, 0), nnkit_dataset_dim(src, 1),
                     nnkit_dataset_dim(src, 2)};
  st = nnkit_dataset_from_buffers(out, px, py, m, shape, 3, 5);
done:
  free(order);
  free(pick);
  free(px);
  free(py);
  return st;
}

/* The convnet: conv 3x3 (16)-BN-ReLU-pool, conv 3x3 (32)-BN-ReLU-pool,
 * flatten, dense 64-ReLU-dropout 0.5, dense 5 (13 layers). */
static nnkit_status make_cnn(nnkit_net **out, const nnkit_dataset *ds, uint64_t seed)
{
  size_t shape[3] = {nnkit_dataset_dim(ds, 0), nnkit_dataset_dim(ds, 1),
                     nnkit_dataset_dim(ds, 2)};
  nnkit_net *net = NULL;
  nnkit_status st = nnkit_net_create(&net, shape, 3, seed);
  if (st == NNKIT_OK)
    st = nnkit_net_add_conv2d(net, 16, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_batchnorm(net, 0.1, 1e-5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_conv2d(net, 32, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_batchnorm(net, 0.1, 1e-5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_maxpool2d(net, 2, 2, 2, 2, 0, 0);
  if (st == NNKIT_OK)
    st = nnkit_net_add_flatten(net);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 64);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dropout(net, 0.5);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 5);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    net = NULL;
  }
  *out = net;
  return st;
}

/* Trains net on ds with SGD + momentum (a fresh optimizer: after a cut the
 * old state would not fit), batch size and epochs as given, data order
 * from seed; returns the accuracy on test. */
static nnkit_status train(double *acc_out, nnkit_net *net, const nnkit_dataset *ds,
                          const nnkit_dataset *test, double lr, size_t batch,
                          long epochs, uint64_t seed, int verbose)
{
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_status st = nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr);
  if (st == NNKIT_OK)
    st = nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, MOMENTUM);
  if (st == NNKIT_OK)
    st = nnkit_trainer_create(&tr, net, opt);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)epochs);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)batch);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)seed);
  if (st == NNKIT_OK)
    st = nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, verbose);
  if (st == NNKIT_OK)
    st = nnkit_trainer_fit(tr, ds, NULL);
  if (st == NNKIT_OK)
    st = nnkit_net_evaluate(NULL, acc_out, net, test);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 3, 1, 1, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  nnkit_dataset *all = NULL, *test = NULL, *pre = NULL, *pre_test = NULL;
  nnkit_dataset *new_test = NULL, *small = NULL, *codes = NULL, *test_codes = NULL;
  nnkit_net *net = NULL, *scratch = NULL, *linear = NULL, *tuned = NULL;
  char model[] = "/tmp/nnkit_transfer_XXXXXX";
  int have_model = 0, rc = EXIT_FAILURE;
  double acc[NUM_SEEDS][3], sum[3] = {0, 0, 0};
  nnkit_status st;
  double t0 = example_now();

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test, args.data));
  /* Standardize with the pretraining images' pixel mean and std. */
  double s1 = 0, s2 = 0;
  const float *px = nnkit_dataset_data(all);
  size_t npx = nnkit_dataset_count(all) * nnkit_dataset_sample_size(all);
  for (size_t i = 0; i < npx; i++) {
    s1 += px[i];
    s2 += (double)px[i] * px[i];
  }
  double mean = s1 / (double)npx, sd = sqrt(s2 / (double)npx - mean * mean);
  TRY(nnkit_dataset_scale(all, (float)(1.0 / sd), (float)(-mean / sd)));
  TRY(nnkit_dataset_scale(test, (float)(1.0 / sd), (float)(-mean / sd)));
  TRY(digit_range(&pre, all, 0, 0, 0));
  TRY(digit_range(&pre_test, test, 0, 0, 0));
  TRY(digit_range(&new_test, test, 5, 0, 0));

  printf("transfer: can we use convnets for small data sets?\n\n");
  printf("The old task: digits 0-4, %zu training images. The new task: digits 5-9 "
         "with only\n%d labelled images per class (%d in all), tested on all %zu "
         "test images of 5-9.\n%d thread(s).\n\n",
         nnkit_dataset_count(pre), PER_CLASS, 5 * PER_CLASS,
         nnkit_dataset_count(new_test), nnkit_get_num_threads());

  /* 1. Pretraining on the old task, saved as a model file. */
  TRY(make_cnn(&net, pre, (uint64_t)args.seed));
  for (size_t i = 0; i < nnkit_net_num_layers(net); i++)
    printf("  layer %2zu: %s\n", i, nnkit_net_layer_describe(net, i));
  printf("pretraining on digits 0-4: %ld epochs, SGD lr %g momentum %g, batch %zu\n",
         args.epochs, PRE_LR, MOMENTUM, PRE_BATCH);
  double pre_acc;
  double tp = example_now();
  TRY(train(&pre_acc, net, pre, pre_test, PRE_LR, PRE_BATCH, args.epochs,
            (uint64_t)args.seed, 0));
  printf("pretrained net: test accuracy %.4f on digits 0-4 (%.1f s)\n\n", pre_acc,
         example_now() - tp);
  int fd = mkstemp(model);
  if (fd < 0) {
    perror("transfer: mkstemp");
    goto out;
  }
  close(fd);
  have_model = 1;
  TRY(nnkit_net_save(net, NULL, model));

  /* 2. The new task, three ways, for each seed. */
  printf("new task: digits 5-9 from %d images per class\n", PER_CLASS);
  printf("  (a) from scratch: the same net, %ld epochs, lr %g, batch %zu\n",
         SCRATCH_EPOCHS, SCRATCH_LR, SMALL_BATCH);
  printf("  (b) CNN codes (layer %d, %s) + a linear classifier: %ld epochs, "
         "lr %g\n",
         CODES_LAYER, nnkit_net_layer_describe(net, CODES_LAYER), LINEAR_EPOCHS,
         LINEAR_LR);
  printf("  (c) fine-tuning: the pretrained net cut before layer %d, a new dense 5 "
         "head,\n      layers 0-%d frozen; %ld epochs, lr %g\n",
         HEAD_LAYER, CONV_LAYERS - 1, FINETUNE_EPOCHS, FINETUNE_LR);
  printf("  (each seed draws other images and another initialization)\n\n");
  printf("  seed   (a) scratch   (b) codes+linear   (c) fine-tuned\n");
  TRY(nnkit_net_features(&test_codes, net, CODES_LAYER, new_test));
  for (int k = 0; k < NUM_SEEDS; k++) {
    uint64_t seed = (uint64_t)args.seed + (uint64_t)k;
    TRY(digit_range(&small, all, 5, PER_CLASS, seed));

    /* (a) from scratch */
    TRY(make_cnn(&scratch, small, seed + 100));
    TRY(train(&acc[k][0], scratch, small, new_test, SCRATCH_LR, SMALL_BATCH,
              SCRATCH_EPOCHS, seed, 0));

    /* (b) features of the pretrained net + a linear classifier */
    TRY(nnkit_net_features(&codes, net, CODES_LAYER, small));
    size_t width = nnkit_dataset_sample_size(codes);
    TRY(nnkit_net_create(&linear, &width, 1, seed + 200));
    TRY(nnkit_net_add_dense(linear, 5));
    TRY(train(&acc[k][1], linear, codes, test_codes, LINEAR_LR, SMALL_BATCH,
              LINEAR_EPOCHS, seed, 0));

    /* (c) fine-tuning: load, cut, new head, freeze, train */
    TRY(nnkit_net_load(&tuned, NULL, model));
    TRY(nnkit_net_cut(tuned, HEAD_LAYER));
    TRY(nnkit_net_add_dense(tuned, 5));
    for (size_t i = 0; i < CONV_LAYERS; i++)
      TRY(nnkit_net_set_trainable(tuned, i, 0));
    TRY(train(&acc[k][2], tuned, small, new_test, FINETUNE_LR, SMALL_BATCH,
              FINETUNE_EPOCHS, seed, 0));

    printf("  %4llu   %11.4f   %16.4f   %14.4f\n", (unsigned long long)seed, acc[k][0],
           acc[k][1], acc[k][2]);
    fflush(stdout);
    for (int j = 0; j < 3; j++)
      sum[j] += acc[k][j];
    nnkit_dataset_free(small);
    nnkit_dataset_free(codes);
    nnkit_net_free(scratch);
    nnkit_net_free(linear);
    nnkit_net_free(tuned);
    small = codes = NULL;
    scratch = linear = tuned = NULL;
  }
  printf("  mean   %11.4f   %16.4f   %14.4f\n\n", sum[0] / NUM_SEEDS, sum[1] / NUM_SEEDS,
         sum[2] / NUM_SEEDS);
  double gain_b = 100.0 * (sum[1] - sum[0]) / NUM_SEEDS;
  double gain_c = 100.0 * (sum[2] - sum[0]) / NUM_SEEDS;
  printf("against training from scratch, on average: CNN codes + linear %+.1f "
         "points,\nfine-tuning %+.1f points; the most any way could gain over "
         "scratch here is\n%.1f points (100%% minus scratch's %.2f%%).\n",
         gain_b, gain_c, 100.0 - 100.0 * sum[0] / NUM_SEEDS, 100.0 * sum[0] / NUM_SEEDS);
  printf("The pretrained features were learned from other digits only, yet a linear\n"
         "classifier on them needs no convolution training at all. How much transfer\n"
         "gains depends on how far the new task is from the old one and on how much\n"
         "a net can learn from the small set alone: 250 clean digits already take a\n"
         "convnet with batch normalization a long way.\n");
  printf("total time %.1f s\n", example_now() - t0);
  rc = EXIT_SUCCESS;
out:
  if (have_model)
    unlink(model);
  nnkit_dataset_free(all);
  nnkit_dataset_free(test);
  nnkit_dataset_free(pre);
  nnkit_dataset_free(pre_test);
  nnkit_dataset_free(new_test);
  nnkit_dataset_free(small);
  nnkit_dataset_free(codes);
  nnkit_dataset_free(test_codes);
  nnkit_net_free(net);
  nnkit_net_free(scratch);
  nnkit_net_free(linear);
  nnkit_net_free(tuned);
  return rc;
}
