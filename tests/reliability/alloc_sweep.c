/* Allocation-failure sweep over the whole process, run with the
 * failmalloc.c shim preloaded (LD_PRELOAD; meson's 'alloc-sweep' test and
 * scripts/test.sh do it): for each create/load/save/fit entry point, the
 * allocation calls of one clean run are counted (every malloc of the
 * process: nnkit's, cJSON's, zlib's, stb_image's, libjpeg's, libcsv's,
 * stdio's), then the entry point runs once per call with that call
 * failing. Each failing run must answer NNKIT_E_NOMEM with a sentence
 * (or succeed when the failure was absorbed, e.g. stdio falling back to
 * an unbuffered stream), leave no block allocated (the shim's live count
 * after teardown equals the count before setup), leave no file behind
 * (saves) and leave the objects passed in usable (they predict, and fit
 * or fit again). Prints the failures injected per entry point.
 * Without the shim it says so and exits 77 (skipped). */
#include "../reliability/rel_world.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stb_image_write.h>

static void (*sh_arm)(uint64_t);
static uint64_t (*sh_calls)(void), (*sh_injected)(void);
static int64_t (*sh_live)(void);

static char f_model[600], f_ckpt[600], f_idx[600], f_idx_lab[600], f_idxgz[600],
    f_idxgz_lab[600], f_csv[600], f_images[600], d_save[600], f_save[700];

/* The objects an entry point gets, made by setup and freed by teardown. */
static rel_world w;
static nnkit_dataset *ds;
static nnkit_net *net;
static nnkit_normalizer *nz;
static nnkit_trainer *tr;
static nnkit_optimizer *opt;

static void predict_ok(nnkit_net *n)
{
  float x[REL_SIDE * REL_SIDE] = {0};
  int32_t cls = -1;
  REL_OK(nnkit_net_predict(&cls, n, x, 1));
  REL_CHECK(cls >= 0 && cls < REL_CLASSES, "class %d", (int)cls);
}

/* Files in d_save: the target alone or nothing (no temporary left). */
static void save_dir_clean(void)
{
  DIR *d = opendir(d_save);
  REL_CHECK(d != NULL, "%s", d_save);
  struct dirent *e;
  while ((e = readdir(d)))
    REL_CHECK(e->d_name[0] == '.' || strcmp(e->d_name, "out") == 0,
              "a save left %s/%s", d_save, e->d_name);
  closedir(d);
  unlink(f_save);
}

static void nothing(void) {}
static void no_check(nnkit_status st) { (void)st; }

static void world_up(void) { REL_OK(rel_world_make(&w, 0)); }
static void world_down(void) { rel_world_free(&w); }
static void world_usable(nnkit_status st)
{
  (void)st;
  predict_ok(w.net);
  REL_OK(nnkit_trainer_fit(w.tr, w.train, NULL));
}

static void free_results(void)
{
  nnkit_net_free(net);
  nnkit_normalizer_free(nz);
  nnkit_dataset_free(ds);
  nnkit_trainer_free(tr);
  nnkit_optimizer_free(opt);
  net = NULL;
  nz = NULL;
  ds = NULL;
  tr = NULL;
  opt = NULL;
}

static nnkit_status run_net_create(void) { return rel_net(&net); }
static void net_up(void) { REL_OK(rel_net(&net)); }
static nnkit_status run_trainer_create(void) { return rel_trainer(&tr, &opt, net); }
static void net_usable(nnkit_status st)
{
  (void)st;
  predict_ok(net);
}

static void nz_up(void)
{
  REL_OK(rel_dataset(&ds));
  REL_OK(nnkit_normalizer_create(&nz, NNKIT_NORM_PCA));
}
static nnkit_status run_nz_fit(void) { return nnkit_normalizer_fit(nz, ds); }
static void nz_usable(nnkit_status st)
{
  (void)st;
  REL_OK(nnkit_normalizer_fit(nz, ds));
}

