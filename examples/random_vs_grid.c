/* random_vs_grid: Bergstra & Bengio (2012) measured -- with the same
 * budget, random search beats grid search when one of two
 * hyperparameters matters.
 *
 * The problem: a score that depends strongly on an "important"
 * hyperparameter x in [0, 1] (a narrow peak at a position that changes
 * with every repetition) and hardly at all on an "unimportant" one y. A
 * 3 x 3 grid tries only 3 distinct values of x; 9 random trials try 9.
 * Over the repetitions, random search finds the better best score in
 * most of them; the tally is printed. Each search is an nnkit_search with
 * a callback objective (grid, then random with the repetition's seed).
 * --reps N sets the repetitions (default 50, at least 20). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnkit.h>

typedef struct problem {
  double peak;  /* where the important hyperparameter is best */
  double width; /* how narrow its peak is */
} problem;

static int objective(double *score, nnkit_trial *t, void *user)
{
  const problem *p = user;
  double x = nnkit_trial_value(t, 0), y = nnkit_trial_value(t, 1);
  double d = (x - p->peak) / p->width;
  *score = exp(-0.5 * d * d) + 0.01 * sin(6.28 * y); /* y hardly matters */
  return 0;
}

static nnkit_status best_of(double *out, nnkit_space *sp, nnkit_search_strategy strat,
                            uint64_t seed, problem *p)
{
  nnkit_search *s = NULL;
  size_t best;
  nnkit_status st = nnkit_search_create(&s, sp);
  if (st == NNKIT_OK)
    st = nnkit_search_set(s, NNKIT_SEARCH_STRATEGY, strat);
  if (st == NNKIT_OK)
    st = nnkit_search_set(s, NNKIT_SEARCH_GRID_POINTS, 3);
  if (st == NNKIT_OK)
    st = nnkit_search_set(s, NNKIT_SEARCH_TRIALS, 9); /* the grid's budget */
  if (st == NNKIT_OK)
    st = nnkit_search_set(s, NNKIT_SEARCH_SEED, (double)seed);
  if (st == NNKIT_OK)
    st = nnkit_search_run(s, objective, p);
  if (st == NNKIT_OK && nnkit_search_num_trials(s) != 9)
    st = NNKIT_E_STATE;
  if (st == NNKIT_OK)
    st = nnkit_search_best(&best, s);
  if (st == NNKIT_OK)
    st = nnkit_search_result(out, s, best, NNKIT_RESULT_SCORE);
  nnkit_search_free(s);
  return st;
}

int main(int argc, char **argv)
{
  long reps = 50;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      reps = strtol(argv[++i], NULL, 10);
    } else {
      printf("usage: random_vs_grid [--reps N]   (N >= 20, default 50)\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  if (reps < 20 || reps > 100000) {
    fprintf(stderr, "random_vs_grid: --reps must be in [20, 100000]\n");
    return 2;
  }
  nnkit_space *sp = NULL;
  nnkit_status st = nnkit_space_create(&sp);
  if (st == NNKIT_OK)
    st = nnkit_space_add(sp, "important", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0, 0);
  if (st == NNKIT_OK)
    st = nnkit_space_add(sp, "unimportant", NNKIT_DIM_UNIFORM, 0, 1, NNKIT_TARGET_NONE, 0,
                         0);
  long random_wins = 0, grid_wins = 0, ties = 0;
  double sum_r = 0, sum_g = 0;
  for (long k = 0; st == NNKIT_OK && k < reps; k++) {
    /* the repetition's problem: a peak anywhere in [0.05, 0.95] */
    problem p = {0.05 + 0.9 * fmod(0.6180339887 * (double)(k + 1), 1.0), 0.06};
    double g = 0, r = 0;
    st = best_of(&g, sp, NNKIT_STRATEGY_GRID, 0, &p);
    if (st == NNKIT_OK)
      st = best_of(&r, sp, NNKIT_STRATEGY_RANDOM, (uint64_t)k + 1, &p);
    if (st != NNKIT_OK)
      break;
    sum_r += r;
    sum_g += g;
    if (r > g + 1e-12)
      random_wins++;
    else if (g > r + 1e-12)
      grid_wins++;
    else
      ties++;
  }
  nnkit_space_free(sp);
  if (st != NNKIT_OK) {
    fprintf(stderr, "random_vs_grid: %s\n  %s\n", nnkit_status_string(st),
            nnkit_last_error());
    return EXIT_FAILURE;
  }
  printf("one important and one unimportant hyperparameter, 9 trials per search, %ld "
         "repetitions\n", reps);
  printf("mean best score: random %.4f, grid %.4f\n", sum_r / (double)reps,
         sum_g / (double)reps);
  printf("random search found the better best value in %ld of %ld repetitions "
         "(grid %ld, ties %ld)\n", random_wins, reps, grid_wins, ties);
  return random_wins > reps / 2 ? EXIT_SUCCESS : EXIT_FAILURE;
}
