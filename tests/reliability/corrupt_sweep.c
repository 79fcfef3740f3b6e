/* The corruption sweep: every byte of a small saved model file (with a
 * normalizer) and of a checkpoint (after an epoch of Adam with a
 * schedule), each replaced by three other values (b ^ 0x01, b ^ 0x80,
 * b ^ 0xFF), and every truncation length (0 to size - 1): each damaged
 * file must be refused with NNKIT_E_FORMAT and a sentence naming it, the
 * checkpoint's trainer left as it was (it still predicts the same class
 * for a probe and fits). Prints the corruptions tried; exits 1 on the
 * first one accepted or answered otherwise. */
#include "rel_world.h"

static const unsigned char flips[3] = {0x01, 0x80, 0xFF};

typedef struct target {
  const char *what;
  nnkit_status (*load)(const char *path);
} target;

static rel_world g_w;

static nnkit_status load_model(const char *path)
{
  nnkit_net *net = NULL;
  nnkit_normalizer *nz = NULL;
  nnkit_status st = nnkit_net_load(&net, &nz, path);
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  return st;
}

static nnkit_status load_checkpoint(const char *path)
{
  return nnkit_trainer_resume(g_w.tr, path);
}

static uint64_t sweep(const target *t, const char *good, const char *bad)
{
  size_t n = 0;
  unsigned char *b = rel_read(good, &n);
  REL_CHECK(b != NULL && n > 0, "cannot read %s", good);
  REL_OK(t->load(good));
  uint64_t tried = 0;
  for (size_t i = 0; i <= n * 3 + n; i++) {
    size_t len = n;
    size_t at = 0;
    unsigned char old = 0;
    if (i < 3 * n) { /* byte i / 3 replaced */
      at = i / 3;
      old = b[at];
      b[at] = (unsigned char)(old ^ flips[i % 3]);
    } else if (i - 3 * n < n) { /* truncated to i - 3n bytes */
      len = i - 3 * n;
    } else {
      break;
    }
    REL_CHECK(rel_write(bad, b, len), "cannot write %s", bad);
    if (i < 3 * n)
      b[at] = old;
    nnkit_clear_error();
    nnkit_status st = t->load(bad);
    if (st != NNKIT_E_FORMAT || !strstr(nnkit_last_error(), bad)) {
      fprintf(stderr,
              "corruption sweep: FINDING: %s %s: status %d (%s), expected "
              "NNKIT_E_FORMAT naming the file\n",
              t->what,
              i < 3 * n ? "with a byte replaced" : "truncated", (int)st,
              nnkit_last_error());
      if (i < 3 * n)
        fprintf(stderr, "  byte %zu: 0x%02x -> 0x%02x\n", at, old, old ^ flips[i % 3]);
      else
        fprintf(stderr, "  length %zu of %zu\n", len, n);
      exit(1);
    }
    tried++;
  }
  free(b);
  printf("corruption sweep: %s of %zu bytes: %llu corruptions (%zu x 3 byte values, %zu "
         "truncations), 100%% refused with NNKIT_E_FORMAT\n",
         t->what, n, (unsigned long long)tried, n, n);
  return tried;
}

int main(void)
{
  REL_OK(nnkit_set_num_threads(1));
  const char *s = rel_scratch();
  char model[600], ckpt[600], bad[600];
  snprintf(model, sizeof model, "%s/model.safetensors", s);
  snprintf(ckpt, sizeof ckpt, "%s/run.ckpt", s);
  snprintf(bad, sizeof bad, "%s/damaged", s);
  rel_world m;
  REL_OK(rel_world_make(&m, 1));
  REL_OK(nnkit_net_save(m.net, m.nz, model));
  REL_OK(nnkit_trainer_save_checkpoint(m.tr, ckpt));
  rel_world_free(&m);

  REL_OK(rel_world_make(&g_w, 0));
  float probe[REL_SIDE * REL_SIDE];
  for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
    probe[i] = (float)(i % 7) * 0.3f;
  static const target targets[2] = {{"model file", load_model},
                                    {"checkpoint", load_checkpoint}};
  uint64_t total = sweep(&targets[0], model, bad);
  /* The checkpoint sweep resumes into g_w: first from the good file (so
   * the trainer's state is the checkpoint's), then every damaged one must
   * leave it so. */
  int32_t before = -1, after = -2;
  REL_OK(nnkit_trainer_resume(g_w.tr, ckpt));
  REL_OK(nnkit_net_predict(&before, g_w.net, probe, 1));
  const float *p0 = nnkit_net_params(g_w.net);
  size_t np = nnkit_net_num_params(g_w.net);
  float *copy = malloc(np * sizeof *copy);
  REL_CHECK(copy != NULL, "malloc");
  memcpy(copy, p0, np * sizeof *copy);
  total += sweep(&targets[1], ckpt, bad);
  REL_OK(nnkit_net_predict(&after, g_w.net, probe, 1));
  REL_CHECK(before == after && memcmp(copy, nnkit_net_params(g_w.net), np * sizeof *copy) == 0,
            "a refused checkpoint changed the trainer's net");
  REL_OK(nnkit_trainer_fit(g_w.tr, g_w.train, NULL));
  free(copy);
  rel_world_free(&g_w);
  printf("corruption sweep: %llu corruptions tried, 100%% refused, 0 findings\n",
         (unsigned long long)total);
  return 0;
}
