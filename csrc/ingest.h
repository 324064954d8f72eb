/*
 * ingest.h - the C core's shared types and status codes.
 *
 * The C core knows nothing of Python, numpy or asyncio: every function takes
 * caller-owned buffers with explicit lengths, writes into them, and returns a
 * count (>= 0) or a negative INGEST_E* status.  Nothing here allocates.
 *
 * This header is the one source of the cffi declarations: ingest/_build.py
 * reads everything between the "cffi: begin" and "cffi: end" markers below
 * (every #define there becomes "#define NAME ..." so cffi takes the value
 * from the compiled C), so keep that part plain C declarations that cffi
 * can parse (no macros with arguments, no #if).  ingest/batch.py and the
 * dtypes in ingest/unified2.py and ingest/eve.py mirror the structs as
 * numpy dtypes; unit tests check that they agree on every offset.  Bump
 * INGEST_ABI_VERSION (and ingest/native.py) with any change here.
 */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

/* ---- cffi: begin ---- */

#define INGEST_ABI_VERSION 22

/* ---- status codes (negative returns) ---------------------------------- */
#define INGEST_OK 0
#define INGEST_EINVAL (-1)   /* bad argument from the caller            */
#define INGEST_ESYS (-2)     /* system call failed; errno is preserved   */
#define INGEST_ENOSPC (-3)   /* caller's output buffer is too small       */
#define INGEST_ERANGE (-4)   /* a value does not fit its output type      */
#define INGEST_ESQLITE (-5)  /* SQLite refused: ingest_sqlite_errcode says why */
#define INGEST_EAGAIN (-6)   /* nothing yet (a wait timed out)            */
#define INGEST_EEOF (-7)     /* nothing more will come                    */

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

/* ---- the canonical flow record ----------------------------------------- */
/* Flow source kinds (struct ingest_flow.source) */
#define INGEST_FLOW_SRC_NONE 0
#define INGEST_FLOW_SRC_EVE 1       /* Suricata EVE flow / netflow event      */
#define INGEST_FLOW_SRC_NETFLOW5 2  /* NetFlow v5 over UDP                    */
#define INGEST_FLOW_SRC_NETFLOW9 3  /* NetFlow v9 over UDP                    */
#define INGEST_FLOW_SRC_IPFIX 4     /* IPFIX (NetFlow v10) over UDP           */
#define INGEST_FLOW_SRC_ZEEK 5      /* Zeek conn.log (decoded in Python)      */

/* struct ingest_flow.flags */
#define INGEST_FF_ADDRS 0x01     /* src/dst addresses are valid             */
#define INGEST_FF_PORTS 0x02     /* src/dst ports are valid (TCP/UDP/SCTP)  */
#define INGEST_FF_ICMP 0x04      /* ports hold ICMP type (src) / code (dst) */
#define INGEST_FF_VLAN 0x08      /* vlan is valid                           */
#define INGEST_FF_BIFLOW 0x10    /* pkts_rev/bytes_rev/tcp_flags_rev valid  */
#define INGEST_FF_TCP_FLAGS 0x20 /* tcp_flags (and _rev with BIFLOW) valid  */
#define INGEST_FF_SAMPLED 0x40   /* counters were scaled up by sampling     */
#define INGEST_FF_EXPORTER 0x80  /* exporter_addr is valid                  */

/*
 * The canonical flow: one fixed-size record per flow, whatever reported it
 * (Suricata's flow/netflow events, NetFlow v5/v9, IPFIX).  "fwd" is the
 * direction src -> dst (Suricata's toserver, IPFIX's forward direction),
 * "rev" the other (toclient, RFC 5103 reverse).  Text (application name)
 * is never stored here: app_idx indexes a string table beside the batch.
 * 136 bytes, 8-byte aligned, no implicit padding.
 */
struct ingest_flow {
    int64_t start_us;        /* first packet, microseconds since the epoch, UTC */
    int64_t end_us;          /* last packet, the same                         */
    uint64_t flow_id;        /* engine flow id (EVE flow_id); 0 when none     */
    uint64_t pkts;           /* packets src -> dst (scaled when SAMPLED)      */
    uint64_t bytes;          /* bytes src -> dst (layer 3, as exported)       */
    uint64_t pkts_rev;       /* packets dst -> src, with INGEST_FF_BIFLOW     */
    uint64_t bytes_rev;
    uint8_t src_addr[16];    /* IPv6, or IPv4 as ::ffff:a.b.c.d               */
    uint8_t dst_addr[16];
    uint8_t exporter_addr[16]; /* who sent the export (UDP peer), same form   */
    uint32_t domain;         /* v9 source id / IPFIX observation domain /
                                v5 engine_type << 8 | engine_id; 0 for EVE    */
    uint32_t sampling;       /* 1 in N packets sampled; 0 unknown, 1 none     */
    int32_t app_idx;         /* application name in the string table, or -1  */
    uint16_t src_port;       /* or ICMP type when flags & INGEST_FF_ICMP      */
    uint16_t dst_port;       /* or ICMP code when flags & INGEST_FF_ICMP      */
    uint16_t vlan;
    uint8_t ip_ver;          /* 0 (no addresses), 4 or 6                      */
    uint8_t proto;           /* IANA protocol number (0 when unknown)         */
    uint8_t tcp_flags;       /* OR of the TCP flags seen src -> dst           */
    uint8_t tcp_flags_rev;   /* the same dst -> src (BIFLOW)                  */
    uint8_t source;          /* INGEST_FLOW_SRC_*                             */
    uint8_t flags;           /* INGEST_FF_*                                   */
    uint8_t exporter_ver;    /* 0 (none), 4 or 6                              */
    uint8_t end_reason;      /* IPFIX flowEndReason (IE 136); 0 unknown       */
    uint8_t reserved[6];
};

/* ---- recv.c: batched datagram receive --------------------------------- */
#define INGEST_SLOT_TRUNC 0x01 /* the kernel cut the datagram (MSG_TRUNC) */

