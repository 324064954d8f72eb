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
#include <netinet/in.h>
#include <unistd.h>

#include "ingest.h"

/* Bounded on the stack: no allocation on the hot path. */
#define RECV_MAX_BATCH 256

int ingest_abi_version(void) { return INGEST_ABI_VERSION; }

/* Where datagram i lands: its slot, and (with credentials) its own control
 * buffer of cmsg_size bytes in the caller's cmsgs. */
static void prepare(uint8_t *slots, size_t slot_size, unsigned first, unsigned nslots,
                    struct mmsghdr *msgs, struct iovec *iov, uint8_t *cmsgs, size_t cmsg_size,
                    struct sockaddr_storage *names)
{
    memset(msgs + first, 0, sizeof(msgs[0]) * (nslots - first));
    for (unsigned i = first; i < nslots; i++) {
        iov[i].iov_base = slots + (size_t)i * slot_size;
        iov[i].iov_len = slot_size;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if (cmsgs != NULL) {
            msgs[i].msg_hdr.msg_control = cmsgs + (size_t)i * cmsg_size;
            msgs[i].msg_hdr.msg_controllen = cmsg_size;
        }
        if (names != NULL) {
            msgs[i].msg_hdr.msg_name = &names[i];
            msgs[i].msg_hdr.msg_namelen = sizeof(names[i]);
        }
    }
}

static int in_list(uint32_t v, const uint32_t *list, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (list[i] == v)
            return 1;
    return 0;
}

/* The sender of datagram i from its control messages.  Descriptors a peer
 * passed with SCM_RIGHTS were installed in our process by the kernel: they
 * are closed at once (nobody may make us hold descriptors).  Every cmsg is
 * walked with the CMSG_* macros, which stop at msg_controllen (what the
 * kernel wrote, never more than cmsg_size); a payload is read only when its
 * cmsg_len covers it. */
static void read_creds(struct msghdr *h, unsigned i, int32_t *pids, uint32_t *uids, uint32_t *gids,
                       uint8_t *slot_flags)
{
    int found = 0;
    pids[i] = 0;
    uids[i] = UINT32_MAX;
    gids[i] = UINT32_MAX;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c != NULL; c = CMSG_NXTHDR(h, c)) {
        if (c->cmsg_level != SOL_SOCKET)
            continue;
        if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len >= CMSG_LEN(sizeof(struct ucred))) {
            struct ucred uc;
            memcpy(&uc, CMSG_DATA(c), sizeof(uc)); /* CMSG_DATA need not be aligned for ucred */
            pids[i] = (int32_t)uc.pid;
            uids[i] = (uint32_t)uc.uid;
            gids[i] = (uint32_t)uc.gid;
            found = 1;
        } else if (c->cmsg_type == SCM_RIGHTS && c->cmsg_len >= CMSG_LEN(0)) {
            size_t nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < nfd; k++) {
                int pfd;
                memcpy(&pfd, CMSG_DATA(c) + k * sizeof(int), sizeof(int));
                if (pfd >= 0)
                    close(pfd);
            }
        }
    }
    if (!found)
        slot_flags[i] |= INGEST_SLOT_NOCRED;
}

static int recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots, uint32_t *lens,
                      uint8_t *slot_flags, int linger_us, uint8_t *cmsgs, size_t cmsg_size,
                      int32_t *pids, uint32_t *uids, uint32_t *gids, const uint32_t *allow_uids,
                      unsigned n_allow_uids, const uint32_t *allow_gids, unsigned n_allow_gids,
                      struct sockaddr_storage *names)
{
    struct mmsghdr msgs[RECV_MAX_BATCH];
    struct iovec iov[RECV_MAX_BATCH];

    if (nslots > RECV_MAX_BATCH)
        nslots = RECV_MAX_BATCH;

