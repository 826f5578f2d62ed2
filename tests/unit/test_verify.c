#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ingest/verify.h"

static const char body[] = "{\"id\":\"evt_1\"}";
static const char ts[] = "1700000000";

static void test_timestamp(void)
{
    const int64_t now = 1700000000, tol = 300;
    CHECK(sy_timestamp_check("1700000000", 10, now, tol) == SY_TS_OK);
    CHECK(sy_timestamp_check("1699999700", 10, now, tol) == SY_TS_OK); /* exactly -tolerance */
    CHECK(sy_timestamp_check("1700000300", 10, now, tol) == SY_TS_OK); /* exactly +tolerance */
    CHECK(sy_timestamp_check("1699999699", 10, now, tol) == SY_TS_STALE);
    CHECK(sy_timestamp_check("1700000301", 10, now, tol) == SY_TS_STALE);
    CHECK(sy_timestamp_check(NULL, 0, now, tol) == SY_TS_MISSING);
    CHECK(sy_timestamp_check("", 0, now, tol) == SY_TS_MISSING);
    CHECK(sy_timestamp_check("-5", 2, now, tol) == SY_TS_STALE);
    CHECK(sy_timestamp_check("-9223372036854775808", 20, now, tol) == SY_TS_INVALID);
    CHECK(sy_timestamp_check("99999999999999999999999", 23, now, tol) == SY_TS_STALE);
    CHECK(sy_timestamp_check("9223372036854775807", 19, now, tol) == SY_TS_STALE);
    CHECK(sy_timestamp_check("abc", 3, now, tol) == SY_TS_INVALID);
    CHECK(sy_timestamp_check("1700000000.5", 12, now, tol) == SY_TS_INVALID);
    CHECK(sy_timestamp_check("1700000000ms", 12, now, tol) == SY_TS_INVALID);
    CHECK(sy_timestamp_check("-", 1, now, tol) == SY_TS_INVALID);
    /* milliseconds by mistake: far in the future */
    CHECK(sy_timestamp_check("1700000000000", 13, now, tol) == SY_TS_STALE);
}

static void upper(char *s)
{
    for (; *s; s++) {
        if (*s >= 'a' && *s <= 'f') {
            *s = (char)(*s - 32);
        }
    }
}

static bool verify_header(struct sy_verifier *v, const char *hdr)
{
    struct sy_sig_candidates c;
    sy_signature_parse(hdr, strlen(hdr), &c);
    return c.n > 0 && sy_verifier_check(v, ts, strlen(ts), body, strlen(body), &c);
}

