#ifndef SY_CORE_FILE_H
#define SY_CORE_FILE_H

#include <stddef.h>
#include <stdio.h>

/*
 * Read the whole file 'path' into *data (new, NUL-terminated; *len bytes).
 * Returns SY_OK, SY_ENOTFOUND (cannot be opened), SY_EFULL (longer than
 * 'max' bytes), SY_EIO or SY_ENOMEM. Nothing is allocated on failure. Any
 * thread.
 */
int sy_file_read(const char *path, size_t max, char **data, size_t *len);

/* The same for an open stream (read to its end; not closed). */
int sy_file_read_stream(FILE *f, size_t max, char **data, size_t *len);

#endif
