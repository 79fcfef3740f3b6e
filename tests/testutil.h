/* Shared helpers of the Check suites. */
#ifndef NNKIT_TESTUTIL_H
#define NNKIT_TESTUTIL_H

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Asserts a call returned NNKIT_OK, showing the error sentence if not. */
#define ck_ok(call)                                                          \
  do {                                                                       \
    nnkit_status st_ = (call);                                               \
    ck_assert_msg(st_ == NNKIT_OK, "%s -> %d: %s", #call, (int)st_,          \
                  nnkit_last_error());                                       \
  } while (0)

/* Asserts a call failed with `status` and left a non-empty sentence that
 * contains `needle`. */
#define ck_fails(call, status, needle)                                       \
  do {                                                                       \
    nnkit_clear_error();                                                     \
    nnkit_status st_ = (call);                                               \
    ck_assert_msg(st_ == (status), "%s -> %d, expected %d (%s)", #call,      \
                  (int)st_, (int)(status), nnkit_last_error());              \
    ck_assert_msg(strlen(nnkit_last_error()) > 0, "%s: empty error", #call); \
    ck_assert_msg(strstr(nnkit_last_error(), (needle)) != NULL,              \
                  "%s: error '%s' lacks '%s'", #call, nnkit_last_error(),    \
                  (needle));                                                 \
  } while (0)

/* Runs a suite (fork mode unless CK_FORK=no) and returns the exit code. */
static inline int nnkit_test_run(Suite *s)
{
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif
