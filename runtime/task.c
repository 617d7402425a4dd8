/* runtime/task.c: placeholder until it lands. */
