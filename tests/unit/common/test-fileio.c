/* sw_read_file: contents, limits, and no copy of the file's bytes left behind in freed
 * memory (it reads key files). realloc and free are wrapped (-Wl,--wrap) to look. */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/cleanup.h"
#include "common/fileio.h"

void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);

/* A recognisable "key": 48 bytes that cannot turn up by chance. */
static const char secret[] = "SECRET-KEY-BYTES-0123456789abcdefghijklmnopqrst";
static bool watching;
static unsigned leaked; /* blocks released while still holding the secret */

static bool holds_secret(void *p)
{
    if (!p)
        return false;
    size_t n = malloc_usable_size(p);
    return memmem(p, n, secret, sizeof(secret) - 1) != NULL;
}

void *__wrap_realloc(void *p, size_t n)
{
    /* realloc may move the bytes and release the old block as it is */
    if (watching && holds_secret(p))
        leaked++;
    return __real_realloc(p, n);
}

void __wrap_free(void *p)
{
    if (watching && holds_secret(p))
        leaked++;
    __real_free(p);
}

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test-fileio-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    const char *names[] = {"key", "empty", "big"};
    for (size_t i = 0; i < SW_ARRAY_SIZE(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unlink(path);
    }
    return rmdir(dir);
}

static void write_file(const char *name, const void *data, size_t len, char *path, size_t size)
{
    assert_int_equal(sw_path_join(path, size, dir, name), 0);
    assert_int_equal(sw_write_file_atomic(path, data, len, 0600), 0);
}

/* A file of exactly the size fstat reported (every key file) is read without moving the
 * buffer or freeing a copy of its bytes. */
static void test_key_file_leaves_no_copy(void **state)
{
    (void)state;
    char path[128];
    write_file("key", secret, sizeof(secret) - 1, path, sizeof(path));
    char *data = NULL;
    size_t len = 0;
    leaked = 0;
    watching = true;
    int r = sw_read_file(path, 4096, &data, &len);
    watching = false;
    assert_int_equal(r, 0);
    assert_int_equal(len, sizeof(secret) - 1);
    assert_string_equal(data, secret);
    assert_int_equal(leaked, 0);
    sw_erase(data, len);
    free(data);
}

static void test_contents_and_limits(void **state)
{
    (void)state;
    char path[128];
    char *data = NULL;
    size_t len = 99;

    write_file("empty", "", 0, path, sizeof(path));
    assert_int_equal(sw_read_file(path, 16, &data, &len), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);

    char big[5000];
    memset(big, 'x', sizeof(big));
    write_file("big", big, sizeof(big), path, sizeof(path));
    data = NULL;
    assert_int_equal(sw_read_file(path, sizeof(big) - 1, &data, &len), -EFBIG);
    assert_null(data);
    assert_int_equal(sw_read_file(path, sizeof(big), &data, &len), 0);
    assert_int_equal(len, sizeof(big));
    assert_memory_equal(data, big, sizeof(big));
    assert_int_equal(data[len], '\0');
    free(data);

    data = NULL;
    assert_int_equal(sw_read_file(dir, 16, &data, &len), -EINVAL); /* not a regular file */
    assert_int_equal(sw_read_file("/nonexistent/x", 16, &data, &len), -ENOENT);
    assert_null(data);
}

/* A regular file whose size fstat does not know (procfs reports 0) still reads whole:
 * the buffer grows as needed. */
static void test_growing_read(void **state)
{
    (void)state;
    char *data = NULL;
    size_t len = 0;
    assert_int_equal(sw_read_file("/proc/self/status", 1 << 20, &data, &len), 0);
    assert_true(len > 100);
    assert_non_null(strstr(data, "Name:"));
    assert_int_equal(strlen(data), len);
    free(data);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_file_leaves_no_copy),
        cmocka_unit_test(test_contents_and_limits),
        cmocka_unit_test(test_growing_read),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
