/* An autolocked manager before `swarmd unlock`: it serves only its control socket, where
 * Control.Unlock takes the unlock key and every other call is told the manager is locked;
 * and the `swarmd unlock` command that hands the key over. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/locked.h"
#include "common/cleanup.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/swtime.h"
#include "net/rpc.h"
#include "pki/pki.h"
#include "proto/frame.h"

#define LOCKED_SOCKET_FILE "swarmd.sock" /* the manager's control socket (manager/internal.h) */
#define UNLOCK_TIMEOUT_MS 10000
/* Wrong keys: the first few are answered at once, then each waits twice as long as the one
 * before (1 s, 2 s, ... 64 s at most) since the last wrong one. */
#define UNLOCK_FREE_TRIES 3
#define UNLOCK_DELAY_MAX_S 64

struct swd_locked {
    net_server *server;
    uv_timer_t timer; /* after the right key: the answer leaves, then the server closes */
    char *state_dir;
    unsigned wrong;       /* wrong keys so far */
    uint64_t next_try_ns; /* monotonic: no key is checked before then */
    bool unlocked, closing, start_after;
    swd_unlocked_fn cb;
    void *userdata;
};

static void h_locked(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    net_call_reply(call, -ENOKEY,
                   "locked: this manager is autolocked; run 'swarmd unlock' with the swarm's "
                   "unlock key",
                   NULL, 0);
}

static void close_server(swd_locked *l, bool start_after);
static void timer_closed(uv_handle_t *h);

static void unlock_timer_cb(uv_timer_t *t)
{
    close_server(t->data, true);
}

static void h_unlock(net_call *call, const uint8_t *payload, size_t len, void *userdata)
{
    swd_locked *l = userdata;
    char err[256];
    if (l->unlocked)
        return net_call_reply(call, -EALREADY, "this manager is unlocked already", NULL, 0);
    Swarm__UnlockRequest *req = swarm__unlock_request__unpack(NULL, len, payload);
    if (!req)
        return net_call_reply(call, -EINVAL, "malformed UnlockRequest", NULL, 0);
    struct pki_unlock_key k;
    int r = pki_unlock_key_parse(req->unlock_key, &k, err, sizeof(err));
    if (req->unlock_key)
        sw_erase(req->unlock_key, strlen(req->unlock_key));
    swarm__unlock_request__free_unpacked(req, NULL);
    if (r < 0)
        return net_call_reply(call, -EINVAL, err, NULL, 0);
    uint64_t now = sw_now_monotonic_ns();
    if (now < l->next_try_ns) {
        pki_unlock_key_clear(&k);
        snprintf(
            err, sizeof(err), "too many wrong unlock keys (%u): the next one is checked in %llu s",
            l->wrong,
            (unsigned long long)((l->next_try_ns - now + SW_NSEC_PER_SEC - 1) / SW_NSEC_PER_SEC));
        return net_call_reply(call, -EAGAIN, err, NULL, 0);
    }
    r = pki_node_state_check_unlock_key(l->state_dir, &k, err, sizeof(err));
    if (r == -EKEYREJECTED) {
        pki_unlock_key_clear(&k);
        l->wrong++;
        if (l->wrong >= UNLOCK_FREE_TRIES) {
            unsigned shift = SW_MIN(l->wrong - UNLOCK_FREE_TRIES, 6u);
            l->next_try_ns = now + SW_MIN(1ull << shift, (unsigned long long)UNLOCK_DELAY_MAX_S) *
                                       SW_NSEC_PER_SEC;
        }
        log_warn("refused a wrong unlock key (%u wrong so far)", l->wrong);
        char msg[200], wait[64] = "";
        if (l->next_try_ns > now)
            snprintf(wait, sizeof(wait), " (the next key is checked in %llu s)",
                     (unsigned long long)((l->next_try_ns - now) / SW_NSEC_PER_SEC));
        snprintf(msg, sizeof(msg),
                 "wrong unlock key (%u wrong so far%s); a key rotated while this manager was "
                 "down: try the previous one",
                 l->wrong, wait);
        return net_call_reply(call, -EPERM, msg, NULL, 0);
    }
    if (r < 0) {
        pki_unlock_key_clear(&k);
        return net_call_reply(call, r, err, NULL, 0);
    }
    pki_node_state_set_unlock_key(&k);
    pki_unlock_key_clear(&k);
    l->unlocked = true;
    log_info("unlocked: starting the manager");
    net_call_reply(call, 0, "", NULL, 0);
    /* the manager takes the socket over once this server is gone */
    uv_timer_start(&l->timer, unlock_timer_cb, 50, 0);
}

