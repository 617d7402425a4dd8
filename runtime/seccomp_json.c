/* runtime/seccomp_json.c: placeholder until it lands. */
