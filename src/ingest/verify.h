#ifndef SY_VERIFY_H
#define SY_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Authenticity of a delivery: HMAC-SHA256 over "<timestamp>.<raw body>" and a
 * timestamp window. Pure functions except for sy_verifier, which is owned by
 * one thread.
 */

enum sy_ts_result {
    SY_TS_OK,
    SY_TS_MISSING, /* header absent or empty */
    SY_TS_INVALID, /* not a whole number of seconds */
    SY_TS_STALE,   /* outside now +/- tolerance */
};

/* Check the x-unizo-timestamp value 'hdr' (may be NULL) against 'now'. Both edges are inclusive. */
enum sy_ts_result sy_timestamp_check(const char *hdr, size_t len, int64_t now, int64_t tolerance);

#define SY_SIG_MAX_CANDIDATES 8
#define SY_SIG_HEADER_MAX 1024

struct sy_sig_candidates {
    unsigned char mac[SY_SIG_MAX_CANDIDATES][32];
    size_t n;
};

/*
 * Parse a signature header: values "HEX", "v1=HEX" or "sha256=HEX" (64 hex
 * digits, either case), several separated by ',' or whitespace. Malformed
 * values are skipped; at most SY_SIG_MAX_CANDIDATES are kept. Returns the
 * number of well-formed values (0 when none). A header over SY_SIG_HEADER_MAX
 * bytes yields 0.
 */
size_t sy_signature_parse(const char *hdr, size_t len, struct sy_sig_candidates *out);

/* Compute the lowercase hex signature of "<ts>.<body>" with 'secret'. Returns 0 or -1. */
int sy_signature_hex(const char *secret, size_t secret_len, const char *ts, size_t ts_len,
                     const void *body, size_t body_len, char hex[65]);

/* Per-thread verifier holding one keyed HMAC context per secret. */
struct sy_verifier;

/* Secrets are copied. Returns NULL on failure (no memory, no secrets, OpenSSL error). */
struct sy_verifier *sy_verifier_new(const char *const *secrets, size_t n);
void sy_verifier_free(struct sy_verifier *v);

/*
 * True when any candidate equals the HMAC of "<ts>.<body>" (or of the body
 * alone when 'ts' is NULL) under any secret. Comparisons are constant-time.
 * Only the thread that owns 'v' may call it.
 */
bool sy_verifier_check(struct sy_verifier *v, const char *ts, size_t ts_len, const void *body,
                       size_t body_len, const struct sy_sig_candidates *c);

#endif
