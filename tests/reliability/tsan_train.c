/* A two-thread training run for the ThreadSanitizer build (build-tsan,
 * scripts/test.sh): nnkit at 2 threads fits the reliability world's net
 * and a wide one (a dense layer of 512 units, whose batches are split
 * between the threads) from a dataset and then from a prefetching,
 * augmenting pipeline (another thread filling batches), and predicts.
 * ThreadSanitizer reports any data race; the figures show the run did its
 * work. */
#include "rel_world.h"

int main(void)
{
  REL_OK(nnkit_set_num_threads(2));
  rel_world w;
  REL_OK(rel_world_make(&w, 0));
  REL_OK(nnkit_trainer_set(w.tr, NNKIT_TRAIN_EPOCHS, 2));
  REL_OK(nnkit_trainer_fit(w.tr, w.train, NULL));
  /* The wide net: its dense layers' work (24 x 36 x 512 multiply-adds a
   * batch) is split into tasks over both threads. */
  size_t shape[3] = {1, REL_SIDE, REL_SIDE};
  nnkit_net *wide = NULL;
  nnkit_optimizer *wopt = NULL;
  nnkit_trainer *wtr = NULL;
  REL_OK(nnkit_net_create(&wide, shape, 3, 3));
  REL_OK(nnkit_net_add_flatten(wide));
  REL_OK(nnkit_net_add_dense(wide, 512));
  REL_OK(nnkit_net_add_activation(wide, NNKIT_ACT_RELU));
  REL_OK(nnkit_net_add_dense(wide, REL_CLASSES));
  REL_OK(rel_trainer(&wtr, &wopt, wide));
  REL_OK(nnkit_trainer_set(wtr, NNKIT_TRAIN_EPOCHS, 5));
  REL_OK(nnkit_trainer_set(wtr, NNKIT_TRAIN_BATCH_SIZE, REL_N));
  REL_OK(nnkit_trainer_fit(wtr, w.train, NULL));
  nnkit_augmenter *aug = NULL;
  nnkit_pipeline *pipe = NULL;
  REL_OK(nnkit_augmenter_create(&aug));
  REL_OK(nnkit_augmenter_add(aug, NNKIT_AUG_TRANSLATE, 0.8, 1, 1));
  REL_OK(nnkit_augmenter_add(aug, NNKIT_AUG_NOISE, 0.5, 0.05, 0.1));
  REL_OK(nnkit_pipeline_create(&pipe, w.train));
  REL_OK(nnkit_pipeline_set(pipe, NNKIT_PIPE_BATCH_SIZE, 8));
  REL_OK(nnkit_pipeline_set(pipe, NNKIT_PIPE_PREFETCH, 2));
  REL_OK(nnkit_pipeline_set_augmenter(pipe, aug));
  REL_OK(nnkit_trainer_fit_pipeline(w.tr, pipe, NULL));
  REL_OK(nnkit_trainer_fit_pipeline(wtr, pipe, NULL));
  int32_t cls[REL_N];
  REL_OK(nnkit_net_predict(cls, wide, nnkit_dataset_data(w.train), REL_N));
  size_t right = 0;
  for (size_t i = 0; i < REL_N; i++)
    right += cls[i] == nnkit_dataset_labels(w.train)[i];
  printf("two-thread train: %d threads, %zu + %zu epochs, wide net's training "
         "accuracy %zu/%d\n", nnkit_get_num_threads(), nnkit_trainer_epochs_done(w.tr),
         nnkit_trainer_epochs_done(wtr), right, REL_N);
  nnkit_trainer_free(wtr);
  nnkit_optimizer_free(wopt);
  nnkit_net_free(wide);
  nnkit_pipeline_free(pipe);
  nnkit_augmenter_free(aug);
  rel_world_free(&w);
  return 0;
}
