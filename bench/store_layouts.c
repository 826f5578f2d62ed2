/*
 * Candidate on-disk layouts for the event store, measured on this machine (issue 19): the
 * same 1 KB deliveries with random UUID v4 ids, committed in groups as the writer commits
 * them (synchronous=FULL, WAL, checkpoints included), on a store that already holds
 * PRELOAD events. Prints rows/s and process CPU per row for each layout, in one run.
 *
 * usage: sy-bench-layouts DIR PRELOAD ROWS [PER_COMMIT]
 *
 * Layouts:
 *   inline      today's schema: id TEXT UNIQUE, headers, body and envelope in the row
 *   hash-index  the row as today, the id found through a 64-bit hash (INTEGER index)
 *   segments    headers, body and envelope appended to a segment file fdatasync'd before
 *               the commit; the row keeps the id, the routing columns and the offset
 *   seg+hash    both
 *   page=N      'inline' with another page size
 *   wal=N       a checkpoint every N WAL frames instead of SQLite's 1,000
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/hash.h"

struct layout {
    const char *name;
    int page_size;
    int hash_index;
    int segments;
    int checkpoint_frames; /* the WAL's size that starts a checkpoint */
};

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void uuid4(char out[37])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t a = next_random(), b = next_random();
    int k = 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            out[i] = '-';
            continue;
        }
        uint64_t *w = k < 16 ? &a : &b;
        out[i] = hex[*w & 15];
        *w >>= 4;
        k++;
    }
    out[14] = '4';
    out[36] = '\0';
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void must(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fprintf(stderr, "sy-bench-layouts: %s: %s\n", sql, msg);
        exit(1);
    }
}

struct store {
    const struct layout *l;
    sqlite3 *db;
    sqlite3_stmt *insert, *probe;
    int seg_fd;
    int64_t seg_off;
};

static char body[1024], headers[160], norm[210];

static void open_store(struct store *s, const struct layout *l, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/layout-%s.db", dir, l->name);
    unlink(path);
    char wal[4200];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof(wal), "%s-shm", path);
    unlink(wal);
    memset(s, 0, sizeof(*s));
    s->l = l;
    if (sqlite3_open(path, &s->db) != SQLITE_OK) {
        fprintf(stderr, "sy-bench-layouts: cannot open %s\n", path);
        exit(1);
    }
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA page_size=%d", l->page_size);
    must(s->db, pragma);
    must(s->db, "PRAGMA journal_mode=WAL");
    const char *id_col = l->hash_index ? "idh INTEGER NOT NULL, id TEXT NOT NULL"
                                       : "id TEXT NOT NULL UNIQUE";
    const char *payload = l->segments ? "seg INTEGER NOT NULL, off INTEGER NOT NULL, "
                                        "len INTEGER NOT NULL"
                                      : "headers TEXT NOT NULL, body TEXT NOT NULL, norm TEXT";
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE events (seq INTEGER PRIMARY KEY, %s, type TEXT NOT NULL, "
             "integration TEXT, received_at INTEGER NOT NULL, state TEXT NOT NULL, "
             "category TEXT, reason TEXT, %s)",
             id_col, payload);
    must(s->db, sql);
    if (l->hash_index) {
        must(s->db, "CREATE INDEX events_idh ON events(idh)");
    }
    snprintf(sql, sizeof(sql),
             l->segments ? "INSERT %s INTO events(%s, type, integration, received_at, state, "
                           "category, seg, off, len) VALUES (?1, %s 'scm.pull_request.created', "
                           "'github', ?3, 'routed', 'scm', 1, ?4, ?5)"
                         : "INSERT %s INTO events(%s, type, integration, received_at, state, "
                           "category, headers, body, norm) VALUES (?1, %s "
                           "'scm.pull_request.created', 'github', ?3, 'routed', 'scm', ?4, ?5, ?6)",
             l->hash_index ? "" : "OR IGNORE", l->hash_index ? "id, idh" : "id",
             l->hash_index ? "?2," : "");
    if (sqlite3_prepare_v2(s->db, sql, -1, &s->insert, NULL) != SQLITE_OK ||
        (l->hash_index && sqlite3_prepare_v2(s->db,
                                             "SELECT id FROM events WHERE idh = ?1 AND id = ?2",
                                             -1, &s->probe, NULL) != SQLITE_OK)) {
        fprintf(stderr, "sy-bench-layouts: %s\n", sqlite3_errmsg(s->db));
        exit(1);
    }
    s->seg_fd = -1;
    s->seg_off = 0;
    if (l->segments) {
        snprintf(path, sizeof(path), "%s/layout-%s.seg", dir, l->name);
        s->seg_fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_APPEND, 0644);
        if (s->seg_fd < 0) {
            perror(path);
            exit(1);
        }
    }
}

static void close_store(struct store *s)
{
    sqlite3_finalize(s->insert);
    sqlite3_finalize(s->probe);
    sqlite3_close(s->db);
    if (s->seg_fd >= 0) {
        close(s->seg_fd);
    }
}

