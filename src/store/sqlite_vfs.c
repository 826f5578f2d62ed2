/*
 * "sy-gather": a SQLite VFS over the default one that gathers consecutive
 * writes to a WAL file (and to its database, during a checkpoint) into one
 * write(2). SQLite writes each WAL frame as two writes, its 24-byte header
 * and its page: a commit of a dozen events made thirty system calls before
 * its fsync, and on this project's machines a system call costs a
 * microsecond or more (docs/PERFORMANCE.md). With the store at
 * synchronous=FULL every commit ends in xSync on the WAL, so the gathered
 * bytes always reach the file before the commit is published to other
 * connections and before it is acknowledged; that is the only mode the
 * store opens this VFS in.
 *
 * Every other call that could observe the file (a read, its size, a
 * truncate, a sync, a lock change, a file control such as SQLite's
 * end-of-checkpoint hint, the shared-memory calls that publish a commit)
 * writes what is gathered first, so SQLite sees the same file it would
 * see without the gathering. A write that does not continue the gathered
 * run writes the run first, so the order of writes is kept.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store/sqlite_int.h"

/*
 * The default VFS writes at most 128 KiB - 1 bytes a call (more and it
 * reports the disk full): a run is written out before it would pass that.
 */
#define GATHER_FIRST (32u << 10) /* the first buffer of a file */
#define GATHER_MAX (127u << 10)

/*
 * A checkpoint writes tens of megabytes into the database, then syncs it:
 * left to the end, that writeback fills the disk's queue at once and the
 * writer's next WAL sync waits behind all of it (tens of milliseconds in
 * which no delivery is answered). The database's writes are pushed out as
 * they go instead, and each megabyte waits for the one before, so little is
 * ever queued ahead of a WAL sync.
 */
#define PACE_BYTES (1u << 20)

struct gfile {
    sqlite3_file base;
    sqlite3_file *real; /* the default VFS's file, allocated right after this struct */
    bool gather;        /* a WAL or main database file opened through this VFS */
    struct gfile *wal;  /* a database's open WAL file (its commits are published through us) */
    struct gfile *db;   /* a WAL's database file */
    char *buf;          /* the gathered run: 'len' bytes that belong at offset 'at' */
    size_t len, cap;
    sqlite3_int64 at;
    int pace_fd;         /* a main database's own descriptor for pacing its writeback; -1: none */
    size_t unpaced;      /* bytes written since the last pacing step */
};

/* The struct rounded up so that the real file after it is aligned for any member. */
#define GFILE_SIZE ((sizeof(struct gfile) + 15) & ~(size_t)15)

static sqlite3_vfs gather_vfs;
static sqlite3_io_methods gather_methods;
static pthread_once_t gather_once = PTHREAD_ONCE_INIT;
static int gather_status = SQLITE_ERROR;

static sqlite3_vfs *real_vfs(sqlite3_vfs *vfs)
{
    return vfs->pAppData;
}

/* Write the gathered run. On an error the run is dropped, as a failed write would be. */
static int flush(struct gfile *f)
{
    if (f == NULL || f->len == 0) {
        return SQLITE_OK;
    }
    int rc = f->real->pMethods->xWrite(f->real, f->buf, (int)f->len, f->at);
    f->unpaced += f->len;
    f->len = 0;
    if (f->pace_fd >= 0 && f->unpaced >= PACE_BYTES) {
        /* wait for the writeback started last time, then start this megabyte's */
        sync_file_range(f->pace_fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE);
        f->unpaced = 0;
    }
    return rc;
}

/* A database's WAL first (its frames come before anything the database publishes), then its own. */
static int flush_all(struct gfile *f)
{
    int rc = flush(f->wal);
    int rc2 = flush(f);
    return rc != SQLITE_OK ? rc : rc2;
}

static int g_close(sqlite3_file *file)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    if (f->db != NULL && f->db->wal == f) {
        f->db->wal = NULL;
    }
    if (f->wal != NULL && f->wal->db == f) {
        f->wal->db = NULL;
    }
    free(f->buf);
    f->buf = NULL;
    if (f->pace_fd >= 0) {
        close(f->pace_fd);
        f->pace_fd = -1;
    }
    int rc2 = f->real->pMethods->xClose(f->real);
    return rc != SQLITE_OK ? rc : rc2;
}

static int g_read(sqlite3_file *file, void *out, int n, sqlite3_int64 off)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xRead(f->real, out, n, off);
}

