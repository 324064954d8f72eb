/*
 * libFuzzer target: the Snort / Barnyard2 Alertpkt decoder (csrc/alertpkt.c).
 *
 * Input: one selector byte, then the datagram's first bytes.  Selector % 5
 * picks the variant (Snort 65,864 / Snort appid 65,928 / Barnyard2 1,856 /
 * Barnyard2-32 1,844 bytes; the rest of the datagram is zero, as in a real
 * one with a short packet) or, for 4, the input's bytes are the datagram as
 * they are (any length: the bad-length and truncated paths).  Bit 3 marks the
 * slot as cut by the kernel (MSG_TRUNC); bit 4 decodes the datagram twice in
 * one batch (message-key sharing).  Each slot is a heap buffer of exactly
 * the datagram's length, so ASan sees any read past it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

static const uint32_t LENS[4] = {INGEST_ALERTPKT_SNORT_LEN, INGEST_ALERTPKT_SNORT_APPID_LEN,
                                 INGEST_ALERTPKT_BY2_LEN, INGEST_ALERTPKT_BY2_32_LEN};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned sel = data[0];
    const uint8_t *body = data + 1;
    size_t blen = size - 1;
    size_t len = sel % 5 < 4 ? LENS[sel % 5] : blen;
    unsigned n = (sel & 0x10) ? 2 : 1;
    if (len == 0)
        len = 1; /* a slot is never empty */
    /* n slots of exactly len bytes, back to back */
    uint8_t *slots = calloc(n, len);
    for (unsigned i = 0; i < n; i++)
        memcpy(slots + (size_t)i * len, body, blen < len ? blen : len);
    uint32_t lens[2] = {(uint32_t)(sel % 5 < 4 ? len : blen), (uint32_t)(sel % 5 < 4 ? len : blen)};
    uint8_t flags[2] = {(sel & 8) ? INGEST_SLOT_TRUNC : 0, 0};
    struct ingest_alert out[2];
    uint32_t slot_of[2], first[2];
    uint8_t status[2];
    uint64_t key[2];
    if (sel % 5 == 4 && blen == 0) {
        free(slots);
        return 0;
    }
    int k = ingest_alertpkt_decode(slots, len, n, lens, flags, out, n, slot_of, status, key, first);
    if (k < 0 || (unsigned)k > n)
        abort();
    for (int j = 0; j < k; j++) {
        const struct ingest_alert *a = &out[j];
        if (slot_of[j] >= n || first[j] > (uint32_t)j)
            abort();
        /* the invariants the rest of the pipeline relies on */
        if ((a->flags & INGEST_F_ADDRS) && a->ip_ver != 4 && a->ip_ver != 6)
            abort();
        if (!(a->flags & INGEST_F_ADDRS) && (a->flags & (INGEST_F_PORTS | INGEST_F_ICMP)))
            abort();
        if (a->msg_idx != -1 || a->app_idx != -1)
            abort();
        if (ingest_text_len(slots + (size_t)slot_of[j] * len, INGEST_ALERTMSG_LEN) > INGEST_ALERTMSG_LEN)
            abort();
    }
    for (unsigned i = 0; i < n; i++)
        if (status[i] >= INGEST_DG_NREASONS)
            abort();
    free(slots);
    return 0;
}
