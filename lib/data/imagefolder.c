/* Image folders (torchvision's ImageFolder layout) as datasets.
 *
 * root/<class>/<file>: classes are the sub-folders of root in byte order
 * of their names, images the .png/.jpg/.jpeg files of each in byte order.
 * Everything is listed first (so an empty class or an undecodable first
 * image is reported before any decoding), then each image is decoded by
 * stb_image straight to the requested channel count, converted from HWC
 * bytes to CHW floats and, when needed, resized bilinearly. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <stb_image.h>

#include "internal.h"

#define MAX_SIDE 65536

/* Growable list of strings (NUL-terminated, in one buffer). */
typedef struct name_list {
  char *text;
  size_t len, cap;
  size_t *off;
  size_t n, off_cap;
} name_list;

static void list_free(name_list *l)
{
  nnkit__free(l->text);
  nnkit__free(l->off);
  memset(l, 0, sizeof *l);
}

static int list_add(name_list *l, const char *s)
{
  size_t n = strlen(s) + 1;
  if (l->len + n > l->cap) {
    size_t cap = l->cap ? l->cap : 1024;
    while (cap < l->len + n)
      cap *= 2;
    char *t = nnkit__realloc(l->text, cap);
    if (!t)
      return 0;
    l->text = t;
    l->cap = cap;
  }
  if (l->n == l->off_cap) {
    size_t cap = l->off_cap ? 2 * l->off_cap : 64;
    size_t *o = nnkit__realloc(l->off, cap * sizeof *o);
    if (!o)
      return 0;
    l->off = o;
    l->off_cap = cap;
  }
  memcpy(l->text + l->len, s, n);
  l->off[l->n++] = l->len;
  l->len += n;
  return 1;
}

static const char *list_at(const name_list *l, size_t i)
{
  return l->text + l->off[i];
}

/* Sorts a list's entries in byte order (qsort on pointers; the sorted
 * pointers are written back as offsets). */
static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int list_sort(name_list *l)
{
  if (l->n < 2)
    return 1;
  const char **v = nnkit__malloc(l->n * sizeof *v);
  if (!v)
    return 0;
  for (size_t i = 0; i < l->n; i++)
    v[i] = list_at(l, i);
  qsort(v, l->n, sizeof *v, cmp_str);
  for (size_t i = 0; i < l->n; i++)
    l->off[i] = (size_t)(v[i] - l->text);
  nnkit__free(v);
  return 1;
}

static int has_image_ext(const char *name)
{
  const char *dot = strrchr(name, '.');
  return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                 strcasecmp(dot, ".jpeg") == 0);
}

/* Joins "a/b" into a fresh buffer; NULL on OOM. */
static char *join(const char *a, const char *b)
{
  size_t la = strlen(a), lb = strlen(b);
  char *p = nnkit__malloc(la + lb + 2);
  if (!p)
    return NULL;
  memcpy(p, a, la);
  p[la] = '/';
  memcpy(p + la + 1, b, lb + 1);
  return p;
}

/* Lists the entries of dir that are directories (want_dirs) or image
 * files, skipping names starting with '.'. */
static nnkit_status list_dir(name_list *out, const char *dir, int want_dirs)
{
  DIR *d = opendir(dir);
  if (!d)
    return nnkit__err(NNKIT_E_IO, "%s: cannot list: %s; check the path%s",
                      dir, strerror(errno),
                      want_dirs ? " of the image root folder" : "");
  nnkit_status st = NNKIT_OK;
  for (;;) {
    errno = 0;
    struct dirent *e = readdir(d);
    if (!e) {
      if (errno)
        st = nnkit__err(NNKIT_E_IO, "%s: cannot list: %s", dir,
                        strerror(errno));
      break;
    }
    if (e->d_name[0] == '.')
      continue;
    if (!want_dirs && !has_image_ext(e->d_name))
      continue;
    char *full = join(dir, e->d_name);
    if (!full) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      break;
    }
    /* A file that cannot even be stat'ed (e.g. a dangling link) is kept,
     * so that opening it reports the problem by path. */
    struct stat sb;
    int found = stat(full, &sb) == 0;
    int ok = want_dirs ? found && S_ISDIR(sb.st_mode)
                       : !found || !S_ISDIR(sb.st_mode);
    nnkit__free(full);
    if (ok && !list_add(out, e->d_name)) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      break;
    }
  }
  closedir(d);
  if (st == NNKIT_OK && !list_sort(out))
    st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory sorting names", dir);
  return st;
}

