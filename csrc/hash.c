/*
 * hash.c - the keyed hash every decoder uses for text from the wire.
 *
 * SipHash-1-3 with a per-process random key (ingest_set_hash_key).  Texts
 * come from another process (Alertpkt messages, EVE signatures and
 * categories): with a keyed hash a sender cannot craft two texts that share
 * a key, so callers may use the key to share and cache decoded text without
 * comparing bytes.  (An unkeyed hash such as FNV-1a can be inverted: a
 * sender could give its own signature the key of another one and have its
 * text shown for that other signature's alerts.)
 */
#include <string.h>

#include "ingest.h"

static uint64_t hash_k0 = 0x736f6d6570736575ull, hash_k1 = 0x646f72616e646f6dull;

void ingest_set_hash_key(uint64_t k0, uint64_t k1)
{
    hash_k0 = k0;
    hash_k1 = k1;
}

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

/* tweak separates domains: the same bytes under another tweak get an
 * unrelated key */
uint64_t ingest_keyed_hash(const uint8_t *in, size_t len, uint64_t tweak)
{
    uint64_t k1 = hash_k1 ^ tweak;
    uint64_t v0 = 0x736f6d6570736575ull ^ hash_k0, v1 = 0x646f72616e646f6dull ^ k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ hash_k0, v3 = 0x7465646279746573ull ^ k1;
    uint64_t m, b = (uint64_t)len << 56;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&m, in + i, 8); /* little-endian hosts; the key is per process anyway */
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t j = 0; i + j < len; j++)
        b |= (uint64_t)in[i + j] << (8 * j);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the 5-tuple key of alerts (ingest/flows/correlate.py: tuple_keys) ---- */
static uint64_t mix64(uint64_t h)
{
    h = (h ^ (h >> 30)) * 0xBF58476D1CE4E5B9ull;
    h = (h ^ (h >> 27)) * 0x94D049BB133111EBull;
    return h ^ (h >> 31);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

int ingest_alert_tuple_keys(const struct ingest_alert *alerts, unsigned n, int64_t *out)
{
    if (n && (alerts == NULL || out == NULL))
        return INGEST_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        const struct ingest_alert *a = &alerts[i];
        if (!(a->flags & INGEST_F_ADDRS)) {
            out[i] = 0;
            continue;
        }
        uint64_t ka[2], kb[2];
        if (a->ip_ver == 4) { /* ::ffff:a.b.c.d whatever the prefix held */
            uint64_t lo_a = be64(a->src_addr + 8), lo_b = be64(a->dst_addr + 8);
            ka[0] = kb[0] = 0;
            ka[1] = (lo_a & 0xFFFFFFFFull) | 0xFFFF00000000ull;
            kb[1] = (lo_b & 0xFFFFFFFFull) | 0xFFFF00000000ull;
        } else {
            ka[0] = be64(a->src_addr);
            ka[1] = be64(a->src_addr + 8);
            kb[0] = be64(a->dst_addr);
            kb[1] = be64(a->dst_addr + 8);
        }
        uint64_t proto = a->proto;
        int ports = (a->flags & INGEST_F_PORTS) && proto != 1 && proto != 58;
        uint64_t pa = ports ? a->src_port : 0, pb = ports ? a->dst_port : 0;
        int a_first = ka[0] < kb[0] || (ka[0] == kb[0] && ka[1] < kb[1]) ||
                      (ka[0] == kb[0] && ka[1] == kb[1] && pa <= pb);
        const uint64_t *lo = a_first ? ka : kb, *hi = a_first ? kb : ka;
        uint64_t plo = a_first ? pa : pb, phi = a_first ? pb : pa;
        uint64_t h = mix64(proto * 0x9E3779B97F4A7C15ull + ((plo << 16) | phi));
        h = mix64(h ^ lo[0]);
        h = mix64(h ^ lo[1]);
        h = mix64(h ^ hi[0]);
        h = mix64(h ^ hi[1]);
        int64_t key = (int64_t)(h >> 1);
        out[i] = key ? key : 1;
    }
    return (int)n;
}
