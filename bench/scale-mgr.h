/* bench-scale, bench-ca-sim: the manager under test (a `swarmd init` this process started, or
 * one it attached to by its control socket) and the calls the drivers make to it. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/addr.h"
#include "proto/frame.h"

/* Names the program in messages ("bench-scale"). */
extern const char *scale_mgr_prog;

void scale_mgr_sleep_ms(unsigned ms);
double scale_mgr_ms_since(uint64_t t0_ns);
bool scale_mgr_parse_uint(const char *s, unsigned max, unsigned *ret);

/* SIGINT/SIGTERM/SIGHUP kill the manager we started and remove its temp dir (keep: kept). */
void scale_mgr_signals(bool keep);
/* Start `swarmd init` (listening on 127.0.0.1, log level warn, heartbeat if not NULL) in a
 * fresh temp dir and wait until its control socket answers; ret_self: its node ID. */
int scale_mgr_start(const char *swarmd, const char *heartbeat, char *ret_self, size_t self_size);
/* Use a manager someone else started (not stopped by scale_mgr_stop). */
int scale_mgr_attach(const char *sock);
/* Stop the manager we started (SIGTERM, then SIGKILL after 15 s) and remove its temp dir. */
void scale_mgr_stop(void);
/* False (and says so, with the log's tail) once the manager we started has exited. */
bool scale_mgr_alive(void);
void scale_mgr_show_log(void);
/* The manager we started (-1: none, or attached). */
pid_t scale_mgr_pid(void);

/* One unary call on the control socket; *out is malloc'd (NULL when empty). */
int scale_mgr_call(const char *method, const ProtobufCMessage *msg, uint8_t **out, size_t *len,
                   char *err, size_t errsize);
Swarm__ListNodesResponse *scale_mgr_list_nodes(char *err, size_t errsize);
Swarm__GetClusterResponse *scale_mgr_get_cluster(char *err, size_t errsize);
/* Ready nodes whose hostname starts with prefix (-1 on error). */
int scale_mgr_count_ready(const char *prefix, char *err, size_t errsize);
/* The worker join token and the manager's address. */
int scale_mgr_get_token(char *token, size_t tsize, struct sw_addr *addr);
/* Run swarmctl -H unix://SOCK args...; stdout discarded, the first line of stderr into err.
 * Returns the exit status or -errno. */
int scale_mgr_swarmctl(const char *path, char *const args[], char *err, size_t errsize);
/* --swarmctl, $SWARMCTL, -DBENCH_SWARMCTL, else the swarmctl beside swarmd. */
const char *scale_mgr_find_swarmctl(const char *arg, const char *swarmd, char *buf, size_t size);
/* Enough descriptors for N sessions here and in the manager (it inherits the limit). */
int scale_mgr_raise_nofile(unsigned nodes);
