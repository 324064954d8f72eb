"""cffi builder for ingest._native (out-of-line API mode).

All C declarations live here, one block per csrc/ header section, in the
order of csrc/ingest.h.  setup.py points cffi_modules at ``ffibuilder``.
"""

from __future__ import annotations

import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE.parent / "csrc"

# --- ingest.h: constants, the canonical alert, ABI stamp -------------------
CORE = """
#define INGEST_ABI_VERSION ...
#define INGEST_OK ...
#define INGEST_EINVAL ...
#define INGEST_ESYS ...
#define INGEST_ENOSPC ...

#define INGEST_SRC_NONE ...
#define INGEST_SRC_SNORT ...
#define INGEST_SRC_SNORT_APPID ...
#define INGEST_SRC_BARNYARD2 ...
#define INGEST_SRC_BARNYARD2_32 ...
#define INGEST_SRC_UNIFIED2 ...
#define INGEST_SRC_EVE ...

#define INGEST_F_PACKET ...
#define INGEST_F_ADDRS ...
#define INGEST_F_PORTS ...
#define INGEST_F_ICMP ...
#define INGEST_F_VLAN ...
#define INGEST_F_PKT_ANOMALY ...

#define INGEST_ACTION_UNKNOWN ...
#define INGEST_ACTION_ALLOWED ...
#define INGEST_ACTION_BLOCKED ...

/* Declared field by field (not "...;") so ffi.offsetof() reports the real
   layout, which tests compare against the numpy dtype in ingest/batch.py. */
struct ingest_alert {
    int64_t ts_us;
    uint64_t flow_id;
    uint8_t src_addr[16];
    uint8_t dst_addr[16];
    uint32_t sensor_id;
    uint32_t event_id;
    uint32_t gid;
    uint32_t sid;
    uint32_t rev;
    uint32_t class_id;
    uint32_t priority;
    int32_t msg_idx;
    int32_t app_idx;
    uint16_t src_port;
    uint16_t dst_port;
    uint16_t vlan;
    uint8_t source;
    uint8_t ip_ver;
    uint8_t proto;
    uint8_t action;
    uint8_t flags;
    uint8_t reserved;
};

int ingest_abi_version(void);
"""

# --- recv.c ------------------------------------------------------------------
RECV = """
#define INGEST_SLOT_TRUNC ...
int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags, int linger_us);
"""

# --- alertpkt.c --------------------------------------------------------------
ALERTPKT = """
#define INGEST_ALERTPKT_SNORT_LEN ...
#define INGEST_ALERTPKT_SNORT_APPID_LEN ...
#define INGEST_ALERTPKT_BY2_LEN ...
#define INGEST_ALERTPKT_BY2_32_LEN ...
#define INGEST_ALERTPKT_MAX_LEN ...
#define INGEST_ALERTMSG_LEN ...
#define INGEST_APPNAME_LEN ...
#define INGEST_DG_OK ...
#define INGEST_DG_BAD_LENGTH ...
#define INGEST_DG_TRUNCATED ...
#define INGEST_DG_BAD_OFFSET ...
#define INGEST_DG_BAD_CAPLEN ...
#define INGEST_DG_BAD_IPHDR ...
#define INGEST_DG_NREASONS ...
int ingest_alertpkt_decode(const uint8_t *slots, size_t slot_size, unsigned n,
                           const uint32_t *lens, const uint8_t *slot_flags,
                           struct ingest_alert *out, unsigned out_cap,
                           uint32_t *slot_of, uint8_t *status, uint64_t *msg_key,
                           uint32_t *msg_first);
size_t ingest_text_len(const uint8_t *p, size_t max);
void ingest_set_hash_key(uint64_t k0, uint64_t k1);
"""

# --- format.c ----------------------------------------------------------------
FORMAT = """
#define INGEST_FMT_EVE ...
#define INGEST_FMT_TRISUL ...
struct ingest_strtab {
    const uint8_t *pool;
    const uint32_t *off;
    const uint32_t *len;
    uint32_t count;
    const struct ingest_strtab *next;
};
struct ingest_fmt_idx {
    const int32_t *cat;
    const int32_t *extra;
    const int32_t *raw;
    const int32_t *refs;
};
long ingest_format_json(const struct ingest_alert *alerts, unsigned n,
                        const struct ingest_strtab *strings,
                        const struct ingest_fmt_idx *idx, int profile, uint8_t *out,
                        size_t out_cap, uint32_t *ends);
int ingest_format_addrs(const struct ingest_alert *alerts, unsigned n,
                        char *src_out, char *dst_out);
"""

