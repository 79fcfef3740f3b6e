/* quickstart: the smallest complete nnkit program.
 *
 * Makes a three-arm spiral (a classic problem no linear model can solve),
 * trains a two-layer network on it and checks that it learned. No files,
 * no arguments (--help says so); exits non-zero if the net did not reach
 * 90% accuracy. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#define PER_CLASS 100
#define CLASSES 3
#define N (PER_CLASS * CLASSES)

static int fail(const char *what)
{
  fprintf(stderr, "quickstart: %s: %s\n", what, nnkit_last_error());
  return EXIT_FAILURE;
}

int main(int argc, char **argv)
{
  if (argc > 1) {
    int help = !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h");
    fprintf(help ? stdout : stderr,
            "%susage: quickstart\n"
            "Trains a two-layer net on a three-arm spiral (300 points, no files)\n"
            "and checks that it reaches 90%% training accuracy. Takes no options.\n",
            help ? "" : "quickstart: unknown argument; ");
    return help ? EXIT_SUCCESS : 2;
  }
  /* Spiral arms: radius grows with t, angle with t plus the class offset. */
  static float x[N * 2];
  static int32_t y[N];
  unsigned noise = 12345;
  for (int c = 0; c < CLASSES; c++)
    for (int i = 0; i < PER_CLASS; i++) {
      double t = (double)i / PER_CLASS;
      noise = noise * 1103515245u + 12345u;
      double jitter = ((noise >> 16) % 1000 / 1000.0 - 0.5) * 0.4;
      double angle = c * 4.0 + 4.0 * t + jitter;
      x[(c * PER_CLASS + i) * 2 + 0] = (float)(t * sin(angle));
      x[(c * PER_CLASS + i) * 2 + 1] = (float)(t * cos(angle));
      y[c * PER_CLASS + i] = c;
    }

  nnkit_dataset *train = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  size_t shape[1] = {2};
  int rc = EXIT_FAILURE;

  if (nnkit_dataset_from_buffers(&train, x, y, N, shape, 1, CLASSES) != NNKIT_OK) {
    rc = fail("dataset");
    goto out;
  }
  if (nnkit_net_create(&net, shape, 1, 42) != NNKIT_OK ||
      nnkit_net_add_dense(net, 100) != NNKIT_OK ||
      nnkit_net_add_activation(net, NNKIT_ACT_RELU) != NNKIT_OK ||
      nnkit_net_add_dense(net, CLASSES) != NNKIT_OK) {
    rc = fail("net");
    goto out;
  }
  if (nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD) != NNKIT_OK ||
      nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.5) != NNKIT_OK ||
      nnkit_trainer_create(&tr, net, opt) != NNKIT_OK ||
      nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 300) != NNKIT_OK ||
      nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32) != NNKIT_OK) {
    rc = fail("setup");
    goto out;
  }
  double loss0, acc0, loss, acc;
  if (nnkit_net_evaluate(&loss0, &acc0, net, train) != NNKIT_OK ||
      nnkit_trainer_fit(tr, train, NULL) != NNKIT_OK ||
      nnkit_net_evaluate(&loss, &acc, net, train) != NNKIT_OK) {
    rc = fail("training");
    goto out;
  }
  printf("nnkit %s: spiral, %d samples, %d classes\n", nnkit_version(), N, CLASSES);
  printf("before training: loss %.4f, accuracy %.3f\n", loss0, acc0);
  printf("after %zu epochs: loss %.4f, accuracy %.3f\n", nnkit_trainer_epochs_done(tr),
         loss, acc);
  rc = acc >= 0.9 ? EXIT_SUCCESS : EXIT_FAILURE;
  if (rc != EXIT_SUCCESS)
    fprintf(stderr, "quickstart: the net did not learn the spiral (accuracy %.3f < 0.9)\n",
            acc);
out:
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(train);
  return rc;
}
