/*
 * cols.h - reading the columns of a store's rows (struct ingest_pgcol),
 * shared by the two writers that take them: pgcopy.c (PostgreSQL binary
 * COPY) and sqlite.c (SQLite statements bound row by row).
 *
 * The caller's numbers are not trusted: a column is checked once
 * (cols_check) before its rows are read, and every text index is checked
 * against its table and every table entry against tdata when it is read
 * (cols_text), so a bad column is INGEST_EINVAL, never a read out of bounds.
 */
#ifndef INGEST_COLS_H
#define INGEST_COLS_H

#include <string.h>

#include "ingest.h"

/* Row r of c has a value (not SQL NULL). */
static inline int cols_present(const struct ingest_pgcol *c, uint32_t r)
{
    return c->valid == NULL || c->valid[r] != 0;
}

/* The text of row r of a TEXT column: 1 with p and len set, 0 for NULL (a
 * negative index), or INGEST_EINVAL (an index outside the table, an entry
 * outside tdata). */
static inline int cols_text(const struct ingest_pgcol *c, uint32_t r, const uint8_t **p, uint32_t *len)
{
    int32_t k = ((const int32_t *)c->values)[r];
    if (k < 0) {
        *p = NULL;
        return 0;
    }
    if ((uint32_t)k >= c->tcount)
        return INGEST_EINVAL;
    uint64_t off = c->toff[k], n = c->tlen[k];
    if (off > c->tdata_len || n > c->tdata_len - off || n > INT32_MAX)
        return INGEST_EINVAL;
    *p = c->tdata + off;
    *len = (uint32_t)n;
    return 1;
}

/* Row r of a FIXED column: its bytes up to the first NUL, or the width. */
static inline const char *cols_fixed(const struct ingest_pgcol *c, uint32_t r, size_t *len)
{
    const char *p = (const char *)c->values + (size_t)r * c->width;
    const char *z = memchr(p, 0, c->width);
    *len = z ? (size_t)(z - p) : c->width;
    return p;
}

/* A column's kind and pointers make sense for nrows rows. */
static inline int cols_check(const struct ingest_pgcol *c, uint32_t nrows)
{
    if (nrows && c->values == NULL)
        return INGEST_EINVAL;
    switch (c->kind) {
    case INGEST_PGCOL_INT8:
    case INGEST_PGCOL_INT4:
        return INGEST_OK;
    case INGEST_PGCOL_TEXT:
        if (c->tcount && (c->toff == NULL || c->tlen == NULL || c->tdata == NULL))
            return INGEST_EINVAL;
        return INGEST_OK;
    case INGEST_PGCOL_FIXED:
        return c->width == 0 || c->width > INT32_MAX ? INGEST_EINVAL : INGEST_OK;
    default:
        return INGEST_EINVAL;
    }
}

#endif /* INGEST_COLS_H */
