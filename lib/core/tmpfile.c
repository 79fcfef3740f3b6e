/* Temporary files next to a destination, the first half of every atomic
 * write (temporary file, fsync, rename). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- opening a file to read ------------------------------------------------------------------ */

nnkit_status nnkit__open_regular(int *fd_out, uint64_t *size_out, const char *path,
                                 const char *what)
{
  *fd_out = -1;
  /* O_NONBLOCK: opening a FIFO without a writer must not wait for one. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0)
    return nnkit__err(NNKIT_E_IO, "%s: cannot open the %s: %s; check the path", path,
                      what, strerror(errno));
  struct stat sb;
  if (fstat(fd, &sb) != 0) {
    int e = errno;
    close(fd);
    return nnkit__err(NNKIT_E_IO, "%s: cannot read the %s: %s", path, what,
                      strerror(e));
  }
  if (!S_ISREG(sb.st_mode)) {
    const char *kind = S_ISDIR(sb.st_mode)    ? "is a directory"
                       : S_ISFIFO(sb.st_mode) ? "is a FIFO (named pipe)"
                       : S_ISSOCK(sb.st_mode) ? "is a socket"
                       : S_ISCHR(sb.st_mode)  ? "is a character device"
                       : S_ISBLK(sb.st_mode)  ? "is a block device"
                                              : "is not a regular file";
    close(fd);
    return nnkit__err(NNKIT_E_IO, "%s: %s, not a regular file; pass the path of a %s",
                      path, kind, what);
  }
  /* A regular file never blocks; clear the flag so later reads are plain. */
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    return nnkit__err(NNKIT_E_IO, "%s: cannot read the %s: %s", path, what,
                      strerror(e));
  }
  *fd_out = fd;
  if (size_out)
    *size_out = (uint64_t)sb.st_size;
  return NNKIT_OK;
}

nnkit_status nnkit__read_file(unsigned char **buf_out, size_t *len_out, const char *path,
                             const char *what, uint64_t max_size)
{
  *buf_out = NULL;
  *len_out = 0;
  int fd;
  uint64_t size;
  nnkit_status st = nnkit__open_regular(&fd, &size, path, what);
  if (st != NNKIT_OK)
    return st;
  if ((max_size && size > max_size) || size >= SIZE_MAX) {
    close(fd);
    return nnkit__err(NNKIT_E_FORMAT, "%s: the %s is %llu bytes, more than the %llu "
                      "nnkit reads at once; shrink or remove it", path, what,
                      (unsigned long long)size,
                      (unsigned long long)(max_size ? max_size : SIZE_MAX - 1));
  }
  size_t n = (size_t)size;
  unsigned char *b = nnkit__malloc(n + 1);
  if (!b) {
    close(fd);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory for the %zu bytes of the %s",
                      path, n, what);
  }
  /* read(2), not stdio: no hidden buffer allocation to fail. */
  size_t got = 0;
  int e = 0;
  while (got < n) {
    ssize_t k = read(fd, b + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      e = k < 0 ? errno : 0;
      break;
    }
    got += (size_t)k;
  }
  close(fd);
  if (got != n) {
    nnkit__free(b);
    return nnkit__err(NNKIT_E_IO, "%s: reading the %s failed: %s", path, what,
                      e ? strerror(e) : "it got shorter while being read");
  }
  b[n] = '\0';
  *buf_out = b;
  *len_out = n;
  return NNKIT_OK;
}

/* ---- atomic writes: where, with which mode, and stale temporaries -------------------------- */

/* Follows path through symbolic links (at most 40, as the kernel) to the
 * file an atomic write must replace: the last link's target, which need
 * not exist yet (fopen "w" would create it too). A relative target is
 * relative to its link's folder. NULL with errno set on failure. */
