/*
 * format.c - render a batch of canonical alerts as JSON lines.
 *
 * Two profiles:
 *   INGEST_FMT_EVE     the Suricata EVE alert schema, so EVE tools consume
 *                      Snort alerts unchanged; fields a source does not carry
 *                      are omitted, never invented.
 *   INGEST_FMT_TRISUL  the Trisul input-filter table fields.
 *
 * Writes into a caller-owned buffer through the bounded writer (jsonw.h):
 * every write is checked, and a buffer that is too small gives
 * INGEST_ENOSPC (never a partial line), and the caller grows it.  Strings
 * come from a caller's table of valid UTF-8 whose every entry is checked
 * against its pool before the first line; only '"', '\\' and control bytes
 * are escaped.
 */
#include <string.h>

#include "ingest.h"
#include "jsonw.h"

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

static void put_timestamp(struct jsonw *w, int64_t ts_us)
{
    ts_us = clamp_ts(ts_us);
    int64_t secs = ts_us >= 0 ? ts_us / 1000000 : -((-ts_us + 999999) / 1000000);
    int64_t us = ts_us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    jw_byte(w, '"');
    jw_2d(w, (unsigned)(y / 100));
    jw_2d(w, (unsigned)(y % 100));
    jw_byte(w, '-');
    jw_2d(w, m);
    jw_byte(w, '-');
    jw_2d(w, d);
    jw_byte(w, 'T');
    jw_2d(w, (unsigned)(sod / 3600));
    jw_byte(w, ':');
    jw_2d(w, (unsigned)(sod / 60 % 60));
    jw_byte(w, ':');
    jw_2d(w, (unsigned)(sod % 60));
    jw_byte(w, '.');
    uint8_t frac[6];
    for (int i = 5; i >= 0; i--, us /= 10)
        frac[i] = (uint8_t)('0' + us % 10);
    jw_bytes(w, frac, 6);
    JW_LIT(w, "+0000\"");
}

int ingest_format_times(const int64_t *ts_us, unsigned n, char *out)
{
    if ((ts_us == NULL || out == NULL) && n)
        return INGEST_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        /* the JSON form is the text in quotes: 33 bytes, always fits */
        uint8_t quoted[INGEST_TIME_TEXT + 2];
        struct jsonw w = jw_init(quoted, sizeof quoted);
        put_timestamp(&w, ts_us[i]);
        if (jw_full(&w) || w.p - quoted != (ptrdiff_t)sizeof quoted)
            return INGEST_EINVAL; /* not reached: the format has one length */
        memcpy(out + (size_t)i * INGEST_TIME_TEXT, quoted + 1, INGEST_TIME_TEXT);
    }
    return (int)n;
}

/* A string from the (chained) table; 0 if idx names none.  Every entry was
 * checked against its pool by check_strtab before the first line. */
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

/* The tables come from the caller: every string must lie inside its pool,
 * and the chain must end (at most 64 tables). */
static int check_strtab(const struct ingest_strtab *t)
{
    for (int depth = 0; t != NULL; t = t->next, depth++) {
        if (depth >= 64)
            return 0;
        if (t->count == 0)
            continue;
        if (t->pool == NULL || t->off == NULL || t->len == NULL)
            return 0;
        for (uint32_t k = 0; k < t->count; k++)
            if (t->off[k] > t->pool_len || t->len[k] > t->pool_len - t->off[k])
                return 0;
    }
    return 1;
}

static const char *proto_name(uint8_t proto)
{
    switch (proto) {
    case 6:
        return "TCP";
    case 17:
        return "UDP";
    case 1:
        return "ICMP";
    case 58:
        return "IPv6-ICMP";
    case 132:
        return "SCTP";
    default:
        return NULL;
    }
}

static const char *source_name(uint8_t src)
{
    switch (src) {
    case INGEST_SRC_SNORT:
    case INGEST_SRC_SNORT_APPID:
        return "snort";
    case INGEST_SRC_BARNYARD2:
    case INGEST_SRC_BARNYARD2_32:
        return "barnyard2";
    case INGEST_SRC_UNIFIED2:
        return "unified2";
    case INGEST_SRC_EVE:
        return "eve";
    default:
        return "unknown";
    }
}

static void put_cstr(struct jsonw *w, const char *s) { jw_bytes(w, s, strlen(s)); }

