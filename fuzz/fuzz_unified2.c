/*
 * libFuzzer target: the Unified2 decoder (csrc/unified2.c) driven the way
 * ingest/unified2.py drives it: decode with small row arrays (so the "full,
 * grow and go on" path runs), resynchronise after an insane length, unwind
 * the last event as the streaming follower does, then render every event's
 * JSON members with the joins the caller builds.
 *
 * The input is a spool file.  Its first byte also picks the row capacities
 * and whether variable-length bytes are copied into a pool or referenced in
 * place.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

#define CAP_MAX 4096

struct rows {
    struct ingest_alert alerts[CAP_MAX];
    struct ingest_u2_event ev[CAP_MAX];
    struct ingest_u2_packet pk[CAP_MAX];
    int32_t pk_event[CAP_MAX];
    struct ingest_u2_extra ex[CAP_MAX];
    int32_t ex_event[CAP_MAX];
    uint32_t odd[64];
    uint64_t counts[257];
    uint32_t pk_idx[CAP_MAX], pk_start[CAP_MAX + 1];
    uint32_t ex_idx[CAP_MAX], ex_start[CAP_MAX + 1];
    uint32_t ends[CAP_MAX];
};

static struct rows R;

/* The caller's join: rows that name an event (>= 0) grouped by event. */
static void group(const int32_t *owner, uint32_t nrows, uint32_t nev, uint32_t *idx, uint32_t *start)
{
    memset(start, 0, (nev + 1) * sizeof *start);
    for (uint32_t j = 0; j < nrows; j++)
        if (owner[j] >= 0 && (uint32_t)owner[j] < nev)
            start[owner[j] + 1]++;
    for (uint32_t i = 0; i < nev; i++)
        start[i + 1] += start[i];
    uint32_t fill[CAP_MAX + 1];
    memcpy(fill, start, (nev + 1) * sizeof *start);
    for (uint32_t j = 0; j < nrows; j++)
        if (owner[j] >= 0 && (uint32_t)owner[j] < nev)
            idx[fill[owner[j]]++] = j;
}

static int grow(uint32_t *cap, uint32_t used, uint32_t max)
{
    if (used < *cap || *cap >= max)
        return 0;
    *cap = *cap * 2 > max ? max : *cap * 2;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0];
    /* the decoder gets exactly the input's bytes in a buffer of their size,
     * so ASan sees any read past it */
    uint8_t *buf = malloc(size);
    memcpy(buf, data, size);
    size_t pool_cap = size + 1;
    uint8_t *pool = (mode & 1) ? malloc(pool_cap) : NULL;

    struct ingest_u2_out o;
    memset(&o, 0, sizeof o);
    memset(R.counts, 0, sizeof R.counts);
    o.alerts = R.alerts;
    o.ev = R.ev;
    o.pk = R.pk;
    o.pk_event = R.pk_event;
    o.ex = R.ex;
    o.ex_event = R.ex_event;
    o.odd = R.odd;
    o.counts = R.counts;
    o.pool = pool;
    o.pool_cap = pool ? pool_cap : 0;
    o.last_ev = -1;
    /* small capacities first: the FULL path grows them */
    uint32_t cap = (mode >> 1 & 7) + 1;
    o.ev_cap = o.pk_cap = o.ex_cap = cap;
    o.odd_cap = 2;

    size_t pos = 0, stop = 0;
    int reason = 0, rounds = 0;
    while (pos < size && rounds++ < 100000) {
        int k = ingest_u2_decode(buf, size, pos, 1000, &o, &stop, &reason);
        if (k < 0)
            abort(); /* the arguments are valid: never EINVAL */
        if (stop < pos || stop > size)
            abort();
        pos = stop;
        if (reason == INGEST_U2_FULL) {
            /* grow every array that is full, as the caller does */
            int grown = 0;
            grown |= grow(&o.ev_cap, o.nev, CAP_MAX);
            grown |= grow(&o.pk_cap, o.npk, CAP_MAX);
            grown |= grow(&o.ex_cap, o.nex, CAP_MAX);
            grown |= grow(&o.odd_cap, o.nodd, 64);
            if (!grown)
                break; /* the harness's own limit */
            continue;
        }
        if (reason == INGEST_U2_BADLEN) {
            long nxt = ingest_u2_resync(buf, size, pos + 1);
            if (nxt < 0)
                break;
            if ((size_t)nxt <= pos || (size_t)nxt >= size)
                abort();
            pos = (size_t)nxt;
            o.snap_valid = 0;
            continue;
        }
        break; /* END, PARTIAL, PCAP */
    }
    if (o.nev > o.ev_cap || o.npk > o.pk_cap || o.nex > o.ex_cap || o.pool_used > o.pool_cap)
        abort();
    /* streaming: take the open event back (sometimes) */
    if (mode & 0x10) {
        long back = ingest_u2_unwind(buf, pos, &o);
        if (back > (long)pos)
            abort();
    }
    /* render every event's members over the pool (or the buffer itself) */
    const uint8_t *p = pool ? pool : buf;
    size_t plen = pool ? o.pool_used : size;
    group(o.pk_event, o.npk, o.nev, R.pk_idx, R.pk_start);
    group(o.ex_event, o.nex, o.nev, R.ex_idx, R.ex_start);
    /* the caller's loop: start small, double on ENOSPC */
    size_t out_cap = (mode & 0x20) ? 16 : 4096;
    for (;;) {
        uint8_t *out = malloc(out_cap);
        long w = ingest_u2_render(R.ev, o.nev, p, plen, R.pk, o.npk, R.pk_idx, R.pk_start, R.ex,
                                  o.nex, R.ex_idx, R.ex_start, out, out_cap, R.ends);
        free(out);
        if (w > (long)out_cap || (w < 0 && w != INGEST_ENOSPC))
            abort();
        if (w != INGEST_ENOSPC || out_cap > ((size_t)64 << 20))
            break;
        out_cap *= 2;
    }
    free(pool);
    free(buf);
    return 0;
}
