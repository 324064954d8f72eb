/*
 * netflow.c - NetFlow v5, NetFlow v9 and IPFIX (RFC 7011) export packets
 * into canonical flow records (struct ingest_flow), in batches.
 *
 * Everything arrives from the network: every length, count and offset is
 * checked against the datagram before use, and a packet that fails a check
 * is reported by reason (status[i]) while the next one is decoded as usual.
 * The records of sets decoded before the failure are kept (they were whole).
 *
 * State (templates, exporters) lives in caller-owned tables of fixed
 * capacity (struct ingest_nf_state): nothing here allocates.  Both tables
 * are open-addressed with a bounded probe: a lookup looks at
 * INGEST_NF_PROBE slots from the key's hash; an insert takes a free or
 * matching slot among them, or replaces the least recently used one
 * (counted), so a flood of exporters or template ids costs a bounded
 * table, never memory.
 */
#include <stddef.h>
#include <string.h>

#include "ingest.h"

#define NF_V5_HEADER 24u
#define NF_V5_RECORD 48u
#define NF_V5_MAX_COUNT 30u
#define NF_V9_HEADER 20u
#define NF_IPFIX_HEADER 16u
#define NF_VARLEN 65535u
#define NF_PEN_REVERSE 29305u /* RFC 5103: reverse information elements */

_Static_assert(sizeof(((struct ingest_nf_template *)0)->f) / sizeof(struct ingest_nf_field) == INGEST_NF_MAX_FIELDS,
               "template field array is INGEST_NF_MAX_FIELDS long");

/* What a template field does with its bytes (struct ingest_nf_field.action) */
enum {
    A_SKIP = 0,
    A_BYTES, A_PKTS, A_BYTES_TOTAL, A_PKTS_TOTAL,
    A_BYTES_REV, A_PKTS_REV, A_BYTES_TOTAL_REV, A_PKTS_TOTAL_REV,
    A_PROTO, A_TCP_FLAGS, A_TCP_FLAGS_REV,
    A_SRC_PORT, A_DST_PORT, A_SRC4, A_DST4, A_SRC6, A_DST6,
    A_ICMP_TC, A_ICMP_TYPE, A_ICMP_CODE, A_VLAN,
    A_START_UPTIME, A_END_UPTIME, A_START_S, A_END_S, A_START_MS, A_END_MS,
    A_START_US, A_END_US, A_START_NS, A_END_NS,
    A_END_REASON, A_SAMPLING, A_SYSINIT_MS, A_APP_NAME,
};

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
/* An unsigned big-endian integer of 1..8 bytes (reduced-size encoding, RFC
 * 7011 6.2); longer fields keep their last 8 bytes. */
