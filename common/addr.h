/* IP[:PORT] address parsing for flags such as --listen-addr and join targets. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define SW_ADDR_HOST_MAX 46 /* INET6_ADDRSTRLEN */

struct sw_addr {
    char host[SW_ADDR_HOST_MAX]; /* numeric IPv4 or IPv6, without brackets */
    uint16_t port;
    int family; /* AF_INET or AF_INET6 */
};

/* Parse "IP", "IP:PORT", "[IPv6]" or "[IPv6]:PORT". The host must be a numeric address.
 * When the port is absent, default_port is used; default_port < 0 makes the port
 * mandatory. Port 0 is accepted only if allow_zero_port (listening on an ephemeral port).
 * -EINVAL if malformed. */
int sw_addr_parse(const char *s, int default_port, int allow_zero_port, struct sw_addr *ret);
/* "IP:PORT" or "[IPv6]:PORT". */
void sw_addr_format(const struct sw_addr *a, char *buf, unsigned size);

/* A node hostname as swarmd accepts it: 1..253 chars of [A-Za-z0-9._-]. */
bool sw_hostname_valid(const char *h);

/* The socket address of a (port included); *ret_len (optional) its size. -EINVAL if the
 * host does not parse for its family. */
int sw_addr_sockaddr(const struct sw_addr *a, struct sockaddr_storage *ss, socklen_t *ret_len);
