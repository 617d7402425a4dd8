/* runtime/cgroup.c: placeholder until it lands. */
