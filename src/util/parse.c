#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "util/parse.h"

bool sy_parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (len > 0 && s[0] == '-') {
        neg = true;
        i = 1;
    }
    if (i == len) {
        return false;
    }
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_C(9223372036854775807) - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

/* Split "123unit" into a number and a unit suffix; the number may have a fraction. */
static bool split_number(const char *s, double *num, const char **unit)
{
    const char *p = s;
    while (isspace((unsigned char)*p)) {
        p++;
    }
    const char *start = p;
    while (isdigit((unsigned char)*p)) {
        p++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
        }
    }
    if (p == start || (p - start == 1 && *start == '.')) {
        return false;
    }
    double v = 0, scale = 0;
    for (const char *q = start; q < p; q++) {
        if (*q == '.') {
            scale = 1;
            continue;
        }
        v = v * 10 + (*q - '0');
        if (scale > 0) {
            scale *= 10;
        }
    }
    if (scale > 0) {
        v /= scale;
    }
    while (isspace((unsigned char)*p)) {
        p++;
    }
    *num = v;
    *unit = p;
    return true;
}

struct unit {
    const char *name;
    double factor;
};

static bool apply_unit(const char *s, const struct unit *units, uint64_t *out)
{
    double v;
    const char *unit;
    if (!split_number(s, &v, &unit)) {
        return false;
    }
    size_t ulen = strlen(unit);
    while (ulen > 0 && isspace((unsigned char)unit[ulen - 1])) {
        ulen--;
    }
    for (const struct unit *u = units; u->name != NULL; u++) {
        if (strlen(u->name) == ulen && strncmp(u->name, unit, ulen) == 0) {
            double r = v * u->factor;
            if (r > 9.0e18) {
                return false;
            }
            *out = (uint64_t)(r + 0.5);
            return true;
        }
    }
    return false;
}

bool sy_parse_size(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1},
        {"B", 1},
        {"k", 1e3},
        {"K", 1e3},
        {"kB", 1e3},
        {"KB", 1e3},
        {"KiB", 1024.0},
        {"M", 1e6},
        {"MB", 1e6},
        {"MiB", 1048576.0},
        {"G", 1e9},
        {"GB", 1e9},
        {"GiB", 1073741824.0},
        {NULL, 0},
    };
    return apply_unit(s, units, out);
}

bool sy_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct unit units[] = {
        {"", 1000},     {"ms", 1},       {"s", 1000},      {"m", 60000},
        {"h", 3600000}, {"d", 86400000}, {"w", 604800000}, {NULL, 0},
    };
    return apply_unit(s, units, out);
}

bool sy_header_value_ok(const char *s)
{
    size_t n = 0;
    while (s[n] != '\0' && (unsigned char)s[n] > 0x20 && (unsigned char)s[n] < 0x7f) {
        n++;
    }
    return n > 0 && n <= SY_HEADER_VALUE_MAX && s[n] == '\0';
}

/* 'n' decimal digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

bool sy_parse_time_ms(const char *s, int64_t now_ms, int64_t *out)
{
    uint64_t ago;
    if (s[0] >= '0' && s[0] <= '9' && strlen(s) < 10 && sy_parse_duration_ms(s, &ago)) {
        *out = now_ms - (int64_t)ago;
        return true;
    }
    int y, mo, d, h = 0, mi = 0, sec = 0, oh = 0, om = 0, sign = 0;
    if (!digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) || s[7] != '-' ||
        !digits(s + 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31) {
        return false;
    }
    const char *p = s + 10;
    if (*p == 'T' || *p == ' ') {
        if (!digits(p + 1, 2, &h) || p[3] != ':' || !digits(p + 4, 2, &mi) || h > 23 || mi > 59) {
            return false;
        }
        p += 6;
        if (*p == ':') {
            if (!digits(p + 1, 2, &sec) || sec > 60) {
                return false;
            }
            p += 3;
        }
        if (*p == 'Z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '+' ? 1 : -1;
            if (!digits(p + 1, 2, &oh) || p[3] != ':' || !digits(p + 4, 2, &om) || oh > 23 ||
                om > 59) {
                return false;
            }
            p += 6;
        }
    }
    if (*p != '\0') {
        return false;
    }
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
                   sign * (oh * 3600 + om * 60);
    *out = secs * 1000;
    return true;
}
