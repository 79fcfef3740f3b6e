/* monitor: the lecture's "how can I monitor my training?" on the digits.
 *
 * Three short runs of the case study's perceptron with SGD: a learning
 * rate far too high, one far too low and a good one. Each prints its epoch
 * lines, its history (per-epoch figures and per-layer statistics of the
 * last epoch) and the library's diagnosis of the curves; the program
 * checks that the diagnosis names the right cause for each run and exits
 * non-zero when it does not. Writes each run's history as CSV next to
 * --out. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: monitor [options]\n"
    "Trains the digits perceptron three times (learning rate far too high, far "
    "too low,\ngood), prints each history and the diagnosis, and checks that "
    "the diagnosis\nnames the right cause. Writes monitor_<run>.csv into the "
    "current directory.\n";

typedef struct run {
  const char *name;
  double lr;
  nnkit_verdict expect, also; /* the right causes for the first verdict */
} run;

/* One cell of the layer table: a figure, or "-" where it does not apply
 * (NaN in the history: dead ReLUs of a layer that is no ReLU, gradients of
 * a layer without weights). */
static void cell(const char *fmt, int width, double v)
{
  if (isnan(v))
    printf(" %*s", width, "-");
  else
    printf(fmt, v);
}

static int print_history(const nnkit_trainer *tr, nnkit_net *net)
{
  const nnkit_history *h = nnkit_trainer_history(tr);
  if (nnkit_history_epochs(h) == 0)
    printf("  no epoch finished: the fit stopped inside its first epoch\n");
  else
    printf("  epoch   cost      train acc  val loss   val acc   lr        seconds\n");
  for (size_t e = 0; e < nnkit_history_epochs(h); e++) {
    double v[6];
    nnkit_metric m[6] = {NNKIT_METRIC_TRAIN_LOSS, NNKIT_METRIC_TRAIN_ACC,
                         NNKIT_METRIC_VAL_LOSS, NNKIT_METRIC_VAL_ACC, NNKIT_METRIC_LR,
                         NNKIT_METRIC_SECONDS};
    for (int k = 0; k < 6; k++)
      if (nnkit_history_get(&v[k], h, e, m[k]) != NNKIT_OK)
        return 0;
    printf("  %5zu   %-9.4g %-10.4f %-10.4g %-9.4f %-9.1e %.2f\n", e + 1, v[0], v[1],
           v[2], v[3], v[4], v[5]);
  }
  size_t L = nnkit_history_num_layers(h), E = nnkit_history_epochs(h);
  if (L && E) {
    nnkit_layer_stat st[5] = {NNKIT_LSTAT_ACT_MEAN, NNKIT_LSTAT_ACT_STD, NNKIT_LSTAT_DEAD,
                              NNKIT_LSTAT_GRAD_NORM, NNKIT_LSTAT_UPDATE_RATIO};
    double *s = malloc(L * 5 * sizeof *s);
    if (s && nnkit_history_layer_stats(s, L * 5, st, 5, h, E - 1) == NNKIT_OK) {
      printf("  layers at epoch %zu (- where a figure does not apply):\n"
             "    %-22s %9s %9s %7s %10s %13s\n", E, "layer", "act mean", "act std",
             "dead", "grad norm", "update/weight");
      for (size_t l = 0; l < L; l++) {
        char name[23]; /* "3 dense 256 -> 128", without the "(N params)" */
        snprintf(name, sizeof name, "%zu %s", l + 1,
                 l < nnkit_net_num_layers(net) ? nnkit_net_layer_describe(net, l) : "");
        char *paren = strstr(name, " (");
        if (paren)
          *paren = '\0';
        printf("    %-22s", name);
        cell(" %9.4f", 9, s[l * 5]);
        cell(" %9.4f", 9, s[l * 5 + 1]);
        cell(" %7.3f", 7, s[l * 5 + 2]);
        cell(" %10.3g", 10, s[l * 5 + 3]);
        cell(" %13.3g", 13, s[l * 5 + 4]);
        printf("\n");
      }
    }
    free(s);
  }
  size_t nb = nnkit_history_batches(h);
  if (nb) {
    double first[3], last[3];
    size_t n1, n2;
    nnkit_history_batch_losses(first, NULL, 3, &n1, h, 0);
    nnkit_history_batch_losses(last, NULL, 3, &n2, h, nb > 3 ? nb - 3 : 0);
    printf("  %zu batches; first losses", nb);
    for (size_t i = 0; i < n1; i++)
      printf(" %.4g", first[i]);
    printf(", last");
    for (size_t i = 0; i < n2; i++)
      printf(" %.4g", last[i]);
    printf("\n");
  }
  return 1;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 4, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  digits_data dd;
  nnkit_status st = nnkit_set_num_threads((int)args.threads);
  if (st == NNKIT_OK)
    st = digits_load(&dd, args.data, (uint64_t)args.seed);
  if (st != NNKIT_OK) {
    fprintf(stderr, "monitor: %s\n  %s\n", nnkit_status_string(st), nnkit_last_error());
    return EXIT_FAILURE;
  }
  printf("digits: %zu train, %zu validation samples from %s; %ld epochs per run\n",
         nnkit_dataset_count(dd.train), nnkit_dataset_count(dd.val), args.data,
         args.epochs);
  run runs[3] = {
    {"too_high", 1.0, NNKIT_VERDICT_LR_TOO_HIGH, NNKIT_VERDICT_OSCILLATING},
    {"too_low", 1e-5, NNKIT_VERDICT_LR_TOO_LOW, NNKIT_VERDICT_LR_TOO_LOW},
    /* Trained long enough (--epochs), a good rate overfits: also right. */
    {"good", 0.05, NNKIT_VERDICT_HEALTHY, NNKIT_VERDICT_OVERFITTING},
  };
  int right = 0;
  for (int r = 0; r < 3; r++) {
    nnkit_net *net = NULL;
    nnkit_optimizer *opt = NULL;
    nnkit_trainer *tr = NULL;
    nnkit_diagnosis *d = NULL;
    printf("\n=== run %d: SGD, learning rate %g (%s) ===\n", r + 1, runs[r].lr,
           runs[r].name);
    st = digits_mlp(&net, nnkit_dataset_sample_size(dd.train), (uint64_t)args.seed, 0);
    if (st == NNKIT_OK)
      st = nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD);
    if (st == NNKIT_OK)
      st = nnkit_optimizer_set(opt, NNKIT_OPT_LR, runs[r].lr);
    if (st == NNKIT_OK)
      st = nnkit_trainer_create(&tr, net, opt);
    if (st == NNKIT_OK)
      st = nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)args.epochs);
    if (st == NNKIT_OK)
      st = nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32);
    if (st == NNKIT_OK)
      st = nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)args.seed);
    if (st == NNKIT_OK)
      st = nnkit_trainer_set(tr, NNKIT_TRAIN_VERBOSE, 1);
    if (st == NNKIT_OK)
      st = nnkit_trainer_set(tr, NNKIT_TRAIN_SANITY, 1); /* report, do not stop */
    if (st != NNKIT_OK) {
      fprintf(stderr, "monitor: %s\n", nnkit_last_error());
      nnkit_trainer_free(tr);
      nnkit_optimizer_free(opt);
      nnkit_net_free(net);
      digits_free(&dd);
      return EXIT_FAILURE;
    }
    st = nnkit_trainer_fit(tr, dd.train, dd.val);
    if (st == NNKIT_E_DIVERGED)
      printf("fit stopped: %s\n", nnkit_last_error());
    else if (st != NNKIT_OK)
      fprintf(stderr, "monitor: %s\n", nnkit_last_error());
    printf("history:\n");
    print_history(tr, net);
    char csv[64];
    snprintf(csv, sizeof csv, "monitor_%s.csv", runs[r].name);
    if (nnkit_history_save_csv(nnkit_trainer_history(tr), NNKIT_HISTORY_EPOCHS, csv) ==
        NNKIT_OK)
      printf("history written to %s (draw it: nnkit.History.from_csv('%s')"
             ".plot('monitor_%s.png'))\n", csv, csv, runs[r].name);
    if (nnkit_trainer_diagnose(&d, tr) == NNKIT_OK) {
      printf("diagnosis:\n%s", nnkit_diagnosis_report(d));
      nnkit_verdict v = nnkit_diagnosis_verdict(d, 0);
      int ok = v == runs[r].expect || v == runs[r].also;
      right += ok;
      printf("expected: %s -> %s\n", nnkit_verdict_name(runs[r].expect),
             ok ? "named correctly" : "MISSED");
    } else {
      fprintf(stderr, "monitor: %s\n", nnkit_last_error());
    }
    nnkit_diagnosis_free(d);
    nnkit_trainer_free(tr);
    nnkit_optimizer_free(opt);
    nnkit_net_free(net);
  }
  digits_free(&dd);
  printf("\nthe diagnosis named the right cause in %d of 3 runs\n", right);
  return right == 3 ? EXIT_SUCCESS : EXIT_FAILURE;
}