/* Room for 'n' more bytes in the run, or false (the caller writes directly). */
static bool reserve(struct gfile *f, size_t n)
{
    if (f->len + n > GATHER_MAX) {
        return false;
    }
    if (f->len + n <= f->cap) {
        return true;
    }
    size_t cap = f->cap ? f->cap : GATHER_FIRST;
    while (cap < f->len + n) {
        cap *= 2;
    }
    char *b = realloc(f->buf, cap);
    if (b == NULL) {
        return false;
    }
    f->buf = b;
    f->cap = cap;
    return true;
}

static int g_write(sqlite3_file *file, const void *data, int n, sqlite3_int64 off)
{
    struct gfile *f = (struct gfile *)file;
    if (!f->gather || n <= 0) {
        return f->real->pMethods->xWrite(f->real, data, n, off);
    }
    bool continues = f->len > 0 && off == f->at + (sqlite3_int64)f->len;
    if (!continues || !reserve(f, (size_t)n)) {
        int rc = flush(f);
        if (rc != SQLITE_OK) {
            return rc;
        }
        if (!reserve(f, (size_t)n)) {
            return f->real->pMethods->xWrite(f->real, data, n, off);
        }
        f->at = off;
    }
    memcpy(f->buf + f->len, data, (size_t)n);
    f->len += (size_t)n;
    return SQLITE_OK;
}

static int g_truncate(sqlite3_file *file, sqlite3_int64 size)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xTruncate(f->real, size);
}

static int g_sync(sqlite3_file *file, int flags)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int g_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFileSize(f->real, size);
}

static int g_lock(sqlite3_file *file, int level)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xLock(f->real, level);
}

static int g_unlock(sqlite3_file *file, int level)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xUnlock(f->real, level);
}

static int g_check_reserved(sqlite3_file *file, int *out)
{
    struct gfile *f = (struct gfile *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int g_file_control(sqlite3_file *file, int op, void *arg)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f); /* SQLITE_FCNTL_CKPT_DONE among others: a checkpoint's copy is over */
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (op == SQLITE_FCNTL_VFSNAME) {
        char **name = arg;
        char *inner = NULL;
        f->real->pMethods->xFileControl(f->real, op, &inner);
        *name = sqlite3_mprintf("%s/%z", gather_vfs.zName, inner);
        return SQLITE_OK;
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int g_sector_size(sqlite3_file *file)
{
    struct gfile *f = (struct gfile *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int g_device_characteristics(sqlite3_file *file)
{
    struct gfile *f = (struct gfile *)file;
    return f->real->pMethods->xDeviceCharacteristics(f->real);
}

/* The shared-memory calls publish and read commits: the WAL's frames go out first. */
static int g_shm_map(sqlite3_file *file, int page, int size, int extend, void volatile **out)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmMap(f->real, page, size, extend, out);
}

static int g_shm_lock(sqlite3_file *file, int offset, int n, int flags)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void g_shm_barrier(sqlite3_file *file)
{
    struct gfile *f = (struct gfile *)file;
    /* nothing is gathered here at synchronous=FULL: the commit's xSync came first */
    (void)flush_all(f);
    f->real->pMethods->xShmBarrier(f->real);
}

static int g_shm_unmap(sqlite3_file *file, int delete_flag)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    int rc2 = f->real->pMethods->xShmUnmap(f->real, delete_flag);
    return rc != SQLITE_OK ? rc : rc2;
}

static int g_fetch(sqlite3_file *file, sqlite3_int64 off, int n, void **out)
{
    struct gfile *f = (struct gfile *)file;
    int rc = flush_all(f);
    return rc != SQLITE_OK ? rc : f->real->pMethods->xFetch(f->real, off, n, out);
}

static int g_unfetch(sqlite3_file *file, sqlite3_int64 off, void *p)
{
    struct gfile *f = (struct gfile *)file;
    return f->real->pMethods->xUnfetch(f->real, off, p);
}

static int g_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *file, int flags, int *out_flags)
{
    struct gfile *f = (struct gfile *)file;
    memset(f, 0, sizeof(*f));
    f->pace_fd = -1;
    f->real = (sqlite3_file *)((char *)f + GFILE_SIZE);
    sqlite3_vfs *real = real_vfs(vfs);
    int rc = real->xOpen(real, name, f->real, flags, out_flags);
    if (rc != SQLITE_OK || f->real->pMethods == NULL) {
        f->base.pMethods = NULL; /* SQLite closes only a file that has methods */
        return rc != SQLITE_OK ? rc : SQLITE_CANTOPEN;
    }
    if (f->real->pMethods->iVersion < 3) {
        /* the shared-memory and mmap calls would have nothing to forward to */
        f->real->pMethods->xClose(f->real);
        f->base.pMethods = NULL;
        return SQLITE_CANTOPEN;
    }
    f->base.pMethods = &gather_methods;
    if ((flags & SQLITE_OPEN_MAIN_DB) != 0) {
        f->gather = true;
        /* any descriptor of the file starts and waits for its writeback; without one, no pacing */
        f->pace_fd = name != NULL ? open(name, O_RDONLY | O_CLOEXEC) : -1;
    } else if ((flags & SQLITE_OPEN_WAL) != 0 && name != NULL) {
        sqlite3_file *db = sqlite3_database_file_object(name);
        if (db != NULL && db->pMethods == &gather_methods) {
            f->gather = true;
            f->db = (struct gfile *)db;
            f->db->wal = f;
        }
    }
    return SQLITE_OK;
}

/* ---- the VFS's other calls are the default VFS's ---- */

static int g_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
    return real_vfs(vfs)->xDelete(real_vfs(vfs), name, sync_dir);
}

