/* worker/ executor: tasks assigned by a fake dispatcher run with runtime/ (needs root):
 * RUNNING with pids, removal and full sets stop them, exit codes, secrets in the task's
 * /run/secrets, missing secrets rejected, nothing left after stop or after a killed run. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/fileio.h"
#include "fake.h"
#include "runtime/runtime.h"
#include "wt.h"

#define WAIT_MS 10000
#define GRACE_MS 300

/* ------------------------------------------------------------------ assignments */

/* One task (or secret) assignment, built in place. */
struct tb {
    Swarm__Assignment a;
    Swarm__Task task;
    Swarm__TaskSpec spec;
    Swarm__Secret secret;
    Swarm__SecretRef ref;
    Swarm__SecretRef *refs[1];
    char *argv[8];
};

static Swarm__Assignment *tb_task(struct tb *b, const char *id, Swarm__TaskState desired,
                                  const char *const *argv)
{
    memset(b, 0, sizeof(*b));
    swarm__assignment__init(&b->a);
    swarm__task__init(&b->task);
    swarm__task_spec__init(&b->spec);
    size_t n = 0;
    for (; argv[n] && n < SW_ARRAY_SIZE(b->argv) - 1; n++)
        b->argv[n] = (char *)argv[n];
    b->spec.command = b->argv;
    b->spec.n_command = n;
    b->task.id = (char *)id;
    b->task.spec = &b->spec;
    b->task.desired_state = desired;
    b->task.state = SWARM__TASK_STATE__TASK_ASSIGNED;
    b->a.action = SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE;
    b->a.task = &b->task;
    return &b->a;
}

static Swarm__Assignment *tb_sleep(struct tb *b, const char *id)
{
    static const char *const argv[] = {"/bin/sleep", "30", NULL};
    return tb_task(b, id, SWARM__TASK_STATE__TASK_RUNNING, argv);
}

/* The task reads secret_id as target (mode, uid). */
static void tb_use_secret(struct tb *b, const char *secret_id, const char *name, const char *target,
                          uint32_t mode)
{
    swarm__secret_ref__init(&b->ref);
    b->ref.secret_id = (char *)secret_id;
    b->ref.secret_name = (char *)name;
    b->ref.target = (char *)target;
    b->ref.mode = mode;
    b->refs[0] = &b->ref;
    b->spec.secrets = b->refs;
    b->spec.n_secrets = 1;
}

static Swarm__Assignment *tb_secret(struct tb *b, const char *id, const char *name,
                                    const char *data)
{
    memset(b, 0, sizeof(*b));
    swarm__assignment__init(&b->a);
    swarm__secret__init(&b->secret);
    b->secret.id = (char *)id;
    b->secret.name = (char *)name;
    b->secret.data.data = (uint8_t *)data;
    b->secret.data.len = strlen(data);
    b->a.action = SWARM__ASSIGNMENT_ACTION__ASSIGN_UPDATE;
    b->a.secret = &b->secret;
    return &b->a;
}

static Swarm__Assignment *tb_remove(Swarm__Assignment *a)
{
    a->action = SWARM__ASSIGNMENT_ACTION__ASSIGN_REMOVE;
    return a;
}

/* ------------------------------------------------------------------ fixture */

struct wx {
    struct mt *t;
    struct cluster c;
    struct fake f;
    struct agent_run ar;
    bool running;
    char run_dir[256];
    char parent[64];
};

static struct wx *current; /* stopped by the teardown when a test fails half-way */

static int wx_setup(void **state)
{
    if (geteuid() != 0)
        return 0; /* each test skips */
    return mt_setup(state);
}

static int wx_teardown(void **state)
{
    if (current) {
        if (current->running)
            wt_agent_stop(&current->ar, current->t);
        wt_fake_finish(&current->f);
        wt_cluster_finish(&current->c);
        free(current);
        current = NULL;
    }
    return *state ? mt_teardown(state) : 0;
}

