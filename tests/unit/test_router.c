#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "core/router.h"

static bool m(const char *pattern, const char *type)
{
    return sy_pattern_match(pattern, type, strlen(type));
}

/* The definition, as plainly as it can be written: for the random comparison below. */
static bool reference(const char *const *p, size_t np, const char *const *t, size_t nt)
{
    if (np == 0) {
        return nt == 0;
    }
    if (strcmp(p[0], "*") == 0) {
        for (size_t k = 1; k <= nt; k++) {
            if (reference(p + 1, np - 1, t + k, nt - k)) {
                return true;
            }
        }
        return false;
    }
    return nt > 0 && strcmp(p[0], t[0]) == 0 && reference(p + 1, np - 1, t + 1, nt - 1);
}

static void random_patterns(void)
{
    static const char *const words[] = {"a", "b", "*"};
    unsigned seed = 99;
    for (int round = 0; round < 20000; round++) {
        const char *ps[6], *ts[7];
        size_t np = 1 + (size_t)rand_r(&seed) % 5, nt = 1 + (size_t)rand_r(&seed) % 6;
        char pat[64] = "", typ[64] = "";
        for (size_t i = 0; i < np; i++) {
            ps[i] = words[rand_r(&seed) % 3];
            size_t at = strlen(pat);
            snprintf(pat + at, sizeof(pat) - at, "%s%s", i ? (rand_r(&seed) % 2 ? "." : ":") : "", ps[i]);
        }
        for (size_t i = 0; i < nt; i++) {
            ts[i] = words[rand_r(&seed) % 2];
            size_t at = strlen(typ);
            snprintf(typ + at, sizeof(typ) - at, "%s%s", i ? (rand_r(&seed) % 2 ? "." : ":") : "", ts[i]);
        }
        bool want = reference(ps, np, ts, nt);
        bool got = sy_pattern_match(pat, typ, strlen(typ));
        CHECK(want == got);
        if (want != got) {
            fprintf(stderr, "  %s vs %s: want %d\n", pat, typ, want);
        }
    }
}

/* Types of up to 255 bytes can hold 256 segments (all separators): no segment count is a limit. */
static void many_segments(void)
{
    char colons[256], dotted[256];
    memset(colons, ':', 255);
    colons[255] = '\0';
    CHECK(m("*", colons));
    for (size_t i = 0; i < 255; i++) {
        dotted[i] = i % 2 ? '.' : 'a';
    }
    dotted[255] = '\0'; /* "a.a.a...a": 128 segments */
    CHECK(m("*", dotted));
    CHECK(m("a.*", dotted));
    CHECK(m("*.a", dotted));
    CHECK(m("a.*.a", dotted));
    CHECK(!m("b.*", dotted));
    CHECK(!m("a", dotted));
}

