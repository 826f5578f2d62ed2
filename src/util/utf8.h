#ifndef SY_UTF8_H
#define SY_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * The length (1-4) of the valid UTF-8 sequence at s (at most len bytes, len > 0), with its
 * code point in *cp; 0 when the bytes there are not one (overlong, a surrogate, past
 * U+10FFFF, cut short, a stray continuation byte). Pure; any thread.
 */
size_t sy_utf8_seq(const unsigned char *s, size_t len, uint32_t *cp);

#endif
