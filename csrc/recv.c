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

/* ---- the native reader ---------------------------------------------------- */
#include <fcntl.h>
#include <pthread.h>

enum { B_FREE = 0, B_FILLING, B_READY, B_TAKEN };

struct reader {
    uint64_t magic;
    struct ingest_reader_cfg cfg;
    struct ingest_ring_batch *batches;
    unsigned nbatches;
    unsigned head;   /* next batch to take */
    unsigned tail;   /* next batch to fill */
    unsigned ready;  /* batches READY */
    uint8_t bstate[RECV_MAX_BATCH]; /* per batch: B_* (nbatches <= RECV_MAX_BATCH) */
    int stop;        /* INGEST_READER_STOP_* or 0; written under lock, read atomically */
    int state;       /* INGEST_READER_* */
    int err;
    int started;     /* 1 while there is a thread to join */
    uint64_t nb, nd, full_waits, full_ns;
    pthread_mutex_t lock;
    pthread_cond_t cond; /* every change: a batch ready, freed, the end */
    pthread_t thread;
};

#define READER_MAGIC 0x696e6765737452ULL

static struct reader *as_reader(void *mem)
{
    struct reader *r = mem;
    return r != NULL && r->magic == READER_MAGIC ? r : NULL;
}

size_t ingest_reader_size(void) { return sizeof(struct reader); }

static void deadline_in(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int ingest_reader_init(void *mem, size_t mem_size, const struct ingest_reader_cfg *cfg,
                       struct ingest_ring_batch *batches, unsigned nbatches)
{
    if (mem == NULL || mem_size < sizeof(struct reader) || (uintptr_t)mem % 8 != 0 || cfg == NULL ||
        batches == NULL || nbatches == 0 || nbatches > RECV_MAX_BATCH)
        return INGEST_EINVAL;
    if (cfg->fd < 0 || cfg->slot_size == 0 || cfg->nslots == 0 || cfg->nslots > RECV_MAX_BATCH ||
        cfg->linger_us < 0 || (cfg->mode != INGEST_READER_RAW && cfg->mode != INGEST_READER_ALERTPKT))
        return INGEST_EINVAL;
    if ((cfg->n_allow_uids > 0 && cfg->allow_uids == NULL) ||
        (cfg->n_allow_gids > 0 && cfg->allow_gids == NULL))
        return INGEST_EINVAL;
    if (cfg->slot_size > SIZE_MAX / cfg->nslots)
        return INGEST_EINVAL;
    /* without a receive timeout the reader could block for ever in recvmmsg
     * and never see a stop request */
    struct timeval tv;
    socklen_t sl = sizeof(tv);
    if (getsockopt(cfg->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &sl) != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0))
        return INGEST_EINVAL;
    for (unsigned b = 0; b < nbatches; b++) {
        const struct ingest_ring_batch *x = &batches[b];
        if (x->slots == NULL || x->lens == NULL || x->flags == NULL)
            return INGEST_EINVAL;
        if (cfg->creds && (x->cmsgs == NULL || (uintptr_t)x->cmsgs % sizeof(size_t) != 0 ||
                           x->pids == NULL || x->uids == NULL || x->gids == NULL))
            return INGEST_EINVAL;
        if (cfg->mode == INGEST_READER_ALERTPKT &&
            (x->alerts == NULL || x->slot_of == NULL || x->status == NULL || x->msg_key == NULL ||
             x->msg_first == NULL))
            return INGEST_EINVAL;
    }
    struct reader *r = mem;
    memset(r, 0, sizeof(*r));
    r->cfg = *cfg;
    r->batches = batches;
    r->nbatches = nbatches;
    pthread_condattr_t ca;
    if (pthread_mutex_init(&r->lock, NULL) != 0)
        return INGEST_ESYS;
    if (pthread_condattr_init(&ca) != 0 || pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&r->cond, &ca) != 0) {
        pthread_mutex_destroy(&r->lock);
        return INGEST_ESYS;
    }
    pthread_condattr_destroy(&ca);
    for (unsigned b = 0; b < nbatches; b++) {
        batches[b].n = 0;
        batches[b].k = -1;
    }
    r->magic = READER_MAGIC;
    return INGEST_OK;
}

/* One batch: receive into b, decode when the mode says so and nothing in
 * it needs the caller's judgement.  Returns the datagrams, or INGEST_ESYS. */
