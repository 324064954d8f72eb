/*
 * Zeek conn.log records in Zeek's TSV format into canonical flow records.
 *
 * The caller (ingest/flows/zeek.py) reads the header lines ("#fields" ...)
 * and passes, for each of the INGEST_ZEEK_NREAD fields it reads, that
 * field's column (-1: not in the file), the one-byte separator and the
 * unset marker.  Each line is split, checked and converted exactly as the
 * Python decoder does (the same reasons, in the same order; a unit test
 * compares both on real files and on mutated lines); a line holding a
 * backslash (Zeek's \xNN escapes) or an ISO 8601 time is left to Python
 * (INGEST_ZEEK_PYTHON).  The uid's flow id, the application name's string
 * index and the text columns are the caller's: text fields come back as
 * (offset, length) pairs into buf.
 *
 * Nothing is allocated; every offset and length comes from the caller and
 * is checked against buflen before a byte is read.
 */
#include <arpa/inet.h>
#include <string.h>

#include "ingest.h"

/* the read fields, in the order of ingest.flows.zeek._READ */
enum { F_TS, F_DUR, F_UID, F_OH, F_OP, F_RH, F_RP, F_PROTO, F_OPK, F_RPK, F_OBY, F_RBY, F_VLAN, F_SERVICE,
       F_STATE, F_HISTORY };

struct val {
    const uint8_t *p;
    uint32_t len;
    int set; /* present and not the unset marker */
};

static int is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* ASCII digits only, at least one: the value (capped at cap + 1 on overflow) */
static int digits(const uint8_t *p, uint32_t n, uint64_t cap, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        if (!is_digit(p[i]))
            return -1;
        if (v <= cap)
            v = v * 10 + (uint64_t)(p[i] - '0');
    }
    *out = v > cap ? cap + 1 : v;
    return 0;
}

/* A Zeek time: [-]SECONDS[.FRACTION] (up to 11 second digits, or 12 chars
 * with the sign; up to 9 fraction digits, 6 used): 0 and *us, -1 (bad), or
 * 1 (may be ISO 8601: the caller's). */
static int time_us(const struct val *v, int64_t *us)
{
    const uint8_t *p = v->p;
    uint32_t n = v->len;
    if (n == 0 || !(is_digit(p[0]) || p[0] == '-'))
        return -1;
    uint32_t dot = n;
    for (uint32_t i = 0; i < n; i++)
        if (p[i] == '.') {
            dot = i;
            break;
        }
    int neg = p[0] == '-';
    const uint8_t *w = p + neg;
    uint32_t wn = dot - (uint32_t)neg;
    uint64_t sec, frac = 0;
    int ok = dot <= 12 && digits(w, wn, (uint64_t)1 << 62, &sec) == 0;
    if (ok && dot < n) {
        uint32_t fn = n - dot - 1;
        ok = fn >= 1 && fn <= 9;
        for (uint32_t i = 0; ok && i < fn; i++)
            ok = is_digit(p[dot + 1 + i]);
        for (uint32_t i = 0; ok && i < 6; i++)
            frac = frac * 10 + (i < fn ? (uint64_t)(p[dot + 1 + i] - '0') : 0);
    }
    if (ok) {
        int64_t t = (int64_t)sec * 1000000 + (int64_t)frac; /* sec < 10^12: no overflow */
        *us = neg ? -t : t;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++)
        if (p[i] == 'T')
            return 1;
    return -1;
}

/* an address as 16 bytes (IPv4 mapped): its version, or 0 */
static int addr(const struct val *v, uint8_t out[16])
{
    char s[64];
    if (v->len >= sizeof(s) || memchr(v->p, 0, v->len))
        return 0;
    memcpy(s, v->p, v->len);
    s[v->len] = 0;
    memset(out, 0, 16);
    if (inet_pton(AF_INET, s, out + 12) == 1) {
        out[10] = out[11] = 0xff;
        return 4;
    }
    if (inet_pton(AF_INET6, s, out) == 1)
        return 6;
    return 0;
}

static int eq(const struct val *v, const char *s)
{
    size_t n = strlen(s);
    return v->len == n && memcmp(v->p, s, n) == 0;
}

