/* The digits case study's data, shared by the monitoring examples: loads
 * the four MNIST-named IDX files from a directory, normalizes every pixel
 * with the mean and standard deviation of the training images, and holds
 * out every tenth training digit for validation. Header-only, for the
 * examples only. */
#ifndef NNKIT_EXAMPLE_DIGITS_DATA_H
#define NNKIT_EXAMPLE_DIGITS_DATA_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nnkit.h>

typedef struct digits_data {
  nnkit_dataset *train, *val, *test;
  double mean, std;
} digits_data;

static void digits_free(digits_data *d)
{
  nnkit_dataset_free(d->train);
  nnkit_dataset_free(d->val);
  nnkit_dataset_free(d->test);
  d->train = d->val = d->test = NULL;
}

/* Returns NNKIT_OK or the failing status (nnkit_last_error() says why). */
static nnkit_status digits_load(digits_data *d, const char *dir)
{
  char p[4][1024];
  const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  for (int i = 0; i < 4; i++)
    snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
  nnkit_dataset *all = NULL;
  size_t *tix = NULL, *vix = NULL;
  d->train = d->val = d->test = NULL;
  nnkit_status st = nnkit_dataset_load_idx(&all, p[0], p[1], 10);
  if (st == NNKIT_OK)
    st = nnkit_dataset_load_idx(&d->test, p[2], p[3], 10);
  if (st != NNKIT_OK)
    goto out;
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(all);
  size_t npx = nnkit_dataset_count(all) * nnkit_dataset_sample_size(all);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  d->mean = sum / (double)npx;
  d->std = sqrt(sq / (double)npx - d->mean * d->mean);
  st = nnkit_dataset_scale(all, (float)(1.0 / d->std), (float)(-d->mean / d->std));
  if (st == NNKIT_OK)
    st = nnkit_dataset_scale(d->test, (float)(1.0 / d->std), (float)(-d->mean / d->std));
  if (st != NNKIT_OK)
    goto out;
  size_t n = nnkit_dataset_count(all), nv = n / 10, nt = n - nv;
  tix = malloc(nt * sizeof *tix);
  vix = malloc(nv * sizeof *vix);
  if (!tix || !vix) {
    st = NNKIT_E_NOMEM;
    goto out;
  }
  for (size_t i = 0, a = 0, b = 0; i < n; i++) {
    if (i % 10 == 9 && b < nv)
      vix[b++] = i;
    else
      tix[a++] = i;
  }
  st = nnkit_dataset_subset(&d->train, all, tix, nt);
  if (st == NNKIT_OK)
    st = nnkit_dataset_subset(&d->val, all, vix, nv);
out:
  free(tix);
  free(vix);
  nnkit_dataset_free(all);
  if (st != NNKIT_OK)
    digits_free(d);
  return st;
}

/* The case study's multi-layer perceptron: 784-256-128-10 with ReLU. */
static nnkit_status digits_mlp(nnkit_net **out, size_t in, uint64_t seed)
{
  nnkit_net *net = NULL;
  nnkit_status st = nnkit_net_create(&net, &in, 1, seed);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 256);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 128);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 10);
  if (st != NNKIT_OK) {
    nnkit_net_free(net);
    net = NULL;
  }
  *out = net;
  return st;
}

#endif
