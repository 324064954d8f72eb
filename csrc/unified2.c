/*
 * unified2.c - batch decoder for Unified2 spool files.
 *
 * Layouts: ../shared/spec/FORMATS.md section 4 (checked against Snort 2
 * Unified2_common.h / spo_unified2.c, Snort 3 src/log/unified2.h and
 * Suricata's alert-unified2-alert.c).  Every multi-byte field is big-endian.
 *
 * One pass over caller-owned memory: ingest_u2_decode walks the 8-byte
 * record headers and converts each body, as it goes, into a fixed-size row
 * of its family (alert + event, packet, extra-data) in caller-owned arrays;
 * variable-length bytes (packet data, extra-data blobs, app_name, Snort 3
 * HTTP fields) stay where they are (offsets into the caller's buffer) or
 * are copied into a caller-owned pool, referenced by (offset, length).
 * Packets and extra-data are joined to the event right before them on the
 * way; the (rare) others are left to the caller's general join.  Walking
 * the file once, with the header and body in the same cache lines, is what
 * makes it fast: the file is read from memory exactly once.
 * ingest_u2_render then writes, per event, the JSON members that the alert
 * formatter splices into the alert object (packets in base64, extra-data).
 *
 * The file comes from another process and may be damaged, truncated or not
 * Unified2 at all: every length is checked against the bytes present before
 * a byte is read, and a body shorter than its type's fixed part is counted
 * as malformed instead of being read.
 */
#include <string.h>

#include "ingest.h"
#include "jsonw.h"

static inline uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Smallest body of each record type this decoder reads (0: not ours). */
static uint32_t min_body(uint32_t type)
{
    switch (type) {
    case INGEST_U2_IDS_EVENT:
        return 52;
    case INGEST_U2_IDS_EVENT_IPV6:
        return 76;
    case INGEST_U2_IDS_EVENT_VLAN:
    case INGEST_U2_IDS_EVENT_APPID:
        return 60;
    case INGEST_U2_IDS_EVENT_IPV6_VLAN:
    case INGEST_U2_IDS_EVENT_APPID_IPV6:
        return 84;
    case INGEST_U2_EVENT3:
        return 96; /* app_name and later are optional (length-checked) */
    case INGEST_U2_PACKET:
    case INGEST_U2_BUFFER:
        return 28;
    case INGEST_U2_EXTRA_DATA:
        return 32;
    default:
        return 0;
    }
}

int ingest_u2_is_event(uint32_t type)
{
    return type == INGEST_U2_IDS_EVENT || type == INGEST_U2_IDS_EVENT_IPV6 ||
           type == INGEST_U2_IDS_EVENT_VLAN || type == INGEST_U2_IDS_EVENT_IPV6_VLAN ||
           type == INGEST_U2_IDS_EVENT_APPID || type == INGEST_U2_IDS_EVENT_APPID_IPV6 ||
           type == INGEST_U2_EVENT3;
}

/* Copy len bytes into the pool (or, without a pool, record where they are in
 * the file).  Returns 0 when the pool is full. */
struct pool {
    uint8_t *p;
    size_t cap, used;
};

static int pool_put(struct pool *pl, const uint8_t *src, size_t len, uint64_t buf_pos,
                    uint64_t *off)
{
    if (pl->p == NULL) {
        *off = buf_pos;
        return 1;
    }
    if (pl->cap - pl->used < len)
        return 0;
    memcpy(pl->p + pl->used, src, len);
    *off = pl->used;
    pl->used += len;
    return 1;
}

/* A NUL-padded text field of at most max bytes at p: its length. */
static size_t text_len(const uint8_t *p, size_t max)
{
    const uint8_t *z = memchr(p, 0, max);
    return z ? (size_t)(z - p) : max;
}

/* IPv4 as the canonical ::ffff:a.b.c.d */
static void v4_mapped(uint8_t dst[16], const uint8_t *v4)
{
    memset(dst, 0, 10);
    dst[10] = dst[11] = 0xff;
    memcpy(dst + 12, v4, 4);
}

static void ports_flags(struct ingest_alert *a)
{
    switch (a->proto) {
    case 1:  /* ICMP */
    case 58: /* ICMPv6 */
        a->flags |= INGEST_F_ICMP;
        break;
    case 6:
    case 17:
    case 132:
        a->flags |= INGEST_F_PORTS;
        break;
    default:
        break;
    }
}

/* ---- event text fields -------------------------------------------------- */

