/* swarmd's locked state (autolock) and the `swarmd unlock` command. */
#pragma once
#include <stddef.h>
#include <uv.h>

#include "pki/pki.h"

typedef struct swd_locked swd_locked;
/* The right unlock key arrived: the process holds it (pki_node_state_set_unlock_key). */
typedef void (*swd_unlocked_fn)(void *userdata);

/* Serve state_dir's control socket while locked: Control.Unlock with the right key is
 * answered, the socket is let go and cb runs once (l is gone then); a wrong key is refused
 * and counted; every other call gets "locked: ...". */
int swd_locked_start(uv_loop_t *loop, const char *state_dir, swd_unlocked_fn cb, void *userdata,
                     swd_locked **ret, char *errmsg, size_t size);
/* Stop serving without calling cb (asynchronous; l is freed once closed). NULL is fine. */
void swd_locked_close(swd_locked *l);
/* `swarmd [--state-dir DIR] unlock [--state-dir DIR]` (argv: swarmd's whole command line):
 * the exit status. */
int swd_unlock_main(int argc, char **argv);
/* The unlock key from SWARM_UNLOCK_KEY, else a line of stdin (no echo on a terminal),
 * parsed (errmsg says what is wrong). */
int swd_read_unlock_key(struct pki_unlock_key *ret, char *errmsg, size_t size);
