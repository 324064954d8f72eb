/*
 * sqlite.c - a store's rows into SQLite through its C API.
 *
 * The SQLite sink's batch used to become one Python tuple per row for
 * sqlite3's executemany: building the tuples and binding them value by value
 * from Python cost as much as SQLite's own work per row (BENCHMARKS.md, "SQLite
 * store").  Here a prepared INSERT is bound straight from the columns that
 * ingest/sinks/rows.py builds with numpy (the same struct ingest_pgcol the
 * PostgreSQL COPY writer takes, read through cols.h) and stepped once per
 * row; the caller runs it with the GIL released (cffi releases it for every
 * call), inside the one transaction per batch that it begins and commits
 * through ingest_sqlite_exec.
 *
 * A connection is made once per sink (ingest_sqlite_open allocates its
 * handle then, never on the hot path).  It must be the same SQLite library
 * copy as Python's sqlite3 module uses when both open the same file in one
 * process (two copies would not see each other's POSIX locks): the Python
 * side checks ingest_sqlite_lib_ident against _sqlite3's before using this.
 *
 * Texts are bound SQLITE_STATIC (no copy): the caller's columns stay alive
 * for the call, and every binding is cleared before it returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "cols.h"

struct ingest_sqlite {
    sqlite3 *db;
    sqlite3_stmt *stmts[INGEST_SQLITE_MAX_STMTS];
    int nstmts;
    int errcode;      /* extended result code of the last failure */
    char errmsg[256]; /* its message, copied (SQLite's own is overwritten by the next call) */
};

static int fail(struct ingest_sqlite *h, int rc)
{
    h->errcode = h->db ? sqlite3_extended_errcode(h->db) : rc;
    if (h->errcode == SQLITE_OK)
        h->errcode = rc;
    snprintf(h->errmsg, sizeof h->errmsg, "%s", h->db ? sqlite3_errmsg(h->db) : sqlite3_errstr(rc));
    return INGEST_ESQLITE;
}

int ingest_sqlite_open(const char *path, int busy_ms, struct ingest_sqlite **out)
{
    if (path == NULL || out == NULL || busy_ms < 0)
        return INGEST_EINVAL;
    struct ingest_sqlite *h = calloc(1, sizeof *h);
    if (h == NULL)
        return INGEST_ESYS;
    *out = h;
    /* the store exists (the sink created it 0640, never through a link): no CREATE */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
    flags |= SQLITE_OPEN_NOFOLLOW;
#endif
    int rc = sqlite3_open_v2(path, &h->db, flags, NULL);
    if (rc != SQLITE_OK)
        return fail(h, rc);
    sqlite3_extended_result_codes(h->db, 1);
    rc = sqlite3_busy_timeout(h->db, busy_ms);
    return rc == SQLITE_OK ? INGEST_OK : fail(h, rc);
}

int ingest_sqlite_busy_timeout(struct ingest_sqlite *h, int busy_ms)
{
    if (h == NULL || h->db == NULL || busy_ms < 0)
        return INGEST_EINVAL;
    int rc = sqlite3_busy_timeout(h->db, busy_ms);
    return rc == SQLITE_OK ? INGEST_OK : fail(h, rc);
}

int ingest_sqlite_exec(struct ingest_sqlite *h, const char *sql)
{
    if (h == NULL || h->db == NULL || sql == NULL)
        return INGEST_EINVAL;
    int rc = sqlite3_exec(h->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? INGEST_OK : fail(h, rc);
}

int ingest_sqlite_query_int64(struct ingest_sqlite *h, const char *sql, int64_t *out)
{
    if (h == NULL || h->db == NULL || sql == NULL || out == NULL)
        return INGEST_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(h->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(h, rc);
    if (st == NULL)
        return INGEST_EINVAL;
    int got = 0;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(st, 0);
        got = 1;
    } else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        got = fail(h, rc);
    }
    sqlite3_finalize(st);
    return got;
}

