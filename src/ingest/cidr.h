#ifndef SY_CIDR_H
#define SY_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* An IP address; IPv4 and IPv4-mapped IPv6 both become family AF_INET. */
struct sy_addr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char b[16];
};

struct sy_cidr {
    struct sy_addr net;
    int bits;
};

/* "10.0.0.0/8", "2001:db8::/32", or a bare address (all bits). Returns false on bad syntax. */
bool sy_cidr_parse(const char *s, struct sy_cidr *out);
/* Text address (not NUL-terminated; surrounding spaces allowed; "[v6]" and ":port" not). */
bool sy_addr_parse(const char *s, size_t len, struct sy_addr *out);
bool sy_addr_from_sockaddr(const struct sockaddr *sa, struct sy_addr *out);
/* Printable form into buf (INET6_ADDRSTRLEN bytes is enough). */
void sy_addr_format(const struct sy_addr *a, char *buf, size_t len);

bool sy_cidr_contains(const struct sy_cidr *c, const struct sy_addr *a);
bool sy_cidr_list_contains(const struct sy_cidr *list, size_t n, const struct sy_addr *a);

/*
 * The client address a request should be judged by: the peer, unless the
 * peer is a trusted proxy, in which case X-Forwarded-For is read right to
 * left and the first address that is not a trusted proxy wins. A malformed
 * entry stops the walk at the last trusted hop's claim (the peer's view).
 */
void sy_client_addr(const struct sy_addr *peer, const char *xff, size_t xff_len,
                    const struct sy_cidr *trusted, size_t n_trusted, struct sy_addr *out);

#endif