/*
 * Receive up to nslots datagrams from fd into caller-owned slots
 * (slots + i * slot_size).  Blocks until at least one datagram arrives or the
 * socket's SO_RCVTIMEO expires, then takes whatever else is already queued
 * (MSG_WAITFORONE); then, if linger_us > 0, keeps collecting until nslots are
 * filled or linger_us has passed.  lens[i] is the datagram's real length (which may exceed
 * slot_size when slot_flags[i] has INGEST_SLOT_TRUNC).  Returns the number of
 * datagrams, 0 on timeout or EINTR, or INGEST_ESYS with errno set.
 */
int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags, int linger_us);

#define INGEST_SLOT_NOCRED 0x02  /* no SCM_CREDENTIALS came with it (sender unknown) */
#define INGEST_SLOT_REFUSED 0x04 /* its sender is on no allow-list */
/* bytes of control buffer per slot: the credentials (CMSG_SPACE of a
 * struct ucred, 32 on Linux) and room for a few descriptors a peer may pass
 * (closed at once) */
#define INGEST_CRED_CMSG_SIZE 64

/*
 * ingest_recv_batch on a socket with SO_PASSCRED, with every datagram's
 * sender: the kernel's SCM_CREDENTIALS control message is read into slot i's
 * own control buffer (cmsgs + i * cmsg_size, cmsg_size >= the credentials'
 * CMSG_SPACE, a multiple of the word size: INGEST_CRED_CMSG_SIZE), and
 * pids[i]/uids[i]/gids[i] get the sender's pid, uid and gid.  A datagram
 * without credentials gets pid 0, uid and gid 0xffffffff and
 * INGEST_SLOT_NOCRED in slot_flags[i] (required here).  With an allow-list
 * (n_allow_uids + n_allow_gids > 0) a datagram whose uid is not in
 * allow_uids and whose gid is not in allow_gids gets INGEST_SLOT_REFUSED;
 * the caller drops flagged slots.  Descriptors passed with SCM_RIGHTS are
 * closed.  Returns as ingest_recv_batch, or INGEST_EINVAL.
 */
int ingest_recv_batch_creds(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                            uint32_t *lens, uint8_t *slot_flags, int linger_us,
                            uint8_t *cmsgs, size_t cmsg_size,
                            int32_t *pids, uint32_t *uids, uint32_t *gids,
                            const uint32_t *allow_uids, unsigned n_allow_uids,
                            const uint32_t *allow_gids, unsigned n_allow_gids);

/* ingest_recv_batch for UDP: also the sender of each datagram, its address
 * as 16 bytes (IPv4 as ::ffff:a.b.c.d) at peers + 16 * i and its port in
 * ports[i] (may be NULL). */
int ingest_recv_batch_from(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                           uint32_t *lens, uint8_t *slot_flags, int linger_us, uint8_t *peers,
                           uint16_t *ports);

/* ---- recv.c: a native reader thread and its ring of received batches ----
 *
 * A reader receives (and, for Alertpkt, decodes) on a thread of its own that
 * never takes the GIL: it fills the batches of a bounded ring in order, and
 * the caller takes whole batches off the ring at its own pace
 * (ingest_reader_take blocks with a timeout; cffi releases the GIL for it),
 * then gives each back (ingest_reader_release).  Every byte it touches is
 * the caller's: the reader's own state (ingest_reader_size bytes, 8-byte
 * aligned) and nbatches batches of caller arrays, all allocated once before
 * ingest_reader_start and kept alive until ingest_reader_join returned.
 * When every batch is taken or waiting (the ring is full) the reader waits
 * for one to come back: the socket's queue fills and the sender sees the
 * same back-pressure as from a busy receiver (counted: full_waits/full_ns).
 * The socket must have SO_RCVTIMEO set (the reader looks at its stop
 * request between receives; init refuses a socket without it).
 */
struct ingest_ring_batch {
    uint8_t *slots;              /* nslots * slot_size bytes                 */
    uint32_t *lens;              /* nslots: each datagram's real length      */
    uint8_t *flags;              /* nslots: INGEST_SLOT_*                    */
    uint8_t *cmsgs;              /* with creds: nslots * INGEST_CRED_CMSG_SIZE,
                                    word-aligned; else NULL                  */
    int32_t *pids;               /* with creds: nslots each                  */
    uint32_t *uids;
    uint32_t *gids;
    struct ingest_alert *alerts; /* INGEST_READER_ALERTPKT: nslots each      */
    uint32_t *slot_of;
    uint8_t *status;
    uint64_t *msg_key;
    uint32_t *msg_first;
    int32_t n;                   /* written by the reader: datagrams         */
    int32_t k;                   /* alerts decoded (ingest_alertpkt_decode's
                                    return), or -1: not decoded (raw mode, or
                                    a slot flagged NOCRED/REFUSED: the caller
                                    screens and decodes)                     */
};

#define INGEST_READER_RAW 0      /* receive only                             */
#define INGEST_READER_ALERTPKT 1 /* receive and ingest_alertpkt_decode       */

struct ingest_reader_cfg {
    int fd;
    int mode;                /* INGEST_READER_RAW / _ALERTPKT                */
    int linger_us;           /* as ingest_recv_batch                         */
    int creds;               /* 1: ingest_recv_batch_creds (SO_PASSCRED on)  */
    size_t slot_size;
    unsigned nslots;         /* datagrams per batch, 1..256                  */
    const uint32_t *allow_uids; /* as ingest_recv_batch_creds; kept alive by */
    unsigned n_allow_uids;      /* the caller while the reader runs          */
    const uint32_t *allow_gids;
    unsigned n_allow_gids;
};

/* reader states */
#define INGEST_READER_NEW 0
#define INGEST_READER_RUNNING 1
#define INGEST_READER_ENDED 2   /* stopped as asked                         */
#define INGEST_READER_FAILED 3  /* the socket failed: err is its errno      */

/* ingest_reader_stop: how */
#define INGEST_READER_STOP_NOW 1   /* stop after the receive under way      */
#define INGEST_READER_STOP_DRAIN 2 /* refuse new datagrams (the reader
                                      calls shutdown(SHUT_RD) and sets
                                      O_NONBLOCK between two receives), read
                                      what the socket holds, then stop      */