static int put_text(struct pool *pl, const uint8_t *b, uint32_t blen, uint32_t at, uint32_t max,
                    uint64_t body_pos, uint32_t *off, uint16_t *len)
{
    *off = 0;
    *len = 0;
    if (blen <= at)
        return 1; /* field absent in this (shorter) layout */
    uint32_t room = blen - at < max ? blen - at : max;
    size_t l = text_len(b + at, room);
    if (l == 0)
        return 1;
    uint64_t o;
    if (!pool_put(pl, b + at, l, body_pos + at, &o))
        return 0;
    *off = (uint32_t)o; /* fits: the caller keeps pools and buffers < 4 GiB */
    *len = (uint16_t)l;
    return 1;
}

/* ---- Snort 3's verdict (type 114) ---------------------------------------- */

/*
 * Snort 3 writes Active::get_action() and Active::get_status() (snort3
 * src/packet_io/active.h): snort_action is an ActiveActionType (0 trust,
 * 1 allow, 2 hold, 3 retry, 4 rewrite, 5 drop, 6 block, 7 reset) and
 * snort_status an ActiveStatus (0 allow, 1 can't, 2 would, 3 force).
 * Snort's own text for the pair (Active::act_str, what alert_csv prints as
 * "action"), or NULL for codes this table does not know.
 */
static const char *snort3_verdict(uint8_t action, uint8_t status)
{
    static const char *const act_str[8][4] = {
        {"trust", "error", "error", "error"},
        {"allow", "error", "error", "error"},
        {"hold", "error", "error", "error"},
        {"retry", "error", "error", "error"},
        {"rewrite", "cant_rewrite", "would_rewrite", "force_rewrite"},
        {"drop", "cant_drop", "would_drop", "force_drop"},
        {"block", "cant_block", "would_block", "force_block"},
        {"reset", "cant_reset", "would_reset", "force_reset"},
    };
    return action < 8 && status < 4 ? act_str[action][status] : NULL;
}

/* "blocked" means the packet really did not go through: drop, block or
 * reset that Snort could carry out (status allow or force).  "would"
 * (inline-test, IDS) and "can't" did not stop anything: allowed, as are
 * trust, allow, hold, retry and rewrite.  Codes outside Snort's enums say
 * nothing we can read: unknown (omitted), the raw bytes stay in the JSON. */
static uint8_t snort3_action(uint8_t action, uint8_t status)
{
    if (action >= 8 || status >= 4)
        return INGEST_ACTION_UNKNOWN;
    if (action >= 5 && (status == 0 || status == 3))
        return INGEST_ACTION_BLOCKED;
    return INGEST_ACTION_ALLOWED;
}

/* ---- the one pass: walk the headers, decode every record into its rows -- */

