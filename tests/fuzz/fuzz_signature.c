/* Signature header parsing and verification, and the timestamp check, on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct sy_verifier *v;
    if (v == NULL) {
        const char *secrets[] = {"fuzz-secret", "another"};
        v = sy_verifier_new(secrets, 2);
    }
    /* input: timestamp \n signature header \n body */
    const char *p = (const char *)data, *end = p + size;
    const char *nl1 = memchr(p, '\n', size);
    const char *ts = p, *sig, *body;
    size_t tslen, siglen, blen;
    if (nl1 == NULL) {
        tslen = size, sig = end, siglen = 0, body = end, blen = 0;
    } else {
        tslen = (size_t)(nl1 - p);
        sig = nl1 + 1;
        const char *nl2 = memchr(sig, '\n', (size_t)(end - sig));
        siglen = nl2 ? (size_t)(nl2 - sig) : (size_t)(end - sig);
        body = nl2 ? nl2 + 1 : end;
        blen = (size_t)(end - body);
    }
    sy_timestamp_check(ts, tslen, 1700000000, 300);
    struct sy_sig_candidates c;
    if (sy_signature_parse(sig, siglen, &c) > 0) {
        sy_verifier_check(v, ts, tslen, body, blen, &c);
    }
    return 0;
}
