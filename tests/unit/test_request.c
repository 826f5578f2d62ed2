/* Outbound requests: what rules and plugins build from event data cannot change what is sent. */
#include "check.h"
#include "unizo/request.h"
#include "util/error.h"
#include "util/parse.h"

static int check(const char *method, const char *path, const char *query, const char *integration)
{
    struct sy_unizo_request req = {
        .method = method, .path = path, .query = query, .integration = integration};
    char err[200] = "";
    int rc = sy_unizo_request_check(&req, err, sizeof(err));
    CHECK(rc == SY_OK || err[0] != '\0'); /* a refusal always says why */
    return rc;
}

static bool path_ok(const char *path)
{
    return check("GET", path, NULL, NULL) == SY_OK;
}

int main(void)
{
    static const char *const good_paths[] = {"/ticketing/acme/collections/ENG/tickets",
                                             "/ticketing/a/collections/b/tickets/T-1/comments",
                                             "/a/b%2Fc",
                                             "/x/..a",
                                             "/x/a..",
                                             "/x/...",
                                             "/x/.../y",
                                             "/x/~u/!$&'()*+,;=:@",
                                             "/",
                                             "/a/",
                                             "/a//b",
                                             "/x/%2e%2e%2e"};
    for (size_t i = 0; i < sizeof(good_paths) / sizeof(good_paths[0]); i++) {
        CHECK(path_ok(good_paths[i]));
        if (!path_ok(good_paths[i])) {
            fprintf(stderr, "  refused: %s\n", good_paths[i]);
        }
    }
    static const char *const bad_paths[] = {
        "/x/../y",        "/x/./y",  "/x/..",  "/x/.",  "/..",   "/.",    "/x/%2e%2E/y",
        "/x/.%2e",        "/x/%2E.", "/x/%2e", "x",     "",      "/a b",  "/a\r\nb",
        "/a\nHost: evil", "/a?b",    "/a#b",   "/a%zz", "/a%4",  "/a%",   "/\xc3\xa9",
        "/a\\b",          "/a\x7f",  "/a\tb",  "/a\"b", "/a<b>", "/a{b}", "/a|b"};
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        CHECK(!path_ok(bad_paths[i]));
        if (path_ok(bad_paths[i])) {
            fprintf(stderr, "  accepted: %s\n", bad_paths[i]);
        }
    }
    CHECK(check(NULL, "/a", NULL, NULL) == SY_EINVAL);
    /* methods: the five, spelled as HTTP spells them */
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < 5; i++) {
        CHECK(check(methods[i], "/a", NULL, NULL) == SY_OK);
    }
    CHECK(check("get", "/a", NULL, NULL) == SY_EINVAL);
    CHECK(check("TRACE", "/a", NULL, NULL) == SY_EINVAL);
    CHECK(check("GET /admin HTTP/1.1\r\nX:", "/a", NULL, NULL) == SY_EINVAL);
    CHECK(check(NULL, "/a", NULL, NULL) == SY_EINVAL);
    /* queries */
    CHECK(check("GET", "/a", "a=1&b=2", NULL) == SY_OK);
    CHECK(check("GET", "/a", "q=%20x&path=/a/b?c", NULL) == SY_OK);
    CHECK(check("GET", "/a", "a=b c", NULL) == SY_EINVAL);
    CHECK(check("GET", "/a", "a=\r\nX: y", NULL) == SY_EINVAL);
    CHECK(check("GET", "/a", "a#b", NULL) == SY_EINVAL);
    CHECK(check("GET", "/a", "a=%g0", NULL) == SY_EINVAL);
    /* integrations: sent as a header value */
    CHECK(check("GET", "/a", NULL, "jira-prod") == SY_OK);
    CHECK(check("GET", "/a", NULL, "int_9f8e-7d6c") == SY_OK);
    CHECK(check("GET", "/a", NULL, "a\r\nX-Injected: 1") == SY_EINVAL);
    CHECK(check("GET", "/a", NULL, "a b") == SY_EINVAL);
    CHECK(check("GET", "/a", NULL, "") == SY_EINVAL);
    CHECK(check("GET", "/a", NULL, "caf\xc3\xa9") == SY_EINVAL);
    char longest[SY_HEADER_VALUE_MAX + 2];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    CHECK(check("GET", "/a", NULL, longest) == SY_EINVAL);
    longest[SY_HEADER_VALUE_MAX] = '\0';
    CHECK(check("GET", "/a", NULL, longest) == SY_OK);
    CHECK_DONE();
}
