/*
 * gen.c - load generator: the sending loop of `ingest gen` and `ingest bench`.
 *
 * It sends caller-built datagrams (templates, cycled) to a unix datagram
 * socket the way the real senders do (FORMATS.md 1.1, 2, 3.2):
 *
 *   INGEST_GEN_SENDTO    Snort 2 / Snort 3 / Barnyard2 <= 2.1.11: one blocking
 *                        sendto() of the whole struct per alert, flags 0, on an
 *                        unbound, unconnected socket; errors ignored (counted).
 *   INGEST_GEN_CONNECT   Barnyard2 master: connect() once (failure is fatal,
 *                        as there), then one blocking send() per alert.
 *   INGEST_GEN_MMSG      not a real sender: sendmmsg() batches, for pushing
 *                        the receiver harder than one syscall per alert.
 *   INGEST_GEN_DONTWAIT  Suricata live mode: a send that would block is
 *                        dropped and counted, never retried.
 *
 * ingest_gen_lines sends newline-terminated records (EVE JSON lines) the way
 * Suricata's eve-log unix_dgram / unix_stream output does (FORMATS.md 5):
 * connect() once, then one send() per record; in live mode with MSG_DONTWAIT,
 * a record that would block is dropped and counted, never retried; offline
 * (`suricata -r`) the send blocks.  Another send error makes it reconnect at
 * most every 500 ms, as Suricata does; records lost meanwhile are errors.
 * Records cycle, so each one is restamped with the wall clock of its first
 * send attempt (its time fields moved together, rewritten in place), as
 * Suricata stamps an event when it logs it.
 *
 * Everything the loop touches is owned by the caller (the templates, the stop
 * flag, the result); nothing is allocated after the socket is opened.
 *
 * A blocking sender must stay interruptible and bounded: the socket gets a
 * short SO_SNDTIMEO, and a send that times out is retried (the alert is not
 * lost, exactly as a blocked Snort would eventually send it) after the stop
 * flag and the deadline have been checked.
 */
#define _GNU_SOURCE /* sendmmsg */
#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ingest.h"

/* sendmmsg batch, bounded on the stack. */
#define GEN_BATCH 64
/* How long one blocking send may wait before the loop looks at the stop flag
 * and the deadline again. */
#define GEN_POLL_NS 50000000L

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The stop flag is written by another thread (Python's main thread while this
 * one runs without the GIL). */
static int stop_requested(const int *stop)
{
    return stop != NULL && __atomic_load_n(stop, __ATOMIC_RELAXED) != 0;
}

/* Sleep until monotonic time `until`, at most GEN_POLL_NS at a time so the
 * caller can re-check the stop flag. */
static void sleep_until(double until)
{
    double d = until - now_s();
    if (d <= 0)
        return;
    if (d > GEN_POLL_NS * 1e-9)
        d = GEN_POLL_NS * 1e-9;
    struct timespec ts = {(time_t)d, (long)((d - (double)(time_t)d) * 1e9)};
    nanosleep(&ts, NULL);
}

static void stamp(uint8_t *p, uint32_t v, int big_endian)
{
    if (big_endian) {
        p[0] = (uint8_t)(v >> 24);
        p[1] = (uint8_t)(v >> 16);
        p[2] = (uint8_t)(v >> 8);
        p[3] = (uint8_t)v;
    } else {
        memcpy(p, &v, 4);
    }
}

/* A run of bytes sent in place of the template's own (mmsg mode). */
struct patch {
    size_t off, len;
    const uint8_t *src;
};

/* The iovecs of one message: the template tp[0..tlen) with patches (sorted,
 * non-overlapping, inside tlen: checked by the caller at entry) sent from
 * their own buffers.  At most 2 * npatch + 1 iovecs; returns how many. */
static int slice_iov(struct iovec *iov, uint8_t *tp, size_t tlen, const struct patch *p,
                     int npatch)
{
    size_t at = 0;
    int k = 0;
    for (int q = 0; q < npatch; q++) {
        if (p[q].off > at)
            iov[k++] = (struct iovec){tp + at, p[q].off - at};
        iov[k++] = (struct iovec){(void *)p[q].src, p[q].len};
        at = p[q].off + p[q].len;
    }
    if (at < tlen)
        iov[k++] = (struct iovec){tp + at, tlen - at};
    return k;
}

