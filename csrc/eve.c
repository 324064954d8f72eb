/*
 * eve.c - Suricata EVE JSON: validating field extractor over whole batches.
 *
 * One pass per record: the record is fully validated as JSON (RFC 8259:
 * grammar, string escapes, control characters, UTF-8), and on the way the few
 * members the canonical alert needs are picked out (timestamp, flow_id,
 * addresses, ports, proto, vlan, alert.{action,gid,signature_id,rev,
 * signature,category,severity}).  Everything else is skipped without being
 * materialised: no allocation, no tree, no Python objects.  The original
 * bytes stay where they are, and the caller keeps them for lossless output.
 *
 * Records are (offset, length) spans into one caller-owned buffer: recvmmsg
 * slots for unix_dgram, a line buffer for unix_stream and files.
 */
#include <arpa/inet.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ingest.h"

#define MAX_DEPTH 128 /* deeper nesting is rejected (bounds the recursion)   */

struct p {
    const uint8_t *s; /* cursor */
    const uint8_t *e; /* end of the record */
    unsigned nl;      /* a raw CR or LF was skipped between tokens */
};

/* byte classes inside a JSON string: 0 plain ASCII, 1 '"', 2 '\\',
 * 3 control (invalid), 4 UTF-8 lead/continuation (validated slowly) */
static uint8_t str_class[256];
static int tables_ready;

static void init_tables(void)
{
    for (int c = 0; c < 256; c++)
        str_class[c] = c < 0x20 ? 3 : c == '"' ? 1 : c == '\\' ? 2 : c >= 0x80 ? 4 : 0;
    tables_ready = 1;
}

static inline void ws(struct p *p)
{
    /* Suricata writes no whitespace at all, so the loop body is the rare
     * path: noting a CR/LF here costs nothing on real traffic. */
    while (p->s < p->e && (*p->s == ' ' || *p->s == '\n' || *p->s == '\r' || *p->s == '\t')) {
        p->nl |= *p->s != ' ' && *p->s != '\t';
        p->s++;
    }
}

static inline int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* One UTF-8 sequence starting at s (s < e, *s >= 0x80); returns its length or 0. */
static int utf8_seq(const uint8_t *s, const uint8_t *e)
{
    uint8_t c = s[0];
    int n;
    uint32_t cp;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    if (e - s < n) return 0;
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* A string at p->s (which must be '"').  On success *start and *len give the text
 * between the quotes (still escaped) and *esc says whether it has escapes. */
static int string(struct p *p, const uint8_t **start, uint32_t *len, int *esc)
{
    if (p->s >= p->e || *p->s != '"') return 0;
    const uint8_t *s = ++p->s, *e = p->e;
    int has_esc = 0;
    while (s < e) {
#ifdef __SSE2__
        /* 16 plain bytes at a time: stop at '"', '\\', a control byte or a
         * non-ASCII byte (signed compare: >= 0x80 is negative, so < 0x20). */
        while (e - s >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)s);
            __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                  _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'))),
                                     _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)));
            int bits = _mm_movemask_epi8(m);
            if (bits) {
                s += __builtin_ctz((unsigned)bits);
                break;
            }
            s += 16;
        }
        if (s >= e) break;
#endif
        uint8_t k = str_class[*s];
        if (k == 0) { s++; continue; }
        if (k == 1) {
            *start = p->s;
            *len = (uint32_t)(s - p->s);
            if (esc) *esc = has_esc;
            p->s = s + 1;
            return 1;
        }
        if (k == 2) {
            has_esc = 1;
            if (e - s < 2) return 0;
            switch (s[1]) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                s += 2;
                break;
            case 'u':
                if (e - s < 6 || hexval(s[2]) < 0 || hexval(s[3]) < 0 || hexval(s[4]) < 0 || hexval(s[5]) < 0)
                    return 0;
                s += 6;
                break;
            default:
                return 0;
            }
            continue;
        }
        if (k == 3) return 0;
        int n = utf8_seq(s, e);
        if (!n) return 0;
        s += n;
    }
    return 0; /* unterminated */
}

