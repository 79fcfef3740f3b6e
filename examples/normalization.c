/* normalization: "can I feed raw data into the model?" made concrete.
 *
 * The same 784-128-10 ReLU network (same seed, same SGD settings, same
 * batches) is trained on the digits five times: on raw 0..255 pixels, on
 * zero-mean pixels (the mean image subtracted), on standardized pixels
 * (per-pixel mean and std), on PCA-whitened inputs and on ZCA-whitened
 * inputs. Every normalizer is fitted on the training split only and then
 * applied unchanged to the validation and test images; the batch pipeline
 * normalizes each batch in its background thread. Prints the training loss
 * after each epoch side by side, then the final accuracies, and says why
 * each failing variant failed, from figures it measures: the scale of the
 * inputs the net saw and the share of hidden ReLUs that ended dead. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: normalization [options]\n"
    "Trains one net on raw, zero-mean, standardized, PCA- and ZCA-whitened "
    "digits and compares them.\n";

#define NUM_VARIANTS 5
#define MAX_EPOCHS 1000

typedef struct variant {
  const char *name;
  int kind; /* 0 = raw, else an nnkit_norm_kind */
  double loss[MAX_EPOCHS];
  size_t epochs_run;
  int diverged;
  size_t diverged_batch;  /* 1-based batch of the epoch where it happened */
  double input_rms;       /* root mean square of the first batch's inputs */
  double dead_relus;      /* share of hidden ReLUs never positive on val */
  double val_acc, test_acc, fit_seconds, train_seconds;
  size_t out_size;
} variant;

/* A normalized copy of ds (ds itself when nz is NULL: *copy stays NULL). */
static nnkit_status normalized(nnkit_dataset **copy, const nnkit_dataset *ds,
                               const nnkit_normalizer *nz)
{
  *copy = NULL;
  if (!nz)
    return NNKIT_OK;
  const nnkit_dataset *one[1] = {ds};
  nnkit_status st = nnkit_dataset_concat(copy, one, 1);
  if (st == NNKIT_OK)
    st = nnkit_normalizer_apply(nz, *copy);
  return st;
}

