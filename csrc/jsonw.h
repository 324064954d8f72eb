/*
 * jsonw.h - the one bounded JSON writer of the C core (format.c, unified2.c).
 *
 * A writer owns nothing: it writes into the caller's buffer [p, end).  Every
 * write checks the room left first; a write that does not fit writes nothing
 * and marks the writer full, and a full writer writes nothing more (end is
 * pulled back to p), so the caller checks jw_full() once, after a whole
 * line or call, and reports INGEST_ENOSPC (the caller grows its buffer and
 * calls again).  No output is ever partial in a way the caller can see.
 *
 * Static inline: each .c file that includes it gets its own copy (the C core
 * is one shared object; nothing here is exported).
 */
#ifndef INGEST_JSONW_H
#define INGEST_JSONW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct jsonw {
    uint8_t *p;   /* next byte to write */
    uint8_t *end; /* one past the last writable byte */
    int full;     /* a write did not fit: the output is unusable */
};

static inline struct jsonw jw_init(uint8_t *out, size_t cap)
{
    struct jsonw w = {out, out + cap, 0};
    return w;
}

static inline int jw_full(const struct jsonw *w) { return w->full; }

/* Room for n more bytes?  If not, the writer becomes (and stays) full. */
static inline int jw_room(struct jsonw *w, size_t n)
{
    if ((size_t)(w->end - w->p) >= n)
        return 1;
    w->full = 1;
    w->end = w->p;
    return 0;
}

static inline void jw_bytes(struct jsonw *w, const void *s, size_t n)
{
    if (!jw_room(w, n))
        return;
    memcpy(w->p, s, n);
    w->p += n;
}

static inline void jw_byte(struct jsonw *w, uint8_t c)
{
    if (jw_room(w, 1))
        *w->p++ = c;
}

/* A string literal, without its NUL. */
#define JW_LIT(w, lit) jw_bytes((w), (lit), sizeof(lit) - 1)

static inline void jw_u64(struct jsonw *w, uint64_t v)
{
    char tmp[20];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    jw_bytes(w, tmp + i, sizeof tmp - i);
}

static inline void jw_i64(struct jsonw *w, int64_t v)
{
    if (v < 0) {
        jw_byte(w, '-');
        jw_u64(w, (uint64_t)(-(v + 1)) + 1); /* INT64_MIN without overflow */
    } else {
        jw_u64(w, (uint64_t)v);
    }
}

/* A literal (a member's key and punctuation) and a number after it. */
#define JW_U64(w, lit, v)                                                                          \
    do {                                                                                           \
        JW_LIT((w), (lit));                                                                        \
        jw_u64((w), (v));                                                                          \
    } while (0)

/* Two decimal digits of v % 100 (timestamps). */
static inline void jw_2d(struct jsonw *w, unsigned v)
{
    uint8_t d[2] = {(uint8_t)('0' + v / 10 % 10), (uint8_t)('0' + v % 10)};
    jw_bytes(w, d, 2);
}

/* A JSON string body (no quotes) from UTF-8 text: '"', '\\', control bytes
 * and DEL escaped, everything else as is.  At most 6 bytes per input byte:
 * with room for that, one check covers the whole string (the common case);
 * otherwise every byte is checked. */
static inline void jw_esc(struct jsonw *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int checked = (size_t)(w->end - w->p) / 6 < n;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i], e[6];
        size_t k;
        if (c == '"' || c == '\\') {
            e[0] = '\\';
            e[1] = c;
            k = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(e, "\\u00", 4);
            e[4] = (uint8_t)hex[c >> 4];
            e[5] = (uint8_t)hex[c & 15];
            k = 6;
        } else {
            e[0] = c;
            k = 1;
        }
        if (checked && !jw_room(w, k))
            return;
        memcpy(w->p, e, k);
        w->p += k;
    }
}

/* A quoted JSON string from UTF-8 text. */
static inline void jw_str(struct jsonw *w, const uint8_t *s, size_t n)
{
    jw_byte(w, '"');
    jw_esc(w, s, n);
    jw_byte(w, '"');
}

/* A quoted JSON string from raw bytes of unknown encoding: printable ASCII
 * as is, every other byte as \u00XX (read as Latin-1, so any input gives
 * valid JSON and the bytes can be recovered). */
static inline void jw_latin1(struct jsonw *w, const uint8_t *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    jw_byte(w, '"');
    for (size_t i = 0; i < n && !w->full; i++) {
        uint8_t c = s[i];
        if (c == '"' || c == '\\') {
            uint8_t e[2] = {'\\', c};
            jw_bytes(w, e, 2);
        } else if (c >= 0x20 && c < 0x7f) {
            jw_byte(w, c);
        } else {
            uint8_t e[6] = {'\\', 'u', '0', '0', (uint8_t)hex[c >> 4], (uint8_t)hex[c & 15]};
            jw_bytes(w, e, 6);
        }
    }
    jw_byte(w, '"');
}

/* base64 (RFC 4648) two output characters at a time: the pair for every
 * 12-bit value, as a constant table (8 KiB, built by the preprocessor).
 * Measured against a 6-bit table and Python's binascii in
 * BENCHMARKS.md ("base64"): about 4x the 6-bit loop. */
