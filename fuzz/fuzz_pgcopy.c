/*
 * libFuzzer target: the PostgreSQL binary COPY writer (csrc/pgcopy.c) fed
 * random column descriptors.
 *
 * Input: a control byte (columns 1..8), a row count (0..63), a capacity
 * byte, then per column a kind byte, a width byte, a NULL-flags byte and
 * (TEXT) a table size (0..7) with raw offsets and lengths; the rest of the
 * input is every column's values, then the text bytes.  Each array is
 * copied into a buffer of exactly its size (ASan sees any read past it).
 * Offsets, lengths and indexes come from the input, so table entries may
 * lie outside tdata and indexes outside their table: both must be refused.
 * Checked: size and encode agree (the encoder writes exactly the size it
 * announced, or refuses), nothing is written past out_cap, a refused size
 * means a refused encode, and the stream written parses as the format.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

#define MAXC 8

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The stream parses: header, rows of ncols fields, trailer, nothing after. */
static void check_stream(const uint8_t *s, size_t n, uint32_t ncols, uint32_t nrows)
{
    if (n < 21 || memcmp(s, "PGCOPY\n\xff\r\n\0", 11) != 0)
        abort();
    size_t at = 19;
    for (uint32_t r = 0; r < nrows; r++) {
        if (n - at < 2 || (uint32_t)(s[at] << 8 | s[at + 1]) != ncols)
            abort();
        at += 2;
        for (uint32_t j = 0; j < ncols; j++) {
            if (n - at < 4)
                abort();
            int32_t len = (int32_t)be32(s + at);
            at += 4;
            if (len == -1)
                continue;
            if (len < 0 || (size_t)len > n - at)
                abort();
            at += (size_t)len;
        }
    }
    if (n - at != 2 || s[at] != 0xff || s[at + 1] != 0xff)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    uint32_t ncols = 1 + data[0] % MAXC, nrows = data[1] % 64;
    uint8_t capmode = data[2];
    size_t at = 3;
    struct ingest_pgcol cols[MAXC];
    void *owned[MAXC * 5] = {0};
    int nowned = 0;
    memset(cols, 0, sizeof cols);
    int ok = 1;
    for (uint32_t j = 0; j < ncols && ok; j++) {
        if (size - at < 3) {
            ok = 0;
            break;
        }
        struct ingest_pgcol *c = &cols[j];
        c->kind = 1 + data[at] % 5; /* 5: an unknown kind */
        c->width = data[at + 1] % 48;
        uint8_t has_valid = data[at + 2] & 1;
        at += 3;
        if (c->kind == INGEST_PGCOL_TEXT) {
            if (size - at < 1) {
                ok = 0;
                break;
            }
            c->tcount = data[at++] % 8;
            if (size - at < (size_t)c->tcount * 8) {
                ok = 0;
                break;
            }
            uint32_t *off = malloc(c->tcount * 4 + 1), *len = malloc(c->tcount * 4 + 1);
            owned[nowned++] = off;
            owned[nowned++] = len;
            for (uint32_t k = 0; k < c->tcount; k++) {
                off[k] = rd32(data + at) % 4096;
                len[k] = rd32(data + at + 4) % 4096;
                if (data[at] & 0x80) /* now and then: wrap-around sizes */
                    len[k] = rd32(data + at + 4);
                at += 8;
            }
            c->toff = off;
            c->tlen = len;
        }
        size_t esz = c->kind == INGEST_PGCOL_TEXT ? 4 : c->kind == INGEST_PGCOL_FIXED ? c->width : 8;
        size_t need = esz * nrows;
        uint8_t *vals = malloc(need + 1);
        owned[nowned++] = vals;
        for (size_t k = 0; k < need; k++)
            vals[k] = at < size ? data[at++] : (uint8_t)k;
        if (c->kind == INGEST_PGCOL_TEXT)
            for (uint32_t r = 0; r < nrows; r++) { /* mostly in the table, some NULL, some not */
                int32_t v;
                memcpy(&v, vals + 4 * r, 4);
                if ((v & 0x70) != 0x70)
                    v = (int32_t)((uint32_t)v % (c->tcount + 2)) - 1;
                memcpy(vals + 4 * r, &v, 4);
            }
        if (c->kind == INGEST_PGCOL_INT4)
            for (uint32_t r = 0; r < nrows; r++) { /* mostly in int32's range */
                int64_t v;
                memcpy(&v, vals + 8 * r, 8);
                if ((v & 0xf) != 0xf)
                    v = (int32_t)v;
                memcpy(vals + 8 * r, &v, 8);
            }
        c->values = nrows ? vals : NULL;
        if (has_valid) {
            uint8_t *valid = malloc(nrows + 1);
            owned[nowned++] = valid;
            for (uint32_t r = 0; r < nrows; r++)
                valid[r] = at < size ? data[at++] & 1 : 1;
            c->valid = valid;
        }
    }
    if (ok) {
        /* the text bytes: the rest of the input, copied to a buffer of its size */
        size_t tn = size - at;
        uint8_t *tdata = malloc(tn + 1);
        memcpy(tdata, data + at, tn);
        for (uint32_t j = 0; j < ncols; j++)
            if (cols[j].kind == INGEST_PGCOL_TEXT) {
                cols[j].tdata = tdata;
                cols[j].tdata_len = tn;
            }
        int64_t need = ingest_pgcopy_size(cols, ncols, nrows);
        size_t cap = need >= 0 ? (size_t)need : 256;
        if (capmode & 1) /* too small by some bytes */
            cap = cap > (size_t)(capmode >> 1) ? cap - (capmode >> 1) : 0;
        uint8_t *out = malloc(cap + 16);
        memset(out, 0xa5, cap + 16);
        uint32_t bad = 0;
        int64_t got = ingest_pgcopy_encode(cols, ncols, nrows, out, cap, &bad);
        for (size_t k = cap; k < cap + 16; k++)
            if (out[k] != 0xa5)
                abort(); /* written past out_cap */
        if (need < 0 && got >= 0)
            abort(); /* size refused what encode took */
        if (got >= 0) {
            if (got != need)
                abort();
            check_stream(out, (size_t)got, ncols, nrows);
        } else if (got == INGEST_ERANGE && bad >= nrows) {
            abort();
        } else if (got == INGEST_ENOSPC && need >= 0 && cap >= (size_t)need) {
            abort();
        }
        free(out);
        free(tdata);
    }
    for (int k = 0; k < nowned; k++)
        free(owned[k]);
    return 0;
}
