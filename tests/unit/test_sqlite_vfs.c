/*
 * The SQLite store's gathering VFS (store/sqlite_vfs.c), over a counting VFS
 * made the default here: what reaches the files, in how many writes, and
 * what another connection reads back; then the store itself at each
 * synchronous setting: the mode its connection really has, and the fsyncs
 * of its commits.
 * usage: test_sqlite_vfs DIR
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "check.h"
#include "config.h"
#include "store/sqlite_int.h"

#include "append.h"

/* ---- a VFS that counts what reaches the files, and can fail a write ---- */

struct counts {
    int wal_writes, db_writes, wal_syncs, db_syncs;
    int max_write;
    int fail_next_wal_write; /* > 0: that many WAL writes from now, the last one fails */
};
static struct counts counts;
static sqlite3_vfs *unix_vfs;
static sqlite3_io_methods count_methods;

struct cfile {
    sqlite3_file base;
    sqlite3_file *real;
    int is_wal, is_db;
};
#define CFILE_SIZE ((sizeof(struct cfile) + 15) & ~(size_t)15)

static int c_close(sqlite3_file *f)
{
    return ((struct cfile *)f)->real->pMethods->xClose(((struct cfile *)f)->real);
}
static int c_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{
    return ((struct cfile *)f)->real->pMethods->xRead(((struct cfile *)f)->real, b, n, o);
}
static int c_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
    struct cfile *c = (struct cfile *)f;
    if (c->is_wal) {
        counts.wal_writes++;
        if (counts.fail_next_wal_write > 0 && --counts.fail_next_wal_write == 0) {
            return SQLITE_IOERR_WRITE;
        }
    }
    if (c->is_db) {
        counts.db_writes++;
    }
    if (n > counts.max_write) {
        counts.max_write = n;
    }
    return c->real->pMethods->xWrite(c->real, b, n, o);
}
static int c_truncate(sqlite3_file *f, sqlite3_int64 s)
{
    return ((struct cfile *)f)->real->pMethods->xTruncate(((struct cfile *)f)->real, s);
}
static int c_sync(sqlite3_file *f, int fl)
{
    struct cfile *c = (struct cfile *)f;
    if (c->is_wal) {
        counts.wal_syncs++;
    } else if (c->is_db) {
        counts.db_syncs++;
    }
    return c->real->pMethods->xSync(c->real, fl);
}
static int c_size(sqlite3_file *f, sqlite3_int64 *s)
{
    return ((struct cfile *)f)->real->pMethods->xFileSize(((struct cfile *)f)->real, s);
}
static int c_lock(sqlite3_file *f, int l)
{
    return ((struct cfile *)f)->real->pMethods->xLock(((struct cfile *)f)->real, l);
}
static int c_unlock(sqlite3_file *f, int l)
{
    return ((struct cfile *)f)->real->pMethods->xUnlock(((struct cfile *)f)->real, l);
}
static int c_reserved(sqlite3_file *f, int *o)
{
    return ((struct cfile *)f)->real->pMethods->xCheckReservedLock(((struct cfile *)f)->real, o);
}
static int c_fcntl(sqlite3_file *f, int op, void *a)
{
    return ((struct cfile *)f)->real->pMethods->xFileControl(((struct cfile *)f)->real, op, a);
}
static int c_sector(sqlite3_file *f)
{
    return ((struct cfile *)f)->real->pMethods->xSectorSize(((struct cfile *)f)->real);
}
static int c_dev(sqlite3_file *f)
{
    return ((struct cfile *)f)->real->pMethods->xDeviceCharacteristics(((struct cfile *)f)->real);
}
static int c_shm_map(sqlite3_file *f, int p, int s, int e, void volatile **o)
{
    return ((struct cfile *)f)->real->pMethods->xShmMap(((struct cfile *)f)->real, p, s, e, o);
}
static int c_shm_lock(sqlite3_file *f, int o, int n, int fl)
{
    return ((struct cfile *)f)->real->pMethods->xShmLock(((struct cfile *)f)->real, o, n, fl);
}
static void c_shm_barrier(sqlite3_file *f)
{
    ((struct cfile *)f)->real->pMethods->xShmBarrier(((struct cfile *)f)->real);
}
static int c_shm_unmap(sqlite3_file *f, int d)
{
    return ((struct cfile *)f)->real->pMethods->xShmUnmap(((struct cfile *)f)->real, d);
}
static int c_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{
    return ((struct cfile *)f)->real->pMethods->xFetch(((struct cfile *)f)->real, o, n, p);
}
static int c_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{
    return ((struct cfile *)f)->real->pMethods->xUnfetch(((struct cfile *)f)->real, o, p);
}