# --- eve.c -------------------------------------------------------------------
EVE = """
#define INGEST_EVE_ALERT ...
#define INGEST_EVE_FLOW ...
#define INGEST_EVE_NETFLOW ...
#define INGEST_EVE_STATS ...
#define INGEST_EVE_OTHER ...
#define INGEST_EVE_FILTERED ...
#define INGEST_EVE_FIRST_REJECT ...
#define INGEST_EVE_EMPTY ...
#define INGEST_EVE_INVALID_JSON ...
#define INGEST_EVE_NOT_OBJECT ...
#define INGEST_EVE_NO_EVENT_TYPE ...
#define INGEST_EVE_BAD_TIMESTAMP ...
#define INGEST_EVE_BAD_ALERT ...
#define INGEST_EVE_TRUNCATED ...
#define INGEST_EVE_NREASONS ...
#define INGEST_EVE_REC_NEWLINE ...
/* Declared field by field so ffi.offsetof() can be checked against the
   numpy dtypes in ingest/eve.py. */
struct ingest_eve_rec {
    uint64_t off;
    uint32_t len;
    uint32_t etype_off;
    uint32_t etype_len;
    uint8_t status;
    uint8_t flags;
    uint8_t reserved[2];
};
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
int ingest_eve_decode(const uint8_t *buf, size_t buf_len, const uint64_t *offs, const uint32_t *lens,
                      const uint8_t *slot_flags, unsigned n, const uint8_t *filter, size_t filter_len,
                      struct ingest_eve_rec *recs, struct ingest_alert *alerts,
                      struct ingest_eve_alert *ext, unsigned alert_cap);
int ingest_eve_parse_ts(const uint8_t *s, size_t n, int64_t *ts_us);
int ingest_eve_lines(const uint8_t *buf, size_t len, size_t base, uint64_t *offs, uint32_t *lens,
                     unsigned cap, size_t *consumed);
long ingest_eve_gather(const uint8_t *buf, size_t buf_len, const struct ingest_eve_rec *recs,
                       const uint32_t *idx, unsigned n, uint8_t *out, size_t out_cap, uint64_t *out_off);
int ingest_dedupe_u64(const uint64_t *keys, unsigned n, uint32_t *first, uint64_t *tab_keys,
                      uint32_t *tab_vals, unsigned tab_size);
"""

# --- unified2.c --------------------------------------------------------------
UNIFIED2 = """
#define INGEST_U2_HDR_LEN ...
#define INGEST_U2_MAX_RECORD ...
#define INGEST_U2_PACKET ...
#define INGEST_U2_BUFFER ...
#define INGEST_U2_IDS_EVENT ...
#define INGEST_U2_IDS_EVENT_IPV6 ...
#define INGEST_U2_IDS_EVENT_VLAN ...
#define INGEST_U2_IDS_EVENT_IPV6_VLAN ...
#define INGEST_U2_EXTRA_DATA ...
#define INGEST_U2_IDS_EVENT_APPID ...
#define INGEST_U2_IDS_EVENT_APPID_IPV6 ...
#define INGEST_U2_IDS_EVENT_APPSTAT ...
#define INGEST_U2_EVENT3 ...
#define INGEST_U2_END ...
#define INGEST_U2_PARTIAL ...
#define INGEST_U2_FULL ...
#define INGEST_U2_PCAP ...
#define INGEST_U2_BADLEN ...
#define INGEST_U2_BAD_LENGTH ...
/* Row structs declared field by field: tests compare ffi.offsetof() with the
   numpy dtypes in ingest/unified2.py. */
struct ingest_u2_event {
    uint64_t offset; uint32_t type; uint32_t length; uint32_t mpls_label;
    uint32_t policy_context; uint32_t policy_inspect; uint32_t policy_detect;
    uint32_t http_request_size; uint32_t http_response_size;
    uint32_t text_off[6]; uint16_t text_len[6];
    uint8_t impact_flag; uint8_t impact; uint8_t blocked; uint8_t snort_status;
    uint8_t snort_action; uint8_t ip_ver_raw; uint8_t reserved[6];
};
struct ingest_u2_packet {
    uint64_t offset; uint32_t type; uint32_t sensor_id; uint32_t event_id;
    uint32_t event_second; uint32_t packet_second; uint32_t packet_microsecond;
    uint32_t linktype; uint32_t packet_length; uint64_t data_off; uint32_t data_len;
    uint32_t flags;
};
struct ingest_u2_extra {
    uint64_t offset; uint64_t data_off; uint32_t event_type; uint32_t event_length;
    uint32_t sensor_id; uint32_t event_id; uint32_t event_second; uint32_t info_type;
    uint32_t data_type; uint32_t blob_length; uint32_t data_len; uint8_t addr[16];
    uint8_t addr_ver; uint8_t flags; uint8_t reserved[2];
};
int ingest_u2_is_event(uint32_t type);
#define INGEST_U2_JOIN_LATER ...
struct ingest_u2_out {
    struct ingest_alert *alerts;
    struct ingest_u2_event *ev;
    struct ingest_u2_packet *pk;
    int32_t *pk_event;
    struct ingest_u2_extra *ex;
    int32_t *ex_event;
    uint32_t *odd;
    uint64_t *counts;
    uint8_t *pool;
    size_t pool_cap, pool_used;
    uint32_t ev_cap, nev, pk_cap, npk, ex_cap, nex, odd_cap, nodd;
    uint32_t malformed;
    int32_t last_ev;
    uint32_t last_id, last_sec;
    int32_t snap_valid;
    int32_t snap_last_ev;
    size_t snap_pos, snap_pool;
    uint32_t snap_nev, snap_npk, snap_nex, snap_nodd, snap_malformed;
    uint32_t snap_last_id, snap_last_sec;
};
int ingest_u2_decode(const uint8_t *buf, size_t n, size_t from, uint64_t base,
                     struct ingest_u2_out *o, size_t *stop, int *reason);
long ingest_u2_unwind(const uint8_t *buf, size_t n, struct ingest_u2_out *o);
long ingest_u2_resync(const uint8_t *buf, size_t n, size_t from);
long ingest_u2_render(const struct ingest_u2_event *ev, unsigned nev, const uint8_t *pool,
                      size_t pool_len, const struct ingest_u2_packet *pk, unsigned npk,
                      const uint32_t *pk_idx, const uint32_t *pk_start,
                      const struct ingest_u2_extra *ex, unsigned nex, const uint32_t *ex_idx,
                      const uint32_t *ex_start, uint8_t *out, size_t out_cap, uint32_t *ends);
"""

