/* IP[:PORT] parsing and formatting. */
#include "common/addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sw_addr_parse(const char *s, int default_port, int allow_zero_port, struct sw_addr *ret)
{
    char host[SW_ADDR_HOST_MAX];
    const char *port_str = NULL;
    size_t hlen;
    struct sw_addr a = {0};

    if (!s || !*s)
        return -EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end)
            return -EINVAL;
        hlen = (size_t)(end - s - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s + 1, hlen);
        host[hlen] = '\0';
        if (end[1] == ':')
            port_str = end + 2;
        else if (end[1] != '\0')
            return -EINVAL;
        a.family = AF_INET6;
    } else {
        const char *colon = strchr(s, ':');
        if (colon && strchr(colon + 1, ':')) {
            /* bare IPv6 without port */
            hlen = strlen(s);
            a.family = AF_INET6;
        } else {
            hlen = colon ? (size_t)(colon - s) : strlen(s);
            if (colon)
                port_str = colon + 1;
            a.family = AF_INET;
        }
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, s, hlen);
        host[hlen] = '\0';
    }
    unsigned char buf[16];
    if (inet_pton(a.family, host, buf) != 1)
        return -EINVAL;
    /* normalise the textual form */
    if (!inet_ntop(a.family, buf, a.host, sizeof(a.host)))
        return -EINVAL;
    if (port_str) {
        char *end = NULL;
        if (*port_str < '0' || *port_str > '9')
            return -EINVAL;
        errno = 0;
        unsigned long p = strtoul(port_str, &end, 10);
        if (errno || *end || p > 65535)
            return -EINVAL;
        a.port = (uint16_t)p;
    } else {
        if (default_port < 0)
            return -EINVAL;
        a.port = (uint16_t)default_port;
    }
    if (a.port == 0 && !allow_zero_port)
        return -EINVAL;
    *ret = a;
    return 0;
}

void sw_addr_format(const struct sw_addr *a, char *buf, unsigned size)
{
    if (a->family == AF_INET6)
        snprintf(buf, size, "[%s]:%u", a->host, a->port);
    else
        snprintf(buf, size, "%s:%u", a->host, a->port);
}

bool sw_hostname_valid(const char *h)
{
    size_t n = h ? strlen(h) : 0;
    if (n == 0 || n > 253)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '.' || *p == '_'))
            return false;
    return true;
}

int sw_addr_sockaddr(const struct sw_addr *a, struct sockaddr_storage *ss, socklen_t *ret_len)
{
    socklen_t len;
    memset(ss, 0, sizeof(*ss));
    if (a->family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(a->port);
        if (inet_pton(AF_INET6, a->host, &s6->sin6_addr) != 1)
            return -EINVAL;
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(a->port);
        if (inet_pton(AF_INET, a->host, &s4->sin_addr) != 1)
            return -EINVAL;
        len = sizeof(*s4);
    }
    if (ret_len)
        *ret_len = len;
    return 0;
}
