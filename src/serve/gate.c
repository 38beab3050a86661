/* The server's gate: accepts connections itself and hands one to libmicrohttpd only once its
 * request has fully arrived (request line, headers and a small body), within a deadline.
 *
 * Why not let MHD accept: with one thread per connection, a client that sends a header line
 * every few seconds (slowloris) holds a thread for as long as it likes, since MHD's timeout only
 * counts idle time; and MHD closes a request line it cannot parse without answering, or waits
 * for one that holds control bytes. Here a single thread polls every waiting connection,
 * looking at the bytes without consuming them (MSG_PEEK; SO_RCVLOWAT makes poll wake only when
 * more bytes than already seen have arrived), so waiting clients cost a socket each and no
 * thread; a malformed request line is answered 400 as soon as its first wrong byte arrives; a
 * request not complete within the deadline gets 408; and no client address may hold more than
 * max_conns_per_client connections waiting. Responses carry "Connection: close" (server.c), so
 * every request passes the gate. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "serve_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#define GATE_HEADER_MAX 16384       /* request line and headers */
#define GATE_BODY_WAIT  (256 << 10) /* bodies up to this are awaited here too */

typedef struct gate_conn {
    int fd;
    struct sockaddr_storage addr;
    socklen_t alen;
    double since; /* ms, srv_now_ms */
    size_t seen;  /* bytes already looked at */
} gate_conn;

/* Answers status with a one-line JSON error and closes fd. */
static void gate_refuse(int fd, unsigned status, const char *reason, const char *msg) {
    char body[256], head[256];
    int blen = snprintf(body, sizeof body, "{\"error\":\"%s\"}", msg);
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %d\r\nConnection: close\r\n%s\r\n",
                        status, reason, blen, status == 503 ? "Retry-After: 1\r\n" : "");
    if (hlen > 0 && blen > 0) {
        (void)!send(fd, head, (size_t)hlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)!send(fd, body, (size_t)blen, MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    shutdown(fd, SHUT_WR);
    close(fd);
}

static int same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b) {
    if (a->ss_family != b->ss_family) return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                       &((const struct sockaddr_in6 *)b)->sin6_addr, sizeof(struct in6_addr));
    return 0;
}

/* How far buf[n] is a valid start of "METHOD SP target SP HTTP/1.x CRLF": -1 malformed, 0 not
 * complete yet, else the length of the line with its line end. */
static long request_line_check(const char *buf, size_t n) {
    size_t i = 0;
    while (i < n && buf[i] >= 'A' && buf[i] <= 'Z' && i < 16) i++;
    if (i == n) return 0;
    if (i == 0 || buf[i] != ' ') return -1;
    size_t t = ++i;
    while (i < n && (unsigned char)buf[i] > 0x20 && (unsigned char)buf[i] < 0x7f) i++;
    if (i == n) return i - t > GATE_HEADER_MAX ? -1 : 0;
    if (i == t || buf[i] != ' ') return -1;
    static const char VERSION[] = "HTTP/1.";
    i++;
    for (size_t k = 0; k < sizeof VERSION - 1; k++, i++) {
        if (i == n) return 0;
        if (buf[i] != VERSION[k]) return -1;
    }
    if (i == n) return 0;
    if (buf[i] != '0' && buf[i] != '1') return -1;
    if (++i == n) return 0;
    if (buf[i] == '\r' && ++i == n) return 0;
    if (buf[i] != '\n') return -1;
    return (long)(i + 1);
}

/* The value of Content-Length in the headers buf[n] (ULLONG_MAX: none or unreadable). */
static unsigned long long content_length(const char *buf, size_t n) {
    static const char NAME[] = "\ncontent-length:";
    size_t k = sizeof NAME - 1;
    for (size_t i = 0; i + k < n; i++)
        if (!strncasecmp(buf + i, NAME, k)) {
            unsigned long long v = 0;
            size_t j = i + k;
            while (j < n && (buf[j] == ' ' || buf[j] == '\t')) j++;
            if (j == n || buf[j] < '0' || buf[j] > '9') return ~0ull;
            for (; j < n && buf[j] >= '0' && buf[j] <= '9' && v < (1ull << 40); j++)
                v = v * 10 + (unsigned long long)(buf[j] - '0');
            return v;
        }
    return ~0ull;
}

