/* swarmd: the node daemon. Argument parsing and wiring only. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "common/addr.h"
#include "common/cleanup.h"
#include "common/log.h"
#include "common/swtime.h"
#include "config.h"
#include "cmd/locked.h"
#include "cmd/run_task.h"
#include "common/fileio.h"
#include "manager/manager.h"
#include "worker/agent.h"
#include "pki/pki.h"

#define DEFAULT_STATE_DIR "/var/lib/swarmd"
#define DEFAULT_LISTEN "0.0.0.0:2377"
#define DEFAULT_PORT 2377

static const char usage_main[] =
    "Usage: swarmd [OPTIONS] [COMMAND]\n"
    "\n"
    "Run a swarmd node in the foreground. Without a command, resume the node kept in the\n"
    "state directory (its cluster, identity, tokens and certificates).\n"
    "\n"
    "Commands:\n"
    "  init        Create a new swarm with this node as its first manager\n"
    "  join        Join a swarm as a worker: swarmd join [OPTIONS] TOKEN MANAGER[:PORT]\n"
    "  run-task    Run one isolated task in the foreground (see 'swarmd run-task --help')\n"
    "  unlock      Unlock an autolocked manager (see 'swarmd unlock --help')\n"
    "\n"
    "Options:\n"
    "  --state-dir DIR            Node state (default " DEFAULT_STATE_DIR
    ")\n"
    "  --listen-addr IP:PORT      Address for cluster traffic (default " DEFAULT_LISTEN
    ")\n"
    "  --advertise-addr IP[:PORT] Address other nodes use to reach this one\n"
    "                             (default: the listen address, or the machine's only\n"
    "                             non-loopback IPv4 address)\n"
    "  --hostname NAME            Node hostname (default: the machine's)\n"
    "  --log-level LEVEL          debug, info, warn or error (default info)\n"
    "  -h, --help                 Show this help\n"
    "  --version                  Show the version\n"
    "\n"
    "Run 'swarmd COMMAND --help' for more on a command.\n";

static const char usage_init[] =
    "Usage: swarmd init [OPTIONS]\n"
    "\n"
    "Create a new swarm: a root CA, join tokens and the cluster store, with this node as\n"
    "its manager and raft leader. swarmd then keeps running in the foreground.\n"
    "Refuses a state directory that already holds a node.\n"
    "\n"
    "Options:\n"
    "  --external-ca protocol=cfssl,url=URL\n"
    "                             Node certificates come from this cfssl signer (its\n"
    "                             /api/v1/cfssl/sign; https verified against the root given\n"
    "                             with --external-ca-cert, this manager's certificate\n"
    "                             presented); the profile must allow server and client auth\n"
    "  --external-ca-cert FILE    The external CA's root certificate (PEM)\n"
    "  --autolock                 Lock the managers' keys under an unlock key (printed once);\n"
    "                             a restarted manager waits for 'swarmd unlock'\n"
    "  --cert-expiry DURATION     Validity of node certificates (default 2160h0m0s, at least 1h)\n"
    "  --dispatcher-heartbeat DURATION\n"
    "                             Heartbeat period of nodes (default 5s); a node is Down\n"
    "                             after three missed periods\n"
    "  --state-dir DIR            Node state (default " DEFAULT_STATE_DIR
    ")\n"
    "  --listen-addr IP:PORT      Address for cluster traffic (default " DEFAULT_LISTEN
    ")\n"
    "  --advertise-addr IP[:PORT] Address other nodes use to reach this one\n"
    "  --hostname NAME            Node hostname (default: the machine's)\n"
    "  --log-level LEVEL          debug, info, warn or error (default info)\n"
    "  --force-new-cluster        On a manager's existing state dir, after quorum is lost:\n"
    "                             restart it as a one-manager swarm with all its data\n"
    "                             (other managers join again, with fresh state dirs)\n"
    "  -h, --help                 Show this help\n";

static const char usage_join[] =
    "Usage: swarmd join [OPTIONS] TOKEN MANAGER[:PORT]\n"
    "\n"
    "Join the swarm of MANAGER (port 2377 by default) as a worker: check the manager's\n"
    "root CA against the token's digest, obtain this node's certificate with the token,\n"
    "then keep a session with the manager. swarmd keeps running in the foreground;\n"
    "'swarmd --state-dir DIR' resumes the node later. Refuses a state directory that\n"
    "already holds a node (but see --rejoin).\n"
    "\n"
    "Options:\n"
    "  --state-dir DIR            Node state (default " DEFAULT_STATE_DIR
    ")\n"
    "  --listen-addr IP:PORT      Address for cluster traffic (default " DEFAULT_LISTEN
    ")\n"
    "  --advertise-addr IP[:PORT] Address other nodes use to reach this one\n"
    "  --hostname NAME            Node hostname (default: the machine's)\n"
    "  --log-level LEVEL          debug, info, warn or error (default info)\n"
    "  --timeout DURATION         Give up joining after this long, retries included\n"
    "                             (default 30s)\n"
    "  --rejoin                   Join again as the worker DIR holds, keeping its node ID,\n"
    "                             key, addresses and hostname (a root CA rotation it\n"
    "                             missed, an expired certificate); a manager must allow it\n"
    "                             first: 'swarmctl node update --allow-rejoin NODE'; a\n"
    "                             locked state dir (autolock) takes the unlock key from\n"
    "                             SWARM_UNLOCK_KEY or standard input\n"
    "  -h, --help                 Show this help\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("swarmd: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see 'swarmd --help')\n", stderr);
    return 2;
}

struct daemon {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint;
    mgr *m;
    wrk_agent *a;
    swd_locked *locked; /* autolocked manager waiting for its unlock key */
    bool init;
    int exit_code;
    bool stopping;
    const char *state_dir;
    struct mgr_config cfg; /* for a manager started later (promotion) */
    /* a promotion or demotion in progress */
    uv_timer_t role_timer;
    bool role_timer_init;
    bool changing;
    enum pki_role new_role;
    struct sw_addr leader;
};