/* Trains and evaluates one variant. */
static nnkit_status run(variant *v, const nnkit_dataset *train,
                        const nnkit_dataset *val, const nnkit_dataset *test,
                        const example_args *args)
{
  nnkit_status st = NNKIT_OK;
  nnkit_normalizer *nz = NULL;
  nnkit_pipeline *p = NULL;
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_dataset *val_n = NULL, *test_n = NULL, *acts = NULL;

  if (v->kind) {
    TRY(nnkit_normalizer_create(&nz, (nnkit_norm_kind)v->kind));
    if (v->kind == NNKIT_NORM_PCA_WHITEN) {
      /* Keep the components holding 95% of the variance. */
      TRY(nnkit_normalizer_set(nz, NNKIT_NORM_VARIANCE, 0.95));
    }
    if (v->kind == NNKIT_NORM_PCA_WHITEN || v->kind == NNKIT_NORM_ZCA_WHITEN) {
      /* Pixels are 0..255: an epsilon of 0.1 on the [0, 1] scale keeps
       * near-constant directions (blank borders) from being blown up. */
      TRY(nnkit_normalizer_set(nz, NNKIT_NORM_EPSILON, 0.1 * 255 * 255));
    }
    double t0 = example_now();
    TRY(nnkit_normalizer_fit(nz, train));
    v->fit_seconds = example_now() - t0;
  }
  TRY(nnkit_pipeline_create(&p, train));
  TRY(nnkit_pipeline_set(p, NNKIT_PIPE_BATCH_SIZE, 64));
  TRY(nnkit_pipeline_set(p, NNKIT_PIPE_SEED, (double)args->seed));
  if (nz)
    TRY(nnkit_pipeline_set_normalizer(p, nz));
  size_t in = nnkit_pipeline_sample_size(p);
  v->out_size = in;
  TRY(nnkit_net_create(&net, &in, 1, (uint64_t)args->seed));
  TRY(nnkit_net_add_dense(net, 128));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dense(net, 10));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.01));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));

  double t0 = example_now();
  size_t n = nnkit_dataset_count(train);
  for (size_t e = 0; e < (size_t)args->epochs && !v->diverged; e++) {
    TRY(nnkit_pipeline_begin_epoch(p, e));
    double sum = 0;
    size_t b, batches = 0;
    for (;;) {
      TRY(nnkit_pipeline_next(&b, p));
      if (b == 0)
        break;
      double loss;
      if (e == 0 && v->input_rms == 0) {
        const float *x = nnkit_pipeline_batch_data(p);
        double s2 = 0;
        for (size_t i = 0; i < b * in; i++)
          s2 += (double)x[i] * x[i];
        v->input_rms = sqrt(s2 / (double)(b * in));
      }
      TRY(nnkit_net_forward(net, nnkit_pipeline_batch_data(p), b, NULL, 0));
      TRY(nnkit_net_backward(net, nnkit_pipeline_batch_labels(p), NULL, &loss));
      if (!isfinite(loss)) {
        v->diverged = 1;
        v->diverged_batch = batches + 1;
        break;
      }
      TRY(nnkit_optimizer_step(opt, net));
      sum += loss * (double)b;
      batches++;
    }
    v->loss[e] = v->diverged ? NAN : sum / (double)n;
    v->epochs_run = e + 1;
  }
  v->train_seconds = example_now() - t0;
  v->val_acc = v->test_acc = NAN;
  if (!v->diverged) {
    TRY(normalized(&val_n, val, nz));
    TRY(normalized(&test_n, test, nz));
    TRY(nnkit_net_evaluate(NULL, &v->val_acc, net, val_n ? val_n : val));
    TRY(nnkit_net_evaluate(NULL, &v->test_acc, net, test_n ? test_n : test));
    /* Dead ReLUs: hidden units (layer 1's outputs) that are 0 for every
     * validation image. A dead unit passes no gradient and never revives. */
    TRY(nnkit_net_features(&acts, net, 1, val_n ? val_n : val));
    size_t units = nnkit_dataset_sample_size(acts), m = nnkit_dataset_count(acts);
    const float *a = nnkit_dataset_data(acts);
    size_t dead = 0;
    for (size_t u = 0; u < units; u++) {
      size_t i = 0;
      while (i < m && a[i * units + u] <= 0)
        i++;
      dead += i == m;
    }
    v->dead_relus = (double)dead / (double)units;
  }
