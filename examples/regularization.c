/* regularization: what L2 and L1 do to a small network that overfits.
 *
 * Trains a 784-256-10 ReLU network on only 1,000 handwritten digits
 * (the first thousand of data/digits' training file; validation: the last
 * 2,000 of it) three times from the same initialization: without
 * regularization, with an L2 penalty lambda sum w^2 and with an L1 penalty
 * lambda sum |w| (nnkit_regularizer attached to the optimizer; biases are
 * left out, as by default). It prints, for each run, the data loss and
 * regularization loss the trainer reports separately, the train and
 * validation loss and accuracy and their gaps (validation minus training
 * data loss; training minus validation accuracy), the L2 norm of all
 * weights, and the fraction of weights that are ~0 (|w| < 1e-3).
 *
 * Expected: L2 shrinks the weights and narrows the train/val gap; L1
 * drives a large share of the weights to ~0. Get the data with
 * scripts/fetch_digits.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <nnkit.h>

#include "digits_data.h"
#include "example_args.h"

static const char usage[] =
    "usage: regularization [options]\n"
    "Trains a small digits classifier without regularization, with L2 and with\n"
    "L1, and prints weight norms, sparsity and the train/val gap of each.\n";

#define NTRAIN 1000
#define NVAL 2000

typedef struct result {
  double data_loss, reg_loss, train_acc, val_acc, val_loss, norm, zero_frac;
  double seconds;
} result;

/* One training run; kind 0 = no regularizer. */
static nnkit_status run(result *res, const nnkit_dataset *train,
                        const nnkit_dataset *val, int kind, double lambda,
                        const example_args *a)
{
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_regularizer *reg = NULL;
  nnkit_status st;
  size_t in = nnkit_dataset_sample_size(train);
  TRY(nnkit_net_create(&net, &in, 1, (uint64_t)a->seed));
  TRY(nnkit_net_add_dense(net, 256));
  TRY(nnkit_net_add_activation(net, NNKIT_ACT_RELU));
  TRY(nnkit_net_add_dense(net, 10));
  TRY(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.02));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, 0.9));
  if (kind) {
    TRY(nnkit_regularizer_create(&reg, (nnkit_reg_kind)kind, lambda));
    TRY(nnkit_optimizer_add_regularizer(opt, reg)); /* the optimizer owns it */
  }
  TRY(nnkit_trainer_create(&tr, net, opt));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, (double)a->epochs));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_BATCH_SIZE, 32));
  TRY(nnkit_trainer_set(tr, NNKIT_TRAIN_SEED, (double)a->seed));
  TRY(nnkit_trainer_fit(tr, train, val));
  size_t last = nnkit_trainer_epochs_done(tr) - 1;
  TRY(nnkit_trainer_metric(&res->data_loss, tr, last, NNKIT_METRIC_TRAIN_LOSS));
  TRY(nnkit_trainer_metric(&res->reg_loss, tr, last, NNKIT_METRIC_REG_LOSS));
  res->seconds = 0;
  for (size_t e = 0; e <= last; e++) {
    double s;
    TRY(nnkit_trainer_metric(&s, tr, e, NNKIT_METRIC_SECONDS));
    res->seconds += s;
  }
  TRY(nnkit_net_evaluate(NULL, &res->train_acc, net, train));
  TRY(nnkit_net_evaluate(&res->val_loss, &res->val_acc, net, val));
  /* Weights only: the first units x inputs floats of each dense layer. */
  const float *p = nnkit_net_params(net);
  double ss = 0;
  size_t zeros = 0, count = 0;
  for (size_t layer = 0; layer < 3; layer += 2) {
    size_t off, n, dims[4], nd;
    TRY(nnkit_net_layer_params(&off, &n, net, layer));
    TRY(nnkit_net_layer_shape(dims, 4, &nd, net, layer));
    size_t nw = n - dims[0]; /* minus one bias per unit */
    for (size_t i = 0; i < nw; i++) {
      double w = p[off + i];
      ss += w * w;
      zeros += fabs(w) < 1e-3;
    }
    count += nw;
  }
  res->norm = sqrt(ss);
  res->zero_frac = (double)zeros / (double)count;
  st = NNKIT_OK;
