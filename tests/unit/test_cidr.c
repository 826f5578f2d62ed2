#include <arpa/inet.h>
#include <string.h>

#include "check.h"
#include "ingest/cidr.h"

static bool in(const char *cidr, const char *addr)
{
    struct sy_cidr c;
    struct sy_addr a;
    if (!sy_cidr_parse(cidr, &c) || !sy_addr_parse(addr, strlen(addr), &a)) {
        return false;
    }
    return sy_cidr_contains(&c, &a);
}

static bool parses(const char *cidr)
{
    struct sy_cidr c;
    return sy_cidr_parse(cidr, &c);
}

static void test_v4(void)
{
    CHECK(in("52.10.128.0/24", "52.10.128.0"));
    CHECK(in("52.10.128.0/24", "52.10.128.255"));
    CHECK(!in("52.10.128.0/24", "52.10.129.0"));
    CHECK(!in("52.10.128.0/24", "52.10.127.255"));
    CHECK(in("10.0.0.0/8", "10.255.1.2"));
    CHECK(in("10.1.2.3/8", "10.200.0.1")); /* host bits are ignored */
    CHECK(in("0.0.0.0/0", "203.0.113.9"));
    CHECK(in("192.0.2.7", "192.0.2.7")); /* bare address = /32 */
    CHECK(!in("192.0.2.7", "192.0.2.8"));
    CHECK(in("192.0.2.0/25", "192.0.2.127"));
    CHECK(!in("192.0.2.0/25", "192.0.2.128"));
    CHECK(in("192.0.2.0/31", "192.0.2.1"));
    CHECK(!in("192.0.2.0/31", "192.0.2.2"));
    /* an IPv4-mapped IPv6 peer matches IPv4 ranges */
    CHECK(in("127.0.0.0/8", "::ffff:127.0.0.1"));
    CHECK(!in("127.0.0.0/8", "::1"));
    CHECK(in("::ffff:10.0.0.0/104", "10.9.9.9"));
}

static void test_v6(void)
{
    CHECK(in("2001:db8::/32", "2001:db8:1234::1"));
    CHECK(!in("2001:db8::/32", "2001:db9::1"));
    CHECK(in("::1/128", "::1"));
    CHECK(in("::1", "::1"));
    CHECK(!in("::1/128", "::2"));
    CHECK(in("::/0", "fe80::1"));
    CHECK(in("2001:db8:abcd:12::/63", "2001:db8:abcd:13::5"));
    CHECK(!in("2001:db8:abcd:12::/63", "2001:db8:abcd:14::5"));
    CHECK(!in("2001:db8::/32", "32.1.13.184")); /* v4 never matches a v6 range */
}

static void test_bad(void)
{
    CHECK(!parses(""));
    CHECK(!parses("10.0.0.0/33"));
    CHECK(!parses("10.0.0.0/"));
    CHECK(!parses("10.0.0.0/-1"));
    CHECK(!parses("10.0.0.0/8x"));
    CHECK(!parses("10.0.0/8"));
    CHECK(!parses("::/129"));
    CHECK(!parses("not-an-ip/8"));
    CHECK(!parses("2001:db8::/1234"));
    CHECK(parses("::/0"));
}

static struct sy_addr addr(const char *s)
{
    struct sy_addr a;
    memset(&a, 0, sizeof(a));
    sy_addr_parse(s, strlen(s), &a);
    return a;
}

static const char *client(const char *peer, const char *xff)
{
    static char out[64];
    struct sy_cidr trusted[2];
    sy_cidr_parse("127.0.0.1/32", &trusted[0]);
    sy_cidr_parse("10.0.0.0/8", &trusted[1]);
    struct sy_addr p = addr(peer), c;
    sy_client_addr(&p, xff, xff ? strlen(xff) : 0, trusted, 2, &c);
    sy_addr_format(&c, out, sizeof(out));
    return out;
}

static void test_forwarded(void)
{
    /* honoured from a trusted proxy: rightmost untrusted hop wins */
    CHECK_STR(client("127.0.0.1", "52.10.128.7"), "52.10.128.7");
    CHECK_STR(client("127.0.0.1", "1.1.1.1, 52.10.128.7"), "52.10.128.7");
    CHECK_STR(client("127.0.0.1", "1.1.1.1, 52.10.128.7, 10.1.1.1"), "52.10.128.7");
    /* ignored from anyone else: a client cannot claim an allowed address */
    CHECK_STR(client("198.51.100.4", "52.10.128.7"), "198.51.100.4");
    /* no header: the peer */
    CHECK_STR(client("127.0.0.1", NULL), "127.0.0.1");
    /* garbage stops the walk at the last good claim */
    CHECK_STR(client("127.0.0.1", "52.10.128.7, junk"), "127.0.0.1");
    CHECK_STR(client("127.0.0.1", "2001:db8::5"), "2001:db8::5");
}

int main(void)
{
    test_v4();
    test_v6();
    test_bad();
    test_forwarded();
    CHECK_DONE();
}
