/*
 * pgcopy.c - a store's rows as a PostgreSQL binary COPY stream.
 *
 * The PostgreSQL sink writes every batch with "COPY alerts (...) FROM STDIN
 * (FORMAT BINARY)".  Building a Python tuple per row for the driver cost more
 * than the server's own work per row (see BENCHMARKS.md), so the columns
 * that ingest/sinks/rows.py builds with numpy are written here, row by row,
 * straight into one caller-owned buffer.
 *
 * Format (PostgreSQL documentation, "COPY", Binary Format): an 11-byte
 * signature, int32 flags (0), int32 header-extension length (0); per row an
 * int16 field count, then per field an int32 length (-1 for NULL) and that
 * many bytes; an int16 -1 trailer.  Integers are big-endian; int8 and int4
 * are sent as their two's-complement bytes, text as its UTF-8 bytes.
 *
 * Everything the caller passes is checked before it is used (indexes
 * against their table, table entries against tdata, every write against
 * out_cap), so a bad column is INGEST_EINVAL, never a read or write out of
 * bounds.
 */
#include <string.h>

#include "cols.h"

static const uint8_t SIGNATURE[11] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
#define HEADER_LEN 19 /* signature, flags, extension length */
#define TRAILER_LEN 2

/* Bytes of row r's field in column c (its length word included), or a
 * negative status. */
static int64_t field_size(const struct ingest_pgcol *c, uint32_t r)
{
    if (!cols_present(c, r))
        return 4;
    switch (c->kind) {
    case INGEST_PGCOL_INT8:
        return 4 + 8;
    case INGEST_PGCOL_INT4:
        return 4 + 4;
    case INGEST_PGCOL_TEXT: {
        const uint8_t *p;
        uint32_t n = 0;
        int rc = cols_text(c, r, &p, &n);
        return rc < 0 ? rc : 4 + (int64_t)n;
    }
    default: { /* FIXED: the text ends at its first NUL, or fills the width */
        size_t n;
        (void)cols_fixed(c, r, &n);
        return 4 + (int64_t)n;
    }
    }
}

int64_t ingest_pgcopy_size(const struct ingest_pgcol *cols, uint32_t ncols, uint32_t nrows)
{
    if (ncols > INGEST_PGCOPY_MAX_COLUMNS || (ncols && cols == NULL))
        return INGEST_EINVAL;
    for (uint32_t j = 0; j < ncols; j++)
        if (cols_check(&cols[j], nrows) < 0)
            return INGEST_EINVAL;
    int64_t total = HEADER_LEN + TRAILER_LEN + (int64_t)nrows * 2;
    for (uint32_t j = 0; j < ncols; j++)
        for (uint32_t r = 0; r < nrows; r++) {
            int64_t n = field_size(&cols[j], r);
            if (n < 0)
                return n;
            total += n; /* < 1600 * 2^32 rows * (4 + 2^31): no overflow of int64 */
        }
    return total;
}

static void put16(uint8_t *p, int16_t v)
{
    uint16_t u = (uint16_t)v;
    p[0] = (uint8_t)(u >> 8);
    p[1] = (uint8_t)u;
}

static void put32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)(u >> 24);
    p[1] = (uint8_t)(u >> 16);
    p[2] = (uint8_t)(u >> 8);
    p[3] = (uint8_t)u;
}

static void put64(uint8_t *p, int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)u;
        u >>= 8;
    }
}

int64_t ingest_pgcopy_encode(const struct ingest_pgcol *cols, uint32_t ncols, uint32_t nrows,
                             uint8_t *out, size_t out_cap, uint32_t *bad_row)
{
    if (ncols > INGEST_PGCOPY_MAX_COLUMNS || (ncols && cols == NULL) || out == NULL)
        return INGEST_EINVAL;
    for (uint32_t j = 0; j < ncols; j++)
        if (cols_check(&cols[j], nrows) < 0)
            return INGEST_EINVAL;
    size_t at = 0;
/* every write goes through ROOM: nothing is written past out_cap */
#define ROOM(n)                                                                                    \
    do {                                                                                           \
        if ((size_t)(n) > out_cap - at)                                                            \
            return INGEST_ENOSPC;                                                                  \
    } while (0)
    ROOM(HEADER_LEN);
    memcpy(out, SIGNATURE, sizeof SIGNATURE);
    memset(out + sizeof SIGNATURE, 0, HEADER_LEN - sizeof SIGNATURE);
    at = HEADER_LEN;
    for (uint32_t r = 0; r < nrows; r++) {
        ROOM(2);
        put16(out + at, (int16_t)ncols);
        at += 2;
        for (uint32_t j = 0; j < ncols; j++) {
            const struct ingest_pgcol *c = &cols[j];
            if (!cols_present(c, r)) {
                ROOM(4);
                put32(out + at, -1);
                at += 4;
                continue;
            }
            switch (c->kind) {
            case INGEST_PGCOL_INT8:
                ROOM(12);
                put32(out + at, 8);
                put64(out + at + 4, ((const int64_t *)c->values)[r]);
                at += 12;
                break;
            case INGEST_PGCOL_INT4: {
                int64_t v = ((const int64_t *)c->values)[r];
                if (v < INT32_MIN || v > INT32_MAX) {
                    if (bad_row != NULL)
                        *bad_row = r;
                    return INGEST_ERANGE;
                }
                ROOM(8);
                put32(out + at, 4);
                put32(out + at + 4, (int32_t)v);
                at += 8;
                break;
            }
            case INGEST_PGCOL_TEXT: {
                const uint8_t *p;
                uint32_t n = 0;
                int rc = cols_text(c, r, &p, &n);
                if (rc < 0)
                    return rc;
                if (rc == 0) {
                    ROOM(4);
                    put32(out + at, -1);
                    at += 4;
                    break;
                }
                ROOM((size_t)4 + n);
                put32(out + at, (int32_t)n);
                memcpy(out + at + 4, p, n);
                at += 4 + (size_t)n;
                break;
            }
            default: { /* FIXED, checked by cols_check */
                size_t n;
                const char *p = cols_fixed(c, r, &n);
                ROOM(4 + n);
                put32(out + at, (int32_t)n);
                memcpy(out + at + 4, p, n);
                at += 4 + n;
                break;
            }
            }
        }
    }
    ROOM(TRAILER_LEN);
    put16(out + at, -1);
    at += TRAILER_LEN;
#undef ROOM
    return (int64_t)at;
}