static nnkit_status run_net_load(void) { return nnkit_net_load(&net, &nz, f_model); }
static nnkit_status run_resume(void) { return nnkit_trainer_resume(w.tr, f_ckpt); }
static nnkit_status run_idx(void) { return nnkit_dataset_load_idx(&ds, f_idx, f_idx_lab, 0); }
static nnkit_status run_idxgz(void)
{
  return nnkit_dataset_load_idx(&ds, f_idxgz, f_idxgz_lab, 0);
}
static nnkit_status run_csv(void)
{
  return nnkit_dataset_load_csv(&ds, f_csv, ',', NNKIT_CSV_HEADER_AUTO, "label", 0);
}
static nnkit_status run_images(void)
{
  return nnkit_dataset_load_image_folder(&ds, f_images, 3, 8, 8, 1);
}
static nnkit_status run_images_bytes(void)
{
  return nnkit_dataset_load_image_folder(&ds, f_images, 1, 6, 8, 0);
}
static nnkit_status run_net_save(void) { return nnkit_net_save(w.net, w.nz, f_save); }
static nnkit_status run_ckpt_save(void) { return nnkit_trainer_save_checkpoint(w.tr, f_save); }
static void saved_usable(nnkit_status st)
{
  save_dir_clean();
  world_usable(st);
}
static nnkit_status run_fit(void) { return nnkit_trainer_fit(w.tr, w.train, NULL); }

typedef struct entry {
  const char *name;
  void (*setup)(void);
  nnkit_status (*run)(void);
  void (*usable)(nnkit_status st); /* after a failed run */
  void (*teardown)(void);
} entry;

static const entry entries[] = {
    {"nnkit_net_create + add_* (7 layer kinds)", nothing, run_net_create, no_check, free_results},
    {"nnkit_optimizer/schedule/trainer_create", net_up, run_trainer_create, net_usable,
     free_results},
    {"nnkit_normalizer_fit (PCA)", nz_up, run_nz_fit, nz_usable, free_results},
    {"nnkit_net_load (with a normalizer)", nothing, run_net_load, no_check, free_results},
    {"nnkit_trainer_resume", world_up, run_resume, world_usable, world_down},
    {"nnkit_dataset_load_idx", nothing, run_idx, no_check, free_results},
    {"nnkit_dataset_load_idx (gzip)", nothing, run_idxgz, no_check, free_results},
    {"nnkit_dataset_load_csv", nothing, run_csv, no_check, free_results},
    {"nnkit_dataset_load_image_folder (PNG+JPEG, resized)", nothing, run_images, no_check,
     free_results},
    {"nnkit_dataset_load_image_folder (PNG+JPEG, bytes)", nothing, run_images_bytes, no_check,
     free_results},
    {"nnkit_net_save", world_up, run_net_save, saved_usable, world_down},
    {"nnkit_trainer_save_checkpoint", world_up, run_ckpt_save, saved_usable, world_down},
    {"nnkit_trainer_fit (one epoch)", world_up, run_fit, world_usable, world_down},
};

static void make_files(void)
{
  const char *s = rel_scratch();
  rel_world m;
  REL_OK(rel_world_make(&m, 1));
  snprintf(f_model, sizeof f_model, "%s/model.safetensors", s);
  REL_OK(nnkit_net_save(m.net, m.nz, f_model));
  snprintf(f_ckpt, sizeof f_ckpt, "%s/run.ckpt", s);
  REL_OK(nnkit_trainer_save_checkpoint(m.tr, f_ckpt));
  snprintf(f_idx, sizeof f_idx, "%s/i.idx", s);
  snprintf(f_idx_lab, sizeof f_idx_lab, "%s/l.idx", s);
  REL_OK(nnkit_dataset_save_idx(m.train, f_idx, f_idx_lab, 0));
  snprintf(f_idxgz, sizeof f_idxgz, "%s/i.idx.gz", s);
  snprintf(f_idxgz_lab, sizeof f_idxgz_lab, "%s/l.idx.gz", s);
  REL_OK(nnkit_dataset_save_idx(m.train, f_idxgz, f_idxgz_lab, 1));
  rel_world_free(&m);
  snprintf(f_csv, sizeof f_csv, "%s/d.csv", s);
  static const char csv[] = "a,b,c,label\n1,2,3,0\n4.5,-6,7e1,1\n\"8\",9,10,2\n0,0,0,1\n";
  REL_CHECK(rel_write(f_csv, csv, sizeof csv - 1), "%s", f_csv);
  snprintf(f_images, sizeof f_images, "%s/images", s);
  mkdir(f_images, 0700);
  unsigned char px[8 * 6 * 3];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (unsigned char)(i * 37 % 251);
  for (int c = 0; c < 2; c++) {
    char p[800];
    snprintf(p, sizeof p, "%s/%c", f_images, 'a' + c);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/%c/1.png", f_images, 'a' + c);
    REL_CHECK(stbi_write_png(p, 8, 6, 3, px, 8 * 3), "%s", p);
    snprintf(p, sizeof p, "%s/%c/2.jpg", f_images, 'a' + c);
    REL_CHECK(stbi_write_jpg(p, 8, 6, 3, px, 90), "%s", p);
  }
  snprintf(d_save, sizeof d_save, "%s/save", s);
  mkdir(d_save, 0700);
  snprintf(f_save, sizeof f_save, "%s/out", d_save);
}