# --- gen.c -------------------------------------------------------------------
GEN = """
#define INGEST_GEN_SENDTO ...
#define INGEST_GEN_CONNECT ...
#define INGEST_GEN_MMSG ...
#define INGEST_GEN_DONTWAIT ...
#define INGEST_GEN_MODE_MASK ...
#define INGEST_GEN_STAMP_BE ...
#define INGEST_GEN_STREAM ...
#define INGEST_GEN_REALTIME ...
#define INGEST_GEN_MAX_DGRAM ...
struct ingest_gen_result {
    uint64_t sent;
    uint64_t dropped;
    uint64_t errors;
    uint64_t batches;
    double elapsed;
    int last_errno;
    uint8_t interrupted;
    uint8_t timed_out;
};
/* The stop flag is written by another Python thread while this call runs
   without the GIL; the C side reads it atomically. */
long ingest_gen_dgram(const char *path, uint8_t *templates, size_t tlen, unsigned ntemplates,
                      uint64_t count, double rate, double time_limit, int flags,
                      long stamp_off, long time_off, const int *stop,
                      struct ingest_gen_result *res);
long ingest_gen_lines(const char *path, const uint8_t *data, const uint32_t *ends,
                      unsigned nrec, uint64_t count, double rate, double time_limit, int flags,
                      const int *stop, struct ingest_gen_result *res);
"""

# Sections in csrc/ingest.h order; later modules append their block here.
CDEFS = [CORE, RECV, ALERTPKT, FORMAT]
SOURCES = ["recv.c", "alertpkt.c", "format.c"]
CDEFS.append(EVE)
SOURCES.append("eve.c")
CDEFS.append(UNIFIED2)
SOURCES.append("unified2.c")
CDEFS.append(GEN)
SOURCES.append("gen.c")


def _compile_args() -> list[str]:
    """-O2 by default; INGEST_SANITIZE=1 builds with ASan+UBSan, INGEST_DEBUG=1
    with -O0 -g, for the CI pass over the unit suite."""
    args = ["-std=gnu11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"]
    if os.environ.get("INGEST_SANITIZE"):
        args += ["-O1", "-g", "-fno-omit-frame-pointer",
                 "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
    elif os.environ.get("INGEST_DEBUG"):
        args += ["-O0", "-g"]
    else:
        args += ["-O2"]
    return args


def _link_args() -> list[str]:
    if os.environ.get("INGEST_SANITIZE"):
        return ["-fsanitize=address,undefined"]
    return []


def _require_compiler() -> None:
    """Fail early, in plain words, when there is no C compiler."""
    import shlex
    import shutil
    import sysconfig

    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    exe = shlex.split(cc)[0] if cc else "cc"
    if shutil.which(exe) is None:
        raise SystemExit(
            f"ingest: no C compiler found ({exe!r}); the native core in csrc/ must be "
            "compiled. Install one (Debian: apt-get install gcc python3-dev) and retry."
        )


_require_compiler()

ffibuilder = FFI()
for block in CDEFS:
    ffibuilder.cdef(block)

ffibuilder.set_source(
    "ingest._native",
    '#include "ingest.h"\n',
    # setuptools wants source paths relative to the directory it runs in.
    sources=[os.path.relpath(CSRC / name) for name in SOURCES],
    include_dirs=[os.path.relpath(CSRC)],
    extra_compile_args=_compile_args(),
    extra_link_args=_link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