static void put_eve(struct jsonw *w, const struct ingest_alert *a, const struct ingest_strtab *t,
                    int32_t cat, int32_t extra, int32_t refs)
{
    const uint8_t *s;
    uint32_t n;
    const char *pname;

    JW_LIT(w, "{\"timestamp\":");
    put_timestamp(w, a->ts_us);
    if (a->flow_id) {
        JW_U64(w, ",\"flow_id\":", a->flow_id);
    }
    JW_LIT(w, ",\"event_type\":\"alert\"");
    if (a->flags & INGEST_F_VLAN) {
        JW_U64(w, ",\"vlan\":[", a->vlan);
        jw_byte(w, ']');
    }
    if (a->flags & INGEST_F_ADDRS) {
        JW_LIT(w, ",\"src_ip\":");
        jw_ip(w, a->src_addr, jw_v4(a->src_addr, a->ip_ver));
        if (a->flags & INGEST_F_PORTS) {
            JW_U64(w, ",\"src_port\":", a->src_port);
        }
        JW_LIT(w, ",\"dest_ip\":");
        jw_ip(w, a->dst_addr, jw_v4(a->dst_addr, a->ip_ver));
        if (a->flags & INGEST_F_PORTS) {
            JW_U64(w, ",\"dest_port\":", a->dst_port);
        }
        JW_LIT(w, ",\"proto\":\"");
        if ((pname = proto_name(a->proto)) != NULL)
            put_cstr(w, pname);
        else
            jw_u64(w, a->proto);
        jw_byte(w, '"');
        if (a->flags & INGEST_F_ICMP) {
            JW_U64(w, ",\"icmp_type\":", a->src_port);
            JW_U64(w, ",\"icmp_code\":", a->dst_port);
        }
    }
    JW_LIT(w, ",\"alert\":{");
    if (a->action == INGEST_ACTION_ALLOWED)
        JW_LIT(w, "\"action\":\"allowed\",");
    else if (a->action == INGEST_ACTION_BLOCKED)
        JW_LIT(w, "\"action\":\"blocked\",");
    JW_U64(w, "\"gid\":", a->gid);
    JW_U64(w, ",\"signature_id\":", a->sid);
    JW_U64(w, ",\"rev\":", a->rev);
    if (strtab_get(t, a->msg_idx, &s, &n)) {
        JW_LIT(w, ",\"signature\":");
        jw_str(w, s, n);
    }
    if (strtab_get(t, cat, &s, &n)) {
        JW_LIT(w, ",\"category\":");
        jw_str(w, s, n);
    }
    JW_U64(w, ",\"severity\":", a->priority);
    if (strtab_get(t, refs, &s, &n) && n) {
        JW_LIT(w, ",\"references\":");
        jw_bytes(w, s, n); /* a JSON array rendered by the caller (maps), verbatim */
    }
    JW_LIT(w, "},\"ingest\":{\"source\":\"");
    put_cstr(w, source_name(a->source));
    JW_U64(w, "\",\"sensor_id\":", a->sensor_id);
    JW_U64(w, ",\"event_id\":", a->event_id);
    JW_U64(w, ",\"class_id\":", a->class_id);
    if (strtab_get(t, a->app_idx, &s, &n)) {
        JW_LIT(w, ",\"app_name\":");
        jw_str(w, s, n);
    }
    if (a->flags & INGEST_F_PKT_ANOMALY)
        JW_LIT(w, ",\"packet_anomaly\":true");
    jw_byte(w, '}');
    if (strtab_get(t, extra, &s, &n) && n) {
        jw_byte(w, ',');
        jw_bytes(w, s, n); /* caller-rendered members, verbatim */
    }
    JW_LIT(w, "}\n");
}

/*
 * Trisul's input-filter fields, with the original Lua scripts' bugs fixed:
 * IPv6 addresses are printed as IPv6, ICMP type/code are not reported as
 * ports (they go to AlertDetails), UDP is 17, and SigIDKey keeps gid apart
 * ("sid" for gid 1, "gid:sid" otherwise) so preprocessor alerts do not
 * collide with rule sids.
 */