/* Checks an opened image file before anything is decoded: its first
 * bytes are the signature of the format its extension names (stb_image
 * would otherwise decode whatever it recognizes: a TGA, PNM or HDR named
 * .png), its header parses, and the size it declares is at least 1x1, at
 * most MAX_SIDE a side and NNKIT_MAX_IMAGE_PIXELS in all (a 19-byte header
 * may claim 60000 x 60000). *ih_out, *iw_out get the size; f is left at
 * its start. NNKIT_E_FORMAT naming path otherwise. */
static nnkit_status probe(FILE *f, const char *path, int *ih_out, int *iw_out)
{
  static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  unsigned char head[8] = {0};
  size_t got = fread(head, 1, sizeof head, f);
  if (fseek(f, 0, SEEK_SET) != 0)
    return nnkit__err(NNKIT_E_IO, "%s: cannot read: %s", path, strerror(errno));
  int iw = 0, ih = 0, ic = 0;
  if (!stbi_info_from_file(f, &iw, &ih, &ic))
    return nnkit__err(NNKIT_E_FORMAT, "%s: cannot decode the image (%s); "
                      "the file is damaged or not really a PNG/JPEG; "
                      "replace or remove it", path, stbi_failure_reason());
  const char *dot = strrchr(path, '.');
  int png = dot && strcasecmp(dot, ".png") == 0;
  int ok = png ? got == 8 && memcmp(head, png_sig, 8) == 0
               : got >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF;
  if (!ok)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the file is not a %s image (it lacks "
                      "the %s signature; stb_image reads it as another format); "
                      "convert it to %s or give it the right name", path,
                      png ? "PNG" : "JPEG", png ? "PNG" : "JPEG",
                      png ? "PNG" : "JPEG");
  if (ih <= 0 || iw <= 0)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the image is %dx%d (height x width): "
                      "an image without pixels; replace or remove it", path, ih,
                      iw);
  if (ih > MAX_SIDE || iw > MAX_SIDE)
    return nnkit__err(NNKIT_E_FORMAT, "%s: %dx%d is larger than %d pixels "
                      "a side; shrink the image", path, ih, iw, MAX_SIDE);
  size_t pixels = (size_t)ih * (size_t)iw; /* <= 2^32: no overflow */
  if (pixels > NNKIT_MAX_IMAGE_PIXELS)
    return nnkit__err(NNKIT_E_FORMAT, "%s: the image is %dx%d (height x "
                      "width), %zu pixels, more than the %zu nnkit decodes "
                      "(NNKIT_MAX_IMAGE_PIXELS); shrink the image", path, ih,
                      iw, pixels, (size_t)NNKIT_MAX_IMAGE_PIXELS);
  *ih_out = ih;
  *iw_out = iw;
  return NNKIT_OK;
}

/* Bilinear resize of one channel, pixel centres aligned (OpenCV's
 * INTER_LINEAR / PyTorch's align_corners=False), edges clamped. */
static void resize_plane(const float *src, size_t sh, size_t sw, float *dst,
                         size_t dh, size_t dw)
{
  double ry = (double)sh / (double)dh, rx = (double)sw / (double)dw;
  for (size_t y = 0; y < dh; y++) {
    double fy = ((double)y + 0.5) * ry - 0.5;
    if (fy < 0)
      fy = 0;
    size_t y0 = (size_t)fy;
    if (y0 > sh - 1)
      y0 = sh - 1;
    size_t y1 = y0 + 1 < sh ? y0 + 1 : sh - 1;
    double wy = fy - (double)y0;
    if (wy > 1)
      wy = 1;
    for (size_t x = 0; x < dw; x++) {
      double fx = ((double)x + 0.5) * rx - 0.5;
      if (fx < 0)
        fx = 0;
      size_t x0 = (size_t)fx;
      if (x0 > sw - 1)
        x0 = sw - 1;
      size_t x1 = x0 + 1 < sw ? x0 + 1 : sw - 1;
      double wx = fx - (double)x0;
      if (wx > 1)
        wx = 1;
      double top = src[y0 * sw + x0] * (1 - wx) + src[y0 * sw + x1] * wx;
      double bot = src[y1 * sw + x0] * (1 - wx) + src[y1 * sw + x1] * wx;
      dst[y * dw + x] = (float)(top * (1 - wy) + bot * wy);
    }
  }
}