/* A number; *u gets the value when it is a non-negative integer that fits. */
static int number(struct p *p, uint64_t *u, int *is_uint)
{
    const uint8_t *s = p->s, *e = p->e;
    int neg = 0, frac = 0, ovf = 0;
    uint64_t v = 0;
    if (s < e && *s == '-') { neg = 1; s++; }
    if (s >= e) return 0;
    if (*s == '0') {
        s++;
    } else if (*s >= '1' && *s <= '9') {
        while (s < e && *s >= '0' && *s <= '9') {
            uint64_t d = (uint64_t)(*s - '0');
            if (v > (UINT64_MAX - d) / 10) ovf = 1;
            v = v * 10 + d;
            s++;
        }
    } else {
        return 0;
    }
    if (s < e && *s == '.') {
        frac = 1;
        s++;
        if (s >= e || *s < '0' || *s > '9') return 0;
        while (s < e && *s >= '0' && *s <= '9') s++;
    }
    if (s < e && (*s == 'e' || *s == 'E')) {
        frac = 1;
        s++;
        if (s < e && (*s == '+' || *s == '-')) s++;
        if (s >= e || *s < '0' || *s > '9') return 0;
        while (s < e && *s >= '0' && *s <= '9') s++;
    }
    p->s = s;
    if (u) *u = v;
    if (is_uint) *is_uint = !neg && !frac && !ovf;
    return 1;
}

static int literal(struct p *p, const char *w, size_t n)
{
    if ((size_t)(p->e - p->s) < n || memcmp(p->s, w, n) != 0) return 0;
    p->s += n;
    return 1;
}

static int value(struct p *p, int depth);

static int object_skip(struct p *p, int depth)
{
    p->s++; /* '{' */
    ws(p);
    if (p->s < p->e && *p->s == '}') { p->s++; return 1; }
    for (;;) {
        const uint8_t *k;
        uint32_t kl;
        ws(p);
        if (!string(p, &k, &kl, NULL)) return 0;
        ws(p);
        if (p->s >= p->e || *p->s != ':') return 0;
        p->s++;
        ws(p);
        if (!value(p, depth + 1)) return 0;
        ws(p);
        if (p->s >= p->e) return 0;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == '}') { p->s++; return 1; }
        return 0;
    }
}

static int array_skip(struct p *p, int depth, uint64_t *first, int *first_ok)
{
    p->s++; /* '[' */
    ws(p);
    if (p->s < p->e && *p->s == ']') { p->s++; return 1; }
    for (int i = 0;; i++) {
        ws(p);
        if (i == 0 && first && p->s < p->e && (*p->s == '-' || (*p->s >= '0' && *p->s <= '9'))) {
            if (!number(p, first, first_ok)) return 0;
        } else if (!value(p, depth + 1)) {
            return 0;
        }
        ws(p);
        if (p->s >= p->e) return 0;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == ']') { p->s++; return 1; }
        return 0;
    }
}

static int value(struct p *p, int depth)
{
    if (depth > MAX_DEPTH || p->s >= p->e) return 0;
    const uint8_t *k;
    uint32_t kl;
    switch (*p->s) {
    case '{': return object_skip(p, depth);
    case '[': return array_skip(p, depth, NULL, NULL);
    case '"': return string(p, &k, &kl, NULL);
    case 't': return literal(p, "true", 4);
    case 'f': return literal(p, "false", 5);
    case 'n': return literal(p, "null", 4);
    default: return number(p, NULL, NULL);
    }
}

/* ---- what one record yields ------------------------------------------- */
struct span {
    const uint8_t *p;
    uint32_t n;
    int esc;
};

struct fields {
    struct span event_type, timestamp, src_ip, dest_ip, proto, action, signature, category;
    uint64_t flow_id, src_port, dest_port, icmp_type, icmp_code, vlan, gid, sid, rev, severity, proto_num;
    unsigned have; /* H_* bits */
    /* wire mode only (records ingest rendered itself): the "ingest" member
     * and alert.references */
    int wire;
    struct span source, app_name, refs;
    uint64_t sensor_id, event_id, class_id;
};

enum {
    H_FLOW = 1 << 0, H_SPORT = 1 << 1, H_DPORT = 1 << 2, H_ITYPE = 1 << 3, H_ICODE = 1 << 4,
    H_VLAN = 1 << 5, H_GID = 1 << 6, H_SID = 1 << 7, H_REV = 1 << 8, H_SEV = 1 << 9,
    H_ALERT = 1 << 10, H_PROTO_NUM = 1 << 11,
    H_INGEST = 1 << 12, H_SENSOR = 1 << 13, H_EVENT = 1 << 14, H_CLASS = 1 << 15, H_ANOMALY = 1 << 16,
};

#define KEY(k, kl, lit) ((kl) == sizeof(lit) - 1 && memcmp((k), (lit), sizeof(lit) - 1) == 0)

/* A member value that should be a non-negative integer: captured when it is
 * one, validated (and ignored) when it is anything else. */