#define JW_B64C(x) ((x) < 26 ? 'A' + (x) : (x) < 52 ? 'a' + (x) - 26 : (x) < 62 ? '0' + (x) - 52 : (x) == 62 ? '+' : '/')
#define JW_B64P(i) JW_B64C((i) >> 6), JW_B64C((i) & 63)
#define JW_B64P4(i) JW_B64P(i), JW_B64P((i) + 1), JW_B64P((i) + 2), JW_B64P((i) + 3)
#define JW_B64P16(i) JW_B64P4(i), JW_B64P4((i) + 4), JW_B64P4((i) + 8), JW_B64P4((i) + 12)
#define JW_B64P64(i) JW_B64P16(i), JW_B64P16((i) + 16), JW_B64P16((i) + 32), JW_B64P16((i) + 48)
#define JW_B64P256(i) JW_B64P64(i), JW_B64P64((i) + 64), JW_B64P64((i) + 128), JW_B64P64((i) + 192)
#define JW_B64P1024(i) JW_B64P256(i), JW_B64P256((i) + 256), JW_B64P256((i) + 512), JW_B64P256((i) + 768)
static const uint8_t jw_b64_pairs[8192] = {JW_B64P1024(0), JW_B64P1024(1024), JW_B64P1024(2048),
                                           JW_B64P1024(3072)};

/* A quoted base64 string (RFC 4648, padded). */
static inline void jw_b64(struct jsonw *w, const uint8_t *s, size_t n)
{
    if (!jw_room(w, (n + 2) / 3 * 4 + 2))
        return;
    uint8_t *o = w->p;
    *o++ = '"';
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        memcpy(o, jw_b64_pairs + 2 * (v >> 12), 2);
        memcpy(o + 2, jw_b64_pairs + 2 * (v & 4095), 2);
        o += 4;
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        memcpy(o, jw_b64_pairs + 2 * (v >> 12), 2);
        o[2] = i + 1 < n ? jw_b64_pairs[2 * ((v >> 6) & 63) + 1] : '=';
        o[3] = '=';
        o += 4;
    }
    *o++ = '"';
    w->p = o;
}

/* Dotted quad of 4 bytes into tmp; returns the bytes written (7 to 15). */
static inline size_t jw_quad(char *tmp, const uint8_t *q)
{
    size_t k = 0;
    for (int i = 0; i < 4; i++) {
        unsigned v = q[i];
        if (v >= 100)
            tmp[k++] = (char)('0' + v / 100);
        if (v >= 10)
            tmp[k++] = (char)('0' + v / 10 % 10);
        tmp[k++] = (char)('0' + v % 10);
        if (i < 3)
            tmp[k++] = '.';
    }
    return k;
}

/* Is a (16 bytes) an IPv4-mapped IPv6 address (::ffff:0:0/96)? */
static inline int jw_is_mapped(const uint8_t a[16])
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, mapped, 12) == 0;
}

/* An address (16 bytes; IPv4 held as ::ffff:a.b.c.d) as text, unquoted,
 * without printf: v4 != 0 gives the dotted quad of the last 4 bytes;
 * otherwise RFC 5952 text (lower case, no leading zeros, the longest run
 * of two or more zero groups as "::", the first on a tie), and an
 * IPv4-mapped address as ::ffff:a.b.c.d (RFC 5952 section 5; what
 * inet_ntop prints).  Other addresses print as Python's ipaddress does
 * (glibc's inet_ntop also writes ::/96 "IPv4-compatible" addresses in
 * mixed notation, which RFC 4291 deprecated).  At most 45 bytes. */
static inline void jw_ip_text(struct jsonw *w, const uint8_t a[16], int v4)
{
    char tmp[48];
    size_t k = 0;
    if (v4) {
        k = jw_quad(tmp, a + 12);
    } else if (jw_is_mapped(a)) {
        memcpy(tmp, "::ffff:", 7);
        k = 7 + jw_quad(tmp + 7, a + 12);
    } else {
        unsigned g[8];
        for (int i = 0; i < 8; i++)
            g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
        int best = -1, blen = 0;
        for (int i = 0; i < 8;) {
            if (g[i]) {
                i++;
                continue;
            }
            int j = i;
            while (j < 8 && !g[j])
                j++;
            if (j - i > blen && j - i >= 2) {
                best = i;
                blen = j - i;
            }
            i = j;
        }
        static const char hex[] = "0123456789abcdef";
        for (int i = 0; i < 8; i++) {
            if (i == best) {
                tmp[k++] = ':';
                if (i == 0)
                    tmp[k++] = ':';
                i += blen - 1;
                continue;
            }
            unsigned v = g[i];
            if (v >= 0x1000)
                tmp[k++] = hex[v >> 12];
            if (v >= 0x100)
                tmp[k++] = hex[(v >> 8) & 15];
            if (v >= 0x10)
                tmp[k++] = hex[(v >> 4) & 15];
            tmp[k++] = hex[v & 15];
            if (i < 7)
                tmp[k++] = ':';
        }
    }
    jw_bytes(w, tmp, k);
}

/* An alert's address: the canonical alert holds IPv4 as ::ffff:a.b.c.d,
 * so a mapped address is a dotted quad unless the alert is IPv6 (ip_ver 6:
 * then it is a real IPv4-mapped IPv6 address, ::ffff:a.b.c.d, and the text
 * parses back to the same 16 bytes).  ip_ver is the source's version: in a
 * Snort 3 event whose source is IPv4 and destination IPv6 (or the reverse)
 * each address still prints as its own family, except an IPv4 destination
 * of an IPv6 source, which prints as ::ffff:a.b.c.d (the same address). */
static inline int jw_v4(const uint8_t a[16], uint8_t ip_ver)
{
    return ip_ver != 6 && jw_is_mapped(a);
}

/* The same, quoted. */
static inline void jw_ip(struct jsonw *w, const uint8_t a[16], int v4)
{
    jw_byte(w, '"');
    jw_ip_text(w, a, v4);
    jw_byte(w, '"');
}

#endif /* INGEST_JSONW_H */
