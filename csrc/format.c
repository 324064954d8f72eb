/*
 * format.c - render a batch of canonical alerts as JSON lines.
 *
 * Two profiles:
 *   INGEST_FMT_EVE     the Suricata EVE alert schema, so EVE tools consume
 *                      Snort alerts unchanged; fields a source does not carry
 *                      are omitted, never invented.
 *   INGEST_FMT_TRISUL  the Trisul input-filter table fields.
 *
 * Writes into a caller-owned buffer; returns INGEST_ENOSPC (never a partial
 * line) when it is too small, and the caller grows it.  Strings come from a
 * caller's table of valid UTF-8; only '"', '\\' and control bytes are escaped.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "ingest.h"

/* Longest fixed part of one line, excluding strings (which are bounded
 * separately at 6 bytes per input byte). */
#define LINE_FIXED_MAX 1024

struct out {
    uint8_t *p;
    uint8_t *end;
};

static inline void put(struct out *o, const char *s, size_t n)
{
    memcpy(o->p, s, n);
    o->p += n;
}

#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_u64(struct out *o, uint64_t v)
{
    char tmp[24];
    int i = 0;
    do {
        tmp[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        *o->p++ = (uint8_t)tmp[--i];
}

static void put_i64(struct out *o, int64_t v)
{
    if (v < 0) {
        *o->p++ = '-';
        put_u64(o, (uint64_t)(-(v + 1)) + 1);
    } else {
        put_u64(o, (uint64_t)v);
    }
}

static void put_2d(struct out *o, unsigned v)
{
    *o->p++ = (uint8_t)('0' + v / 10 % 10);
    *o->p++ = (uint8_t)('0' + v % 10);
}

/* Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant). */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

/* "2026-11-27T18:03:50.123456+0000" (EVE's strftime format, in UTC). */
/* 0000-01-01T00:00:00 and 9999-12-31T23:59:59.999999 UTC in microseconds:
 * the wire can say anything, the output keeps its format. */
#define TS_MIN_US (-62167219200000000LL)
#define TS_MAX_US (253402300799999999LL)

static int64_t clamp_ts(int64_t ts_us)
{
    return ts_us < TS_MIN_US ? TS_MIN_US : ts_us > TS_MAX_US ? TS_MAX_US : ts_us;
}

static void put_timestamp(struct out *o, int64_t ts_us)
{
    ts_us = clamp_ts(ts_us);
    int64_t secs = ts_us >= 0 ? ts_us / 1000000 : -((-ts_us + 999999) / 1000000);
    int64_t us = ts_us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    *o->p++ = '"';
    put_2d(o, (unsigned)(y / 100));
    put_2d(o, (unsigned)(y % 100));
    *o->p++ = '-';
    put_2d(o, m);
    *o->p++ = '-';
    put_2d(o, d);
    *o->p++ = 'T';
    put_2d(o, (unsigned)(sod / 3600));
    *o->p++ = ':';
    put_2d(o, (unsigned)(sod / 60 % 60));
    *o->p++ = ':';
    put_2d(o, (unsigned)(sod % 60));
    *o->p++ = '.';
    for (int64_t div = 100000; div; div /= 10)
        *o->p++ = (uint8_t)('0' + us / div % 10);
    PUTS(o, "+0000\"");
}

/* JSON string body (no quotes). */
static void put_esc(struct out *o, const uint8_t *s, uint32_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (uint32_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            *o->p++ = '\\';
            *o->p++ = c;
        } else if (c < 0x20 || c == 0x7f) {
            PUTS(o, "\\u00");
            *o->p++ = (uint8_t)hex[c >> 4];
            *o->p++ = (uint8_t)hex[c & 15];
        } else {
            *o->p++ = c;
        }
    }
}

static void put_str(struct out *o, const uint8_t *s, uint32_t n)
{
    *o->p++ = '"';
    put_esc(o, s, n);
    *o->p++ = '"';
}

/* A string from the (chained) table, bounds-checked; 0 if idx names none. */
static int strtab_get(const struct ingest_strtab *t, int32_t idx, const uint8_t **s, uint32_t *n)
{
    if (idx < 0)
        return 0;
    uint32_t k = (uint32_t)idx;
    while (t != NULL && k >= t->count) {
        k -= t->count;
        t = t->next;
    }
    if (t == NULL)
        return 0;
    *s = t->pool + t->off[k];
    *n = t->len[k];
    return 1;
}

static void put_addr(struct out *o, const uint8_t a[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    char buf[INET6_ADDRSTRLEN];
    *o->p++ = '"';
    if (memcmp(a, v4mapped, 12) == 0) {
        for (int i = 12; i < 16; i++) {
            put_u64(o, a[i]);
            if (i < 15)
                *o->p++ = '.';
        }
    } else if (inet_ntop(AF_INET6, a, buf, sizeof buf) != NULL) {
        put(o, buf, strlen(buf));
    }
    *o->p++ = '"';
}

static const char *proto_name(uint8_t proto, size_t *n)
{
    switch (proto) {
    case 6:
        *n = 3;
        return "TCP";
    case 17:
        *n = 3;
        return "UDP";
    case 1:
        *n = 4;
        return "ICMP";
    case 58:
        *n = 9;
        return "IPv6-ICMP";
    case 132:
        *n = 4;
        return "SCTP";
    default:
        return NULL;
    }
}

static const char *source_name(uint8_t src, size_t *n)
{
    switch (src) {
    case INGEST_SRC_SNORT:
    case INGEST_SRC_SNORT_APPID:
        *n = 5;
        return "snort";
    case INGEST_SRC_BARNYARD2:
    case INGEST_SRC_BARNYARD2_32:
        *n = 9;
        return "barnyard2";
    case INGEST_SRC_UNIFIED2:
        *n = 8;
        return "unified2";
    case INGEST_SRC_EVE:
        *n = 3;
        return "eve";
    default:
        *n = 7;
        return "unknown";
    }
}

static void put_eve(struct out *o, const struct ingest_alert *a, const struct ingest_strtab *t,
                    int32_t cat, int32_t extra, int32_t refs)
{
    const uint8_t *s;
    uint32_t n;
    size_t pn;
    const char *pname;

    PUTS(o, "{\"timestamp\":");
    put_timestamp(o, a->ts_us);
    if (a->flow_id) {
        PUTS(o, ",\"flow_id\":");
        put_u64(o, a->flow_id);
    }
    PUTS(o, ",\"event_type\":\"alert\"");
    if (a->flags & INGEST_F_VLAN) {
        PUTS(o, ",\"vlan\":[");
        put_u64(o, a->vlan);
        *o->p++ = ']';
    }
    if (a->flags & INGEST_F_ADDRS) {
        PUTS(o, ",\"src_ip\":");
        put_addr(o, a->src_addr);
        if (a->flags & INGEST_F_PORTS) {
            PUTS(o, ",\"src_port\":");
            put_u64(o, a->src_port);
        }
        PUTS(o, ",\"dest_ip\":");
        put_addr(o, a->dst_addr);
        if (a->flags & INGEST_F_PORTS) {
            PUTS(o, ",\"dest_port\":");
            put_u64(o, a->dst_port);
        }
        PUTS(o, ",\"proto\":");
        if ((pname = proto_name(a->proto, &pn)) != NULL) {
            *o->p++ = '"';
            put(o, pname, pn);
            *o->p++ = '"';
        } else {
            *o->p++ = '"';
            put_u64(o, a->proto);
            *o->p++ = '"';
        }
        if (a->flags & INGEST_F_ICMP) {
            PUTS(o, ",\"icmp_type\":");
            put_u64(o, a->src_port);
            PUTS(o, ",\"icmp_code\":");
            put_u64(o, a->dst_port);
        }
    }
    PUTS(o, ",\"alert\":{");
    if (a->action == INGEST_ACTION_ALLOWED)
        PUTS(o, "\"action\":\"allowed\",");
    else if (a->action == INGEST_ACTION_BLOCKED)
        PUTS(o, "\"action\":\"blocked\",");
    PUTS(o, "\"gid\":");
    put_u64(o, a->gid);
    PUTS(o, ",\"signature_id\":");
    put_u64(o, a->sid);
    PUTS(o, ",\"rev\":");
    put_u64(o, a->rev);
    if (strtab_get(t, a->msg_idx, &s, &n)) {
        PUTS(o, ",\"signature\":");
        put_str(o, s, n);
    }
    if (strtab_get(t, cat, &s, &n)) {
        PUTS(o, ",\"category\":");
        put_str(o, s, n);
    }
    PUTS(o, ",\"severity\":");
    put_u64(o, a->priority);
    if (strtab_get(t, refs, &s, &n) && n) {
        PUTS(o, ",\"references\":");
        put(o, (const char *)s, n); /* a JSON array rendered by the caller (maps), verbatim */
    }
    PUTS(o, "},\"ingest\":{\"source\":\"");
    pname = source_name(a->source, &pn);
    put(o, pname, pn);
    PUTS(o, "\",\"sensor_id\":");
    put_u64(o, a->sensor_id);
    PUTS(o, ",\"event_id\":");
    put_u64(o, a->event_id);
    PUTS(o, ",\"class_id\":");
    put_u64(o, a->class_id);
    if (strtab_get(t, a->app_idx, &s, &n)) {
        PUTS(o, ",\"app_name\":");
        put_str(o, s, n);
    }
    if (a->flags & INGEST_F_PKT_ANOMALY)
        PUTS(o, ",\"packet_anomaly\":true");
    *o->p++ = '}';
    if (strtab_get(t, extra, &s, &n) && n) {
        *o->p++ = ',';
        put(o, (const char *)s, n); /* caller-rendered members, verbatim */
    }
    PUTS(o, "}\n");
}

/*
 * Trisul's input-filter fields, with the original Lua scripts' bugs fixed:
 * IPv6 addresses are printed as IPv6, ICMP type/code are not reported as
 * ports (they go to AlertDetails), UDP is 17, and SigIDKey keeps gid apart
 * ("sid" for gid 1, "gid:sid" otherwise) so preprocessor alerts do not
 * collide with rule sids.
 */
static void put_trisul(struct out *o, const struct ingest_alert *a,
                       const struct ingest_strtab *t, int32_t cat)
{
    const uint8_t *s;
    uint32_t n;

    PUTS(o, "{\"AlertGroupGUID\":\"{9AFD8C08-07EB-47E0-BF05-28B4A7AE8DC9}\",\"TimestampSecs\":");
    int64_t ts = clamp_ts(a->ts_us);
    int64_t secs = ts >= 0 ? ts / 1000000 : -((-ts + 999999) / 1000000);
    put_i64(o, secs);
    PUTS(o, ",\"TimestampUsecs\":");
    put_i64(o, ts - secs * 1000000);
    PUTS(o, ",\"SigIDKey\":\"");
    if (a->gid != 1) {
        put_u64(o, a->gid);
        *o->p++ = ':';
    }
    put_u64(o, a->sid);
    *o->p++ = '"';
    if (strtab_get(t, a->msg_idx, &s, &n)) {
        PUTS(o, ",\"SigIDLabel\":");
        put_str(o, s, n);
    }
    PUTS(o, ",\"SigGenerator\":");
    put_u64(o, a->gid);
    PUTS(o, ",\"SensorID\":");
    put_u64(o, a->sensor_id);
    PUTS(o, ",\"EventID\":");
    put_u64(o, a->event_id);
    if (a->flags & INGEST_F_ADDRS) {
        PUTS(o, ",\"ProtocolFamily\":");
        if (a->ip_ver == 6)
            PUTS(o, "\"IPV6\"");
        else
            PUTS(o, "\"IPV4\"");
        PUTS(o, ",\"SourceIP\":");
        put_addr(o, a->src_addr);
        PUTS(o, ",\"DestIP\":");
        put_addr(o, a->dst_addr);
        if (a->flags & INGEST_F_PORTS) {
            PUTS(o, ",\"SourcePort\":");
            put_u64(o, a->src_port);
            PUTS(o, ",\"DestPort\":");
            put_u64(o, a->dst_port);
        }
        PUTS(o, ",\"Protocol\":");
        put_u64(o, a->proto);
    }
    PUTS(o, ",\"SigRev\":");
    put_u64(o, a->rev);
    PUTS(o, ",\"Priority\":");
    put_u64(o, a->priority);
    PUTS(o, ",\"ClassificationKey\":");
    if (strtab_get(t, cat, &s, &n)) {
        put_str(o, s, n);
    } else {
        *o->p++ = '"';
        put_u64(o, a->class_id);
        *o->p++ = '"';
    }
    PUTS(o, ",\"AlertStatus\":");
    if (a->action == INGEST_ACTION_BLOCKED)
        PUTS(o, "\"BLOCKED\"");
    else if (a->action == INGEST_ACTION_ALLOWED)
        PUTS(o, "\"ALLOWED\"");
    else
        PUTS(o, "\"FIRED\"");
    /* AlertDetails: what the constant "from socket1" never said. */
    PUTS(o, ",\"AlertDetails\":\"");
    if (strtab_get(t, a->app_idx, &s, &n)) {
        PUTS(o, "app=");
        put_esc(o, s, n);
        *o->p++ = ' ';
    }
    if (a->flags & INGEST_F_ICMP) {
        PUTS(o, "icmp_type=");
        put_u64(o, a->src_port);
        PUTS(o, " icmp_code=");
        put_u64(o, a->dst_port);
        *o->p++ = ' ';
    }
    PUTS(o, "gen=");
    put_u64(o, a->gid);
    PUTS(o, "\"}\n");
}

static int32_t idx_at(const int32_t *v, unsigned i) { return v ? v[i] : -1; }

long ingest_format_json(const struct ingest_alert *alerts, unsigned n,
                        const struct ingest_strtab *strings,
                        const struct ingest_fmt_idx *idx, int profile, uint8_t *out,
                        size_t out_cap, uint32_t *ends)
{
    if ((alerts == NULL && n) || out == NULL || (profile != INGEST_FMT_EVE && profile != INGEST_FMT_TRISUL))
        return INGEST_EINVAL;
    for (const struct ingest_strtab *t = strings; t != NULL; t = t->next)
        if (t->count && (t->pool == NULL || t->off == NULL || t->len == NULL))
            return INGEST_EINVAL;
    static const struct ingest_fmt_idx none = {NULL, NULL, NULL, NULL};
    if (idx == NULL)
        idx = &none;
    struct out o = {out, out + out_cap};
    for (unsigned i = 0; i < n; i++) {
        const struct ingest_alert *a = &alerts[i];
        int32_t cat = idx_at(idx->cat, i), extra = idx_at(idx->extra, i), raw = idx_at(idx->raw, i);
        int32_t refs = idx_at(idx->refs, i);
        const uint8_t *s;
        uint32_t sl;
        if (strtab_get(strings, raw, &s, &sl)) {
            /* verbatim object: exactly its bytes and a newline */
            if ((size_t)(o.end - o.p) < (size_t)sl + 1)
                return INGEST_ENOSPC;
            put(&o, (const char *)s, sl);
            *o.p++ = '\n';
        } else {
            /* Worst case for this line: the fixed part, 6 output bytes per
             * input byte of each escaped string, the verbatim fragment. */
            size_t need = LINE_FIXED_MAX;
            if (strtab_get(strings, a->msg_idx, &s, &sl))
                need += (size_t)sl * 6;
            if (strtab_get(strings, a->app_idx, &s, &sl))
                need += (size_t)sl * 6;
            if (strtab_get(strings, cat, &s, &sl))
                need += (size_t)sl * 6;
            if (strtab_get(strings, extra, &s, &sl))
                need += sl;
            if (strtab_get(strings, refs, &s, &sl))
                need += sl;
            if ((size_t)(o.end - o.p) < need)
                return INGEST_ENOSPC;
            if (profile == INGEST_FMT_EVE)
                put_eve(&o, a, strings, cat, extra, refs);
            else
                put_trisul(&o, a, strings, cat);
        }
        if (ends)
            ends[i] = (uint32_t)(o.p - out);
    }
    return (long)(o.p - out);
}

int ingest_format_addrs(const struct ingest_alert *alerts, unsigned n, char *src_out,
                        char *dst_out)
{
    if ((alerts == NULL || src_out == NULL || dst_out == NULL) && n)
        return INGEST_EINVAL;
    uint8_t buf[64];
    for (unsigned i = 0; i < n; i++) {
        char *so = src_out + (size_t)i * 46, *dso = dst_out + (size_t)i * 46;
        memset(so, 0, 46);
        memset(dso, 0, 46);
        if (!(alerts[i].flags & INGEST_F_ADDRS))
            continue;
        struct out o = {buf, buf + sizeof buf};
        put_addr(&o, alerts[i].src_addr); /* quoted; strip the quotes */
        memcpy(so, buf + 1, (size_t)(o.p - buf - 2));
        o.p = buf;
        put_addr(&o, alerts[i].dst_addr);
        memcpy(dso, buf + 1, (size_t)(o.p - buf - 2));
    }
    return (int)n;
}
