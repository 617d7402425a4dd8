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
/* The same; with SW_WRITE_NOSYNC neither the file nor the directory is synced: the caller
 * makes a group of such writes durable at once (sw_syncfs) before it depends on them. */
#define SW_WRITE_NOSYNC 1u
int sw_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode,
                               unsigned flags);
/* fsync the directory holding path (after a rename in it). */
int sw_fsync_dir_of(const char *path);
/* syncfs(2) of the filesystem holding path: one flush for many writes. */
int sw_syncfs(const char *path);
/* mkdir -p with mode for every created component; existing directories are kept. */
int sw_mkdir_p(const char *path, mode_t mode);
bool sw_file_exists(const char *path);
/* Join dir and name into buf; -ENAMETOOLONG if it does not fit. */
int sw_path_join(char *buf, size_t size, const char *dir, const char *name);
