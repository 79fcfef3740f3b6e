/* The digits case study's data, shared by the digits and monitoring
 * examples: loads the four MNIST-named IDX files from a directory, holds
 * out a stratified 10% of the training digits for validation
 * (deterministic by seed), and standardizes every pixel with the mean and
 * standard deviation of the training split's pixels: an nnkit_normalizer
 * (per-channel mean and std; the digits have one channel) fitted on the
 * training split only and applied unchanged to the validation and test
 * sets (the lecture's "compute the statistics on the training set").
 * Header-only, for the examples only. */
#ifndef NNKIT_EXAMPLE_DIGITS_DATA_H
#define NNKIT_EXAMPLE_DIGITS_DATA_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <nnkit.h>

typedef struct digits_data {
  nnkit_dataset *train, *val, *test;
  nnkit_normalizer *norm; /* fitted on the training split */
} digits_data;

static inline void digits_free(digits_data *d)
{
  nnkit_dataset_free(d->train);
  nnkit_dataset_free(d->val);
  nnkit_dataset_free(d->test);
  nnkit_normalizer_free(d->norm);
  d->train = d->val = d->test = NULL;
  d->norm = NULL;
}

/* The four MNIST-named IDX files of dir as stored (pixels 0..255): the
 * training set into *train and, unless test is NULL, the test set into
 * *test. Returns NNKIT_OK or the failing status (nnkit_last_error() says
 * why); on failure both are NULL. When the files are not there at all it
 * also prints, on stderr, how to fetch them. */
static inline nnkit_status digits_load_raw(nnkit_dataset **train, nnkit_dataset **test,
                                           const char *dir)
{
  char p[4][1024];
  const char *names[4] = {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                          "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
  for (int i = 0; i < 4; i++)
    snprintf(p[i], sizeof p[i], "%s/%s", dir, names[i]);
  *train = NULL;
  if (test)
    *test = NULL;
  nnkit_status st = nnkit_dataset_load_idx(train, p[0], p[1], 10);
  if (st == NNKIT_OK && test)
    st = nnkit_dataset_load_idx(test, p[2], p[3], 10);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(*train);
    *train = NULL;
    if (access(p[0], F_OK) != 0 || access(p[2], F_OK) != 0)
      fprintf(stderr,
              "the digits are not in %s: fetch them (10,000 MNIST digits, 8,000 "
              "for training and 2,000 for testing) with\n"
              "  python3 scripts/fetch_digits.py --out %s\n"
              "or run scripts/quickstart.sh, which fetches them and runs the case "
              "study.\n",
              dir, dir);
  }
  return st;
}

/* Returns NNKIT_OK or the failing status (nnkit_last_error() says why);
 * on failure d holds nothing. */
static inline nnkit_status digits_load(digits_data *d, const char *dir, uint64_t seed)
{
  nnkit_dataset *all = NULL;
  d->train = d->val = d->test = NULL;
  d->norm = NULL;
  nnkit_status st = digits_load_raw(&all, &d->test, dir);
  if (st == NNKIT_OK)
    st = nnkit_dataset_split(&d->train, &d->val, all, 0.1, seed);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_create(&d->norm, NNKIT_NORM_CHANNEL_MEAN);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_set(d->norm, NNKIT_NORM_WITH_STD, 1);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_fit(d->norm, d->train);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_apply(d->norm, d->train);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_apply(d->norm, d->val);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_apply(d->norm, d->test);
  nnkit_dataset_free(all);
  if (st != NNKIT_OK)
    digits_free(d);
  return st;
}

/* The case study's multi-layer perceptron: 784-256-128-10 with ReLU; with
 * dropout > 0, inverted dropout of that probability on the input and after
 * each hidden ReLU (identity at test time). */
static inline nnkit_status digits_mlp(nnkit_net **out, size_t in, uint64_t seed,
                                     double dropout)
{
  nnkit_net *net = NULL;
  nnkit_status st = nnkit_net_create(&net, &in, 1, seed);
  if (st == NNKIT_OK && dropout > 0)
    st = nnkit_net_add_dropout(net, dropout);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 256);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK && dropout > 0)
    st = nnkit_net_add_dropout(net, dropout);
  if (st == NNKIT_OK)
    st = nnkit_net_add_dense(net, 128);
  if (st == NNKIT_OK)
    st = nnkit_net_add_activation(net, NNKIT_ACT_RELU);
  if (st == NNKIT_OK && dropout > 0)
    st = nnkit_net_add_dropout(net, dropout);
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