int swd_locked_start(uv_loop_t *loop, const char *state_dir, swd_unlocked_fn cb, void *userdata,
                     swd_locked **ret, char *errmsg, size_t size)
{
    char path[4096];
    struct net_server_config sc = {.max_frame = 64 * 1024};
    swd_locked *l = calloc(1, sizeof(*l));
    if (!l || !(l->state_dir = strdup(state_dir))) {
        free(l);
        snprintf(errmsg, size, "out of memory");
        return -ENOMEM;
    }
    l->cb = cb;
    l->userdata = userdata;
    uv_timer_init(loop, &l->timer);
    l->timer.data = l;
    int r = sw_path_join(path, sizeof(path), state_dir, LOCKED_SOCKET_FILE);
    if (r >= 0)
        r = net_server_create(loop, &sc, &l->server);
    if (r < 0) {
        snprintf(errmsg, size, "cannot serve the control socket: %s", strerror(-r));
        l->closing = true;
        uv_close((uv_handle_t *)&l->timer, timer_closed);
        return r;
    }
    net_server_set_fallback(l->server, NET_AUTH_LOCAL, h_locked, l);
    if ((r = net_server_register(l->server, "Control.Unlock", NET_AUTH_LOCAL, h_unlock, l)) < 0 ||
        (r = net_server_listen_unix(l->server, path, 0600, errmsg, size)) < 0) {
        if (r != -EINVAL || !errmsg[0])
            snprintf(errmsg, size, "cannot serve the control socket %s: %s", path, strerror(-r));
        swd_locked_close(l);
        return r;
    }
    *ret = l;
    return 0;
}

static void timer_closed(uv_handle_t *h)
{
    swd_locked *l = h->data;
    free(l->state_dir);
    free(l);
}

static void server_closed(void *userdata)
{
    swd_locked *l = userdata;
    if (l->start_after)
        l->cb(l->userdata);
    uv_close((uv_handle_t *)&l->timer, timer_closed);
}

static void close_server(swd_locked *l, bool start_after)
{
    if (l->closing)
        return;
    l->closing = true;
    l->start_after = start_after;
    uv_timer_stop(&l->timer);
    net_server_close(l->server, server_closed, l);
}

void swd_locked_close(swd_locked *l)
{
    if (l)
        close_server(l, false);
}

/* ------------------------------------------------------------------ swarmd unlock */

static const char usage_unlock[] =
    "Usage: swarmd unlock [--state-dir DIR]\n"
    "\n"
    "Unlock an autolocked manager running on this machine: hand it the swarm's unlock key\n"
    "(SWMKEY-1-...), read from the SWARM_UNLOCK_KEY environment variable if set, else from\n"
    "standard input (prompted without echo on a terminal). The manager then starts.\n"
    "\n"
    "Options:\n"
    "  --state-dir DIR   The manager's state directory (default /var/lib/swarmd)\n"
    "  -h, --help        Show this help\n";

