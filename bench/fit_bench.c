/* fit_bench: the C side of bench/python_overhead.py. Trains the digits
 * MLP (784-256-128-10 with ReLU, seed 1) with SGD on the digits (pixels
 * scaled to [0, 1]), one nnkit_trainer_fit() of one epoch after another,
 * no per-layer statistics, and prints each epoch's seconds:
 *
 *   build/bench/fit_bench [--data data/digits] [--epochs 3] [--threads 1]
 *                         [--batch 32] [--lr 0.05] [--shuffle 1]
 *
 * prints "peer=c epochs=3 epoch_s=0.412,0.405,0.409 min_epoch_s=0.405".
 * Python's Trainer.fit on the same data, net, seed and settings runs the
 * same C loop; the difference is the cost of driving it from Python. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <nnkit.h>

#include "digits_data.h" /* digits_load_raw (examples/) */

#define CHECK(call)                                                               \
  do {                                                                            \
    nnkit_status st_ = (call);                                                    \
    if (st_ != NNKIT_OK) {                                                        \
      fprintf(stderr, "fit_bench: %s: %s\n", #call, nnkit_last_error());          \
      return 1;                                                                   \
    }                                                                             \
  } while (0)

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char usage[] =
    "usage: fit_bench [--data DIR] [--epochs N] [--threads N] [--batch N] "
    "[--lr X] [--shuffle 0|1]\n";

int main(int argc, char **argv)
{
  const char *data = "data/digits";
  long epochs = 3, threads = 1, batch = 32, shuffle = 1;
  double lr = 0.05;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      fprintf(stderr, "fit_bench: %s needs a value\n%s", argv[i], usage);
      return 2;
    }
    const char *o = argv[i], *v = argv[++i];
    char *end;
    long n = strtol(v, &end, 10);
    int ok = *v && !*end && n >= 0 && n <= 1 << 20;
    if (!strcmp(o, "--data")) {
      data = v;
      ok = 1;
    } else if (!strcmp(o, "--lr")) {
      lr = strtod(v, &end);
      ok = *v && !*end && lr > 0;
    } else if (!strcmp(o, "--epochs"))
      epochs = n, ok = ok && n >= 1;
    else if (!strcmp(o, "--threads"))
      threads = n, ok = ok && n >= 1;
    else if (!strcmp(o, "--batch"))
      batch = n, ok = ok && n >= 1;
    else if (!strcmp(o, "--shuffle"))
      shuffle = n, ok = ok && n <= 1;
    else {
      fprintf(stderr, "fit_bench: unknown option %s\n%s", o, usage);
      return 2;
    }
    if (!ok) {
      fprintf(stderr, "fit_bench: bad value '%s' for %s\n%s", v, o, usage);
      return 2;
    }
  }
  nnkit_dataset *train = NULL;
  if (digits_load_raw(&train, NULL, data) != NNKIT_OK) {
    fprintf(stderr, "fit_bench: cannot load the digits in %s (--data DIR): %s\n", data,
            nnkit_last_error());
    return 1;
  }
  CHECK(nnkit_set_num_threads((int)threads));
  CHECK(nnkit_dataset_scale(train, 1.0f / 255, 0));
  size_t shape[3] = {1, 28, 28};
  nnkit_net *net = NULL;
  CHECK(nnkit_net_create(&net, shape, 3, 1));
  CHECK(nnkit_net_add_dense(net, 256));
  CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  CHECK(nnkit_net_add_dense(net, 128));
  CHECK(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  CHECK(nnkit_net_add_dense(net, 10));
  nnkit_optimizer *opt = NULL;
  CHECK(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  CHECK(nnkit_optimizer_set(opt, NNKIT_OPT_LR, lr));
  nnkit_trainer *tr = NULL;
  CHECK(nnkit_trainer_create(&tr, net, opt));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 1));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, (double)batch));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, 1));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_SHUFFLE, (double)shuffle));
  CHECK(nnkit_trainer_set(tr, NNKIT_TRAIN_LAYER_STATS, 0));
  double best = 1e30;
  printf("peer=c epochs=%ld epoch_s=", epochs);
  for (long e = 0; e < epochs; e++) {
    double t0 = now();
    CHECK(nnkit_trainer_fit(tr, train, NULL));
    double s = now() - t0;
    printf("%s%.4f", e ? "," : "", s);
    if (s < best)
      best = s;
  }
  printf(" min_epoch_s=%.4f\n", best);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  return 0;
}
