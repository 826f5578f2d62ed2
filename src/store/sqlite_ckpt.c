/* The SQLite store's checkpoints: a thread of their own, so they never stall the writer. */
#include "store/sqlite_int.h"
#include "util/log.h"

/* Called by SQLite in the writer thread after each commit. */
int sy_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    struct sqlite_store *s = arg;
    s->wal_frames = frames;
    if (frames >= s->ckpt_soft_frames) {
        pthread_mutex_lock(&s->mu);
        s->ckpt_wanted = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->mu);
    }
    return SQLITE_OK;
}

int sy_sqlite_checkpoint(sqlite3 *db)
{
    int log = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED) {
        sy_log(SY_LOG_WARN, "WAL checkpoint failed", "error", sqlite3_errmsg(db), NULL);
    }
    return rc == SQLITE_OK && log >= copied ? log - copied : -1;
}

void *sy_sqlite_checkpointer_main(void *arg)
{
    struct sqlite_store *s = arg;
    pthread_setname_np(pthread_self(), "sy-checkpoint");
    pthread_mutex_lock(&s->mu);
    while (!s->closing) {
        if (!s->ckpt_wanted) {
            pthread_cond_wait(&s->ckpt_cv, &s->mu);
            continue;
        }
        s->ckpt_wanted = false;
        pthread_mutex_unlock(&s->mu);
        /* each pass copies what the previous one left; they shorten while writes go on */
        int left = sy_sqlite_checkpoint(s->ckpt_db);
        for (int pass = 1; left > WAL_TAIL_FRAMES && pass < 8; pass++) {
            left = sy_sqlite_checkpoint(s->ckpt_db);
        }
        pthread_mutex_lock(&s->mu);
        if (left >= 0 && left <= WAL_TAIL_FRAMES) {
            __atomic_store_n(&s->ckpt_finish, true, __ATOMIC_RELEASE);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