static int fill(struct reader *r, struct ingest_ring_batch *b, int linger_us)
{
    const struct ingest_reader_cfg *c = &r->cfg;
    int n = recv_batch(c->fd, b->slots, c->slot_size, c->nslots, b->lens, b->flags, linger_us,
                       c->creds ? b->cmsgs : NULL, INGEST_CRED_CMSG_SIZE, b->pids, b->uids, b->gids,
                       c->allow_uids, c->n_allow_uids, c->allow_gids, c->n_allow_gids, NULL);
    if (n <= 0)
        return n;
    b->n = n;
    b->k = -1;
    if (c->mode != INGEST_READER_ALERTPKT)
        return n;
    if (c->creds)
        for (int i = 0; i < n; i++)
            if (b->flags[i] & (INGEST_SLOT_NOCRED | INGEST_SLOT_REFUSED))
                return n; /* the caller counts, dead-letters and decodes the rest */
    b->k = ingest_alertpkt_decode(b->slots, c->slot_size, (unsigned)n, b->lens, b->flags, b->alerts,
                                  c->nslots, b->slot_of, b->status, b->msg_key, b->msg_first);
    if (b->k < 0)
        b->k = -1; /* cannot happen with checked arguments; the caller decodes */
    return n;
}

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    int shut = 0;
    pthread_mutex_lock(&r->lock);
    for (;;) {
        /* a free batch to fill: the ring is in order, so the one at tail */
        if (r->bstate[r->tail] != B_FREE && r->stop != INGEST_READER_STOP_NOW) {
            uint64_t t0 = now_ns();
            r->full_waits++;
            while (r->bstate[r->tail] != B_FREE && r->stop != INGEST_READER_STOP_NOW) {
                struct timespec ts;
                deadline_in(&ts, 100);
                pthread_cond_timedwait(&r->cond, &r->lock, &ts);
            }
            r->full_ns += now_ns() - t0;
        }
        if (r->stop == INGEST_READER_STOP_NOW)
            break;
        unsigned t = r->tail;
        int draining = r->stop == INGEST_READER_STOP_DRAIN;
        r->bstate[t] = B_FILLING;
        pthread_mutex_unlock(&r->lock);
        if (draining && !shut) {
            /* Refuse new datagrams (senders get EPIPE, as when we are gone)
             * and make the socket non-blocking, so what the kernel already
             * accepted is read to its end.  Done here, between two receives:
             * a receive blocked at the moment of shutdown would return the
             * end of input as empty datagrams. */
            shutdown(r->cfg.fd, SHUT_RD);
            int fl = fcntl(r->cfg.fd, F_GETFL);
            if (fl != -1)
                fcntl(r->cfg.fd, F_SETFL, fl | O_NONBLOCK);
            shut = 1;
        }

        int n = fill(r, &r->batches[t], draining ? 0 : r->cfg.linger_us);
        int e = errno;

        pthread_mutex_lock(&r->lock);
        if (n < 0) {
            r->bstate[t] = B_FREE;
            r->err = e;
            r->state = INGEST_READER_FAILED;
            break;
        }
        if (n == 0) {
            r->bstate[t] = B_FREE;
            if (draining)
                break; /* the socket is empty after SHUT_RD */
            continue;  /* a receive timeout: look at the stop request */
        }
        r->bstate[t] = B_READY;
        r->tail = (t + 1) % r->nbatches;
        r->ready++;
        r->nb++;
        r->nd += (uint64_t)n;
        pthread_cond_broadcast(&r->cond);
    }
    if (r->state != INGEST_READER_FAILED)
        r->state = INGEST_READER_ENDED;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

int ingest_reader_start(void *mem)
{
    struct reader *r = as_reader(mem);
    if (r == NULL || r->started || r->state != INGEST_READER_NEW)
        return INGEST_EINVAL;
    r->state = INGEST_READER_RUNNING;
    int rc = pthread_create(&r->thread, NULL, reader_main, r);
    if (rc != 0) {
        r->state = INGEST_READER_NEW;
        errno = rc;
        return INGEST_ESYS;
    }
    r->started = 1;
    return INGEST_OK;
}

int ingest_reader_take(void *mem, int timeout_ms)
{
    struct reader *r = as_reader(mem);
    if (r == NULL)
        return INGEST_EINVAL;
    int out;
    pthread_mutex_lock(&r->lock);
    if (r->ready == 0 && r->state == INGEST_READER_RUNNING && timeout_ms > 0) {
        struct timespec ts;
        deadline_in(&ts, timeout_ms);
        while (r->ready == 0 && r->state == INGEST_READER_RUNNING)
            if (pthread_cond_timedwait(&r->cond, &r->lock, &ts) != 0)
                break; /* ETIMEDOUT */
    }
    if (r->ready > 0) {
        out = (int)r->head;
        r->bstate[r->head] = B_TAKEN;
        r->head = (r->head + 1) % r->nbatches;
        r->ready--;
    } else {
        out = r->state == INGEST_READER_RUNNING ? INGEST_EAGAIN : INGEST_EEOF;
    }
    pthread_mutex_unlock(&r->lock);
    return out;
}

int ingest_reader_release(void *mem, unsigned idx)
{
    struct reader *r = as_reader(mem);
    if (r == NULL || idx >= r->nbatches)
        return INGEST_EINVAL;
    int rc = INGEST_OK;
    pthread_mutex_lock(&r->lock);
    if (r->bstate[idx] == B_TAKEN) {
        r->bstate[idx] = B_FREE;
        pthread_cond_broadcast(&r->cond);
    } else {
        rc = INGEST_EINVAL;
    }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void ingest_reader_stop(void *mem, int how)
{
    struct reader *r = as_reader(mem);
    if (r == NULL || (how != INGEST_READER_STOP_NOW && how != INGEST_READER_STOP_DRAIN))
        return;
    pthread_mutex_lock(&r->lock);
    if (r->stop != INGEST_READER_STOP_NOW) /* NOW wins over DRAIN */
        r->stop = how;
    if (r->state == INGEST_READER_NEW)
        r->state = INGEST_READER_ENDED; /* never started: nothing will come */
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

int ingest_reader_join(void *mem)
{
    struct reader *r = as_reader(mem);
    if (r == NULL || !r->started)
        return INGEST_EINVAL;
    pthread_join(r->thread, NULL);
    r->started = 0;
    return INGEST_OK;
}

void ingest_reader_get_info(void *mem, struct ingest_reader_info *out)
{
    struct reader *r = as_reader(mem);
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    out->state = r->state;
    out->err = r->err;
    out->ready = r->ready;
    out->capacity = r->nbatches;
    out->batches = r->nb;
    out->datagrams = r->nd;
    out->full_waits = r->full_waits;
    out->full_ns = r->full_ns;
    pthread_mutex_unlock(&r->lock);
}

void ingest_reader_destroy(void *mem)
{
    struct reader *r = as_reader(mem);
    if (r == NULL || r->started)
        return; /* a running thread still uses the lock: join first */
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    r->magic = 0;
}