static struct wx *wx_new(void **state)
{
    if (geteuid() != 0) {
        print_message("skipped: the runtime needs root\n");
        skip();
    }
    struct wx *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    current = w;
    w->t = *state;
    struct sw_addr placeholder;
    sw_addr_parse("127.0.0.1:1", -1, 0, &placeholder);
    wt_cluster_init(&w->c, w->t, PKI_ROLE_WORKER, &placeholder);
    wt_fake_init(&w->f, w->t, &w->c, w->c.cluster_id);
    char path[256], line[100];
    wt_write_managers(&w->c, &w->f.bound, path, sizeof(path), line, sizeof(line));
    snprintf(w->run_dir, sizeof(w->run_dir), "%s/run", w->t->dir);
    snprintf(w->parent, sizeof(w->parent), "swarmd-test-%.12s", w->c.worker_id);
    return w;
}

static void wx_start(struct wx *w)
{
    struct wrk_config cfg = {.state_dir = w->c.dir,
                             .run_dir = w->run_dir,
                             .cgroup_parent = w->parent,
                             .stop_grace_ms = GRACE_MS};
    wt_agent_start_cfg(&w->ar, w->t, &cfg);
    w->running = true;
    assert_true(mt_run_until(w->t, &w->ar.ready, 5000));
    if (w->ar.status != 0)
        fail_msg("ready: %d %s", w->ar.status, w->ar.err);
    const char *why = wrk_agent_runtime_error(w->ar.a);
    if (why)
        fail_msg("runtime: %s", why);
}

static void wx_stop(struct wx *w)
{
    w->running = false;
    wt_agent_stop(&w->ar, w->t);
}

static const struct wt_status *must_reach(struct wx *w, const char *id, Swarm__TaskState s)
{
    const struct wt_status *st = wt_fake_wait(&w->f, id, s, WAIT_MS);
    if (!st) {
        const struct wt_status *last = wt_fake_last(&w->f, id);
        fail_msg("task %s: wanted state %d, last reported %d (%s)", id, (int)s,
                 last ? (int)last->state : -1, last ? last->err : "nothing reported");
    }
    return st;
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno != ESRCH);
}

/* The cgroup directories of a running task, from /proc/<pid>/cgroup (memory, cpu, pids,
 * or the unified one). */
static size_t task_cgroups(pid_t pid, char dirs[][512], size_t max)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
    _cleanup_free_ char *text = NULL;
    assert_int_equal(sw_read_file(path, 65536, &text, NULL), 0);
    size_t n = 0;
    for (char *line = text, *nl; line && *line && n < max; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2 || strcmp(c2 + 1, "/") == 0)
            continue;
        *c2 = '\0';
        const char *ctl = c1 + 1;
        if (strstr(ctl, "memory"))
            snprintf(dirs[n++], 512, "/sys/fs/cgroup/memory%s", c2 + 1);
        else if (strcmp(ctl, "pids") == 0)
            snprintf(dirs[n++], 512, "/sys/fs/cgroup/pids%s", c2 + 1);
        else if (ctl[0] == '\0')
            snprintf(dirs[n++], 512, "/sys/fs/cgroup%s", c2 + 1);
    }
    return n;
}

static bool dir_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* No sub-directory (task cgroup) left in the parent of dir, or the parent gone. */
static void assert_parent_empty(const char *dir)
{
    char parent[512];
    snprintf(parent, sizeof(parent), "%s", dir);
    char *slash = strrchr(parent, '/');
    assert_non_null(slash);
    *slash = '\0';
    DIR *d = opendir(parent);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_type == DT_DIR && strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            closedir(d);
            fail_msg("cgroup %s/%s left behind", parent, de->d_name);
        }
    }
    closedir(d);
}

/* ------------------------------------------------------------------ tests */

