/* optimizers: the lecture's picture of SGD, SGD + momentum, RMSProp and
 * Adam on two 2-D landscapes.
 *
 *  - an ill-conditioned quadratic, L = (0.05 x^2 + 5 y^2) / 2: steep along
 *    y, flat along x. SGD jitters across the steep axis and crawls along
 *    the flat one; momentum builds up speed along x; RMSProp and Adam
 *    rescale each axis.
 *  - a saddle point, L = x^2 + (y^2 - 1)^2 / 10: a saddle at (0, 0)
 *    (L = 0.1) between minima at (0, +-1) (L = 0). Starting next to the
 *    ridge, y = 1e-4, the gradient along y is almost zero and SGD sits
 *    there for a long time; RMSProp and Adam divide the tiny gradient by
 *    its own size and leave at once.
 *
 * The optimizers are nnkit's own: the point (x, y) is the weight vector of
 * a dense layer with one input and two units, the gradient is written
 * into nnkit_net_grads() and nnkit_optimizer_step() moves the point. Each
 * trajectory goes to DIR/<landscape>-<optimizer>.csv (step,x,y,loss), and
 * the steps each optimizer needs to reach loss < 1e-3 are printed. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <nnkit.h>

#include "example_args.h"

static const char usage[] =
    "usage: optimizers [--out DIR] [options]\n"
    "Runs SGD, SGD+momentum, RMSProp and Adam on an ill-conditioned quadratic\n"
    "and a saddle point, writes each trajectory as CSV and prints the steps\n"
    "each needs to reach loss < 1e-3.\n"
    "  --out DIR      where the CSV files go (default: the current directory)\n"
    "  --epochs N     here: optimizer steps per run (default 400)\n";

typedef struct landscape {
  const char *name;
  double x0, y0;
  double (*loss)(double x, double y, double *gx, double *gy);
} landscape;

static double quadratic(double x, double y, double *gx, double *gy)
{
  *gx = 0.05 * x;
  *gy = 5.0 * y;
  return 0.5 * (0.05 * x * x + 5.0 * y * y);
}

static double saddle(double x, double y, double *gx, double *gy)
{
  *gx = 2.0 * x;
  *gy = 0.4 * y * (y * y - 1.0);
  double q = y * y - 1.0;
  return x * x + 0.1 * q * q;
}

typedef struct method {
  const char *name, *label;
  nnkit_optim_kind kind;
  double lr, momentum;
} method;

/* SGD twice: with the learning rate momentum uses, and with one just
 * under the steep axis' stability limit 2/5, where it jitters across y. */
static const method methods[] = {
  {"sgd", "SGD (lr 0.1)", NNKIT_OPTIM_SGD, 0.1, 0.0},
  {"sgd-fast", "SGD (lr 0.38, jitters along y)", NNKIT_OPTIM_SGD, 0.38, 0.0},
  {"momentum", "SGD+momentum (lr 0.1, rho 0.9)", NNKIT_OPTIM_SGD, 0.1, 0.9},
  {"rmsprop", "RMSProp (lr 0.05, gamma 0.99)", NNKIT_OPTIM_RMSPROP, 0.05, 0.0},
  {"adam", "Adam (lr 0.1, betas 0.9/0.999)", NNKIT_OPTIM_ADAM, 0.1, 0.0},
};
#define NUM_METHODS (sizeof methods / sizeof methods[0])

/* Runs one optimizer on one landscape; returns the first step with
 * loss < 1e-3 (0 = the start), -1 when never, -2 on an error. */
