#ifndef SY_UNIZO_REQUEST_H
#define SY_UNIZO_REQUEST_H

#include <stdbool.h>
#include <stddef.h>

#include "unizo/client.h"

/* Longest path and query a request may carry. */
#define SY_UNIZO_PATH_MAX 4096
#define SY_UNIZO_QUERY_MAX 8192

/*
 * Check a request before anything is sent: what a rule or plugin builds from
 * event data must not change the request beyond what it says. Refused: a
 * method other than GET, POST, PUT, PATCH, DELETE; a path that does not start
 * with '/', holds a byte outside RFC 3986's path characters (CR, LF, space,
 * '?', '#', '\', non-ASCII, a '%' not followed by two hex digits) or a "."
 * or ".." segment, plain or percent-encoded (curl and servers resolve those
 * to another resource); a query with such bytes; an integration or
 * Idempotency-Key that is not 1 to 512 visible ASCII
 * characters (a header value must not end the header). Returns SY_OK, or
 * SY_EINVAL with the reason in 'err'. Pure; allocates nothing; any thread.
 */
int sy_unizo_request_check(const struct sy_unizo_request *req, char *err, size_t errlen);

#endif