/* Decodes one image into dst (channels x h x w floats), resizing through
 * tmp (channels * ih * iw floats, grown as needed) when allowed. */
/* Decodes one image into dst (floats) or, when dst8 is given (resize 0:
 * every image keeps its bytes), into dst8. */
static nnkit_status load_one(const char *path, size_t channels, size_t h,
                             size_t w, int resize, float *dst, uint8_t *dst8,
                             float **tmp, size_t *tmp_cap)
{
  FILE *f = fopen(path, "rb");
  if (!f)
    return nnkit__err(NNKIT_E_IO, "%s: cannot open: %s; check its "
                      "permissions or remove it", path, strerror(errno));
  int iw = 0, ih = 0, ic = 0;
  nnkit_status pst = probe(f, path, &ih, &iw);
  if (pst != NNKIT_OK) {
    fclose(f);
    return pst;
  }
  int pw = iw, ph = ih;
  unsigned char *px = stbi_load_from_file(f, &iw, &ih, &ic, (int)channels);
  fclose(f);
  if (px && (iw != pw || ih != ph)) {
    stbi_image_free(px);
    return nnkit__err(NNKIT_E_FORMAT, "%s: the image header says %dx%d (height "
                      "x width) but it decodes to %dx%d; replace or remove it",
                      path, ph, pw, ih, iw);
  }
  if (!px)
    return nnkit__err(NNKIT_E_FORMAT, "%s: cannot decode the image (%s); "
                      "the file is damaged or not really a PNG/JPEG; "
                      "replace or remove it", path, stbi_failure_reason());
  size_t sh = (size_t)ih, sw = (size_t)iw;
  nnkit_status st = NNKIT_OK;
  if (ih <= 0 || iw <= 0) {
    st = nnkit__err(NNKIT_E_FORMAT, "%s: the image is %dx%d (height x width): "
                    "an image without pixels; replace or remove it", path, ih,
                    iw);
  } else if (sh == h && sw == w && dst8) {
    for (size_t c = 0; c < channels; c++)
      for (size_t i = 0; i < h * w; i++)
        dst8[c * h * w + i] = px[i * channels + c];
  } else if (sh == h && sw == w) {
    for (size_t c = 0; c < channels; c++)
      for (size_t i = 0; i < h * w; i++)
        dst[c * h * w + i] = px[i * channels + c];
  } else if (!resize) {
    st = nnkit__err(NNKIT_E_FORMAT, "%s: the image is %zux%zu (height x "
                    "width) but the others are %zux%zu; pass resize = 1 to "
                    "resize images to a common size", path, sh, sw, h, w);
  } else {
    size_t need = channels * sh * sw;
    if (need > *tmp_cap) {
      float *t = nnkit__realloc(*tmp, need * sizeof(float));
      if (!t) {
        st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory resizing", path);
      } else {
        *tmp = t;
        *tmp_cap = need;
      }
    }
    if (st == NNKIT_OK) {
      for (size_t c = 0; c < channels; c++)
        for (size_t i = 0; i < sh * sw; i++)
          (*tmp)[c * sh * sw + i] = px[i * channels + c];
      for (size_t c = 0; c < channels; c++)
        resize_plane(*tmp + c * sh * sw, sh, sw, dst + c * h * w, h, w);
    }
  }
  stbi_image_free(px);
  return st;
}

