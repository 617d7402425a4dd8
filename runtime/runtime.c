/* runtime/runtime.c: placeholder until it lands. */
