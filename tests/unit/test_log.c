/* Log lines: whatever a message, a field name or a value holds, one call is one trustworthy line.
 */
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "check.h"
#include "lua/sandbox.h"
#include "snippet.h"
#include "util/log.h"

/* Run one sy_log call with stderr sent to a file; returns what it wrote (malloc'd). */
static char *logged(bool json, const char *msg, const char *key, const char *val)
{
    char path[] = "/tmp/sy-test-log-XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    sy_log_configure(SY_LOG_DEBUG, json);
    sy_log(SY_LOG_INFO, msg, key, val, NULL);
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    if (pread(fd, out, (size_t)len, 0) != len) {
        out[0] = '\0';
    }
    close(fd);
    unlink(path);
    return out;
}

/* One line, ended by its only newline, holding no control byte and no U+0085/2028/2029. */
static bool one_clean_line(const char *line)
{
    size_t len = strlen(line);
    if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1) != NULL) {
        return false;
    }
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return strstr(line, "\xe2\x80\xa8") == NULL && strstr(line, "\xe2\x80\xa9") == NULL &&
           strstr(line, "\xc2\x85") == NULL;
}

static const char *const hostile[] = {
    "plain",
    "two\nlines",
    "cr\rreturn",
    "forged\n2026-12-01T00:00:00.000Z error  admin login ok",
    "tab\tand\x7f del",
    "unicode\xe2\x80\xa8line\xe2\x80\xa9para\xc2\x85nel",
    "bad \xff byte, overlong \xc0\x80, cut \xe2\x82, surrogate \xed\xa0\x80",
    "quote \" backslash \\ equals = done",
    "",
};
#define N_HOSTILE (sizeof(hostile) / sizeof(hostile[0]))

static void text_format(void)
{
    for (size_t i = 0; i < N_HOSTILE; i++) {
        for (size_t j = 0; j < N_HOSTILE; j++) {
            const char *key = hostile[j][0] ? hostile[j] : "k";
            char *line = logged(false, hostile[i], key, hostile[(i + j) % N_HOSTILE]);
            CHECK(one_clean_line(line));
            if (!one_clean_line(line)) {
                fprintf(stderr, "  text line: %s", line);
            }
            free(line);
        }
    }
    /* a key that is not a plain name cannot pass for two fields */
    char *line = logged(false, "m", "a b=c", "v");
    CHECK(strstr(line, " \"a b=c\"=v") != NULL);
    free(line);
    line = logged(false, "m", "title", "x level=error");
    CHECK(strstr(line, " title=\"x level=error\"") != NULL);
    free(line);
    line = logged(false, "m", "path", "a=b");
    CHECK(strstr(line, " path=\"a=b\"") != NULL);
    free(line);
}

/* Valid UTF-8 round-trips through the JSON line exactly; invalid bytes come back as U+00XX. */
static void json_format(void)
{
    for (size_t i = 0; i < N_HOSTILE; i++) {
        for (size_t j = 0; j < N_HOSTILE; j++) {
            const char *key = hostile[j][0] ? hostile[j] : "k";
            const char *val = hostile[(i + j) % N_HOSTILE];
            char *line = logged(true, hostile[i], key, val);
            CHECK(one_clean_line(line));
            json_error_t e;
            json_t *o = json_loads(line, 0, &e);
            CHECK(o != NULL);
            if (o == NULL) {
                fprintf(stderr, "  json line (%s): %s", e.text, line);
            } else if (i != 6 && j != 6 && (i + j) % N_HOSTILE != 6) {
                CHECK_STR(json_string_value(json_object_get(o, "msg")), hostile[i]);
                CHECK_STR(json_string_value(json_object_get(o, key)), val);
            }
            json_decref(o);
            free(line);
        }
    }
    char *line = logged(true, "bad \xff", "k", "v");
    json_t *o = json_loads(line, 0, NULL);
    CHECK_STR(json_string_value(json_object_get(o, "msg")), "bad \xc3\xbf");
    json_decref(o);
    free(line);
}

/* A rule's log.info: up to 16 fields, each value cut at 8 KiB, tables as JSON. */
static void rule_fields(void)
{
    struct sy_lua_limits lim = {.instructions = 1000000, .memory = 8u << 20};
    struct sy_lua *lx = sy_lua_new(&lim, NULL);
    char path[] = "/tmp/sy-test-rulelog-XXXXXX", err[512];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    sy_log_configure(SY_LOG_DEBUG, true);
    enum sy_lua_result r = run_snippet(lx,
                                       "local f = {} for i = 1, 20 do f['k' .. i] = i end "
                                       "log.info('many', f) "
                                       "log.info('sizes', { big = string.rep('x', 20000), "
                                       "t = { a = { 1, 2 } } })",
                                       err, sizeof(err));
    dup2(saved, STDERR_FILENO);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    CHECK(pread(fd, out, (size_t)len, 0) == len);
    close(fd);
    unlink(path);
    CHECK(r == SY_LUA_OK);
    char *second = strchr(out, '\n');
    CHECK(second != NULL);
    if (second == NULL) {
        free(out);
        sy_lua_free(lx);
        return;
    }
    *second++ = '\0';
    json_t *many = json_loads(out, 0, NULL), *sizes = json_loads(second, 0, NULL);
    /* ts, level, msg, rule, event, and 16 of the 20 fields */
    CHECK(many != NULL && json_object_size(many) == 5 + 16);
    CHECK(sizes != NULL && json_string_length(json_object_get(sizes, "big")) == 8192);
    CHECK_STR(json_string_value(json_object_get(sizes, "t")), "{\"a\":[1,2]}");
    json_decref(many);
    json_decref(sizes);
    free(out);
    sy_lua_free(lx);
}

int main(void)
{
    text_format();
    json_format();
    rule_fields();
    CHECK_DONE();
}
