#ifndef SY_ENGINE_JOURNAL_H
#define SY_ENGINE_JOURNAL_H

#include <stddef.h>

#include "store/store.h"
#include "unizo/client.h"

/*
 * The one path of a job's Unizo calls, for Lua rules and C plugins alike,
 * live and in rule tests. Each call gets its Idempotency-Key
 * ("<event id>/<handler>/<n>", n counting the calls of this attempt; bytes
 * outside visible ASCII, and '%', percent-encoded) and
 * leaves a journal record. When an earlier attempt of the same job made its
 * n-th call with the same method and path and got a 2xx answer, that answer
 * is returned again and nothing is sent ("replayed"): a call that completed
 * is never repeated by a retry, whether or not the API honours the key.
 * One journal per attempt; owned by the thread running it.
 */
typedef int (*sy_send_fn)(void *ctx, const struct sy_unizo_request *req,
                          struct sy_unizo_response *resp);

struct sy_journal {
    const char *event_id; /* borrowed */
    const char *handler;  /* borrowed */
    int attempt;          /* this attempt's number: 1 + every earlier run */
    int n;                /* calls made so far in this attempt */
    struct sy_call_record *prior; /* the earlier attempts' records (owned) */
    size_t n_prior;
    sy_send_fn send; /* the transport: the Unizo client, or a rule test's responses */
    void *send_ctx;
    /* where each record goes (takes ownership); NULL: it is dropped */
    void (*keep)(void *ctx, struct sy_call_record *rec);
    void *keep_ctx;
    int replayed; /* calls of this attempt answered from the journal */
};

/* A journal for the first attempt of 'handler' on 'event_id'. */
void sy_journal_init(struct sy_journal *j, const char *event_id, const char *handler,
                     sy_send_fn send, void *send_ctx);

/*
 * Take the records of earlier attempts (ownership of the array) and number
 * this attempt after them: 'runs' is how many attempts the store counted.
 */
void sy_journal_set_prior(struct sy_journal *j, struct sy_call_record *prior, size_t n, int runs);

void sy_journal_dispose(struct sy_journal *j);

/*
 * Make the next call of this attempt: answers from an earlier attempt or
 * sends a copy of 'req' (borrowed) with its Idempotency-Key and event id
 * set, and keeps a record. Same contract as sy_unizo_call: SY_OK when an
 * answer is there (any status), resp->body new.
 */
int sy_journal_call(struct sy_journal *j, const struct sy_unizo_request *req,
                    struct sy_unizo_response *resp);

/* A call of an attempt while it is sent in the background: its key and its own request. */
struct sy_journal_call {
    char key[1200];
    struct sy_unizo_request req; /* points into 'copy': needs nothing of the caller's */
    char *copy;
    int64_t at_ms;
    double t0;
};

/*
 * The first half of sy_journal_call, for a caller that sends in the
 * background. Returns SY_OK when the call is answered already (from an
 * earlier attempt; its record is kept, resp->body new), SY_EAGAIN when
 * c->req must be sent (then end it with sy_journal_end), or SY_EINVAL /
 * SY_ENOMEM with the reason in resp->error (nothing numbered or kept).
 * 'req' is borrowed for the call only.
 */
int sy_journal_begin(struct sy_journal *j, const struct sy_unizo_request *req,
                     struct sy_journal_call *c, struct sy_unizo_response *resp);

/* Record the answer to a call begun with SY_EAGAIN and release c's copy. */
void sy_journal_end(struct sy_journal *j, struct sy_journal_call *c,
                    const struct sy_unizo_response *resp);

#endif
