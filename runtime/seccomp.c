/* runtime/seccomp.c: placeholder until it lands. */
