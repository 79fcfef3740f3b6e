/* Header test: <nnkit.h> compiles cleanly as C99 (and, as header_test.cpp,
 * as C++) under -Wall -Wextra -pedantic -Werror -Wstrict-prototypes, and a
 * few declarations link and behave. Built by tests/api/meson.build. */
#include <nnkit.h>

#include <stdio.h>
#include <string.h>

/* Every public type name is usable from the including program. */
static void touch_types(void) {
  nnkit_dataset *ds = NULL;
  nnkit_net *net = NULL;
  nnkit_init *init = NULL;
  nnkit_optimizer *opt = NULL;
  nnkit_trainer *tr = NULL;
  nnkit_log_fn log_fn = NULL;
  nnkit_activation act = NNKIT_ACT_RELU;
  nnkit_loss loss = NNKIT_LOSS_SOFTMAX_CROSS_ENTROPY;
  nnkit_init_kind kind = NNKIT_INIT_HE_NORMAL;
  nnkit_optim_kind okind = NNKIT_OPTIM_SGD;
  nnkit_optim_param key = NNKIT_OPT_LR;
  nnkit_train_param tkey = NNKIT_TRAIN_EPOCHS;
  nnkit_metric metric = NNKIT_METRIC_TRAIN_LOSS;
  (void)act; (void)loss; (void)kind; (void)okind; (void)key; (void)tkey;
  (void)metric; (void)log_fn;
  /* Destructors accept NULL. */
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  nnkit_init_free(init);
  nnkit_net_free(net);
  nnkit_dataset_free(ds);
}

int main(void) {
  const char *v = nnkit_version();
  nnkit_status st = NNKIT_E_FORMAT;
  int fails = 0;

  touch_types();
  if (v == NULL || strcmp(v, NNKIT_VERSION_STRING) != 0) {
    fprintf(stderr, "nnkit_version() = %s, header says %s\n",
            v ? v : "(null)", NNKIT_VERSION_STRING);
    fails++;
  }
  if (nnkit_version_number() != (uint32_t)NNKIT_VERSION_NUMBER) {
    fprintf(stderr, "nnkit_version_number() = %lu, header says %lu\n",
            (unsigned long)nnkit_version_number(),
            (unsigned long)NNKIT_VERSION_NUMBER);
    fails++;
  }
  if (nnkit_status_string(st) == NULL || nnkit_status_string(NNKIT_OK) == NULL) {
    fprintf(stderr, "nnkit_status_string() returned NULL\n");
    fails++;
  }
  nnkit_clear_error();
  if (nnkit_last_error() == NULL || nnkit_last_error()[0] != '\0') {
    fprintf(stderr, "nnkit_last_error() is not \"\" after nnkit_clear_error()\n");
    fails++;
  }
  printf("header test (C): nnkit %s, %s\n", v ? v : "(null)",
         fails ? "FAILED" : "ok");
  return fails ? 1 : 0;
}
