#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "store/sched.h"

struct sy_sched_key {
    char *key; /* NULL = empty slot */
    uint64_t hash;
    int64_t job;
};

static uint64_t hash_of(const char *s)
{
    return sy_fnv1a(SY_FNV_OFFSET, s, strlen(s));
}

void sy_sched_init(struct sy_sched *s)
{
    memset(s, 0, sizeof(*s));
}

void sy_sched_dispose(struct sy_sched *s)
{
    while (s->ready != NULL) {
        struct sy_job *next = s->ready->next;
        sy_job_free(s->ready);
        s->ready = next;
    }
    for (size_t i = 0; i < s->n_heap; i++) {
        sy_job_free(s->heap[i]);
    }
    free(s->heap);
    for (size_t i = 0; i < s->cap_keys; i++) {
        free(s->keys[i].key);
    }
    free(s->keys);
    memset(s, 0, sizeof(*s));
}

/* The slot of 'key', or of the empty slot where it would go. cap_keys > 0. */
static size_t slot_of(const struct sy_sched *s, const char *key, uint64_t h)
{
    size_t mask = s->cap_keys - 1;
    size_t i = (size_t)h & mask;
    while (s->keys[i].key != NULL && (s->keys[i].hash != h || strcmp(s->keys[i].key, key) != 0)) {
        i = (i + 1) & mask;
    }
    return i;
}

static bool grow(struct sy_sched *s)
{
    size_t cap = s->cap_keys ? s->cap_keys * 2 : 64;
    struct sy_sched_key *old = s->keys;
    size_t old_cap = s->cap_keys;
    s->keys = calloc(cap, sizeof(*s->keys));
    if (s->keys == NULL) {
        s->keys = old;
        return false;
    }
    s->cap_keys = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key != NULL) {
            s->keys[slot_of(s, old[i].key, old[i].hash)] = old[i];
        }
    }
    free(old);
    return true;
}

bool sy_sched_busy(const struct sy_sched *s, const char *key, int64_t job_id)
{
    if (key == NULL || s->n_keys == 0) {
        return false;
    }
    const struct sy_sched_key *k = &s->keys[slot_of(s, key, hash_of(key))];
    return k->key != NULL && k->job != job_id;
}

/*
 * Take 'key' for job_id. Returns 1 when taken now, 0 when job_id held it
 * already, -1 when another job holds it or memory runs out.
 */
static int hold(struct sy_sched *s, const char *key, int64_t job_id)
{
    if (key == NULL) {
        return 1;
    }
    if ((s->n_keys + 1) * 2 > s->cap_keys && !grow(s)) {
        return -1;
    }
    uint64_t h = hash_of(key);
    struct sy_sched_key *k = &s->keys[slot_of(s, key, h)];
    if (k->key != NULL) {
        return k->job == job_id ? 0 : -1;
    }
    if ((k->key = strdup(key)) == NULL) {
        return -1;
    }
    k->hash = h;
    k->job = job_id;
    s->n_keys++;
    return 1;
}

void sy_sched_release_key(struct sy_sched *s, const char *key, int64_t job_id)
{
    if (key == NULL || s->n_keys == 0) {
        return;
    }
    size_t mask = s->cap_keys - 1;
    size_t i = slot_of(s, key, hash_of(key));
    if (s->keys[i].key == NULL || s->keys[i].job != job_id) {
        return;
    }
    free(s->keys[i].key);
    s->keys[i].key = NULL;
    s->n_keys--;
    /* backward-shift deletion: move later entries of the probe run into the hole */
    for (size_t j = (i + 1) & mask; s->keys[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)s->keys[j].hash & mask;
        /* entry j may move to i when its home is not cyclically within (i, j] */
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            s->keys[i] = s->keys[j];
            s->keys[j].key = NULL;
            i = j;
        }
    }
}

static void ready_push(struct sy_sched *s, struct sy_job *j)
{
    j->next = NULL;
    if (s->ready_tail) {
        s->ready_tail->next = j;
    } else {
        s->ready = j;
    }
    s->ready_tail = j;
    s->n_ready++;
}

bool sy_sched_admit(struct sy_sched *s, struct sy_job *j)
{
    /* a job that holds its key already is admitted already (found twice after one commit) */
    if (hold(s, j->key, j->id) != 1) {
        return false;
    }
    ready_push(s, j);
    return true;
}

static void heap_swap(struct sy_job **h, size_t a, size_t b)
{
    struct sy_job *t = h[a];
    h[a] = h[b];
    h[b] = t;
}

void sy_sched_defer(struct sy_sched *s, struct sy_job *j)
{
    if (s->n_heap == s->cap_heap) {
        size_t cap = s->cap_heap ? s->cap_heap * 2 : 64;
        struct sy_job **h = realloc(s->heap, cap * sizeof(*h));
        if (h == NULL) {
            sy_job_free(j); /* it stays 'retrying' in the database and comes back at the next start */
            return;
        }
        s->heap = h;
        s->cap_heap = cap;
    }
    (void)hold(s, j->key, j->id); /* already held when it ran; at a start it takes it here */
    size_t i = s->n_heap++;
    s->heap[i] = j;
    while (i > 0 && s->heap[(i - 1) / 2]->due_ms > s->heap[i]->due_ms) {
        heap_swap(s->heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct sy_job *heap_pop(struct sy_sched *s)
{
    struct sy_job *top = s->heap[0];
    s->heap[0] = s->heap[--s->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n_heap && s->heap[l]->due_ms < s->heap[m]->due_ms) {
            m = l;
        }
        if (r < s->n_heap && s->heap[r]->due_ms < s->heap[m]->due_ms) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(s->heap, i, m);
        i = m;
    }
    return top;
}

int64_t sy_sched_release_due(struct sy_sched *s, int64_t now_ms)
{
    while (s->n_heap > 0 && s->heap[0]->due_ms <= now_ms) {
        ready_push(s, heap_pop(s)); /* it still holds its key */
    }
    return s->n_heap > 0 ? s->heap[0]->due_ms - now_ms : -1;
}

struct sy_job *sy_sched_pop(struct sy_sched *s)
{
    struct sy_job *j = s->ready;
    if (j != NULL) {
        s->ready = j->next;
        if (s->ready == NULL) {
            s->ready_tail = NULL;
        }
        s->n_ready--;
        j->next = NULL;
    }
    return j;
}
