/* Temporary files next to a destination, the first half of every atomic
 * write (temporary file, fsync, rename). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* ---- opening a file to read ------------------------------------------------------------------ */

nnkit_status nnkit__open_regular(int *fd_out, const char *path, const char *what)
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
  return NNKIT_OK;
}

nnkit_status nnkit__tmpfile_next_to(int *fd_out, char **tmp_out, const char *path)
{
  *fd_out = -1;
  *tmp_out = NULL;
  size_t len = strlen(path) + sizeof ".tmp.XXXXXX";
  char *tmp = nnkit__malloc(len);
  if (!tmp)
    return nnkit__err(NNKIT_E_NOMEM, "%s: out of memory", path);
  snprintf(tmp, len, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    nnkit_status st = nnkit__err(NNKIT_E_IO, "%s: cannot create a temporary file "
                                 "next to it: %s; check that the directory exists "
                                 "and is writable", path, strerror(errno));
    nnkit__free(tmp);
    return st;
  }
  /* mkstemp creates 0600; a data file is normally readable by others. */
  (void)fchmod(fd, 0644);
  *fd_out = fd;
  *tmp_out = tmp;
  return NNKIT_OK;
}

/* ---- atomic files (temporary file, fsync, rename) ------------------------------------------------ */

nnkit_status nnkit__tfile_open(nnkit__tfile *t, const char *path)
{
  memset(t, 0, sizeof *t);
  t->path = path;
  int fd;
  nnkit_status tst = nnkit__tmpfile_next_to(&fd, &t->tmp, path);
  if (tst != NNKIT_OK)
    return tst;
  t->f = fdopen(fd, "w");
  if (!t->f) {
    nnkit_status st = nnkit__err(NNKIT_E_IO, "%s: cannot open a stream: %s", path,
                                 strerror(errno));
    close(fd);
    unlink(t->tmp);
    nnkit__free(t->tmp);
    t->tmp = NULL;
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
  if (ok && rename(t->tmp, t->path) != 0) {
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
  memset(t, 0, sizeof *t);
  return st;
}
