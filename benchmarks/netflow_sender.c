/*
 * netflow_sender.c - replay an IPFIX/NetFlow export over UDP to 127.0.0.1
 * faster than Python can (compiled at run time by benchmarks/bench_netflow.py).
 *
 *   netflow_sender PORT FILE COUNT RATE
 *
 * FILE holds datagrams, each a 4-byte big-endian length and its bytes: the
 * first is the template, sent once first; the others are cycled for COUNT
 * data datagrams, sendmmsg 64 at a time (fewer at the end), paced so that
 * the sender is never ahead of RATE datagrams/s (0: as fast as it can).
 * A send the kernel refuses for lack of buffer (ENOBUFS, EAGAIN) is retried:
 * every datagram leaves this process; what the receiver keeps is its own
 * business.  Prints "sent=N seconds=S" (S from the first send to the last).
 * A benchmark tool, not part of ingest: no input but the file we write.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s PORT FILE COUNT RATE\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long count = atol(argv[3]);
    double rate = atof(argv[4]);
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror("file"); return 1; }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) { perror("stat"); return 1; }
    uint8_t *buf = malloc(st.st_size ? st.st_size : 1);
    if (!buf || fread(buf, 1, st.st_size, f) != (size_t)st.st_size) { perror("read"); return 1; }
    fclose(f);
    long n = 0;
    for (off_t o = 0; o + 4 <= st.st_size; n++) {
        uint32_t len = (uint32_t)buf[o] << 24 | buf[o + 1] << 16 | buf[o + 2] << 8 | buf[o + 3];
        if (len > 65507 || o + 4 + (off_t)len > st.st_size) { fprintf(stderr, "bad file\n"); return 1; }
        o += 4 + len;
    }
    if (n < 2) { fprintf(stderr, "need a template and a data datagram\n"); return 1; }
    struct iovec *pk = calloc(n, sizeof *pk);
    if (!pk) return 1;
    off_t o = 0;
    for (long i = 0; i < n; i++) {
        uint32_t len = (uint32_t)buf[o] << 24 | buf[o + 1] << 16 | buf[o + 2] << 8 | buf[o + 3];
        pk[i].iov_base = buf + o + 4;
        pk[i].iov_len = len;
        o += 4 + len;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int sndbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) { perror("connect"); return 1; }
    double t0 = now();
    while (send(fd, pk[0].iov_base, pk[0].iov_len, 0) < 0) {
        if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) { perror("send"); return 1; }
    }
    enum { B = 64 };
    struct mmsghdr m[B];
    long sent = 0, ndata = n - 1;
    while (sent < count) {
        if (rate > 0) { /* never ahead of the offered rate */
            double ahead = sent / rate - (now() - t0);
            if (ahead > 0) {
                struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
                nanosleep(&ts, NULL);
            }
        }
        int b = 0;
        for (; b < B && sent + b < count; b++) {
            memset(&m[b], 0, sizeof m[b]);
            m[b].msg_hdr.msg_iov = &pk[1 + (sent + b) % ndata];
            m[b].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(fd, m, b, 0);
        if (r < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR || errno == ECONNREFUSED)
                continue; /* (ECONNREFUSED: an ICMP error of an earlier datagram, reported here) */
            perror("sendmmsg");
            return 1;
        }
        sent += r;
    }
    printf("sent=%ld seconds=%.6f\n", sent, now() - t0);
    close(fd);
    return 0;
}
