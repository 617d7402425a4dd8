/* Bounded reads, atomic durable writes, mkdir -p, path joins. */
#include "common/fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

/* Move buf into a fresh allocation of new_cap bytes, wiping the old one: the file may
 * hold a key, and realloc would free the old copy as it is. */
static int grow_wiped(struct sw_secret *buf, size_t used, size_t new_cap)
{
    unsigned char *nb = malloc(new_cap);
    if (!nb)
        return -ENOMEM;
    memcpy(nb, buf->data, used);
    sw_secret_finish(buf);
    buf->data = nb;
    buf->len = new_cap;
    return 0;
}

int sw_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    if ((size_t)st.st_size > max)
        return -EFBIG;
    /* st_size + NUL + one spare byte: the read that sees EOF on a file of the expected
     * size has room, so the buffer is never moved; wiped on every error path */
    _cleanup_secret_ struct sw_secret buf = {.len = (size_t)st.st_size + 2};
    buf.data = malloc(buf.len);
    if (!buf.data)
        return -ENOMEM;
    size_t len = 0;
    for (;;) {
        if (len + 1 >= buf.len) {
            if (buf.len - 1 > max)
                return -EFBIG;
            int r = grow_wiped(&buf, len, buf.len * 2);
            if (r < 0)
                return r;
        }
        ssize_t n = read(fd, buf.data + len, buf.len - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return -EFBIG;
    }
    buf.data[len] = '\0';
    *ret_data = (char *)TAKE_PTR(buf.data);
    if (ret_len)
        *ret_len = len;
    return 0;
}

int sw_fsync_dir_of(const char *path)
{
    char dir[4096];
    int r = snprintf(dir, sizeof(dir), "%s", path);
    if (r < 0 || (size_t)r >= sizeof(dir))
        return -ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    if (slash) {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
    } else {
        snprintf(dir, sizeof(dir), ".");
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return -errno;
    r = fsync(dfd) < 0 ? -errno : 0;
    close(dfd);
    return r;
}

int sw_syncfs(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = syncfs(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int sw_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    return sw_write_file_atomic_flags(path, data, len, mode, 0);
}

int sw_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode,
                               unsigned flags)
{
    char tmp[4096];
    int r = snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    if (r < 0 || (size_t)r >= sizeof(tmp))
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -errno;
    if (fchmod(fd, mode) < 0)
        goto fail;
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            goto fail;
        }
        p += n;
        left -= (size_t)n;
    }
    if (!(flags & SW_WRITE_NOSYNC) && fsync(fd) < 0)
        goto fail;
    if (close(fd) < 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0)
        goto fail;
    /* make the rename durable (best effort: the data itself is on disk) */
    if (!(flags & SW_WRITE_NOSYNC))
        (void)sw_fsync_dir_of(path);
    return 0;
fail:
    r = -errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return r;
}

int sw_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(buf, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    return 0;
}

bool sw_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

int sw_path_join(char *buf, size_t size, const char *dir, const char *name)
{
    int r = snprintf(buf, size, "%s/%s", dir, name);
    if (r < 0 || (size_t)r >= size)
        return -ENAMETOOLONG;
    return 0;
}
