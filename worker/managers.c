/* The managers file of a worker's state dir, and the timing shared by join and the agent
 * (jitter, when to renew a certificate). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/ids.h"
#include "worker/internal.h"

uint64_t wrk__jitter_ms(uint64_t ms, unsigned pct)
{
    uint32_t rnd = 0;
    if (sw_random_bytes(&rnd, sizeof(rnd)) < 0 || pct == 0 || ms == 0)
        return ms ? ms : 1;
    uint64_t span = ms * pct / 100; /* ± span */
    uint64_t v = ms - span + (span ? (uint64_t)rnd % (2 * span + 1) : 0);
    return v ? v : 1;
}

uint64_t wrk__renew_at_ns(uint64_t not_before, uint64_t not_after, uint32_t rnd)
{
    if (not_after <= not_before)
        return not_before;
    uint64_t span = not_after - not_before;
    unsigned __int128 extra = (unsigned __int128)(span / 10 * 3) * rnd / UINT32_MAX;
    return not_before + span / 2 + (uint64_t)extra;
}

int wrk__leader_hint(const char *msg, struct sw_addr *ret)
{
    static const char mark[] = "the leader is at ";
    const char *hint = msg ? strstr(msg, mark) : NULL;
    if (!hint || sw_addr_parse(hint + sizeof(mark) - 1, -1, 0, ret) < 0)
        return -ENOENT;
    return 0;
}

int wrk__managers_save(const char *dir, const struct sw_addr *list, size_t n, char *errmsg,
                       size_t size)
{
    char path[4096], buf[WRK_MANAGERS_MAX * 64];
    size_t off = 0;
    int r = sw_path_join(path, sizeof(path), dir, WRK_MANAGERS_FILE);
    if (r < 0) {
        snprintf(errmsg, size, "state directory path too long");
        return r;
    }
    for (size_t i = 0; i < n && i < WRK_MANAGERS_MAX; i++) {
        char a[64];
        sw_addr_format(&list[i], a, sizeof(a));
        int w = snprintf(buf + off, sizeof(buf) - off, "%s\n", a);
        if (w < 0 || (size_t)w >= sizeof(buf) - off)
            break;
        off += (size_t)w;
    }
    r = sw_write_file_atomic(path, buf, off, 0600);
    if (r < 0)
        snprintf(errmsg, size, "cannot write %s: %s", path, strerror(-r));
    return r;
}

int wrk__managers_load(const char *dir, struct sw_addr *list, size_t max, size_t *ret_n,
                       char *errmsg, size_t size)
{
    char path[4096];
    _cleanup_free_ char *text = NULL;
    size_t n = 0;
    int r = sw_path_join(path, sizeof(path), dir, WRK_MANAGERS_FILE);
    if (r >= 0)
        r = sw_read_file(path, 64 * 1024, &text, NULL);
    if (r < 0) {
        snprintf(errmsg, size, "cannot read the managers of this node from %s: %s", path,
                 strerror(-r));
        return r;
    }
    for (char *line = text, *next; line && *line && n < max; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '\0' || line[0] == '#')
            continue;
        if (sw_addr_parse(line, 2377, 0, &list[n]) >= 0)
            n++;
    }
    if (n == 0) {
        snprintf(errmsg, size, "%s names no manager; re-join the node", path);
        return -ENOENT;
    }
    *ret_n = n;
    return 0;
}
