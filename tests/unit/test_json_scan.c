#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "check.h"
#include "files.h"
#include "core/json_scan.h"

/* The scanner must accept exactly what jansson accepts (and agree on id and type). */
static int disagreements;

static bool path_name(const char *k)
{
    if (*k == '\0' || strlen(k) > 200) {
        return false;
    }
    for (; *k; k++) {
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              *k == '_' || *k == '-')) {
            return false;
        }
    }
    return true;
}

/* sy_json_lookup must find every value jansson has at a path, with the same content. */
static void compare_lookup(const char *text, size_t len, const char *path, json_t *want)
{
    struct sy_json_span got;
    check_count++;
    if (!sy_json_lookup(text, len, path, &got)) {
        if (disagreements++ < 10) {
            fprintf(stderr, "lookup %s: not found\n", path);
        }
        check_failures++;
        return;
    }
    json_t *mine = NULL;
    if (got.kind == SY_JSON_STRING) {
        char *buf = malloc(got.len + 1);
        long n = sy_json_unescape(&got, buf, got.len);
        mine = n >= 0 ? json_stringn(buf, (size_t)n) : NULL;
        free(buf);
    } else {
        mine = json_loadb(got.p, got.len, JSON_DECODE_ANY, NULL);
    }
    check_count++;
    if (mine == NULL || !json_equal(mine, want)) {
        if (disagreements++ < 10) {
            fprintf(stderr, "lookup %s: got %.*s\n", path, (int)(got.len > 80 ? 80 : got.len),
                    got.p);
        }
        check_failures++;
    }
    json_decref(mine);
}

/* Every path into 'v' (names usable in a key path, indexes below 4, depth below 6). */
static void walk_paths(const char *text, size_t len, json_t *v, char *path, size_t plen, int depth)
{
    if (depth >= 6 || plen > 900) {
        return;
    }
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach(v, k, child)
        {
            if (!path_name(k)) {
                continue;
            }
            int w = snprintf(path + plen, 1024 - plen, "%s%s", plen ? "." : "", k);
            compare_lookup(text, len, path, child);
            walk_paths(text, len, child, path, plen + (size_t)w, depth + 1);
            path[plen] = '\0';
        }
    } else if (json_is_array(v)) {
        for (size_t i = 0; i < json_array_size(v) && i < 4; i++) {
            int w = snprintf(path + plen, 1024 - plen, "%s%zu", plen ? "." : "", i);
            compare_lookup(text, len, path, json_array_get(v, i));
            walk_paths(text, len, json_array_get(v, i), path, plen + (size_t)w, depth + 1);
            path[plen] = '\0';
        }
    }
}

/* The scanner's span for obj.key says what jansson has there: present or not, and a string's bytes.
 */
static void same_member(json_t *obj, const char *key, const struct sy_json_span *span)
{
    json_t *v = obj != NULL ? json_object_get(obj, key) : NULL;
    CHECK((v != NULL) == (span->kind != SY_JSON_NONE));
    if (v == NULL) {
        return;
    }
    CHECK(json_is_string(v) == (span->kind == SY_JSON_STRING));
    CHECK(json_is_object(v) == (span->kind == SY_JSON_OBJECT));
    if (json_is_string(v) && span->kind == SY_JSON_STRING && json_string_length(v) < 4096) {
        char buf[4096];
        long n = sy_json_unescape(span, buf, sizeof(buf));
        CHECK(n == (long)json_string_length(v) &&
              memcmp(buf, json_string_value(v), (size_t)n) == 0);
    }
}