int main(void)
{
    random_patterns();
    many_segments();
    /* exact */
    CHECK(m("scm.pull_request.created", "scm.pull_request.created"));
    CHECK(!m("scm.pull_request.created", "scm.pull_request.created2"));
    CHECK(!m("scm.pull_request.created", "scm.pull_request"));
    /* prefix.*: one or more further segments */
    CHECK(m("scm.*", "scm.pull_request.created"));
    CHECK(m("scm.*", "scm.branch.deleted"));
    CHECK(m("scm.pull_request.*", "scm.pull_request.merged"));
    CHECK(!m("scm.*", "scm"));
    CHECK(!m("scm.*", "scmx.pull_request.created"));
    CHECK(!m("scm.pull_request.*", "scm.pull_request"));
    CHECK(!m("scm.*", "ticketing.ticket.created"));
    /* everything */
    CHECK(m("*", "anything.at.all"));
    CHECK(m("*", "x"));
    /* both spellings: segments split on '.' and ':'; '*' takes one or more segments */
    CHECK(m("ticket:*", "ticket:created"));
    CHECK(m("ticket:*", "ticket:comment:added"));
    CHECK(!m("ticket:*", "ticket"));
    CHECK(!m("ticket:*", "ticketing.ticket.created"));
    CHECK(m("*:created", "ticket:created"));
    CHECK(m("*:created", "ticketing.ticket.created"));
    CHECK(m("*.created", "user:created"));
    CHECK(!m("*:created", "created"));
    CHECK(!m("*:created", "ticket:created:later"));
    CHECK(m("scm.*.merged", "scm.pull_request.merged"));
    CHECK(m("scm.*.merged", "scm.a.b.merged"));
    CHECK(!m("scm.*.merged", "scm.merged"));
    CHECK(m("*.*", "a.b"));
    CHECK(!m("*.*", "a"));
    CHECK(m("*.b.*", "x.y.b.z"));
    CHECK(!m("*.b.*", "x.y.b"));
    CHECK(m("ticket:created", "ticket.created")); /* the separators are alike */
    CHECK(!m("ticket", "ticket:created"));
    /* a hostile type against many stars stays cheap: each check is at most segments squared */
    {
        char t[256];
        for (int i = 0; i < 127; i++) {
            t[2 * i] = 'a';
            t[2 * i + 1] = '.';
        }
        t[254] = 'c';
        t[255] = '\0';
        CHECK(!m("*.*.*.*.*.*.*.*.*.*.*.*.b", t));
        CHECK(m("*.*.*.*.*.*.*.*.*.*.*.*.c", t));
    }
    /* types outside the documented list route too */
    CHECK(m("custom:acme-v2.*", "custom:acme-v2.deploy.finished"));

    CHECK(sy_pattern_valid("*"));
    CHECK(sy_pattern_valid("scm.*"));
    CHECK(sy_pattern_valid("scm.pull_request.created"));
    CHECK(sy_pattern_valid("custom:acme-v2.x"));
    CHECK(!sy_pattern_valid(""));
    CHECK(!sy_pattern_valid("scm*"));
    CHECK(sy_pattern_valid("*.created"));
    CHECK(sy_pattern_valid("ticket:*"));
    CHECK(sy_pattern_valid("*:created"));
    CHECK(sy_pattern_valid("scm.*.merged"));
    CHECK(!sy_pattern_valid("ticket:"));
    CHECK(!sy_pattern_valid("a*:b"));
    CHECK(!sy_pattern_valid("a.:b"));
    CHECK(!sy_pattern_valid("scm..created"));
    CHECK(!sy_pattern_valid(".scm"));
    CHECK(!sy_pattern_valid("scm."));
    CHECK(!sy_pattern_valid("scm.**"));
    CHECK(!sy_pattern_valid("scm pr"));
    CHECK(!sy_pattern_valid(".*"));

    /* routes: several patterns, integration filter */
    const char *on[] = {"scm.pull_request.created", "incidents.*"};
    struct sy_route r = {.name = "r", .on = on, .n_on = 2, .integration = NULL};
    CHECK(sy_route_matches(&r, "incidents.incident.created", 26, "pagerduty", NULL));
    CHECK(sy_route_matches(&r, "scm.pull_request.created", 24, NULL, NULL));
    CHECK(!sy_route_matches(&r, "scm.pull_request.merged", 23, "github", NULL));
    r.integration = "github";
    CHECK(sy_route_matches(&r, "scm.pull_request.created", 24, "github", NULL));
    CHECK(!sy_route_matches(&r, "scm.pull_request.created", 24, "gitlab", NULL));
    CHECK(!sy_route_matches(&r, "scm.pull_request.created", 24, NULL, NULL));
    /* the category filter: the same type under two categories */
    const char *uc[] = {"user:created"};
    struct sy_route ident = {.name = "i", .on = uc, .n_on = 1, .category = "identity"};
    CHECK(sy_route_matches(&ident, "user:created", 12, NULL, "identity"));
    CHECK(!sy_route_matches(&ident, "user:created", 12, NULL, "ticketing"));
    CHECK(!sy_route_matches(&ident, "user:created", 12, NULL, NULL));
    /* ordering keys: dotted paths into the event, joined; absent or null = no key */
    const char *ev = "{\"id\":\"e\",\"data\":{\"url\":\"https://x/pull/1\",\"number\":7,"
                     "\"repo\":{\"id\":\"r\\u00e9\"},\"none\":null}}";
    const char *url[] = {"data.url"}, *two[] = {"data.repo.id", "data.number"},
               *gone[] = {"data.url", "data.missing"}, *nul[] = {"data.none"};
    char key[SY_KEY_MAX + 1];
    struct sy_route k1 = {.name = "r", .key = url, .n_key = 1};
    CHECK(sy_route_key(&k1, ev, strlen(ev), key) == 16);
    CHECK_STR(key, "https://x/pull/1");
    struct sy_route k2 = {.name = "r", .key = two, .n_key = 2};
    CHECK(sy_route_key(&k2, ev, strlen(ev), key) == 5);
    CHECK(memcmp(key, "r\xc3\xa9\x1f" "7", 6) == 0); /* decoded, joined by \x1f; NUL-ended */
    struct sy_route k3 = {.name = "r", .key = gone, .n_key = 2};
    CHECK(sy_route_key(&k3, ev, strlen(ev), key) == -1);
    struct sy_route k4 = {.name = "r", .key = nul, .n_key = 1};
    CHECK(sy_route_key(&k4, ev, strlen(ev), key) == -1);
    struct sy_route none = {.name = "r"};
    CHECK(sy_route_key(&none, ev, strlen(ev), key) == -1);
    /* a long value is hashed, so any length fits and equal values still meet */
    char big[2000];
    int n = snprintf(big, sizeof(big), "{\"data\":{\"url\":\"%0900d\"}}", 5);
    CHECK(sy_route_key(&k1, big, (size_t)n, key) == 7 + 64);
    CHECK(strncmp(key, "sha256:", 7) == 0);
    char again[SY_KEY_MAX + 1];
    CHECK(sy_route_key(&k1, big, (size_t)n, again) == 71 && strcmp(key, again) == 0);
    big[n - 5] = '6';
    CHECK(sy_route_key(&k1, big, (size_t)n, again) == 71 && strcmp(key, again) != 0);
    /* valid key paths */
    CHECK(sy_key_path_valid("data.url") && sy_key_path_valid("data.items.0.id"));
    CHECK(!sy_key_path_valid("") && !sy_key_path_valid("data..url") && !sy_key_path_valid(".a"));
    CHECK(!sy_key_path_valid("a.") && !sy_key_path_valid("data url") && !sy_key_path_valid("a/b"));
    CHECK_DONE();
}
