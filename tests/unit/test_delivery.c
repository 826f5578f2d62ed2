/*
 * Normalization: every file in ENVELOPE_DIR/valid is routable; every file in
 * ENVELOPE_DIR/quarantined is kept with the code and reason its .expect names;
 * every case in DELIVERY_DIR (a body, headers, a category and the envelope
 * wanted) normalizes as the case says.
 */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/sha.h>

#include "check.h"
#include "files.h"
#include "ingest/delivery.h"
#include "util/buf.h"

static const char *str(json_t *o, const char *key, size_t *len)
{
    json_t *v = json_object_get(o, key);
    if (len != NULL) {
        *len = json_is_string(v) ? json_string_length(v) : 0;
    }
    return json_string_value(v);
}

static void test_envelopes(const char *dir)
{
    char path[1024];
    char **names;
    snprintf(path, sizeof(path), "%s/valid", dir);
    size_t n = list_dir(path, ".json", &names);
    CHECK(n >= 10);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/valid/%s", dir, names[i]);
        char *body = read_all(path, &len);
        struct sy_delivery d = {.body = body, .body_len = len};
        struct sy_event_norm e;
        sy_delivery_normalize(&d, &e);
        if (e.quarantined) {
            fprintf(stderr, "%s: quarantined: %s\n", path, e.reason);
        }
        CHECK(!e.quarantined && e.type_len > 0 && e.id_len > 0);
        json_t *j = json_loadb(body, len, 0, NULL);
        const char *id = str(j, "id", NULL);
        CHECK(id == NULL ? strcmp(e.id_from, "hash") == 0 : strcmp(id, e.id) == 0);
        json_decref(j);
        free(body);
        free(names[i]);
    }
    free(names);

    snprintf(path, sizeof(path), "%s/quarantined", dir);
    n = list_dir(path, ".json", &names);
    CHECK(n >= 15);
    for (size_t i = 0; i < n; i++) {
        size_t len, elen;
        snprintf(path, sizeof(path), "%s/quarantined/%s", dir, names[i]);
        char *body = read_all(path, &len);
        snprintf(path + strlen(path) - 5, 8, ".expect");
        char *expect = read_all(path, &elen);
        CHECK(body != NULL && expect != NULL);
        if (body == NULL || expect == NULL) {
            free(body);
            free(expect);
            free(names[i]);
            continue;
        }
        char *want = strchr(expect, '\n');
        *want++ = '\0';
        want[strcspn(want, "\n")] = '\0';
        struct sy_delivery d = {.body = body, .body_len = len};
        struct sy_event_norm e;
        sy_delivery_normalize(&d, &e);
        CHECK(e.quarantined && e.id_len > 0);
        if (!e.quarantined || strcmp(e.code, expect) != 0 || strstr(e.reason, want) == NULL) {
            fprintf(stderr, "%s: got %s \"%s\", want %s containing \"%s\"\n", names[i],
                    e.quarantined ? e.code : "routable", e.reason, expect, want);
            check_failures++;
        }
        free(body);
        free(expect);
        free(names[i]);
    }
    free(names);
}

static void test_forms(const char *dir)
{
    char path[1024];
    char **names;
    size_t n = list_dir(dir, ".json", &names);
    CHECK(n >= 8);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        json_error_t jerr;
        json_t *c = json_load_file(path, 0, &jerr);
        CHECK(c != NULL);
        if (c == NULL) {
            fprintf(stderr, "%s: %s\n", path, jerr.text);
            free(names[i]);
            continue;
        }
        json_t *h = json_object_get(c, "headers");
        struct sy_delivery d = {0};
        d.body = str(c, "body", &d.body_len);
        d.category = str(c, "category", &d.category_len);
        d.event_type = str(h, "x-unizo-event-type", &d.event_type_len);
        d.delivery_id = str(h, "x-unizo-delivery-id", &d.delivery_id_len);
        d.timestamp = str(h, "x-unizo-timestamp", &d.timestamp_len);
        struct sy_event_norm e;
        sy_delivery_normalize(&d, &e);
        const char *quarantined = str(c, "quarantined", NULL);
        CHECK_STR(e.id_from, str(c, "id_from", NULL));
        if (quarantined != NULL) {
            CHECK(e.quarantined && strstr(e.reason, quarantined) != NULL);
            CHECK(e.quarantined && strcmp(e.code, str(c, "code", NULL)) == 0);
            if (!e.quarantined || strstr(e.reason, quarantined) == NULL) {
                fprintf(stderr, "%s: reason \"%s\"\n", names[i], e.reason);
            }
        } else {
            CHECK(!e.quarantined);
            if (e.quarantined) {
                fprintf(stderr, "%s: quarantined: %s\n", names[i], e.reason);
            }
            struct sy_buf b;
            sy_buf_init(&b, 0);
            sy_event_norm_json(&e, &b);
            json_t *got = json_loadb(b.data, b.len, 0, NULL);
            json_t *want = json_deep_copy(json_object_get(c, "want"));
            if (strcmp(str(want, "id", NULL), "sha256:") == 0) {
                /* the first 128 bits of the SHA-256 of the raw body, in hex */
                unsigned char md[SHA256_DIGEST_LENGTH];
                SHA256((const unsigned char *)d.body, d.body_len, md);
                char hex[80] = "sha256:";
                for (size_t k = 0; k < 16; k++) {
                    snprintf(hex + 7 + 2 * k, 3, "%02x", md[k]);
                }
                json_object_set_new(want, "id", json_string(hex));
            }
            CHECK(got != NULL && json_equal(got, want));
            if (got == NULL || !json_equal(got, want)) {
                fprintf(stderr, "%s: got %s\n", names[i], b.data);
            }
            json_decref(got);
            json_decref(want);
            sy_buf_dispose(&b);
        }
        json_decref(c);
        free(names[i]);
    }
    free(names);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_delivery ENVELOPE_DIR DELIVERY_DIR\n");
        return 2;
    }
    test_envelopes(argv[1]);
    test_forms(argv[2]);
    /* categories and types */
    CHECK(sy_category_valid("identity", 8) && sy_category_valid("scm-2_x", 7));
    CHECK(!sy_category_valid("", 0) && !sy_category_valid("Identity", 8));
    CHECK(!sy_category_valid("a/b", 3) && !sy_category_valid("a.b", 3));
    CHECK(sy_event_type_valid("ticket:created", 14) && !sy_event_type_valid("a b", 3));
    CHECK_DONE();
}
