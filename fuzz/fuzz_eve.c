/*
 * libFuzzer target: the EVE JSON extractor and line splitter (csrc/eve.c).
 *
 * The input is a stretch of an eve.json stream.  It is split into lines
 * the way the stream and file followers do (ingest_eve_lines), every line
 * is decoded (ingest_eve_decode, sometimes with an event-type filter taken
 * from the input's first bytes), the alerts' records are gathered as the
 * batch's verbatim pool does, and their signature hashes de-duplicated.  The
 * whole input is also decoded as one datagram and parsed as one timestamp.
 * The same lines go through the wire decoder (ingest's own rendered alerts,
 * ingest_eve_decode_wire: the "ingest" member and alert.references).
 * Records are heap buffers of exactly their length: ASan sees any read past.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

#define MAXREC 512

static uint64_t offs[MAXREC];
static uint32_t lens[MAXREC];
static struct ingest_eve_rec recs[MAXREC];
static struct ingest_alert alerts[MAXREC];
static struct ingest_eve_alert ext[MAXREC];
static struct ingest_eve_wire wire[MAXREC];
static uint32_t idx[MAXREC], first[MAXREC], tab_vals[2 * MAXREC];
static uint64_t keys[MAXREC], out_off[MAXREC], tab_keys[2 * MAXREC];

static void check_recs(unsigned n, size_t buf_len, int k)
{
    if (k < 0 && k != INGEST_ENOSPC)
        abort();
    if (k < 0)
        return; /* ENOSPC: the records after the first alert that did not fit are not written */
    for (unsigned i = 0; i < n; i++) {
        if (recs[i].status >= INGEST_EVE_NREASONS)
            abort();
        if (recs[i].status != INGEST_EVE_TRUNCATED &&
            (recs[i].off > buf_len || recs[i].len > buf_len - recs[i].off))
            abort();
        if (recs[i].etype_len && (uint64_t)recs[i].etype_off + recs[i].etype_len > recs[i].len)
            abort();
    }
    for (int j = 0; j < k; j++) {
        const struct ingest_eve_alert *x = &ext[j];
        if (x->rec >= n)
            abort();
        const struct ingest_eve_rec *r = &recs[x->rec];
        if ((x->has_sig && (uint64_t)x->sig_off + x->sig_len > r->len) ||
            (x->has_cat && (uint64_t)x->cat_off + x->cat_len > r->len))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t consumed = 0;
    int n = ingest_eve_lines(buf, size, 0, offs, lens, MAXREC, &consumed);
    if (n < 0 || n > MAXREC || consumed > size)
        abort();
    /* a filter "\nalert\n..." from the first line, when it looks like one */
    const uint8_t *filter = NULL;
    size_t filter_len = 0;
    if (size > 2 && data[0] == '\n' && n > 1) {
        filter = buf;
        filter_len = lens[0] + 1 < size ? lens[0] + 1 : size;
    }
    unsigned cap = size && (data[size - 1] & 1) ? 1 : MAXREC; /* ENOSPC path */
    int k = ingest_eve_decode(buf, size, offs, lens, NULL, (unsigned)n, filter, filter_len, recs, alerts,
                              ext, cap);
    check_recs((unsigned)n, size, k);
    if (k > 0) {
        size_t need = 0;
        for (int j = 0; j < k; j++) {
            idx[j] = ext[j].rec;
            need += recs[ext[j].rec].len;
            keys[j] = ext[j].sig_hash;
        }
        uint8_t *pool = malloc(need + 1);
        long g = ingest_eve_gather(buf, size, recs, idx, (unsigned)k, pool, need, out_off);
        if (g != (long)need)
            abort();
        if (need > 0) {
            long g2 = ingest_eve_gather(buf, size, recs, idx, (unsigned)k, pool, need - 1, out_off);
            if (g2 != INGEST_ENOSPC)
                abort();
        }
        free(pool);
        int d = ingest_dedupe_u64(keys, (unsigned)k, first, tab_keys, tab_vals, 2 * MAXREC);
        if (d < 0 || d > k)
            abort();
        for (int j = 0; j < k; j++)
            if (keys[j] && (first[j] > (uint32_t)j || keys[first[j]] != keys[j]))
                abort();
    }
    /* ingest's own rendered alerts (the NATS wire) */
    k = ingest_eve_decode_wire(buf, size, offs, lens, (unsigned)n, recs, alerts, ext, wire, cap);
    check_recs((unsigned)n, size, k);
    for (int j = 0; j < k; j++) {
        const struct ingest_eve_rec *r = &recs[ext[j].rec];
        if ((wire[j].has_app && (uint64_t)wire[j].app_off + wire[j].app_len > r->len) ||
            (wire[j].has_refs && (uint64_t)wire[j].refs_off + wire[j].refs_len > r->len) ||
            (wire[j].has_refs && (wire[j].refs_len < 2 || buf[r->off + wire[j].refs_off] != '[')) ||
            alerts[j].source == INGEST_SRC_NONE)
            abort();
    }
    /* the whole input as one datagram, maybe cut by the kernel */
    uint64_t o0 = 0;
    uint32_t l0 = (uint32_t)size;
    uint8_t fl = size && (data[0] & 0x80) ? INGEST_SLOT_TRUNC : 0;
    k = ingest_eve_decode(buf, size, &o0, &l0, &fl, 1, NULL, 0, recs, alerts, ext, 1);
    check_recs(1, size, k);
    int64_t ts;
    ingest_eve_parse_ts(buf, size, &ts);
    free(buf);
    return 0;
}