/* An event record (min_body already checked) into alert a and event row e. */
static int put_event(struct pool *pl, const uint8_t *b, uint32_t t, uint32_t blen,
                     uint64_t rec_off, uint64_t body_pos, struct ingest_alert *a,
                     struct ingest_u2_event *e)
{
    memset(a, 0, sizeof *a);
    memset(e, 0, sizeof *e);
    e->offset = rec_off;
    e->type = t;
    e->length = blen;
    a->source = INGEST_SRC_UNIFIED2;
    a->msg_idx = -1;
    a->app_idx = -1;
    a->sensor_id = be32(b);
    a->event_id = be32(b + 4);
    a->ts_us = (int64_t)be32(b + 8) * 1000000 + be32(b + 12);
    if (t == INGEST_U2_EVENT3) {
        /* Snort 3: gid before sid; addresses are 16 bytes, IPv4-mapped,
         * with the versions in the nibbles of byte 92. */
        a->gid = be32(b + 16);
        a->sid = be32(b + 20);
        a->rev = be32(b + 24);
        a->class_id = be32(b + 28);
        a->priority = be32(b + 32);
        e->policy_context = be32(b + 36);
        e->policy_inspect = be32(b + 40);
        e->policy_detect = be32(b + 44);
        e->mpls_label = be32(b + 80);
        a->src_port = be16(b + 84);
        a->dst_port = be16(b + 86);
        a->vlan = be16(b + 88);
        uint8_t ver = b[92];
        e->ip_ver_raw = ver;
        a->proto = b[93];
        e->snort_status = b[94];
        e->snort_action = b[95];
        unsigned sv = ver >> 4, dv = ver & 0xf;
        if (sv == 4)
            v4_mapped(a->src_addr, b + 48 + 12);
        else
            memcpy(a->src_addr, b + 48, 16);
        if (dv == 4)
            v4_mapped(a->dst_addr, b + 64 + 12);
        else
            memcpy(a->dst_addr, b + 64, 16);
        if (sv == 4 || sv == 6) {
            a->ip_ver = (uint8_t)sv;
            a->flags |= INGEST_F_ADDRS;
            ports_flags(a);
        }
        a->action = snort3_action(e->snort_action, e->snort_status);
        if (!put_text(pl, b, blen, 96, 64, body_pos, &e->text_off[0], &e->text_len[0]))
            return 0;
        if (blen >= 168) {
            e->http_request_size = be32(b + 160);
            e->http_response_size = be32(b + 164);
        }
        static const uint32_t at[5] = {168, 248, 264, 520, 776};
        static const uint32_t mx[5] = {80, 16, 256, 256, 256};
        for (int f = 0; f < 5; f++)
            if (!put_text(pl, b, blen, at[f], mx[f], body_pos, &e->text_off[f + 1],
                          &e->text_len[f + 1]))
                return 0;
    } else {
        a->sid = be32(b + 16);
        a->gid = be32(b + 20);
        a->rev = be32(b + 24);
        a->class_id = be32(b + 28);
        a->priority = be32(b + 32);
        int v6 = t == INGEST_U2_IDS_EVENT_IPV6 || t == INGEST_U2_IDS_EVENT_IPV6_VLAN ||
                 t == INGEST_U2_IDS_EVENT_APPID_IPV6;
        const uint8_t *p;
        if (v6) {
            memcpy(a->src_addr, b + 36, 16);
            memcpy(a->dst_addr, b + 52, 16);
            a->ip_ver = 6;
            p = b + 68;
        } else {
            v4_mapped(a->src_addr, b + 36);
            v4_mapped(a->dst_addr, b + 40);
            a->ip_ver = 4;
            p = b + 44;
        }
        a->flags |= INGEST_F_ADDRS;
        a->src_port = be16(p);
        a->dst_port = be16(p + 2);
        a->proto = p[4];
        e->impact_flag = p[5];
        e->impact = p[6];
        e->blocked = p[7];
        ports_flags(a);
        /* impact_flag 0x20 (U2_FLAG_BLOCKED; Suricata's packet_action)
         * or blocked == 1 (U2_BLOCKED_FLAG_BLOCKED) means dropped;
         * 2 "would" and 3 "can't" were not dropped. */
        a->action = ((e->impact_flag & 0x20) || e->blocked == 1) ? INGEST_ACTION_BLOCKED
                                                                  : INGEST_ACTION_ALLOWED;
        if (t != INGEST_U2_IDS_EVENT && t != INGEST_U2_IDS_EVENT_IPV6) {
            const uint8_t *q = p + 8; /* mpls_label, vlanId, pad2 (policy id) */
            e->mpls_label = be32(q);
            a->vlan = be16(q + 4);
            e->policy_detect = be16(q + 6);
            /* app_name follows when the record is long enough (Snort 2
             * open-appid 111/112, Snort 3 legacy 104/105: 16 or 64 B) */
            uint32_t app_at = (uint32_t)(q + 8 - b);
            if (!put_text(pl, b, blen, app_at, 64, body_pos, &e->text_off[0], &e->text_len[0]))
                return 0;
        }
    }
    if (a->vlan)
        a->flags |= INGEST_F_VLAN;
    return 1;
}

/* A packet (2) or buffer (3) record (at least 28 bytes of body). */
static int put_packet(struct pool *pl, const uint8_t *b, uint32_t t, uint32_t blen,
                      uint64_t rec_off, uint64_t body_pos, struct ingest_u2_packet *pk)
{
    memset(pk, 0, sizeof *pk);
    pk->offset = rec_off;
    pk->type = t;
    pk->sensor_id = be32(b);
    pk->event_id = be32(b + 4);
    pk->event_second = be32(b + 8);
    pk->packet_second = be32(b + 12);
    pk->packet_microsecond = be32(b + 16);
    pk->linktype = be32(b + 20);
    pk->packet_length = be32(b + 24);
    /* packet_length comes from the wire: trust the record length */
    uint32_t avail = blen - 28;
    pk->data_len = pk->packet_length < avail ? pk->packet_length : avail;
    if (pk->packet_length != avail)
        pk->flags |= INGEST_U2_BAD_LENGTH;
    return pool_put(pl, b + 28, pk->data_len, body_pos + 28, &pk->data_off);
}