static void stopped(void *userdata)
{
    struct daemon *d = userdata;
    d->m = NULL;
    d->a = NULL;
    if (d->role_timer_init)
        uv_close((uv_handle_t *)&d->role_timer, NULL);
    uv_close((uv_handle_t *)&d->sigterm, NULL);
    uv_close((uv_handle_t *)&d->sigint, NULL);
}

/* The agent first (its tasks are killed and cleaned up), then the manager. */
static void stop_step(void *userdata)
{
    struct daemon *d = userdata;
    swd_locked_close(d->locked);
    d->locked = NULL;
    if (d->a) {
        wrk_agent *a = d->a;
        d->a = NULL;
        wrk_agent_stop(a, stop_step, d);
    } else if (d->m) {
        mgr *m = d->m;
        d->m = NULL;
        mgr_stop(m, stopped, d);
    } else {
        stopped(d);
    }
}

static void stop(struct daemon *d, int code)
{
    if (d->stopping)
        return;
    d->stopping = true;
    d->exit_code = code;
    stop_step(d);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct daemon *d = h->data;
    log_info("received %s, shutting down", strsignal(signum));
    stop(d, 0);
}

static void on_fatal(mgr *m, int status, const char *errmsg, void *userdata)
{
    log_error("%s", errmsg);
    stop(userdata, 1);
}

static void on_manager_agent_ready(wrk_agent *a, int status, const char *errmsg, void *userdata)
{
    if (status < 0) {
        log_warn("this manager will not run tasks: its agent has no session: %s", errmsg);
        return;
    }
    if (wrk_agent_runtime_error(a))
        log_warn("this manager cannot run tasks: %s", wrk_agent_runtime_error(a));
    else
        log_info("this manager also runs tasks (drain it to stop that)");
}

static void on_worker_renewed(wrk_agent *a, const char *cert_pem, const pki_key *key,
                              void *userdata)
{
    log_info("renewed this node's certificate");
}

/* The agent renewed this manager's certificate: the listener presents it from now on. */
static void on_manager_renewed(wrk_agent *a, const char *cert_pem, const pki_key *key,
                               void *userdata)
{
    struct daemon *d = userdata;
    char err[256];
    if (!d->m)
        return;
    if (mgr_set_certificate(d->m, cert_pem, key, err, sizeof(err)) < 0)
        log_warn("the renewed certificate is on disk but not in use until a restart: %s", err);
    else
        log_info("renewed this node's certificate");
}

static void on_role_changed(wrk_agent *a, enum pki_role role, void *userdata);
static void start_worker_agent(struct daemon *d);
static void start_manager(struct daemon *d, bool init);