static void test_signature(void)
{
    char hex[65], hdr[512];
    CHECK(sy_signature_hex("s3cret", 6, ts, strlen(ts), body, strlen(body), hex) == 0);
    CHECK(strlen(hex) == 64);
    /* known answer, computed independently: printf '1700000000.{"id":"evt_1"}' | openssl dgst
     * -sha256 -hmac s3cret */
    CHECK_STR(hex, "8e6f5c9e12ccd802130a0cf337c2d90395d59605481627c32bb6c530172adf23");

    const char *secrets[] = {"s3cret"};
    struct sy_verifier *v = sy_verifier_new(secrets, 1);
    CHECK(v != NULL);
    CHECK(verify_header(v, hex));
    snprintf(hdr, sizeof(hdr), "v1=%s", hex);
    CHECK(verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "sha256=%s", hex);
    CHECK(verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "V1=%s", hex);
    CHECK(verify_header(v, hdr));
    char up[65];
    memcpy(up, hex, 65);
    upper(up);
    CHECK(verify_header(v, up));
    snprintf(hdr, sizeof(hdr), "v1=%s", up);
    CHECK(verify_header(v, hdr));

    /* several values: sender-side rotation, with commas, spaces or both */
    char wrong[65];
    memcpy(wrong, hex, 65);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    snprintf(hdr, sizeof(hdr), "v1=%s,v1=%s", wrong, hex);
    CHECK(verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "v1=%s v1=%s", wrong, hex);
    CHECK(verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "  sha256=%s ,  %s  ", wrong, hex);
    CHECK(verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "garbage,v1=%s", hex);
    CHECK(verify_header(v, hdr));

    /* wrong ones */
    CHECK(!verify_header(v, wrong));
    snprintf(hdr, sizeof(hdr), "v1=%s", wrong);
    CHECK(!verify_header(v, hdr));
    /* wrong in one hex digit anywhere: the last, the middle, and every other position (a
     * check that compares only part of the MAC lets the rest through) */
    for (int i = 0; i < 64; i++) {
        char one[65];
        memcpy(one, hex, 65);
        one[i] = one[i] == '0' ? '1' : '0';
        if (verify_header(v, one)) {
            fprintf(stderr, "a signature wrong only in hex digit %d verified\n", i);
            CHECK(!"a signature wrong in one digit verified");
        }
    }
    memcpy(wrong, hex, 65);
    wrong[63] = wrong[63] == 'f' ? 'e' : 'f';
    CHECK(!verify_header(v, wrong)); /* the last digit */
    memcpy(wrong, hex, 65);
    wrong[32] = wrong[32] == 'f' ? 'e' : 'f';
    CHECK(!verify_header(v, wrong)); /* the middle */
    snprintf(hdr, sizeof(hdr), "v1=%s", wrong);
    CHECK(!verify_header(v, hdr));
    memcpy(wrong, hex, 65);
    wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
    snprintf(hdr, sizeof(hdr), "v1=%.63s", hex); /* one digit short */
    CHECK(!verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "v1=%s0", hex); /* one digit long */
    CHECK(!verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "v2=%s", hex); /* unknown scheme */
    CHECK(!verify_header(v, hdr));
    snprintf(hdr, sizeof(hdr), "v1=%.62szz", hex); /* not hex */
    CHECK(!verify_header(v, hdr));
    CHECK(!verify_header(v, ""));
    CHECK(!verify_header(v, "v1="));
    CHECK(!verify_header(v, ",,,  ,"));

    struct sy_sig_candidates c;
    CHECK(sy_signature_parse("", 0, &c) == 0);
    CHECK(sy_signature_parse(NULL, 0, &c) == 0);
    /* more values than the cap are ignored, not overflowed */
    char many[4096] = "";
    for (int i = 0; i < 20; i++) {
        size_t l = strlen(many);
        snprintf(many + l, sizeof(many) - l, "%s,", hex);
    }
    CHECK(sy_signature_parse(many, strlen(many), &c) == 0); /* over SY_SIG_HEADER_MAX */
    many[0] = '\0';
    for (int i = 0; i < 12; i++) {
        size_t l = strlen(many);
        snprintf(many + l, sizeof(many) - l, "v1=%s ", i < 11 ? wrong : hex);
    }
    CHECK(strlen(many) < SY_SIG_HEADER_MAX);
    CHECK(sy_signature_parse(many, strlen(many), &c) == SY_SIG_MAX_CANDIDATES);

    /* a signature over a different body or timestamp does not verify */
    CHECK(sy_signature_parse(hex, 64, &c) == 1);
    CHECK(!sy_verifier_check(v, "1700000001", 10, body, strlen(body), &c));
    CHECK(!sy_verifier_check(v, ts, strlen(ts), "{\"id\":\"evt_2\"}", 14, &c));
    /* re-serialised JSON (a space added) must not verify: raw bytes only */
    CHECK(!sy_verifier_check(v, ts, strlen(ts), "{\"id\": \"evt_1\"}", 15, &c));
    sy_verifier_free(v);

    /* secret rotation on the receiver: any configured secret may match */
    const char *rot[] = {"new-secret", "s3cret"};
    v = sy_verifier_new(rot, 2);
    CHECK(verify_header(v, hex));
    sy_verifier_free(v);
    const char *other[] = {"new-secret"};
    v = sy_verifier_new(other, 1);
    CHECK(!verify_header(v, hex));
    sy_verifier_free(v);
    CHECK(sy_verifier_new(NULL, 0) == NULL);
    sy_verifier_free(NULL);
}

int main(void)
{
    test_timestamp();
    test_signature();
    CHECK_DONE();
}
