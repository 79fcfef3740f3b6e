/* init_study: the lecture's weight-initialization experiment.
 *
 * A 10-layer network of 500 tanh units fed 1000 inputs drawn from N(0, 1),
 * initialized with weights of std 0.01, std 1.0 and Xavier (normal), plus
 * the same depth of ReLU units with He initialization. For each it prints
 * the mean and standard deviation of every layer's activations (and the
 * fraction of saturated tanh units / dead ReLUs), shows the collapse of
 * small weights, the saturation of big ones and the stable statistics of
 * Xavier and He, and writes each network's per-layer activation histograms
 * as CSV (init_study_<name>.csv: layer,kind,bin_lo,bin_hi,count). Exits
 * non-zero if one of the three effects does not show. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

#include "example_args.h"

#define DEPTH 10
#define WIDTH 500
#define SAMPLES 1000

static const char usage[] =
    "usage: init_study [options]\n"
    "Forward N(0,1) inputs through 10 layers of 500 units under four "
    "initializations\nand print per-layer activation statistics (--data and "
    "--epochs are unused).\n";

typedef struct config {
  const char *name, *title;
  nnkit_activation act;
  nnkit_init_kind kind;
  double a, b;
} config;

/* stats_out: DEPTH rows of mean, std, saturated, dead (activation layers). */
static nnkit_status study(double stats_out[DEPTH][4], const config *c,
                          const float *x, uint64_t seed)
{
  size_t in = WIDTH;
  nnkit_net *net = NULL;
  nnkit_init *w = NULL;
  nnkit_status st = nnkit_net_create(&net, &in, 1, seed);
  if (st == NNKIT_OK)
    st = nnkit_init_create(&w, c->kind, c->a, c->b);
  for (size_t i = 0; i < DEPTH && st == NNKIT_OK; i++) {
    st = nnkit_net_add_dense(net, WIDTH);
    if (st == NNKIT_OK)
      st = nnkit_net_set_init(net, 2 * i, w, NULL); /* zero bias */
    if (st == NNKIT_OK)
      st = nnkit_net_add_activation(net, c->act);
  }
  nnkit_layer_stat want[4] = {NNKIT_LSTAT_ACT_MEAN, NNKIT_LSTAT_ACT_STD,
                              NNKIT_LSTAT_SATURATED, NNKIT_LSTAT_DEAD};
  double *all = malloc(2 * DEPTH * 4 * sizeof *all);
  if (!all)
    st = NNKIT_E_NOMEM;
  if (st == NNKIT_OK) /* a forward pass only: no labels, no gradients */
    st = nnkit_net_layer_stats(all, 2 * DEPTH * 4, want, 4, net, x, NULL, NULL, SAMPLES);
  if (st == NNKIT_OK) {
    for (size_t l = 0; l < DEPTH; l++)
      memcpy(stats_out[l], all + (2 * l + 1) * 4, 4 * sizeof(double));
    char path[64];
    snprintf(path, sizeof path, "init_study_%s.csv", c->name);
    int relu = c->act == NNKIT_ACT_RELU;
    st = nnkit_net_save_histograms_csv(net, path, 40, relu ? 0 : -1, relu ? 4 : 1);
    if (st == NNKIT_OK)
      printf("  histograms of all %d layers written to %s (draw them: "
             "nnkit.plot.histograms_csv('%s', 'init_study_%s.png'))\n", 2 * DEPTH, path,
             path, c->name);
  }
  free(all);
  nnkit_init_free(w);
  nnkit_net_free(net);
  return st;
}

int main(int argc, char **argv)
{
  example_args args = {"(unused)", 1, 1, 0, NULL, 0, NULL, 0};
  int pr = example_parse(&args, argc, argv, usage);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  nnkit_status st = nnkit_set_num_threads((int)args.threads);
  float *x = malloc((size_t)SAMPLES * WIDTH * sizeof *x);
  if (!x || st != NNKIT_OK) {
    fprintf(stderr, "init_study: %s\n", x ? nnkit_last_error() : "out of memory");
    free(x);
    return EXIT_FAILURE;
  }
  /* Inputs N(0, 1): a Box-Muller stream from the seed. */
  uint64_t s = (uint64_t)args.seed * 2654435761u + 1;
  for (size_t i = 0; i < (size_t)SAMPLES * WIDTH; i += 2) {
    double u[2];
    for (int k = 0; k < 2; k++) {
      s = s * 6364136223846793005ULL + 1442695040888963407ULL;
      u[k] = ((double)(s >> 11) + 0.5) / 9007199254740992.0;
    }
    double r = sqrt(-2 * log(u[0]));
    x[i] = (float)(r * cos(6.283185307179586 * u[1]));
    x[i + 1] = (float)(r * sin(6.283185307179586 * u[1]));
  }
  config cs[4] = {
    {"std0.01", "tanh, weights N(0, 0.01^2)", NNKIT_ACT_TANH, NNKIT_INIT_NORMAL, 0, 0.01},
    {"std1.0", "tanh, weights N(0, 1)", NNKIT_ACT_TANH, NNKIT_INIT_NORMAL, 0, 1.0},
    {"xavier", "tanh, Xavier normal", NNKIT_ACT_TANH, NNKIT_INIT_XAVIER_NORMAL, 1, 0},
    {"he", "ReLU, He normal", NNKIT_ACT_RELU, NNKIT_INIT_HE_NORMAL, 0, 0},
  };
  double st4[4][DEPTH][4];
  printf("%d layers of %d units, %d inputs from N(0, 1)\n", DEPTH, WIDTH, SAMPLES);
  for (int c = 0; c < 4; c++) {
    printf("\n%s\n", cs[c].title);
    st = study(st4[c], &cs[c], x, (uint64_t)args.seed);
    if (st != NNKIT_OK) {
      fprintf(stderr, "init_study: %s\n  %s\n", nnkit_status_string(st),
              nnkit_last_error());
      free(x);
      return EXIT_FAILURE;
    }
    int relu = cs[c].act == NNKIT_ACT_RELU;
    printf("  layer   mean        std         %s\n", relu ? "dead" : "|a| > 0.99");
    for (int l = 0; l < DEPTH; l++)
      printf("  %5d   %+.3e  %.3e   %5.1f%%\n", l + 1, st4[c][l][0], st4[c][l][1],
             100 * st4[c][l][relu ? 3 : 2]);
  }
  free(x);

  /* The lecture's three observations, checked. */
  double collapse = st4[0][DEPTH - 1][1] / st4[0][0][1];
  double sat = 0;
  for (int l = 0; l < DEPTH; l++)
    sat += st4[1][l][2] / DEPTH;
  double xav = st4[2][DEPTH - 1][1] / st4[2][0][1];
  double he = st4[3][DEPTH - 1][1] / st4[3][0][1];
  int ok1 = collapse < 1e-3, ok2 = sat > 0.5, ok3 = xav > 0.1 && he > 0.1 && he < 10;
  printf("\nstd 0.01: the std at layer %d is %.1e of layer 1's: the activations "
         "collapse to zero %s\n", DEPTH, collapse, ok1 ? "(shown)" : "(NOT shown)");
  printf("std 1.0:  %.0f%% of the tanh outputs have |a| > 0.99: the units saturate "
         "%s\n", 100 * sat, ok2 ? "(shown)" : "(NOT shown)");
  printf("Xavier:   the std at layer %d is %.2f of layer 1's; He with ReLU: %.2f: "
         "stable %s\n", DEPTH, xav, he, ok3 ? "(shown)" : "(NOT shown)");
  return ok1 && ok2 && ok3 ? EXIT_SUCCESS : EXIT_FAILURE;
}
