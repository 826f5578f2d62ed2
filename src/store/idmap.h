#ifndef SY_STORE_IDMAP_H
#define SY_STORE_IDMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The ids of the events a SQLite store holds, in memory, by hash: how its
 * writer tells a new delivery from a duplicate without a b-tree index on
 * ids (random ids put every insert on a page of its own: a WAL frame per
 * event and a page per event for the checkpoint, docs/PERFORMANCE.md).
 *
 * Each entry is 8 bytes: 31 bits of the id's hash and the low 32 bits of
 * the event's sequence number. A lookup yields the sequence numbers whose
 * entries match the hash; the caller reads those events' ids to be sure
 * (a match is a duplicate, or one chance in 2^31 per stored event of two
 * ids sharing those bits). Sequence numbers are rebuilt from their low bits
 * and the highest one given out, so the events in the map must span fewer
 * than 2^32 numbers.
 *
 * Not thread-safe: the owner guards it (store/sqlite_int.h says how).
 */
struct sy_idmap;

/* The 64-bit hash of an id: FNV-1a, then a 64-bit finalizer (murmur3's). Pure; any thread. */
uint64_t sy_id_hash(const char *id, size_t len);

/* A new empty map, or NULL without memory. */
struct sy_idmap *sy_idmap_new(void);
void sy_idmap_free(struct sy_idmap *m); /* NULL is a no-op */

/* Add (h, seq); the map doubles when three quarters full. SY_OK or SY_ENOMEM (nothing added). */
int sy_idmap_add(struct sy_idmap *m, uint64_t h, int64_t seq);

/* Remove the entry (h, seq); false when there is none. */
bool sy_idmap_remove(struct sy_idmap *m, uint64_t h, int64_t seq);

/* Entries stored, and bytes of memory they take. */
size_t sy_idmap_count(const struct sy_idmap *m);
size_t sy_idmap_bytes(const struct sy_idmap *m);

/*
 * The sequence numbers whose entries match 'h': start with
 * sy_idmap_iter_init, then call sy_idmap_iter_next until it returns false.
 * 'max_seq' is the highest sequence number ever added. The map must not
 * change in between.
 */
struct sy_idmap_iter {
    size_t slot;
    uint32_t frag;
    bool done;
};
void sy_idmap_iter_init(const struct sy_idmap *m, uint64_t h, struct sy_idmap_iter *it);
bool sy_idmap_iter_next(const struct sy_idmap *m, struct sy_idmap_iter *it, int64_t max_seq,
                        int64_t *seq);

#endif
