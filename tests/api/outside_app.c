/* A program from outside the source tree: tests/api/pkgconfig_test.sh
 * installs nnkit into a temporary directory and builds this file with
 *   cc outside_app.c $(pkg-config --cflags --libs nnkit)
 * It trains a small net on points it makes up and checks the version. */
#include <nnkit.h>

#include <stdio.h>
#include <string.h>

#define N 300
#define CLASSES 3

static int check(nnkit_status st, const char *what) {
  if (st != NNKIT_OK) {
    fprintf(stderr, "outside_app: %s: %s: %s\n", what, nnkit_status_string(st),
            nnkit_last_error());
    return 1;
  }
  return 0;
}

int main(void) {
  static float x[N * 2];
  static int32_t y[N];
  const size_t shape[1] = {2};
  const float cx[CLASSES] = {-1.0f, 1.0f, 0.0f};
  const float cy[CLASSES] = {-1.0f, -1.0f, 1.2f};
  uint32_t s = 12345u;
  nnkit_dataset *ds = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  double loss0 = 0.0, loss1 = 0.0, acc = 0.0;
  int bad = 0;
  size_t i;

  printf("nnkit %s (headers %s)\n", nnkit_version(), NNKIT_VERSION_STRING);
  if (strcmp(nnkit_version(), NNKIT_VERSION_STRING) != 0) {
    fprintf(stderr, "outside_app: library %s != headers %s\n", nnkit_version(),
            NNKIT_VERSION_STRING);
    return 1;
  }

  /* Three blobs of 2-D points; a tiny LCG makes the noise. */
  for (i = 0; i < N; i++) {
    int c = (int)(i % CLASSES);
    float u, v;
    s = s * 1664525u + 1013904223u;
    u = (float)(s >> 8) / 16777216.0f - 0.5f;
    s = s * 1664525u + 1013904223u;
    v = (float)(s >> 8) / 16777216.0f - 0.5f;
    x[2 * i] = cx[c] + 0.6f * u;
    x[2 * i + 1] = cy[c] + 0.6f * v;
    y[i] = c;
  }

  bad |= check(nnkit_dataset_from_buffers(&ds, x, y, N, shape, 1, CLASSES),
               "dataset");
  bad |= bad ? 0 : check(nnkit_net_create(&net, shape, 1, 7), "net");
  bad |= bad ? 0 : check(nnkit_net_add_dense(net, 16), "dense");
  bad |= bad ? 0 : check(nnkit_net_add_activation(net, NNKIT_ACT_RELU), "relu");
  bad |= bad ? 0 : check(nnkit_net_add_dense(net, CLASSES), "dense");
  bad |= bad ? 0 : check(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD), "optimizer");
  bad |= bad ? 0 : check(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1), "lr");
  bad |= bad ? 0 : check(nnkit_net_evaluate(&loss0, NULL, net, ds), "evaluate");
  /* A few steps by hand ... */
  for (i = 0; !bad && i < 5; i++) {
    bad |= check(nnkit_net_forward(net, x, N, NULL, 0), "forward");
    bad |= bad ? 0 : check(nnkit_net_backward(net, y, NULL, NULL), "backward");
    bad |= bad ? 0 : check(nnkit_optimizer_step(opt, net), "step");
  }
  /* ... then the fit loop. */
  bad |= bad ? 0 : check(nnkit_trainer_create(&tr, net, opt), "trainer");
  bad |= bad ? 0 : check(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 20), "epochs");
  bad |= bad ? 0 : check(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 16), "batch");
  bad |= bad ? 0 : check(nnkit_trainer_fit(tr, ds, NULL), "fit");
  bad |= bad ? 0 : check(nnkit_net_evaluate(&loss1, &acc, net, ds), "evaluate");

  if (!bad) {
    printf("loss %.4f -> %.4f, accuracy %.3f\n", loss0, loss1, acc);
    if (!(loss1 < loss0) || acc < 0.9) {
      fprintf(stderr, "outside_app: the net did not learn\n");
      bad = 1;
    }
  }
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
  return bad ? 1 : 0;
}