static int uint_member(struct p *p, int depth, uint64_t *dst, unsigned *have, unsigned bit)
{
    if (p->s < p->e && (*p->s == '-' || (*p->s >= '0' && *p->s <= '9'))) {
        uint64_t v;
        int ok;
        if (!number(p, &v, &ok)) return 0;
        if (ok) { *dst = v; *have |= bit; }
        return 1;
    }
    return value(p, depth);
}

static int str_member(struct p *p, int depth, struct span *dst)
{
    if (p->s < p->e && *p->s == '"')
        return string(p, &dst->p, &dst->n, &dst->esc);
    return value(p, depth);
}

static int alert_object(struct p *p, struct fields *f)
{
    p->s++; /* '{' */
    f->have |= H_ALERT;
    ws(p);
    if (p->s < p->e && *p->s == '}') { p->s++; return 1; }
    for (;;) {
        const uint8_t *k;
        uint32_t kl;
        int ok;
        ws(p);
        if (!string(p, &k, &kl, NULL)) return 0;
        ws(p);
        if (p->s >= p->e || *p->s != ':') return 0;
        p->s++;
        ws(p);
        if (KEY(k, kl, "signature_id")) ok = uint_member(p, 2, &f->sid, &f->have, H_SID);
        else if (KEY(k, kl, "gid")) ok = uint_member(p, 2, &f->gid, &f->have, H_GID);
        else if (KEY(k, kl, "rev")) ok = uint_member(p, 2, &f->rev, &f->have, H_REV);
        else if (KEY(k, kl, "severity")) ok = uint_member(p, 2, &f->severity, &f->have, H_SEV);
        else if (KEY(k, kl, "signature")) ok = str_member(p, 2, &f->signature);
        else if (KEY(k, kl, "category")) ok = str_member(p, 2, &f->category);
        else if (KEY(k, kl, "action")) ok = str_member(p, 2, &f->action);
        else if (f->wire && KEY(k, kl, "references") && p->s < p->e && *p->s == '[') {
            /* the whole array, validated, kept as its JSON text */
            const uint8_t *start = p->s;
            ok = array_skip(p, 2, NULL, NULL);
            if (ok) {
                f->refs.p = start;
                f->refs.n = (uint32_t)(p->s - start);
            }
        }
        else ok = value(p, 2);
        if (!ok) return 0;
        ws(p);
        if (p->s >= p->e) return 0;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == '}') { p->s++; return 1; }
        return 0;
    }
}

/* The "ingest" member of a record ingest rendered (wire mode only). */
static int ingest_object(struct p *p, struct fields *f)
{
    p->s++; /* '{' */
    f->have |= H_INGEST;
    ws(p);
    if (p->s < p->e && *p->s == '}') { p->s++; return 1; }
    for (;;) {
        const uint8_t *k;
        uint32_t kl;
        int ok;
        ws(p);
        if (!string(p, &k, &kl, NULL)) return 0;
        ws(p);
        if (p->s >= p->e || *p->s != ':') return 0;
        p->s++;
        ws(p);
        if (p->s >= p->e) return 0;
        if (KEY(k, kl, "source")) ok = str_member(p, 2, &f->source);
        else if (KEY(k, kl, "sensor_id")) ok = uint_member(p, 2, &f->sensor_id, &f->have, H_SENSOR);
        else if (KEY(k, kl, "event_id")) ok = uint_member(p, 2, &f->event_id, &f->have, H_EVENT);
        else if (KEY(k, kl, "class_id")) ok = uint_member(p, 2, &f->class_id, &f->have, H_CLASS);
        else if (KEY(k, kl, "app_name")) ok = str_member(p, 2, &f->app_name);
        else if (KEY(k, kl, "packet_anomaly") && *p->s == 't') {
            ok = literal(p, "true", 4);
            if (ok) f->have |= H_ANOMALY;
        }
        else ok = value(p, 2);
        if (!ok) return 0;
        ws(p);
        if (p->s >= p->e) return 0;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == '}') { p->s++; return 1; }
        return 0;
    }
}