static long run(const landscape *ls, const method *m, long steps, const char *dir,
                double *final_loss, double *fx, double *fy)
{
  nnkit_net *net = NULL;
  nnkit_optimizer *opt = NULL;
  FILE *csv = NULL;
  long reached = -1;
  nnkit_status st;
  char path[1024];
  snprintf(path, sizeof path, "%s/%s-%s.csv", dir, ls->name, m->name);
  csv = fopen(path, "w");
  if (!csv) {
    perror(path);
    return -2;
  }
  fprintf(csv, "step,x,y,loss\n");
  size_t in = 1;
  TRY(nnkit_net_create(&net, &in, 1, 1));
  TRY(nnkit_net_add_dense(net, 2));
  TRY(nnkit_optimizer_create(&opt, m->kind));
  TRY(nnkit_optimizer_set(opt, NNKIT_OPT_LR, m->lr));
  if (m->momentum > 0)
    TRY(nnkit_optimizer_set(opt, NNKIT_OPT_MOMENTUM, m->momentum));
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  if (!p || !g) {
    fprintf(stderr, "optimizers: %s\n", nnkit_last_error());
    goto out;
  }
  /* Weights W[0][0], W[1][0] are the point; the bias stays at 0. */
  p[0] = (float)ls->x0;
  p[1] = (float)ls->y0;
  p[2] = p[3] = 0.0f;
  double loss = 0;
  for (long s = 0;; s++) {
    double gx, gy;
    loss = ls->loss(p[0], p[1], &gx, &gy);
    fprintf(csv, "%ld,%.9g,%.9g,%.9g\n", s, (double)p[0], (double)p[1], loss);
    if (reached < 0 && loss < 1e-3)
      reached = s;
    if (s == steps || !isfinite(loss))
      break;
    g[0] = (float)gx;
    g[1] = (float)gy;
    g[2] = g[3] = 0.0f;
    TRY(nnkit_optimizer_step(opt, net));
  }
  *final_loss = loss;
  *fx = p[0];
  *fy = p[1];
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  if (fclose(csv) != 0) {
    perror(path);
    return -2;
  }
  return reached;
out: /* an nnkit call failed (TRY reported it) */
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
  fclose(csv);
  return -2;
}

/* mkdir -p: creates dir and its missing parents (mode 0777 less the
 * umask); 0 on success or when it exists as a folder, -1 with errno. */
static int make_dirs(const char *dir)
{
  char path[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    char c = path[i];
    path[i] = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
      return -1;
    path[i] = c;
  }
  struct stat sb;
  if (stat(dir, &sb) != 0)
    return -1;
  if (!S_ISDIR(sb.st_mode)) {
    errno = ENOTDIR;
    return -1;
  }
  return 0;
}

int main(int argc, char **argv)
{
  /* --out DIR is this example's own option; the rest are the shared ones. */
  const char *dir = ".";
  char **rest = malloc((size_t)argc * sizeof *rest);
  int nrest = 0;
  if (!rest)
    return EXIT_FAILURE;
  for (int i = 0; i < argc; i++) {
    if (i > 0 && !strcmp(argv[i], "--out")) {
      if (i + 1 >= argc) {
        fprintf(stderr, "--out: missing value (see --help)\n");
        free(rest);
        return 2;
      }
      dir = argv[++i];
      continue;
    }
    rest[nrest++] = argv[i];
  }
  example_args args = {"(unused)", 400, 1, 1, NULL, 0, NULL, 0};
  int pr = example_parse(&args, nrest, rest, usage);
  free(rest);
  if (pr <= 0)
    return pr == 0 ? EXIT_SUCCESS : 2;
  if (nnkit_set_num_threads((int)args.threads) != NNKIT_OK) {
    fprintf(stderr, "optimizers: %s\n", nnkit_last_error());
    return EXIT_FAILURE;
  }
  if (make_dirs(dir) != 0) {
    fprintf(stderr, "optimizers: cannot create the folder '%s' for the CSV files: %s\n",
            dir, strerror(errno));
    return EXIT_FAILURE;
  }

  const landscape lands[] = {
    {"quadratic", -4.0, 1.0, quadratic},
    {"saddle", 1.5, 1e-4, saddle},
  };
  const char *titles[] = {
    "ill-conditioned quadratic L = (0.05 x^2 + 5 y^2) / 2, start (-4, 1), L0 = 2.9",
    "saddle L = x^2 + (y^2 - 1)^2 / 10, start (1.5, 1e-4) next to the saddle at (0, 0)",
  };
  for (size_t l = 0; l < 2; l++) {
    printf("%s\n", titles[l]);
    printf("  %-34s %-24s %s\n", "optimizer", "steps to loss < 1e-3",
           "after all steps: loss at (x, y)");
    for (size_t k = 0; k < NUM_METHODS; k++) {
      double fl = 0, fx = 0, fy = 0;
      long r = run(&lands[l], &methods[k], args.epochs, dir, &fl, &fx, &fy);
      if (r == -2)
        return EXIT_FAILURE;
      char steps[64];
      if (r >= 0)
        snprintf(steps, sizeof steps, "%ld", r);
      else
        snprintf(steps, sizeof steps, "never in %ld", args.epochs);
      printf("  %-34s %-24s %.3g at (%.3g, %.3g)\n", methods[k].label, steps, fl, fx,
             fy);
    }
  }
  printf("trajectories: %s/{quadratic,saddle}-{sgd,sgd-fast,momentum,rmsprop,adam}.csv "
         "(step,x,y,loss)\n", dir);
  printf("draw them: python3 bindings/python/examples/optimizers.py, the Python twin, "
         "runs the same steps and draws the trajectories\n");
  return EXIT_SUCCESS;
}
