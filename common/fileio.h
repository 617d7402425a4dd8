/* Small file helpers: bounded reads, atomic durable writes, directories. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Read a whole file of at most max bytes into a malloc'd, NUL-terminated buffer.
 * -EFBIG if larger, -errno otherwise. */
int sw_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len);
/* Write data to path atomically and durably: temp file with mode, fsync, rename, fsync dir. */
int sw_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode);
/* mkdir -p with mode for every created component; existing directories are kept. */
int sw_mkdir_p(const char *path, mode_t mode);
bool sw_file_exists(const char *path);
/* Join dir and name into buf; -ENAMETOOLONG if it does not fit. */
int sw_path_join(char *buf, size_t size, const char *dir, const char *name);
