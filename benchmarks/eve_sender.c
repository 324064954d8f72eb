/*
 * eve_sender.c - feed EVE lines to a Unix socket as fast as the reader takes
 * them (compiled at run time by benchmarks/bench_eve.py).
 *
 *   eve_sender stream PATH CORPUS COUNT        one connection, write(2) loop
 *   eve_sender dgram  PATH CORPUS COUNT [live [RATE]]
 *                                              sendmmsg, 64 datagrams a call;
 *                                              "live": MSG_DONTWAIT and count
 *                                              EAGAIN as dropped, like Suricata,
 *                                              offering RATE events/s (0: flat out)
 * CORPUS is newline-terminated lines, sent round-robin until COUNT lines.
 * Prints "sent=N dropped=D seconds=S".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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
    if (argc < 5) {
        fprintf(stderr, "usage: %s stream|dgram PATH CORPUS COUNT [live]\n", argv[0]);
        return 2;
    }
    int dgram = strcmp(argv[1], "dgram") == 0;
    int live = argc > 5 && strcmp(argv[5], "live") == 0;
    double rate = argc > 6 ? atof(argv[6]) : 0;
    long count = atol(argv[4]);
    FILE *f = fopen(argv[3], "rb");
    if (!f) { perror("corpus"); return 1; }
    struct stat st;
    fstat(fileno(f), &st);
    char *buf = malloc(st.st_size);
    if (fread(buf, 1, st.st_size, f) != (size_t)st.st_size) { perror("read"); return 1; }
    fclose(f);
    /* line table */
    long nl = 0;
    for (off_t i = 0; i < st.st_size; i++) nl += buf[i] == '\n';
    char **line = malloc(nl * sizeof(char *));
    size_t *len = malloc(nl * sizeof(size_t));
    long k = 0;
    for (char *p = buf; p < buf + st.st_size;) {
        char *e = memchr(p, '\n', buf + st.st_size - p);
        line[k] = p;
        len[k] = e - p + 1;
        k++;
        p = e + 1;
    }
    int fd = socket(AF_UNIX, dgram ? SOCK_DGRAM : SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, argv[2], sizeof(sa.sun_path) - 1);
    for (int tries = 0; connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0; tries++) {
        if (tries > 200) { perror("connect"); return 1; }
        usleep(50000);
    }
    long sent = 0, dropped = 0;
    double t0 = now();
    if (!dgram) {
        /* whole corpus copies, then the remaining lines */
        while (sent < count) {
            long left = count - sent;
            size_t n = left >= nl ? (size_t)st.st_size : (size_t)(line[left - 1] + len[left - 1] - buf);
            long lines = left >= nl ? nl : left;
            for (size_t off = 0; off < n;) {
                ssize_t w = write(fd, buf + off, n - off);
                if (w < 0) { if (errno == EINTR) continue; perror("write"); return 1; }
                off += w;
            }
            sent += lines;
        }
    } else {
        enum { B = 64 };
        struct mmsghdr m[B];
        struct iovec iov[B];
        long next = 0;
        while (sent + dropped < count) {
            if (rate > 0) { /* pace: never ahead of the offered rate */
                double ahead = (sent + dropped) / rate - (now() - t0);
                if (ahead > 0) {
                    struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
                    nanosleep(&ts, NULL);
                }
            }
            int b = 0;
            for (; b < B && sent + dropped + b < count; b++) {
                long i = (next + b) % nl;
                iov[b].iov_base = line[i];
                iov[b].iov_len = len[i];
                memset(&m[b], 0, sizeof(m[b]));
                m[b].msg_hdr.msg_iov = &iov[b];
                m[b].msg_hdr.msg_iovlen = 1;
            }
            int r = sendmmsg(fd, m, b, live ? MSG_DONTWAIT : 0);
            if (r < 0) {
                if (errno == EAGAIN && live) { dropped++; next++; continue; } /* Suricata drops it */
                if (errno == EINTR || errno == EAGAIN) continue;
                perror("sendmmsg");
                return 1;
            }
            sent += r;
            next += r;
        }
    }
    double t = now() - t0;
    close(fd);
    printf("sent=%ld dropped=%ld seconds=%.6f\n", sent, dropped, t);
    return 0;
}