    /* Block for the first datagram (bounded by SO_RCVTIMEO), then take what
     * is already queued (MSG_WAITFORONE).  MSG_TRUNC makes msg_len the
     * datagram's real length even when it did not fit, so an oversized
     * datagram is reported with its size, never passed on cut.
     * MSG_CMSG_CLOEXEC: a descriptor a peer slips in is never inherited
     * by a child in the moment before it is closed. */
    int cflags = cmsgs != NULL ? MSG_CMSG_CLOEXEC : 0;
    prepare(slots, slot_size, 0, nslots, msgs, iov, cmsgs, cmsg_size, names);
    int n = recvmmsg(fd, msgs, nslots, MSG_WAITFORONE | MSG_TRUNC | cflags, NULL);
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
            prepare(slots, slot_size, total, nslots, msgs, iov, cmsgs, cmsg_size, names);
            int m = recvmmsg(fd, msgs + total, nslots - total, MSG_TRUNC | cflags, &limit);
            if (m > 0)
                total += (unsigned)m;
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &saved, sizeof(saved));
        }
    }
    int check = n_allow_uids + n_allow_gids > 0;
    for (unsigned i = 0; i < total; i++) {
        lens[i] = msgs[i].msg_len;
        if (slot_flags != NULL)
            slot_flags[i] = (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) || msgs[i].msg_len > slot_size
                                ? INGEST_SLOT_TRUNC
                                : 0;
        if (cmsgs == NULL)
            continue;
        read_creds(&msgs[i].msg_hdr, i, pids, uids, gids, slot_flags);
        if (check && !(slot_flags[i] & INGEST_SLOT_NOCRED) &&
            !in_list(uids[i], allow_uids, n_allow_uids) && !in_list(gids[i], allow_gids, n_allow_gids))
            slot_flags[i] |= INGEST_SLOT_REFUSED;
    }
    return (int)total;
}

int ingest_recv_batch(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                      uint32_t *lens, uint8_t *slot_flags, int linger_us)
{
    if (fd < 0 || slots == NULL || lens == NULL || slot_size == 0 || nslots == 0)
        return INGEST_EINVAL;
    return recv_batch(fd, slots, slot_size, nslots, lens, slot_flags, linger_us, NULL, 0, NULL,
                      NULL, NULL, NULL, 0, NULL, 0, NULL);
}

int ingest_recv_batch_creds(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                            uint32_t *lens, uint8_t *slot_flags, int linger_us,
                            uint8_t *cmsgs, size_t cmsg_size,
                            int32_t *pids, uint32_t *uids, uint32_t *gids,
                            const uint32_t *allow_uids, unsigned n_allow_uids,
                            const uint32_t *allow_gids, unsigned n_allow_gids)
{
    if (fd < 0 || slots == NULL || lens == NULL || slot_flags == NULL || slot_size == 0 ||
        nslots == 0 || cmsgs == NULL || pids == NULL || uids == NULL || gids == NULL)
        return INGEST_EINVAL;
    /* every slot's control buffer must hold the credentials, or the kernel
     * would cut them (MSG_CTRUNC) and every sender would look unknown */
    if (cmsg_size < CMSG_SPACE(sizeof(struct ucred)) || cmsg_size % sizeof(size_t) != 0 ||
        (uintptr_t)cmsgs % sizeof(size_t) != 0)
        return INGEST_EINVAL;
    if ((n_allow_uids > 0 && allow_uids == NULL) || (n_allow_gids > 0 && allow_gids == NULL))
        return INGEST_EINVAL;
    return recv_batch(fd, slots, slot_size, nslots, lens, slot_flags, linger_us, cmsgs, cmsg_size,
                      pids, uids, gids, allow_uids, n_allow_uids, allow_gids, n_allow_gids, NULL);
}

int ingest_recv_batch_from(int fd, uint8_t *slots, size_t slot_size, unsigned nslots,
                           uint32_t *lens, uint8_t *slot_flags, int linger_us, uint8_t *peers,
                           uint16_t *ports)
{
    struct sockaddr_storage names[RECV_MAX_BATCH];
    if (fd < 0 || slots == NULL || lens == NULL || slot_size == 0 || nslots == 0 || peers == NULL)
        return INGEST_EINVAL;
    if (nslots > RECV_MAX_BATCH)
        nslots = RECV_MAX_BATCH;
    int n = recv_batch(fd, slots, slot_size, nslots, lens, slot_flags, linger_us, NULL, 0, NULL, NULL,
                       NULL, NULL, 0, NULL, 0, names);
    for (int i = 0; i < n; i++) {
        uint8_t *a = peers + (size_t)i * 16;
        memset(a, 0, 16);
        uint16_t port = 0;
        if (names[i].ss_family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&names[i];
            a[10] = a[11] = 0xff;
            memcpy(a + 12, &s4->sin_addr, 4);
            port = ntohs(s4->sin_port);
        } else if (names[i].ss_family == AF_INET6) {
            const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&names[i];
            memcpy(a, &s6->sin6_addr, 16);
            port = ntohs(s6->sin6_port);
        }
        if (ports != NULL)
            ports[i] = port;
    }
    return n;
}