/* A manager node runs tasks too, through an agent in session with itself. */
static void start_manager_agent(struct daemon *d, mgr *m)
{
    char addr[80], errmsg[256];
    struct wrk_config wc = {.state_dir = d->state_dir,
                            .allow_manager = true,
                            .manager_set = true,
                            .keep_trying = true,
                            .renewed = on_manager_renewed,
                            .role_changed = on_role_changed,
                            .renewed_userdata = d};
    /* its own listener, by the bound address (a wildcard by loopback): the advertised one
     * may not be reachable from this host (NAT) */
    mgr_listen_addr(m, addr, sizeof(addr));
    if (sw_addr_parse(addr, -1, 0, &wc.manager) < 0)
        return;
    if (strcmp(wc.manager.host, "0.0.0.0") == 0)
        snprintf(wc.manager.host, sizeof(wc.manager.host), "127.0.0.1");
    else if (strcmp(wc.manager.host, "::") == 0)
        snprintf(wc.manager.host, sizeof(wc.manager.host), "::1");
    if (wrk_agent_start(&d->loop, &wc, on_manager_agent_ready, d, &d->a, errmsg, sizeof(errmsg)) <
        0) {
        d->a = NULL;
        log_warn("this manager will not run tasks: %s", errmsg);
    }
}

static void on_ready(mgr *m, int status, const char *errmsg, void *userdata)
{
    struct daemon *d = userdata;
    char addr[80], listen[80], token[PKI_TOKEN_LEN + 1];

    if (status < 0) {
        fprintf(stderr, "swarmd: %s\n", errmsg);
        stop(d, 1);
        return;
    }
    mgr_advertise_addr(m, addr, sizeof(addr));
    mgr_listen_addr(m, listen, sizeof(listen));
    if (d->init) {
        if (mgr_join_token(m, 0, token, sizeof(token)) < 0)
            token[0] = '\0';
        printf(
            "Swarm initialized: current node (%s) is now a manager.\n\n"
            "To add a worker to this swarm, run the following command:\n\n"
            "    swarmd join %s %s\n\n"
            "To add a manager to this swarm, run 'swarmctl join-token manager' and follow the "
            "instructions.\n",
            mgr_node_id(m), token, addr);
        explicit_bzero(token, sizeof(token));
        char key[PKI_UNLOCK_KEY_LEN + 1];
        if (mgr_init_unlock_key(m, key, sizeof(key)) >= 0)
            printf(
                "\nThis swarm is autolocked. To unlock a swarm manager after it restarts, run\n"
                "'swarmd unlock' and provide this key:\n\n    %s\n\n"
                "Keep it in a password manager: without it a restarted manager cannot start.\n",
                key);
        explicit_bzero(key, sizeof(key));
        fflush(stdout);
    }
    log_info("node %s of cluster %s is serving: manager, raft %s, listening on %s (advertised %s)",
             mgr_node_id(m), mgr_cluster_id(m), mgr_is_leader(m) ? "leader" : "follower", listen,
             addr);
    if (!d->stopping)
        start_manager_agent(d, m);
}

/* ------------------------------------------------------------------ promotion, demotion */

/* Demoted: the manager is stopped; its state becomes a worker's, and a worker agent goes on
 * with the same node. */
static void demote_mgr_stopped(void *userdata)
{
    struct daemon *d = userdata;
    char err[512];
    if (d->stopping)
        return;
    if (wrk_become_worker(d->state_dir, &d->leader, err, sizeof(err)) < 0) {
        log_error("demoted, but the state dir cannot become a worker's: %s", err);
        return stop(d, 1);
    }
    log_info("this node was demoted: it runs as a worker now");
    d->changing = false;
    start_worker_agent(d);
}

static void role_agent_stopped(void *userdata)
{
    struct daemon *d = userdata;
    char err[512];
    if (d->stopping)
        return;
    if (d->new_role == PKI_ROLE_WORKER && d->m) {
        mgr *m = d->m;
        d->m = NULL;
        return mgr_stop(m, demote_mgr_stopped, d);
    }
    if (d->new_role == PKI_ROLE_MANAGER && !d->m) {
        log_info("this node was promoted: joining raft");
        if (wrk_become_manager(d->state_dir, 30000, err, sizeof(err)) < 0) {
            log_error("promoted, but cannot join raft: %s; going on as a worker", err);
            d->changing = false;
            return start_worker_agent(d);
        }
        d->changing = false;
        return start_manager(d, false);
    }
    d->changing = false;
}