int main(void)
{
  sh_arm = (void (*)(uint64_t))dlsym(RTLD_DEFAULT, "failmalloc_arm");
  sh_calls = (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "failmalloc_calls");
  sh_injected = (uint64_t(*)(void))dlsym(RTLD_DEFAULT, "failmalloc_injected");
  sh_live = (int64_t(*)(void))dlsym(RTLD_DEFAULT, "failmalloc_live");
  if (!sh_arm || !sh_calls || !sh_injected || !sh_live) {
    printf("alloc sweep: the failmalloc shim is not preloaded; skipped\n");
    return 77;
  }
  REL_OK(nnkit_set_num_threads(1));
  make_files();
  uint64_t total = 0, total_nomem = 0, total_absorbed = 0, findings = 0;
  for (size_t e = 0; e < sizeof entries / sizeof entries[0]; e++) {
    const entry *en = &entries[e];
    /* Warm up (lazily made state), then count one clean run's calls. */
    for (int pass = 0; pass < 2; pass++) {
      en->setup();
      uint64_t c0 = sh_calls();
      nnkit_status st = en->run();
      uint64_t n = sh_calls() - c0;
      REL_CHECK(st == NNKIT_OK, "%s: the clean run failed", en->name);
      en->usable(st);
      en->teardown();
      if (pass == 0)
        continue;
      uint64_t nomem = 0, absorbed = 0;
      for (uint64_t k = 1; k <= n; k++) {
        int64_t live0 = sh_live();
        en->setup();
        uint64_t inj0 = sh_injected();
        if (getenv("REL_VERBOSE"))
          fprintf(stderr, "%s: failing call %llu of %llu\n", en->name,
                  (unsigned long long)k, (unsigned long long)n);
        nnkit_clear_error();
        sh_arm(k);
        st = en->run();
        sh_arm(0);
        int failed = sh_injected() > inj0;
        if (failed && st == NNKIT_E_NOMEM) {
          nomem++;
          REL_CHECK(nnkit_last_error()[0] != '\0', "%s, call %llu failing: no sentence",
                    en->name, (unsigned long long)k);
        } else if (failed && st == NNKIT_OK) {
          absorbed++;
          if (getenv("REL_VERBOSE"))
            fprintf(stderr, "%s: call %llu failing was absorbed\n", en->name,
                    (unsigned long long)k);
        } else if (failed || st != NNKIT_OK) {
          fprintf(stderr,
                  "alloc sweep: FINDING: %s, allocation call %llu of %llu failing: "
                  "status %d (%s), expected NNKIT_E_NOMEM\n",
                  en->name, (unsigned long long)k, (unsigned long long)n, (int)st,
                  nnkit_last_error());
          findings++;
        }
        en->usable(st);
        en->teardown();
        int64_t leaked = sh_live() - live0;
        if (leaked != 0) {
          fprintf(stderr,
                  "alloc sweep: FINDING: %s, allocation call %llu failing (status %d): "
                  "%lld blocks leaked\n",
                  en->name, (unsigned long long)k, (int)st, (long long)leaked);
          findings++;
        }
      }
      printf("alloc sweep: %-52s %5llu allocation calls failed: %llu NNKIT_E_NOMEM, "
             "%llu absorbed\n",
             en->name, (unsigned long long)n, (unsigned long long)nomem,
             (unsigned long long)absorbed);
      total += nomem + absorbed;
      total_nomem += nomem;
      total_absorbed += absorbed;
    }
  }
  printf("alloc sweep: %llu allocation failures injected: %llu NNKIT_E_NOMEM, %llu "
         "absorbed (the call succeeded), %llu findings (other answers or leaks)\n",
         (unsigned long long)total, (unsigned long long)total_nomem,
         (unsigned long long)total_absorbed, (unsigned long long)findings);
  return findings != 0;
}
