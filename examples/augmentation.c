/* augmentation: data augmentation as a regularizer, on few data.
 *
 * A small digits CNN is trained twice on the same stratified 1,000-digit
 * subset of the training set, with the same seed and settings: once on the
 * images as they are, once through an augmenter (random rotation, zoom,
 * shear, shift and erasing; labels unchanged). The batch pipeline applies
 * the augmentation in its background thread, drawing every random choice
 * from (seed, epoch, position), so the run is reproducible. Prints both
 * training losses per epoch and both test accuracies on the 2,000 test
 * digits, and writes a grid of augmented samples (first column: the
 * original) to augmentation_grid.pgm and augmentation_grid.png. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>
#include <stb_image_write.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: augmentation [options]\n"
    "Trains a CNN on 1,000 digits with and without augmentation and compares "
    "test accuracies.\n";

#define SUBSET 1000
#define MAX_EPOCHS 1000

/* The augmentation recipe: mild geometric changes a digit survives. */
static nnkit_status make_augmenter(nnkit_augmenter **out)
{
  nnkit_augmenter *aug = NULL;
  nnkit_status st;
  TRY(nnkit_augmenter_create(&aug));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_ROTATE, 0.8, -12, 12));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SCALE, 0.5, 0.9, 1.1));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_SHEAR_X, 0.3, -12, 12));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 0.8, 2.5, 2.5));
  TRY(nnkit_augmenter_add(aug, NNKIT_AUG_ERASE, 0.25, 0.02, 0.08));
  *out = aug;
  return NNKIT_OK;
out:
  nnkit_augmenter_free(aug);
  return st;
}

/* Trains a fresh CNN on train (augmented when aug != NULL); fills
 * loss[epoch] and the test accuracy. */
static nnkit_status run(double *loss, double *acc_out, double *seconds,
                        const nnkit_dataset *train, const nnkit_dataset *test,
                        const nnkit_augmenter *aug, const example_args *args)
{
  nnkit_status st = NNKIT_OK;
  nnkit_pipeline *p = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  size_t shape[3] = {nnkit_dataset_dim(train, 0), nnkit_dataset_dim(train, 1),
                     nnkit_dataset_dim(train, 2)};
  TRY(nnkit_net_create(&net, shape, 3, (uint64_t)args->seed));
  TRY(nnkit_net_add_conv2d(net, 16, 5, 5, 1, 1, 2, 2, 1));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  TRY(nnkit_net_add_conv2d(net, 32, 5, 5, 1, 1, 2, 2, 1));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_maxpool2d(net, 2, 2, 0, 0, 0, 0));
  TRY(nnkit_net_add_flatten(net));
  TRY(nnkit_net_add_dense(net, 64));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dense(net, 10));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.02));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  TRY(nnkit_pipeline_create(&p, train));
  TRY(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 32));
  TRY(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, (double)args->seed));
  if (aug)
    TRY(nnkit_pipeline_set_augmenter(p, aug));
  double t0 = example_now();
  size_t n = nnkit_dataset_count(train);
  for (size_t e = 0; e < (size_t)args->epochs; e++) {
    TRY(nnkit_pipeline_begin_epoch(p, e));
    double sum = 0;
    size_t b;
    for (;;) {
      TRY(nnkit_pipeline_next(&b, p));
      if (b == 0)
        break;
      double l;
      TRY(nnkit_net_forward(net, nnkit_pipeline_batch_data(p), b, NULL, 0));
      TRY(nnkit_net_backward(net, nnkit_pipeline_batch_labels(p), NULL, &l));
      TRY(nnkit_optimizer_step(opt, net));
      sum += l * (double)b;
    }
    loss[e] = sum / (double)n;
  }
  *seconds = example_now() - t0;
  TRY(nnkit_net_evaluate(NULL, acc_out, net, test));
out:
  nnkit_pipeline_free(p);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  return st;
}

/* One digit per class (rows), the original then 9 augmentations (columns),
 * as 8-bit gray tiles with 2-pixel gaps; written as PGM and PNG. */
