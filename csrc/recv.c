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
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "ingest.h"

/* Bounded on the stack: no allocation on the hot path. */
#define RECV_MAX_BATCH 256

int ingest_abi_version(void) { return INGEST_ABI_VERSION; }

int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags)
{
    struct mmsghdr msgs[RECV_MAX_BATCH];
    struct iovec iov[RECV_MAX_BATCH];

    if (fd < 0 || slots == NULL || lens == NULL || slot_size == 0 || nslots == 0)
        return INGEST_EINVAL;
    if (nslots > RECV_MAX_BATCH)
        nslots = RECV_MAX_BATCH;

    memset(msgs, 0, sizeof(msgs[0]) * nslots);
    for (unsigned i = 0; i < nslots; i++) {
        iov[i].iov_base = slots + (size_t)i * slot_size;
        iov[i].iov_len = slot_size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    /* MSG_TRUNC makes msg_len the datagram's real length even when it did not
     * fit, so an oversized datagram is reported with its size, never passed
     * on cut. MSG_WAITFORONE: block for the first, then take what is queued. */
    int n = recvmmsg(fd, msgs, nslots, MSG_WAITFORONE | MSG_TRUNC, NULL);
    if (n < 0) {
        if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return INGEST_ESYS;
    }
    for (int i = 0; i < n; i++) {
        lens[i] = msgs[i].msg_len;
        if (slot_flags != NULL)
            slot_flags[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > slot_size
                                ? INGEST_SLOT_TRUNC
                                : 0;
    }
    return n;
}