/* Parse the top-level object, capturing fields.  1 ok, 0 invalid JSON. */
static int top_object(struct p *p, struct fields *f)
{
    p->s++; /* '{' */
    ws(p);
    if (p->s < p->e && *p->s == '}') { p->s++; return 1; }
    for (;;) {
        const uint8_t *k;
        uint32_t kl;
        int ok;
        ws(p);
        if (!string(p, &k, &kl, NULL)) return 0;
        ws(p);
        if (p->s >= p->e || *p->s != ':') return 0;
        p->s++;
        ws(p);
        if (p->s >= p->e) return 0;
        switch (kl ? k[0] : 0) {
        case 'a':
            if (KEY(k, kl, "alert") && *p->s == '{') ok = alert_object(p, f);
            else ok = value(p, 1);
            break;
        case 'd':
            if (KEY(k, kl, "dest_ip")) ok = str_member(p, 1, &f->dest_ip);
            else if (KEY(k, kl, "dest_port")) ok = uint_member(p, 1, &f->dest_port, &f->have, H_DPORT);
            else ok = value(p, 1);
            break;
        case 'e':
            if (KEY(k, kl, "event_type")) ok = str_member(p, 1, &f->event_type);
            else ok = value(p, 1);
            break;
        case 'f':
            if (KEY(k, kl, "flow_id")) ok = uint_member(p, 1, &f->flow_id, &f->have, H_FLOW);
            else ok = value(p, 1);
            break;
        case 'i':
            if (KEY(k, kl, "icmp_type")) ok = uint_member(p, 1, &f->icmp_type, &f->have, H_ITYPE);
            else if (KEY(k, kl, "icmp_code")) ok = uint_member(p, 1, &f->icmp_code, &f->have, H_ICODE);
            else if (f->wire && KEY(k, kl, "ingest") && *p->s == '{') ok = ingest_object(p, f);
            else ok = value(p, 1);
            break;
        case 'p':
            if (KEY(k, kl, "proto")) {
                if (*p->s == '"') ok = str_member(p, 1, &f->proto);
                else ok = uint_member(p, 1, &f->proto_num, &f->have, H_PROTO_NUM);
            } else {
                ok = value(p, 1);
            }
            break;
        case 's':
            if (KEY(k, kl, "src_ip")) ok = str_member(p, 1, &f->src_ip);
            else if (KEY(k, kl, "src_port")) ok = uint_member(p, 1, &f->src_port, &f->have, H_SPORT);
            else ok = value(p, 1);
            break;
        case 't':
            if (KEY(k, kl, "timestamp")) ok = str_member(p, 1, &f->timestamp);
            else ok = value(p, 1);
            break;
        case 'v':
            if (KEY(k, kl, "vlan") && *p->s == '[') {
                int first_ok = 0;
                ok = array_skip(p, 1, &f->vlan, &first_ok);
                if (ok && first_ok) f->have |= H_VLAN;
            } else {
                ok = value(p, 1);
            }
            break;
        default:
            ok = value(p, 1);
        }
        if (!ok) return 0;
        ws(p);
        if (p->s >= p->e) return 0;
        if (*p->s == ',') { p->s++; continue; }
        if (*p->s == '}') { p->s++; return 1; }
        return 0;
    }
}

/* ---- timestamps -------------------------------------------------------- */
static int digits(const uint8_t *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int ingest_eve_parse_ts(const uint8_t *s, size_t n, int64_t *ts_us)
{
    /* YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|+hhmm|+hh:mm|+hh] ; no zone = UTC */
    int Y, M, D, h, m, sec, us = 0, off = 0;
    if (s == NULL || ts_us == NULL || n < 19) return INGEST_EINVAL;
    if (!digits(s, 4, &Y) || s[4] != '-' || !digits(s + 5, 2, &M) || s[7] != '-' || !digits(s + 8, 2, &D) ||
        (s[10] != 'T' && s[10] != ' ') || !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &m) ||
        s[16] != ':' || !digits(s + 17, 2, &sec))
        return INGEST_EINVAL;
    static const uint8_t mdays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (M < 1 || M > 12 || D < 1 || D > mdays[M] || h > 23 || m > 59 || sec > 60)
        return INGEST_EINVAL;
    if (M == 2 && D == 29 && !((Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0))
        return INGEST_EINVAL;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        i++;
        size_t f0 = i;
        int scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale) { us += (s[i] - '0') * scale; scale /= 10; }
            i++;
        }
        if (i == f0 || i - f0 > 9) return INGEST_EINVAL;
    }
    if (i < n) {
        if (s[i] == 'Z' && i + 1 == n) {
            i++;
        } else if (s[i] == '+' || s[i] == '-') {
            int oh, om = 0, sign = s[i] == '-' ? -1 : 1;
            size_t r = n - i - 1;
            const uint8_t *z = s + i + 1;
            if (r == 4 && digits(z, 2, &oh) && digits(z + 2, 2, &om)) {}
            else if (r == 5 && digits(z, 2, &oh) && z[2] == ':' && digits(z + 3, 2, &om)) {}
            else if (r == 2 && digits(z, 2, &oh)) {}
            else return INGEST_EINVAL;
            if (oh > 23 || om > 59) return INGEST_EINVAL;
            off = sign * (oh * 3600 + om * 60);
            i = n;
        } else {
            return INGEST_EINVAL;
        }
    }
    int64_t t = days_from_civil(Y, (unsigned)M, (unsigned)D) * 86400 + h * 3600 + m * 60 + sec - off;
    *ts_us = t * 1000000 + us;
    return INGEST_OK;
}

