/* The strict JSON scanner must agree with jansson, and normalization never crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ingest/delivery.h"
#include "core/json_scan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sy_json_envelope e;
    char err[200];
    bool ok = sy_json_scan_envelope((const char *)data, size, &e, err, sizeof(err));
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    /*
     * What the scanner accepts, jansson (which plugins read events with) must
     * accept too. jansson also takes some inputs with a NUL byte outside any
     * string; the scanner refusing those is right.
     */
    if ((ok && j == NULL) || (!ok && j != NULL && memchr(data, 0, size) == NULL)) {
        abort();
    }
    json_decref(j);
    /* normalization never fails to give an id, and quarantines what the scanner refuses */
    struct sy_delivery d = {.body = (const char *)data, .body_len = size};
    struct sy_event_norm n;
    sy_delivery_normalize(&d, &n);
    if (n.id_len == 0 || (!ok && !n.quarantined) || (!n.quarantined && n.type_len == 0)) {
        abort();
    }
    return 0;
}
