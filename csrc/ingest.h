/*
 * ingest.h - the C core's shared types and status codes.
 *
 * The C core knows nothing of Python, numpy or asyncio: every function takes
 * caller-owned buffers with explicit lengths, writes into them, and returns a
 * count (>= 0) or a negative INGEST_E* status.  Nothing here allocates.
 *
 * ingest/_build.py mirrors these declarations for cffi; ingest/batch.py
 * mirrors struct ingest_alert as a numpy dtype, and a unit test checks that
 * both agree on every offset.  Change all three together and bump
 * INGEST_ABI_VERSION.
 */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

#define INGEST_ABI_VERSION 1

/* ---- status codes (negative returns) ---------------------------------- */
#define INGEST_OK 0
#define INGEST_EINVAL (-1)   /* bad argument from the caller            */
#define INGEST_ESYS (-2)     /* system call failed; errno is preserved   */
#define INGEST_ENOSPC (-3)   /* caller's output buffer is too small       */

/* ---- source kinds (struct ingest_alert.source) ------------------------ */
#define INGEST_SRC_NONE 0
#define INGEST_SRC_SNORT 1        /* Snort 2.9 / Snort 3 Alertpkt, 65864 B  */
#define INGEST_SRC_SNORT_APPID 2  /* Snort 2 open-appid Alertpkt, 65928 B   */
#define INGEST_SRC_BARNYARD2 3    /* Barnyard2 x86-64 Alertpkt, 1856 B      */
#define INGEST_SRC_BARNYARD2_32 4 /* Barnyard2 32-bit Alertpkt, 1844 B      */
#define INGEST_SRC_UNIFIED2 5     /* Unified2 spool file                    */
#define INGEST_SRC_EVE 6          /* Suricata EVE JSON                      */

/* ---- struct ingest_alert.flags ---------------------------------------- */
#define INGEST_F_PACKET 0x01     /* a packet came with the alert           */
#define INGEST_F_ADDRS 0x02      /* src/dst addresses are valid            */
#define INGEST_F_PORTS 0x04      /* src/dst ports are valid (TCP/UDP/SCTP) */
#define INGEST_F_ICMP 0x08       /* ports hold ICMP type (src) / code (dst) */
#define INGEST_F_VLAN 0x10       /* vlan is valid                          */
#define INGEST_F_PKT_ANOMALY 0x20 /* packet headers failed a bounds check;
                                    the event fields are still valid      */

/* ---- action (struct ingest_alert.action) ------------------------------ */
#define INGEST_ACTION_UNKNOWN 0  /* the source does not say: omitted      */
#define INGEST_ACTION_ALLOWED 1
#define INGEST_ACTION_BLOCKED 2

/*
 * The canonical alert: one fixed-size record per alert, the same for every
 * input.  Text (signature message, application name) is never stored here;
 * msg_idx/app_idx index a string table that travels beside the batch.
 * 96 bytes, 8-byte aligned, no implicit padding.
 */
struct ingest_alert {
    int64_t ts_us;        /* alert time, microseconds since the epoch, UTC */
    uint64_t flow_id;     /* engine flow id (EVE); 0 when unknown           */
    uint8_t src_addr[16]; /* IPv6, or IPv4 as ::ffff:a.b.c.d               */
    uint8_t dst_addr[16];
    uint32_t sensor_id;
    uint32_t event_id;
    uint32_t gid;
    uint32_t sid;
    uint32_t rev;
    uint32_t class_id;
    uint32_t priority;
    int32_t msg_idx;      /* signature message in the string table, or -1  */
    int32_t app_idx;      /* application name in the string table, or -1   */
    uint16_t src_port;    /* or ICMP type when flags & INGEST_F_ICMP        */
    uint16_t dst_port;    /* or ICMP code when flags & INGEST_F_ICMP        */
    uint16_t vlan;
    uint8_t source;       /* INGEST_SRC_*                                   */
    uint8_t ip_ver;       /* 0 (no addresses), 4 or 6                       */
    uint8_t proto;        /* IANA protocol number (0 when unknown)          */
    uint8_t action;       /* INGEST_ACTION_*                                */
    uint8_t flags;        /* INGEST_F_*                                     */
    uint8_t reserved;
};

int ingest_abi_version(void);

/* ---- recv.c: batched datagram receive --------------------------------- */
#define INGEST_SLOT_TRUNC 0x01 /* the kernel cut the datagram (MSG_TRUNC) */