struct ingest_reader_info {
    int32_t state;       /* INGEST_READER_NEW .. _FAILED                     */
    int32_t err;         /* errno of the failure                             */
    uint32_t ready;      /* batches waiting to be taken                      */
    uint32_t capacity;   /* nbatches                                         */
    uint64_t batches;    /* batches published                                */
    uint64_t datagrams;  /* datagrams received                               */
    uint64_t full_waits; /* times the reader found the ring full             */
    uint64_t full_ns;    /* time it waited for a batch to come back          */
};

size_t ingest_reader_size(void);
/* Check cfg and the batches (every array the mode needs is there), copy
 * cfg, set up the lock.  INGEST_EINVAL if anything is missing. */
int ingest_reader_init(void *mem, size_t mem_size, const struct ingest_reader_cfg *cfg,
                       struct ingest_ring_batch *batches, unsigned nbatches);
/* Start the thread.  INGEST_ESYS (errno) if it cannot. */
int ingest_reader_start(void *mem);
/* The next received batch's index (its n/k and arrays are the caller's
 * until ingest_reader_release), INGEST_EAGAIN after timeout_ms without one,
 * or INGEST_EEOF once the reader ended (stopped or failed) and every batch
 * was taken. */
int ingest_reader_take(void *mem, int timeout_ms);
/* Give batch idx back.  INGEST_EINVAL if it was not taken. */
int ingest_reader_release(void *mem, unsigned idx);
/* Ask the reader to stop (see INGEST_READER_STOP_*); returns at once.
 * A reader waiting for a free batch keeps waiting in DRAIN mode (nothing
 * received is dropped): keep taking until INGEST_EEOF. */
void ingest_reader_stop(void *mem, int how);
/* Wait for the thread to end (after ingest_reader_stop, or its failure).
 * Returns 0, or INGEST_EINVAL if it was never started or already joined. */
int ingest_reader_join(void *mem);
void ingest_reader_get_info(void *mem, struct ingest_reader_info *out);
/* After ingest_reader_join (or instead of start): free the lock. */
void ingest_reader_destroy(void *mem);

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
 * msg_key[j] (may be NULL) is a keyed 64-bit hash (SipHash-1-3, key set with
 * ingest_set_hash_key) of alert j's alertmsg text and source kind, so the
 * caller can share one string per distinct message without reading every
 * message (the same bytes from two kinds get two keys).  msg_first[j]
 * (may be NULL; needs msg_key) is the first alert of this batch with the same
 * key, so msg_first[j] == j marks the distinct messages.
 * Returns the number of alerts written.
 */
int ingest_alertpkt_decode(const uint8_t *slots, size_t slot_size, unsigned n,
                           const uint32_t *lens, const uint8_t *slot_flags,
                           struct ingest_alert *out, unsigned out_cap,
                           uint32_t *slot_of, uint8_t *status, uint64_t *msg_key,
                           uint32_t *msg_first);

/* Length of the NUL-terminated text at p, at most max (strnlen for cffi). */
size_t ingest_text_len(const uint8_t *p, size_t max);

/* ---- hash.c: the keyed hash of text from the wire ---------------------- */
/* ingest_set_hash_key: the key of every text hash (Alertpkt msg_key, EVE
 * sig_hash/cat_hash); set once, from a random source.  ingest_keyed_hash:
 * SipHash-1-3 of len bytes under that key; tweak separates domains (the same
 * bytes under another tweak get an unrelated hash). */
void ingest_set_hash_key(uint64_t k0, uint64_t k1);
uint64_t ingest_keyed_hash(const uint8_t *in, size_t len, uint64_t tweak);

/* ---- format.c: batch output formatting -------------------------------- */
#define INGEST_FMT_EVE 1
#define INGEST_FMT_TRISUL 2

/*
 * A string table: string k is pool[off[k] .. off[k] + len[k]) (UTF-8 or raw
 * bytes; escaped on output), inside pool[0 .. pool_len) (checked: a table
 * with an entry outside its pool is INGEST_EINVAL).  Tables chain: index
 * k >= count continues in next as k - count (a batch's packed pool, then the
 * strings mapping added, without copying the pool), at most 64 tables.
 */