static int c_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out)
{
    (void)vfs;
    struct cfile *c = (struct cfile *)file;
    memset(c, 0, sizeof(*c));
    c->real = (sqlite3_file *)((char *)c + CFILE_SIZE);
    int rc = unix_vfs->xOpen(unix_vfs, name, c->real, flags, out);
    if (rc != SQLITE_OK) {
        c->base.pMethods = NULL;
        return rc;
    }
    c->is_wal = (flags & SQLITE_OPEN_WAL) != 0;
    c->is_db = (flags & SQLITE_OPEN_MAIN_DB) != 0;
    c->base.pMethods = &count_methods;
    return SQLITE_OK;
}

static sqlite3_vfs count_vfs;

static void install_counting_vfs(void)
{
    unix_vfs = sqlite3_vfs_find(NULL);
    count_methods = (sqlite3_io_methods){
        3,          c_close,       c_read,      c_write, c_truncate, c_sync, c_size,
        c_lock,     c_unlock,      c_reserved,  c_fcntl, c_sector,   c_dev,  c_shm_map,
        c_shm_lock, c_shm_barrier, c_shm_unmap, c_fetch, c_unfetch};
    count_vfs = *unix_vfs;
    count_vfs.pNext = NULL;
    count_vfs.zName = "count";
    count_vfs.szOsFile = (int)(CFILE_SIZE + (size_t)unix_vfs->szOsFile);
    count_vfs.xOpen = c_open;
    sqlite3_vfs_register(&count_vfs, 1); /* the default: the gathering VFS goes over it */
}

/* ---- helpers ---- */

static sqlite3 *open_db(const char *path, const char *vfs)
{
    sqlite3 *db = NULL;
    CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs) == SQLITE_OK);
    CHECK(sqlite3_exec(db,
                       "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; "
                       "PRAGMA wal_autocheckpoint=0",
                       NULL, NULL, NULL) == SQLITE_OK);
    return db;
}

static sqlite3_int64 count_rows(sqlite3 *db, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM t %s", where);
    sqlite3_stmt *st = NULL;
    sqlite3_int64 n = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return n;
}

/* One transaction of 'rows' rows of 'size' bytes each (byte i of row k is (k + i) % 251). */
static int insert_rows(sqlite3 *db, int first, int rows, int size)
{
    char *blob = malloc((size_t)size);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(db, "INSERT INTO t(id, b) VALUES (?, ?)", -1, &st, NULL);
    }
    for (int k = first; rc == SQLITE_OK && k < first + rows; k++) {
        for (int i = 0; i < size; i++) {
            blob[i] = (char)((k + i) % 251);
        }
        sqlite3_bind_int(st, 1, k);
        sqlite3_bind_blob(st, 2, blob, size, SQLITE_TRANSIENT);
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK) {
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    if (rc != SQLITE_OK) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    }
    free(blob);
    return rc;
}

/* Every row's bytes are the ones insert_rows wrote. */
static bool rows_intact(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, "SELECT id, b FROM t", -1, &st, NULL) == SQLITE_OK;
    while (ok && sqlite3_step(st) == SQLITE_ROW) {
        int k = sqlite3_column_int(st, 0);
        const unsigned char *b = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        for (int i = 0; ok && i < n; i++) {
            ok = b[i] == (unsigned char)((k + i) % 251);
        }
    }
    sqlite3_finalize(st);
    return ok;
}

/* ---- the store at each synchronous setting ---- */

#define GROUP 32

/*
 * Opens the store with 'level' and checks what its connection really runs with, then counts
 * the syncs of its commits: one WAL sync per commit at full, none at normal or off (the WAL is
 * synced at checkpoints only there); and a group commit: GROUP events queued behind a write lock
 * held elsewhere are committed together, with one sync (two if the first was taken alone).
 */