static inline uint64_t rdn(const uint8_t *p, unsigned len)
{
    uint64_t v = 0;
    unsigned start = len > 8 ? len - 8 : 0;
    for (unsigned i = start; i < len; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t mix(const uint8_t addr[16], uint32_t a, uint32_t b)
{
    uint64_t h = 0x9E3779B97F4A7C15ull ^ a ^ ((uint64_t)b << 32);
    for (int i = 0; i < 16; i += 8) {
        uint64_t w;
        memcpy(&w, addr + i, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    h *= 0x94D049BB133111EBull;
    return (uint32_t)(h >> 32);
}

/* ---- tables ------------------------------------------------------------ */

static struct ingest_nf_exporter *exporter_get(struct ingest_nf_state *st, const uint8_t addr[16],
                                               uint32_t domain, uint8_t version)
{
    if (st->exporters == NULL || st->exporter_cap == 0)
        return NULL;
    uint32_t h = mix(addr, domain, version), cap = st->exporter_cap;
    struct ingest_nf_exporter *victim = NULL, *free_slot = NULL;
    for (uint32_t k = 0; k < INGEST_NF_PROBE && k < cap; k++) {
        struct ingest_nf_exporter *e = &st->exporters[(h + k) % cap];
        if (e->version == 0) {
            if (free_slot == NULL)
                free_slot = e;
            continue;
        }
        if (e->version == version && e->domain == domain && memcmp(e->addr, addr, 16) == 0) {
            e->stamp = ++st->clock;
            return e;
        }
        if (victim == NULL || e->stamp < victim->stamp)
            victim = e;
    }
    struct ingest_nf_exporter *e = free_slot ? free_slot : victim;
    if (e == NULL)
        return NULL;
    if (free_slot == NULL)
        st->exporters_evicted++;
    memset(e, 0, sizeof(*e));
    memcpy(e->addr, addr, 16);
    e->domain = domain;
    e->version = version;
    e->stamp = ++st->clock;
    return e;
}

static struct ingest_nf_template *template_find(struct ingest_nf_state *st, const uint8_t addr[16],
                                                uint32_t domain, uint8_t version, uint16_t id)
{
    if (st->templates == NULL || st->template_cap == 0)
        return NULL;
    uint32_t h = mix(addr, domain, (uint32_t)version << 16 | id), cap = st->template_cap;
    for (uint32_t k = 0; k < INGEST_NF_PROBE && k < cap; k++) {
        struct ingest_nf_template *t = &st->templates[(h + k) % cap];
        if (t->version == version && t->id == id && t->domain == domain &&
            memcmp(t->exporter, addr, 16) == 0) {
            t->stamp = ++st->clock;
            return t;
        }
    }
    return NULL;
}

/* The slot for (addr, domain, version, id): its current one, a free one, or
 * the least recently used of the probe window (evicted, counted). */
static struct ingest_nf_template *template_slot(struct ingest_nf_state *st, const uint8_t addr[16],
                                                uint32_t domain, uint8_t version, uint16_t id)
{
    if (st->templates == NULL || st->template_cap == 0)
        return NULL;
    uint32_t h = mix(addr, domain, (uint32_t)version << 16 | id), cap = st->template_cap;
    struct ingest_nf_template *victim = NULL, *free_slot = NULL;
    for (uint32_t k = 0; k < INGEST_NF_PROBE && k < cap; k++) {
        struct ingest_nf_template *t = &st->templates[(h + k) % cap];
        if (t->version == version && t->id == id && t->domain == domain &&
            memcmp(t->exporter, addr, 16) == 0)
            return t;
        if (t->version == 0) {
            if (free_slot == NULL)
                free_slot = t;
            continue;
        }
        if (victim == NULL || t->stamp < victim->stamp)
            victim = t;
    }
    if (free_slot)
        return free_slot;
    if (victim)
        st->templates_evicted++;
    return victim;
}

/* IPFIX withdrawal of every template of (addr, domain): a scan, but only on
 * an "all templates" withdrawal, which an exporter sends at shutdown. */
static void template_withdraw_all(struct ingest_nf_state *st, const uint8_t addr[16], uint32_t domain,
                                  uint8_t version, uint8_t options)
{
    for (uint32_t k = 0; k < st->template_cap; k++) {
        struct ingest_nf_template *t = &st->templates[k];
        if (t->version == version && t->domain == domain && t->options == options &&
            memcmp(t->exporter, addr, 16) == 0) {
            t->version = 0;
            st->templates_withdrawn++;
        }
    }
}

/* ---- templates --------------------------------------------------------- */

static uint8_t action_of(uint16_t ie, uint32_t pen, uint16_t len)
{
    if (pen == NF_PEN_REVERSE) {
        switch (ie) {
        case 1: return A_BYTES_REV;
        case 2: return A_PKTS_REV;
        case 85: return A_BYTES_TOTAL_REV;
        case 86: return A_PKTS_TOTAL_REV;
        case 6: return A_TCP_FLAGS_REV;
        default: return A_SKIP;
        }
    }
    if (pen != 0)
        return A_SKIP; /* another enterprise's field: skipped by its length */
    switch (ie) {
    case 1: return len <= 8 ? A_BYTES : A_SKIP;
    case 2: return len <= 8 ? A_PKTS : A_SKIP;
    case 85: return len <= 8 ? A_BYTES_TOTAL : A_SKIP;
    case 86: return len <= 8 ? A_PKTS_TOTAL : A_SKIP;
    case 4: return len == 1 ? A_PROTO : A_SKIP;
    case 6: return len == 1 || len == 2 ? A_TCP_FLAGS : A_SKIP;
    case 7: return len == 2 ? A_SRC_PORT : A_SKIP;
    case 11: return len == 2 ? A_DST_PORT : A_SKIP;
    case 8: return len == 4 ? A_SRC4 : A_SKIP;
    case 12: return len == 4 ? A_DST4 : A_SKIP;
    case 27: return len == 16 ? A_SRC6 : A_SKIP;
    case 28: return len == 16 ? A_DST6 : A_SKIP;
    case 32: case 139: return len == 2 ? A_ICMP_TC : A_SKIP;
    case 176: case 178: return len == 1 ? A_ICMP_TYPE : A_SKIP;
    case 177: case 179: return len == 1 ? A_ICMP_CODE : A_SKIP;
    case 58: case 243: return len == 2 ? A_VLAN : A_SKIP;
    case 22: return len == 4 ? A_START_UPTIME : A_SKIP;
    case 21: return len == 4 ? A_END_UPTIME : A_SKIP;
    case 150: return len == 4 ? A_START_S : A_SKIP;
    case 151: return len == 4 ? A_END_S : A_SKIP;
    case 152: return len == 8 ? A_START_MS : A_SKIP;
    case 153: return len == 8 ? A_END_MS : A_SKIP;
    case 154: return len == 8 ? A_START_US : A_SKIP;
    case 155: return len == 8 ? A_END_US : A_SKIP;
    case 156: return len == 8 ? A_START_NS : A_SKIP;
    case 157: return len == 8 ? A_END_NS : A_SKIP;
    case 136: return len == 1 ? A_END_REASON : A_SKIP;
    case 34: case 305: case 50: return len >= 1 && len <= 4 ? A_SAMPLING : A_SKIP;
    case 160: return len == 8 ? A_SYSINIT_MS : A_SKIP;
    case 96: return A_APP_NAME;
    default: return A_SKIP;
    }
}

/*
 * Parse one template record at p (avail bytes) into t.  Returns its length
 * in bytes, 0 for a withdrawal (IPFIX, field count 0: *withdraw set), or -1
 * when it is malformed (zero or absurd field count, fields beyond the set,
 * a field length that cannot be, a record that would be empty).
 */
static long parse_template(const uint8_t *p, size_t avail, uint8_t version, int options,
                           struct ingest_nf_template *t, uint16_t *id_out, int *withdraw)
{
    size_t pos;
    unsigned count, scope = 0;
    *withdraw = 0;
    if (version == 9) {
        if (avail < 4)
            return -1;
        *id_out = rd16(p);
        if (options) {
            /* v9 options: id, scope length (bytes), option length (bytes) */
            if (avail < 6)
                return -1;
            unsigned sl = rd16(p + 2), ol = rd16(p + 4);
            if (sl % 4 || ol % 4)
                return -1;
            scope = sl / 4;
            count = (sl + ol) / 4;
            pos = 6;
        } else {
            count = rd16(p + 2);
            pos = 4;
        }
        if (count == 0)
            return -1;
    } else {
        if (avail < 4)
            return -1;
        *id_out = rd16(p);
        count = rd16(p + 2);
        pos = 4;
        if (count == 0) {
            *withdraw = 1;
            return 4;
        }
        if (options) {
            if (avail < 6)
                return -1;
            scope = rd16(p + 4);
            pos = 6;
            if (scope == 0 || scope > count)
                return -1;
        }
    }
    if (*id_out < 256 || count > INGEST_NF_MAX_FIELDS)
        return -1;
    uint32_t fixed = 0;
    unsigned nvar = 0;
    for (unsigned i = 0; i < count; i++) {
        if (pos + 4 > avail)
            return -1; /* the template runs past its set */
        uint16_t ie = rd16(p + pos), len = rd16(p + pos + 2);
        uint32_t pen = 0;
        pos += 4;
        if (version == 10 && (ie & 0x8000)) {
            if (pos + 4 > avail)
                return -1;
            pen = rd32(p + pos);
            pos += 4;
            ie &= 0x7fff;
        }
        if (len == NF_VARLEN) {
            if (version != 10)
                return -1; /* v9 has no variable-length fields */
            nvar++;
        } else {
            fixed += len;
        }
        t->f[i].ie = ie;
        t->f[i].len = len;
        t->f[i].action = (i < scope) ? A_SKIP : action_of(ie, pen, len);
        t->f[i].reserved = 0;
    }
    /* a record must take at least one byte (else a data set would never
     * end) and fit a set (65535 bytes with its header) */
    if (fixed + nvar == 0 || fixed + nvar > 65535u - 4u)
        return -1;
    t->nfields = (uint16_t)count;
    t->scope = (uint16_t)scope;
    t->min_len = (uint16_t)(fixed + nvar);
    t->varlen = nvar > 0;
    t->options = (uint8_t)(options != 0);
    return (long)pos;
}

/* ---- records ----------------------------------------------------------- */

struct nf_ctx {
    const uint8_t *peer;
    uint8_t version;
    uint32_t domain;
    int64_t export_us;      /* the packet's export time */
    uint32_t sys_uptime;    /* v9: the header's sysUpTime (ms) */
    int64_t sysinit_ms;     /* IPFIX: the exporter's systemInitTimeMilliseconds, 0 unknown */
    uint32_t sampling;      /* the exporter's, from options records; 0 unknown */
};

static void map4(uint8_t out[16], const uint8_t *p)
{
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, p, 4);
}

static int is_mapped4(const uint8_t a[16])
{
    static const uint8_t pre[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, pre, 12) == 0;
}

/* NTP timestamp (RFC 7011 6.1.9/10: seconds since 1900, fraction) to us. */
static int64_t ntp_us(uint64_t v)
{
    int64_t s = (int64_t)(v >> 32) - 2208988800ll;
    return s * 1000000 + (int64_t)(((v & 0xffffffffull) * 1000000ull) >> 32);
}

/* Decode one data record of template t at p (exactly len bytes available
 * from p; the record may be shorter).  Returns the bytes it took, or -1
 * when a variable-length field does not fit.  With out NULL (an options
 * record) only the sampling interval and system init time are taken. */
static long decode_record(const struct ingest_nf_template *t, const uint8_t *p, size_t avail,
                          struct nf_ctx *cx, struct ingest_flow *f, uint32_t *app_off,
                          uint16_t *app_len, const uint8_t *base)
{
    size_t pos = 0;
    uint64_t bytes = 0, pkts = 0, bytes_t = 0, pkts_t = 0, rbytes = 0, rpkts = 0, rbytes_t = 0,
             rpkts_t = 0;
    int have_b = 0, have_p = 0, have_bt = 0, have_pt = 0, have_rev = 0, have_icmp = 0;
    int64_t start = 0, end = 0;
    int have_start = 0, have_end = 0;
    uint32_t up_start = 0, up_end = 0;
    int have_up_s = 0, have_up_e = 0;
    uint32_t sampling = 0;
    uint16_t icmp = 0;
    uint8_t src[16], dst[16];
    int v4s = 0, v4d = 0, v6s = 0, v6d = 0;

    for (unsigned i = 0; i < t->nfields; i++) {
        size_t len = t->f[i].len;
        if (len == NF_VARLEN) {
            /* RFC 7011 7: one length byte, or 255 and two more */
            if (pos + 1 > avail)
                return -1;
            len = p[pos++];
            if (len == 255) {
                if (pos + 2 > avail)
                    return -1;
                len = rd16(p + pos);
                pos += 2;
            }
        }
        if (pos + len > avail)
            return -1;
        const uint8_t *v = p + pos;
        pos += len;
        switch (t->f[i].action) {
        case A_BYTES: bytes = rdn(v, (unsigned)len); have_b = 1; break;
        case A_PKTS: pkts = rdn(v, (unsigned)len); have_p = 1; break;
        case A_BYTES_TOTAL: bytes_t = rdn(v, (unsigned)len); have_bt = 1; break;
        case A_PKTS_TOTAL: pkts_t = rdn(v, (unsigned)len); have_pt = 1; break;
        case A_BYTES_REV: if (len <= 8) { rbytes = rdn(v, (unsigned)len); have_rev |= 1; } break;
        case A_PKTS_REV: if (len <= 8) { rpkts = rdn(v, (unsigned)len); have_rev |= 1; } break;
        case A_BYTES_TOTAL_REV: if (len <= 8) { rbytes_t = rdn(v, (unsigned)len); have_rev |= 2; } break;
        case A_PKTS_TOTAL_REV: if (len <= 8) { rpkts_t = rdn(v, (unsigned)len); have_rev |= 2; } break;
        case A_PROTO: if (f) f->proto = v[0]; break;
        case A_TCP_FLAGS: if (f) { f->tcp_flags = v[len - 1]; f->flags |= INGEST_FF_TCP_FLAGS; } break;
        case A_TCP_FLAGS_REV: if (f && len >= 1 && len <= 2) f->tcp_flags_rev = v[len - 1]; break;
        case A_SRC_PORT: if (f) f->src_port = rd16(v); break;
        case A_DST_PORT: if (f) f->dst_port = rd16(v); break;
        case A_SRC4: map4(src, v); v4s = 1; break;
        case A_DST4: map4(dst, v); v4d = 1; break;
        case A_SRC6: memcpy(src, v, 16); v6s = 1; break;
        case A_DST6: memcpy(dst, v, 16); v6d = 1; break;
        case A_ICMP_TC: icmp = rd16(v); have_icmp = 1; break;
        case A_ICMP_TYPE: icmp = (uint16_t)((icmp & 0x00ff) | v[0] << 8); have_icmp = 1; break;
        case A_ICMP_CODE: icmp = (uint16_t)((icmp & 0xff00) | v[0]); have_icmp = 1; break;
        case A_VLAN: if (f) { f->vlan = rd16(v) & 0x0fff; f->flags |= INGEST_FF_VLAN; } break;
        case A_START_UPTIME: up_start = rd32(v); have_up_s = 1; break;
        case A_END_UPTIME: up_end = rd32(v); have_up_e = 1; break;
        case A_START_S: start = (int64_t)rd32(v) * 1000000; have_start = 1; break;
        case A_END_S: end = (int64_t)rd32(v) * 1000000; have_end = 1; break;
        case A_START_MS: start = (int64_t)(rdn(v, 8) & 0x7fffffffffffull) * 1000; have_start = 1; break;
        case A_END_MS: end = (int64_t)(rdn(v, 8) & 0x7fffffffffffull) * 1000; have_end = 1; break;
        case A_START_US: case A_START_NS: start = ntp_us(rdn(v, 8)); have_start = 1; break;
        case A_END_US: case A_END_NS: end = ntp_us(rdn(v, 8)); have_end = 1; break;
        case A_END_REASON: if (f) f->end_reason = v[0]; break;
        case A_SAMPLING: sampling = (uint32_t)rdn(v, (unsigned)len); break;
        case A_SYSINIT_MS:
            if (f == NULL)
                cx->sysinit_ms = (int64_t)(rdn(v, 8) & 0x7fffffffffffull);
            break;
        case A_APP_NAME:
            if (f && app_off && len > 0 && len <= 0xffff) {
                *app_off = (uint32_t)(v - base);
                *app_len = (uint16_t)len;
            }
            break;
        default: break;
        }
    }
    if (f == NULL) {
        /* an options record: what it says of the exporter */
        if (sampling)
            cx->sampling = sampling;
        return (long)pos;
    }
    if (!have_b && have_bt) { bytes = bytes_t; have_b = 1; }
    if (!have_p && have_pt) { pkts = pkts_t; have_p = 1; }
    if (!(have_rev & 1) && (have_rev & 2)) { rbytes = rbytes_t; rpkts = rpkts_t; }
    if (sampling == 0)
        sampling = cx->sampling;
    f->sampling = sampling ? sampling : (cx->version == 5 ? 1 : 0);
    if (sampling > 1) {
        /* sampled: the counters are estimates of the real traffic */
        bytes *= sampling; pkts *= sampling; rbytes *= sampling; rpkts *= sampling;
        f->flags |= INGEST_FF_SAMPLED;
    }
    f->bytes = bytes;
    f->pkts = pkts;
    if (have_rev) {
        f->bytes_rev = rbytes;
        f->pkts_rev = rpkts;
        f->flags |= INGEST_FF_BIFLOW;
    }
    if (v6s && v6d) {
        memcpy(f->src_addr, src, 16);
        memcpy(f->dst_addr, dst, 16);
        f->ip_ver = 6;
        f->flags |= INGEST_FF_ADDRS;
    } else if (v4s && v4d) {
        memcpy(f->src_addr, src, 16);
        memcpy(f->dst_addr, dst, 16);
        f->ip_ver = 4;
        f->flags |= INGEST_FF_ADDRS;
    }
    if (f->proto == 1 || f->proto == 58) {
        /* ICMP: the type/code IE, else Cisco's convention (type << 8 | code
         * in the destination port), as nfdump reads it */
        if (!have_icmp)
            icmp = f->dst_port;
        f->src_port = (uint16_t)(icmp >> 8);
        f->dst_port = icmp & 0xff;
        f->flags |= INGEST_FF_ICMP;
    } else if (f->proto == 6 || f->proto == 17 || f->proto == 132) {
        f->flags |= INGEST_FF_PORTS;
    } else {
        f->src_port = f->dst_port = 0;
    }
    /* times: absolute IEs, else sysUpTime-relative (v9: the header's
     * sysUpTime at export_us; IPFIX: systemInitTimeMilliseconds from an
     * options record) */
    if (!have_start && have_up_s) {
        if (cx->version == 9) {
            start = cx->export_us - (int64_t)(int32_t)(cx->sys_uptime - up_start) * 1000;
            have_start = 1;
        } else if (cx->sysinit_ms) {
            start = (cx->sysinit_ms + up_start) * 1000;
            have_start = 1;
        }
    }
    if (!have_end && have_up_e) {
        if (cx->version == 9) {
            end = cx->export_us - (int64_t)(int32_t)(cx->sys_uptime - up_end) * 1000;
            have_end = 1;
        } else if (cx->sysinit_ms) {
            end = (cx->sysinit_ms + up_end) * 1000;
            have_end = 1;
        }
    }
    if (!have_end)
        end = cx->export_us;
    if (!have_start)
        start = end;
    f->start_us = start;
    f->end_us = end;
    return (long)pos;
}

static void flow_init(struct ingest_flow *f, const struct nf_ctx *cx, uint8_t source)
{
    memset(f, 0, sizeof(*f));
    f->app_idx = -1;
    f->source = source;
    f->domain = cx->domain;
    memcpy(f->exporter_addr, cx->peer, 16);
    f->exporter_ver = is_mapped4(cx->peer) ? 4 : 6;
    f->flags = INGEST_FF_EXPORTER;
}

/* Sequence accounting: expected vs got, per exporter (v5 counts flows, v9
 * export packets, IPFIX data records). */
static void sequence(struct ingest_nf_state *st, struct ingest_nf_exporter *e, uint32_t seq,
                     uint32_t advance, int known)
{
    if (e == NULL)
        return;
    if (e->seq_valid) {
        int32_t d = (int32_t)(seq - e->next_seq);
        if (d > 0) {
            e->loss += (uint32_t)d;
            st->exporter_loss += (uint32_t)d;
        } else if (d < 0) {
            st->sequence_resets++; /* reordered, or the exporter restarted */
        }
    }
    e->next_seq = seq + advance;
    e->seq_valid = known;
}

/* ---- packets ----------------------------------------------------------- */

static int decode_v5(struct ingest_nf_state *st, const uint8_t *p, size_t n, const uint8_t *peer,
                     int replay, struct ingest_flow *out, unsigned *nout)
{
    if (n < NF_V5_HEADER)
        return INGEST_NF_SHORT_HEADER;
    unsigned count = rd16(p + 2);
    if (count == 0 || count > NF_V5_MAX_COUNT || n < NF_V5_HEADER + (size_t)count * NF_V5_RECORD)
        return INGEST_NF_BAD_LENGTH;
    uint32_t uptime = rd32(p + 4), secs = rd32(p + 8), nsecs = rd32(p + 12), seq = rd32(p + 16);
    uint32_t domain = (uint32_t)p[20] << 8 | p[21];
    uint32_t sampling = rd16(p + 22) & 0x3fff;
    struct nf_ctx cx = {.peer = peer, .version = 5, .domain = domain,
                        .export_us = (int64_t)secs * 1000000 + nsecs / 1000};
    if (!replay)
        sequence(st, exporter_get(st, peer, domain, 5), seq, count, 1);
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *r = p + NF_V5_HEADER + (size_t)i * NF_V5_RECORD;
        struct ingest_flow *f = &out[(*nout)++];
        flow_init(f, &cx, INGEST_FLOW_SRC_NETFLOW5);
        map4(f->src_addr, r);
        map4(f->dst_addr, r + 4);
        f->ip_ver = 4;
        f->flags |= INGEST_FF_ADDRS | INGEST_FF_TCP_FLAGS;
        uint64_t pk = rd32(r + 16), by = rd32(r + 20);
        uint32_t first = rd32(r + 24), last = rd32(r + 28);
        f->start_us = cx.export_us - (int64_t)(int32_t)(uptime - first) * 1000;
        f->end_us = cx.export_us - (int64_t)(int32_t)(uptime - last) * 1000;
        f->src_port = rd16(r + 32);
        f->dst_port = rd16(r + 34);
        f->tcp_flags = r[37];
        f->proto = r[38];
        f->sampling = sampling ? sampling : 1;
        if (sampling > 1) {
            pk *= sampling;
            by *= sampling;
            f->flags |= INGEST_FF_SAMPLED;
        }
        f->pkts = pk;
        f->bytes = by;
        if (f->proto == 1 || f->proto == 58) {
            uint16_t tc = f->dst_port;
            f->src_port = tc >> 8;
            f->dst_port = tc & 0xff;
            f->flags |= INGEST_FF_ICMP;
        } else if (f->proto == 6 || f->proto == 17 || f->proto == 132) {
            f->flags |= INGEST_FF_PORTS;
        } else {
            f->src_port = f->dst_port = 0;
        }
    }
    return INGEST_NF_OK;
}

/* v9 / IPFIX: the sets of one packet. */
static int decode_sets(struct ingest_nf_state *st, const uint8_t *p, size_t n, const uint8_t *peer,
                       int replay, uint32_t slot, const uint8_t *base, struct ingest_flow *out,
                       unsigned *nout, uint32_t *app_off, uint16_t *app_len,
                       struct ingest_nf_held *held, unsigned held_cap, unsigned *nheld)
{
    uint8_t version = (uint8_t)rd16(p);
    size_t hlen = version == 9 ? NF_V9_HEADER : NF_IPFIX_HEADER;
    if (n < hlen)
        return INGEST_NF_SHORT_HEADER;
    struct nf_ctx cx = {.peer = peer, .version = version};
    uint32_t seq;
    if (version == 9) {
        cx.sys_uptime = rd32(p + 4);
        cx.export_us = (int64_t)rd32(p + 8) * 1000000;
        seq = rd32(p + 12);
        cx.domain = rd32(p + 16);
    } else {
        size_t mlen = rd16(p + 2);
        if (mlen < hlen || mlen > n)
            return INGEST_NF_BAD_LENGTH;
        n = mlen; /* the message's own length; anything after it is not ours */
        cx.export_us = (int64_t)rd32(p + 4) * 1000000;
        seq = rd32(p + 8);
        cx.domain = rd32(p + 12);
    }
    struct ingest_nf_exporter *ex = exporter_get(st, peer, cx.domain, version);
    if (ex) {
        cx.sampling = ex->sampling;
        cx.sysinit_ms = ex->sysinit_ms;
    }
    uint32_t data_records = 0;
    int count_known = 1, rc = INGEST_NF_OK;
    size_t pos = hlen;
    uint16_t tpl_set = version == 9 ? 0 : 2, opt_set = version == 9 ? 1 : 3;
    while (pos + 4 <= n) {
        uint16_t sid = rd16(p + pos);
        size_t slen = rd16(p + pos + 2);
        if (slen < 4 || pos + slen > n) {
            rc = INGEST_NF_BAD_SET; /* a set length beyond the packet */
            break;
        }
        const uint8_t *s = p + pos + 4;
        size_t avail = slen - 4;
        if (sid == tpl_set || sid == opt_set) {
            size_t q = 0;
            int options = sid == opt_set;
            /* records until what is left is padding (< a minimal template) */
            while (avail - q >= 4) {
                /* a template set may end in zero padding: template id 0 is none */
                if (rd16(s + q) == 0)
                    break;
                struct ingest_nf_template tmp;
                memset(&tmp, 0, offsetof(struct ingest_nf_template, f));
                uint16_t id;
                int withdraw;
                long used = parse_template(s + q, avail - q, version, options, &tmp, &id, &withdraw);
                if (used < 0) {
                    rc = INGEST_NF_BAD_TEMPLATE;
                    break;
                }
                if (withdraw) {
                    if (id == tpl_set || id == opt_set) {
                        template_withdraw_all(st, peer, cx.domain, version, (uint8_t)options);
                    } else if (id >= 256) {
                        struct ingest_nf_template *t = template_find(st, peer, cx.domain, version, id);
                        if (t) {
                            t->version = 0;
                            st->templates_withdrawn++;
                        }
                    } else {
                        rc = INGEST_NF_BAD_TEMPLATE;
                        break;
                    }
                } else {
                    struct ingest_nf_template *t = template_slot(st, peer, cx.domain, version, id);
                    if (t) {
                        memcpy(t, &tmp, offsetof(struct ingest_nf_template, f) +
                                            (size_t)tmp.nfields * sizeof(tmp.f[0]));
                        memcpy(t->exporter, peer, 16);
                        t->domain = cx.domain;
                        t->version = version;
                        t->id = id;
                        t->stamp = ++st->clock;
                        st->templates_added++;
                    }
                }
                q += (size_t)used;
            }
            if (rc != INGEST_NF_OK)
                break;
        } else if (sid >= 256) {
            struct ingest_nf_template *t = template_find(st, peer, cx.domain, version, sid);
            if (t == NULL) {
                /* no template yet: the caller holds the set for a while */
                if (held && *nheld < held_cap) {
                    struct ingest_nf_held *h = &held[(*nheld)++];
                    h->slot = slot;
                    h->off = (uint32_t)(p + pos - base);
                    h->len = (uint32_t)slen;
                    h->template_id = sid;
                    h->version = version;
                    h->reserved = 0;
                } else {
                    st->held_overflow++;
                }
                count_known = 0;
            } else {
                size_t q = 0;
                while (avail - q >= t->min_len) {
                    long used;
                    if (t->options) {
                        used = decode_record(t, s + q, avail - q, &cx, NULL, NULL, NULL, base);
                        if (used > 0) {
                            st->options_records++;
                            if (ex) {
                                ex->sampling = cx.sampling;
                                ex->sysinit_ms = cx.sysinit_ms;
                            }
                        }
                    } else {
                        struct ingest_flow *f = &out[*nout];
                        flow_init(f, &cx, version == 9 ? INGEST_FLOW_SRC_NETFLOW9 : INGEST_FLOW_SRC_IPFIX);
                        app_off[*nout] = 0;
                        app_len[*nout] = 0;
                        used = decode_record(t, s + q, avail - q, &cx, f, &app_off[*nout],
                                             &app_len[*nout], base);
                        if (used > 0)
                            (*nout)++;
                    }
                    if (used <= 0) {
                        rc = INGEST_NF_BAD_FIELD; /* a field length that does not fit */
                        break;
                    }
                    data_records++;
                    q += (size_t)used;
                }
                if (rc != INGEST_NF_OK)
                    break;
            }
        } else {
            /* set ids 4..255 (IPFIX) / 2..255 (v9) are reserved: skipped by length */
        }
        pos += slen;
    }
    if (rc == INGEST_NF_OK && pos != n && version == 10)
        rc = INGEST_NF_BAD_SET; /* bytes after the last set that are no set */
    if (!replay)
        sequence(st, ex, seq, version == 9 ? 1 : data_records, version == 9 || count_known);
    return rc;
}

int ingest_nf_decode(struct ingest_nf_state *st, const uint8_t *slots, size_t slot_size, unsigned n,
                     const uint32_t *lens, const uint8_t *slot_flags, const uint8_t *peers,
                     int replay, struct ingest_flow *out, unsigned out_cap, uint32_t *flow_slot,
                     uint32_t *app_off, uint16_t *app_len, uint8_t *status,
                     struct ingest_nf_held *held, unsigned held_cap, unsigned *nheld,
                     unsigned *consumed)
{
    if (st == NULL || slots == NULL || lens == NULL || peers == NULL || out == NULL ||
        flow_slot == NULL || app_off == NULL || app_len == NULL || status == NULL ||
        nheld == NULL || consumed == NULL || slot_size == 0)
        return INGEST_EINVAL;
    unsigned nout = 0;
    *nheld = 0;
    *consumed = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t len = lens[i];
        /* every record takes at least one byte: a packet of len bytes gives
         * at most len records; stop before one that might not fit */
        if ((size_t)(out_cap - nout) < (len < slot_size ? len : slot_size))
            break;
        const uint8_t *p = slots + (size_t)i * slot_size;
        const uint8_t *peer = peers + (size_t)i * 16;
        unsigned before = nout;
        int rc;
        if ((slot_flags && (slot_flags[i] & INGEST_SLOT_TRUNC)) || len > slot_size)
            rc = INGEST_NF_TRUNCATED;
        else if (len < 4)
            rc = INGEST_NF_SHORT_HEADER;
        else {
            uint16_t version = rd16(p);
            if (version == 5)
                rc = decode_v5(st, p, len, peer, replay, out, &nout);
            else if (version == 9 || version == 10)
                rc = decode_sets(st, p, len, peer, replay, i, slots, out, &nout, app_off, app_len,
                                 held, held_cap, nheld);
            else
                rc = INGEST_NF_BAD_VERSION;
        }
        status[i] = (uint8_t)rc;
        st->packets++;
        for (unsigned j = before; j < nout; j++) {
            flow_slot[j] = i;
            if (rd16(p) == 5) {
                app_off[j] = 0;
                app_len[j] = 0;
            }
        }
        *consumed = i + 1;
    }
    st->flows += nout;
    return (int)nout;
}
