/* The stored events' ids by hash: open addressing, linear probing, 8-byte entries. */
#include <stdlib.h>

#include "core/hash.h"
#include "store/idmap.h"
#include "util/error.h"

#define FIRST_BITS 14 /* 16,384 slots: 128 KiB for a new store */
#define MAX_BITS 31   /* the home slot comes from a fragment's top bits */

struct sy_idmap {
    uint64_t *slot; /* 0 = empty; else fragment << 32 | low 32 bits of the sequence number */
    unsigned bits;
    size_t count;
};

uint64_t sy_id_hash(const char *id, size_t len)
{
    uint64_t h = sy_fnv1a(SY_FNV_OFFSET, id, len);
    /* FNV-1a's high bits move little with the last bytes: mix them all in */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The 31 bits of the hash an entry keeps (its lowest bit set: an entry is never 0). */
static uint32_t frag_of(uint64_t h)
{
    return (uint32_t)(h >> 32) | 1u;
}

static size_t home(const struct sy_idmap *m, uint32_t frag)
{
    return frag >> (32 - m->bits);
}

static size_t mask(const struct sy_idmap *m)
{
    return ((size_t)1 << m->bits) - 1;
}

static void put(struct sy_idmap *m, uint64_t entry)
{
    size_t i = home(m, (uint32_t)(entry >> 32));
    while (m->slot[i] != 0) {
        i = (i + 1) & mask(m);
    }
    m->slot[i] = entry;
}

struct sy_idmap *sy_idmap_new(void)
{
    struct sy_idmap *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->bits = FIRST_BITS;
    m->slot = calloc((size_t)1 << m->bits, sizeof(*m->slot));
    if (m->slot == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void sy_idmap_free(struct sy_idmap *m)
{
    if (m != NULL) {
        free(m->slot);
        free(m);
    }
}

static int grow(struct sy_idmap *m)
{
    if (m->bits >= MAX_BITS) {
        return SY_ENOMEM;
    }
    uint64_t *old = m->slot;
    size_t n = (size_t)1 << m->bits;
    uint64_t *slot = calloc(n * 2, sizeof(*slot));
    if (slot == NULL) {
        return SY_ENOMEM;
    }
    m->slot = slot;
    m->bits++;
    for (size_t i = 0; i < n; i++) {
        if (old[i] != 0) {
            put(m, old[i]);
        }
    }
    free(old);
    return SY_OK;
}

int sy_idmap_add(struct sy_idmap *m, uint64_t h, int64_t seq)
{
    if ((m->count + 1) * 4 > ((size_t)3 << m->bits) && grow(m) != SY_OK) {
        return SY_ENOMEM;
    }
    put(m, (uint64_t)frag_of(h) << 32 | (uint32_t)seq);
    m->count++;
    return SY_OK;
}

bool sy_idmap_remove(struct sy_idmap *m, uint64_t h, int64_t seq)
{
    uint64_t entry = (uint64_t)frag_of(h) << 32 | (uint32_t)seq;
    size_t i = home(m, frag_of(h));
    while (m->slot[i] != entry) {
        if (m->slot[i] == 0) {
            return false;
        }
        i = (i + 1) & mask(m);
    }
    /* close the gap: move back each later entry of the run that may not sit past it */
    m->slot[i] = 0;
    for (size_t j = (i + 1) & mask(m); m->slot[j] != 0; j = (j + 1) & mask(m)) {
        size_t k = home(m, (uint32_t)(m->slot[j] >> 32));
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->slot[i] = m->slot[j];
            m->slot[j] = 0;
            i = j;
        }
    }
    m->count--;
    return true;
}

size_t sy_idmap_count(const struct sy_idmap *m)
{
    return m->count;
}

size_t sy_idmap_bytes(const struct sy_idmap *m)
{
    return sizeof(*m) + (sizeof(*m->slot) << m->bits);
}

void sy_idmap_iter_init(const struct sy_idmap *m, uint64_t h, struct sy_idmap_iter *it)
{
    it->frag = frag_of(h);
    it->slot = home(m, it->frag);
    it->done = false;
}

bool sy_idmap_iter_next(const struct sy_idmap *m, struct sy_idmap_iter *it, int64_t max_seq,
                        int64_t *seq)
{
    while (!it->done) {
        uint64_t e = m->slot[it->slot];
        if (e == 0) {
            it->done = true;
            break;
        }
        it->slot = (it->slot + 1) & mask(m);
        if ((uint32_t)(e >> 32) == it->frag) {
            /* the one number at most max_seq with these low bits */
            int64_t s = (int64_t)(((uint64_t)max_seq & ~(uint64_t)0xffffffffu) | (uint32_t)e);
            if (s > max_seq) {
                s -= (int64_t)1 << 32;
            }
            if (s > 0) {
                *seq = s;
                return true;
            }
        }
    }
    return false;
}
