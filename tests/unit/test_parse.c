#include "check.h"
#include "util/buf.h"
#include "util/parse.h"

static uint64_t size(const char *s)
{
    uint64_t v = 0;
    return sy_parse_size(s, &v) ? v : UINT64_MAX;
}

static uint64_t dur(const char *s)
{
    uint64_t v = 0;
    return sy_parse_duration_ms(s, &v) ? v : UINT64_MAX;
}

int main(void)
{
    CHECK(size("1MiB") == 1048576);
    CHECK(size("512KiB") == 524288);
    CHECK(size("64kB") == 64000);
    CHECK(size("1GiB") == 1073741824);
    CHECK(size("1048576") == 1048576);
    CHECK(size("1.5MiB") == 1572864);
    CHECK(size("10 MB") == 10000000);
    CHECK(size("MiB") == UINT64_MAX);
    CHECK(size("1XB") == UINT64_MAX);
    CHECK(size("-1") == UINT64_MAX);
    CHECK(size("") == UINT64_MAX);

    CHECK(dur("7d") == UINT64_C(604800000));
    CHECK(dur("12h") == UINT64_C(43200000));
    CHECK(dur("30m") == 1800000);
    CHECK(dur("5s") == 5000);
    CHECK(dur("250ms") == 250);
    CHECK(dur("90") == 90000);
    CHECK(dur("1.5s") == 1500);
    CHECK(dur("2w") == UINT64_C(1209600000));
    CHECK(dur("5 minutes") == UINT64_MAX);
    CHECK(dur("d") == UINT64_MAX);

    int64_t v;
    CHECK(sy_parse_int64("123", 3, &v) && v == 123);
    CHECK(sy_parse_int64("-123", 4, &v) && v == -123);
    CHECK(sy_parse_int64("9223372036854775807", 19, &v) && v == INT64_MAX);
    CHECK(!sy_parse_int64("9223372036854775808", 19, &v));
    CHECK(!sy_parse_int64("12a", 3, &v));
    CHECK(!sy_parse_int64("", 0, &v));
    CHECK(!sy_parse_int64(" 1", 2, &v));

    struct sy_buf b;
    sy_buf_init(&b, 64);
    sy_buf_json_string(&b, "a\"b\\c\n\x01", 7);
    CHECK_STR(b.data, "\"a\\\"b\\\\c\\n\\u0001\"");
    sy_buf_reset(&b);
    for (int i = 0; i < 100; i++) {
        sy_buf_puts(&b, "x");
    }
    CHECK(b.failed); /* the cap holds */
    CHECK(b.len <= 64);
    sy_buf_dispose(&b);
    /* points in time */
    int64_t t, now = 1764633600000; /* 2025-12-02T00:00:00Z */
    CHECK(sy_parse_time_ms("2026-12-01", now, &t) && t == 1796083200000);
    CHECK(sy_parse_time_ms("2026-12-01T09:30", now, &t) && t == 1796083200000 + 34200000);
    CHECK(sy_parse_time_ms("2026-12-01T09:30:15Z", now, &t) && t == 1796083200000 + 34215000);
    CHECK(sy_parse_time_ms("2026-12-01T09:30:15+02:00", now, &t) &&
          t == 1796083200000 + 34215000 - 7200000);
    CHECK(sy_parse_time_ms("1970-01-01T00:00:00Z", now, &t) && t == 0);
    CHECK(sy_parse_time_ms("2h", now, &t) && t == now - 7200000);
    CHECK(sy_parse_time_ms("7d", now, &t) && t == now - 7 * 86400000LL);
    CHECK(!sy_parse_time_ms("2026-13-01", now, &t));
    CHECK(!sy_parse_time_ms("2026-12-01T25:00", now, &t));
    CHECK(!sy_parse_time_ms("2026-12-01T09:30Zx", now, &t));
    CHECK(!sy_parse_time_ms("yesterday", now, &t));
    CHECK(!sy_parse_time_ms("", now, &t));
    CHECK_DONE();
}
