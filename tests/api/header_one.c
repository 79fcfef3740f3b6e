/* Self-containment check: each public header compiles on its own as C99.
 * tests/api/meson.build compiles this once per header with
 * -DNNKIT_TEST_HEADER=<nnkit/xxx.h>. */
#include NNKIT_TEST_HEADER
#include NNKIT_TEST_HEADER /* and twice: include guards work */

int api_header_one_dummy(void);
int api_header_one_dummy(void) { return 0; }