/* Outcome of one failed send: would-block, retry (interrupted / send timeout
 * of a blocking sender), or a real error (lost alert). */
enum { SEND_WOULDBLOCK, SEND_RETRY, SEND_ERROR };

static int classify_errno(int err, int dontwait)
{
    if (err == EAGAIN || err == EWOULDBLOCK)
        return dontwait ? SEND_WOULDBLOCK : SEND_RETRY;
    if (err == EINTR)
        return SEND_RETRY;
    return SEND_ERROR;
}

long ingest_gen_dgram(const char *path, uint8_t *templates, size_t tlen, unsigned ntemplates,
                      uint64_t count, double rate, double time_limit, int flags,
                      long stamp_off, long time_off, const int *stop,
                      struct ingest_gen_result *res, uint8_t *hot, size_t hot_head,
                      size_t hot_tail)
{
    struct sockaddr_un addr;
    const int mode = flags & INGEST_GEN_MODE_MASK;
    const int dontwait = mode == INGEST_GEN_DONTWAIT;
    const int be_stamp = (flags & INGEST_GEN_STAMP_BE) != 0;
    const clockid_t clock = (flags & INGEST_GEN_REALTIME) ? CLOCK_REALTIME : CLOCK_MONOTONIC;

    if (res == NULL)
        return INGEST_EINVAL;
    memset(res, 0, sizeof(*res));
    if (path == NULL || templates == NULL || tlen == 0 || ntemplates == 0 ||
        tlen > INGEST_GEN_MAX_DGRAM || !(rate >= 0) || !(time_limit >= 0) ||
        (mode != INGEST_GEN_SENDTO && mode != INGEST_GEN_CONNECT && mode != INGEST_GEN_MMSG &&
         mode != INGEST_GEN_DONTWAIT))
        return INGEST_EINVAL;
    /* templates holds ntemplates * tlen bytes: the product must not wrap. */
    if ((size_t)ntemplates > SIZE_MAX / tlen)
        return INGEST_EINVAL;
    /* The stamp (a 4-byte event id) must lie inside every template. */
    if (stamp_off >= 0 && ((size_t)stamp_off > tlen || tlen - (size_t)stamp_off < 4))
        return INGEST_EINVAL;
    /* The time stamp (8 bytes) too, and the two must not overlap (mmsg mode
     * sends both from side buffers between slices of the template). */
    if (time_off >= 0 && ((size_t)time_off > tlen || tlen - (size_t)time_off < 8))
        return INGEST_EINVAL;
    if (stamp_off >= 0 && time_off >= 0 && stamp_off < time_off + 8 && time_off < stamp_off + 4)
        return INGEST_EINVAL;
    /* One hot buffer (Snort's static Alertpkt): the sendto/connect modes
     * copy [0, hot_head) and [hot_tail, tlen) of each template into it and
     * send it; the stamps must fall in the copied parts. */
    if (hot != NULL) {
        if (hot_head > hot_tail || hot_tail > tlen ||
            (mode != INGEST_GEN_SENDTO && mode != INGEST_GEN_CONNECT))
            return INGEST_EINVAL;
        if (stamp_off >= 0 && (size_t)stamp_off < hot_tail && (size_t)stamp_off + 4 > hot_head)
            return INGEST_EINVAL;
        if (time_off >= 0 && (size_t)time_off < hot_tail && (size_t)time_off + 8 > hot_head)
            return INGEST_EINVAL;
    }
    /* sun_path is 108 bytes including the NUL: a longer path would be cut
     * (Snort truncates it silently; we refuse). */
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(addr.sun_path))
        return INGEST_EINVAL;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, plen);

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        res->last_errno = errno;
        return INGEST_ESYS;
    }
    if (!dontwait) {
        struct timeval tv = {0, GEN_POLL_NS / 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (mode == INGEST_GEN_CONNECT && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        /* Barnyard2 exits when its connect() fails. */
        res->last_errno = errno;
        close(fd);
        return INGEST_ESYS;
    }

    /* sendmmsg: one header per batch entry; entry j always points at a
     * template (iov[j]).  The event id goes out from ids[j] and the time
     * from tstamp through iovecs between slices of the template, so
     * templates are never written while the kernel reads them. */
    struct mmsghdr msgs[GEN_BATCH];
    struct iovec iov[GEN_BATCH][5];
    uint8_t ids[GEN_BATCH][4];
    uint8_t tstamp[8];
    struct patch patches[2];
    int npatch = 0;
    if (stamp_off >= 0)
        patches[npatch++] = (struct patch){(size_t)stamp_off, 4, NULL};
    if (time_off >= 0) {
        patches[npatch] = (struct patch){(size_t)time_off, 8, tstamp};
        if (npatch == 1 && patches[0].off > patches[1].off) { /* keep them in order */
            struct patch p = patches[0];
            patches[0] = patches[1];
            patches[1] = p;
        }
        npatch++;
    }

    const int msg_flags = dontwait ? MSG_DONTWAIT : 0;
    const double start = now_s();
    const double deadline = time_limit > 0 ? start + time_limit : 0;
    uint64_t i = 0; /* alerts attempted: sent + dropped + errors */
    uint64_t timed = 0; /* alerts whose time stamp is written (retries keep it) */
    unsigned t = 0; /* next template */
    double now = start;

    while (count == 0 || i < count) {
        if (stop_requested(stop)) {
            res->interrupted = 1;
            break;
        }
        if (deadline > 0 && now >= deadline) {
            res->timed_out = 1;
            break;
        }
        if (rate > 0) {
            /* Pace by attempts, so the offered load is `rate` whatever
             * happens to each alert. */
            double due = start + (double)i / rate;
            if (now < due) {
                sleep_until(due);
                now = now_s();
                continue;
            }
        }

        if (mode == INGEST_GEN_MMSG) {
            unsigned k = GEN_BATCH;
            if (count != 0 && count - i < k)
                k = (unsigned)(count - i);
            if (rate > 0) {
                /* Do not run ahead of the pace by more than what is due. */
                double due_n = (now - start) * rate - (double)i + 1;
                if (due_n < k)
                    k = due_n < 1 ? 1 : (unsigned)due_n;
            }
            memset(msgs, 0, sizeof(msgs[0]) * k);
            if (time_off >= 0) {
                struct timespec ts;
                clock_gettime(clock, &ts);
                stamp(tstamp, (uint32_t)ts.tv_sec, be_stamp);
                stamp(tstamp + 4, (uint32_t)(ts.tv_nsec / 1000), be_stamp);
            }
            for (unsigned j = 0; j < k; j++) {
                uint8_t *tp = templates + (size_t)((t + j) % ntemplates) * tlen;
                struct msghdr *h = &msgs[j].msg_hdr;
                h->msg_name = &addr;
                h->msg_namelen = sizeof(addr);
                h->msg_iov = iov[j];
                if (stamp_off >= 0)
                    stamp(ids[j], (uint32_t)(i + j + 1), be_stamp);
                for (int q = 0; q < npatch; q++)
                    if (patches[q].src != tstamp)
                        patches[q].src = ids[j];
                h->msg_iovlen = (size_t)slice_iov(iov[j], tp, tlen, patches, npatch);
            }
            int n = sendmmsg(fd, msgs, k, 0);
            if (n > 0) {
                res->sent += (uint64_t)n;
                res->batches++;
                i += (uint64_t)n;
                t = (unsigned)((t + (unsigned)n) % ntemplates);
            } else if (n < 0) {
                /* sendmmsg reports an error only for the first message. */
                res->last_errno = errno;
                if (classify_errno(errno, 0) == SEND_ERROR) {
                    res->errors++;
                    i++;
                    t = (t + 1) % ntemplates;
                }
            }
        } else {
            uint8_t *tp = templates + (size_t)t * tlen;
            if (hot != NULL) {
                /* Snort fills its one static Alertpkt per alert (message,
                 * headers, caplen bytes of packet, event): the buffer the
                 * kernel copies from stays in cache, as Snort's does. */
                memcpy(hot, tp, hot_head);
                memcpy(hot + hot_tail, tp + hot_tail, tlen - hot_tail);
                tp = hot;
            }
            if (stamp_off >= 0)
                stamp(tp + stamp_off, (uint32_t)(i + 1), be_stamp);
            if (time_off >= 0 && timed <= i) {
                /* The alert's time is when the engine first tried to send
                 * it: a blocked and retried send counts as latency. */
                struct timespec ts;
                clock_gettime(clock, &ts);
                stamp(tp + time_off, (uint32_t)ts.tv_sec, be_stamp);
                stamp(tp + time_off + 4, (uint32_t)(ts.tv_nsec / 1000), be_stamp);
                timed = i + 1;
            }
            ssize_t n;
            if (mode == INGEST_GEN_CONNECT)
                n = send(fd, tp, tlen, 0);
            else
                n = sendto(fd, tp, tlen, msg_flags, (struct sockaddr *)&addr, sizeof(addr));
            if (n >= 0) {
                res->sent++;
            } else {
                res->last_errno = errno;
                switch (classify_errno(errno, dontwait)) {
                case SEND_RETRY:
                    now = now_s();
                    continue; /* the same alert again, after the checks */
                case SEND_WOULDBLOCK:
                    res->dropped++;
                    break;
                default:
                    res->errors++; /* ENOENT, ECONNREFUSED, ...: lost */
                    break;
                }
            }
            i++;
            t = t + 1 == ntemplates ? 0 : t + 1;
        }
        now = now_s();
    }
    res->elapsed = now_s() - start;
    close(fd);
    return (long)res->sent;
}

/* Suricata's LOGFILE_RECONN_MIN_TIME: reconnect at most this often. */
#define GEN_RECONN_S 0.5

static int open_connected(const struct sockaddr_un *addr, int type, int blocking, int *err)
{
    int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    if (blocking) {
        struct timeval tv = {0, GEN_POLL_NS / 1000};
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    }
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/* Write t (us since the epoch) as "YYYY-MM-DDTHH:MM:SS.uuuuuu+0000" at p
 * (INGEST_GEN_TS_LEN bytes); a time outside years 0..9999 leaves p as it is. */
static void put_eve_time(uint8_t *p, int64_t t)
{
    int64_t sec = t / 1000000, us = t % 1000000;
    if (us < 0) {
        us += 1000000;
        sec -= 1;
    }
    time_t tt = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return;
    char buf[INGEST_GEN_TS_LEN + 16];
    int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06d+0000",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, (int)us);
    if (n == INGEST_GEN_TS_LEN)
        memcpy(p, buf, INGEST_GEN_TS_LEN);
}

/* Record rec (its bytes) gets the wall clock: each of its time fields moves
 * by now minus the record's own (first) time. */
static void restamp(uint8_t *rec, const struct ingest_gen_times *times, unsigned r)
{
    const uint32_t a = times->first[r], b = times->first[r + 1];
    if (a == b)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    const int64_t delta = now - times->us[a];
    for (uint32_t j = a; j < b; j++)
        put_eve_time(rec + times->off[j], times->us[j] + delta);
}

long ingest_gen_lines(const char *path, uint8_t *data, const uint32_t *ends,
                      unsigned nrec, uint64_t count, double rate, double time_limit, int flags,
                      const struct ingest_gen_times *times, const int *stop,
                      struct ingest_gen_result *res)
{
    struct sockaddr_un addr;
    const int mode = flags & INGEST_GEN_MODE_MASK;
    const int stream = (flags & INGEST_GEN_STREAM) != 0;
    const int dontwait = mode == INGEST_GEN_DONTWAIT;

    if (res == NULL)
        return INGEST_EINVAL;
    memset(res, 0, sizeof(*res));
    if (path == NULL || data == NULL || ends == NULL || nrec == 0 || !(rate >= 0) ||
        !(time_limit >= 0) || (mode != INGEST_GEN_DONTWAIT && mode != INGEST_GEN_CONNECT) ||
        (flags & ~(INGEST_GEN_MODE_MASK | INGEST_GEN_STREAM)) != 0)
        return INGEST_EINVAL;
    /* Records are non-empty, in order, and (datagrams) not over the limit. */
    for (unsigned r = 0; r < nrec; r++) {
        uint32_t b = r == 0 ? 0 : ends[r - 1];
        if (ends[r] <= b || (!stream && ends[r] - b > INGEST_GEN_MAX_DGRAM))
            return INGEST_EINVAL;
    }
    /* Every time field lies inside its record. */
    if (times != NULL) {
        if (times->first == NULL || times->off == NULL || times->us == NULL ||
            times->first[0] != 0)
            return INGEST_EINVAL;
        for (unsigned r = 0; r < nrec; r++) {
            uint32_t b = r == 0 ? 0 : ends[r - 1];
            if (times->first[r + 1] < times->first[r])
                return INGEST_EINVAL;
            for (uint32_t j = times->first[r]; j < times->first[r + 1]; j++)
                if (times->off[j] > ends[r] - b || ends[r] - b - times->off[j] < INGEST_GEN_TS_LEN)
                    return INGEST_EINVAL;
        }
    }
    size_t plen = strlen(path);
    if (plen == 0 || plen >= sizeof(addr.sun_path))
        return INGEST_EINVAL;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    memcpy(addr.sun_path, path, plen);

    const int type = stream ? SOCK_STREAM : SOCK_DGRAM;
    int err = 0;
    int fd = open_connected(&addr, type, !dontwait, &err);
    if (fd < 0) {
        /* Unlike Suricata (which keeps retrying), a generator that cannot
         * reach its receiver at start is a usage error. */
        res->last_errno = err;
        return INGEST_ESYS;
    }

    const int msg_flags = MSG_NOSIGNAL | (dontwait ? MSG_DONTWAIT : 0);
    const double start = now_s();
    const double deadline = time_limit > 0 ? start + time_limit : 0;
    double last_reconn = start;
    uint64_t i = 0;   /* records attempted: sent + dropped + errors */
    unsigned r = 0;   /* next record */
    size_t done = 0;  /* bytes of record r already written (stream only) */
    int tries = 0;    /* reconnects for this record (Suricata: one) */
    uint64_t stamped = UINT64_MAX; /* the attempt whose record has its time (retries keep it) */
    double now = start;

    while (count == 0 || i < count) {
        if (stop_requested(stop)) {
            res->interrupted = 1;
            break;
        }
        if (deadline > 0 && now >= deadline) {
            res->timed_out = 1;
            break;
        }
        if (rate > 0 && done == 0) {
            double due = start + (double)i / rate;
            if (now < due) {
                sleep_until(due);
                now = now_s();
                continue;
            }
        }
        const uint32_t b = r == 0 ? 0 : ends[r - 1];
        uint8_t *rec = data + b;
        if (times != NULL && stamped != i) {
            restamp(rec, times, r);
            stamped = i;
        }
        const size_t len = ends[r] - b;
        int outcome = -1; /* -1 pending, else 0 sent, 1 dropped, 2 error */

        if (fd < 0) {
            /* Disconnected: try again at most every GEN_RECONN_S. */
            if (now - last_reconn >= GEN_RECONN_S) {
                last_reconn = now;
                fd = open_connected(&addr, type, !dontwait, &err);
                if (fd < 0)
                    res->last_errno = err;
            }
            if (fd < 0)
                outcome = 2;
        }
        if (outcome < 0) {
            ssize_t n = send(fd, rec + done, len - done, msg_flags);
            if (n >= 0 && (size_t)n + done == len) {
                outcome = 0;
            } else if (n >= 0) {
                /* A stream send cut short.  Suricata counts the record sent
                 * and the rest is lost, garbling the next line; we finish
                 * the record (waiting if need be) so the receiver's framing
                 * holds: the load stays countable. */
                done += (size_t)n;
                if (dontwait) {
                    struct pollfd pfd = {fd, POLLOUT, 0};
                    (void)poll(&pfd, 1, (int)(GEN_POLL_NS / 1000000));
                }
            } else {
                res->last_errno = errno;
                if (errno == EINTR || (errno == EAGAIN && (!dontwait || done))) {
                    /* blocking send timed out, or finishing a cut record:
                     * retry after the checks */
                    if (done && dontwait) {
                        struct pollfd pfd = {fd, POLLOUT, 0};
                        (void)poll(&pfd, 1, (int)(GEN_POLL_NS / 1000000));
                    }
                } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    outcome = 1; /* Suricata: "Socket would block, dropping event." */
                } else if (tries == 0 && errno != EMSGSIZE) {
                    /* Suricata: assume badness, reconnect once and retry. */
                    close(fd);
                    fd = -1;
                    tries = 1;
                    done = 0;
                    last_reconn = now_s();
                    fd = open_connected(&addr, type, !dontwait, &err);
                    if (fd < 0) {
                        res->last_errno = err;
                        outcome = 2;
                    }
                } else {
                    outcome = 2;
                }
            }
        }
        if (outcome >= 0) {
            if (outcome == 0)
                res->sent++;
            else if (outcome == 1)
                res->dropped++;
            else
                res->errors++;
            i++;
            r = r + 1 == nrec ? 0 : r + 1;
            done = 0;
            tries = 0;
        }
        now = now_s();
    }
    res->elapsed = now_s() - start;
    if (fd >= 0)
        close(fd);
    return (long)res->sent;
}