/* An extra-data record (at least 32 bytes of body). */
static int put_extra(struct pool *pl, const uint8_t *b, uint32_t blen, uint64_t rec_off,
                     uint64_t body_pos, struct ingest_u2_extra *x)
{
    memset(x, 0, sizeof *x);
    x->offset = rec_off;
    x->event_type = be32(b);
    x->event_length = be32(b + 4);
    x->sensor_id = be32(b + 8);
    x->event_id = be32(b + 12);
    x->event_second = be32(b + 16);
    x->info_type = be32(b + 20);
    x->data_type = be32(b + 24);
    x->blob_length = be32(b + 28);
    /* blob_length counts data_type and itself (N + 8); the record
     * length is what is really there */
    uint32_t avail = blen - 32;
    uint32_t want = x->blob_length >= 8 ? x->blob_length - 8 : 0;
    x->data_len = want < avail ? want : avail;
    if (x->blob_length < 8 || want != avail)
        x->flags |= INGEST_U2_BAD_LENGTH;
    const uint8_t *d = b + 32;
    switch (x->info_type) {
    case INGEST_U2_XDATA_XFF_IPV4:
        if (x->data_len == 4) {
            v4_mapped(x->addr, d);
            x->addr_ver = 4;
        }
        break;
    case INGEST_U2_XDATA_XFF_IPV6:
    case INGEST_U2_XDATA_IPV6_SRC:
    case INGEST_U2_XDATA_IPV6_DST:
        if (x->data_len == 16) {
            memcpy(x->addr, d, 16);
            x->addr_ver = 6;
        }
        break;
    default:
        break;
    }
    return pool_put(pl, d, x->data_len, body_pos + 32, &x->data_off);
}

/* Packets and extra-data belong to the event before them when (event_id,
 * event_second) match: the writers put them right after it.  Anything else
 * is INGEST_U2_JOIN_LATER for the caller's general join. */
static int32_t join_last(const struct ingest_u2_out *o, uint32_t id, uint32_t sec)
{
    return (o->last_ev >= 0 && o->last_id == id && o->last_sec == sec) ? o->last_ev
                                                                        : INGEST_U2_JOIN_LATER;
}

static int magic_is_pcap(uint32_t m)
{
    /* libpcap (us/ns, either byte order) or pcapng */
    return m == 0xa1b2c3d4u || m == 0xd4c3b2a1u || m == 0xa1b23c4du || m == 0x4d3cb2a1u ||
           m == 0x0a0d0d0au;
}

