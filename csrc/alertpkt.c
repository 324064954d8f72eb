/*
 * alertpkt.c - batch decoder for Snort / Barnyard2 alert_unixsock datagrams.
 *
 * Layouts (../shared/spec/FORMATS.md sections 1-3, checked against the
 * senders' headers):
 *
 *   variant        size   header ints  pkt[] at / size   event at  event order
 *   Snort 2 / 3    65864  host         292 / 65535       65828     host
 *   Snort 2 appid  65928  host         292 / 65535       65828     host (+app_name@65864)
 *   Barnyard2 64   1856   host         300 / 1514        1816      big-endian, sid before gid
 *   Barnyard2 32   1844   host         292 / 1514        1808      big-endian, sid before gid
 *
 * Everything in a datagram comes from another process: every offset and
 * length is checked against the bytes actually present before it is used.
 * Only the headers needed are touched; the 64 KiB packet area is never
 * copied.
 */
#include <string.h>

#include "ingest.h"

#define NOPACKET_STRUCT 0x1u

#define ETH_HLEN 14u
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_IPV6 0x86ddu
#define ETHERTYPE_VLAN 0x8100u
#define ETHERTYPE_QINQ 0x88a8u
#define ETHERTYPE_QINQ_OLD 0x9100u

/* Host-order and big-endian loads that never assume alignment. */
static inline uint32_t ld32h(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint32_t ld32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t ld16be(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Where the header fields of one variant sit. */
struct layout {
    uint32_t caplen, dlthdr, nethdr, transhdr, data, val; /* host order */
    uint32_t pkt, pkt_area;
    uint32_t event;
    uint8_t source;
    uint8_t be_event; /* Barnyard2: Unified2EventCommon, big-endian */
};

static const struct layout LAYOUT_SNORT = {264, 272, 276, 280, 284, 288, 292, 65535,
                                           65828, INGEST_SRC_SNORT, 0};
static const struct layout LAYOUT_SNORT_APPID = {264, 272, 276, 280, 284, 288, 292, 65535,
                                                 65828, INGEST_SRC_SNORT_APPID, 0};
static const struct layout LAYOUT_BY2 = {272, 280, 284, 288, 292, 296, 300, 1514,
                                         1816, INGEST_SRC_BARNYARD2, 1};
static const struct layout LAYOUT_BY2_32 = {264, 272, 276, 280, 284, 288, 292, 1514,
                                            1808, INGEST_SRC_BARNYARD2_32, 1};

static void set_v4(uint8_t dst[16], const uint8_t *src4)
{
    memset(dst, 0, 10);
    dst[10] = 0xff;
    dst[11] = 0xff;
    memcpy(dst + 12, src4, 4);
}

static int is_l4_port_proto(uint8_t proto)
{
    return proto == 6 || proto == 17 || proto == 132 || proto == 33; /* TCP UDP SCTP DCCP */
}

/*
 * Walk Ethernet and up to four 802.1Q / 802.1ad tags starting at `off`,
 * never past `limit`.  Returns the offset of the L3 header and its ethertype,
 * or 0 when the frame does not fit.
 */
static uint32_t walk_ethernet(const uint8_t *pkt, uint32_t off, uint32_t limit, uint16_t *ethertype,
                              struct ingest_alert *a)
{
    if ((uint64_t)off + ETH_HLEN > limit)
        return 0;
    uint16_t et = ld16be(pkt + off + 12);
    off += ETH_HLEN;
    for (int depth = 0; depth < 4 && (et == ETHERTYPE_VLAN || et == ETHERTYPE_QINQ ||
                                      et == ETHERTYPE_QINQ_OLD);
         depth++) {
        if ((uint64_t)off + 4 > limit)
            return 0;
        if (!(a->flags & INGEST_F_VLAN)) { /* the outermost tag names the VLAN */
            a->vlan = ld16be(pkt + off) & 0x0fff;
            a->flags |= INGEST_F_VLAN;
        }
        et = ld16be(pkt + off + 2);
        off += 4;
    }
    *ethertype = et;
    return off;
}

/* Parse an IPv4 or IPv6 header at ip (within valid bytes) and its L4 ports. */
static uint8_t parse_ip(const uint8_t *pkt, uint32_t ip, uint32_t valid, struct ingest_alert *a)
{
    uint32_t l4;
    uint8_t proto;
    int first_fragment = 1;

    if (ip >= valid)
        return INGEST_DG_BAD_IPHDR;
    unsigned version = pkt[ip] >> 4;
    if (version == 4) {
        /* 20-byte minimum header must be present before any field is read. */
        if ((uint64_t)ip + 20 > valid)
            return INGEST_DG_BAD_IPHDR;
        uint32_t ihl = (uint32_t)(pkt[ip] & 0x0f) * 4;
        if (ihl < 20)
            return INGEST_DG_BAD_IPHDR;
        proto = pkt[ip + 9];
        a->ip_ver = 4;
        set_v4(a->src_addr, pkt + ip + 12);
        set_v4(a->dst_addr, pkt + ip + 16);
        first_fragment = (ld16be(pkt + ip + 6) & 0x1fff) == 0;
        l4 = ip + ihl;
    } else if (version == 6) {
        if ((uint64_t)ip + 40 > valid)
            return INGEST_DG_BAD_IPHDR;
        a->ip_ver = 6;
        memcpy(a->src_addr, pkt + ip + 8, 16);
        memcpy(a->dst_addr, pkt + ip + 24, 16);
        proto = pkt[ip + 6];
        l4 = ip + 40;
        /* Extension headers: bounded walk, each length checked before use. */
        for (int hops = 0; hops < 8; hops++) {
            if (proto != 0 && proto != 43 && proto != 60 && proto != 44 && proto != 51)
                break;
            if ((uint64_t)l4 + 8 > valid) {
                first_fragment = 0; /* L4 not captured */
                break;
            }
            uint8_t next = pkt[l4];
            uint32_t hlen;
            if (proto == 44) {
                if ((ld16be(pkt + l4 + 2) & 0xfff8) != 0)
                    first_fragment = 0;
                hlen = 8;
            } else if (proto == 51) {
                hlen = ((uint32_t)pkt[l4 + 1] + 2) * 4;
            } else {
                hlen = ((uint32_t)pkt[l4 + 1] + 1) * 8;
            }
            proto = next;
            l4 += hlen;
        }
    } else {
        return INGEST_DG_BAD_IPHDR;
    }
    a->proto = proto;
    a->flags |= INGEST_F_ADDRS;
    if (!first_fragment)
        return INGEST_DG_OK;
    /* Ports / ICMP type+code only when their bytes were captured. */
    if (is_l4_port_proto(proto)) {
        if ((uint64_t)l4 + 4 <= valid) {
            a->src_port = ld16be(pkt + l4);
            a->dst_port = ld16be(pkt + l4 + 2);
            a->flags |= INGEST_F_PORTS;
        }
    } else if ((proto == 1 && version == 4) || (proto == 58 && version == 6)) {
        if ((uint64_t)l4 + 2 <= valid) {
            a->src_port = pkt[l4];
            a->dst_port = pkt[l4 + 1];
            a->flags |= INGEST_F_ICMP;
        }
    }
    return INGEST_DG_OK;
}

/*
 * Fill addresses, ports, protocol and VLAN from pkt[].  Returns INGEST_DG_OK
 * or a packet-anomaly reason; on an anomaly the alert keeps its event fields
 * and gets INGEST_F_PKT_ANOMALY instead of packet fields.
 */
static uint8_t parse_packet(const uint8_t *dg, const struct layout *L, struct ingest_alert *a)
{
    uint32_t val = ld32h(dg + L->val);
    if (val & NOPACKET_STRUCT)
        return INGEST_DG_OK; /* no packet: the event alone is the alert */

    const uint8_t *pkt = dg + L->pkt;
    uint32_t caplen = ld32h(dg + L->caplen);
    uint32_t dlthdr = ld32h(dg + L->dlthdr);
    uint32_t nethdr = ld32h(dg + L->nethdr);
    uint32_t transhdr = ld32h(dg + L->transhdr);
    uint8_t st = INGEST_DG_OK;

    a->flags |= INGEST_F_PACKET;
    /* caplen comes from the wire: never let it reach past pkt[].  Barnyard2
     * sets caplen to the Unified2 packet length and copies at most 1514
     * bytes, so a larger caplen is normal there; Snort's pkt[] holds any
     * packet (65535), so a larger caplen is malformed. */
    uint32_t valid = caplen;
    if (caplen > L->pkt_area) {
        valid = L->pkt_area;
        if (!L->be_event) {
            st = INGEST_DG_BAD_CAPLEN;
            a->flags |= INGEST_F_PKT_ANOMALY;
        }
    }
    /* Offsets come from the wire: each one used must lie inside the captured
     * bytes (the payload offset `data` is not used, so not held against the
     * packet). */
    if ((dlthdr && dlthdr >= valid) || (nethdr && nethdr >= valid) ||
        (transhdr && transhdr >= valid)) {
        a->flags |= INGEST_F_PKT_ANOMALY;
        return INGEST_DG_BAD_OFFSET;
    }
    if (valid == 0)
        return st;

    uint8_t ip_st;
    if (nethdr != 0) {
        /* Snort 2 sets nethdr for IPv4 only, Snort 3 and Barnyard2 for IPv6
         * too; either way the version nibble must agree. */
        unsigned v = pkt[nethdr] >> 4;
        if (v != 4 && v != 6) {
            a->flags |= INGEST_F_PKT_ANOMALY;
            return INGEST_DG_BAD_IPHDR;
        }
        uint16_t et;
        if ((uint64_t)dlthdr + ETH_HLEN <= nethdr)
            walk_ethernet(pkt, dlthdr, nethdr, &et, a); /* VLAN only */
        ip_st = parse_ip(pkt, nethdr, valid, a);
    } else if (transhdr != 0) {
        /* Snort 2 sets transhdr only for IPv4, so nethdr=0 here means a raw
         * (DLT_RAW) IPv4 packet at offset 0. */
        ip_st = parse_ip(pkt, 0, valid, a);
    } else {
        /* Snort 2 leaves nethdr = 0 for IPv6 and non-IP packets: the DLT is
         * not in the message, so parse Ethernet (the usual sensor DLT). */
        uint16_t et = 0;
        uint32_t l3 = walk_ethernet(pkt, dlthdr, valid, &et, a);
        if (l3 != 0 && l3 < valid &&
            ((et == ETHERTYPE_IPV4 && pkt[l3] >> 4 == 4) ||
             (et == ETHERTYPE_IPV6 && pkt[l3] >> 4 == 6))) {
            ip_st = parse_ip(pkt, l3, valid, a);
        } else if (dlthdr == 0 && pkt[0] >> 4 == 6 && valid >= 40) {
            a->flags &= (uint8_t)~INGEST_F_VLAN;
            a->vlan = 0;
            ip_st = parse_ip(pkt, 0, valid, a); /* raw IPv6 */
        } else {
            return st; /* not IP (ARP, ...): no addresses, not an error */
        }
    }
    if (ip_st != INGEST_DG_OK) {
        a->flags |= INGEST_F_PKT_ANOMALY;
        a->flags &= (uint8_t)~(INGEST_F_ADDRS | INGEST_F_PORTS | INGEST_F_ICMP);
        a->ip_ver = 0;
        a->proto = 0;
        memset(a->src_addr, 0, 16);
        memset(a->dst_addr, 0, 16);
        a->src_port = a->dst_port = 0;
        return ip_st;
    }
    return st;
}

static uint8_t decode_one(const uint8_t *dg, const struct layout *L, struct ingest_alert *a)
{
    const uint8_t *ev = dg + L->event;
    uint32_t sec, usec;

    memset(a, 0, sizeof(*a));
    a->msg_idx = -1;
    a->app_idx = -1;
    a->source = L->source;
    if (L->be_event) {
        /* Unified2EventCommon: sensor, event_id, sec, usec, sid, gid, rev,
         * class, priority - network order, sid before gid. */
        a->sensor_id = ld32be(ev);
        a->event_id = ld32be(ev + 4);
        sec = ld32be(ev + 8);
        usec = ld32be(ev + 12);
        a->sid = ld32be(ev + 16);
        a->gid = ld32be(ev + 20);
        a->rev = ld32be(ev + 24);
        a->class_id = ld32be(ev + 28);
        a->priority = ld32be(ev + 32);
    } else {
        /* Event: gid, sid, rev, class, priority, event_id, event_reference,
         * ref_time.sec, ref_time.usec - host order.  ref_time is the alert
         * time; pkth.ts is the packet's and is zero without a packet. */
        a->gid = ld32h(ev);
        a->sid = ld32h(ev + 4);
        a->rev = ld32h(ev + 8);
        a->class_id = ld32h(ev + 12);
        a->priority = ld32h(ev + 16);
        a->event_id = ld32h(ev + 20);
        sec = ld32h(ev + 28);
        usec = ld32h(ev + 32);
    }
    a->ts_us = (int64_t)sec * 1000000 + usec;
    return parse_packet(dg, L, a);
}

/* alertmsg is at offset 0 in every variant; the senders always NUL-terminate
 * it, but it is bounded here by its field size regardless.  The key also
 * depends on the source kind: the caller reads the text of a Snort Alertpkt
 * (which Snort 3 sends quoted) differently from Barnyard2's, so the same
 * bytes from two kinds must not share a string. */
static uint64_t msg_hash(const uint8_t *msg, uint8_t source)
{
    const uint8_t *z = memchr(msg, 0, INGEST_ALERTMSG_LEN);
    return ingest_keyed_hash(msg, z ? (size_t)(z - msg) : INGEST_ALERTMSG_LEN, source);
}

/* Batch-local dedup of message keys: open addressing on the stack. */
#define DEDUP_BITS 12
#define DEDUP_SIZE (1u << DEDUP_BITS)

static void dedup_keys(const uint64_t *key, unsigned k, uint32_t *first)
{
    uint32_t table[DEDUP_SIZE]; /* alert index + 1; 0 = empty */
    if (k > DEDUP_SIZE / 2) {   /* too many for the table: no sharing */
        for (unsigned j = 0; j < k; j++)
            first[j] = j;
        return;
    }
    memset(table, 0, sizeof(table));
    for (unsigned j = 0; j < k; j++) {
        uint32_t h = (uint32_t)(key[j] >> (64 - DEDUP_BITS));
        for (;;) {
            uint32_t e = table[h];
            if (e == 0) {
                table[h] = j + 1;
                first[j] = j;
                break;
            }
            if (key[e - 1] == key[j]) {
                first[j] = e - 1;
                break;
            }
            h = (h + 1) & (DEDUP_SIZE - 1); /* the table is at most half full */
        }
    }
}

int ingest_alertpkt_decode(const uint8_t *slots, size_t slot_size, unsigned n,
                           const uint32_t *lens, const uint8_t *slot_flags,
                           struct ingest_alert *out, unsigned out_cap,
                           uint32_t *slot_of, uint8_t *status, uint64_t *msg_key,
                           uint32_t *msg_first)
{
    if (slots == NULL || lens == NULL || out == NULL || slot_of == NULL || status == NULL ||
        out_cap < n || slot_size == 0)
        return INGEST_EINVAL;

    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *dg = slots + (size_t)i * slot_size;
        uint32_t len = lens[i];
        const struct layout *L;

        if ((slot_flags != NULL && (slot_flags[i] & INGEST_SLOT_TRUNC)) || len > slot_size) {
            status[i] = INGEST_DG_TRUNCATED;
            continue;
        }
        switch (len) {
        case INGEST_ALERTPKT_SNORT_LEN:
            L = &LAYOUT_SNORT;
            break;
        case INGEST_ALERTPKT_SNORT_APPID_LEN:
            L = &LAYOUT_SNORT_APPID;
            break;
        case INGEST_ALERTPKT_BY2_LEN:
            L = &LAYOUT_BY2;
            break;
        case INGEST_ALERTPKT_BY2_32_LEN:
            L = &LAYOUT_BY2_32;
            break;
        default:
            status[i] = INGEST_DG_BAD_LENGTH;
            continue;
        }
        status[i] = decode_one(dg, L, &out[k]);
        slot_of[k] = i;
        if (msg_key != NULL)
            msg_key[k] = msg_hash(dg, L->source); /* alertmsg: offset 0 in every variant */
        k++;
    }
    if (msg_key != NULL && msg_first != NULL)
        dedup_keys(msg_key, k, msg_first);
    return (int)k;
}

size_t ingest_text_len(const uint8_t *p, size_t max)
{
    if (p == NULL)
        return 0;
    const uint8_t *z = memchr(p, 0, max);
    return z ? (size_t)(z - p) : max;
}