/*
 * Receive up to nslots datagrams from fd into caller-owned slots
 * (slots + i * slot_size).  Blocks until at least one datagram arrives or the
 * socket's SO_RCVTIMEO expires, then takes whatever else is already queued
 * (MSG_WAITFORONE).  lens[i] is the datagram's real length (which may exceed
 * slot_size when slot_flags[i] has INGEST_SLOT_TRUNC).  Returns the number of
 * datagrams, 0 on timeout or EINTR, or INGEST_ESYS with errno set.
 */
int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags);

/* ---- alertpkt.c: Snort / Barnyard2 Alertpkt batch decoder -------------- */
#define INGEST_ALERTPKT_SNORT_LEN 65864u
#define INGEST_ALERTPKT_SNORT_APPID_LEN 65928u
#define INGEST_ALERTPKT_BY2_LEN 1856u
#define INGEST_ALERTPKT_BY2_32_LEN 1844u
#define INGEST_ALERTPKT_MAX_LEN INGEST_ALERTPKT_SNORT_APPID_LEN
#define INGEST_ALERTMSG_LEN 256u
#define INGEST_APPNAME_LEN 64u

/* Per-slot outcome (status[i]).  Rejected slots produce no alert. */
#define INGEST_DG_OK 0
#define INGEST_DG_BAD_LENGTH 1      /* rejected: no Alertpkt has this size   */
#define INGEST_DG_TRUNCATED 2       /* rejected: MSG_TRUNC / longer than slot */
/* Packet anomalies: the alert is kept (the event is intact) without the
 * fields that would come from the damaged packet. */
#define INGEST_DG_BAD_OFFSET 3      /* dlthdr/nethdr/transhdr outside pkt     */
#define INGEST_DG_BAD_CAPLEN 4      /* caplen larger than the pkt[] area      */
#define INGEST_DG_BAD_IPHDR 5       /* nethdr points at no valid IP header    */
#define INGEST_DG_NREASONS 6

/*
 * Decode n received slots into out[] (capacity out_cap >= n).  Slot i has
 * lens[i] bytes (slot_flags[i] from ingest_recv_batch, may be NULL).  Rejected
 * slots produce no alert; status[i] says why.  For every produced alert j,
 * slot_of[j] is the slot it came from (so the caller can read alertmsg and
 * app_name in place, without copies).  msg_idx/app_idx are set to -1.
 * Returns the number of alerts written.
 */
int ingest_alertpkt_decode(const uint8_t *slots, size_t slot_size, unsigned n,
                           const uint32_t *lens, const uint8_t *slot_flags,
                           struct ingest_alert *out, unsigned out_cap,
                           uint32_t *slot_of, uint8_t *status);

/* Length of the NUL-terminated text at p, at most max (strnlen for cffi). */
size_t ingest_text_len(const uint8_t *p, size_t max);

/* ---- format.c: batch output formatting -------------------------------- */
#define INGEST_FMT_EVE 1
#define INGEST_FMT_TRISUL 2

/*
 * A string table: string k is pool[off[k] .. off[k] + len[k]) (UTF-8 or raw
 * bytes; escaped on output).
 */
struct ingest_strtab {
    const uint8_t *pool;
    const uint32_t *off;
    const uint32_t *len;
    uint32_t count;
};

/*
 * Per-alert string-table indices used by the formatter (any pointer may be
 * NULL, meaning -1 for every alert):
 *   cat   classification text (alert.category)
 *   extra a JSON fragment of members ("k":v,...) spliced into the object
 *         (Unified2 packets and extra-data, ...)
 *   raw   a complete JSON object emitted verbatim instead of rendering the
 *         alert (lossless EVE passthrough); the profile is ignored then
 */
struct ingest_fmt_idx {
    const int32_t *cat;
    const int32_t *extra;
    const int32_t *raw;
};

/*
 * Write alerts[0..n) as newline-terminated JSON objects into out (capacity
 * out_cap), using profile INGEST_FMT_*.  ends[i] (may be NULL) receives the
 * end offset of line i.  Returns bytes written, or INGEST_ENOSPC if out is
 * too small (the caller grows it and calls again).
 */
long ingest_format_json(const struct ingest_alert *alerts, unsigned n,
                        const struct ingest_strtab *strings,
                        const struct ingest_fmt_idx *idx, int profile, uint8_t *out,
                        size_t out_cap, uint32_t *ends);

/* Render the source and destination addresses of alerts[0..n) as text into
 * src_out/dst_out (n rows of 46 bytes, NUL-padded; empty when no address). */
int ingest_format_addrs(const struct ingest_alert *alerts, unsigned n,
                        char *src_out, char *dst_out);

/* ---- eve.c: Suricata EVE JSON batch decoder ---------------------------- */
/* Per-record outcome (struct ingest_eve_rec.status).  Below
 * INGEST_EVE_FIRST_REJECT the record is a valid EVE event. */
