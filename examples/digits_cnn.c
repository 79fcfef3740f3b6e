/* digits_cnn: the handwritten-digits case study with a small convnet.
 *
 * Loads the four MNIST-named IDX files from --data (default data/digits:
 * 8,000 training and 2,000 test digits; --data
 * /usr/share/datasets/fashion-mnist gives Fashion-MNIST's 60,000/10,000),
 * normalizes with the training set's pixel mean and std, holds out every
 * tenth training image for validation, and trains
 *
 *   conv 3x3 (32) - batch norm - ReLU - max pool 2
 *   conv 3x3 (64) - batch norm - ReLU - max pool 2
 *   dense 128 - ReLU - dropout 0.5 - dense 10
 *
 * with mini-batch SGD with momentum 0.9 (batch 32, learning rate 0.01
 * annealed to 0 along a cosine over the whole run, one schedule step per
 * batch), printing the lecture's epoch lines, the seconds per epoch and the
 * final test accuracy. The defaults (15 epochs) reach about 98.6% on the
 * digits; `--data /usr/share/datasets/fashion-mnist --epochs 10` about 91%
 * on Fashion-MNIST.
 *
 * --checkpoint DIR writes a checkpoint into DIR after every epoch (the
 * newest three are kept); --resume FILE continues the run such a file (or
 * nnkit_trainer_save_checkpoint()) holds, with the same other options, to
 * the same weights as the uninterrupted run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: digits_cnn [options]\n"
    "Trains a small convolutional network (conv-BN-ReLU-pool x2, dense, dropout)\n"
    "on handwritten digits, or on Fashion-MNIST with --data\n"
    "/usr/share/datasets/fashion-mnist, and prints the test accuracy and the\n"
    "seconds per epoch.\n"
    "  --checkpoint DIR  write a checkpoint into DIR after every epoch (keeps 3)\n"
    "  --resume FILE     continue the run saved in a checkpoint (same options)\n";

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 15, 1, 0, NULL, 0, NULL, 0};
  /* This example's own options, taken out before the shared ones. */
  const char *ckpt_dir = NULL, *resume = NULL;
  int kept = 1;
  for (int i = 1; i < argc; i++) {
    int ck = !strcmp(argv[i], "--checkpoint"), rs = !strcmp(argv[i], "--resume");
    if ((ck || rs) && i + 1 >= argc) {
      fprintf(stderr, "%s: missing value (see --help)\n", argv[i]);
      return 2;
    }
    if (ck || rs)
      *(ck ? &ckpt_dir : &resume) = argv[++i];
    else
      argv[kept++] = argv[i];
  }
  argc = kept;
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  nnkit_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_schedule *sched = NULL;
  size_t *tix = NULL, *vix = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;
  const double lr = 0.01, momentum = 0.9;
  const size_t batch = 32;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test, args.data));
  /* Normalize with the training set's statistics only. */
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(all);
  size_t npx = nnkit_dataset_count(all) * nnkit_dataset_sample_size(all);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  double mean = sum / (double)npx, sd = sqrt(sq / (double)npx - mean * mean);
  TRY(nnkit_dataset_scale(all, (float)(1.0 / sd), (float)(-mean / sd)));
  TRY(nnkit_dataset_scale(test, (float)(1.0 / sd), (float)(-mean / sd)));

  /* Every tenth training image becomes the validation set. */
  size_t n = nnkit_dataset_count(all), nv = n / 10, nt = n - nv;
  tix = malloc(nt * sizeof *tix);
  vix = malloc(nv * sizeof *vix);
  if (!tix || !vix) {
    fprintf(stderr, "digits_cnn: out of memory\n");
    goto out;
  }
  for (size_t i = 0, a = 0, b = 0; i < n; i++) {
    if (i % 10 == 9 && b < nv)
      vix[b++] = i;
    else
      tix[a++] = i;
  }
  TRY(nnkit_dataset_subset(&train, all, tix, nt));
  TRY(nnkit_dataset_subset(&val, all, vix, nv));

  /* Samples are [1, H, W] images. */
  size_t shape[3] = {nnkit_dataset_dim(train, 0), nnkit_dataset_dim(train, 1),
                     nnkit_dataset_dim(train, 2)};
  TRY(nnkit_net_create(&net, shape, nnkit_dataset_ndim(train), (uint64_t)args.seed));
  TRY(nnkit_net_add_conv2d(net, 32, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
  TRY(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  TRY(nnkit_net_add_conv2d(net, 64, 3, 3, 1, 1, NNKIT_PAD_SAME, NNKIT_PAD_SAME, 0));
  TRY(nnkit_net_add_batchnorm(net, 0.1, 1e-5));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  TRY(nnkit_net_add_flatten(net));
  TRY(nnkit_net_add_dense(net, 128));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dropout(net, 0.5));
  TRY(nnkit_net_add_dense(net, 10));

  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, momentum));
  /* Cosine annealing from lr to 0 over every step of the run. */
  size_t steps = (nt + batch - 1) / batch * (size_t)args.epochs;
  TRY(nnkit_schedule_create(&sched, NNKIT_SCHEDULE_COSINE));
  TRY(nnkit_schedule_set(sched, NNKIT_SCHED_PER_BATCH, 1));
  TRY(nnkit_schedule_set(sched, NNKIT_SCHED_T_MAX, (double)steps));
  TRY(nnkit_optimizer_set_schedule(opt, sched));
  sched = NULL; /* owned by the optimizer now */
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)args.epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)batch));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)args.seed));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1));
  if (ckpt_dir) {
    TRY(nnkit_trainer_set_checkpoint_dir(tr, ckpt_dir));
    TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_CHECKPOINT_EVERY, 1));
  }

  printf("digits_cnn: %zu train, %zu validation, %zu test images from %s; "
         "%d thread(s)\n",
         nt, nv, nnkit_dataset_count(test), args.data, nnkit_get_num_threads());
  printf("normalized with the training set's pixel mean %.2f and std %.2f\n", mean, sd);
  for (size_t i = 0; i < nnkit_net_num_layers(net); i++)
    printf("  layer %2zu: %s\n", i, nnkit_net_layer_describe(net, i));
  printf("%zu parameters; optimizer: SGD with momentum %g, lr %g annealed to 0 "
         "(cosine, per batch), batch %zu\n",
         nnkit_net_num_params(net), momentum, lr, batch);

  if (resume) {
    TRY(nnkit_trainer_resume(tr, resume));
    if (!ckpt_dir) /* a checkpoint written with --checkpoint asks for more */
      TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_CHECKPOINT_EVERY, 0));
    printf("resumed from %s after %zu epoch(s)\n", resume, nnkit_trainer_epochs_done(tr));
  }
  TRY(nnkit_trainer_fit(tr, train, val));

  size_t epochs = nnkit_trainer_epochs_done(tr);
  double seconds = 0, s, val_acc = 0;
  for (size_t e = 0; e < epochs; e++) {
    TRY(nnkit_trainer_metric(&s, tr, e, NNKIT_METRIC_SECONDS));
    seconds += s;
  }
  TRY(nnkit_trainer_metric(&val_acc, tr, epochs - 1, NNKIT_METRIC_VAL_ACC));
  double test_loss, test_acc;
  TRY(nnkit_net_evaluate(&test_loss, &test_acc, net, test));
  printf("training time: %.1f s, %.2f s per epoch (%zu epochs, %d thread(s))\n",
         seconds, seconds / (double)epochs, epochs, nnkit_get_num_threads());
  printf("validation accuracy: %.4f\n", val_acc);
  printf("test loss: %.4f\n", test_loss);
  printf("test accuracy: %.4f\n", test_acc);
  rc = EXIT_SUCCESS;
out:
  free(tix);
  free(vix);
  nnkit_trainer_free(tr);
  nnkit_schedule_free(sched);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(all);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  nnkit_dataset_free(test);
  return rc;
}
