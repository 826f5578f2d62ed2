#include <string.h>

#include "check.h"
#include "core/router.h"

static bool m(const char *pattern, const char *type)
{
    return sy_pattern_match(pattern, type, strlen(type));
}

int main(void)
{
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
    /* types outside the documented list route too */
    CHECK(m("custom:acme-v2.*", "custom:acme-v2.deploy.finished"));

    CHECK(sy_pattern_valid("*"));
    CHECK(sy_pattern_valid("scm.*"));
    CHECK(sy_pattern_valid("scm.pull_request.created"));
    CHECK(sy_pattern_valid("custom:acme-v2.x"));
    CHECK(!sy_pattern_valid(""));
    CHECK(!sy_pattern_valid("scm*"));
    CHECK(!sy_pattern_valid("*.created"));
    CHECK(!sy_pattern_valid("scm..created"));
    CHECK(!sy_pattern_valid(".scm"));
    CHECK(!sy_pattern_valid("scm."));
    CHECK(!sy_pattern_valid("scm.**"));
    CHECK(!sy_pattern_valid("scm pr"));
    CHECK(!sy_pattern_valid(".*"));

    /* routes: several patterns, integration filter */
    const char *on[] = {"scm.pull_request.created", "incidents.*"};
    struct sy_route r = {.name = "r", .on = on, .n_on = 2, .integration = NULL};
    CHECK(sy_route_matches(&r, "incidents.incident.created", 26, "pagerduty"));
    CHECK(sy_route_matches(&r, "scm.pull_request.created", 24, NULL));
    CHECK(!sy_route_matches(&r, "scm.pull_request.merged", 23, "github"));
    r.integration = "github";
    CHECK(sy_route_matches(&r, "scm.pull_request.created", 24, "github"));
    CHECK(!sy_route_matches(&r, "scm.pull_request.created", 24, "gitlab"));
    CHECK(!sy_route_matches(&r, "scm.pull_request.created", 24, NULL));
    CHECK_DONE();
}
