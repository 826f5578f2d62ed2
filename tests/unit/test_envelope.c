#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "files.h"
#include "ingest/envelope.h"

/* Every file in valid/ parses; every file in invalid/ fails with the code and detail in its
 * .expect. */
int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_envelope DATA_DIR\n");
        return 2;
    }
    char path[1024];
    char **names;
    snprintf(path, sizeof(path), "%s/valid", argv[1]);
    size_t n = list_dir(path, ".json", &names);
    CHECK(n >= 5);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        snprintf(path, sizeof(path), "%s/valid/%s", argv[1], names[i]);
        char *body = read_all(path, &len);
        struct sy_envelope env;
        const char *code = NULL;
        char detail[256] = "";
        int rc = sy_envelope_parse(body, len, &env, &code, detail, sizeof(detail));
        if (rc != 0) {
            fprintf(stderr, "%s: rejected: %s: %s\n", path, code, detail);
        }
        CHECK(rc == 0);
        if (rc == 0) {
            CHECK(env.id_len > 0 && strlen(env.id) == env.id_len);
            CHECK(env.type_len > 0);
            CHECK(env.integration_type[0] != '\0');
        }
        free(body);
        free(names[i]);
    }
    free(names);

    snprintf(path, sizeof(path), "%s/invalid", argv[1]);
    n = list_dir(path, ".json", &names);
    CHECK(n >= 20);
    for (size_t i = 0; i < n; i++) {
        size_t len, elen;
        snprintf(path, sizeof(path), "%s/invalid/%s", argv[1], names[i]);
        char *body = read_all(path, &len);
        snprintf(path + strlen(path) - 5, 8, ".expect");
        char *expect = read_all(path, &elen);
        CHECK(expect != NULL);
        if (body == NULL || expect == NULL) {
            free(body);
            free(expect);
            free(names[i]);
            continue;
        }
        char *want_detail = strchr(expect, '\n');
        *want_detail++ = '\0';
        want_detail[strcspn(want_detail, "\n")] = '\0';
        struct sy_envelope env;
        const char *code = NULL;
        char detail[256] = "";
        int rc = sy_envelope_parse(body, len, &env, &code, detail, sizeof(detail));
        CHECK(rc == -1);
        if (rc == -1 && (strcmp(code, expect) != 0 || strstr(detail, want_detail) == NULL)) {
            fprintf(stderr, "%s: got %s \"%s\", want %s containing \"%s\"\n", names[i], code,
                    detail, expect, want_detail);
            check_failures++;
        }
        free(body);
        free(expect);
        free(names[i]);
    }
    free(names);
    CHECK_DONE();
}