static void put_trisul(struct jsonw *w, const struct ingest_alert *a,
                       const struct ingest_strtab *t, int32_t cat)
{
    const uint8_t *s;
    uint32_t n;

    JW_LIT(w, "{\"AlertGroupGUID\":\"{9AFD8C08-07EB-47E0-BF05-28B4A7AE8DC9}\",\"TimestampSecs\":");
    int64_t ts = clamp_ts(a->ts_us);
    int64_t secs = ts >= 0 ? ts / 1000000 : -((-ts + 999999) / 1000000);
    jw_i64(w, secs);
    JW_LIT(w, ",\"TimestampUsecs\":");
    jw_i64(w, ts - secs * 1000000);
    JW_LIT(w, ",\"SigIDKey\":\"");
    if (a->gid != 1) {
        jw_u64(w, a->gid);
        jw_byte(w, ':');
    }
    jw_u64(w, a->sid);
    jw_byte(w, '"');
    if (strtab_get(t, a->msg_idx, &s, &n)) {
        JW_LIT(w, ",\"SigIDLabel\":");
        jw_str(w, s, n);
    }
    JW_U64(w, ",\"SigGenerator\":", a->gid);
    JW_U64(w, ",\"SensorID\":", a->sensor_id);
    JW_U64(w, ",\"EventID\":", a->event_id);
    if (a->flags & INGEST_F_ADDRS) {
        JW_LIT(w, ",\"ProtocolFamily\":");
        if (a->ip_ver == 6)
            JW_LIT(w, "\"IPV6\"");
        else
            JW_LIT(w, "\"IPV4\"");
        JW_LIT(w, ",\"SourceIP\":");
        jw_ip(w, a->src_addr, jw_v4(a->src_addr, a->ip_ver));
        JW_LIT(w, ",\"DestIP\":");
        jw_ip(w, a->dst_addr, jw_v4(a->dst_addr, a->ip_ver));
        if (a->flags & INGEST_F_PORTS) {
            JW_U64(w, ",\"SourcePort\":", a->src_port);
            JW_U64(w, ",\"DestPort\":", a->dst_port);
        }
        JW_U64(w, ",\"Protocol\":", a->proto);
    }
    JW_U64(w, ",\"SigRev\":", a->rev);
    JW_U64(w, ",\"Priority\":", a->priority);
    JW_LIT(w, ",\"ClassificationKey\":");
    if (strtab_get(t, cat, &s, &n)) {
        jw_str(w, s, n);
    } else {
        jw_byte(w, '"');
        jw_u64(w, a->class_id);
        jw_byte(w, '"');
    }
    JW_LIT(w, ",\"AlertStatus\":");
    if (a->action == INGEST_ACTION_BLOCKED)
        JW_LIT(w, "\"BLOCKED\"");
    else if (a->action == INGEST_ACTION_ALLOWED)
        JW_LIT(w, "\"ALLOWED\"");
    else
        JW_LIT(w, "\"FIRED\"");
    /* AlertDetails: what the constant "from socket1" never said. */
    JW_LIT(w, ",\"AlertDetails\":\"");
    if (strtab_get(t, a->app_idx, &s, &n)) {
        JW_LIT(w, "app=");
        jw_esc(w, s, n);
        jw_byte(w, ' ');
    }
    if (a->flags & INGEST_F_ICMP) {
        JW_U64(w, "icmp_type=", a->src_port);
        JW_U64(w, " icmp_code=", a->dst_port);
        jw_byte(w, ' ');
    }
    JW_U64(w, "gen=", a->gid);
    JW_LIT(w, "\"}\n");
}

static int32_t idx_at(const int32_t *v, unsigned i) { return v ? v[i] : -1; }

long ingest_format_json(const struct ingest_alert *alerts, unsigned n,
                        const struct ingest_strtab *strings,
                        const struct ingest_fmt_idx *idx, int profile, uint8_t *out,
                        size_t out_cap, uint32_t *ends)
{
    if ((alerts == NULL && n) || out == NULL || (profile != INGEST_FMT_EVE && profile != INGEST_FMT_TRISUL))
        return INGEST_EINVAL;
    if (!check_strtab(strings))
        return INGEST_EINVAL;
    static const struct ingest_fmt_idx none = {NULL, NULL, NULL, NULL};
    if (idx == NULL)
        idx = &none;
    struct jsonw w = jw_init(out, out_cap);
    for (unsigned i = 0; i < n; i++) {
        const struct ingest_alert *a = &alerts[i];
        int32_t cat = idx_at(idx->cat, i), extra = idx_at(idx->extra, i), raw = idx_at(idx->raw, i);
        int32_t refs = idx_at(idx->refs, i);
        const uint8_t *s;
        uint32_t sl;
        if (strtab_get(strings, raw, &s, &sl)) {
            /* verbatim object: exactly its bytes and a newline */
            jw_bytes(&w, s, sl);
            jw_byte(&w, '\n');
        } else if (profile == INGEST_FMT_EVE) {
            put_eve(&w, a, strings, cat, extra, refs);
        } else {
            put_trisul(&w, a, strings, cat);
        }
        if (jw_full(&w))
            return INGEST_ENOSPC;
        if (ends)
            ends[i] = (uint32_t)(w.p - out);
    }
    return (long)(w.p - out);
}

int ingest_format_addrs(const struct ingest_alert *alerts, unsigned n, char *src_out,
                        char *dst_out)
{
    if ((alerts == NULL || src_out == NULL || dst_out == NULL) && n)
        return INGEST_EINVAL;
    for (unsigned i = 0; i < n; i++) {
        char *so = src_out + (size_t)i * 46, *dso = dst_out + (size_t)i * 46;
        memset(so, 0, 46);
        memset(dso, 0, 46);
        if (!(alerts[i].flags & INGEST_F_ADDRS))
            continue;
        /* at most 45 bytes of text: always NUL-terminated in 46 */
        struct jsonw w = jw_init((uint8_t *)so, 45);
        jw_ip_text(&w, alerts[i].src_addr, jw_v4(alerts[i].src_addr, alerts[i].ip_ver));
        w = jw_init((uint8_t *)dso, 45);
        jw_ip_text(&w, alerts[i].dst_addr, jw_v4(alerts[i].dst_addr, alerts[i].ip_ver));
    }
    return (int)n;
}
