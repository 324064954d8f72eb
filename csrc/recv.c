/*
 * recv.c - batched datagram receive with recvmmsg(2).
 *
 * One system call drains up to nslots datagrams into caller-owned slots.
 * The reader thread calls this with the GIL released (cffi API mode), so the
 * sender (Snort blocks its packet thread when our queue is full) is never
 * kept waiting on Python.
 */
#define _GNU_SOURCE /* recvmmsg, MSG_WAITFORONE */
#include <errno.h>
#include <sys/time.h>
#include <time.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ingest.h"

/* Bounded on the stack: no allocation on the hot path. */
#define RECV_MAX_BATCH 256

int ingest_abi_version(void) { return INGEST_ABI_VERSION; }

/* One recvmmsg into slots [first, nslots). */
static int recv_some(int fd, uint8_t *slots, size_t slot_size, unsigned first, unsigned nslots,
                     struct mmsghdr *msgs, struct iovec *iov, int flags)
{
    unsigned want = nslots - first;
    memset(msgs + first, 0, sizeof(msgs[0]) * want);
    for (unsigned i = first; i < nslots; i++) {
        iov[i].iov_base = slots + (size_t)i * slot_size;
        iov[i].iov_len = slot_size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    /* MSG_TRUNC makes msg_len the datagram's real length even when it did
     * not fit, so an oversized datagram is reported with its size, never
     * passed on cut. */
    return recvmmsg(fd, msgs + first, want, flags | MSG_TRUNC, NULL);
}

int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags, int linger_us)
{
    struct mmsghdr msgs[RECV_MAX_BATCH];
    struct iovec iov[RECV_MAX_BATCH];

    if (fd < 0 || slots == NULL || lens == NULL || slot_size == 0 || nslots == 0)
        return INGEST_EINVAL;
    if (nslots > RECV_MAX_BATCH)
        nslots = RECV_MAX_BATCH;

    /* Block for the first datagram (bounded by SO_RCVTIMEO), then take what
     * is already queued (MSG_WAITFORONE). */
    int n = recv_some(fd, slots, slot_size, 0, nslots, msgs, iov, MSG_WAITFORONE);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return INGEST_ESYS;
    }
    unsigned total = (unsigned)n;
    /* The kernel queue is short (net.unix.max_dgram_qlen, 10 by default) and
     * a blocked sender refills it as soon as we drain it: keep collecting for
     * up to about linger_us so one batch carries many alerts.  The wait is a
     * blocking recvmmsg with SO_RCVTIMEO shortened to linger_us (one wake-up
     * per datagram, no extra system calls), GIL released. */
    if (linger_us > 0 && total < nslots && n > 0) {
        struct timeval saved, tv = {linger_us / 1000000, linger_us % 1000000};
        socklen_t sl = sizeof(saved);
        struct timespec limit = {linger_us / 1000000, (long)(linger_us % 1000000) * 1000};
        if (getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &saved, &sl) == 0 &&
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0) {
            /* recvmmsg checks `limit` after each datagram; SO_RCVTIMEO bounds
             * the wait for the next one: at most ~2 x linger_us in all. */
            for (unsigned i = total; i < nslots; i++) {
                iov[i].iov_base = slots + (size_t)i * slot_size;
                iov[i].iov_len = slot_size;
            }
            memset(msgs + total, 0, sizeof(msgs[0]) * (nslots - total));
            for (unsigned i = total; i < nslots; i++) {
                msgs[i].msg_hdr.msg_iov = &iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
            }
            int m = recvmmsg(fd, msgs + total, nslots - total, MSG_TRUNC, &limit);
            if (m > 0)
                total += (unsigned)m;
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &saved, sizeof(saved));
        }
    }
    for (unsigned i = 0; i < total; i++) {
        lens[i] = msgs[i].msg_len;
        if (slot_flags != NULL)
            slot_flags[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > slot_size
                                ? INGEST_SLOT_TRUNC
                                : 0;
    }
    return (int)total;
}
