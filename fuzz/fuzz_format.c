/*
 * libFuzzer target: the JSON renderer (csrc/format.c, csrc/jsonw.h) fed
 * random alert structs and string tables.
 *
 * Input: a control byte (profile, output capacity, chaining), up to 16 raw
 * struct ingest_alert, then the string pool; the string tables' entries and
 * the per-alert indices (message, app, category, extra members, verbatim
 * record) come from the input too, so entries may lie outside their pool
 * (must be refused) and indices anywhere.  Every line rendered from valid
 * UTF-8 text, without caller-supplied fragments, must be one JSON object:
 * the EVE extractor (csrc/eve.c, a full RFC 8259 validator) checks it.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

#define MAXA 16
#define MAXS 32

static int utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            k = 2;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            k = 3;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            k = 4;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < k)
            return 0;
        for (size_t j = 1; j < k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        if ((k == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 4 && (cp < 0x10000 || cp > 0x10ffff)))
            return 0;
        i += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    unsigned ctl = data[0], na = data[1] % (MAXA + 1), ns = data[2] % (MAXS + 1);
    const uint8_t *p = data + 3, *end = data + size;
    struct ingest_alert alerts[MAXA];
    int32_t cat[MAXA], extra[MAXA], raw[MAXA];
    for (unsigned i = 0; i < na; i++) {
        memset(&alerts[i], 0, sizeof alerts[i]);
        size_t take = (size_t)(end - p) < sizeof alerts[i] ? (size_t)(end - p) : sizeof alerts[i];
        memcpy(&alerts[i], p, take);
        p += take;
        /* indices: mostly in range, sometimes not (-1 and beyond the table) */
        alerts[i].msg_idx = (int32_t)(alerts[i].msg_idx % (MAXS + 2)) - 1;
        alerts[i].app_idx = (int32_t)(alerts[i].app_idx % (MAXS + 2)) - 1;
        cat[i] = (int32_t)((uint8_t)alerts[i].reserved % (MAXS + 2)) - 1;
        extra[i] = (ctl & 0x40) ? (int32_t)(alerts[i].vlan % (MAXS + 2)) - 1 : -1;
        raw[i] = (ctl & 0x80) && (alerts[i].rev & 1) ? (int32_t)(alerts[i].rev % (MAXS + 2)) - 1 : -1;
    }
    uint32_t off[MAXS], len[MAXS];
    for (unsigned k = 0; k < ns; k++) {
        uint8_t b[4] = {0, 0, 0, 0};
        for (int j = 0; j < 4 && p < end; j++)
            b[j] = *p++;
        off[k] = (uint32_t)b[0] << 8 | b[1];
        len[k] = (uint32_t)b[2] << 8 | b[3];
    }
    /* the pool: the rest, in a heap buffer of exactly its size */
    size_t plen = (size_t)(end - p);
    uint8_t *pool = malloc(plen ? plen : 1);
    memcpy(pool, p, plen);
    int valid = 1, text_ok = 1;
    for (unsigned k = 0; k < ns; k++) {
        if (!(ctl & 0x20) && plen) { /* usually keep entries inside the pool */
            off[k] %= (uint32_t)plen + 1;
            len[k] %= (uint32_t)(plen - off[k]) + 1;
        }
        if (off[k] > plen || len[k] > plen - off[k])
            valid = 0;
        else if (!utf8_ok(pool + off[k], len[k]))
            text_ok = 0;
    }
    /* one table, or the same entries split over two chained tables */
    unsigned split = (ctl & 0x10) ? ns / 2 : ns;
    struct ingest_strtab t2 = {pool, off + split, len + split, plen, ns - split, NULL};
    struct ingest_strtab t1 = {pool, off, len, plen, split, split < ns ? &t2 : NULL};
    /* extra members and references: caller-rendered JSON, spliced verbatim */
    struct ingest_fmt_idx idx = {cat, (ctl & 0x40) ? extra : NULL, (ctl & 0x80) ? raw : NULL,
                                 (ctl & 0x40) ? extra : NULL};
    int profile = (ctl & 1) ? INGEST_FMT_TRISUL : INGEST_FMT_EVE;
    /* small (ENOSPC paths), or the most a line can take: the fixed part,
     * three strings escaped 6x, the verbatim extra members and references */
    size_t cap = (ctl & 2) ? (size_t)(ctl >> 2) * 7 : 64 + (size_t)na * (2048 + plen * 20);
    uint8_t *out = malloc(cap ? cap : 1);
    uint32_t ends[MAXA];
    long w = ingest_format_json(na ? alerts : NULL, na, &t1, &idx, profile, out, cap, ends);
    if (!valid) {
        if (w != INGEST_EINVAL)
            abort();
    } else if (w == INGEST_ENOSPC) {
        if (!(ctl & 2))
            abort(); /* the generous capacity always fits */
    } else {
        if (w < 0 || (size_t)w > cap)
            abort();
        uint32_t prev = 0;
        for (unsigned i = 0; i < na; i++) {
            if (ends[i] < prev || ends[i] > (uint64_t)w || ends[i] == prev || out[ends[i] - 1] != '\n')
                abort();
            /* a line the renderer made itself must be one JSON object */
            if (text_ok && profile == INGEST_FMT_EVE && (ctl & 0xc0) == 0) {
                struct ingest_eve_rec rec;
                struct ingest_alert a;
                struct ingest_eve_alert x;
                uint64_t o = prev;
                uint32_t l = ends[i] - prev;
                int k = ingest_eve_decode(out, (size_t)w, &o, &l, NULL, 1, NULL, 0, &rec, &a, &x, 1);
                if (k < 0 || rec.status == INGEST_EVE_INVALID_JSON || rec.status == INGEST_EVE_NOT_OBJECT)
                    abort();
            }
            prev = ends[i];
        }
    }
    /* the address texts */
    char src[MAXA * 46], dst[MAXA * 46];
    if (ingest_format_addrs(alerts, na, src, dst) != (int)na)
        abort();
    for (unsigned i = 0; i < na; i++) {
        if (src[i * 46 + 45] != 0 || dst[i * 46 + 45] != 0)
            abort();
        /* every address text parses back to its bytes (inet_pton): the
         * dotted quad to the last 4, RFC 5952 text to all 16 */
        if (!(alerts[i].flags & INGEST_F_ADDRS))
            continue;
        const char *txt[2] = {src + i * 46, dst + i * 46};
        const uint8_t *bin[2] = {alerts[i].src_addr, alerts[i].dst_addr};
        for (int j = 0; j < 2; j++) {
            uint8_t back[16];
            if (strchr(txt[j], ':') != NULL) {
                if (inet_pton(AF_INET6, txt[j], back) != 1 || memcmp(back, bin[j], 16) != 0)
                    abort();
            } else if (inet_pton(AF_INET, txt[j], back) != 1 || memcmp(back, bin[j] + 12, 4) != 0) {
                abort();
            }
        }
    }
    free(out);
    free(pool);
    return 0;
}
