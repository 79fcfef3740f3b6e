/* Replays every file of tests/corpus/<target>/ (crash inputs found by
 * fuzzing, regression inputs such as stb_image's JPEG Huffman overflow)
 * through the fuzz harness of its target: each must load or fail with a
 * sentence, never crash (the ASan and valgrind stages run this too).
 * Prints the count per target; exits 1 on an unclean answer. */
#include "harness.h"

#include <dirent.h>

int main(int argc, char **argv)
{
  const char *corpus = argc > 1 ? argv[1] : NNKIT_CORPUS;
  nnkit_set_num_threads(1);
  size_t total = 0;
  int bad = 0;
  for (size_t t = 0; t < sizeof fz_targets / sizeof fz_targets[0]; t++) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", corpus, fz_targets[t].name);
    DIR *d = opendir(dir);
    if (!d)
      continue;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (e->d_name[0] == '.')
        continue;
      char path[2048];
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      size_t n = 0;
      unsigned char *b = rel_read(path, &n);
      REL_CHECK(b != NULL, "cannot read %s", path);
      nnkit_clear_error();
      if (!fz_targets[t].fn(b, n)) {
        fprintf(stderr, "%s: unclean answer (last error: '%s')\n", path, nnkit_last_error());
        bad = 1;
      }
      free(b);
      count++;
    }
    closedir(d);
    printf("corpus %s: %zu inputs replayed\n", fz_targets[t].name, count);
    total += count;
  }
  printf("corpus: %zu inputs replayed, %s\n", total, bad ? "FAILED" : "all clean");
  return bad || total == 0;
}
