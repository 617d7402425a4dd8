/* fake-control's parts: the services, tasks and secrets (fake-objects.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seed the objects; received secret data is written to dir/received-NAME. */
void fake_objects_init(const char *dir);
/* Answer method if it is one of the objects' methods (true), else false. */
bool fake_objects_handle(const char *method, const uint8_t *in, size_t in_len, int *status,
                         const char **error, uint8_t **out, size_t *out_len);