/* ---- small field conversions ------------------------------------------ */
static int ip_parse(const struct span *sp, uint8_t out[16])
{
    char tmp[64];
    if (sp->p == NULL || sp->esc || sp->n == 0 || sp->n >= sizeof(tmp)) return 0;
    memcpy(tmp, sp->p, sp->n);
    tmp[sp->n] = 0;
    if (memchr(tmp, ':', sp->n)) {
        if (inet_pton(AF_INET6, tmp, out) == 1) return 6;
        return 0;
    }
    memset(out, 0, 10);
    out[10] = 0xff;
    out[11] = 0xff;
    if (inet_pton(AF_INET, tmp, out + 12) == 1) return 4;
    memset(out, 0, 16);
    return 0;
}

static int ieq(const struct span *sp, const char *lit)
{
    size_t n = strlen(lit);
    if (sp->n != n) return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = sp->p[i];
        if (c >= 'A' && c <= 'Z') c |= 0x20;
        if (c != (uint8_t)lit[i]) return 0;
    }
    return 1;
}

static uint8_t proto_number(const struct fields *f)
{
    if (f->have & H_PROTO_NUM) return f->proto_num <= 255 ? (uint8_t)f->proto_num : 0;
    const struct span *sp = &f->proto;
    if (sp->p == NULL || sp->n == 0) return 0;
    /* Suricata writes the IANA name, or the number ("%03" PRIu32) for others */
    int allnum = 1;
    unsigned v = 0;
    for (uint32_t i = 0; i < sp->n && i < 4; i++) {
        if (sp->p[i] < '0' || sp->p[i] > '9') { allnum = 0; break; }
        v = v * 10 + (sp->p[i] - '0');
    }
    if (allnum && sp->n <= 3) return v <= 255 ? (uint8_t)v : 0;
    static const struct { const char *name; uint8_t num; } names[] = {
        {"tcp", 6}, {"udp", 17}, {"icmp", 1}, {"ipv6-icmp", 58}, {"icmpv6", 58}, {"sctp", 132},
        {"gre", 47}, {"esp", 50}, {"ah", 51}, {"igmp", 2}, {"ipv6", 41}, {"ipip", 4},
        {"pim", 103}, {"vrrp", 112}, {"udplite", 136}, {"ospf", 89},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (ieq(sp, names[i].name)) return names[i].num;
    return 0;
}

/* The tweak of EVE text keys (Alertpkt keys use their source kind, < 256). */
#define EVE_TEXT_TWEAK 0x657665u

/* Is the event type in the filter ("\nalert\nflow\n"; NULL = everything)? */
static int type_wanted(const struct span *t, const uint8_t *filter, size_t filter_len)
{
    if (filter == NULL || filter_len == 0) return 1;
    if (t->n + 2 > filter_len) return 0;
    for (size_t i = 0; i + t->n + 2 <= filter_len; i++) {
        if (filter[i] == '\n' && filter[i + t->n + 1] == '\n' && memcmp(filter + i + 1, t->p, t->n) == 0)
            return 1;
    }
    return 0;
}

/* The source kind a rendered record names ("ingest":{"source":...}). */
static uint8_t source_kind(const struct span *sp)
{
    if (sp->p == NULL || sp->esc) return INGEST_SRC_NONE;
    if (sp->n == 5 && memcmp(sp->p, "snort", 5) == 0) return INGEST_SRC_SNORT;
    if (sp->n == 9 && memcmp(sp->p, "barnyard2", 9) == 0) return INGEST_SRC_BARNYARD2;
    if (sp->n == 8 && memcmp(sp->p, "unified2", 8) == 0) return INGEST_SRC_UNIFIED2;
    if (sp->n == 3 && memcmp(sp->p, "eve", 3) == 0) return INGEST_SRC_EVE;
    return INGEST_SRC_NONE;
}

static int decode(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                  const uint8_t *slot_flags, unsigned n, const uint8_t *filter, size_t filter_len,
                  struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                  struct ingest_eve_alert *ext, struct ingest_eve_wire *wire, unsigned alert_cap)
{
    if (buf == NULL || offs == NULL || lens == NULL || recs == NULL || (n && (alerts == NULL || ext == NULL)))
        return INGEST_EINVAL;
    if (!tables_ready)
        init_tables();
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        struct ingest_eve_rec *r = &recs[i];
        uint64_t off = offs[i];
        uint32_t len = lens[i];
        r->off = off;
        r->len = len;
        r->etype_off = 0;
        r->etype_len = 0;
        r->flags = 0;
        if (slot_flags != NULL && (slot_flags[i] & INGEST_SLOT_TRUNC)) {
            r->status = INGEST_EVE_TRUNCATED;
            continue;
        }
        if (off > buf_len || len > buf_len - off) return INGEST_EINVAL;
        /* trim surrounding whitespace (the trailing "\n" Suricata adds), and
         * a UTF-8 byte order mark in front (an eve.json saved by a Windows
         * editor: RFC 8259 lets a parser ignore it; it is not part of the
         * record kept for output) */
        const uint8_t *s = buf + off, *e = s + len;
        while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
        if (e - s >= 3 && s[0] == 0xef && s[1] == 0xbb && s[2] == 0xbf) {
            s += 3;
            while (s < e && (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')) s++;
        }
        while (e > s && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\r' || e[-1] == '\t')) e--;
        r->off = (uint64_t)(s - buf);
        r->len = (uint32_t)(e - s);
        if (s == e) {
            r->status = INGEST_EVE_EMPTY;
            continue;
        }
        /* s/e are trimmed: only whitespace between tokens is seen by ws() */
        struct p p = {s, e, 0};
        struct fields f;
        memset(&f, 0, sizeof(f));
        f.wire = wire != NULL;
        if (*s != '{') {
            r->status = value(&p, 0) && p.s == e ? INGEST_EVE_NOT_OBJECT : INGEST_EVE_INVALID_JSON;
            continue;
        }
        if (!top_object(&p, &f) || p.s != e) {
            r->status = INGEST_EVE_INVALID_JSON;
            continue;
        }
        if (p.nl)
            r->flags |= INGEST_EVE_REC_NEWLINE;
        if (f.event_type.p == NULL || f.event_type.n == 0) {
            r->status = INGEST_EVE_NO_EVENT_TYPE;
            continue;
        }
        r->etype_off = (uint32_t)(f.event_type.p - s);
        r->etype_len = f.event_type.n;
        if (!type_wanted(&f.event_type, filter, filter_len)) {
            r->status = INGEST_EVE_FILTERED;
            continue;
        }
        const struct span *t = &f.event_type;
        if (t->n == 5 && memcmp(t->p, "alert", 5) == 0) {
            /* fall through to the alert below */
        } else {
            if (t->n == 4 && memcmp(t->p, "flow", 4) == 0) r->status = INGEST_EVE_FLOW;
            else if (t->n == 7 && memcmp(t->p, "netflow", 7) == 0) r->status = INGEST_EVE_NETFLOW;
            else if (t->n == 5 && memcmp(t->p, "stats", 5) == 0) r->status = INGEST_EVE_STATS;
            else r->status = INGEST_EVE_OTHER;
            continue;
        }
        int64_t ts;
        if (f.timestamp.p == NULL || f.timestamp.esc || ingest_eve_parse_ts(f.timestamp.p, f.timestamp.n, &ts) != 0) {
            r->status = INGEST_EVE_BAD_TIMESTAMP;
            continue;
        }
        if (!(f.have & H_ALERT) || !(f.have & H_SID) || f.sid > UINT32_MAX) {
            r->status = INGEST_EVE_BAD_ALERT;
            continue;
        }
        uint8_t src = INGEST_SRC_EVE;
        if (wire != NULL) {
            /* a rendered alert always has all of these: anything less is not ours */
            src = source_kind(&f.source);
            if (!(f.have & H_INGEST) || src == INGEST_SRC_NONE || !(f.have & H_SENSOR) ||
                !(f.have & H_EVENT) || !(f.have & H_CLASS) || f.sensor_id > UINT32_MAX ||
                f.event_id > UINT32_MAX || f.class_id > UINT32_MAX) {
                r->status = INGEST_EVE_BAD_ALERT;
                continue;
            }
        }
        if (k >= alert_cap) return INGEST_ENOSPC;
        r->status = INGEST_EVE_ALERT;
        struct ingest_alert *a = &alerts[k];
        struct ingest_eve_alert *x = &ext[k];
        memset(a, 0, sizeof(*a));
        memset(x, 0, sizeof(*x));
        a->ts_us = ts;
        a->flow_id = (f.have & H_FLOW) ? f.flow_id : 0;
        a->gid = (f.have & H_GID) && f.gid <= UINT32_MAX ? (uint32_t)f.gid : 1;
        a->sid = (uint32_t)f.sid;
        a->rev = (f.have & H_REV) && f.rev <= UINT32_MAX ? (uint32_t)f.rev : 0;
        a->priority = (f.have & H_SEV) && f.severity <= UINT32_MAX ? (uint32_t)f.severity : 0;
        a->msg_idx = -1;
        a->app_idx = -1;
        a->source = src;
        if (wire != NULL) {
            a->sensor_id = (uint32_t)f.sensor_id;
            a->event_id = (uint32_t)f.event_id;
            a->class_id = (uint32_t)f.class_id;
            if (f.have & H_ANOMALY) a->flags |= INGEST_F_PKT_ANOMALY;
            struct ingest_eve_wire *w = &wire[k];
            memset(w, 0, sizeof(*w));
            if (f.app_name.p != NULL) {
                w->app_off = (uint32_t)(f.app_name.p - s);
                w->app_len = f.app_name.n;
                w->app_esc = (uint8_t)f.app_name.esc;
                w->has_app = 1;
                w->app_hash = ingest_keyed_hash(f.app_name.p, f.app_name.n, EVE_TEXT_TWEAK);
            }
            if (f.refs.p != NULL) {
                w->refs_off = (uint32_t)(f.refs.p - s);
                w->refs_len = f.refs.n;
                w->has_refs = 1;
                w->refs_hash = ingest_keyed_hash(f.refs.p, f.refs.n, EVE_TEXT_TWEAK);
            }
        }
        a->proto = proto_number(&f);
        int v4 = ip_parse(&f.src_ip, a->src_addr);
        int v6 = ip_parse(&f.dest_ip, a->dst_addr);
        if (v4 && v4 == v6) {
            a->ip_ver = (uint8_t)v4;
            a->flags |= INGEST_F_ADDRS;
        } else {
            memset(a->src_addr, 0, 16);
            memset(a->dst_addr, 0, 16);
        }
        /* Suricata writes src_port/dest_port 0 beside icmp_type/icmp_code
         * for ICMP: type and code are what the alert says (as from Snort). */
        if ((f.have & H_ITYPE) && (f.have & H_ICODE) && f.icmp_type <= 255 && f.icmp_code <= 255) {
            a->src_port = (uint16_t)f.icmp_type;
            a->dst_port = (uint16_t)f.icmp_code;
            a->flags |= INGEST_F_ICMP;
        } else if ((f.have & H_SPORT) && (f.have & H_DPORT) && f.src_port <= 65535 && f.dest_port <= 65535) {
            a->src_port = (uint16_t)f.src_port;
            a->dst_port = (uint16_t)f.dest_port;
            a->flags |= INGEST_F_PORTS;
        }
        if ((f.have & H_VLAN) && f.vlan <= 4095) {
            a->vlan = (uint16_t)f.vlan;
            a->flags |= INGEST_F_VLAN;
        }
        if (f.action.p != NULL) {
            if (f.action.n == 7 && memcmp(f.action.p, "allowed", 7) == 0) a->action = INGEST_ACTION_ALLOWED;
            else if (f.action.n == 7 && memcmp(f.action.p, "blocked", 7) == 0) a->action = INGEST_ACTION_BLOCKED;
        }
        x->rec = i;
        if (f.signature.p != NULL) {
            x->sig_off = (uint32_t)(f.signature.p - s);
            x->sig_len = f.signature.n;
            x->sig_esc = (uint8_t)f.signature.esc;
            x->has_sig = 1;
            x->sig_hash = ingest_keyed_hash(f.signature.p, f.signature.n, EVE_TEXT_TWEAK);
        }
        if (f.category.p != NULL) {
            x->cat_off = (uint32_t)(f.category.p - s);
            x->cat_len = f.category.n;
            x->cat_esc = (uint8_t)f.category.esc;
            x->has_cat = 1;
            x->cat_hash = ingest_keyed_hash(f.category.p, f.category.n, EVE_TEXT_TWEAK);
        }
        k++;
    }
    return (int)k;
}

int ingest_eve_decode(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                      const uint8_t *slot_flags, unsigned n, const uint8_t *filter, size_t filter_len,
                      struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                      struct ingest_eve_alert *ext, unsigned alert_cap)
{
    return decode(buf, buf_len, offs, lens, slot_flags, n, filter, filter_len, recs, alerts, ext, NULL,
                  alert_cap);
}

int ingest_eve_decode_wire(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                           unsigned n, struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                           struct ingest_eve_alert *ext, struct ingest_eve_wire *wire, unsigned alert_cap)
{
    if (n && wire == NULL)
        return INGEST_EINVAL; /* wire mode is told by wire != NULL */
    return decode(buf, buf_len, offs, lens, NULL, n, NULL, 0, recs, alerts, ext, wire, alert_cap);
}

int ingest_eve_lines(const uint8_t *buf, size_t len, size_t base, uint64_t *offs, uint32_t *lens,
                     unsigned cap, size_t *consumed)
{
    if (buf == NULL || offs == NULL || lens == NULL || consumed == NULL) return INGEST_EINVAL;
    size_t pos = 0;
    unsigned n = 0;
    while (n < cap && pos < len) {
        const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
        if (nl == NULL) break;
        size_t end = (size_t)(nl - buf) + 1;
        if (end - pos > UINT32_MAX) return INGEST_EINVAL;
        offs[n] = base + pos;
        lens[n] = (uint32_t)(end - pos);
        n++;
        pos = end;
    }
    *consumed = pos;
    return (int)n;
}

/* Raw CR/LF inside a validated record can only be whitespace between
 * tokens (a JSON string cannot hold a raw control character), so turning
 * them into spaces keeps the same JSON while making the record one line:
 * no sender can make a JSON-lines output show a line it did not validate. */
static void flatten(uint8_t *p, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    /* 16 bytes at a time (a hostile sender may flag every record) */
    const __m128i nl = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'), sp = _mm_set1_epi8(' ');
    for (; n - i >= 16; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, nl), _mm_cmpeq_epi8(v, cr));
        _mm_storeu_si128((__m128i *)(p + i), _mm_or_si128(_mm_andnot_si128(m, v), _mm_and_si128(m, sp)));
    }
#endif
    for (; i < n; i++)
        if (p[i] == '\n' || p[i] == '\r')
            p[i] = ' ';
}

long ingest_eve_gather(const uint8_t *buf, size_t buf_len, const struct ingest_eve_rec *recs,
                       const uint32_t *idx, unsigned n, uint8_t *out, size_t out_cap, uint64_t *out_off)
{
    if (buf == NULL || recs == NULL || idx == NULL || out == NULL || out_off == NULL) return INGEST_EINVAL;
    size_t pos = 0;
    for (unsigned j = 0; j < n; j++) {
        const struct ingest_eve_rec *r = &recs[idx[j]];
        if (r->off > buf_len || r->len > buf_len - r->off) return INGEST_EINVAL;
        if (pos > out_cap || r->len > out_cap - pos) return INGEST_ENOSPC;
        memcpy(out + pos, buf + r->off, r->len);
        if (r->flags & INGEST_EVE_REC_NEWLINE)
            flatten(out + pos, r->len);
        out_off[j] = pos;
        pos += r->len;
    }
    return (long)pos;
}

int ingest_dedupe_u64(const uint64_t *keys, unsigned n, uint32_t *first, uint64_t *tab_keys,
                      uint32_t *tab_vals, unsigned tab_size)
{
    /* open addressing, linear probing; tab_size is a power of two > n */
    if (keys == NULL || first == NULL || tab_keys == NULL || tab_vals == NULL || tab_size == 0 ||
        (tab_size & (tab_size - 1)) != 0 || tab_size <= n)
        return INGEST_EINVAL;
    memset(tab_keys, 0, (size_t)tab_size * sizeof(uint64_t));
    unsigned mask = tab_size - 1, distinct = 0;
    for (unsigned i = 0; i < n; i++) {
        uint64_t k = keys[i];
        if (k == 0) {
            first[i] = UINT32_MAX;
            continue;
        }
        unsigned h = (unsigned)((k * 0x9e3779b97f4a7c15ull) >> 32) & mask;
        while (tab_keys[h] != 0 && tab_keys[h] != k)
            h = (h + 1) & mask;
        if (tab_keys[h] == 0) {
            tab_keys[h] = k;
            tab_vals[h] = i;
            distinct++;
        }
        first[i] = tab_vals[h];
    }
    return (int)distinct;
}