int ingest_u2_decode(const uint8_t *buf, size_t n, size_t from, uint64_t base,
                     struct ingest_u2_out *o, size_t *stop, int *reason)
{
    if ((buf == NULL && n) || from > n || o == NULL || stop == NULL || reason == NULL ||
        o->counts == NULL || o->pool_used > o->pool_cap || o->nev > o->ev_cap ||
        o->npk > o->pk_cap || o->nex > o->ex_cap || o->nodd > o->odd_cap ||
        (o->ev_cap && (o->alerts == NULL || o->ev == NULL)) ||
        (o->pk_cap && (o->pk == NULL || o->pk_event == NULL)) ||
        (o->ex_cap && (o->ex == NULL || o->ex_event == NULL)) || (o->odd_cap && o->odd == NULL))
        return INGEST_EINVAL;
    struct pool pl = {o->pool, o->pool_cap, o->pool_used};
    size_t pos = from;
    int k = 0;
    *reason = INGEST_U2_END;
    while (pos < n) {
        /* The walk is a chain of dependent loads (each length says where
         * the next header is): fetch ahead so DRAM latency overlaps. */
        __builtin_prefetch(buf + pos + 512);
        __builtin_prefetch(buf + pos + 1024);
        if (n - pos < INGEST_U2_HDR_LEN) { /* short header: wait for more */
            *reason = INGEST_U2_PARTIAL;
            break;
        }
        uint32_t type = be32(buf + pos), len = be32(buf + pos + 4);
        if (magic_is_pcap(type)) {
            *reason = INGEST_U2_PCAP;
            break;
        }
        if (len > INGEST_U2_MAX_RECORD) {
            *reason = INGEST_U2_BADLEN;
            break;
        }
        if (n - pos - INGEST_U2_HDR_LEN < len) { /* short body: wait for more */
            *reason = INGEST_U2_PARTIAL;
            break;
        }
        const uint8_t *b = buf + pos + INGEST_U2_HDR_LEN;
        uint64_t rec_off = base + pos, body_pos = pos + INGEST_U2_HDR_LEN;
        /* A row that does not fit stops the walk before this record, so
         * the caller can grow its arrays and go on from *stop. */
        int full = 0;
        if (ingest_u2_is_event(type)) {
            /* any event record ends the previous event (unwinding point) */
            o->snap_valid = 1;
            o->snap_pos = pos;
            o->snap_pool = pl.used;
            o->snap_nev = o->nev;
            o->snap_npk = o->npk;
            o->snap_nex = o->nex;
            o->snap_nodd = o->nodd;
            o->snap_malformed = o->malformed;
            o->snap_last_ev = o->last_ev;
            o->snap_last_id = o->last_id;
            o->snap_last_sec = o->last_sec;
            if (len < min_body(type)) {
                o->malformed++;
            } else if (o->nev == o->ev_cap) {
                full = 1;
            } else {
                uint32_t i = o->nev;
                if (!put_event(&pl, b, type, len, rec_off, body_pos, &o->alerts[i], &o->ev[i]))
                    full = 1;
                else {
                    o->nev++;
                    o->last_ev = (int32_t)i;
                    o->last_id = o->alerts[i].event_id;
                    o->last_sec = be32(b + 8);
                }
            }
        } else if (type == INGEST_U2_PACKET || type == INGEST_U2_BUFFER) {
            if (len < 28) {
                o->malformed++;
            } else if (o->npk == o->pk_cap) {
                full = 1;
            } else {
                uint32_t i = o->npk;
                struct ingest_u2_packet *p = &o->pk[i];
                if (!put_packet(&pl, b, type, len, rec_off, body_pos, p))
                    full = 1;
                else {
                    int32_t ev = join_last(o, p->event_id, p->event_second);
                    o->pk_event[i] = ev;
                    if (ev >= 0)
                        o->alerts[ev].flags |= INGEST_F_PACKET;
                    o->npk++;
                }
            }
        } else if (type == INGEST_U2_EXTRA_DATA) {
            if (len < 32) {
                o->malformed++;
            } else if (o->nex == o->ex_cap) {
                full = 1;
            } else {
                uint32_t i = o->nex;
                struct ingest_u2_extra *x = &o->ex[i];
                if (!put_extra(&pl, b, len, rec_off, body_pos, x))
                    full = 1;
                else {
                    o->ex_event[i] = join_last(o, x->event_id, x->event_second);
                    o->nex++;
                }
            }
        } else if (type >= 256) {
            if (o->nodd == o->odd_cap)
                full = 1;
            else
                o->odd[o->nodd++] = type;
        }
        if (full) {
            /* undo this record's snapshot side effects: nothing was written */
            *reason = INGEST_U2_FULL;
            break;
        }
        o->counts[type < 256 ? type : 256]++;
        k++;
        pos += INGEST_U2_HDR_LEN + (size_t)len;
    }
    o->pool_used = pl.used;
    *stop = pos;
    return k;
}

long ingest_u2_unwind(const uint8_t *buf, size_t n, struct ingest_u2_out *o)
{
    if (o == NULL || o->counts == NULL || (buf == NULL && n))
        return INGEST_EINVAL;
    if (!o->snap_valid || o->snap_pos > n)
        return -1;
    /* the records from the snapshot to n were all counted: walk them again */
    for (size_t pos = o->snap_pos; n - pos >= INGEST_U2_HDR_LEN;) {
        uint32_t type = be32(buf + pos), len = be32(buf + pos + 4);
        if (len > INGEST_U2_MAX_RECORD || n - pos - INGEST_U2_HDR_LEN < len)
            break;
        o->counts[type < 256 ? type : 256]--;
        pos += INGEST_U2_HDR_LEN + (size_t)len;
    }
    o->pool_used = o->snap_pool;
    o->nev = o->snap_nev;
    o->npk = o->snap_npk;
    o->nex = o->snap_nex;
    o->nodd = o->snap_nodd;
    o->malformed = o->snap_malformed;
    o->last_ev = o->snap_last_ev;
    o->last_id = o->snap_last_id;
    o->last_sec = o->snap_last_sec;
    o->snap_valid = 0;
    return (long)o->snap_pos;
}

/* ---- resync after a bad header ----------------------------------------- */

/* How many bytes of a candidate header plausible() reads: the packet and
 * extra-data checks look into the body (packet_length at body + 24,
 * event_type/event_length at body + 0/4). */
static size_t plausible_need(uint32_t t)
{
    switch (t) {
    case INGEST_U2_PACKET:
    case INGEST_U2_BUFFER:
        return INGEST_U2_HDR_LEN + 28;
    case INGEST_U2_EXTRA_DATA:
        return INGEST_U2_HDR_LEN + 8;
    default:
        return INGEST_U2_HDR_LEN;
    }
}