static void compare(const char *text, size_t len, const char *label)
{
    struct sy_json_envelope e;
    char err[200];
    bool mine = sy_json_scan_envelope(text, len, &e, err, sizeof(err));
    json_error_t jerr;
    json_t *j = json_loadb(text, len, 0, &jerr);
    /*
     * A raw NUL byte is never valid JSON, but jansson drops one that directly follows a number
     * or a literal ("[1\0]" loads): there the scanner is right to refuse.
     */
    bool valid = j != NULL && memchr(text, '\0', len) == NULL;
    check_count++;
    if (mine != valid) {
        if (disagreements++ < 10) {
            fprintf(stderr, "%s: scanner %s, jansson %s (%s / %s): %.*s\n", label,
                    mine ? "accepts" : "rejects", j ? "accepts" : "rejects", mine ? "" : err,
                    j ? "" : jerr.text, (int)(len > 120 ? 120 : len), text);
        }
        check_failures++;
    } else if (valid && json_is_object(j)) {
        /* the same id as jansson, escapes decoded */
        json_t *id = json_object_get(j, "id");
        char buf[4096];
        if (json_is_string(id) && json_string_length(id) < sizeof(buf)) {
            long n = sy_json_unescape(&e.id, buf, sizeof(buf));
            CHECK(e.id.kind == SY_JSON_STRING);
            CHECK(n == (long)json_string_length(id) &&
                  memcmp(buf, json_string_value(id), (size_t)n) == 0);
        } else {
            CHECK(e.id.kind != SY_JSON_STRING || json_string_length(id) >= sizeof(buf));
        }
        json_t *data = json_object_get(j, "data");
        CHECK((data != NULL) == (e.data.kind != SY_JSON_NONE));
        same_member(j, "type", &e.type);
        same_member(j, "event", &e.event);
        same_member(j, "timestamp", &e.timestamp);
        same_member(j, "integration", &e.integration);
        same_member(j, "source", &e.source);
        /* the nested members come from the object jansson keeps (the last one) */
        json_t *integration = json_object_get(j, "integration");
        json_t *source = json_object_get(j, "source");
        same_member(json_is_object(integration) ? integration : NULL, "id", &e.integration_id);
        same_member(json_is_object(integration) ? integration : NULL, "type", &e.integration_type);
        same_member(json_is_object(integration) ? integration : NULL, "name", &e.integration_name);
        same_member(json_is_object(source) ? source : NULL, "integration_id",
                    &e.source_integration_id);
        same_member(json_is_object(source) ? source : NULL, "type", &e.source_type);
        same_member(json_is_object(source) ? source : NULL, "name", &e.source_name);
        char path[1024] = "";
        walk_paths(text, len, j, path, 0, 0);
    }
    json_decref(j);
}

static void compare_str(const char *s)
{
    compare(s, strlen(s), "case");
}

/* A raw NUL anywhere is refused, even where jansson skips it (after a number or a literal). */
static void test_nul_bytes(void)
{
    static const char a[] = "{\"t\":17\0,\"d\":1}", b[] = "{\"t\":true\0}", c[] = "{\"t\":\"x\0\"}";
    const char *v[] = {a, b, c};
    size_t l[] = {sizeof(a) - 1, sizeof(b) - 1, sizeof(c) - 1};
    for (size_t i = 0; i < 3; i++) {
        struct sy_json_envelope e;
        char err[200];
        CHECK(!sy_json_scan_envelope(v[i], l[i], &e, err, sizeof(err)));
    }
}