struct ingest_strtab {
    const uint8_t *pool;
    const uint32_t *off;
    const uint32_t *len;
    uint64_t pool_len;
    uint32_t count;
    const struct ingest_strtab *next;
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
    const int32_t *refs; /* EVE alert.references: a caller-rendered JSON array, verbatim */
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

/* Write ts_us[0..n) as the text JSON outputs give an alert's time (EVE's
 * "2026-11-27T18:03:50.123456+0000", UTC, the year clamped to 0000..9999),
 * INGEST_TIME_TEXT bytes per row into out (no NUL).  Returns n. */
#define INGEST_TIME_TEXT 31
int ingest_format_times(const int64_t *ts_us, unsigned n, char *out);

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

/* struct ingest_eve_rec.flags */
#define INGEST_EVE_REC_NEWLINE 0x01 /* a raw CR or LF between tokens: valid
                                       JSON, but not one line as it is */

/* One input record.  off/len are rewritten to the record without
 * surrounding whitespace (what is kept verbatim); etype_* is the event_type
 * text relative to off (0/0 when there is none). */
struct ingest_eve_rec {
    uint64_t off;
    uint32_t len;
    uint32_t etype_off;
    uint32_t etype_len;
    uint8_t status;
    uint8_t flags; /* INGEST_EVE_REC_* */
    uint8_t reserved[2];
};

/* Beside each produced alert: where its text is.  *_off are relative to the
 * record's (trimmed) start; the text is the JSON string body, still escaped
 * when *_esc.  *_hash is their keyed hash (ingest_keyed_hash), for
 * de-duplication and caching: a sender cannot make two texts share one. */
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

/* ingest's own rendered alerts (the NATS wire, see ingest/wire.py): what
 * the EVE profile writes for an alert that did not come from Suricata
 * carries the canonical fields Suricata's schema has no place for in an
 * "ingest" member ({"source","sensor_id","event_id","class_id","app_name",
 * "packet_anomaly"}), and the signature's references in
 * alert.references.  Beside each produced alert, where its app_name text
 * and its references array are (relative to the record's trimmed start;
 * app_name still escaped when app_esc; refs is the whole JSON array). */
struct ingest_eve_wire {
    uint64_t app_hash;  /* keyed hashes, as struct ingest_eve_alert's */
    uint64_t refs_hash;
    uint32_t app_off;
    uint32_t app_len;
    uint32_t refs_off;
    uint32_t refs_len;
    uint8_t has_app;
    uint8_t app_esc;
    uint8_t has_refs;
    uint8_t reserved;
};

/*
 * ingest_eve_decode for records ingest rendered itself (never for records
 * from an engine: their "ingest" member, if a sender wrote one, must not be
 * believed).  Every alert must have an "ingest" object whose "source" names
 * an ingest source kind ("snort", "barnyard2", "unified2", "eve") and whose
 * sensor_id, event_id and class_id fit 32 bits: those, app_name and
 * packet_anomaly replace what an EVE record would give, and wire[k] says
 * where the alert's app_name and references are.  An alert without a valid
 * "ingest" object is INGEST_EVE_BAD_ALERT.
 */
int ingest_eve_decode_wire(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                           unsigned n, struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                           struct ingest_eve_alert *ext, struct ingest_eve_wire *wire, unsigned alert_cap);

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
 * INGEST_ENOSPC or INGEST_EINVAL.  (The verbatim pool of a batch's alerts.)
 * A record flagged INGEST_EVE_REC_NEWLINE has its raw CR/LF (whitespace
 * between tokens) copied as spaces: every record is one line. */
long ingest_eve_gather(const uint8_t *buf, size_t buf_len, const struct ingest_eve_rec *recs,
                       const uint32_t *idx, unsigned n, uint8_t *out, size_t out_cap, uint64_t *out_off);

/* For keys[0..n) (0 = no key): first[i] = the index of the first key equal
 * to keys[i] (UINT32_MAX for 0).  tab_keys/tab_vals: caller-owned scratch
 * of tab_size entries, a power of two > n.  Returns the number of distinct
 * keys.  (Signature and category texts are decoded once per distinct text.) */
int ingest_dedupe_u64(const uint64_t *keys, unsigned n, uint32_t *first, uint64_t *tab_keys,
                      uint32_t *tab_vals, unsigned tab_size);

/* hash.c: the normalised 5-tuple key of each alert (ingest.flows.correlate:
 * the same key its tuple_keys gives a flow of the same endpoints, so alerts
 * and flows join on it): out[i] a non-zero int63, 0 for an alert without
 * addresses.  Returns n, or INGEST_EINVAL for a NULL pointer. */
int ingest_alert_tuple_keys(const struct ingest_alert *alerts, unsigned n, int64_t *out);

/* ---- unified2.c: Unified2 spool-file batch decoder ---------------------- */
#define INGEST_U2_HDR_LEN 8u
/* Largest record length believed: a 64 KiB packet plus its 28-byte header is
 * the largest any writer produces; 1 MiB leaves room for jumbo/GRO snaplens
 * while a pcap header read as Unified2 (length 0x00020004 or 0x02000400,
 * "Read 34680 of 33555456 bytes") is refused. */
#define INGEST_U2_MAX_RECORD (1u << 20)

/* Record types (Snort 2 Unified2_common.h, Snort 3 src/log/unified2.h) */
#define INGEST_U2_PACKET 2u
#define INGEST_U2_BUFFER 3u
#define INGEST_U2_IDS_EVENT 7u
#define INGEST_U2_IDS_EVENT_IPV6 72u
#define INGEST_U2_IDS_EVENT_VLAN 104u
#define INGEST_U2_IDS_EVENT_IPV6_VLAN 105u
#define INGEST_U2_EXTRA_DATA 110u
#define INGEST_U2_IDS_EVENT_APPID 111u
#define INGEST_U2_IDS_EVENT_APPID_IPV6 112u
#define INGEST_U2_IDS_EVENT_APPSTAT 113u
#define INGEST_U2_EVENT3 114u

/* Extra-data EventInfo types */
#define INGEST_U2_XDATA_XFF_IPV4 1u
#define INGEST_U2_XDATA_XFF_IPV6 2u
#define INGEST_U2_XDATA_HTTP_URI 9u
#define INGEST_U2_XDATA_HTTP_HOSTNAME 10u
#define INGEST_U2_XDATA_IPV6_SRC 11u
#define INGEST_U2_XDATA_IPV6_DST 12u

/* Why ingest_u2_decode stopped (*reason) */
#define INGEST_U2_END 0     /* every byte was consumed                     */
#define INGEST_U2_PARTIAL 1 /* a record starts at *stop but is incomplete   */
#define INGEST_U2_FULL 2    /* an output array is full; grow it, call again  */
#define INGEST_U2_PCAP 3    /* a pcap/pcapng magic at *stop: not Unified2    */
#define INGEST_U2_BADLEN 4  /* a length > INGEST_U2_MAX_RECORD at *stop      */

/* Row flags (packet/extra-data .flags) */
#define INGEST_U2_BAD_LENGTH 0x01 /* declared length disagrees with the
                                     record length; the record length won */

/* pk_event/ex_event: not the event right before the row; the caller's
 * general join looks further back (or finds an orphan, -1). */
#define INGEST_U2_JOIN_LATER (-2)

/* What an event record says beyond the canonical alert.  Text fields are
 * (offset, length) in the caller's pool: 0 app_name, 1 http_method,
 * 2 http_version, 3 http_user_agent, 4 http_referer, 5 message_detail. */
struct ingest_u2_event {
    uint64_t offset;
    uint32_t type;
    uint32_t length;
    uint32_t mpls_label;
    uint32_t policy_context; /* 114 */
    uint32_t policy_inspect; /* 114 */
    uint32_t policy_detect;  /* 114; 104/105/111/112: the Snort 2 policy id (pad2) */
    uint32_t http_request_size;
    uint32_t http_response_size;
    uint32_t text_off[6];
    uint16_t text_len[6];
    uint8_t impact_flag;
    uint8_t impact;
    uint8_t blocked;
    uint8_t snort_status;
    uint8_t snort_action;
    uint8_t ip_ver_raw;
    uint8_t reserved[6];
};

struct ingest_u2_packet {
    uint64_t offset;
    uint32_t type; /* 2 packet, 3 buffer (Snort 3) */
    uint32_t sensor_id;
    uint32_t event_id;
    uint32_t event_second;
    uint32_t packet_second;
    uint32_t packet_microsecond;
    uint32_t linktype;
    uint32_t packet_length; /* as declared */
    uint64_t data_off;      /* in the pool; without a pool, absolute */
    uint32_t data_len;      /* bytes really present */
    uint32_t flags;
};

struct ingest_u2_extra {
    uint64_t offset;
    uint64_t data_off;
    uint32_t event_type;
    uint32_t event_length;
    uint32_t sensor_id;
    uint32_t event_id;
    uint32_t event_second;
    uint32_t info_type;
    uint32_t data_type;
    uint32_t blob_length;
    uint32_t data_len;
    uint8_t addr[16]; /* XFF / IPv6 src / dst, IPv4 as ::ffff:a.b.c.d */
    uint8_t addr_ver; /* 0 (no address), 4 or 6 */
    uint8_t flags;
    uint8_t reserved[2];
};

int ingest_u2_is_event(uint32_t type);

/*
 * Decode output: caller-owned row arrays with their capacities, and counters
 * that successive ingest_u2_decode calls advance (so one window may take
 * several calls: after INGEST_U2_FULL, after a resynchronisation).  Rows
 * come out in record order.  Variable-length bytes are copied into
 * pool[pool_used..pool_cap), or, with pool NULL, referenced where they lie:
 * offsets into buf.  Either way offsets are 32-bit for event texts, so the
 * caller keeps pool and buf below 4 GiB.
 */
struct ingest_u2_out {
    struct ingest_alert *alerts;   /* ev_cap, parallel to ev */
    struct ingest_u2_event *ev;    /* ev_cap */
    struct ingest_u2_packet *pk;   /* pk_cap */
    int32_t *pk_event;             /* pk_cap: alert index, or INGEST_U2_JOIN_LATER */
    struct ingest_u2_extra *ex;    /* ex_cap */
    int32_t *ex_event;             /* ex_cap: alert index, or INGEST_U2_JOIN_LATER */
    uint32_t *odd;                 /* odd_cap: the types >= 256 seen, in order */
    uint64_t *counts;              /* 257: records per type < 256; [256]: the rest */
    uint8_t *pool;                 /* may be NULL (then offsets point into buf) */
    size_t pool_cap, pool_used;
    uint32_t ev_cap, nev, pk_cap, npk, ex_cap, nex, odd_cap, nodd;
    uint32_t malformed;            /* records shorter than their type's fixed part */
    int32_t last_ev;               /* the event the next rows are joined to; -1 */
    uint32_t last_id, last_sec;
    /* State at the last event record seen, for ingest_u2_unwind */
    int32_t snap_valid;
    int32_t snap_last_ev;
    size_t snap_pos, snap_pool;
    uint32_t snap_nev, snap_npk, snap_nex, snap_nodd, snap_malformed;
    uint32_t snap_last_id, snap_last_sec;
};

/*
 * Decode the complete records of buf[from..n) into o, in one pass.  base is
 * the absolute file offset of buf[0] (row .offset = base + position).  *stop
 * is where the next undecoded record starts; *reason says why it stopped.
 * Returns the number of records consumed (counted in o->counts), or
 * INGEST_EINVAL.
 */
int ingest_u2_decode(const uint8_t *buf, size_t n, size_t from, uint64_t base,
                     struct ingest_u2_out *o, size_t *stop, int *reason);

/*
 * Streaming: take back the last event record seen and everything decoded
 * after it (up to n, where the last ingest_u2_decode stopped), so an event
 * is never emitted before the packets that still follow it.  Returns the
 * buffer position of that event record (decode again from there), or -1
 * when o holds no event to take back.
 */
long ingest_u2_unwind(const uint8_t *buf, size_t n, struct ingest_u2_out *o);

/* The first position >= from where a plausible record header starts (a type
 * a writer produces, a length that fits it, and a plausible header after
 * it), or -1: none, or one in the last bytes cannot be judged until more
 * data arrives.  Reads nothing at or past buf[n]. */
long ingest_u2_resync(const uint8_t *buf, size_t n, size_t from);

/*
 * Per event i, the JSON members (no braces) spliced into its alert: packets
 * pk[pk_idx[pk_start[i] .. pk_start[i+1])] and extra-data likewise (pk_start
 * and ex_start have nev + 1 entries; pk_idx holds pk_start[nev]), with
 * their bytes in pool[0..pool_len).  ends[i] is the end offset of event i's
 * members in out.  Returns bytes written, INGEST_ENOSPC, or INGEST_EINVAL if
 * any index or pool reference is out of range.
 */
long ingest_u2_render(const struct ingest_u2_event *ev, unsigned nev, const uint8_t *pool,
                      size_t pool_len, const struct ingest_u2_packet *pk, unsigned npk,
                      const uint32_t *pk_idx, const uint32_t *pk_start,
                      const struct ingest_u2_extra *ex, unsigned nex, const uint32_t *ex_idx,
                      const uint32_t *ex_start, uint8_t *out, size_t out_cap, uint32_t *ends);
/* ---- gen.c: load generator ------------------------------------------- */
/* Send modes (flags & INGEST_GEN_MODE_MASK), each faithful to a real sender. */
#define INGEST_GEN_SENDTO 0   /* Snort 2/3: blocking sendto, flags 0, unconnected */
#define INGEST_GEN_CONNECT 1  /* Barnyard2 master: connect once, blocking send   */
#define INGEST_GEN_MMSG 2     /* blocking sendmmsg batches (not a real sender)   */
#define INGEST_GEN_DONTWAIT 3 /* Suricata live: MSG_DONTWAIT, would-block dropped */
#define INGEST_GEN_MODE_MASK 0x0f
#define INGEST_GEN_STAMP_BE 0x10 /* write the event-id and time stamps big-endian (Barnyard2) */
#define INGEST_GEN_STREAM 0x20 /* ingest_gen_lines: SOCK_STREAM instead of SOCK_DGRAM */
#define INGEST_GEN_REALTIME 0x40 /* the time stamp is CLOCK_REALTIME (wall clock), not MONOTONIC */
#define INGEST_GEN_MAX_DGRAM (1u << 20)
/* an EVE time value ingest_gen_lines rewrites: "YYYY-MM-DDTHH:MM:SS.uuuuuu+hhmm" */
#define INGEST_GEN_TS_LEN 31

/* What one ingest_gen_dgram run did.  sent + dropped + errors = alerts
 * attempted (a blocking send that timed out is retried, not counted). */
struct ingest_gen_result {
    uint64_t sent;     /* datagrams the kernel accepted                    */
    uint64_t dropped;  /* would-block in INGEST_GEN_DONTWAIT mode          */
    uint64_t errors;   /* other send errors (ENOENT, ECONNREFUSED, ...)     */
    uint64_t batches;  /* sendmmsg calls that sent something (MMSG mode)   */
    double elapsed;    /* seconds, monotonic, from first send to return    */
    int last_errno;    /* errno of the last failed call, 0 if none         */
    uint8_t interrupted; /* stopped because *stop became non-zero          */
    uint8_t timed_out;   /* stopped because time_limit ran out             */
};

/*
 * Send `count` datagrams (0 = until stopped or timed out) to the unix
 * datagram socket at path, cycling through ntemplates templates of tlen bytes
 * each (templates holds ntemplates * tlen bytes).  rate > 0 paces the
 * attempts to rate per second (0 = as fast as possible); time_limit > 0 stops
 * after that many seconds; *stop (may be NULL) stops the loop when another
 * thread sets it.  stamp_off >= 0 writes a 4-byte event id (1, 2, 3, ...;
 * host order, or big-endian with INGEST_GEN_STAMP_BE) at that offset of every
 * datagram: the sendto/connect modes write it into the template before the
 * send, so templates must be writable.  time_off >= 0 also writes the time
 * of each alert's first send attempt as two 4-byte words, seconds then
 * microseconds, at that offset (the event's ref_time): CLOCK_MONOTONIC for the
 * benchmark's latency probe (every process on the machine shares that
 * clock), or with INGEST_GEN_REALTIME the wall clock, so generated alerts
 * carry their send time as a real sensor's do.  In mmsg mode both stamps go
 * out from side buffers (the time once per sendmmsg batch) and must not
 * overlap.  hot (may be NULL; sendto/connect modes): a caller-owned buffer
 * of tlen bytes that every alert is copied into before its send, as Snort
 * fills its one static Alertpkt: [0, hot_head) and [hot_tail, tlen) of the
 * template (the stamps must lie there); the bytes between are left as they
 * are (the caller zeroes them: the unused packet area).  Returns the number
 * sent, or
 * INGEST_EINVAL / INGEST_ESYS (socket or, in CONNECT mode, connect failed;
 * res->last_errno says why).
 */
long ingest_gen_dgram(const char *path, uint8_t *templates, size_t tlen, unsigned ntemplates,
                      uint64_t count, double rate, double time_limit, int flags,
                      long stamp_off, long time_off, const int *stop,
                      struct ingest_gen_result *res, uint8_t *hot, size_t hot_head,
                      size_t hot_tail);

/*
 * Send `count` newline-terminated records (0 = until stopped or timed out)
 * over a unix socket connect()ed once to path, as Suricata's eve-log
 * unix_dgram (one record per datagram) or, with INGEST_GEN_STREAM,
 * unix_stream output does.  Record k is data[ends[k-1] .. ends[k]) (ends[-1]
 * = 0), cycled.  Mode INGEST_GEN_DONTWAIT (Suricata live): MSG_DONTWAIT, a
 * record that would block is dropped and counted; INGEST_GEN_CONNECT
 * (suricata -r): the send blocks (bounded by *stop and time_limit).  A stream
 * send cut short is finished, not dropped.  Other send errors reconnect (once
 * per record, then at most every 500 ms) and count the record as an error.
 * rate, time_limit, stop and res as for ingest_gen_dgram (res->batches stays
 * 0).  Returns the number sent, INGEST_EINVAL, or INGEST_ESYS (the first
 * connect failed; res->last_errno says why).
 *
 * times (may be NULL: records go out as they are) restamps each record with
 * the wall clock of its first send attempt, as Suricata stamps an event when
 * it logs it: record k's time fields are times->off/us[times->first[k] ..
 * times->first[k+1]) (first has nrec + 1 entries), each the offset in the
 * record of a 31-byte value "YYYY-MM-DDTHH:MM:SS.uuuuuu+hhmm" and its
 * original time (us since the epoch, UTC).  The record's first field is its
 * own time: every field of the record is moved by the same amount (now minus
 * that time) and rewritten in place, in UTC (+0000), so data must be writable.
 * A field outside its record, or first[] not ascending, is INGEST_EINVAL.
 */
struct ingest_gen_times {
    const uint32_t *first;
    const uint32_t *off;
    const int64_t *us;
};

long ingest_gen_lines(const char *path, uint8_t *data, const uint32_t *ends,
                      unsigned nrec, uint64_t count, double rate, double time_limit, int flags,
                      const struct ingest_gen_times *times, const int *stop,
                      struct ingest_gen_result *res);

/* ---- zeek.c: Zeek conn.log TSV records -------------------------------- */
#define INGEST_ZEEK_NREAD 16        /* fields read (ingest.flows.zeek._READ)  */
#define INGEST_ZEEK_OK 0            /* a record                               */
#define INGEST_ZEEK_FIELD_COUNT 1   /* not as many fields as #fields          */
#define INGEST_ZEEK_MISSING 2       /* ts, uid, id.* or proto unset           */
#define INGEST_ZEEK_BAD_TIME 3
#define INGEST_ZEEK_BAD_ADDRESS 4
#define INGEST_ZEEK_BAD_PORT 5
#define INGEST_ZEEK_BAD_COUNT 6
#define INGEST_ZEEK_BAD_PROTO 7
#define INGEST_ZEEK_PYTHON 8        /* escapes, ISO time, no room: Python's   */
#define INGEST_ZEEK_HEADER 9        /* a "#..." line                          */
#define INGEST_ZEEK_EMPTY 10        /* nothing but a newline                  */
/*
 * Decode n TSV lines (line i is buf[offs[i] .. offs[i] + lens[i]), its
 * newline included or not) with a one-byte separator, the unset marker and,
 * per read field, its column among nfields (idx[INGEST_ZEEK_NREAD], -1 when
 * absent).  Each line gets a status; each INGEST_ZEEK_OK line a record in
 * out (flow_id and app_idx left to the caller), its line index in line_of
 * and 8 words in text: (offset in buf, length) of uid, service, conn_state,
 * history (length UINT32_MAX: unset).  Returns the records (<= out_cap;
 * lines past it are INGEST_ZEEK_PYTHON), or INGEST_EINVAL (a line outside
 * buf, a column past nfields, buflen >= 4 GiB).
 */
int ingest_zeek_tsv(const uint8_t *buf, size_t buflen, const uint64_t *offs, const uint32_t *lens, uint32_t n,
                    uint8_t sep, const uint8_t *unset, uint32_t unset_len, uint32_t nfields, const int32_t *idx,
                    struct ingest_flow *out, uint32_t out_cap, uint32_t *line_of, uint32_t *text,
                    uint8_t *status);

/* ---- netflow.c: NetFlow v5 / v9 / IPFIX decoder ----------------------- */
#define INGEST_NF_MAX_FIELDS 128 /* a template with more fields is refused    */
#define INGEST_NF_PROBE 16       /* slots a table lookup looks at             */

/* Per-packet outcome (status[i]).  A packet that is not OK is counted and
 * dead-lettered by the caller; the records of its sets decoded before the
 * fault are kept (they were whole). */
#define INGEST_NF_OK 0
#define INGEST_NF_SHORT_HEADER 1   /* shorter than its version's header       */
#define INGEST_NF_BAD_VERSION 2    /* not 5, 9 or 10                           */
#define INGEST_NF_BAD_LENGTH 3     /* v5 count / IPFIX length vs the datagram  */
#define INGEST_NF_BAD_SET 4        /* a set length beyond the packet (or < 4)  */
#define INGEST_NF_BAD_TEMPLATE 5   /* zero or absurd field count, a template
                                      beyond its set, an id below 256          */
#define INGEST_NF_BAD_FIELD 6      /* a field length that does not fit         */
#define INGEST_NF_TRUNCATED 7      /* cut by the kernel (MSG_TRUNC)            */
#define INGEST_NF_NREASONS 8

struct ingest_nf_field {
    uint16_t ie;      /* information element (enterprise bit cleared)        */
    uint16_t len;     /* bytes, or 65535: variable length (IPFIX)            */
    uint8_t action;   /* what the decoder does with it (netflow.c)           */
    uint8_t reserved;
};

/* One template, keyed by (exporter, domain, version, id).  version 0: a
 * free slot. */
struct ingest_nf_template {
    uint8_t exporter[16];
    uint32_t domain;      /* v9 source id / IPFIX observation domain         */
    uint16_t id;
    uint16_t nfields;
    uint16_t scope;       /* options templates: leading scope fields         */
    uint16_t min_len;     /* bytes of the shortest record                    */
    uint8_t version;      /* 9 or 10; 0 = free                               */
    uint8_t options;
    uint8_t varlen;
    uint8_t reserved;
    uint64_t stamp;       /* last use (least recently used is replaced)      */
    struct ingest_nf_field f[128]; /* INGEST_NF_MAX_FIELDS (cffi needs the number) */
};

/* One exporter (exporter address, domain, version): sequence tracking and
 * what its options records said.  version 0: a free slot. */
struct ingest_nf_exporter {
    uint8_t addr[16];
    uint32_t domain;
    uint32_t next_seq;    /* the sequence number expected next               */
    uint32_t sampling;    /* from options records (IE 34/305/50); 0 unknown  */
    uint8_t seq_valid;
    uint8_t version;      /* 5, 9 or 10; 0 = free                            */
    uint8_t reserved[2];
    int64_t sysinit_ms;   /* IPFIX systemInitTimeMilliseconds; 0 unknown      */
    uint64_t loss;        /* sequence gap total (v5: flows, v9: packets,
                             IPFIX: data records)                            */
    uint64_t stamp;
};

/* The decoder's state: caller-owned tables of fixed capacity, and
 * cumulative counters. */
struct ingest_nf_state {
    struct ingest_nf_template *templates;
    struct ingest_nf_exporter *exporters;
    uint32_t template_cap;
    uint32_t exporter_cap;
    uint64_t clock;
    uint64_t packets;
    uint64_t flows;
    uint64_t templates_added;     /* learned or refreshed                    */
    uint64_t templates_withdrawn;
    uint64_t templates_evicted;   /* replaced because the table was full     */
    uint64_t exporters_evicted;
    uint64_t options_records;
    uint64_t exporter_loss;       /* sum of every exporter's sequence gaps   */
    uint64_t sequence_resets;     /* a sequence number went backwards        */
    uint64_t held_overflow;       /* sets without template beyond held_cap   */
};

/* A data set whose template has not arrived: the caller holds a copy (with
 * the packet's header) and decodes it again, replay set, when templates
 * arrive.  off is relative to slots (the set header included). */
struct ingest_nf_held {
    uint32_t slot;
    uint32_t off;
    uint32_t len;
    uint16_t template_id;
    uint8_t version;
    uint8_t reserved;
};

/*
 * Decode received export packets (slot i: lens[i] bytes at slots + i *
 * slot_size, from the exporter peers + 16 * i, IPv4 as ::ffff:a.b.c.d) into
 * out[] (capacity out_cap).  flow_slot[j] is flow j's packet; app_off/app_len
 * its applicationName (IE 96) text, relative to slots (0/0: none).
 * status[i] is INGEST_NF_*.  Sets without a template are listed in held
 * (capacity held_cap; *nheld set).  replay (held sets decoded again): no
 * sequence accounting.  Decoding stops before a packet whose records might
 * not fit in out (a packet of len bytes gives at most len records):
 * *consumed is the number of packets decoded.  Returns the number of flows,
 * or INGEST_EINVAL.
 */
int ingest_nf_decode(struct ingest_nf_state *st, const uint8_t *slots, size_t slot_size, unsigned n,
                     const uint32_t *lens, const uint8_t *slot_flags, const uint8_t *peers,
                     int replay, struct ingest_flow *out, unsigned out_cap, uint32_t *flow_slot,
                     uint32_t *app_off, uint16_t *app_len, uint8_t *status,
                     struct ingest_nf_held *held, unsigned held_cap, unsigned *nheld,
                     unsigned *consumed);

/* ---- pgcopy.c: PostgreSQL binary COPY rows ----------------------------- */
/*
 * A store's rows, given column by column (ingest/sinks/rows.py builds the
 * columns), written as one PostgreSQL binary COPY stream (header, rows,
 * trailer: "COPY ... FROM STDIN (FORMAT BINARY)").  Every field is its
 * int32 big-endian length (-1: NULL) and its bytes.
 */
#define INGEST_PGCOL_INT8 1  /* values: int64_t[n], written as int8            */
#define INGEST_PGCOL_INT4 2  /* values: int64_t[n], written as int4 (range-checked) */
#define INGEST_PGCOL_TEXT 3  /* values: int32_t[n], index into the text table, -1 NULL */
#define INGEST_PGCOL_FIXED 4 /* values: char[n * width], text NUL-padded to width */
/* PostgreSQL's limit on the columns of a table */
#define INGEST_PGCOPY_MAX_COLUMNS 1600

struct ingest_pgcol {
    const void *values;
    const uint8_t *valid;   /* n flags (0: NULL), or NULL: every row has a value */
    const uint8_t *tdata;   /* TEXT: the table's texts, UTF-8, back to back  */
    const uint32_t *toff;   /* TEXT: text k is tdata[toff[k] .. +tlen[k])     */
    const uint32_t *tlen;
    uint64_t tdata_len;     /* TEXT: bytes in tdata                          */
    uint32_t tcount;        /* TEXT: texts in the table                      */
    uint32_t width;         /* FIXED: bytes per row                          */
    uint32_t kind;          /* INGEST_PGCOL_*                                */
};

/*
 * Bytes ingest_pgcopy_encode writes for nrows rows of cols[0..ncols)
 * (header and trailer included), or INGEST_EINVAL: an unknown kind, a
 * missing pointer, a text index outside its table, a table text outside
 * tdata, too many columns.
 */
int64_t ingest_pgcopy_size(const struct ingest_pgcol *cols, uint32_t ncols, uint32_t nrows);

/*
 * Write the COPY stream into out (capacity out_cap).  Returns bytes
 * written, INGEST_ENOSPC (out too small: nothing is written past out_cap),
 * INGEST_ERANGE with *bad_row set (an INT4 value outside int32), or
 * INGEST_EINVAL as ingest_pgcopy_size.
 */
int64_t ingest_pgcopy_encode(const struct ingest_pgcol *cols, uint32_t ncols, uint32_t nrows,
                             uint8_t *out, size_t out_cap, uint32_t *bad_row);

/* ---- sqlite.c: a store's rows bound into SQLite statements -------------- */
/*
 * One SQLite connection (opaque; allocated once by ingest_sqlite_open, freed
 * by ingest_sqlite_close, even after a failed open).  Every call returns
 * INGEST_OK / a count, INGEST_EINVAL for a bad argument, or INGEST_ESQLITE:
 * then ingest_sqlite_errcode (extended result code) and ingest_sqlite_errmsg
 * say what SQLite said.
 */
#define INGEST_SQLITE_MAX_STMTS 8 /* prepared statements per connection */
struct ingest_sqlite;
int ingest_sqlite_open(const char *path, int busy_ms, struct ingest_sqlite **out);
int ingest_sqlite_busy_timeout(struct ingest_sqlite *h, int busy_ms);
int ingest_sqlite_exec(struct ingest_sqlite *h, const char *sql);
/* the first column of the first row of sql, as an integer: 1 and *out
 * set, 0 when there is no row or it is NULL, or INGEST_ESQLITE */
int ingest_sqlite_query_int64(struct ingest_sqlite *h, const char *sql, int64_t *out);
/* a statement's slot (>= 0) for ingest_sqlite_insert */
int ingest_sqlite_prepare(struct ingest_sqlite *h, const char *sql);
/*
 * Bind row r of cols[0..ncols) to the statement's parameters 1..ncols and
 * step it, for every row (INT8/INT4 as 64-bit integers, TEXT and FIXED as
 * text, invalid rows as NULL).  Returns the rows changed (an INSERT that a
 * unique key ignored changes none), or INGEST_ESQLITE with *bad_row set (the
 * row SQLite refused; the caller's transaction decides what stays), or
 * INGEST_EINVAL (columns as for ingest_pgcopy_size, or ncols not the
 * statement's parameter count).
 */
int64_t ingest_sqlite_insert(struct ingest_sqlite *h, int stmt, const struct ingest_pgcol *cols, uint32_t ncols,
                             uint32_t nrows, uint32_t *bad_row);
int ingest_sqlite_errcode(const struct ingest_sqlite *h);
const char *ingest_sqlite_errmsg(const struct ingest_sqlite *h);
/* 1 when no transaction is open */
int ingest_sqlite_autocommit(const struct ingest_sqlite *h);
void ingest_sqlite_close(struct ingest_sqlite *h);
const char *ingest_sqlite_version(void);
/* the address of the linked library's sqlite3_libversion (same copy, same address) */
uint64_t ingest_sqlite_lib_ident(void);

/* ---- cffi: end ---- */

#endif /* INGEST_H */
