/* libFuzzer target: HTTP requests to the viewer's server (attnscope serve) and the API's
 * parameters: the request line, headers, bodies, query strings and JSON parameters, all through
 * the gate (src/serve/gate.c), MHD and the API, as a client sends them.
 *
 * A server on the tiny BERT fixture with the GPT-2 fixture as model B (tests/fixtures/models/bert
 * and gpt2, the viewer's files in web/: /api/compare and "model": 2 are reachable) and one on the
 * ViT fixture (images, /api/sphere) listen on 127.0.0.1 for the whole run; an input that starts
 * with "@VIT@" goes to the ViT's server (without those 5 bytes), any other to the text models'.
 * Each input is sent on a new connection as it is and
 * the answer read until the server closes (every answer carries Connection: close). The input
 * "@PORT@" is replaced by the server's port, so seeds can carry a valid Host. An answer must be
 * an HTTP status line; a crash, a leak, a sanitizer report or a hang is a bug. Built with
 * -DATS_FUZZ=ON (tools/fuzz.sh, from the repository's root). */
#define _GNU_SOURCE /* memmem */
#include "attnscope/serve.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ats_server *text_srv, *vit_srv;

static void stop_servers(void) {
    ats_server_stop(text_srv);
    ats_server_stop(vit_srv);
}

static ats_server *start(const char *model, const char *model2) {
    ats_server_options opt;
    ats_server_options_init(&opt);
    opt.model = model;
    opt.model2 = model2;
    opt.web_dir = "web";
    opt.request_timeout = 1; /* an unfinished request costs a second, not a hang */
    opt.n_threads = 1;
    opt.max_image = 65536;
    ats_server *s = NULL;
    ats_error err;
    if (ats_server_start(&opt, &s, &err) != ATS_OK) {
        fprintf(stderr, "fuzz_http: %s (run from the repository's root)\n", err.message);
        abort();
    }
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!text_srv) {
        text_srv = start("tests/fixtures/models/bert", "tests/fixtures/models/gpt2");
        vit_srv = start("tests/fixtures/models/vit", NULL);
        atexit(stop_servers);
    }
    ats_server *srv = text_srv;
    if (size >= 5 && !memcmp(data, "@VIT@", 5)) {
        srv = vit_srv;
        data += 5;
        size -= 5;
    }
    char port[16];
    int plen = snprintf(port, sizeof port, "%d", ats_server_port(srv));
    /* the input with @PORT@ replaced */
    char *req = malloc(size * 2 + 16);
    if (!req) return 0;
    size_t n = 0;
    for (size_t i = 0; i < size;) {
        if (size - i >= 6 && !memcmp(data + i, "@PORT@", 6)) {
            memcpy(req + n, port, (size_t)plen);
            n += (size_t)plen;
            i += 6;
        } else {
            req[n++] = (char)data[i++];
        }
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)ats_server_port(srv))};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        (void)!send(fd, req, n, MSG_NOSIGNAL);
        /* without the end of the headers the request cannot be complete: shutting our side
         * makes the gate answer at once instead of at the deadline (a complete request keeps
         * the side open, or its work would be dropped as that of a client that has gone) */
        if (!memmem(req, n, "\r\n\r\n", 4) && !memmem(req, n, "\n\n", 2)) shutdown(fd, SHUT_WR);
        char buf[4096], first[16] = "";
        ssize_t k;
        size_t got = 0;
        while ((k = recv(fd, buf, sizeof buf, 0)) > 0) {
            if (got < sizeof first - 1) {
                size_t c = (size_t)k < sizeof first - 1 - got ? (size_t)k : sizeof first - 1 - got;
                memcpy(first + got, buf, c);
                first[got + c] = '\0';
            }
            got += (size_t)k;
        }
        /* the server answers every request it has read, or closes a connection whose client
         * stopped sending (an empty answer) */
        if (got && strncmp(first, "HTTP/1.", 7)) abort();
    }
    if (fd >= 0) close(fd);
    free(req);
    return 0;
}