static void test_cases(void)
{
    static const char *cases[] = {
        "{}",
        "[]",
        "{\"integration\":{\"id\":\"a\",\"type\":\"x\"},\"integration\":{\"name\":\"n\"}}",
        "{\"integration\":{\"type\":\"x\"},\"integration\":5}",
        "",
        " ",
        "{",
        "}",
        "[",
        "{\"a\"}",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "{\"a\":1 \"b\":2}",
        "{a:1}",
        "{'a':1}",
        "[01]",
        "[-0]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[1e+]",
        "[1E5]",
        "[1e-5]",
        "[0.0e0]",
        "[-0.5E+10]",
        "[9223372036854775807]",
        "[9223372036854775808]",
        "[-9223372036854775808]",
        "[-9223372036854775809]",
        "[123456789012345678]",
        "[1234567890123456789]",
        "[12345678901234567890]",
        "[1e308]",
        "[1e309]",
        "[-1e309]",
        "[1e-400]",
        "[1.7976931348623157e308]",
        "[1.8e308]",
        "[100000000000000000000000000000000000000000.5]",
        "[true]",
        "[false]",
        "[null]",
        "[tru]",
        "[nul]",
        "[True]",
        "[nulll]",
        "[truex]",
        "[\"\\u0041\"]",
        "[\"\\u0000\"]",
        "[\"\\ud83d\\ude00\"]",
        "[\"\\ud83d\"]",
        "[\"\\ude00\"]",
        "[\"\\ud83d\\u0041\"]",
        "[\"\\ud83dx\"]",
        "[\"\\uzzzz\"]",
        "[\"\\u12\"]",
        "[\"\\x\"]",
        "[\"\\/\\b\\f\\n\\r\\t\\\"\\\\\"]",
        "[\"a\tb\"]",
        "[\"a\nb\"]",
        "[\"\x7f\"]",
        "[\"\xc3\xa9\"]",
        "[\"\xc3\"]",
        "[\"\xc0\x80\"]",
        "[\"\xe0\x80\x80\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xf0\x9f\x98\x80\"]",
        "[\"\xf5\x80\x80\x80\"]",
        "[\"\xff\"]",
        "[\"\xef\xbb\xbf\"]",
        "\xef\xbb\xbf{}",
        "{} ",
        " {} \n",
        "{} x",
        "{}{}",
        "[] []",
        "1",
        "\"s\"",
        "null",
        "[1] ",
        "[\"unterminated",
        "{\"a\":[1,{\"b\":null}]}",
        "{\"id\":\"x\",\"id\":\"y\"}",
        "{\"integration\":{\"type\":\"a\"},\"integration\":5}",
        "\x80",
        "[\x80]",
        "{\"a\":\"\xe2\x82\xac\"}",
        "[ 1 , 2 ]",
        "[\r\n\t1]",
        "[\f1]",
        "[\v1]",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        compare_str(cases[i]);
    }
    compare("[\"a\0b\"]", 6, "embedded NUL");
    compare("{\"a\":1}\0", 8, "trailing NUL");

    /* depth: jansson allows 2048 levels */
    for (int depth = 2046; depth <= 2050; depth++) {
        char *s = malloc((size_t)depth * 2 + 1);
        memset(s, '[', (size_t)depth);
        memset(s + depth, ']', (size_t)depth);
        compare(s, (size_t)depth * 2, "depth");
        free(s);
    }
}

static void test_files(const char *dir)
{
    const char *subs[] = {"valid", "quarantined"};
    for (int k = 0; k < 2; k++) {
        char path[1024];
        char **names;
        snprintf(path, sizeof(path), "%s/%s", dir, subs[k]);
        size_t n = list_dir(path, ".json", &names);
        for (size_t i = 0; i < n; i++) {
            snprintf(path, sizeof(path), "%s/%s/%s", dir, subs[k], names[i]);
            size_t len;
            char *body = read_all(path, &len);
            if (body) {
                compare(body, len, names[i]);
            }
            free(body);
            free(names[i]);
        }
        free(names);
    }
}

/* Random edits of a valid event: flips, inserts of JSON-significant bytes, cuts. */
static void mutate(const char *orig, size_t len, const char *label, unsigned *seed)
{
    static const char specials[] = "{}[]\",:\\u0123456789eE+-.tfn \n\t\x80\xc3\xff\x00";
    compare(orig, len, label);
    char *buf = malloc(len + 16);
    for (int iter = 0; iter < 2000; iter++) {
        memcpy(buf, orig, len);
        size_t blen = len;
        int edits = 1 + (int)(rand_r(seed) % 3);
        for (int e = 0; e < edits && blen > 1; e++) {
            size_t at = (size_t)rand_r(seed) % blen;
            char c = specials[(size_t)rand_r(seed) % (sizeof(specials) - 1)];
            switch (rand_r(seed) % 4) {
            case 0:
                buf[at] = c;
                break;
            case 1:
                buf[at] ^= (char)(1 << (rand_r(seed) % 8));
                break;
            case 2:
                memmove(buf + at + 1, buf + at, blen - at);
                buf[at] = c;
                blen++;
                break;
            default:
                memmove(buf + at, buf + at + 1, blen - at - 1);
                blen--;
            }
        }
        compare(buf, blen, label);
    }
    free(buf);
}

/* The other delivery forms' bodies: event/source envelopes, repeated keys, both spellings. */
static const char *const form_bodies[] = {
    "{\"event\":\"ticket:created\",\"timestamp\":\"2025-03-01T09:00:00Z\",\"source\":{\"type\":"
    "\"jira\",\"integration_id\":\"int_9\",\"name\":\"J\\u00e9\"},\"data\":{\"ticket\":{\"id\":"
    "\"ENG-77\"}}}",
    "{\"id\":\"e1\",\"type\":\"user:created\",\"event\":\"x:y\",\"integration\":{\"id\":\"a\","
    "\"type\":\"okta\",\"name\":\"Okta\"},\"source\":{\"type\":\"github\"},\"data\":{}}",
    "{\"source\":{\"type\":\"a\",\"integration_id\":\"1\"},\"source\":{\"name\":\"b\"},"
    "\"event\":\"a\",\"event\":\"scm:branch:deleted\",\"timestamp\":1735689600,\"data\":[1]}",
};

