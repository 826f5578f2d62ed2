#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "http/conn_table.h"

struct slot {
    struct sy_addr addr;
    int count; /* 0 = free */
};

struct sy_conn_table {
    pthread_mutex_t mu;
    struct slot *slots;
    size_t mask;  /* capacity - 1, a power of two */
    uint64_t key; /* a random key, so nobody can choose addresses that collide */
};

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

static size_t home(const struct sy_conn_table *t, const struct sy_addr *a)
{
    uint64_t w[2];
    memcpy(w, a->b, sizeof(w));
    uint64_t h = mix(t->key ^ (uint64_t)a->family);
    h = mix(h ^ w[0]);
    h = mix(h ^ w[1]);
    return (size_t)h & t->mask;
}

static bool same(const struct sy_addr *x, const struct sy_addr *y)
{
    return x->family == y->family && memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

struct sy_conn_table *sy_conn_table_new(size_t max_entries)
{
    struct sy_conn_table *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return NULL;
    }
    size_t cap = 16;
    while (cap < 2 * max_entries) {
        cap *= 2;
    }
    t->slots = calloc(cap, sizeof(*t->slots));
    if (t->slots == NULL || RAND_bytes((unsigned char *)&t->key, sizeof(t->key)) != 1) {
        free(t->slots);
        free(t);
        return NULL;
    }
    t->mask = cap - 1;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void sy_conn_table_free(struct sy_conn_table *t)
{
    if (t != NULL) {
        pthread_mutex_destroy(&t->mu);
        free(t->slots);
        free(t);
    }
}

/* The slot holding 'a', or the free slot where it would go (linear probing). */
static size_t find(const struct sy_conn_table *t, const struct sy_addr *a)
{
    size_t i = home(t, a);
    while (t->slots[i].count != 0 && !same(&t->slots[i].addr, a)) {
        i = (i + 1) & t->mask;
    }
    return i;
}

bool sy_conn_table_enter(struct sy_conn_table *t, const struct sy_addr *a, int cap)
{
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, a);
    bool ok = t->slots[i].count < cap;
    if (ok) {
        t->slots[i].addr = *a;
        t->slots[i].count++;
    }
    pthread_mutex_unlock(&t->mu);
    return ok;
}

void sy_conn_table_leave(struct sy_conn_table *t, const struct sy_addr *a)
{
    pthread_mutex_lock(&t->mu);
    size_t i = find(t, a);
    if (t->slots[i].count > 0 && --t->slots[i].count == 0) {
        /* backward-shift deletion: later entries of the run move up, so no tombstones */
        size_t hole = i;
        for (size_t j = (i + 1) & t->mask; t->slots[j].count != 0; j = (j + 1) & t->mask) {
            size_t want = home(t, &t->slots[j].addr);
            /* j may fill the hole when its home is not in (hole, j] cyclically */
            bool between = hole <= j ? (want > hole && want <= j) : (want > hole || want <= j);
            if (!between) {
                t->slots[hole] = t->slots[j];
                t->slots[j].count = 0;
                hole = j;
            }
        }
    }
    pthread_mutex_unlock(&t->mu);
}

int sy_conn_table_count(struct sy_conn_table *t, const struct sy_addr *a)
{
    pthread_mutex_lock(&t->mu);
    int n = t->slots[find(t, a)].count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