enum { GATE_WAIT, GATE_PASS, GATE_DONE };

/* Looks at what c has sent so far: GATE_PASS when the request is complete (or its body too
 * large to wait for), GATE_DONE when c was answered or has gone (fd closed), else GATE_WAIT
 * with SO_RCVLOWAT set to wake the poll only when more has come. */
static int gate_inspect(gate_conn *c, char *buf, size_t cap) {
    ssize_t got = recv(c->fd, buf, cap, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        close(c->fd); /* the client has gone */
        return GATE_DONE;
    }
    if (got < 0) return GATE_WAIT;
    size_t n = (size_t)got;
    if (n == c->seen) {
        /* poll woke with nothing new (SO_RCVLOWAT): the client shut its side, and the request
         * can never be completed */
        gate_refuse(c->fd, 400, "Bad Request", "the request ended before it was complete");
        return GATE_DONE;
    }
    long line = request_line_check(buf, n);
    if (line < 0) {
        gate_refuse(c->fd, 400, "Bad Request", "malformed request line");
        return GATE_DONE;
    }
    size_t want = n; /* wake when more than this has arrived */
    const char *end = NULL;
    if (line > 0)
        for (size_t i = (size_t)line - 1; i + 1 < n && !end; i++) {
            if (buf[i] == '\n' && buf[i + 1] == '\n') end = buf + i + 2;
            if (buf[i] == '\n' && buf[i + 1] == '\r' && i + 2 < n && buf[i + 2] == '\n')
                end = buf + i + 3;
        }
    if (!end) {
        if (n >= GATE_HEADER_MAX) {
            gate_refuse(c->fd, 431, "Request Header Fields Too Large",
                        "the request line and headers are larger than 16384 bytes");
            return GATE_DONE;
        }
    } else {
        size_t head = (size_t)(end - buf);
        unsigned long long body = content_length(buf, head);
        /* no body, or one too large to wait for here: MHD reads it (and refuses it when over
         * max_body before reading it). Waiting here means peeking, so the whole request must
         * fit the socket's receive buffer (about half of SO_RCVBUF holds data): a larger one
         * (an image for a vision model) could never be seen whole, and was refused as cut
         * short */
        size_t fits = cap;
        int rcvbuf = 0;
        socklen_t rlen = sizeof rcvbuf;
        if (!getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &rlen) && rcvbuf > 0 &&
            (size_t)rcvbuf / 2 < fits)
            fits = (size_t)rcvbuf / 2;
        if (body == ~0ull || head + body > fits || head + body <= n) return GATE_PASS;
        want = head + (size_t)body - 1; /* wake when all of it is there */
    }
    c->seen = n;
    int low = (int)(want + 1);
    setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &low, sizeof low);
    return GATE_WAIT;
}

static void gate_pass(ats_server *srv, gate_conn *c) {
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &one, sizeof one);
    /* MHD closes the socket itself when it cannot take it (connection limits) */
    if (MHD_add_connection(srv->daemon, c->fd, (const struct sockaddr *)&c->addr, c->alen) !=
        MHD_YES)
        return;
}