static void role_timer_cb(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->stopping || !d->a)
        return;
    wrk_agent *a = d->a;
    d->a = NULL;
    wrk_agent_stop(a, role_agent_stopped, d);
}

/* The agent renewed into a certificate of another role: the node changes its daemon (out of
 * the agent's callback). */
static void on_role_changed(wrk_agent *a, enum pki_role role, void *userdata)
{
    struct daemon *d = userdata;
    char addr[80];
    if (d->changing || d->stopping)
        return;
    d->changing = true;
    d->new_role = role;
    memset(&d->leader, 0, sizeof(d->leader));
    if (d->m && mgr_leader_addr(d->m, addr, sizeof(addr)) >= 0)
        (void)sw_addr_parse(addr, -1, 0, &d->leader);
    if (!d->role_timer_init) {
        uv_timer_init(&d->loop, &d->role_timer);
        d->role_timer.data = d;
        d->role_timer_init = true;
    }
    uv_timer_start(&d->role_timer, role_timer_cb, 0, 0);
}

static void on_agent_ready(wrk_agent *a, int status, const char *errmsg, void *userdata)
{
    struct daemon *d = userdata;
    if (status < 0) {
        fprintf(stderr, "swarmd: %s\n", errmsg);
        stop(d, 1);
        return;
    }
    log_info("node %s is a worker of the swarm, in session with a manager", wrk_agent_node_id(a));
}

static void start_worker_agent(struct daemon *d)
{
    char errmsg[1024];
    struct wrk_config wc = {.state_dir = d->state_dir,
                            .hostname = d->cfg.hostname,
                            .renewed = on_worker_renewed,
                            .role_changed = on_role_changed,
                            .renewed_userdata = d};
    if (wrk_agent_start(&d->loop, &wc, on_agent_ready, d, &d->a, errmsg, sizeof(errmsg)) < 0) {
        fprintf(stderr, "swarmd: %s\n", errmsg);
        d->a = NULL;
        stop(d, 1);
    }
}

static void start_manager(struct daemon *d, bool init)
{
    char errmsg[512];
    if (mgr_start(&d->loop, &d->cfg, init, on_ready, d, &d->m, errmsg, sizeof(errmsg)) < 0) {
        fprintf(stderr, "swarmd%s: %s\n", init ? " init" : "", errmsg);
        d->m = NULL;
        stop(d, 1);
    } else {
        mgr_set_fatal_handler(d->m, on_fatal, d);
    }
}

static int state_role(const char *dir, enum pki_role *ret);

static void on_unlocked(void *userdata)
{
    struct daemon *d = userdata;
    enum pki_role role = PKI_ROLE_MANAGER;
    char err[512];
    d->locked = NULL; /* closed */
    if (d->stopping)
        return;
    if (state_role(d->state_dir, &role) >= 0 && role == PKI_ROLE_WORKER) {
        /* demoted just before a crash: a worker keeps no lock */
        if (pki_node_state_set_lock(d->state_dir, NULL, err, sizeof(err)) < 0)
            log_warn("%s", err);
        return start_worker_agent(d);
    }
    start_manager(d, false);
}

/* The role kept in the state dir, or -ENOENT when it holds no node. */
static int state_role(const char *dir, enum pki_role *ret)
{
    char path[4096], err[256];
    struct pki_node_state st;
    if (sw_path_join(path, sizeof(path), dir, PKI_NODE_STATE_FILE) < 0 || !sw_file_exists(path))
        return -ENOENT;
    int r = pki_node_state_load(dir, &st, err, sizeof(err));
    if (r >= 0)
        *ret = st.role;
    pki_node_state_finish(&st);
    return r < 0 ? -ENOENT : 0;
}