static char *final_target(const char *path)
{
  char *cur = nnkit__strdup(path);
  for (int hops = 0;; hops++) {
    if (!cur) {
      errno = ENOMEM;
      return NULL;
    }
    struct stat sb;
    if (lstat(cur, &sb) != 0 || !S_ISLNK(sb.st_mode))
      return cur; /* a file, a folder or nothing yet: the destination */
    if (hops == 40) {
      nnkit__free(cur);
      errno = ELOOP;
      return NULL;
    }
    size_t cap = sb.st_size > 0 ? (size_t)sb.st_size + 1 : 4096;
    char *target = nnkit__malloc(cap);
    if (!target) {
      nnkit__free(cur);
      errno = ENOMEM;
      return NULL;
    }
    ssize_t k = readlink(cur, target, cap);
    if (k < 0 || (size_t)k >= cap) { /* gone or changed meanwhile */
      int e = k < 0 ? errno : EAGAIN;
      nnkit__free(target);
      nnkit__free(cur);
      errno = e;
      return NULL;
    }
    target[k] = '\0';
    const char *slash = strrchr(cur, '/');
    char *next;
    if (target[0] == '/' || !slash) {
      next = target;
    } else {
      size_t dl = (size_t)(slash - cur) + 1, tl = (size_t)k;
      next = nnkit__malloc(dl + tl + 1);
      if (next) {
        memcpy(next, cur, dl);
        memcpy(next + dl, target, tl + 1);
      }
      nnkit__free(target);
      if (!next)
        errno = ENOMEM;
    }
    nnkit__free(cur);
    cur = next;
  }
}

static int is_tmp_suffix(const char *s)
{
  for (int i = 0; i < 6; i++)
    if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
          (s[i] >= '0' && s[i] <= '9')))
      return 0;
  return s[6] == '\0';
}

/* Removes the regular files "<base of dest>.tmp.XXXXXX" (six letters or
 * digits, our temporaries' exact form) in dest's folder: what a save killed
 * before its rename left behind. Best effort: a folder that cannot be
 * listed is left as it is. */
static void remove_stale_temporaries(const char *dest)
{
  const char *slash = strrchr(dest, '/');
  const char *base = slash ? slash + 1 : dest;
  size_t bl = strlen(base);
  DIR *d;
  if (!slash) {
    d = opendir(".");
  } else {
    size_t dl = (size_t)(slash - dest) + 1; /* keep the '/' so "/x" lists "/" */
    char *dir = nnkit__malloc(dl + 1);
    if (!dir)
      return;
    memcpy(dir, dest, dl);
    dir[dl] = '\0';
    d = opendir(dir);
    nnkit__free(dir);
  }
  if (!d)
    return;
  int dfd = dirfd(d);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    const char *n = e->d_name;
    if (strncmp(n, base, bl) != 0 || strncmp(n + bl, ".tmp.", 5) != 0 ||
        !is_tmp_suffix(n + bl + 5))
      continue;
    struct stat sb;
    if (fstatat(dfd, n, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode))
      (void)unlinkat(dfd, n, 0);
  }
  closedir(d);
}

/* Creates "<dest>.tmp.XXXXXX" exclusively with mode 0666, which the kernel
 * narrows by the umask (and a folder's default ACL) as for any new file;
 * mkstemp would make it 0600 and reading the umask is not thread-safe. */
static int create_temporary(char *tmp, size_t len)
{
  static const char set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  static _Atomic uint64_t counter;
  char *x = tmp + len - 7; /* the six X before the terminating NUL */
  for (int attempt = 0; attempt < 100; attempt++) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t v = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^
                 ((uint64_t)getpid() << 16) ^ (++counter * 0x9e3779b97f4a7c15ULL);
    v ^= v >> 33;
    v *= 0xff51afd7ed558ccdULL;
    v ^= v >> 33;
    for (int i = 0; i < 6; i++, v /= 62)
      x[i] = set[v % 62];
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd >= 0 || errno != EEXIST)
      return fd;
  }
  errno = EEXIST;
  return -1;
}

