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
