/* Optimizers: keys, bounds, the SGD update rule. */
#include "testutil.h"

START_TEST(create_and_defaults)
{
  nnkit_optimizer *opt = (nnkit_optimizer *)1;
  ck_fails(nnkit_optimizer_create(&opt, (nnkit_optim_kind)99), NNKIT_E_INVALID,
           "unknown optimizer");
  ck_assert_ptr_null(opt);
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_assert_int_eq(nnkit_optimizer_kind(opt), NNKIT_OPTIM_SGD);
  double lr;
  ck_ok(nnkit_optimizer_get(&lr, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(lr, 0.01);
  ck_assert_uint_eq(nnkit_optimizer_steps(opt), 0);
  nnkit_optimizer_free(opt);
  nnkit_optimizer_free(NULL);
}
END_TEST

START_TEST(keys_and_bounds)
{
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  double lo, hi, v;
  ck_ok(nnkit_optimizer_bounds(&lo, &hi, NNKIT_OPTIM_SGD, NNKIT_OPT_LR));
  ck_assert_double_eq(lo, 0.0);
  ck_assert_double_eq(hi, 1e6);
  ck_fails(nnkit_optimizer_bounds(&lo, &hi, NNKIT_OPTIM_SGD, (nnkit_optim_param)55),
           NNKIT_E_INVALID, "key 55");
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 3e-3));
  ck_ok(nnkit_optimizer_get(&v, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(v, 3e-3);
  /* A negative learning rate names the valid range; the value is kept. */
  ck_fails(nnkit_optimizer_set(opt, NNKIT_OPT_LR, -1.0), NNKIT_E_INVALID, "[0, 1e+06]");
  ck_fails(nnkit_optimizer_set(opt, NNKIT_OPT_LR, NAN), NNKIT_E_INVALID, "range");
  ck_ok(nnkit_optimizer_get(&v, opt, NNKIT_OPT_LR));
  ck_assert_double_eq(v, 3e-3);
  ck_fails(nnkit_optimizer_set(opt, (nnkit_optim_param)55, 1.0), NNKIT_E_INVALID,
           "no hyperparameter");
  ck_fails(nnkit_optimizer_get(&v, opt, (nnkit_optim_param)55), NNKIT_E_INVALID,
           "no hyperparameter");
  nnkit_optimizer_free(opt);
}
END_TEST

START_TEST(sgd_step_is_closed_form)
{
  size_t in = 3;
  nnkit_net *net = NULL;
  ck_ok(nnkit_net_create(&net, &in, 1, 4));
  nnkit_optimizer *opt = NULL;
  ck_ok(nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD));
  ck_fails(nnkit_optimizer_step(opt, net), NNKIT_E_STATE, "no parameters");
  ck_ok(nnkit_net_add_dense(net, 2));
  ck_ok(nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.25));
  size_t np = nnkit_net_num_params(net);
  float *p = nnkit_net_params(net), *g = nnkit_net_grads(net);
  float before[8];
  for (size_t t = 1; t <= 3; t++) {
    for (size_t i = 0; i < np; i++)
      g[i] = (float)(i + 1) * (float)t * 0.1f;
    memcpy(before, p, np * sizeof(float));
    ck_ok(nnkit_optimizer_step(opt, net));
    for (size_t i = 0; i < np; i++)
      ck_assert_float_eq_tol(p[i], before[i] - 0.25f * g[i], 1e-7);
    ck_assert_uint_eq(nnkit_optimizer_steps(opt), t);
  }
  ck_fails(nnkit_optimizer_step(NULL, net), NNKIT_E_INVALID, "NULL");
  nnkit_optimizer_free(opt);
  nnkit_net_free(net);
}
END_TEST

static Suite *optim_suite(void)
{
  Suite *s = suite_create("optim");
  TCase *tc = tcase_create("sgd");
  tcase_add_test(tc, create_and_defaults);
  tcase_add_test(tc, keys_and_bounds);
  tcase_add_test(tc, sgd_step_is_closed_form);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return nnkit_test_run(optim_suite()); }