static int g_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
    return real_vfs(vfs)->xAccess(real_vfs(vfs), name, flags, out);
}

static int g_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out)
{
    return real_vfs(vfs)->xFullPathname(real_vfs(vfs), name, n, out);
}

static void *g_dlopen(sqlite3_vfs *vfs, const char *name)
{
    return real_vfs(vfs)->xDlOpen(real_vfs(vfs), name);
}

static void g_dlerror(sqlite3_vfs *vfs, int n, char *out)
{
    real_vfs(vfs)->xDlError(real_vfs(vfs), n, out);
}

static void (*g_dlsym(sqlite3_vfs *vfs, void *lib, const char *sym))(void)
{
    return real_vfs(vfs)->xDlSym(real_vfs(vfs), lib, sym);
}

static void g_dlclose(sqlite3_vfs *vfs, void *lib)
{
    real_vfs(vfs)->xDlClose(real_vfs(vfs), lib);
}

static int g_randomness(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs(vfs)->xRandomness(real_vfs(vfs), n, out);
}

static int g_sleep(sqlite3_vfs *vfs, int us)
{
    return real_vfs(vfs)->xSleep(real_vfs(vfs), us);
}

static int g_current_time(sqlite3_vfs *vfs, double *out)
{
    return real_vfs(vfs)->xCurrentTime(real_vfs(vfs), out);
}

static int g_last_error(sqlite3_vfs *vfs, int n, char *out)
{
    return real_vfs(vfs)->xGetLastError(real_vfs(vfs), n, out);
}

static int g_current_time64(sqlite3_vfs *vfs, sqlite3_int64 *out)
{
    return real_vfs(vfs)->xCurrentTimeInt64(real_vfs(vfs), out);
}

static void register_once(void)
{
    sqlite3_vfs *real = sqlite3_vfs_find(NULL);
    if (real == NULL || real->iVersion < 2 || real->xCurrentTimeInt64 == NULL) {
        return;
    }
    gather_methods = (sqlite3_io_methods){
        .iVersion = 3,
        .xClose = g_close,
        .xRead = g_read,
        .xWrite = g_write,
        .xTruncate = g_truncate,
        .xSync = g_sync,
        .xFileSize = g_file_size,
        .xLock = g_lock,
        .xUnlock = g_unlock,
        .xCheckReservedLock = g_check_reserved,
        .xFileControl = g_file_control,
        .xSectorSize = g_sector_size,
        .xDeviceCharacteristics = g_device_characteristics,
        .xShmMap = g_shm_map,
        .xShmLock = g_shm_lock,
        .xShmBarrier = g_shm_barrier,
        .xShmUnmap = g_shm_unmap,
        .xFetch = g_fetch,
        .xUnfetch = g_unfetch,
    };
    gather_vfs = (sqlite3_vfs){
        .iVersion = 2,
        .szOsFile = (int)(GFILE_SIZE + (size_t)real->szOsFile),
        .mxPathname = real->mxPathname,
        .zName = SY_SQLITE_GATHER_VFS,
        .pAppData = real,
        .xOpen = g_open,
        .xDelete = g_delete,
        .xAccess = g_access,
        .xFullPathname = g_full_pathname,
        .xDlOpen = g_dlopen,
        .xDlError = g_dlerror,
        .xDlSym = g_dlsym,
        .xDlClose = g_dlclose,
        .xRandomness = g_randomness,
        .xSleep = g_sleep,
        .xCurrentTime = g_current_time,
        .xGetLastError = g_last_error,
        .xCurrentTimeInt64 = g_current_time64,
    };
    gather_status = sqlite3_vfs_register(&gather_vfs, 0);
}

int sy_sqlite_gather_vfs(void)
{
    pthread_once(&gather_once, register_once);
    return gather_status == SQLITE_OK ? SY_OK : SY_EIO;
}