static void add(struct store *s, int64_t t)
{
    char id[37];
    uuid4(id);
    if (s->l->hash_index) {
        int64_t h = (int64_t)sy_fnv1a(SY_FNV_OFFSET, id, 36);
        sqlite3_bind_int64(s->probe, 1, h);
        sqlite3_bind_text(s->probe, 2, id, 36, SQLITE_STATIC);
        int dup = sqlite3_step(s->probe) == SQLITE_ROW;
        sqlite3_reset(s->probe);
        if (dup) {
            return;
        }
        sqlite3_bind_int64(s->insert, 2, h);
    }
    sqlite3_bind_text(s->insert, 1, id, 36, SQLITE_STATIC);
    sqlite3_bind_int64(s->insert, 3, t);
    if (s->l->segments) {
        char rec[1500];
        size_t n = 0;
        memcpy(rec + n, headers, sizeof(headers));
        n += sizeof(headers);
        memcpy(rec + n, body, sizeof(body));
        n += sizeof(body);
        memcpy(rec + n, norm, sizeof(norm));
        n += sizeof(norm);
        if (write(s->seg_fd, rec, n) != (ssize_t)n) {
            perror("segment write");
            exit(1);
        }
        sqlite3_bind_int64(s->insert, 4, s->seg_off);
        sqlite3_bind_int64(s->insert, 5, (int64_t)n);
        s->seg_off += (int64_t)n;
    } else {
        sqlite3_bind_text(s->insert, 4, headers, sizeof(headers), SQLITE_STATIC);
        sqlite3_bind_text(s->insert, 5, body, sizeof(body), SQLITE_STATIC);
        sqlite3_bind_text(s->insert, 6, norm, sizeof(norm), SQLITE_STATIC);
    }
    if (sqlite3_step(s->insert) != SQLITE_DONE) {
        fprintf(stderr, "sy-bench-layouts: insert: %s\n", sqlite3_errmsg(s->db));
        exit(1);
    }
    sqlite3_reset(s->insert);
}

static void run(const struct layout *l, const char *dir, long preload, long rows, int per_commit)
{
    struct store s;
    char pragma[64];
    open_store(&s, l, dir);
    must(s.db, "PRAGMA synchronous=OFF");
    must(s.db, "BEGIN");
    for (long i = 0; i < preload; i++) {
        add(&s, 1700000000000 + i);
        if (i % 50000 == 49999) {
            must(s.db, "COMMIT; BEGIN");
        }
    }
    must(s.db, "COMMIT");
    must(s.db, "PRAGMA wal_checkpoint(TRUNCATE)");
    if (s.seg_fd >= 0) {
        fdatasync(s.seg_fd);
    }
    sync();
    snprintf(pragma, sizeof(pragma), "PRAGMA wal_autocheckpoint=%d", l->checkpoint_frames);
    must(s.db, pragma);
    must(s.db, "PRAGMA synchronous=FULL");
    double t0 = now(), c0 = cpu_seconds();
    for (long i = 0; i < rows; i += per_commit) {
        must(s.db, "BEGIN");
        for (int k = 0; k < per_commit; k++) {
            add(&s, 1800000000000 + i + k);
        }
        if (s.seg_fd >= 0 && fdatasync(s.seg_fd) != 0) {
            perror("fdatasync");
            exit(1);
        }
        must(s.db, "COMMIT");
    }
    double dt = now() - t0, dc = cpu_seconds() - c0;
    printf("| %s | %ld | %d | %.0f | %.1f |\n", l->name, preload, per_commit, (double)rows / dt,
           dc / (double)rows * 1e6);
    fflush(stdout);
    close_store(&s);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: sy-bench-layouts DIR PRELOAD ROWS [PER_COMMIT]\n");
        return 2;
    }
    char *end;
    long preload = strtol(argv[2], &end, 10);
    long rows = strtol(argv[3], &end, 10);
    int per_commit = argc > 4 ? (int)strtol(argv[4], &end, 10) : 11;
    memset(body, 'b', sizeof(body));
    memset(headers, 'h', sizeof(headers));
    memset(norm, 'n', sizeof(norm));
    static const struct layout layouts[] = {
        {"inline", 4096, 0, 0, 1000},
        {"inline,wal=16000", 4096, 0, 0, 16000},
        {"hash-index", 4096, 1, 0, 1000},
        {"hash-index,wal=16000", 4096, 1, 0, 16000},
        {"segments", 4096, 0, 1, 1000},
        {"seg+hash", 4096, 1, 1, 1000},
        {"seg+hash,wal=16000", 4096, 1, 1, 16000},
        {"page=8192", 8192, 0, 0, 1000},
    };
    printf("| layout | stored before | rows per commit | rows/s | CPU µs per row |\n");
    printf("|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++) {
        if (argc > 5 && strstr(layouts[i].name, argv[5]) == NULL) {
            continue;
        }
        run(&layouts[i], argv[1], preload, rows, per_commit);
    }
    return 0;
}