/* Does a plausible record header (a type a writer produces, with a length
 * that fits that type) start at p, with avail bytes from p to the end of the
 * buffer?  1 yes, 0 no, -1 cannot tell yet: the bytes it would look at are
 * not all there (never read past avail: the buffer may end at an unmapped
 * page).  Used only to resynchronise. */
static int plausible(const uint8_t *p, size_t avail)
{
    if (avail < INGEST_U2_HDR_LEN)
        return -1;
    uint32_t t = be32(p), len = be32(p + 4);
    if (len > INGEST_U2_MAX_RECORD)
        return 0;
    switch (t) {
    case INGEST_U2_IDS_EVENT:
        return len == 52;
    case INGEST_U2_IDS_EVENT_IPV6:
        return len == 76;
    case INGEST_U2_IDS_EVENT_VLAN:
    case INGEST_U2_IDS_EVENT_APPID:
        return len == 60 || len == 76 || len == 124;
    case INGEST_U2_IDS_EVENT_IPV6_VLAN:
    case INGEST_U2_IDS_EVENT_APPID_IPV6:
        return len == 84 || len == 100 || len == 148;
    case INGEST_U2_EVENT3:
        return len == 160 || len == 1032;
    case INGEST_U2_PACKET:
    case INGEST_U2_BUFFER:
        if (len < 28)
            return 0;
        if (avail < plausible_need(t))
            return -1;
        return be32(p + 8 + 24) == len - 28;
    case INGEST_U2_EXTRA_DATA:
        if (len < 32)
            return 0;
        if (avail < plausible_need(t))
            return -1;
        return be32(p + 8) == 4 && be32(p + 12) == len;
    default:
        return 0;
    }
}

long ingest_u2_resync(const uint8_t *buf, size_t n, size_t from)
{
    if (buf == NULL && n)
        return INGEST_EINVAL;
    /* A candidate is a plausible header whose record either reaches the end
     * of the buffer or beyond (the rest is still to come), or is followed by
     * a header that is plausible too or not yet complete.  A candidate that
     * cannot be judged with the bytes present ends the scan: -1, decode
     * again when more data has arrived. */
    for (size_t pos = from; pos < n; pos++) {
        int ok = plausible(buf + pos, n - pos);
        if (ok < 0)
            return -1;
        if (!ok)
            continue;
        size_t next = pos + INGEST_U2_HDR_LEN + be32(buf + pos + 4);
        if (next >= n || plausible(buf + next, n - next) != 0)
            return (long)pos;
    }
    return -1;
}

/* ---- JSON members for the alert formatter ------------------------------- */

static const char *const XDATA_NAMES[] = {
    NULL,           "xff_ipv4",      "xff_ipv6",   "reviewed_by", "gzip_data",
    "smtp_filename", "smtp_mailfrom", "smtp_rcptto", "smtp_email_hdrs", "http_uri",
    "http_hostname", "ipv6_src",      "ipv6_dst",   "jsnorm_data",
};

static void put_cstr(struct jsonw *w, const char *s) { jw_bytes(w, s, strlen(s)); }

/* One extra-data entry: {"type":9,"name":"http_uri","value":"..."}; binary
 * (gzip, normalized JavaScript, unknown types) as "base64". */
static void put_xdata(struct jsonw *w, const struct ingest_u2_extra *x, const uint8_t *pool)
{
    const uint8_t *d = pool + x->data_off;
    JW_U64(w, "{\"type\":", x->info_type);
    if (x->info_type >= 1 && x->info_type <= 13) {
        JW_LIT(w, ",\"name\":\"");
        put_cstr(w, XDATA_NAMES[x->info_type]);
        jw_byte(w, '"');
    }
    switch (x->info_type) {
    case INGEST_U2_XDATA_XFF_IPV4:
    case INGEST_U2_XDATA_XFF_IPV6:
    case INGEST_U2_XDATA_IPV6_SRC:
    case INGEST_U2_XDATA_IPV6_DST:
        if (x->addr_ver) {
            JW_LIT(w, ",\"value\":");
            jw_ip(w, x->addr, x->addr_ver == 4);
        } else { /* wrong size for an address: keep the bytes */
            JW_LIT(w, ",\"base64\":");
            jw_b64(w, d, x->data_len);
        }
        break;
    case 3: case 5: case 6: case 7: case 8: case 9: case 10:
        JW_LIT(w, ",\"value\":");
        jw_latin1(w, d, x->data_len);
        break;
    default: /* gzip_data, jsnorm_data, unknown: bytes */
        JW_LIT(w, ",\"base64\":");
        jw_b64(w, d, x->data_len);
        break;
    }
    jw_byte(w, '}');
}