static void *gate_main(void *arg) {
    ats_server *srv = arg;
    size_t max = srv->opt.max_conns;
    size_t cap = GATE_HEADER_MAX + GATE_BODY_WAIT;
    gate_conn *conns = calloc(max, sizeof *conns);
    struct pollfd *pfd = calloc(max + 2, sizeof *pfd);
    char *buf = malloc(cap);
    size_t count = 0;
    double deadline_ms = 1000.0 * srv->opt.request_timeout;
    while (conns && pfd && buf) {
        pfd[0] = (struct pollfd){.fd = srv->gate_wake[0], .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = srv->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < count; i++)
            pfd[i + 2] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
        int ready = poll(pfd, count + 2, 250);
        if (ready < 0 && errno != EINTR) break;
        if (pfd[0].revents) break; /* ats_server_stop */
        double now = srv_now_ms();
        /* requests that have arrived, clients gone, malformed lines; then the deadline */
        for (size_t i = count; i-- > 0;) {
            int state = GATE_WAIT;
            if (ready > 0 && pfd[i + 2].revents) state = gate_inspect(&conns[i], buf, cap);
            if (state == GATE_WAIT && now - conns[i].since > deadline_ms) {
                gate_refuse(conns[i].fd, 408, "Request Timeout",
                            "the request did not arrive in time");
                state = GATE_DONE;
            }
            if (state == GATE_PASS) gate_pass(srv, &conns[i]);
            if (state != GATE_WAIT) conns[i] = conns[--count];
        }
        if (ready > 0 && pfd[1].revents) {
            for (;;) {
                gate_conn c = {.alen = sizeof c.addr};
                c.fd = accept4(srv->listen_fd, (struct sockaddr *)&c.addr, &c.alen,
                               SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (c.fd < 0) break;
                c.since = now;
                unsigned same = 0;
                for (size_t i = 0; i < count; i++) same += same_address(&conns[i].addr, &c.addr);
                if (count == max) {
                    gate_refuse(c.fd, 503, "Service Unavailable",
                                "too many connections are waiting");
                } else if (same >= srv->opt.max_conns_per_client) {
                    gate_refuse(c.fd, 429, "Too Many Requests",
                                "too many connections from this address");
                } else {
                    conns[count++] = c;
                    /* it may have sent everything already */
                    int state = gate_inspect(&conns[count - 1], buf, cap);
                    if (state == GATE_PASS) gate_pass(srv, &conns[count - 1]);
                    if (state != GATE_WAIT) count--;
                }
            }
        }
    }
    for (size_t i = 0; i < count; i++) close(conns[i].fd);
    free(conns);
    free(pfd);
    free(buf);
    return NULL;
}

ats_status srv_gate_start(ats_server *srv, const struct sockaddr *addr, socklen_t alen,
                          ats_error *err) {
    srv->listen_fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (srv->listen_fd < 0) return ats_error_set(err, ATS_ERR_IO, "serve: cannot create a socket");
    int one = 1;
    setsockopt(srv->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (addr->sa_family == AF_INET6)
        setsockopt(srv->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(srv->listen_fd, addr, alen) != 0 || listen(srv->listen_fd, 128) != 0)
        return ats_error_set(err, ATS_ERR_IO, "serve: cannot listen on port %d: %s", srv->opt.port,
                             strerror(errno));
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(srv->listen_fd, (struct sockaddr *)&bound, &blen) == 0)
        srv->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    if (pipe2(srv->gate_wake, O_CLOEXEC) != 0)
        return ats_error_set(err, ATS_ERR_IO, "serve: cannot create a pipe");
    if (pthread_create(&srv->gate_thread, NULL, gate_main, srv) != 0) {
        close(srv->gate_wake[0]);
        close(srv->gate_wake[1]);
        srv->gate_wake[0] = srv->gate_wake[1] = -1;
        return ats_error_set(err, ATS_ERR_IO, "serve: cannot start a thread");
    }
    srv->gate_running = 1;
    return ATS_OK;
}

void srv_gate_stop(ats_server *srv) {
    if (srv->gate_running) {
        (void)!write(srv->gate_wake[1], "x", 1);
        pthread_join(srv->gate_thread, NULL);
        srv->gate_running = 0;
        close(srv->gate_wake[0]);
        close(srv->gate_wake[1]);
    }
    if (srv->listen_fd >= 0) close(srv->listen_fd);
    srv->listen_fd = -1;
}
