/*
 * The SQLite store's in-memory id map (store/idmap.h), against a plain list
 * of what it should hold: adds, removes that close their gaps, growth,
 * hashes that share their bits, sequence numbers past 2^32.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/idmap.h"
#include "util/error.h"

/* Every sequence number the map yields for h, in a bitmap over [0, n). */
static size_t found(const struct sy_idmap *m, uint64_t h, int64_t max_seq, int64_t want)
{
    struct sy_idmap_iter it;
    sy_idmap_iter_init(m, h, &it);
    int64_t seq;
    size_t hits = 0;
    while (sy_idmap_iter_next(m, &it, max_seq, &seq)) {
        hits += seq == want;
    }
    return hits;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* The hash is pinned: tests and benchmarks that write a store's rows directly compute it too. */
static void pinned_hash(void)
{
    CHECK(sy_id_hash("evt_1", 5) == 0x74992874f784f5d6ull);
    CHECK(sy_id_hash("", 0) == 0xd725c98e9509182eull);
    const char *uuid = "6f1c2d1e-8a4b-4c3d-9e2f-0a1b2c3d4e5f";
    CHECK(sy_id_hash(uuid, strlen(uuid)) == 0x7438f5072b772aebull);
}

/* A random mix of adds and removes, checked entry by entry against the list after each round. */
static void against_a_list(void)
{
    enum { N = 60000 };
    uint64_t *h = malloc(N * sizeof(*h));
    bool *in = calloc(N, sizeof(*in));
    struct sy_idmap *m = sy_idmap_new();
    CHECK(m != NULL && h != NULL && in != NULL);
    for (size_t i = 0; i < N; i++) {
        /* a third share their top bits with another (one home slot, long runs); some share all */
        h[i] = i % 3 == 0 && i > 0 ? h[i - 1] ^ (rnd() & 0xffffffffu) : rnd();
        if (i % 97 == 0 && i > 0) {
            h[i] = h[i - 1];
        }
    }
    size_t expect = 0;
    bool ok = true;
    for (int round = 0; round < 6; round++) {
        for (size_t i = 0; i < N; i++) {
            bool want = (rnd() % 4) < (round % 2 == 0 ? 3u : 1u);
            if (want && !in[i]) {
                ok = ok && sy_idmap_add(m, h[i], (int64_t)i + 1) == SY_OK;
                in[i] = true;
                expect++;
            } else if (!want && in[i]) {
                ok = ok && sy_idmap_remove(m, h[i], (int64_t)i + 1);
                in[i] = false;
                expect--;
            }
        }
        for (size_t i = 0; i < N; i++) {
            ok = ok && found(m, h[i], N, (int64_t)i + 1) == (in[i] ? 1u : 0u);
        }
        ok = ok && sy_idmap_count(m) == expect;
    }
    CHECK(ok);
    CHECK(sy_idmap_bytes(m) >= sy_idmap_count(m) * 8 * 4 / 3); /* at most three quarters full */
    /* removing what is not there changes nothing */
    size_t before = sy_idmap_count(m);
    CHECK(!sy_idmap_remove(m, 0x1234, 999999));
    CHECK(sy_idmap_count(m) == before);
    sy_idmap_free(m);
    free(h);
    free(in);
}

/* Sequence numbers are rebuilt from their low 32 bits and the highest one given out. */
static void past_two_to_the_32(void)
{
    struct sy_idmap *m = sy_idmap_new();
    int64_t big = (int64_t)1 << 32;
    CHECK(sy_idmap_add(m, 111, big - 5) == SY_OK);
    CHECK(sy_idmap_add(m, 222, big + 3) == SY_OK);
    CHECK(sy_idmap_add(m, 333, 7) == SY_OK);
    CHECK(found(m, 111, big + 10, big - 5) == 1);
    CHECK(found(m, 222, big + 10, big + 3) == 1);
    CHECK(found(m, 333, 10, 7) == 1);
    /* low bits one past the highest's: the number 2^32 below */
    CHECK(sy_idmap_add(m, 444, 11) == SY_OK);
    CHECK(found(m, 444, big + 10, 11) == 1);
    CHECK(found(m, 444, big + 11, big + 11) == 1);
    sy_idmap_free(m);
    sy_idmap_free(NULL);
}

int main(void)
{
    pinned_hash();
    against_a_list();
    past_two_to_the_32();
    CHECK_DONE();
}