NNKIT_API nnkit_status nnkit_dataset_load_image_folder(nnkit_dataset **out,
                                                       const char *root,
                                                       size_t channels,
                                                       size_t height,
                                                       size_t width,
                                                       int resize)
{
  static const char fn[] = "nnkit_dataset_load_image_folder";
  if (!out)
    return nnkit__err(NNKIT_E_INVALID, "%s: out is NULL; pass the address "
                      "of a nnkit_dataset pointer", fn);
  *out = NULL;
  if (!root)
    return nnkit__err(NNKIT_E_INVALID, "%s: root is NULL", fn);
  if (channels != 1 && channels != 3)
    return nnkit__err(NNKIT_E_INVALID, "%s: channels is %zu; use 1 "
                      "(grayscale) or 3 (RGB)", fn, channels);
  if ((height == 0) != (width == 0))
    return nnkit__err(NNKIT_E_INVALID, "%s: height %zu and width %zu: give "
                      "both, or both 0 to use the first image's size", fn,
                      height, width);
  if (height > MAX_SIDE || width > MAX_SIDE)
    return nnkit__err(NNKIT_E_INVALID, "%s: %zux%zu is larger than %d pixels "
                      "a side", fn, height, width, MAX_SIDE);

  name_list classes = {0}, files = {0};
  size_t *labels = NULL, labels_cap = 0;
  char **class_names = NULL;
  float *tmp = NULL;
  size_t tmp_cap = 0;
  nnkit_dataset *ds = NULL;
  char *path = NULL;

  nnkit_status st = list_dir(&classes, root, 1);
  if (st == NNKIT_OK && classes.n == 0)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: holds no class folders; put the "
                    "images of each class in a sub-folder named after it "
                    "(root/cat/1.png, root/dog/2.png, ...)", root);
  if (st == NNKIT_OK && classes.n > (size_t)INT32_MAX)
    st = nnkit__err(NNKIT_E_FORMAT, "%s: too many class folders", root);
  /* Files: "class/file" relative to root, with their class ids. */
  for (size_t k = 0; st == NNKIT_OK && k < classes.n; k++) {
    char *dir = join(root, list_at(&classes, k));
    if (!dir) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
      break;
    }
    name_list in_class = {0};
    st = list_dir(&in_class, dir, 0);
    if (st == NNKIT_OK && in_class.n == 0)
      st = nnkit__err(NNKIT_E_FORMAT, "%s: class folder '%s' holds no "
                      ".png, .jpg or .jpeg files; add images or remove the "
                      "folder", dir, list_at(&classes, k));
    for (size_t i = 0; st == NNKIT_OK && i < in_class.n; i++) {
      char *rel = join(list_at(&classes, k), list_at(&in_class, i));
      int ok = rel && list_add(&files, rel);
      if (ok && files.n > labels_cap) {
        size_t cap = 2 * files.n + 64;
        size_t *nl = nnkit__realloc(labels, cap * sizeof *nl);
        ok = nl != NULL;
        if (ok) {
          labels = nl;
          labels_cap = cap;
        }
      }
      if (ok)
        labels[files.n - 1] = k;
      else
        st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory listing files", dir);
      nnkit__free(rel);
    }
    list_free(&in_class);
    nnkit__free(dir);
  }
  /* The common size. */
  if (st == NNKIT_OK && height == 0) {
    path = join(root, list_at(&files, 0));
    int iw = 0, ih = 0;
    if (!path) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
    } else {
      FILE *f = fopen(path, "rb");
      if (!f) {
        st = nnkit__err(NNKIT_E_IO, "%s: cannot open: %s; check its "
                        "permissions or remove it", path, strerror(errno));
      } else {
        st = probe(f, path, &ih, &iw);
        fclose(f);
      }
      height = (size_t)ih;
      width = (size_t)iw;
    }
    nnkit__free(path);
    path = NULL;
  }
  if (st == NNKIT_OK) {
    size_t shape[3] = {channels, height, width};
    /* Without resizing every value is a byte: kept compact. */
    st = resize ? nnkit__dataset_alloc(&ds, files.n, shape, 3, 1, 0)
                : nnkit__dataset_alloc_bytes(&ds, files.n, shape, 3, 1);
  }
  if (st == NNKIT_OK) {
    class_names = nnkit__malloc(classes.n * sizeof *class_names);
    if (!class_names)
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
    for (size_t k = 0; st == NNKIT_OK && k < classes.n; k++)
      class_names[k] = (char *)list_at(&classes, k);
    ds->num_classes = (uint32_t)classes.n;
    if (st == NNKIT_OK)
      st = nnkit__dataset_set_names(ds, (const char *const *)class_names,
                                    classes.n);
  }
  for (size_t i = 0; st == NNKIT_OK && i < files.n; i++) {
    path = join(root, list_at(&files, i));
    if (!path) {
      st = nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", root);
      break;
    }
    size_t at = i * ds->sample_size;
    st = load_one(path, channels, height, width, resize,
                  ds->x8 ? NULL : ds->x + at, ds->x8 ? ds->x8 + at : NULL, &tmp,
                  &tmp_cap);
    ds->labels[i] = (int32_t)labels[i];
    nnkit__free(path);
    path = NULL;
  }
  list_free(&classes);
  list_free(&files);
  nnkit__free(labels);
  nnkit__free(class_names);
  nnkit__free(tmp);
  if (st != NNKIT_OK) {
    nnkit_dataset_free(ds);
    return st;
  }
  *out = ds;
  return NNKIT_OK;
}