out:
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"data/digits", 30, 1, 1, NULL, 0, NULL, 0}; /* one thread: the net is small */
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;

  nnkit_dataset *all = NULL, *train = NULL, *val = NULL;
  size_t idx[NVAL];
  int rc = EXIT_FAILURE;
  nnkit_status st;
  TRY(nnkit_set_num_threads((int)args.threads));
  TRY(digits_load_raw(&all, NULL, args.data));
  size_t n = nnkit_dataset_count(all);
  if (n < NTRAIN + NVAL) {
    fprintf(stderr, "regularization: %s has %zu training digits, %d are needed\n",
            args.data, n, NTRAIN + NVAL);
    goto out;
  }
  for (size_t i = 0; i < NTRAIN; i++)
    idx[i] = i;
  TRY(nnkit_dataset_subset(&train, all, idx, NTRAIN));
  for (size_t i = 0; i < NVAL; i++)
    idx[i] = n - NVAL + i;
  TRY(nnkit_dataset_subset(&val, all, idx, NVAL));
  /* Standardize with the training subset's pixel mean and std. */
  double sum = 0, sq = 0;
  const float *px = nnkit_dataset_data(train);
  size_t npx = NTRAIN * nnkit_dataset_sample_size(train);
  for (size_t i = 0; i < npx; i++) {
    sum += px[i];
    sq += (double)px[i] * px[i];
  }
  double mean = sum / (double)npx, sd = sqrt(sq / (double)npx - mean * mean);
  TRY(nnkit_dataset_scale(train, (float)(1.0 / sd), (float)(-mean / sd)));
  TRY(nnkit_dataset_scale(val, (float)(1.0 / sd), (float)(-mean / sd)));

  printf("regularization: %d training digits, %d validation digits from %s; "
         "784-256-10 ReLU, SGD lr 0.02 momentum 0.9, batch 32, %ld epochs\n",
         NTRAIN, NVAL, args.data, args.epochs);
  struct {
    const char *name;
    int kind;
    double lambda;
  } runs[] = {
    {"none", 0, 0},
    {"L2 3e-3", NNKIT_REG_L2, 3e-3},
    {"L1 3e-4", NNKIT_REG_L1, 3e-4},
  };
  result res[3];
  printf("%-9s %9s %9s %9s %9s %9s %9s %9s %9s %8s\n", "penalty", "data loss",
         "reg loss", "val loss", "loss gap", "train acc", "val acc", "acc gap", "|W|",
         "w ~ 0");
  for (int r = 0; r < 3; r++) {
    if (run(&res[r], train, val, runs[r].kind, runs[r].lambda, &args) != NNKIT_OK)
      goto out;
    printf("%-9s %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.4f %9.2f %7.1f%%  (%.1f s)\n",
           runs[r].name, res[r].data_loss, res[r].reg_loss, res[r].val_loss,
           res[r].val_loss - res[r].data_loss, res[r].train_acc, res[r].val_acc,
           res[r].train_acc - res[r].val_acc, res[r].norm, 100.0 * res[r].zero_frac,
           res[r].seconds);
  }
  printf("L2 changes the weight norm %.2f -> %.2f, the train/val loss gap %.4f -> %.4f "
         "and the accuracy gap %.4f -> %.4f\n",
         res[0].norm, res[1].norm, res[0].val_loss - res[0].data_loss,
         res[1].val_loss - res[1].data_loss, res[0].train_acc - res[0].val_acc,
         res[1].train_acc - res[1].val_acc);
  printf("L1 makes %.1f%% of the weights ~0 (|w| < 1e-3), against %.1f%% without\n",
         100.0 * res[2].zero_frac, 100.0 * res[0].zero_frac);
  rc = EXIT_SUCCESS;
out:
  nnkit_dataset_free(all);
  nnkit_dataset_free(train);
  nnkit_dataset_free(val);
  return rc;
}