/* Members are separated by commas: the first one written opens the list. */
static void sep(struct jsonw *w, int *first)
{
    if (!*first)
        jw_byte(w, ',');
    *first = 0;
}

static void render_one(struct jsonw *w, const struct ingest_u2_event *e, const uint8_t *pool,
                       const struct ingest_u2_packet *pk, const uint32_t *pk_idx, uint32_t npk,
                       const struct ingest_u2_extra *ex, const uint32_t *ex_idx, uint32_t nex)
{
    int first = 1;
    /* EVE-compatible: the first packet as "packet" + "packet_info" */
    if (npk) {
        const struct ingest_u2_packet *p0 = &pk[pk_idx[0]];
        sep(w, &first);
        JW_LIT(w, "\"packet\":");
        jw_b64(w, pool + p0->data_off, p0->data_len);
        JW_U64(w, ",\"packet_info\":{\"linktype\":", p0->linktype);
        jw_byte(w, '}');
    }
    /* EVE-style "http" and "xff" from extra-data and Snort 3 event fields */
    const struct ingest_u2_extra *uri = NULL, *host = NULL, *xff = NULL;
    for (uint32_t j = 0; j < nex; j++) {
        const struct ingest_u2_extra *x = &ex[ex_idx[j]];
        if (x->info_type == INGEST_U2_XDATA_HTTP_URI && !uri)
            uri = x;
        else if (x->info_type == INGEST_U2_XDATA_HTTP_HOSTNAME && !host)
            host = x;
        else if ((x->info_type == INGEST_U2_XDATA_XFF_IPV4 ||
                  x->info_type == INGEST_U2_XDATA_XFF_IPV6) && x->addr_ver && !xff)
            xff = x;
    }
    int ehttp = e->text_len[1] || e->text_len[2] || e->text_len[3] || e->text_len[4];
    if (uri || host || ehttp) {
        int f2 = 1;
        sep(w, &first);
        JW_LIT(w, "\"http\":{");
        static const char *const K[4] = {"\"http_method\":", "\"protocol\":",
                                         "\"http_user_agent\":", "\"http_refer\":"};
        if (host) {
            sep(w, &f2);
            JW_LIT(w, "\"hostname\":");
            jw_latin1(w, pool + host->data_off, host->data_len);
        }
        if (uri) {
            sep(w, &f2);
            JW_LIT(w, "\"url\":");
            jw_latin1(w, pool + uri->data_off, uri->data_len);
        }
        for (int f = 0; f < 4; f++) {
            if (!e->text_len[f + 1])
                continue;
            sep(w, &f2);
            put_cstr(w, K[f]);
            jw_latin1(w, pool + e->text_off[f + 1], e->text_len[f + 1]);
        }
        jw_byte(w, '}');
    }
    if (xff) {
        sep(w, &first);
        JW_LIT(w, "\"xff\":");
        jw_ip(w, xff->addr, xff->addr_ver == 4);
    }
    /* Everything Unified2 says, in its own words */
    sep(w, &first);
    JW_U64(w, "\"unified2\":{\"record_type\":", e->type);
    if (e->type == INGEST_U2_EVENT3) {
        JW_U64(w, ",\"policy_id_context\":", e->policy_context);
        JW_U64(w, ",\"policy_id_inspect\":", e->policy_inspect);
        JW_U64(w, ",\"policy_id_detect\":", e->policy_detect);
        JW_U64(w, ",\"snort_status\":", e->snort_status);
        JW_U64(w, ",\"snort_action\":", e->snort_action);
        const char *verdict = snort3_verdict(e->snort_action, e->snort_status);
        if (verdict != NULL) {
            JW_LIT(w, ",\"snort_verdict\":\"");
            put_cstr(w, verdict);
            jw_byte(w, '"');
        }
        if (e->length >= 168) {
            JW_U64(w, ",\"http_request_size\":", e->http_request_size);
            JW_U64(w, ",\"http_response_size\":", e->http_response_size);
        }
        if (e->text_len[5]) {
            JW_LIT(w, ",\"message_detail\":");
            jw_latin1(w, pool + e->text_off[5], e->text_len[5]);
        }
    } else {
        JW_U64(w, ",\"impact_flag\":", e->impact_flag);
        JW_U64(w, ",\"impact\":", e->impact);
        JW_U64(w, ",\"blocked\":", e->blocked);
        if (e->type != INGEST_U2_IDS_EVENT && e->type != INGEST_U2_IDS_EVENT_IPV6) {
            JW_U64(w, ",\"policy_id\":", e->policy_detect);
        }
    }
    if (e->mpls_label) {
        JW_U64(w, ",\"mpls_label\":", e->mpls_label);
    }
    if (npk) {
        JW_LIT(w, ",\"packets\":[");
        for (uint32_t j = 0; j < npk; j++) {
            const struct ingest_u2_packet *p = &pk[pk_idx[j]];
            if (j)
                jw_byte(w, ',');
            JW_U64(w, "{\"record_type\":", p->type);
            JW_U64(w, ",\"packet_second\":", p->packet_second);
            JW_U64(w, ",\"packet_microsecond\":", p->packet_microsecond);
            JW_U64(w, ",\"linktype\":", p->linktype);
            JW_U64(w, ",\"length\":", p->packet_length);
            /* The first packet's bytes are the top-level "packet" (EVE's
             * member, for EVE tools): not repeated here. */
            if (j) {
                JW_LIT(w, ",\"data\":");
                jw_b64(w, pool + p->data_off, p->data_len);
            }
            jw_byte(w, '}');
        }
        jw_byte(w, ']');
    }
    if (nex) {
        JW_LIT(w, ",\"extra_data\":[");
        for (uint32_t j = 0; j < nex; j++) {
            if (j)
                jw_byte(w, ',');
            put_xdata(w, &ex[ex_idx[j]], pool);
        }
        jw_byte(w, ']');
    }
    jw_byte(w, '}');
}