#define INGEST_EVE_ALERT 0          /* became a canonical alert              */
#define INGEST_EVE_FLOW 1           /* event_type "flow"                     */
#define INGEST_EVE_NETFLOW 2        /* event_type "netflow"                  */
#define INGEST_EVE_STATS 3          /* event_type "stats"                    */
#define INGEST_EVE_OTHER 4          /* any other event_type (dns, http, ...) */
#define INGEST_EVE_FILTERED 5       /* valid, but not in the event-type filter */
#define INGEST_EVE_FIRST_REJECT 6
#define INGEST_EVE_EMPTY 6          /* blank line                            */
#define INGEST_EVE_INVALID_JSON 7   /* not JSON (or trailing bytes after it) */
#define INGEST_EVE_NOT_OBJECT 8     /* JSON, but not an object               */
#define INGEST_EVE_NO_EVENT_TYPE 9  /* object without a string event_type    */
#define INGEST_EVE_BAD_TIMESTAMP 10 /* alert whose timestamp does not parse  */
#define INGEST_EVE_BAD_ALERT 11     /* alert without alert.signature_id      */
#define INGEST_EVE_TRUNCATED 12     /* datagram cut by the kernel (MSG_TRUNC) */
#define INGEST_EVE_NREASONS 13

/* One input record.  off/len are rewritten to the record without
 * surrounding whitespace (what is kept verbatim); etype_* is the event_type
 * text relative to off (0/0 when there is none). */
struct ingest_eve_rec {
    uint64_t off;
    uint32_t len;
    uint32_t etype_off;
    uint32_t etype_len;
    uint8_t status;
    uint8_t reserved[3];
};

/* Beside each produced alert: where its text is.  *_off are relative to the
 * record's (trimmed) start; the text is the JSON string body, still escaped
 * when *_esc.  *_hash is FNV-1a of those bytes, for de-duplication. */
struct ingest_eve_alert {
    uint64_t sig_hash;
    uint64_t cat_hash;
    uint32_t rec;
    uint32_t sig_off;
    uint32_t sig_len;
    uint32_t cat_off;
    uint32_t cat_len;
    uint8_t has_sig;
    uint8_t sig_esc;
    uint8_t has_cat;
    uint8_t cat_esc;
};

/*
 * Validate and decode records i < n, each lens[i] bytes at buf + offs[i]
 * (slot_flags may be NULL; INGEST_SLOT_TRUNC marks a cut datagram).  filter
 * is NULL or "\ntype\ntype\n": event types outside it are FILTERED.  Every
 * record gets recs[i]; alerts become alerts[k] with ext[k] beside them.
 * Returns the number of alerts, INGEST_ENOSPC if alert_cap is too small, or
 * INGEST_EINVAL.
 */
int ingest_eve_decode(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                      const uint8_t *slot_flags, unsigned n, const uint8_t *filter, size_t filter_len,
                      struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                      struct ingest_eve_alert *ext, unsigned alert_cap);

/* Suricata's timestamp ("%Y-%m-%dT%H:%M:%S.%06u%z", also Z / +hh:mm / no
 * zone = UTC) as microseconds since the epoch, UTC.  INGEST_EINVAL if bad. */
int ingest_eve_parse_ts(const uint8_t *s, size_t n, int64_t *ts_us);

/* Split buf[0..len) into complete '\n'-terminated lines (at most cap):
 * offs[i] = base + start, lens[i] includes the '\n'.  *consumed is the
 * number of bytes in those lines; the rest is an unterminated tail. */
int ingest_eve_lines(const uint8_t *buf, size_t len, size_t base, uint64_t *offs, uint32_t *lens,
                     unsigned cap, size_t *consumed);

/* Copy the records recs[idx[j]] (j < n) back to back into out (capacity
 * out_cap); out_off[j] is where record j starts.  Returns the bytes written,
 * INGEST_ENOSPC or INGEST_EINVAL.  (The verbatim pool of a batch's alerts.) */
long ingest_eve_gather(const uint8_t *buf, size_t buf_len, const struct ingest_eve_rec *recs,
                       const uint32_t *idx, unsigned n, uint8_t *out, size_t out_cap, uint64_t *out_off);

/* For keys[0..n) (0 = no key): first[i] = the index of the first key equal
 * to keys[i] (UINT32_MAX for 0).  tab_keys/tab_vals: caller-owned scratch
 * of tab_size entries, a power of two > n.  Returns the number of distinct
 * keys.  (Signature and category texts are decoded once per distinct text.) */
int ingest_dedupe_u64(const uint64_t *keys, unsigned n, uint32_t *first, uint64_t *tab_keys,
                      uint32_t *tab_vals, unsigned tab_size);

#endif /* INGEST_H */
