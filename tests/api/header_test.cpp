// Header test: <nnkit.h> compiles cleanly as C++ under
// -Wall -Wextra -pedantic -Werror and its declarations link with C linkage.
// Built by tests/api/meson.build when a C++ compiler is available.
#include <nnkit.h>

#include <cstdio>
#include <cstring>

int main() {
  const char *v = nnkit_version();
  int fails = 0;

  nnkit_net *net = nullptr;
  nnkit_net_free(net);
  nnkit_dataset_free(nullptr);
  nnkit_status st = NNKIT_E_INVALID;
  nnkit_activation act = NNKIT_ACT_TANH;
  nnkit_train_param key = NNKIT_TRAIN_BATCH_SIZE;
  static_cast<void>(act);
  static_cast<void>(key);

  if (v == nullptr || std::strcmp(v, NNKIT_VERSION_STRING) != 0) {
    std::fprintf(stderr, "nnkit_version() = %s, header says %s\n",
                 v ? v : "(null)", NNKIT_VERSION_STRING);
    fails++;
  }
  if (nnkit_version_number() != static_cast<uint32_t>(NNKIT_VERSION_NUMBER)) {
    std::fprintf(stderr, "nnkit_version_number() mismatch\n");
    fails++;
  }
  if (nnkit_status_string(st) == nullptr) {
    std::fprintf(stderr, "nnkit_status_string() returned NULL\n");
    fails++;
  }
  nnkit_clear_error();
  if (nnkit_last_error() == nullptr || nnkit_last_error()[0] != '\0') {
    std::fprintf(stderr, "nnkit_last_error() not empty after clear\n");
    fails++;
  }
  std::printf("header test (C++): nnkit %s, %s\n", v ? v : "(null)",
              fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}
