/*
 * libFuzzer target: the NetFlow v5 / v9 / IPFIX decoder (csrc/netflow.c).
 *
 * Input: a sequence of datagrams, each a 2-byte little-endian length and
 * its bytes, decoded one per call through one decoder state (templates
 * learned from one datagram are used by the next, as on a socket) whose
 * tables are small (8 templates, 4 exporters) so eviction and the bounded
 * probes are exercised.  The first byte picks the exporter address of each
 * datagram (bit k: exporter 1 for datagram k) and replay mode (bit 7).
 * Each datagram is a heap buffer of exactly its length, so ASan sees any
 * read past it; every output is checked against its bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ingest_nf_template templates[8];
    static struct ingest_nf_exporter exporters[4];
    struct ingest_nf_state st;
    memset(&st, 0, sizeof(st));
    memset(templates, 0, sizeof(templates));
    memset(exporters, 0, sizeof(exporters));
    st.templates = templates;
    st.template_cap = 8;
    st.exporters = exporters;
    st.exporter_cap = 4;
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    size_t pos = 1;
    for (unsigned k = 0; pos + 2 <= size && k < 64; k++) {
        size_t len = (size_t)data[pos] | (size_t)data[pos + 1] << 8;
        pos += 2;
        if (len > size - pos)
            len = size - pos;
        uint8_t *pkt = malloc(len ? len : 1);
        memcpy(pkt, data + pos, len);
        pos += len;
        uint8_t peer[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1};
        peer[15] = (uint8_t)(1 + ((sel >> (k % 7)) & 1));
        uint32_t lens[1] = {(uint32_t)len};
        unsigned cap = len ? (unsigned)len : 1;
        struct ingest_flow *out = malloc(sizeof(*out) * cap);
        uint32_t *flow_slot = malloc(sizeof(uint32_t) * cap), *app_off = malloc(sizeof(uint32_t) * cap);
        uint16_t *app_len = malloc(sizeof(uint16_t) * cap);
        uint8_t status[1];
        struct ingest_nf_held held[4];
        unsigned nheld = 0, consumed = 0;
        int n = ingest_nf_decode(&st, pkt, len ? len : 1, 1, lens, NULL, peer, sel >> 7, out, cap,
                                 flow_slot, app_off, app_len, status, held, 4, &nheld, &consumed);
        if (n < 0 || (unsigned)n > cap || consumed > 1 || nheld > 4 || status[0] >= INGEST_NF_NREASONS)
            abort();
        for (int j = 0; j < n; j++) {
            if (flow_slot[j] != 0 || (app_len[j] && (size_t)app_off[j] + app_len[j] > len))
                abort();
            if (out[j].ip_ver != 0 && out[j].ip_ver != 4 && out[j].ip_ver != 6)
                abort();
        }
        for (unsigned j = 0; j < nheld; j++)
            if (held[j].slot != 0 || (size_t)held[j].off + held[j].len > len)
                abort();
        free(out);
        free(flow_slot);
        free(app_off);
        free(app_len);
        free(pkt);
    }
    return 0;
}