int ingest_sqlite_prepare(struct ingest_sqlite *h, const char *sql)
{
    if (h == NULL || h->db == NULL || sql == NULL || h->nstmts >= INGEST_SQLITE_MAX_STMTS)
        return INGEST_EINVAL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v3(h->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
    if (rc != SQLITE_OK)
        return fail(h, rc);
    if (st == NULL) /* only a comment or white space */
        return INGEST_EINVAL;
    h->stmts[h->nstmts] = st;
    return h->nstmts++;
}

int64_t ingest_sqlite_insert(struct ingest_sqlite *h, int stmt, const struct ingest_pgcol *cols, uint32_t ncols,
                             uint32_t nrows, uint32_t *bad_row)
{
    if (h == NULL || h->db == NULL || stmt < 0 || stmt >= h->nstmts || (ncols && cols == NULL))
        return INGEST_EINVAL;
    sqlite3_stmt *st = h->stmts[stmt];
    if ((int64_t)ncols != sqlite3_bind_parameter_count(st))
        return INGEST_EINVAL;
    /* every column, and every text of every row, is checked before the
     * first row is stepped: a caller's mistake writes nothing */
    for (uint32_t j = 0; j < ncols; j++) {
        const struct ingest_pgcol *c = &cols[j];
        if (cols_check(c, nrows) < 0)
            return INGEST_EINVAL;
        if (c->kind != INGEST_PGCOL_TEXT)
            continue;
        for (uint32_t r = 0; r < nrows; r++) {
            const uint8_t *p;
            uint32_t n;
            if (cols_present(c, r) && cols_text(c, r, &p, &n) < 0)
                return INGEST_EINVAL;
        }
    }
    int64_t changed = 0;
    int64_t status = INGEST_OK;
    for (uint32_t r = 0; r < nrows && status == INGEST_OK; r++) {
        for (uint32_t j = 0; j < ncols; j++) {
            const struct ingest_pgcol *c = &cols[j];
            int param = (int)j + 1, rc;
            if (!cols_present(c, r)) {
                rc = sqlite3_bind_null(st, param);
            } else if (c->kind == INGEST_PGCOL_INT8 || c->kind == INGEST_PGCOL_INT4) {
                rc = sqlite3_bind_int64(st, param, ((const int64_t *)c->values)[r]);
            } else if (c->kind == INGEST_PGCOL_TEXT) {
                const uint8_t *p;
                uint32_t n = 0;
                int got = cols_text(c, r, &p, &n); /* index and entry checked */
                if (got < 0) {
                    status = got;
                    break;
                }
                /* an empty text needs a non-NULL pointer, or SQLite binds NULL */
                rc = got ? sqlite3_bind_text(st, param, n ? (const char *)p : "", (int)n, SQLITE_STATIC)
                         : sqlite3_bind_null(st, param);
            } else { /* FIXED (cols_check refused any other kind) */
                size_t n;
                const char *p = cols_fixed(c, r, &n);
                rc = sqlite3_bind_text(st, param, p, (int)n, SQLITE_STATIC);
            }
            if (rc != SQLITE_OK) {
                status = fail(h, rc);
                break;
            }
        }
        if (status != INGEST_OK) {
            if (bad_row != NULL)
                *bad_row = r;
            break;
        }
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            status = fail(h, rc);
            if (bad_row != NULL)
                *bad_row = r;
        } else {
            changed += sqlite3_changes(h->db);
        }
        sqlite3_reset(st);
    }
    sqlite3_clear_bindings(st); /* nothing keeps pointing into the caller's columns */
    return status == INGEST_OK ? changed : status;
}

int ingest_sqlite_errcode(const struct ingest_sqlite *h)
{
    return h == NULL ? SQLITE_MISUSE : h->errcode;
}

const char *ingest_sqlite_errmsg(const struct ingest_sqlite *h)
{
    return h == NULL ? "no connection" : h->errmsg;
}

int ingest_sqlite_autocommit(const struct ingest_sqlite *h)
{
    return h != NULL && h->db != NULL && sqlite3_get_autocommit(h->db);
}

void ingest_sqlite_close(struct ingest_sqlite *h)
{
    if (h == NULL)
        return;
    for (int i = 0; i < h->nstmts; i++)
        sqlite3_finalize(h->stmts[i]);
    sqlite3_close_v2(h->db); /* NULL is a harmless no-op */
    free(h);
}

const char *ingest_sqlite_version(void)
{
    return sqlite3_libversion();
}

uint64_t ingest_sqlite_lib_ident(void)
{
    /* where the linked library's code is: the same library copy as Python's
     * sqlite3 module has the same address for this function */
    return (uint64_t)(uintptr_t)&sqlite3_libversion;
}
