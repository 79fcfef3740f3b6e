/* The SIGKILL loop over saves: a child process saves, without end, two
 * different nets to one model file and two different trainers to one
 * checkpoint file, in turn; the parent kills it with SIGKILL at a random
 * moment (uniform over about two rounds of saves), K times (argument 1,
 * default 200). After each kill both destinations must be byte for byte
 * one of the complete files (the old or the new) and load; temporaries a
 * killed save left must be gone after the parent's next save to the same
 * path. Prints the kills survived; exits 1 on the first torn or missing
 * file. */
#include "rel_world.h"

#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static double now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Files in dir whose name holds ".tmp." (a save's temporaries). */
static int temporaries(const char *dir)
{
  DIR *d = opendir(dir);
  REL_CHECK(d != NULL, "%s", dir);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)))
    n += strstr(e->d_name, ".tmp.") != NULL;
  closedir(d);
  return n;
}

static int same(const unsigned char *a, size_t na, const unsigned char *b, size_t nb)
{
  return na == nb && memcmp(a, b, na) == 0;
}

int main(int argc, char **argv)
{
  long kills = argc > 1 ? strtol(argv[1], NULL, 10) : 200;
  REL_CHECK(kills > 0, "kills %ld", kills);
  REL_OK(nnkit_set_num_threads(1));
  const char *s = rel_scratch();
  char dir[600], model[700], ckpt[700], ref[4][700];
  snprintf(dir, sizeof dir, "%s/dest", s);
  REL_CHECK(mkdir(dir, 0700) == 0, "mkdir %s", dir);
  snprintf(model, sizeof model, "%s/model.safetensors", dir);
  snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", dir);
  for (int i = 0; i < 4; i++)
    snprintf(ref[i], sizeof ref[i], "%s/ref%d", s, i);

  /* Two worlds whose files differ: A trained one epoch, B two. */
  rel_world a, b, c; /* c resumes the checkpoints read back */
  REL_OK(rel_world_make(&c, 0));
  REL_OK(rel_world_make(&a, 1));
  REL_OK(rel_world_make(&b, 1));
  REL_OK(nnkit_trainer_fit(b.tr, b.train, NULL));
  REL_OK(nnkit_net_save(a.net, a.nz, ref[0]));
  REL_OK(nnkit_net_save(b.net, b.nz, ref[1]));
  REL_OK(nnkit_trainer_save_checkpoint(a.tr, ref[2]));
  REL_OK(nnkit_trainer_save_checkpoint(b.tr, ref[3]));
  unsigned char *rb[4];
  size_t rn[4];
  for (int i = 0; i < 4; i++) {
    rb[i] = rel_read(ref[i], &rn[i]);
    REL_CHECK(rb[i] != NULL, "%s", ref[i]);
  }
  REL_CHECK(!same(rb[0], rn[0], rb[1], rn[1]) && !same(rb[2], rn[2], rb[3], rn[3]),
            "the two worlds' files are equal");
  /* Saves are deterministic: saving again gives the same bytes. */
  REL_OK(nnkit_net_save(a.net, a.nz, model));
  REL_OK(nnkit_trainer_save_checkpoint(a.tr, ckpt));
  size_t n0;
  unsigned char *again = rel_read(model, &n0);
  REL_CHECK(again && same(again, n0, rb[0], rn[0]), "model saves are not deterministic");
  free(again);

  /* One round of the child's four saves, timed. */
  double t0 = now();
  for (int r = 0; r < 3; r++) {
    REL_OK(nnkit_net_save(b.net, b.nz, model));
    REL_OK(nnkit_net_save(a.net, a.nz, model));
    REL_OK(nnkit_trainer_save_checkpoint(b.tr, ckpt));
    REL_OK(nnkit_trainer_save_checkpoint(a.tr, ckpt));
  }
  double round = (now() - t0) / 3;

  unsigned seed = 12345;
  long mid_save = 0, left_tmp = 0;
  for (long k = 0; k < kills; k++) {
    pid_t pid = fork();
    REL_CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
      for (;;) {
        if (nnkit_net_save(b.net, b.nz, model) || nnkit_net_save(a.net, a.nz, model) ||
            nnkit_trainer_save_checkpoint(b.tr, ckpt) ||
            nnkit_trainer_save_checkpoint(a.tr, ckpt))
          _exit(3);
      }
    }
    seed = seed * 1103515245u + 12345u;
    double wait = 2 * round * (double)(seed >> 8) / 16777216.0;
    struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
    REL_CHECK(kill(pid, SIGKILL) == 0, "kill: %s", strerror(errno));
    int status;
    REL_CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    REL_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "the saving child ended by itself (status %d)", status);
    int tmp = temporaries(dir);
    mid_save += tmp > 0;
    size_t n;
    unsigned char *m = rel_read(model, &n);
    if (!m || !(same(m, n, rb[0], rn[0]) || same(m, n, rb[1], rn[1]))) {
      fprintf(stderr, "kill loop: FINDING: after kill %ld the model file is %s\n", k + 1,
              m ? "neither the old nor the new file" : "missing");
      return 1;
    }
    free(m);
    m = rel_read(ckpt, &n);
    if (!m || !(same(m, n, rb[2], rn[2]) || same(m, n, rb[3], rn[3]))) {
      fprintf(stderr, "kill loop: FINDING: after kill %ld the checkpoint is %s\n", k + 1,
              m ? "neither the old nor the new file" : "missing");
      return 1;
    }
    free(m);
    nnkit_net *net = NULL;
    REL_OK(nnkit_net_load(&net, NULL, model));
    nnkit_net_free(net);
    REL_OK(nnkit_trainer_resume(c.tr, ckpt));
    if (tmp > 0 && k % 10 == 0) {
      /* The next save to each path removes what the killed one left. */
      REL_OK(nnkit_net_save(a.net, a.nz, model));
      REL_OK(nnkit_trainer_save_checkpoint(a.tr, ckpt));
      REL_CHECK(temporaries(dir) == 0, "after kill %ld a save left %d temporaries", k + 1,
                temporaries(dir));
      left_tmp++;
    }
  }
  REL_OK(nnkit_net_save(a.net, a.nz, model));
  REL_OK(nnkit_trainer_save_checkpoint(a.tr, ckpt));
  REL_CHECK(temporaries(dir) == 0, "the last saves left temporaries");
  printf("kill loop: %ld SIGKILLs survived (%ld in the middle of a save, leaving a "
         "temporary; %ld of those cleaned by the next save, checked), round of 4 saves "
         "%.1f ms: every time both files were the old or the new complete file\n",
         kills, mid_save, left_tmp, round * 1e3);
  for (int i = 0; i < 4; i++)
    free(rb[i]);
  rel_world_free(&a);
  rel_world_free(&b);
  rel_world_free(&c);
  return 0;
}