static void check_store_sync(const char *dir, enum sy_sync_mode level, const char *name)
{
    char path[512], url[600], side[600], want[64], got[64];
    snprintf(path, sizeof(path), "%s/vfs-store-%s.db", dir, name);
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    struct sy_config cfg;
    CHECK(sy_config_defaults(&cfg) == SY_OK);
    free(cfg.store.url);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    cfg.store.url = strdup(url);
    cfg.store.synchronous = level;
    struct sy_error err = {0};
    struct sy_store *st = sy_store_open(&cfg, &err);
    CHECK(st != NULL);
    if (st == NULL) {
        fprintf(stderr, "cannot open %s: %s\n", path, err.msg);
        sy_config_dispose(&cfg);
        return;
    }
    snprintf(want, sizeof(want), "journal_mode=wal synchronous=%s", name);
    sy_store_describe(st, got, sizeof(got));
    CHECK_STR(got, want);

    /* one commit after another */
    memset(&counts, 0, sizeof(counts));
    bool is_new = false;
    for (int i = 0; i < 5; i++) {
        struct req r;
        char id[32];
        snprintf(id, sizeof(id), "evt_sync_%d", i);
        prepare(&r, id, "x.y");
        CHECK(submit_wait(st, &r, &is_new) == SY_OK && is_new);
    }
    int per_commit = level == SY_SYNC_FULL ? 1 : 0;
    if (counts.wal_syncs != 5 * per_commit) {
        fprintf(stderr, "synchronous=%s: %d WAL syncs for 5 commits\n", name, counts.wal_syncs);
        CHECK(!"the WAL syncs per commit");
    }
    CHECK(counts.db_syncs == 0);

    /* a group commit: the writer waits for a lock held by another connection meanwhile */
    sqlite3 *other = NULL;
    CHECK(sqlite3_open_v2(path, &other, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK);
    CHECK(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK);
    memset(&counts, 0, sizeof(counts));
    static struct req group[GROUP];
    for (int i = 0; i < GROUP; i++) {
        char id[32];
        snprintf(id, sizeof(id), "evt_group_%d", i);
        prepare(&group[i], id, "x.y");
        CHECK(sy_store_submit(st, &group[i].a) == SY_OK);
    }
    struct timespec pause = {0, 200 * 1000000L};
    nanosleep(&pause, NULL);
    CHECK(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK);
    int fresh = 0;
    for (int i = 0; i < GROUP; i++) {
        wait_done(&group[i]);
        fresh += group[i].a.status == SY_OK && group[i].a.is_new;
    }
    CHECK(fresh == GROUP);
    bool grouped = level == SY_SYNC_FULL ? counts.wal_syncs >= 1 && counts.wal_syncs <= 2
                                         : counts.wal_syncs == 0;
    if (!grouped) {
        fprintf(stderr, "synchronous=%s: %d WAL syncs for a group of %d\n", name, counts.wal_syncs,
                GROUP);
        CHECK(!"the WAL syncs of a group commit");
    }
    sqlite3_close(other);
    sy_store_close(st);
    sy_config_dispose(&cfg);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_sqlite_vfs DIR\n");
        return 2;
    }
    install_counting_vfs();
    CHECK(sy_sqlite_gather_vfs() == SY_OK);
    CHECK(sqlite3_vfs_find(SY_SQLITE_GATHER_VFS) != NULL);

    char path[512], plain_path[512];
    snprintf(path, sizeof(path), "%s/vfs-gather.db", argv[1]);
    snprintf(plain_path, sizeof(plain_path), "%s/vfs-plain.db", argv[1]);
    for (int i = 0; i < 2; i++) {
        const char *p = i ? plain_path : path;
        char side[600];
        unlink(p);
        snprintf(side, sizeof(side), "%s-wal", p);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", p);
        unlink(side);
    }

    /* without the gathering VFS, a commit writes each frame's header and page apart */
    sqlite3 *plain = open_db(plain_path, NULL);
    CHECK(sqlite3_exec(plain, "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)", NULL, NULL, NULL) ==
          SQLITE_OK);
    memset(&counts, 0, sizeof(counts));
    CHECK(insert_rows(plain, 0, 10, 1000) == SQLITE_OK);
    int plain_writes = counts.wal_writes;
    CHECK(plain_writes >= 6); /* at least three frames, two writes each */
    sqlite3_close(plain);

    sqlite3 *w = open_db(path, SY_SQLITE_GATHER_VFS);
    sqlite3 *r = open_db(path, NULL); /* another connection, through the default VFS */
    CHECK(sqlite3_exec(w, "CREATE TABLE t(id INTEGER PRIMARY KEY, b BLOB)", NULL, NULL, NULL) ==
          SQLITE_OK);

    /* the same commit through it: one write of the WAL and one sync, read back elsewhere */
    memset(&counts, 0, sizeof(counts));
    CHECK(insert_rows(w, 0, 10, 1000) == SQLITE_OK);
    CHECK(counts.wal_writes == 1);
    CHECK(counts.wal_syncs == 1);
    CHECK(count_rows(r, "") == 10);
    CHECK(rows_intact(r));

    /* a commit larger than one write may be (the default VFS refuses 128 KiB and more); more
     * than a megabyte, so that the checkpoint below paces its writeback too */
    memset(&counts, 0, sizeof(counts));
    CHECK(insert_rows(w, 10, 1500, 1000) == SQLITE_OK);
    CHECK(counts.wal_writes >= 12);
    CHECK(counts.wal_writes < plain_writes * 150 / 2); /* still far fewer than two per frame */
    CHECK(counts.max_write < 128 * 1024);
    CHECK(counts.wal_syncs == 1);
    CHECK(count_rows(r, "") == 1510);
    CHECK(rows_intact(r));

    /* a reader's snapshot holds while the writer commits, and it sees the commit after */
    CHECK(sqlite3_exec(r, "BEGIN", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(count_rows(r, "") == 1510);
    CHECK(insert_rows(w, 1510, 5, 3000) == SQLITE_OK);
    CHECK(count_rows(r, "") == 1510);
    CHECK(sqlite3_exec(r, "COMMIT", NULL, NULL, NULL) == SQLITE_OK);
    CHECK(count_rows(r, "") == 1515);

    /* a failed write of the gathered run fails the commit: nothing of it is visible */
    memset(&counts, 0, sizeof(counts));
    counts.fail_next_wal_write = 1;
    CHECK(insert_rows(w, 3000, 10, 1000) != SQLITE_OK);
    CHECK(count_rows(r, "") == 1515);
    CHECK(count_rows(w, "WHERE id >= 3000") == 0);
    /* and the store goes on */
    CHECK(insert_rows(w, 4000, 10, 1000) == SQLITE_OK);
    CHECK(count_rows(r, "") == 1525);

    /* a checkpoint copies runs of pages in fewer writes, and the database alone holds it all */
    memset(&counts, 0, sizeof(counts));
    int log = -1, copied = -1;
    CHECK(sqlite3_wal_checkpoint_v2(w, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &copied) ==
          SQLITE_OK);
    CHECK(log == copied && copied > 300); /* more than a megabyte of pages */
    CHECK(counts.db_writes > 0);
    CHECK(counts.db_writes * 4 < copied); /* the table's pages are consecutive */
    CHECK(counts.max_write < 128 * 1024);
    sqlite3_close(r);
    sqlite3_close(w);
    char wal[600];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    CHECK(access(wal, F_OK) != 0); /* the last close checkpointed and removed it */
    sqlite3 *fresh = NULL;
    CHECK(sqlite3_open_v2(path, &fresh, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK);
    CHECK(count_rows(fresh, "") == 1525);
    CHECK(rows_intact(fresh));
    sqlite3_stmt *ic = NULL;
    CHECK(sqlite3_prepare_v2(fresh, "PRAGMA integrity_check", -1, &ic, NULL) == SQLITE_OK &&
          sqlite3_step(ic) == SQLITE_ROW);
    CHECK_STR((const char *)sqlite3_column_text(ic, 0), "ok");
    sqlite3_finalize(ic);
    sqlite3_close(fresh);

    check_store_sync(argv[1], SY_SYNC_FULL, "full");
    check_store_sync(argv[1], SY_SYNC_NORMAL, "normal");
    check_store_sync(argv[1], SY_SYNC_OFF, "off");
    CHECK_DONE();
}
