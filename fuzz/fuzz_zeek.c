/*
 * libFuzzer target: the Zeek conn.log TSV decoder (csrc/zeek.c).
 *
 * Input: the separator byte, the number of #fields (1..64), for each of
 * the INGEST_ZEEK_NREAD read fields its column (byte % (nfields + 1) - 1:
 * -1 = absent), the unset marker's length (% 4) and bytes, then the lines.
 * The lines are a heap buffer of exactly their length (ASan sees any read
 * past it), split at '\n' as the follower splits them; every output is
 * checked against its bounds and the record's invariants.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3 + INGEST_ZEEK_NREAD)
        return 0;
    uint8_t sep = data[0];
    uint32_t nfields = 1 + data[1] % 64;
    int32_t idx[INGEST_ZEEK_NREAD];
    for (int k = 0; k < INGEST_ZEEK_NREAD; k++)
        idx[k] = (int32_t)(data[2 + k] % (nfields + 1)) - 1;
    size_t pos = 2 + INGEST_ZEEK_NREAD;
    uint32_t unset_len = data[pos++] % 4;
    if (unset_len > size - pos)
        unset_len = (uint32_t)(size - pos);
    const uint8_t *unset = data + pos;
    pos += unset_len;
    size_t len = size - pos;
    uint8_t *buf = malloc(len ? len : 1);
    memcpy(buf, data + pos, len);
    uint32_t n = 0;
    uint64_t offs[512];
    uint32_t lens[512];
    size_t start = 0;
    for (size_t i = 0; i < len && n < 512; i++)
        if (buf[i] == '\n') {
            offs[n] = start;
            lens[n++] = (uint32_t)(i + 1 - start);
            start = i + 1;
        }
    if (start < len && n < 512) { /* an unterminated last line */
        offs[n] = start;
        lens[n++] = (uint32_t)(len - start);
    }
    uint32_t cap = n ? n - (n > 1) : 1; /* one short: lines past the room are exercised */
    struct ingest_flow *out = malloc(sizeof(*out) * cap);
    uint32_t *line_of = malloc(sizeof(uint32_t) * cap), *text = malloc(sizeof(uint32_t) * 8 * cap);
    uint8_t *status = malloc(n ? n : 1);
    int m = ingest_zeek_tsv(buf, len, offs, lens, n, sep, unset, unset_len, nfields, idx, out, cap, line_of, text,
                            status);
    if (m < 0 || (uint32_t)m > cap)
        abort();
    uint32_t ok = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (status[i] > INGEST_ZEEK_EMPTY)
            abort();
        ok += status[i] == INGEST_ZEEK_OK;
    }
    if (ok != (uint32_t)m)
        abort();
    for (int j = 0; j < m; j++) {
        if (line_of[j] >= n || (j && line_of[j] <= line_of[j - 1]) || status[line_of[j]] != INGEST_ZEEK_OK)
            abort();
        for (int k = 0; k < 4; k++) {
            uint32_t o = text[8 * j + 2 * k], l = text[8 * j + 2 * k + 1];
            if (l != UINT32_MAX && ((size_t)o > len || (size_t)l > len - o))
                abort();
        }
        if ((out[j].ip_ver != 4 && out[j].ip_ver != 6) || out[j].end_us < out[j].start_us
            || out[j].source != INGEST_FLOW_SRC_ZEEK || !(out[j].flags & INGEST_FF_ADDRS))
            abort();
    }
    free(buf);
    free(out);
    free(line_of);
    free(text);
    free(status);
    return 0;
}
