/* Temporary files next to a destination, the first half of every atomic
 * write (temporary file, fsync, rename). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

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
