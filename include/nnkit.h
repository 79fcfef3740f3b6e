/**
 * @file nnkit.h
 * nnkit: train neural networks on the CPU from C.
 *
 * The smallest complete program (examples/quickstart.c, compiled by the
 * tests) looks like this:
 *
 * @code
 *   #include <nnkit.h>
 *
 *   nnkit_dataset *train = NULL;   // e.g. nnkit_dataset_load_idx(&train, ...)
 *   nnkit_net *net = NULL;
 *   nnkit_optimizer *opt = NULL;
 *   nnkit_trainer *tr = NULL;
 *   size_t shape[1] = {2};
 *   nnkit_dataset_from_buffers(&train, x, labels, n, shape, 1, 3);
 *   nnkit_net_create(&net, shape, 1, 42);
 *   nnkit_net_add_dense(net, 32);
 *   nnkit_net_add_activation(net, NNKIT_ACT_RELU);
 *   nnkit_net_add_dense(net, 3);            // logits; softmax is in the loss
 *   nnkit_optimizer_create(&opt, NNKIT_OPTIM_SGD);
 *   nnkit_optimizer_set(opt, NNKIT_OPT_LR, 0.1);
 *   nnkit_trainer_create(&tr, net, opt);
 *   nnkit_trainer_set(tr, NNKIT_TRAIN_EPOCHS, 20);
 *   if (nnkit_trainer_fit(tr, train, NULL) != NNKIT_OK)
 *     fprintf(stderr, "%s\n", nnkit_last_error());
 *   double loss, acc;
 *   nnkit_net_evaluate(&loss, &acc, net, train);
 *   nnkit_trainer_free(tr); nnkit_optimizer_free(opt);
 *   nnkit_net_free(net); nnkit_dataset_free(train);
 * @endcode
 *
 * Every call returns an ::nnkit_status; on failure nnkit_last_error() says
 * what went wrong and nothing is half-built.
 */
#ifndef NNKIT_H
#define NNKIT_H

#include "nnkit/version.h"
#include "nnkit/core.h"
#include "nnkit/data.h"
#include "nnkit/normalizer.h"
#include "nnkit/init.h"
#include "nnkit/net.h"
#include "nnkit/optim.h"
#include "nnkit/train.h"
#include "nnkit/pipeline.h"
#include "nnkit/monitor.h"
#include "nnkit/search.h"
#include "nnkit/ensemble.h"
#include "nnkit/mining.h"

#endif /* NNKIT_H */