static int one(const uint8_t *buf, uint64_t off, uint32_t len, uint8_t sep, const uint8_t *unset,
               uint32_t unset_len, uint32_t nfields, const int32_t *idx, struct ingest_flow *out,
               uint32_t *text)
{
    const uint8_t *line = buf + off;
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len == 0)
        return INGEST_ZEEK_EMPTY;
    if (line[0] == '#')
        return INGEST_ZEEK_HEADER;
    struct val f[INGEST_ZEEK_NREAD];
    memset(f, 0, sizeof(f));
    /* split: field j is [start, end); each read slot takes its column's */
    uint32_t j = 0, start = 0;
    for (uint32_t i = 0; i <= len; i++) {
        if (i < len && line[i] != sep)
            continue;
        for (int k = 0; k < INGEST_ZEEK_NREAD; k++)
            if (idx[k] == (int32_t)j) {
                f[k].p = line + start;
                f[k].len = i - start;
                f[k].set = !(f[k].len == unset_len && memcmp(f[k].p, unset, unset_len) == 0);
            }
        j++;
        start = i + 1;
    }
    if (j != nfields)
        return INGEST_ZEEK_FIELD_COUNT;
    static const int needed[] = {F_TS, F_UID, F_OH, F_OP, F_RH, F_RP, F_PROTO};
    for (unsigned k = 0; k < sizeof(needed) / sizeof(needed[0]); k++)
        if (!f[needed[k]].set)
            return INGEST_ZEEK_MISSING;
    if (memchr(line, '\\', len))
        return INGEST_ZEEK_PYTHON; /* escapes: undone in Python */
    int64_t start_us, dur = -1;
    int r = time_us(&f[F_TS], &start_us);
    if (r)
        return r > 0 ? INGEST_ZEEK_PYTHON : INGEST_ZEEK_BAD_TIME;
    if (f[F_DUR].set) {
        r = time_us(&f[F_DUR], &dur);
        if (r > 0)
            return INGEST_ZEEK_PYTHON;
        if (r < 0 || dur < 0)
            return INGEST_ZEEK_BAD_TIME;
    }
    int va = addr(&f[F_OH], out->src_addr), vb = addr(&f[F_RH], out->dst_addr);
    if (!va || !vb || va != vb)
        return INGEST_ZEEK_BAD_ADDRESS;
    uint64_t sp, dp;
    if (digits(f[F_OP].p, f[F_OP].len, 65535, &sp) || sp > 65535 || digits(f[F_RP].p, f[F_RP].len, 65535, &dp)
        || dp > 65535)
        return INGEST_ZEEK_BAD_PORT;
    uint8_t proto;
    if (eq(&f[F_PROTO], "tcp"))
        proto = 6;
    else if (eq(&f[F_PROTO], "udp"))
        proto = 17;
    else if (eq(&f[F_PROTO], "icmp"))
        proto = va == 6 ? 58 : 1;
    else if (eq(&f[F_PROTO], "unknown_transport"))
        proto = 0;
    else
        return INGEST_ZEEK_BAD_PROTO;
    const uint64_t lim = ((uint64_t)1 << 63) - 1;
    uint64_t c[4] = {0, 0, 0, 0};
    int have[4];
    for (int k = 0; k < 4; k++) {
        const struct val *v = &f[F_OPK + k];
        have[k] = v->set;
        if (v->set && (digits(v->p, v->len, lim, &c[k]) || c[k] > lim))
            return INGEST_ZEEK_BAD_COUNT;
    }
    uint64_t vlan = 0;
    if (f[F_VLAN].set && (digits(f[F_VLAN].p, f[F_VLAN].len, 4095, &vlan) || vlan > 4095))
        return INGEST_ZEEK_BAD_COUNT;
    uint8_t flags = INGEST_FF_ADDRS;
    if (proto == 1 || proto == 58)
        flags |= INGEST_FF_ICMP;
    else if (proto == 6 || proto == 17)
        flags |= INGEST_FF_PORTS;
    if (have[1] && have[3])
        flags |= INGEST_FF_BIFLOW;
    if (f[F_VLAN].set)
        flags |= INGEST_FF_VLAN;
    out->start_us = start_us;
    out->end_us = dur >= 0 ? start_us + dur : start_us;
    out->pkts = c[0];
    out->pkts_rev = c[1];
    out->bytes = c[2];
    out->bytes_rev = c[3];
    out->ip_ver = (uint8_t)va;
    out->src_port = (uint16_t)sp;
    out->dst_port = (uint16_t)dp;
    out->vlan = (uint16_t)vlan;
    out->proto = proto;
    out->flags = flags;
    out->source = INGEST_FLOW_SRC_ZEEK;
    out->app_idx = -1;
    /* texts: uid, service, conn_state, history as (offset in buf, length); unset: length ~0 */
    static const int texts[4] = {F_UID, F_SERVICE, F_STATE, F_HISTORY};
    for (int k = 0; k < 4; k++) {
        const struct val *v = &f[texts[k]];
        text[2 * k] = v->set ? (uint32_t)(off + (uint64_t)(v->p - line)) : 0;
        text[2 * k + 1] = v->set ? v->len : UINT32_MAX;
    }
    return INGEST_ZEEK_OK;
}

int ingest_zeek_tsv(const uint8_t *buf, size_t buflen, const uint64_t *offs, const uint32_t *lens, uint32_t n,
                    uint8_t sep, const uint8_t *unset, uint32_t unset_len, uint32_t nfields, const int32_t *idx,
                    struct ingest_flow *out, uint32_t out_cap, uint32_t *line_of, uint32_t *text,
                    uint8_t *status)
{
    if (buflen > UINT32_MAX || unset_len > 64 || nfields == 0)
        return INGEST_EINVAL;
    for (int k = 0; k < INGEST_ZEEK_NREAD; k++)
        if (idx[k] < -1 || idx[k] >= (int32_t)nfields)
            return INGEST_EINVAL;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* the line comes from the caller: it must lie inside buf */
        if (offs[i] > buflen || lens[i] > buflen - offs[i])
            return INGEST_EINVAL;
        if (m == out_cap) {
            status[i] = INGEST_ZEEK_PYTHON; /* no room: the caller decodes the rest */
            continue;
        }
        memset(&out[m], 0, sizeof(out[m]));
        int st = one(buf, offs[i], lens[i], sep, unset, unset_len, nfields, idx, &out[m], text + 8 * (size_t)m);
        status[i] = (uint8_t)st;
        if (st == INGEST_ZEEK_OK)
            line_of[m++] = i;
    }
    return (int)m;
}