nnkit_status nnkit__tmpfile_next_to(int *fd_out, char **tmp_out, char **dest_out,
                                    const char *path)
{
  *fd_out = -1;
  *tmp_out = NULL;
  *dest_out = NULL;
  char *dest = final_target(path);
  if (!dest) {
    if (errno == ENOMEM)
      return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", path);
    return nnkit__err(NNKIT_E_IO, "%s: cannot follow its symbolic link: %s", path,
                      strerror(errno));
  }
  size_t len = strlen(dest) + sizeof ".tmp.XXXXXX";
  char *tmp = nnkit__malloc(len);
  if (!tmp) {
    nnkit__free(dest);
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", path);
  }
  snprintf(tmp, len, "%s.tmp.XXXXXX", dest);
  remove_stale_temporaries(dest);
  int fd = create_temporary(tmp, len);
  if (fd < 0) {
    nnkit_status st = nnkit__err(NNKIT_E_IO, "%s: cannot create a temporary file "
                                 "next to it: %s; check that the directory exists "
                                 "and is writable", path, strerror(errno));
    nnkit__free(tmp);
    nnkit__free(dest);
    return st;
  }
  /* Replacing a file keeps its permission bits (an 0600 file stays 0600). */
  struct stat sb;
  if (stat(dest, &sb) == 0 && S_ISREG(sb.st_mode))
    (void)fchmod(fd, sb.st_mode & 07777);
  *fd_out = fd;
  *tmp_out = tmp;
  *dest_out = dest;
  return NNKIT_OK;
}

/* ---- atomic files (temporary file, fsync, rename) ------------------------------------------------ */

nnkit_status nnkit__tfile_open(nnkit__tfile *t, const char *path)
{
  memset(t, 0, sizeof *t);
  t->path = path;
  int fd;
  nnkit_status tst = nnkit__tmpfile_next_to(&fd, &t->tmp, &t->dest, path);
  if (tst != NNKIT_OK)
    return tst;
  t->f = fdopen(fd, "w");
  if (!t->f) {
    int e = errno;
    nnkit_status st = nnkit__err(e == ENOMEM ? NNKIT_E_NOMEM : NNKIT_E_IO,
                                 "%s: cannot open a stream: %s", path, strerror(e));
    close(fd);
    unlink(t->tmp);
    nnkit__free(t->tmp);
    nnkit__free(t->dest);
    t->tmp = NULL;
    t->dest = NULL;
    return st;
  }
  return NNKIT_OK;
}

nnkit_status nnkit__tfile_commit(nnkit__tfile *t, int ok)
{
  int e = 0;
  if (ok && (ferror(t->f) || fflush(t->f) != 0 || fsync(fileno(t->f)) != 0)) {
    ok = 0;
    e = errno;
  }
  if (fclose(t->f) != 0 && ok) {
    ok = 0;
    e = errno;
  }
  if (ok && rename(t->tmp, t->dest) != 0) {
    ok = 0;
    e = errno;
  }
  nnkit_status st = NNKIT_OK;
  if (!ok) {
    unlink(t->tmp);
    st = nnkit__err(NNKIT_E_IO, "%s: write failed: %s; check free disk space and "
                    "permissions (nothing was written)", t->path,
                    e ? strerror(e) : "stream error");
  } else {
    /* Make the rename durable (best effort). */
    char *slash = strrchr(t->tmp, '/');
    int dfd;
    if (!slash) {
      dfd = open(".", O_RDONLY);
    } else {
      char saved = slash[1];
      slash[1] = '\0';
      dfd = open(t->tmp, O_RDONLY);
      slash[1] = saved;
    }
    if (dfd >= 0) {
      (void)fsync(dfd);
      close(dfd);
    }
  }
  nnkit__free(t->tmp);
  nnkit__free(t->dest);
  memset(t, 0, sizeof *t);
  return st;
}

/* ---- creating a folder ----------------------------------------------------------------------- */

nnkit_status nnkit__mkdirs(const char *dir, const char *fn)
{
  size_t n = strlen(dir);
  char *path = nnkit__strdup(dir);
  if (!path)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", fn);
  nnkit_status st = NNKIT_OK;
  for (size_t i = 1; i <= n && st == NNKIT_OK; i++) {
    if (path[i] != '/' && path[i] != '\0')
      continue;
    if (path[i - 1] == '/') /* "a//b" */
      continue;
    char c = path[i];
    path[i] = '\0';
    struct stat sb;
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
      st = nnkit__err(NNKIT_E_IO, "%s: cannot create the folder %s: %s", fn, path,
                      strerror(errno));
    else if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
      st = nnkit__err(NNKIT_E_IO, "%s: %s exists and is not a folder", fn, path);
    path[i] = c;
  }
  nnkit__free(path);
  return st;
}