long ingest_u2_render(const struct ingest_u2_event *ev, unsigned nev, const uint8_t *pool,
                      size_t pool_len, const struct ingest_u2_packet *pk, unsigned npk,
                      const uint32_t *pk_idx, const uint32_t *pk_start,
                      const struct ingest_u2_extra *ex, unsigned nex, const uint32_t *ex_idx,
                      const uint32_t *ex_start, uint8_t *out, size_t out_cap, uint32_t *ends)
{
    if ((nev && (ev == NULL || pk_start == NULL || ex_start == NULL || ends == NULL)) ||
        out == NULL || (npk && pk == NULL) || (nex && ex == NULL) || (pool == NULL && pool_len))
        return INGEST_EINVAL;
    if (nev && ((pk_start[nev] && pk_idx == NULL) || (ex_start[nev] && ex_idx == NULL)))
        return INGEST_EINVAL;
    /* Every index and pool reference is checked before the hot loop. */
    for (unsigned i = 0; i < nev; i++)
        if (pk_start[i] > pk_start[i + 1] || pk_start[i + 1] > npk || ex_start[i] > ex_start[i + 1] ||
            ex_start[i + 1] > nex)
            return INGEST_EINVAL;
    /* pk_idx/ex_idx hold only joined rows: pk_start[nev] / ex_start[nev] */
    uint32_t npk_idx = nev ? pk_start[nev] : 0, nex_idx = nev ? ex_start[nev] : 0;
    for (unsigned j = 0; j < npk_idx; j++) {
        if (pk_idx[j] >= npk)
            return INGEST_EINVAL;
        const struct ingest_u2_packet *p = &pk[pk_idx[j]];
        if (p->data_off > pool_len || pool_len - p->data_off < p->data_len)
            return INGEST_EINVAL;
    }
    for (unsigned j = 0; j < nex_idx; j++) {
        if (ex_idx[j] >= nex)
            return INGEST_EINVAL;
        const struct ingest_u2_extra *x = &ex[ex_idx[j]];
        if (x->data_off > pool_len || pool_len - x->data_off < x->data_len)
            return INGEST_EINVAL;
    }
    for (unsigned i = 0; i < nev; i++)
        for (int f = 0; f < 6; f++)
            if (ev[i].text_off[f] > pool_len || pool_len - ev[i].text_off[f] < ev[i].text_len[f])
                return INGEST_EINVAL;
    struct jsonw w = jw_init(out, out_cap);
    for (unsigned i = 0; i < nev; i++) {
        render_one(&w, &ev[i], pool, pk, pk_idx + pk_start[i], pk_start[i + 1] - pk_start[i],
                   ex, ex_idx + ex_start[i], ex_start[i + 1] - ex_start[i]);
        if (jw_full(&w))
            return INGEST_ENOSPC;
        ends[i] = (uint32_t)(w.p - out);
    }
    return (long)(w.p - out);
}