out:
  nnkit_dataset_free(acts);
  nnkit_dataset_free(val_n);
  nnkit_dataset_free(test_n);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  nnkit_pipeline_free(p);
  nnkit_normalizer_free(nz);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 10, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  if (args.epochs > MAX_EPOCHS) {
    fprintf(stderr, "normalization: at most %d epochs\n", MAX_EPOCHS);
    return 2;
  }

  static variant v[NUM_VARIANTS] = {
    {.name = "raw 0..255", .kind = 0},
    {.name = "zero-mean", .kind = NNKIT_NORM_MEAN_IMAGE},
    {.name = "standardized", .kind = NNKIT_NORM_STANDARDIZE},
    {.name = "PCA-whitened", .kind = NNKIT_NORM_PCA_WHITEN},
    {.name = "ZCA-whitened", .kind = NNKIT_NORM_ZCA_WHITEN},
  };
  nnkit_dataset *all = NULL, *train = NULL, *val = NULL, *test = NULL;
  int rc = EXIT_FAILURE;
  nnkit_status st;

  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, &test, args.data));
  /* A stratified 10% validation split; normalizers see only train. */
  TRY(nnkit_dataset_split(&train, &val, all, 0.1, (uint64_t)args.seed));
  printf("normalization: %zu train, %zu validation, %zu test digits from %s\n",
         nnkit_dataset_count(train), nnkit_dataset_count(val),
         nnkit_dataset_count(test), args.data);
  printf("net: dense 128, ReLU, dense 10; SGD lr 0.01 momentum 0.9, batch 64, "
         "%ld epochs, seed %ld, %d thread(s)\n\n", args.epochs, args.seed,
         nnkit_get_num_threads());

  for (int i = 0; i < NUM_VARIANTS; i++) {
    TRY(run(&v[i], train, val, test, &args));
    printf("%-13s inputs of %3zu values: normalizer fitted in %5.2f s, "
           "trained in %5.2f s%s\n", v[i].name, v[i].out_size,
           v[i].fit_seconds, v[i].train_seconds,
           v[i].diverged ? "  (DIVERGED: the cost became NaN/inf; why: below)" : "");
    fflush(stdout);
  }

  printf("\ntraining loss after each epoch\nepoch");
  for (int i = 0; i < NUM_VARIANTS; i++)
    printf(" %13s", v[i].name);
  printf("\n");
  for (long e = 0; e < args.epochs; e++) {
    printf("%5ld", e + 1);
    for (int i = 0; i < NUM_VARIANTS; i++) {
      if ((size_t)e >= v[i].epochs_run || isnan(v[i].loss[e]))
        printf(" %13s", (size_t)e < v[i].epochs_run ? "diverged" : "-");
      else if (v[i].loss[e] < 1e5)
        printf(" %13.4f", v[i].loss[e]);
      else
        printf(" %13.3e", v[i].loss[e]);
    }
    printf("\n");
  }
  printf("\nfinal accuracy\n     ");
  for (int i = 0; i < NUM_VARIANTS; i++)
    printf(" %13s", v[i].name);
  printf("\nval  ");
  for (int i = 0; i < NUM_VARIANTS; i++)
    printf(" %13.4f", v[i].val_acc);
  printf("\ntest ");
  for (int i = 0; i < NUM_VARIANTS; i++)
    printf(" %13.4f", v[i].test_acc);
  printf("\n");

  /* Why the failures failed, in the figures measured above. */
  const variant *ref = &v[2]; /* standardized */
  printf("\nwhy (measured: the RMS of the inputs of the first batch; hidden ReLUs "
         "that are 0 on every validation image)\n");
  for (int i = 0; i < NUM_VARIANTS; i++) {
    printf("  %-13s input RMS %7.2f", v[i].name, v[i].input_rms);
    if (v[i].diverged)
      printf(", diverged in epoch %zu, batch %zu\n", v[i].epochs_run, v[i].diverged_batch);
    else
      printf(", dead ReLUs %5.1f%%\n", 100 * v[i].dead_relus);
  }
  for (int i = 0; i < NUM_VARIANTS; i++) {
    double ratio = ref->input_rms > 0 ? v[i].input_rms / ref->input_rms : 0;
    if (v[i].diverged)
      printf("%s: inputs %.0fx larger than standardized ones make the first layer's\n"
             "  outputs and its weight gradients ~%.0fx larger, so the same lr 0.01 takes\n"
             "  steps far too big: the loss overflowed. Standardize, or divide the rate\n"
             "  by that factor.\n",
             v[i].name, ratio, ratio);
    else if (v[i].epochs_run > 0 &&
             fabs(v[i].loss[v[i].epochs_run - 1] - log(10.0)) < 0.02 * log(10.0))
      printf("%s: the loss sits at ln 10 = 2.3026, the loss of a constant guess.\n"
             "  Inputs %.0fx larger than standardized ones made the first steps huge;\n"
             "  they pushed %.0f%% of the hidden ReLUs below zero for every input, and a\n"
             "  dead ReLU passes no gradient, so the net cannot recover.\n",
             v[i].name, ratio, 100 * v[i].dead_relus);
  }
  rc = EXIT_SUCCESS;
out:
  nnkit_dataset_free(all);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  nnkit_dataset_free(test);
  return rc;
}
