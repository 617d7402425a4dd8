/* runtime/caps.c: placeholder until it lands. */
