#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "ingest/verify.h"
#include "util/parse.h"

enum sy_ts_result sy_timestamp_check(const char *hdr, size_t len, int64_t now, int64_t tolerance)
{
    if (hdr == NULL || len == 0) {
        return SY_TS_MISSING;
    }
    int64_t ts;
    if (len > 20 || !sy_parse_int64(hdr, len, &ts)) {
        return len > 20 && hdr[0] >= '0' && hdr[0] <= '9' ? SY_TS_STALE : SY_TS_INVALID;
    }
    /* compare without overflow: both are within int64 and tolerance is small */
    if (ts < now - tolerance || ts > now + tolerance) {
        return SY_TS_STALE;
    }
    return SY_TS_OK;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static bool decode_token(const char *t, size_t len, unsigned char mac[32])
{
    if (len > 3 && strncasecmp(t, "v1=", 3) == 0) {
        t += 3;
        len -= 3;
    } else if (len > 7 && strncasecmp(t, "sha256=", 7) == 0) {
        t += 7;
        len -= 7;
    }
    if (len != 64) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(t[2 * i]), lo = hexval(t[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        mac[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

size_t sy_signature_parse(const char *hdr, size_t len, struct sy_sig_candidates *out)
{
    out->n = 0;
    if (hdr == NULL || len > SY_SIG_HEADER_MAX) {
        return 0;
    }
    size_t i = 0;
    while (i < len && out->n < SY_SIG_MAX_CANDIDATES) {
        while (i < len && (hdr[i] == ',' || isspace((unsigned char)hdr[i]))) {
            i++;
        }
        size_t start = i;
        while (i < len && hdr[i] != ',' && !isspace((unsigned char)hdr[i])) {
            i++;
        }
        if (i > start && decode_token(hdr + start, i - start, out->mac[out->n])) {
            out->n++;
        }
    }
    return out->n;
}

int sy_signature_hex(const char *secret, size_t secret_len, const char *ts, size_t ts_len,
                     const void *body, size_t body_len, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    unsigned char out[32];
    size_t outlen = 0;
    int rc = -1;
    if (ctx == NULL || !EVP_MAC_init(ctx, (const unsigned char *)secret, secret_len, params) ||
        !EVP_MAC_update(ctx, (const unsigned char *)ts, ts_len) ||
        !EVP_MAC_update(ctx, (const unsigned char *)".", 1) ||
        !EVP_MAC_update(ctx, body, body_len) || !EVP_MAC_final(ctx, out, &outlen, sizeof(out)) ||
        outlen != 32) {
        goto done;
    }
    for (size_t i = 0; i < 32; i++) {
        hex[2 * i] = digits[out[i] >> 4];
        hex[2 * i + 1] = digits[out[i] & 15];
    }
    hex[64] = '\0';
    rc = 0;
done:
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    return rc;
}

struct sy_verifier {
    EVP_MAC *mac;
    size_t n;
    EVP_MAC_CTX *ctx[];
};

struct sy_verifier *sy_verifier_new(const char *const *secrets, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    struct sy_verifier *v = calloc(1, sizeof(*v) + n * sizeof(v->ctx[0]));
    if (v == NULL) {
        return NULL;
    }
    v->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (v->mac == NULL) {
        goto fail;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    for (size_t i = 0; i < n; i++) {
        v->ctx[i] = EVP_MAC_CTX_new(v->mac);
        v->n = i + 1;
        if (v->ctx[i] == NULL || !EVP_MAC_init(v->ctx[i], (const unsigned char *)secrets[i],
                                               strlen(secrets[i]), params)) {
            goto fail;
        }
    }
    return v;
fail:
    sy_verifier_free(v);
    return NULL;
}

void sy_verifier_free(struct sy_verifier *v)
{
    if (v == NULL) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        EVP_MAC_CTX_free(v->ctx[i]);
    }
    EVP_MAC_free(v->mac);
    free(v);
}

bool sy_verifier_check(struct sy_verifier *v, const char *ts, size_t ts_len, const void *body,
                       size_t body_len, const struct sy_sig_candidates *c)
{
    bool ok = false;
    for (size_t i = 0; i < v->n && !ok; i++) {
        unsigned char out[32];
        size_t outlen = 0;
        /* a NULL key re-initialises the context with the key it already holds */
        if (!EVP_MAC_init(v->ctx[i], NULL, 0, NULL) ||
            (ts != NULL && !EVP_MAC_update(v->ctx[i], (const unsigned char *)ts, ts_len)) ||
            (ts != NULL && !EVP_MAC_update(v->ctx[i], (const unsigned char *)".", 1)) ||
            !EVP_MAC_update(v->ctx[i], body, body_len) ||
            !EVP_MAC_final(v->ctx[i], out, &outlen, sizeof(out)) || outlen != 32) {
            return false;
        }
        for (size_t j = 0; j < c->n; j++) {
            if (CRYPTO_memcmp(out, c->mac[j], 32) == 0) {
                ok = true;
            }
        }
    }
    return ok;
}