static nnkit_status write_grid(const nnkit_dataset *ds,
                               const nnkit_augmenter *aug, uint64_t seed)
{
  enum { ROWS = 10, COLS = 10, GAP = 2 };
  size_t h = nnkit_dataset_dim(ds, 1), w = nnkit_dataset_dim(ds, 2);
  size_t per = h * w, gw = COLS * (w + GAP) + GAP, gh = ROWS * (h + GAP) + GAP;
  unsigned char *img = malloc(gw * gh);
  float *tile = malloc(per * sizeof *tile);
  nnkit_status st = NNKIT_OK;
  if (!img || !tile) {
    free(img);
    free(tile);
    fprintf(stderr, "augmentation: out of memory for the grid\n");
    return NNKIT_E_NOMEM;
  }
  memset(img, 96, gw * gh); /* gray gaps */
  const int32_t *labels = nnkit_dataset_labels(ds);
  for (int r = 0; r < ROWS; r++) {
    size_t k = 0;
    while (k < nnkit_dataset_count(ds) && labels[k] != r)
      k++;
    if (k == nnkit_dataset_count(ds))
      continue;
    for (int c = 0; c < COLS; c++) {
      memcpy(tile, nnkit_dataset_data(ds) + k * per, per * sizeof *tile);
      if (c > 0) {
        size_t shape[3] = {1, h, w};
        st = nnkit_augmenter_apply(aug, tile, 1, shape, 3, seed, (uint64_t)c,
                                   (uint64_t)r);
        if (st != NNKIT_OK)
          goto done;
      }
      for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
          float v = tile[y * w + x] * 255.0f;
          v = v < 0 ? 0 : v > 255 ? 255 : v;
          img[(GAP + r * (h + GAP) + y) * gw + GAP + c * (w + GAP) + x] =
              (unsigned char)(v + 0.5f);
        }
    }
  }
  FILE *f = fopen("augmentation_grid.pgm", "wb");
  if (!f || fprintf(f, "P5\n%zu %zu\n255\n", gw, gh) < 0 ||
      fwrite(img, 1, gw * gh, f) != gw * gh || fclose(f) != 0) {
    fprintf(stderr, "augmentation: cannot write augmentation_grid.pgm\n");
    st = NNKIT_E_IO;
    goto done;
  }
  if (!stbi_write_png("augmentation_grid.png", (int)gw, (int)gh, 1, img,
                      (int)gw)) {
    fprintf(stderr, "augmentation: cannot write augmentation_grid.png\n");
    st = NNKIT_E_IO;
    goto done;
  }
  printf("wrote augmentation_grid.pgm and augmentation_grid.png (%zux%zu): one "
         "digit per row, the original first, then 9 augmentations\n", gw, gh);
done:
  free(img);
  free(tile);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 30, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  if (args.epochs > MAX_EPOCHS) {
    fprintf(stderr, "augmentation: at most %d epochs\n", MAX_EPOCHS);
    return 2;
  }
  static double loss_plain[MAX_EPOCHS], loss_aug[MAX_EPOCHS];
  nnkit_dataset *all = NULL, *rest = NULL, *small = NULL, *test = NULL;
  nnkit_augmenter *aug = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test, args.data));
  /* Pixels to [0, 1]: the background is 0, which is also what the
   * augmenter reads outside the image, so shifted digits get clean edges. */
  TRY(nnkit_dataset_scale(all, 1.0f / 255, 0));
  TRY(nnkit_dataset_scale(test, 1.0f / 255, 0));
  /* A stratified subset of 1,000 training digits (the "held-out" part of a
   * split is the subset; the rest is not used). */
  double frac = (double)SUBSET / (double)nnkit_dataset_count(all);
  TRY(nnkit_dataset_split(&rest, &small, all, frac, (uint64_t)args.seed));
  TRY(make_augmenter(&aug));
  printf("augmentation: CNN on %zu of %zu training digits, tested on %zu; "
         "%ld epochs, seed %ld, %d thread(s)\n", nnkit_dataset_count(small),
         nnkit_dataset_count(all), nnkit_dataset_count(test), args.epochs,
         args.seed, nnkit_get_num_threads());
  printf("net: conv5x5(16)-ReLU-maxpool2-conv5x5(32)-ReLU-maxpool2-dense64-"
         "ReLU-dense10; SGD lr 0.02 momentum 0.9, batch 32\n");
  printf("augmenter: rotate +-12 deg (p 0.8), zoom 0.9..1.1 (p 0.5), shear "
         "+-12 deg (p 0.3), shift +-2.5 px (p 0.8), erase 2-8%% (p 0.25)\n");
  TRY(write_grid(small, aug, (uint64_t)args.seed));

  double acc_plain, acc_aug, s_plain, s_aug;
  TRY(run(loss_plain, &acc_plain, &s_plain, small, test, NULL, &args));
  TRY(run(loss_aug, &acc_aug, &s_aug, small, test, aug, &args));

  printf("\ntraining loss after each epoch\nepoch  without  with augmentation\n");
  for (long e = 0; e < args.epochs; e++)
    printf("%5ld  %7.4f  %7.4f\n", e + 1, loss_plain[e], loss_aug[e]);
  printf("\ntraining time: %.1f s without, %.1f s with augmentation\n", s_plain,
         s_aug);
  printf("test accuracy without augmentation: %.4f\n", acc_plain);
  printf("test accuracy with augmentation:    %.4f (%+.2f points)\n", acc_aug,
         100 * (acc_aug - acc_plain));
  rc = EXIT_SUCCESS;
out:
  nnkit_augmenter_free(aug);
  nnkit_dataset_free(all);
  nnkit_dataset_free(rest);
  nnkit_dataset_free(small);
  nnkit_dataset_free(test);
  return rc;
}
