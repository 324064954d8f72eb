/*
 * recv_count.c - the "physical limit" peer of the Alertpkt benchmark.
 *
 * Binds a unix datagram socket, drains it with recvmmsg(2) into one
 * preallocated buffer and only counts.  No decoding, no allocation after
 * start-up: whatever ingest does on top of this is its own cost.
 *
 *   recv_count PATH [COUNT] [SLOT_SIZE] [BATCH] [latency]
 *
 * Exits after COUNT datagrams (0 = never) or on SIGTERM/SIGINT, removes the
 * socket file, and prints one JSON line on stdout:
 *   {"peer":"recv_count","received":N,"bytes":B,"truncated":T,"recvmmsg_calls":C,
 *    "wall_s":W,"cpu_user_s":U,"cpu_sys_s":S,"maxrss_kb":R}
 * wall_s runs from the first datagram to the last one; received / recvmmsg_calls
 * is the batch the kernel had queued each time (small when the sender blocks:
 * a 64 KiB datagram leaves room for only a few in flight).
 *
 * With "latency" (COUNT > 0), the event's ref_time is taken to be the
 * sender's CLOCK_MONOTONIC send time (`ingest bench` stamps it so) and the
 * line also holds "p50_ms", "p99_ms", "max_ms" of receipt minus send time:
 * the kernel's own wake-up latency, the floor for any receiver.
 *
 * The benchmark harness compiles this with gcc at run time; no binary is
 * committed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The alert time (event ref_time) of an Alertpkt, by variant length
 * (FORMATS.md 1.1, 2); -1 for any other length. */
static double alert_time(const uint8_t *p, size_t len)
{
    uint32_t sec, usec;
    if (len == 65864 || len == 65928) { /* host order, ref_time at event + 28 */
        memcpy(&sec, p + 65828 + 28, 4);
        memcpy(&usec, p + 65828 + 32, 4);
    } else if (len == 1856 || len == 1844) { /* big-endian, sec at event + 8 */
        const uint8_t *e = p + (len == 1856 ? 1816 : 1808) + 8;
        sec = (uint32_t)e[0] << 24 | (uint32_t)e[1] << 16 | (uint32_t)e[2] << 8 | e[3];
        usec = (uint32_t)e[4] << 24 | (uint32_t)e[5] << 16 | (uint32_t)e[6] << 8 | e[7];
    } else {
        return -1;
    }
    return (double)sec + (double)usec * 1e-6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double tv_s(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6; }

/* Peak RSS of this image.  Not ru_maxrss: Linux carries the parent's
 * pre-exec high-water mark over fork+exec, so a child of a big harness would
 * report the harness's size. */
static long vm_hwm_kb(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: %s PATH [COUNT] [SLOT_SIZE] [BATCH] [latency]\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    unsigned long long want = argc > 2 ? strtoull(argv[2], NULL, 10) : 0;
    size_t slot = argc > 3 ? strtoul(argv[3], NULL, 10) : 65928;
    unsigned batch = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 64;
    int latency = argc > 5 && strcmp(argv[5], "latency") == 0;
    if (slot == 0 || slot > (1u << 20) || batch == 0 || batch > MAX_BATCH ||
        (argc > 5 && !latency) || (latency && (want == 0 || want > 100000000ULL))) {
        fprintf(stderr, "recv_count: bad SLOT_SIZE, BATCH or latency (needs 0 < COUNT)\n");
        return 2;
    }
    /* latency samples: bounded by COUNT, allocated before the clock starts */
    double *lat = latency ? calloc(want, sizeof(double)) : NULL;
    unsigned long long nlat = 0;
    if (latency && lat == NULL) {
        perror("recv_count: calloc");
        return 1;
    }

    struct sockaddr_un addr;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(addr.sun_path)) {
        fprintf(stderr, "recv_count: path longer than sun_path\n");
        return 2;
    }
    strcpy(addr.sun_path, path);

    /* SIGTERM must interrupt recvmmsg: no SA_RESTART. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    uint8_t *buf = malloc(slot * batch);
    if (buf == NULL) {
        perror("recv_count: malloc");
        return 1;
    }
    memset(buf, 0, slot * batch); /* fault the pages in before the clock starts */
    struct mmsghdr msgs[MAX_BATCH];
    struct iovec iov[MAX_BATCH];

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("recv_count: socket");
        return 1;
    }
    int rcvbuf = 64 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    /* bind() creates the file and binds in one step: once the path exists,
     * datagrams sent to it are queued for us. */
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        perror("recv_count: bind");
        return 1;
    }

    unsigned long long got = 0, bytes = 0, trunc = 0, calls = 0;
    double first = 0, last = 0;
    while (!stopping && (want == 0 || got < want)) {
        unsigned k = batch;
        memset(msgs, 0, sizeof(msgs[0]) * k);
        for (unsigned i = 0; i < k; i++) {
            iov[i].iov_base = buf + (size_t)i * slot;
            iov[i].iov_len = slot;
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(fd, msgs, k, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("recv_count: recvmmsg");
            break;
        }
        double t = mono();
        if (got == 0)
            first = t;
        last = t;
        got += (unsigned)n;
        calls++;
        for (int i = 0; i < n; i++) {
            bytes += msgs[i].msg_len;
            if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
                trunc++;
            else if (latency && nlat < want) {
                double at = alert_time(buf + (size_t)i * slot, msgs[i].msg_len);
                if (at >= 0)
                    lat[nlat++] = t - at;
            }
        }
    }
    close(fd);
    unlink(path);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    long hwm = vm_hwm_kb();
    printf("{\"peer\":\"recv_count\",\"received\":%llu,\"bytes\":%llu,\"truncated\":%llu,"
           "\"recvmmsg_calls\":%llu,\"wall_s\":%.6f,\"cpu_user_s\":%.6f,\"cpu_sys_s\":%.6f,"
           "\"maxrss_kb\":%ld",
           got, bytes, trunc, calls, got ? last - first : 0.0, tv_s(ru.ru_utime),
           tv_s(ru.ru_stime), hwm >= 0 ? hwm : ru.ru_maxrss);
    if (latency && nlat > 0) {
        /* nearest-rank percentiles, as naive_recv.py reports them */
        qsort(lat, nlat, sizeof(double), cmp_double);
        unsigned long long i50 = nlat / 2, i99 = (unsigned long long)(0.99 * (double)nlat);
        if (i99 >= nlat)
            i99 = nlat - 1;
        printf(",\"timed\":%llu,\"p50_ms\":%.6f,\"p99_ms\":%.6f,\"max_ms\":%.6f", nlat,
               lat[i50] * 1e3, lat[i99] * 1e3, lat[nlat - 1] * 1e3);
    }
    printf("}\n");
    fflush(stdout);
    free(buf);
    free(lat);
    return 0;
}
