/* Writes the fuzz targets' seed corpora into <dir>/<target>/: valid files
 * the library writes itself (a model file with and without a normalizer,
 * a checkpoint after an epoch, IDX files plain and gzip-compressed, as
 * ubyte and float32, with labels, a history CSV) plus a hand-written CSV
 * with a header and PNG/JPEG images (stb_image_write: nnkit writes no
 * images), each behind the harness's option byte (harness.h). */
#include "harness.h"

#include <stb_image_write.h>

static char g_dir[1024];

/* Writes <dir>/<target>/<name> = opt byte + the file at src. */
static void seed_from(const char *target, const char *name, uint8_t opt, const char *src)
{
  size_t n = 0;
  unsigned char *b = rel_read(src, &n);
  REL_CHECK(b != NULL, "cannot read %s", src);
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", g_dir, target);
  mkdir(path, 0755);
  snprintf(path, sizeof path, "%s/%s/%s", g_dir, target, name);
  FILE *f = fopen(path, "wb");
  REL_CHECK(f != NULL, "cannot write %s", path);
  REL_CHECK(fputc(opt, f) != EOF && fwrite(b, 1, n, f) == n && fclose(f) == 0, "%s", path);
  free(b);
}

/* An IDX pair as one harness input: opt 1|2 (labels, 10 classes), the
 * split offset, the images, the labels. */
static void seed_idx_pair(const char *name, const char *img, const char *lab)
{
  size_t ni = 0, nl = 0;
  unsigned char *bi = rel_read(img, &ni), *bl = rel_read(lab, &nl);
  REL_CHECK(bi && bl && ni < 65536, "%s %s", img, lab);
  char path[2048];
  snprintf(path, sizeof path, "%s/idx/%s", g_dir, name);
  FILE *f = fopen(path, "wb");
  REL_CHECK(f != NULL, "%s", path);
  unsigned char head[3] = {3, (unsigned char)(ni >> 8), (unsigned char)(ni & 255)};
  REL_CHECK(fwrite(head, 1, 3, f) == 3 && fwrite(bi, 1, ni, f) == ni &&
                fwrite(bl, 1, nl, f) == nl && fclose(f) == 0,
            "%s", path);
  free(bi);
  free(bl);
}

static void seed_text(const char *target, const char *name, uint8_t opt, const char *text)
{
  char tmp[2048];
  snprintf(tmp, sizeof tmp, "%s/tmp.txt", rel_scratch());
  REL_CHECK(rel_write(tmp, text, strlen(text)), "%s", tmp);
  seed_from(target, name, opt, tmp);
}

int main(int argc, char **argv)
{
  REL_CHECK(argc == 2, "usage: make_seeds DIR");
  snprintf(g_dir, sizeof g_dir, "%s", argv[1]);
  mkdir(g_dir, 0755);
  const char *s = rel_scratch();
  char p[1024], q[1024];
  rel_world w;
  REL_OK(rel_world_make(&w, 1));

  snprintf(p, sizeof p, "%s/m.safetensors", s);
  REL_OK(nnkit_net_save(w.net, w.nz, p));
  seed_from("model", "with-normalizer", 3, p);
  seed_from("model", "with-normalizer-crc-kept", 2, p);
  REL_OK(nnkit_net_save(w.net, NULL, p));
  seed_from("model", "plain", 1, p);

  snprintf(p, sizeof p, "%s/c.ckpt", s);
  REL_OK(nnkit_trainer_save_checkpoint(w.tr, p));
  seed_from("checkpoint", "after-an-epoch", 1, p);
  seed_from("checkpoint", "after-an-epoch-crc-kept", 0, p);

  snprintf(p, sizeof p, "%s/i.idx", s);
  snprintf(q, sizeof q, "%s/l.idx", s);
  REL_OK(nnkit_dataset_save_idx(w.train, p, q, 0));
  seed_from("idx", "float32", 0, p);
  seed_idx_pair("float32-labels", p, q);
  REL_OK(nnkit_dataset_save_idx(w.train, p, q, 1));
  seed_from("idx", "float32-gz", 0, p);
  seed_idx_pair("float32-labels-gz", p, q);
  {
    float x[4 * 2 * 3];
    int32_t y[4] = {0, 1, 2, 1};
    for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
      x[i] = (float)(i * 11 % 256);
    size_t shape[2] = {2, 3};
    nnkit_dataset *u = NULL;
    REL_OK(nnkit_dataset_from_buffers(&u, x, y, 4, shape, 2, 3));
    REL_OK(nnkit_dataset_save_idx(u, p, q, 0));
    seed_from("idx", "ubyte", 0, p);
    seed_idx_pair("ubyte-labels", p, q);
    REL_OK(nnkit_dataset_save_idx(u, p, q, 1));
    seed_idx_pair("ubyte-labels-gz", p, q);
    nnkit_dataset_free(u);
  }

  snprintf(p, sizeof p, "%s/h.csv", s);
  REL_OK(nnkit_history_save_csv(nnkit_trainer_history(w.tr), NNKIT_HISTORY_EPOCHS, p));
  seed_from("csv", "history-epochs", 3 << 4, p); /* ',', auto header, no label */
  REL_OK(nnkit_history_save_csv(nnkit_trainer_history(w.tr), NNKIT_HISTORY_BATCHES, p));
  seed_from("csv", "history-batches", 3 << 4, p);
  seed_text("csv", "named-label", (2 << 4) | (1 << 2),
            "x1,x2,\"x 3\",label\n1.5,-2,3e2,0\n0.25,4,5,1\n\"6\",7.0,-8,2\n");
  seed_text("csv", "semicolon-last-label", 1 | (2 << 2), "1;2;3;1\n4;5;6;0\n");
  seed_text("csv", "tabs-first-label", 2 | (1 << 4), "lab\ta\tb\n1\t0.5\t1\n0\t2\t3\n");

  unsigned char px[8 * 6 * 3];
  for (size_t i = 0; i < sizeof px; i++)
    px[i] = (unsigned char)(i * 37 % 251);
  snprintf(p, sizeof p, "%s/x.img", s);
  REL_CHECK(stbi_write_png(p, 8, 6, 3, px, 8 * 3), "png");
  seed_from("image", "rgb-png", 1 | 2, p);
  seed_from("image", "rgb-png-resized-gray", 1 | 4, p);
  REL_CHECK(stbi_write_png(p, 6, 4, 1, px, 6), "png");
  seed_from("image", "gray-png", 1, p);
  REL_CHECK(stbi_write_png(p, 5, 5, 4, px, 5 * 4), "png");
  seed_from("image", "rgba-png", 1 | 2 | 4, p);
  REL_CHECK(stbi_write_jpg(p, 8, 6, 3, px, 90), "jpg");
  seed_from("image", "rgb-jpg", 2, p);
  seed_from("image", "rgb-jpg-resized-gray", 4, p);
  REL_CHECK(stbi_write_jpg(p, 9, 7, 1, px, 50), "jpg");
  seed_from("image", "gray-jpg", 0, p);

  rel_world_free(&w);
  printf("seeds written to %s\n", g_dir);
  return 0;
}
