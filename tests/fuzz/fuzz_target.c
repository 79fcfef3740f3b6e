/* One libFuzzer target per harness of harness.h, chosen at build time by
 * FZ_FN (tests/fuzz/meson.build). An answer that is not clean (an error
 * without a sentence, a failed load that returned an object) is a finding
 * like a crash: the target traps. */
#include "harness.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  nnkit_set_num_threads(1);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t n)
{
  if (!FZ_FN(data, n)) {
    fprintf(stderr, "fuzz: unclean answer (last error: '%s')\n", nnkit_last_error());
    __builtin_trap();
  }
  return 0;
}