enum {
    OPT_STATE_DIR = 0x100,
    OPT_LISTEN,
    OPT_ADVERTISE,
    OPT_HOSTNAME,
    OPT_LOG_LEVEL,
    OPT_CERT_EXPIRY,
    OPT_HEARTBEAT,
    OPT_TIMEOUT,
    OPT_FORCE_NEW,
    OPT_AUTOLOCK,
    OPT_EXTERNAL_CA,
    OPT_EXTERNAL_CA_CERT,
    OPT_REJOIN,
    OPT_VERSION,
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, OPT_STATE_DIR},
        {"listen-addr", required_argument, NULL, OPT_LISTEN},
        {"advertise-addr", required_argument, NULL, OPT_ADVERTISE},
        {"hostname", required_argument, NULL, OPT_HOSTNAME},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"cert-expiry", required_argument, NULL, OPT_CERT_EXPIRY},
        {"dispatcher-heartbeat", required_argument, NULL, OPT_HEARTBEAT},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"force-new-cluster", no_argument, NULL, OPT_FORCE_NEW},
        {"autolock", no_argument, NULL, OPT_AUTOLOCK},
        {"external-ca", required_argument, NULL, OPT_EXTERNAL_CA},
        {"external-ca-cert", required_argument, NULL, OPT_EXTERNAL_CA_CERT},
        {"rejoin", no_argument, NULL, OPT_REJOIN},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {0},
    };
    struct mgr_config cfg = {.state_dir = DEFAULT_STATE_DIR};
    const char *cert_expiry = NULL, *heartbeat = NULL, *timeout = NULL;
    const char *external_ca = NULL, *external_ca_cert = NULL;
    _cleanup_free_ char *external_url = NULL, *external_root = NULL;
    bool help = false, rejoin = false;
    int c;

    sw_log_set_tag("swarmd");
    /* run-task has flags of its own: hand it everything after the command word */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        if (a[0] == '-') {
            for (const struct option *o = opts; o->name; o++)
                if (o->has_arg == required_argument && a[1] == '-' && strcmp(a + 2, o->name) == 0)
                    i++; /* its value */
            continue;
        }
        if (strcmp(a, "run-task") == 0)
            return swarmd_run_task(argc - i, argv + i);
        if (strcmp(a, "unlock") == 0)
            return swd_unlock_main(argc, argv); /* options may come before the word */
        break;
    }
    sw_addr_parse(DEFAULT_LISTEN, DEFAULT_PORT, 0, &cfg.listen_addr);
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
            case OPT_STATE_DIR:
                if (optarg[0] == '\0')
                    return usage_error("--state-dir needs a directory");
                cfg.state_dir = optarg;
                break;
            case OPT_LISTEN:
                if (sw_addr_parse(optarg, DEFAULT_PORT, 1, &cfg.listen_addr) < 0)
                    return usage_error("invalid --listen-addr '%s': expected IP:PORT", optarg);
                cfg.listen_addr_set = true;
                break;
            case OPT_ADVERTISE:
                /* port 0 here means: the listen port */
                if (sw_addr_parse(optarg, 0, 1, &cfg.advertise_addr) < 0)
                    return usage_error("invalid --advertise-addr '%s': expected IP[:PORT]", optarg);
                cfg.advertise_addr_set = true;
                break;
            case OPT_HOSTNAME:
                if (!sw_hostname_valid(optarg))
                    return usage_error(
                        "invalid --hostname '%s': letters, digits, '-', '.', '_' only", optarg);
                cfg.hostname = optarg;
                break;
            case OPT_LOG_LEVEL: {
                enum sw_log_level l;
                if (sw_log_level_parse(optarg, &l) < 0)
                    return usage_error("invalid --log-level '%s': debug, info, warn or error",
                                       optarg);
                sw_log_set_level(l);
                break;
            }
            case OPT_CERT_EXPIRY:
                cert_expiry = optarg;
                break;
            case OPT_HEARTBEAT:
                heartbeat = optarg;
                break;
            case OPT_TIMEOUT:
                timeout = optarg;
                break;
            case OPT_FORCE_NEW:
                cfg.force_new_cluster = true;
                break;
            case OPT_AUTOLOCK:
                cfg.autolock = true;
                break;
            case OPT_EXTERNAL_CA:
                external_ca = optarg;
                break;
            case OPT_EXTERNAL_CA_CERT:
                external_ca_cert = optarg;
                break;
            case OPT_REJOIN:
                rejoin = true;
                break;
            case 'h':
                help = true;
                break;
            case OPT_VERSION:
                printf("swarmd %s\n", SWARMD_VERSION);
                return 0;
            case ':':
                return usage_error("option '%s' needs a value", argv[optind - 1]);
            default:
                return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    const char *command = optind < argc ? argv[optind] : NULL;
    bool init = false, join = false;
    const char *token = NULL;
    struct sw_addr manager = {0};
    if (command) {
        if (strcmp(command, "init") == 0)
            init = true;
        else if (strcmp(command, "join") == 0)
            join = true;
        else
            return usage_error("unknown command '%s'", command);
    }
    if (join && !help) {
        if (optind + 3 != argc)
            return usage_error(
                "join needs a token and a manager address: swarmd join TOKEN "
                "MANAGER[:PORT]");
        token = argv[optind + 1];
        if (sw_addr_parse(argv[optind + 2], DEFAULT_PORT, 0, &manager) < 0)
            return usage_error("invalid manager address '%s': expected IP[:PORT]",
                               argv[optind + 2]);
    } else if (command && optind + 1 < argc) {
        return usage_error("unexpected argument '%s'", argv[optind + 1]);
    }
    if (help) {
        fputs(init ? usage_init : join ? usage_join : usage_main, stdout);
        return 0;
    }
    if (heartbeat) {
        if (!init)
            return usage_error("--dispatcher-heartbeat applies to 'swarmd init' only");
        if (sw_duration_parse(heartbeat, &cfg.heartbeat_period_ns) < 0 ||
            cfg.heartbeat_period_ns < 100 * SW_NSEC_PER_MSEC ||
            cfg.heartbeat_period_ns > 24 * 3600 * SW_NSEC_PER_SEC)
            return usage_error("invalid --dispatcher-heartbeat '%s': a duration from 100ms to 24h",
                               heartbeat);
    }
    if (cfg.force_new_cluster && !init)
        return usage_error("--force-new-cluster applies to 'swarmd init' only");
    if (external_ca || external_ca_cert) {
        if (!init || cfg.force_new_cluster)
            return usage_error("--external-ca applies to 'swarmd init' of a new swarm only");
        if (!external_ca || !external_ca_cert)
            return usage_error("--external-ca and --external-ca-cert go together");
        const char *url = NULL;
        bool cfssl = false;
        _cleanup_free_ char *spec = strdup(external_ca);
        for (char *f = spec, *next; f && *f; f = next) {
            next = strchr(f, ',');
            if (next)
                *next++ = '\0';
            if (strcmp(f, "protocol=cfssl") == 0)
                cfssl = true;
            else if (strncmp(f, "url=", 4) == 0 && f[4])
                url = f + 4;
            else
                return usage_error("invalid --external-ca field '%s': protocol=cfssl,url=URL", f);
        }
        if (!cfssl || !url)
            return usage_error("--external-ca needs protocol=cfssl and url=URL");
        if (!(external_url = strdup(url)))
            return 1;
        if (sw_read_file(external_ca_cert, 1024 * 1024, &external_root, NULL) < 0) {
            fprintf(stderr, "swarmd init: cannot read %s\n", external_ca_cert);
            return 1;
        }
        cfg.external_ca_url = external_url;
        cfg.external_ca_cert_pem = external_root;
    }
    if (cfg.autolock && (!init || cfg.force_new_cluster))
        return usage_error(
            "--autolock applies to 'swarmd init' of a new swarm only (then: "
            "'swarmctl cluster update --autolock=true')");
    if (rejoin && !join)
        return usage_error("--rejoin applies to 'swarmd join' only");
    if (rejoin && (cfg.listen_addr_set || cfg.advertise_addr_set || cfg.hostname))
        return usage_error(
            "--rejoin keeps the node's addresses and hostname: no --listen-addr, "
            "--advertise-addr or --hostname");
    uint64_t join_timeout_ns = 0;
    if (timeout) {
        if (!join)
            return usage_error("--timeout applies to 'swarmd join' only");
        if (sw_duration_parse(timeout, &join_timeout_ns) < 0 ||
            join_timeout_ns < 100 * SW_NSEC_PER_MSEC || join_timeout_ns > 3600 * SW_NSEC_PER_SEC)
            return usage_error("invalid --timeout '%s': a duration from 100ms to 1h", timeout);
    }
    if (cert_expiry) {
        if (!init)
            return usage_error("--cert-expiry applies to 'swarmd init' only");
        if (sw_duration_parse(cert_expiry, &cfg.cert_expiry_ns) < 0)
            return usage_error("invalid --cert-expiry '%s': a duration such as 720h or 90m",
                               cert_expiry);
        if (cfg.cert_expiry_ns < PKI_CERT_VALIDITY_MIN_NS)
            return usage_error("--cert-expiry must be at least 1h");
    }
    if (cfg.advertise_addr_set && cfg.advertise_addr.port == 0)
        cfg.advertise_addr.port = cfg.listen_addr.port;

    signal(SIGPIPE, SIG_IGN);
    /* --force-new-cluster restarts an existing manager: not a new swarm */
    if (cfg.force_new_cluster)
        init = false;
    struct daemon d = {.init = init, .state_dir = cfg.state_dir};
    char errmsg[512] = "";
    uv_loop_init(&d.loop);
    uv_signal_init(&d.loop, &d.sigterm);
    uv_signal_init(&d.loop, &d.sigint);
    d.sigterm.data = d.sigint.data = &d;
    uv_signal_start(&d.sigterm, on_signal, SIGTERM);
    uv_signal_start(&d.sigint, on_signal, SIGINT);

    enum pki_role role = PKI_ROLE_MANAGER;
    if (join && rejoin && pki_node_state_locked(cfg.state_dir) >= 1) {
        /* a demoted manager of an autolocked swarm: its keys open with the unlock key */
        struct pki_unlock_key k;
        int r = swd_read_unlock_key(&k, errmsg, sizeof(errmsg));
        if (r >= 0)
            r = pki_node_state_check_unlock_key(cfg.state_dir, &k, errmsg, sizeof(errmsg));
        if (r >= 0)
            pki_node_state_set_unlock_key(&k);
        pki_unlock_key_clear(&k);
        if (r < 0) {
            fprintf(stderr, "swarmd join: --rejoin: %s is locked (autolock): %s\n", cfg.state_dir,
                    errmsg);
            d.exit_code = 1;
            stop(&d, 1);
            goto run;
        }
    }
    if (join) {
        char node_id[SW_ID_LEN + 1];
        struct wrk_join_request jr = {.state_dir = cfg.state_dir,
                                      .token = token,
                                      .manager = manager,
                                      .listen_addr = cfg.listen_addr,
                                      .advertise_addr = cfg.advertise_addr,
                                      .advertise_set = cfg.advertise_addr_set,
                                      .hostname = cfg.hostname,
                                      .timeout_ms = join_timeout_ns / SW_NSEC_PER_MSEC,
                                      .rejoin = rejoin};
        int r = wrk_join(&jr, node_id, &role, errmsg, sizeof(errmsg));
        if (r < 0) {
            fprintf(stderr, "swarmd join: %s\n", errmsg);
            d.exit_code = 1;
            stop(&d, 1);
            goto run;
        }
        if (rejoin)
            printf("This node joined its swarm again as node %s.\n", node_id);
        else
            printf("This node joined a swarm as a %s (node %s).\n",
                   role == PKI_ROLE_MANAGER ? "manager" : "worker", node_id);
        fflush(stdout);
        /* the addresses join chose (a free port for port 0) are in the state dir now */
        cfg.listen_addr_set = cfg.advertise_addr_set = false;
    } else if (!init && pki_node_state_locked(cfg.state_dir) >= 1) {
        /* only a manager's keys are ever locked */
        d.cfg = cfg;
        if (swd_locked_start(&d.loop, cfg.state_dir, on_unlocked, &d, &d.locked, errmsg,
                             sizeof(errmsg)) < 0) {
            fprintf(stderr, "swarmd: %s\n", errmsg);
            stop(&d, 1);
        } else {
            log_warn(
                "this manager is locked (autolock): run 'swarmd unlock' with the swarm's "
                "unlock key to start it");
        }
        goto run;
    } else if (!init && state_role(cfg.state_dir, &role) < 0) {
        role = PKI_ROLE_MANAGER; /* mgr_start explains what is missing */
    }

    d.cfg = cfg;
    if (role == PKI_ROLE_WORKER)
        start_worker_agent(&d);
    else
        start_manager(&d, init);
run:
    uv_run(&d.loop, UV_RUN_DEFAULT);
    uv_loop_close(&d.loop);
    return d.exit_code;
}