static void test_mutations(const char *events_dir)
{
    char **names;
    size_t n = list_dir(events_dir, ".json", &names);
    CHECK(n > 0);
    unsigned seed = 12345;
    for (size_t f = 0; f < n; f++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", events_dir, names[f]);
        size_t len;
        char *orig = read_all(path, &len);
        mutate(orig, len, names[f], &seed);
        free(orig);
        free(names[f]);
    }
    free(names);
    for (size_t i = 0; i < sizeof(form_bodies) / sizeof(form_bodies[0]); i++) {
        mutate(form_bodies[i], strlen(form_bodies[i]), "form body", &seed);
    }
}

static bool found(const char *text, const char *path, const char *want)
{
    struct sy_json_span s;
    if (!sy_json_lookup(text, strlen(text), path, &s)) {
        return want == NULL;
    }
    return want != NULL && s.len == strlen(want) && memcmp(s.p, want, s.len) == 0;
}

static void test_lookup_cases(void)
{
    const char *doc =
        "{\"id\":\"e1\", \"data\": {\"url\": \"https://x/1\", \"n\": 42, \"ok\": true,"
        " \"none\": null, \"tricky\": \"a}b]c,d\\\"e\", \"list\": [ {\"login\": \"ann\"},"
        " [1, 2], \"s\" ], \"obj\": {\"a\": {\"b\": 1.5e3}}, \"esc\\u0061ped\": 7,"
        " \"dup\": 1, \"dup\": 2, \"a.b\": 9}}";
    CHECK(found(doc, "id", "e1"));
    CHECK(found(doc, "data.url", "https://x/1"));
    CHECK(found(doc, "data.n", "42"));
    CHECK(found(doc, "data.ok", "true"));
    CHECK(found(doc, "data.none", "null"));
    CHECK(found(doc, "data.tricky", "a}b]c,d\\\"e")); /* still escaped */
    CHECK(found(doc, "data.list.0.login", "ann"));
    CHECK(found(doc, "data.list.1.1", "2"));
    CHECK(found(doc, "data.list.2", "s"));
    CHECK(found(doc, "data.list.1", "[1, 2]"));
    CHECK(found(doc, "data.obj.a.b", "1.5e3"));
    CHECK(found(doc, "data.escaped", "7")); /* member names are compared decoded */
    CHECK(found(doc, "data.dup", "2"));     /* the last one, as jansson keeps */
    CHECK(found(doc, "data.list.3", NULL));
    CHECK(found(doc, "data.missing", NULL));
    CHECK(found(doc, "data.url.more", NULL)); /* a string has no members */
    CHECK(found(doc, "data.list.x", NULL));   /* an array has no names */
    CHECK(found(doc, "data.obj.0", NULL));    /* an object has no indexes */
    CHECK(found(doc, "data..url", NULL));
    CHECK(found(doc, "", NULL));
    CHECK(found(doc, "data.a", NULL)); /* "a.b" is one name; paths cannot reach it */
    CHECK(found("[10, 20]", "1", "20"));
    CHECK(found("{}", "a", NULL));
    /* text that was never validated: no crash, no read past the end */
    const char *bad[] = {"{\"a\":",           "{\"a\"",     "{\"a\":[1,", "{\"a\":\"x",
                         "{\"a\": {\"b\": [", "{\"a\":1,}", "{\"a\" 1}",  "{\"a\":\x01\x02}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sy_json_span sp;
        (void)sy_json_lookup(bad[i], strlen(bad[i]), "a.b", &sp);
        (void)sy_json_lookup(bad[i], strlen(bad[i]), "a", &sp);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_json_scan ENVELOPE_DATA_DIR EVENTS_DIR\n");
        return 2;
    }
    test_cases();
    test_nul_bytes();
    test_lookup_cases();
    test_files(argv[1]);
    test_mutations(argv[2]);
    CHECK_DONE();
}