/* One line from stdin into buf (no echo on a terminal). */
static int read_key_line(char *buf, size_t size)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fputs("Enter unlock key: ", stderr);
        fflush(stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(buf, (int)size, stdin);
    if (tty) {
        (void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got)
        return -ENODATA;
    return 0;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    size_t lead = strspn(s, " \t");
    if (lead)
        memmove(s, s + lead, n - lead + 1);
}

int swd_read_unlock_key(struct pki_unlock_key *ret, char *errmsg, size_t size)
{
    char key[512] = "";
    const char *env = getenv("SWARM_UNLOCK_KEY");
    if (env && env[0])
        snprintf(key, sizeof(key), "%s", env);
    else if (read_key_line(key, sizeof(key)) < 0) {
        snprintf(errmsg, size, "no unlock key on standard input (or in SWARM_UNLOCK_KEY)");
        return -ENODATA;
    }
    trim(key);
    int r = pki_unlock_key_parse(key, ret, errmsg, size);
    sw_erase(key, sizeof(key));
    return r;
}

int swd_unlock_main(int argc, char **argv)
{
    const char *dir = "/var/lib/swarmd";
    bool word = false;
    for (int i = 1; i < argc; i++) {
        if (!word && strcmp(argv[i], "unlock") == 0) {
            word = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage_unlock, stdout);
            return 0;
        } else if (strcmp(argv[i], "--state-dir") == 0 && i + 1 < argc && argv[i + 1][0]) {
            dir = argv[++i];
        } else if (strncmp(argv[i], "--state-dir=", 12) == 0 && argv[i][12]) {
            dir = argv[i] + 12;
        } else if (strncmp(argv[i], "--log-level", 11) == 0) {
            i += argv[i][11] == '\0'; /* accepted, nothing to log */
        } else {
            fprintf(stderr,
                    "swarmd unlock: unexpected argument '%s' (see 'swarmd unlock --help')\n",
                    argv[i]);
            return 2;
        }
    }
    char key[512] = "";
    const char *env = getenv("SWARM_UNLOCK_KEY");
    if (env && env[0])
        snprintf(key, sizeof(key), "%s", env);
    else if (read_key_line(key, sizeof(key)) < 0) {
        fprintf(stderr, "swarmd unlock: no unlock key on standard input\n");
        return 1;
    }
    trim(key);
    char err[256], path[4096];
    struct pki_unlock_key k;
    if (pki_unlock_key_parse(key, &k, err, sizeof(err)) < 0) {
        sw_erase(key, sizeof(key));
        fprintf(stderr, "swarmd unlock: %s\n", err);
        return 1;
    }
    pki_unlock_key_clear(&k);
    net_sync *c = NULL;
    int r = sw_path_join(path, sizeof(path), dir, LOCKED_SOCKET_FILE);
    if (r < 0 || (r = net_sync_connect_unix(path, UNLOCK_TIMEOUT_MS, &c, err, sizeof(err))) < 0) {
        sw_erase(key, sizeof(key));
        fprintf(stderr, "swarmd unlock: cannot reach the manager at %s: %s\n", path,
                r == -ENAMETOOLONG ? "path too long" : err);
        return 1;
    }
    Swarm__UnlockRequest req = SWARM__UNLOCK_REQUEST__INIT;
    req.unlock_key = key;
    _cleanup_free_ uint8_t *buf = NULL;
    size_t len = 0;
    r = proto_pack(&req.base, &buf, &len);
    sw_erase(key, sizeof(key));
    int status = 0;
    uint8_t *payload = NULL;
    size_t plen = 0;
    if (r >= 0)
        r = net_sync_call(c, "Control.Unlock", buf, len, &status, err, sizeof(err), &payload,
                          &plen);
    if (buf)
        sw_erase(buf, len);
    free(payload);
    net_sync_close(c);
    if (r < 0) {
        fprintf(stderr, "swarmd unlock: %s\n", err[0] ? err : strerror(-r));
        return 1;
    }
    if (status < 0) {
        fprintf(stderr, "swarmd unlock: %s\n", err);
        return 1;
    }
    printf("Unlocked: the manager is starting.\n");
    return 0;
}