static void test_exec_full_set_remove(void **state)
{
    struct wx *w = wx_new(state);
    struct tb b1, b2;
    Swarm__Assignment *set[] = {tb_sleep(&b1, "task-one"), tb_sleep(&b2, "task-two")};
    w->f.first = set;
    w->f.n_first = 2;
    wx_start(w);

    pid_t p1 = must_reach(w, "task-one", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    pid_t p2 = must_reach(w, "task-two", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    assert_true(p1 > 0 && p2 > 0 && p1 != p2);
    assert_true(pid_alive(p1) && pid_alive(p2));
    assert_int_equal(w->f.bad_status, 0);
    /* batched: both in few calls */
    assert_true(w->f.status_calls <= 2);
    char cg[4][512];
    size_t ncg = task_cgroups(p1, cg, 4);
    assert_true(ncg > 0);
    for (size_t i = 0; i < ncg; i++) {
        assert_non_null(strstr(cg[i], w->parent));
        assert_true(dir_exists(cg[i]));
    }

    /* incremental removal: SIGTERM (pid 1 ignores it), SIGKILL after the grace */
    Swarm__Assignment *rm[] = {tb_remove(tb_sleep(&b1, "task-one"))};
    wt_fake_send(&w->f, false, rm, 1);
    must_reach(w, "task-one", SWARM__TASK_STATE__TASK_SHUTDOWN);
    assert_false(pid_alive(p1));
    for (size_t i = 0; i < ncg; i++)
        assert_false(dir_exists(cg[i]));
    assert_true(pid_alive(p2));
    /* a removed task is never started again */
    Swarm__Assignment *again[] = {tb_sleep(&b1, "task-one")};
    size_t before = w->f.n_status;
    wt_fake_send(&w->f, false, again, 1);
    mt_run_for(w->t, 300);
    assert_int_equal(w->f.n_status, before);

    /* a full set without task-two stops it */
    struct tb b3;
    Swarm__Assignment *full[] = {tb_sleep(&b3, "task-three")};
    wt_fake_send(&w->f, true, full, 1);
    must_reach(w, "task-two", SWARM__TASK_STATE__TASK_SHUTDOWN);
    assert_false(pid_alive(p2));
    pid_t p3 = must_reach(w, "task-three", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    assert_true(pid_alive(p3));

    /* an update of a running task with desired SHUTDOWN stops it too */
    Swarm__Assignment *down[] = {tb_sleep(&b3, "task-three")};
    b3.task.desired_state = SWARM__TASK_STATE__TASK_SHUTDOWN;
    wt_fake_send(&w->f, false, down, 1);
    must_reach(w, "task-three", SWARM__TASK_STATE__TASK_SHUTDOWN);
    assert_false(pid_alive(p3));
    wx_stop(w);
}

static void test_exec_exit_codes(void **state)
{
    struct wx *w = wx_new(state);
    static const char *const fail3[] = {"/bin/sh", "-c", "exit 3", NULL};
    static const char *const ok[] = {"/bin/true", NULL};
    static const char *const nope[] = {"/bin/nope", NULL};
    struct tb b1, b2, b3, b4;
    Swarm__Assignment *set[] = {
        tb_task(&b1, "exits-3", SWARM__TASK_STATE__TASK_RUNNING, fail3),
        tb_task(&b2, "exits-0", SWARM__TASK_STATE__TASK_RUNNING, ok),
        tb_task(&b3, "no-binary", SWARM__TASK_STATE__TASK_RUNNING, nope),
        tb_task(&b4, "bad-user", SWARM__TASK_STATE__TASK_RUNNING, ok),
    };
    b4.spec.user = "nobody";
    w->f.first = set;
    w->f.n_first = SW_ARRAY_SIZE(set);
    wx_start(w);

    const struct wt_status *s = must_reach(w, "exits-3", SWARM__TASK_STATE__TASK_FAILED);
    assert_int_equal(s->exit_code, 3);
    assert_string_equal(s->err, "task: non-zero exit (3)");
    s = must_reach(w, "exits-0", SWARM__TASK_STATE__TASK_COMPLETE);
    assert_int_equal(s->exit_code, 0);
    s = must_reach(w, "no-binary", SWARM__TASK_STATE__TASK_FAILED);
    assert_non_null(strstr(s->err, "/bin/nope"));
    s = must_reach(w, "bad-user", SWARM__TASK_STATE__TASK_REJECTED);
    assert_non_null(strstr(s->err, "user nobody"));

    /* a finished task is not restarted by the worker, even when assigned again */
    size_t before = w->f.n_status;
    Swarm__Assignment *again[] = {tb_task(&b1, "exits-3", SWARM__TASK_STATE__TASK_RUNNING, fail3)};
    wt_fake_send(&w->f, true, again, 1);
    mt_run_for(w->t, 300);
    assert_int_equal(w->f.n_status, before);
    wx_stop(w);
}

static void test_exec_spec_mapping(void **state)
{
    struct wx *w = wx_new(state);
    static const char *const check[] = {
        "/bin/sh", "-c",
        "[ \"$(id -u):$(id -g)\" = 1000:1001 ] && [ \"$FOO\" = bar ] && "
        "[ \"$(cat /proc/sys/kernel/hostname)\" = web-1 ] && [ \"$(pwd)\" = /etc ] && "
        "! touch /etc/x 2>/dev/null && [ \"$(grep CapBnd /proc/self/status)\" = "
        "\"CapBnd:\t0000000000000401\" ]",
        NULL};
    static const char *const hog[] = {"/usr/bin/tail", "/dev/zero", NULL};
    struct tb b1, b2;
    static char *env[] = {"FOO=bar"};
    static char *drop[] = {"ALL"};
    static char *add[] = {"chown", "CAP_NET_BIND_SERVICE"};
    Swarm__Assignment *set[] = {
        tb_task(&b1, "mapped", SWARM__TASK_STATE__TASK_RUNNING, check),
        tb_task(&b2, "oom", SWARM__TASK_STATE__TASK_RUNNING, hog),
    };
    b1.spec.user = "1000:1001";
    b1.spec.env = env;
    b1.spec.n_env = 1;
    b1.spec.hostname = "web-1";
    b1.spec.workdir = "/etc";
    b1.spec.read_only = true;
    b1.spec.cap_drop = drop;
    b1.spec.n_cap_drop = 1;
    b1.spec.cap_add = add;
    b1.spec.n_cap_add = 2;
    b2.spec.limit_memory = 32 << 20;
    w->f.first = set;
    w->f.n_first = SW_ARRAY_SIZE(set);
    wx_start(w);

    const struct wt_status *s =
        wt_fake_wait(&w->f, "mapped", SWARM__TASK_STATE__TASK_COMPLETE, WAIT_MS);
    if (!s) {
        s = wt_fake_last(&w->f, "mapped");
        fail_msg("mapped: %d %s", s ? (int)s->state : -1, s ? s->err : "");
    }
    s = must_reach(w, "oom", SWARM__TASK_STATE__TASK_FAILED);
    assert_string_equal(s->err, "OOM killed");
    assert_int_equal(s->exit_code, 137);
    wx_stop(w);
}

static void test_exec_batched(void **state)
{
    struct wx *w = wx_new(state);
    enum { N = 80 };
    static const char *const ok[] = {"/bin/true", NULL};
    struct tb *b = calloc(N, sizeof(*b));
    Swarm__Assignment *set[N];
    char ids[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof(ids[i]), "batch-%d", i);
        set[i] = tb_task(&b[i], ids[i], SWARM__TASK_STATE__TASK_RUNNING, ok);
    }
    w->f.first = set;
    w->f.n_first = N;
    wx_start(w);
    for (int i = 0; i < N; i++)
        must_reach(w, ids[i], SWARM__TASK_STATE__TASK_COMPLETE);
    free(b);
    /* at most 64 a call, and far fewer calls than updates */
    assert_true(w->f.max_batch <= 64);
    assert_true(w->f.max_batch > 1);
    assert_true(w->f.status_calls < N);
    assert_int_equal(w->f.bad_status, 0);
    wx_stop(w);
}

static void read_secret_file(pid_t pid, const char *target, char *buf, size_t size, mode_t *mode)
{
    char path[256];
    snprintf(path, sizeof(path), "/proc/%d/root/run/secrets/%s", (int)pid, target);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    if (sw_read_file(path, 4096, &text, &len) < 0)
        fail_msg("cannot read %s", path);
    snprintf(buf, size, "%.*s", (int)len, text);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    *mode = st.st_mode & 07777;
}

static void test_exec_secrets(void **state)
{
    struct wx *w = wx_new(state);
    struct tb s1, t1, t2;
    Swarm__Assignment *set[] = {
        tb_sleep(&t1, "uses-secret"), /* before its secret: the secrets are taken first */
        tb_secret(&s1, "sec-db", "db_pw", "s3cret"),
        tb_sleep(&t2, "missing-secret"),
    };
    tb_use_secret(&t1, "sec-db", "db_pw", "server.key", 0400);
    tb_use_secret(&t2, "sec-gone", "tls_key", "", 0);
    w->f.first = set;
    w->f.n_first = SW_ARRAY_SIZE(set);
    wx_start(w);

    pid_t p1 = must_reach(w, "uses-secret", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    char buf[64];
    mode_t mode;
    read_secret_file(p1, "server.key", buf, sizeof(buf), &mode);
    assert_string_equal(buf, "s3cret");
    assert_int_equal(mode, 0400);
    const struct wt_status *s = must_reach(w, "missing-secret", SWARM__TASK_STATE__TASK_REJECTED);
    assert_string_equal(s->err, "secret tls_key not available on this node");

    /* the manager drops the secret while uses-secret holds it: still there for a new task
     * (default target: its name, mode 0444) */
    struct tb t3;
    Swarm__Assignment *msg[] = {tb_remove(tb_secret(&s1, "sec-db", "db_pw", "")),
                                tb_sleep(&t3, "uses-too")};
    tb_use_secret(&t3, "sec-db", "db_pw", "", 0);
    wt_fake_send(&w->f, false, msg, 2);
    pid_t p3 = must_reach(w, "uses-too", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    read_secret_file(p3, "db_pw", buf, sizeof(buf), &mode);
    assert_string_equal(buf, "s3cret");
    assert_int_equal(mode, 0444);

    /* once no task here references it, it is gone from the node */
    struct tb r1, r3, r2, t4;
    Swarm__Assignment *rm[] = {tb_remove(tb_sleep(&r1, "uses-secret")),
                               tb_remove(tb_sleep(&r3, "uses-too")),
                               tb_remove(tb_sleep(&r2, "missing-secret"))};
    wt_fake_send(&w->f, false, rm, 3);
    must_reach(w, "uses-secret", SWARM__TASK_STATE__TASK_SHUTDOWN);
    must_reach(w, "uses-too", SWARM__TASK_STATE__TASK_SHUTDOWN);
    Swarm__Assignment *late[] = {tb_sleep(&t4, "too-late")};
    tb_use_secret(&t4, "sec-db", "db_pw", "", 0);
    wt_fake_send(&w->f, false, late, 1);
    s = must_reach(w, "too-late", SWARM__TASK_STATE__TASK_REJECTED);
    assert_string_equal(s->err, "secret db_pw not available on this node");

    /* a full set that omits a secret drops it at once */
    struct tb s2, t5;
    Swarm__Assignment *full1[] = {tb_secret(&s2, "sec-x", "x", "xx")};
    wt_fake_send(&w->f, true, full1, 1);
    Swarm__Assignment *full2[] = {tb_sleep(&t5, "needs-x")};
    tb_use_secret(&t5, "sec-x", "x", "", 0);
    wt_fake_send(&w->f, true, full2, 1);
    must_reach(w, "needs-x", SWARM__TASK_STATE__TASK_REJECTED);
    wx_stop(w);
}

static void test_exec_stop_leaves_nothing(void **state)
{
    struct wx *w = wx_new(state);
    struct tb b1, b2;
    Swarm__Assignment *set[] = {tb_sleep(&b1, "stop-one"), tb_sleep(&b2, "stop-two")};
    w->f.first = set;
    w->f.n_first = 2;
    wx_start(w);
    pid_t p1 = must_reach(w, "stop-one", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    pid_t p2 = must_reach(w, "stop-two", SWARM__TASK_STATE__TASK_RUNNING)->pid;
    char cg[4][512];
    size_t ncg = task_cgroups(p1, cg, 4);
    assert_true(ncg > 0);

    wx_stop(w);
    assert_false(pid_alive(p1));
    assert_false(pid_alive(p2));
    for (size_t i = 0; i < ncg; i++) {
        assert_false(dir_exists(cg[i]));
        assert_parent_empty(cg[i]);
    }
    assert_false(dir_exists(w->run_dir));
}

static void test_exec_status_kept_until_committed(void **state)
{
    struct wx *w = wx_new(state);
    struct tb b1;
    Swarm__Assignment *set[] = {tb_sleep(&b1, "kept")};
    w->f.first = set;
    w->f.n_first = 1;
    w->f.refuse_status = true;
    wx_start(w);
    for (int i = 0; i < 200 && w->f.status_refused == 0; i++)
        mt_run_for(w->t, 20);
    assert_true(w->f.status_refused > 0);
    assert_null(wt_fake_last(&w->f, "kept"));

    /* the session drops before the manager took them: they go on the next session, and
     * the task (assigned again in the new full set) is not started twice */
    struct sw_addr port = w->f.bound;
    wt_fake_close(&w->f);
    w->f.refuse_status = false;
    wt_fake_listen(&w->f, &port);
    const struct wt_status *s = must_reach(w, "kept", SWARM__TASK_STATE__TASK_RUNNING);
    assert_true(w->f.sessions >= 2);
    assert_int_equal(w->f.bad_status, 0); /* sent with the new session's id */
    assert_true(pid_alive(s->pid));
    size_t n = 0;
    for (size_t i = 0; i < w->f.n_status; i++)
        n += strcmp(w->f.status[i].task_id, "kept") == 0 &&
             w->f.status[i].state == SWARM__TASK_STATE__TASK_RUNNING;
    assert_int_equal(n, 1);
    mt_run_for(w->t, 300);
    assert_ptr_equal(wt_fake_last(&w->f, "kept"), s);
    wx_stop(w);
}

static void test_exec_leftovers_killed(void **state)
{
    struct wx *w = wx_new(state);
    /* a task of a previous run of this node (its daemon was SIGKILLed) */
    char err[256];
    struct rt_config rc = {.run_dir = w->run_dir, .cgroup_parent = w->parent};
    rt_runtime *rt = NULL;
    if (rt_runtime_create(&rc, &rt, err, sizeof(err)) < 0)
        fail_msg("runtime: %s", err);
    static char *const argv[] = {"/bin/sleep", "30", NULL};
    struct rt_task_spec spec = {.id = "left-over", .argv = argv, .stdio = {-1, -1, -1}};
    rt_task *task = NULL;
    if (rt_task_start(rt, &spec, &task, err, sizeof(err)) < 0) {
        rt_runtime_free(rt);
        fail_msg("start: %s", err);
    }
    pid_t pid = rt_task_pid(task);
    char cg[4][512];
    size_t ncg = task_cgroups(pid, cg, 4);

    /* the restarted agent kills it before it opens its session */
    struct tb b1;
    Swarm__Assignment *set[] = {tb_sleep(&b1, "after-restart")};
    b1.task.state = SWARM__TASK_STATE__TASK_RUNNING; /* it ran here before the restart */
    w->f.first = set;
    w->f.n_first = 1;
    wx_start(w);
    unsigned killed = wrk_agent_leftovers_killed(w->ar.a);
    struct rt_exit e;
    int r = rt_task_reap(task, &e);
    rt_task_cleanup(task);
    rt_runtime_free(rt);
    assert_int_equal(killed, 1);
    assert_int_equal(r, 0);
    assert_int_equal(e.signal, SIGKILL);
    for (size_t i = 0; i < ncg; i++)
        assert_false(dir_exists(cg[i]));
    /* the task the manager thinks runs here is gone: reported, not started again */
    const struct wt_status *s = must_reach(w, "after-restart", SWARM__TASK_STATE__TASK_FAILED);
    assert_non_null(strstr(s->err, "restarted"));
    assert_int_equal(s->pid, 0);
    wx_stop(w);
}

const struct CMUnitTest wt_exec_tests[] = {
    cmocka_unit_test_setup_teardown(test_exec_full_set_remove, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_exit_codes, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_spec_mapping, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_batched, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_secrets, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_stop_leaves_nothing, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_status_kept_until_committed, wx_setup, wx_teardown),
    cmocka_unit_test_setup_teardown(test_exec_leftovers_killed, wx_setup, wx_teardown),
};
const size_t wt_exec_n = SW_ARRAY_SIZE(wt_exec_tests);
