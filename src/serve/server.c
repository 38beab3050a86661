/* The viewer's HTTP server: libmicrohttpd with one thread per connection (fed by the gate,
 * gate.c), request size limits, Host / Origin / Content-Type / token checks, the bounded queue
 * of heavy work, routing to the API and a fixed whitelist of static files. */
#define _DEFAULT_SOURCE /* syscall(SYS_gettid) */
#include "serve_internal.h"

#include <arpa/inet.h>
#include <cblas.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void ats_server_options_init(ats_server_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->host = "127.0.0.1";
    opt->max_body = 65536;
    opt->max_conns = 512;
    opt->cache_entries = 16;
    opt->cache_bytes = (size_t)256 << 20;
    opt->max_conns_per_client = 64;
    opt->request_timeout = 10;
    opt->queue = 8;
    opt->max_image = (size_t)4 << 20;
    opt->work_memory = (size_t)1 << 30;
}

/* The only files the server ever opens, besides the model. */
static const struct {
    const char *url, *file, *type;
} STATIC_FILES[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/style.css", "style.css", "text/css; charset=utf-8"},
};

typedef struct conn_state {
    char *body;
    size_t len;
    int too_large;
    int token_in_url; /* the page came with ?token=: give it the cookie */
} conn_state;

/* ---- heavy work: a bounded queue in front of work_slots slots */

/* The request this thread is answering (one thread per connection): srv_work_begin needs its
 * socket to notice a client that has gone, and srv_status_http whether it was refused, without
 * every API and cache function passing it along. */
typedef struct srv_request {
    struct MHD_Connection *conn;
    int fd;
    int holds_slot;
    int refused; /* srv_work_begin said no: answer 503 */
} srv_request;
static __thread srv_request *current_request;

/* 1 when the client has closed its side (or its connection failed): its answer would be
 * thrown away. */
static int client_gone(const srv_request *rq) {
    if (rq->fd < 0) return 0;
    char c;
    ssize_t k = recv(rq->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

ats_status srv_work_begin(ats_server *srv, ats_error *err) {
    srv_request *rq = current_request;
    if (!rq) return ATS_OK;
    const char *why = NULL;
    pthread_mutex_lock(&srv->work_lock);
    if (srv->stopping)
        why = "the server is stopping";
    else if (client_gone(rq))
        why = "the client has gone";
    else if (!rq->holds_slot && srv->work_running == srv->work_slots &&
             srv->work_waiting >= srv->opt.queue)
        why = "the server is busy: every work slot is taken and the queue is full";
    if (!why && !rq->holds_slot) {
        srv->work_waiting++;
        while (!why && srv->work_running == srv->work_slots) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L; /* look at the client again every 0.1 s */
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&srv->work_cond, &srv->work_lock, &ts);
            if (srv->stopping)
                why = "the server is stopping";
            else if (client_gone(rq))
                why = "the client has gone";
        }
        srv->work_waiting--;
        if (!why) {
            srv->work_running++;
            rq->holds_slot = 1;
            /* heavy work yields the cores to cheap requests (cached analyses, the page): the
             * thread belongs to this one connection and ends with it, so the lowered priority
             * never outlives the work */
            setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
        }
    }
    pthread_mutex_unlock(&srv->work_lock);
    if (!why) return ATS_OK;
    rq->refused = 1;
    return ats_error_set(err, ATS_ERR_RANGE, "%s; try again later", why);
}

int srv_work_cancelled(void *ctx) {
    ats_server *srv = ctx;
    srv_request *rq = current_request;
    if (!rq) return 0;
    int stop = __atomic_load_n(&srv->stopping, __ATOMIC_RELAXED) || client_gone(rq);
    if (stop) rq->refused = 1; /* answered 503, if anyone is still listening */
    return stop;
}

static void work_end(ats_server *srv, srv_request *rq) {
    pthread_mutex_lock(&srv->work_lock);
    if (rq->holds_slot) srv->work_running--;
    rq->holds_slot = 0;
    pthread_cond_broadcast(&srv->work_cond);
    pthread_mutex_unlock(&srv->work_lock);
}

int srv_request_refused(void) {
    return current_request && current_request->refused;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe) {
    conn_state *cs = *con_cls;
    if (cs) {
        free(cs->body);
        free(cs);
        *con_cls = NULL;
    }
}

static enum MHD_Result send_reply(struct MHD_Connection *c, srv_reply *r, int head_only) {
    if (!r->body) srv_reply_error(r, 500, "out of memory");
    struct MHD_Response *resp =
        r->body ? MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) {
        free(r->body);
        r->body = NULL;
        return MHD_NO;
    }
    r->body = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    /* every request passes the gate (gate.c), so none follows on a kept-alive connection */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->status == 405) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, POST");
    if (r->status == 503) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->cookie[0]) MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, r->cookie);
    (void)head_only; /* MHD omits the body of a HEAD response itself */
    enum MHD_Result ret = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void serve_static(ats_server *srv, const char *file, const char *type, srv_reply *r) {
    size_t plen = strlen(srv->web_dir) + strlen(file) + 2;
    char *path = malloc(plen);
    if (!path) {
        srv_reply_error(r, 500, "out of memory");
        return;
    }
    snprintf(path, plen, "%s/%s", srv->web_dir, file);
    ats_error err;
    ats_error_clear(&err);
    char *data;
    size_t len;
    ats_status st = ats_file_read_all(path, (size_t)16 << 20, &data, &len, &err);
    free(path);
    if (st) {
        srv_reply_error(r, 404, "%s is missing from the viewer's files", file);
        return;
    }
    r->body = data;
    r->len = len;
    r->status = 200;
    r->content_type = type;
}

/* 1 when name[len] (a host without its port) is one of: this machine's loopback names, the
 * bound address, or an allowed host. */
static int host_name_allowed(const ats_server *srv, const char *name, size_t len) {
    static const char *const LOOPBACK[] = {"localhost", "127.0.0.1", "::1"};
    for (size_t i = 0; i < sizeof LOOPBACK / sizeof LOOPBACK[0]; i++)
        if (strlen(LOOPBACK[i]) == len && !strncasecmp(name, LOOPBACK[i], len)) return 1;
    return strlen(srv->bound_host) == len && !strncasecmp(name, srv->bound_host, len);
}

/* 1 when hostport[len] ("name", "name:port", "[v6]" or "[v6]:port", as in a Host header or
 * after an Origin's scheme) addresses this server. The allowed hosts match as written (with or
 * without a port); the built-in names need this server's port when a port is given. */
static int host_allowed(const ats_server *srv, const char *hostport, size_t len) {
    if (!len) return 0;
    for (const char *a = srv->allow_hosts; a && *a;) {
        const char *comma = strchr(a, ',');
        size_t alen = comma ? (size_t)(comma - a) : strlen(a);
        if (alen == len && !strncasecmp(a, hostport, len)) return 1;
        const char *colon = memchr(hostport, ':', len);
        if (hostport[0] != '[' && colon && alen == (size_t)(colon - hostport) &&
            !strncasecmp(a, hostport, alen))
            return 1;
        a = comma ? comma + 1 : a + alen;
    }
    const char *name = hostport, *port = NULL;
    size_t nlen = len;
    if (hostport[0] == '[') {
        const char *close = memchr(hostport, ']', len);
        if (!close) return 0;
        name = hostport + 1;
        nlen = (size_t)(close - name);
        if ((size_t)(close + 1 - hostport) < len) {
            if (close[1] != ':') return 0;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(hostport, ':', len);
        if (colon) {
            nlen = (size_t)(colon - hostport);
            port = colon + 1;
        }
    }
    if (port) {
        size_t plen = len - (size_t)(port - hostport);
        char want[8];
        int wl = snprintf(want, sizeof want, "%d", srv->port);
        if (wl < 0 || (size_t)wl != plen || memcmp(port, want, plen)) return 0;
    }
    return host_name_allowed(srv, name, nlen);
}

/* 1 when a[alen] equals the token, in time independent of where they differ. */
static int token_equal(const char *token, const char *a, size_t alen) {
    size_t n = strlen(token);
    unsigned diff = alen != n;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)a[i % (alen ? alen : 1)];
    return alen && !diff;
}

/* Whether the request carries the server's token: ?token=, the cookie, or Authorization. */
static int token_given(const ats_server *srv, struct MHD_Connection *c, int *in_url) {
    *in_url = 0;
    const char *q = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "token");
    if (q && token_equal(srv->token, q, strlen(q))) {
        *in_url = 1;
        return 1;
    }
    const char *k = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, "attnscope_token");
    if (k && token_equal(srv->token, k, strlen(k))) return 1;
    const char *a = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    return a && !strncasecmp(a, "token ", 6) && token_equal(srv->token, a + 6, strlen(a + 6));
}

/* The reason a request may not go on (Host, Origin, Content-Type, token), written into r; 0:
 * fine. */
static int request_refused(const ats_server *srv, struct MHD_Connection *c, const char *method,
                           conn_state *cs, srv_reply *r) {
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!host) {
        srv_reply_error(r, 400, "the request has no Host header");
        return 1;
    }
    if (!host_allowed(srv, host, strlen(host))) {
        srv_reply_error(r, 403,
                        "Host '%.200s' is not this server's address (start it with "
                        "--allow-host for remote use)",
                        host);
        return 1;
    }
    if (srv->token[0] && !token_given(srv, c, &cs->token_in_url)) {
        srv_reply_error(r, 403,
                        "this server needs its token: open the URL it printed at start "
                        "(/?token=...)");
        return 1;
    }
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin) {
        const char *rest = !strncasecmp(origin, "http://", 7)    ? origin + 7
                           : !strncasecmp(origin, "https://", 8) ? origin + 8
                                                                 : NULL;
        size_t rlen = rest ? strcspn(rest, "/") : 0;
        if (!rest || !host_allowed(srv, rest, rlen)) {
            srv_reply_error(r, 403, "requests from the page at Origin '%.200s' are not allowed",
                            origin);
            return 1;
        }
    }
    if (!strcmp(method, "POST")) {
        const char *type =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
        size_t n = strlen("application/json");
        if (!type || strncasecmp(type, "application/json", n) ||
            (type[n] && type[n] != ';' && type[n] != ' ')) {
            srv_reply_error(r, 415,
                            "a POST body must be JSON with Content-Type: "
                            "application/json (got %.100s)",
                            type ? type : "none");
            return 1;
        }
    }
    return 0;
}

/* 1 when the JSON text body[len] holds the escape \u0000 in a string: cJSON would end the C
 * string there and the rest of the text would silently go missing. */
static int json_has_nul_escape(const char *body, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (body[i] != '\\') continue;
        if (body[i + 1] == 'u' && i + 5 < len && !memcmp(body + i + 2, "0000", 4)) return 1;
        i++; /* the escaped character */
    }
    return 0;
}

/* MHD's URL and argument decoding, except that %00 stays as written: a decoded NUL would end
 * the C string early, so "/index.html%00.js" would be served as "/index.html". */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *c, char *s) {
    char *out = s;
    for (const char *in = s; *in;) {
        if (in[0] == '%' && isxdigit((unsigned char)in[1]) && isxdigit((unsigned char)in[2])) {
            char hex[3] = {in[1], in[2], 0};
            long v = strtol(hex, NULL, 16);
            if (v != 0) {
                *out++ = (char)v;
                in += 3;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
    return (size_t)(out - s);
}

static enum MHD_Result query_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value) {
    cJSON *obj = cls;
    if (key && !cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_AddStringToObject(obj, key, value ? value : "");
    return MHD_YES;
}

/* The request's parameters: the JSON body of a POST, else the query string. NULL after
 * filling r with an error. */
static cJSON *request_params(struct MHD_Connection *c, int is_post, const conn_state *cs,
                             srv_reply *r) {
    if (is_post) {
        if (!cs->len) {
            srv_reply_error(r, 400, "the request body is empty (expected a JSON object)");
            return NULL;
        }
        if (memchr(cs->body, '\0', cs->len) || json_has_nul_escape(cs->body, cs->len)) {
            srv_reply_error(r, 400, "the request body holds a NUL character (or \\u0000)");
            return NULL;
        }
        const char *end = NULL;
        cJSON *doc = cJSON_ParseWithLengthOpts(cs->body, cs->len + 1, &end, 1);
        if (!doc) {
            size_t at = end && end >= cs->body ? (size_t)(end - cs->body) : 0;
            srv_reply_error(r, 400, "the request body is not valid JSON (near byte %zu)", at);
            return NULL;
        }
        if (!cJSON_IsObject(doc)) {
            cJSON_Delete(doc);
            srv_reply_error(r, 400, "the request body must be a JSON object");
            return NULL;
        }
        return doc;
    }
    cJSON *obj = cJSON_CreateObject();
    if (!obj) {
        srv_reply_error(r, 500, "out of memory");
        return NULL;
    }
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, query_arg, obj);
    return obj;
}

static void route(ats_server *srv, struct MHD_Connection *c, const char *url, const char *method,
                  const conn_state *cs, srv_reply *r) {
    int is_get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    int is_post = !strcmp(method, "POST");
    if (cs->too_large) {
        srv_reply_error(r, 413, "the request body is larger than %zu bytes", srv->body_limit);
        return;
    }
    for (size_t i = 0; i < sizeof STATIC_FILES / sizeof STATIC_FILES[0]; i++)
        if (!strcmp(url, STATIC_FILES[i].url)) {
            if (!is_get)
                srv_reply_error(r, 405, "%s takes GET", url);
            else
                serve_static(srv, STATIC_FILES[i].file, STATIC_FILES[i].type, r);
            return;
        }
    if (strncmp(url, "/api/", 5)) {
        srv_reply_error(r, 404, "not found");
        return;
    }
    const char *api = url + 5;
    if (!strcmp(api, "info")) {
        if (!is_get)
            srv_reply_error(r, 405, "/api/info takes GET");
        else
            srv_api_info(srv, r);
        return;
    }
    int analyze = !strcmp(api, "analyze"), overview = !strcmp(api, "overview");
    int figure = !strncmp(api, "figure/", 7), sphere = !strcmp(api, "sphere"),
        compare = !strcmp(api, "compare");
    if (!analyze && !overview && !figure && !sphere && !compare) {
        srv_reply_error(r, 404, "no such API: %s", url);
        return;
    }
    if (sphere && !srv->vision) {
        srv_reply_error(r, 404, "/api/sphere needs a vision model (this server holds %s)",
                        srv->m[0].info->model_type);
        return;
    }
    if (compare && srv->n_models < 2) {
        srv_reply_error(r, 404, "/api/compare needs two models (serve --model A --model B)");
        return;
    }
    int post_only = analyze || sphere || compare;
    if ((post_only && !is_post) || (!is_get && !is_post)) {
        srv_reply_error(r, 405, "%s takes %s", url, post_only ? "POST" : "GET or POST");
        return;
    }
    char kind[32], format[8];
    if (figure) {
        const char *name = api + 7, *dot = strrchr(name, '.');
        size_t klen = dot ? (size_t)(dot - name) : 0;
        if (!dot || klen == 0 || klen >= sizeof kind || strlen(dot + 1) >= sizeof format ||
            strchr(name, '/')) {
            srv_reply_error(r, 404, "figures are /api/figure/KIND.png or .svg");
            return;
        }
        memcpy(kind, name, klen);
        kind[klen] = '\0';
        strcpy(format, dot + 1);
    }
    cJSON *req = request_params(c, is_post, cs, r);
    if (!req) return;
    if (analyze)
        srv_api_analyze(srv, req, r);
    else if (sphere)
        srv_api_sphere(srv, req, r);
    else if (compare)
        srv_api_compare(srv, req, r);
    else if (overview)
        srv_api_overview(srv, req, r);
    else
        srv_api_figure(srv, kind, format, req, r);
    cJSON_Delete(req);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls) {
    ats_server *srv = cls;
    conn_state *cs = *con_cls;
    if (!cs) { /* the headers have arrived; the body (if any) comes in the next calls */
        cs = calloc(1, sizeof *cs);
        if (!cs) return MHD_NO;
        *con_cls = cs;
        srv_reply r = {0};
        /* refused before the body is read: MHD then closes the connection without reading it */
        if (request_refused(srv, c, method, cs, &r)) return send_reply(c, &r, 0);
        const char *cl =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            if (v > srv->body_limit) {
                srv_reply_error(&r, 413, "the request body (%llu bytes) is larger than %zu bytes",
                                v, srv->body_limit);
                return send_reply(c, &r, 0);
            }
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (cs->too_large) return MHD_YES; /* drain */
        if (cs->len + n > srv->body_limit) {
            cs->too_large = 1;
            free(cs->body);
            cs->body = NULL;
            cs->len = 0;
            return MHD_YES;
        }
        char *b = realloc(cs->body, cs->len + n + 1);
        if (!b) return MHD_NO;
        memcpy(b + cs->len, upload_data, n);
        cs->body = b;
        cs->len += n;
        b[cs->len] = '\0';
        return MHD_YES;
    }
    srv_reply r = {0};
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    srv_request rq = {c, ci ? ci->connect_fd : -1, 0, 0};
    pthread_mutex_lock(&srv->work_lock);
    srv->in_handler++;
    pthread_mutex_unlock(&srv->work_lock);
    current_request = &rq;
    route(srv, c, url, method, cs, &r);
    current_request = NULL;
    work_end(srv, &rq);
    if (cs->token_in_url && r.status == 200)
        snprintf(r.cookie, sizeof r.cookie, "attnscope_token=%s; Path=/; HttpOnly; SameSite=Strict",
                 srv->token);
    enum MHD_Result ret = send_reply(c, &r, !strcmp(method, "HEAD"));
    pthread_mutex_lock(&srv->work_lock);
    srv->in_handler--;
    pthread_cond_broadcast(&srv->work_cond);
    pthread_mutex_unlock(&srv->work_lock);
    return ret;
}

/* 1 for 127.0.0.0/8 and ::1: only this machine can connect. */
static int host_is_loopback(const struct sockaddr_storage *ss) {
    if (ss->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
    return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static int parse_host(const char *host, int port, struct sockaddr_storage *ss, int *ipv6) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *ipv6 = 0;
        return 1;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *ipv6 = 1;
        return 1;
    }
    return 0;
}

static void server_free(ats_server *srv) {
    if (!srv) return;
    srv_cache_clear(srv);
    free(srv->cache);
    for (size_t k = 0; k < 2; k++) {
        ats_session_close(srv->m[k].session);
        free(srv->m[k].name);
    }
    free(srv->web_dir);
    free(srv->bound_host);
    free(srv->allow_hosts);
    pthread_mutex_destroy(&srv->work_lock);
    pthread_cond_destroy(&srv->work_cond);
    pthread_mutex_destroy(&srv->cache_lock);
    pthread_mutex_destroy(&srv->render_lock);
    free(srv);
}

ats_status ats_server_start(const ats_server_options *opt, ats_server **out, ats_error *err) {
    *out = NULL;
    if (!opt || !opt->model || !opt->web_dir)
        return ats_error_set(err, ATS_ERR_INVALID, "serve: a model and a web folder are needed");
    if (opt->port < 0 || opt->port > 65535)
        return ats_error_set(err, ATS_ERR_INVALID, "serve: port %d is not 0..65535", opt->port);
    struct sockaddr_storage addr;
    int ipv6;
    const char *host = opt->host ? opt->host : "127.0.0.1";
    if (!parse_host(host, opt->port, &addr, &ipv6))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "serve: host '%s' is not a numeric IPv4 or IPv6 address", host);
    size_t plen = strlen(opt->web_dir) + 16;
    char *index = malloc(plen);
    if (!index) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    snprintf(index, plen, "%s/index.html", opt->web_dir);
    int have_index = access(index, R_OK) == 0;
    free(index);
    if (!have_index)
        return ats_error_set(err, ATS_ERR_IO, "serve: %s has no index.html (the viewer's files)",
                             opt->web_dir);

    ats_server *srv = calloc(1, sizeof *srv);
    if (!srv) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    /* Requests run in parallel, so by default every forward pass is single-threaded and as
     * many run at once as there are cores (BLAS and OpenMP threads would only fight over the
     * cores otherwise); with n_threads > 0, one at a time with that many threads. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (opt->n_threads <= 0) openblas_set_num_threads(1); /* once, before any pass (model.h) */
    srv->work_slots = opt->n_threads > 0 ? 1u : (unsigned)(cores > 0 && cores < 256 ? cores : 1);
    pthread_mutex_init(&srv->work_lock, NULL);
    pthread_cond_init(&srv->work_cond, NULL);
    srv->listen_fd = srv->gate_wake[0] = srv->gate_wake[1] = -1;
    pthread_mutex_init(&srv->cache_lock, NULL);
    pthread_mutex_init(&srv->render_lock, NULL);
    srv->opt = *opt;
    if (!srv->opt.max_body) srv->opt.max_body = 65536;
    if (!srv->opt.max_conns) srv->opt.max_conns = 512;
    /* every connection is a socket: leave room under the open-file limit for the model's and
     * the static files */
    struct rlimit nofile;
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY &&
        nofile.rlim_cur < (rlim_t)srv->opt.max_conns + 64)
        srv->opt.max_conns = nofile.rlim_cur > 80 ? (unsigned)(nofile.rlim_cur - 64) : 16;
    if (!srv->opt.cache_entries) srv->opt.cache_entries = 16;
    if (!srv->opt.max_conns_per_client) srv->opt.max_conns_per_client = 64;
    if (!srv->opt.request_timeout) srv->opt.request_timeout = 10;
    srv->opt.token = NULL;
    if (!srv->opt.cache_bytes) srv->opt.cache_bytes = (size_t)256 << 20;
    srv->opt.host = NULL; /* borrowed strings are not kept */
    srv->opt.model = NULL;
    srv->opt.model2 = NULL;
    srv->opt.web_dir = NULL;
    srv->opt.allow_hosts = NULL;
    if (!srv->opt.max_image) srv->opt.max_image = (size_t)4 << 20;
    if (!srv->opt.work_memory) srv->opt.work_memory = (size_t)1 << 30;
    srv->n_models = opt->model2 ? 2 : 1;
    srv->m[0].name = strdup(opt->model);
    srv->m[1].name = opt->model2 ? strdup(opt->model2) : NULL;
    srv->web_dir = strdup(opt->web_dir);
    srv->bound_host = strdup(host);
    srv->allow_hosts = opt->allow_hosts ? strdup(opt->allow_hosts) : NULL;
    srv->cache = calloc(srv->opt.cache_entries, sizeof *srv->cache);
    if (!srv->m[0].name || !srv->web_dir || !srv->bound_host || !srv->cache ||
        (opt->allow_hosts && !srv->allow_hosts) || (opt->model2 && !srv->m[1].name)) {
        server_free(srv);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    if (opt->token) {
        size_t tl = strlen(opt->token);
        int ok = tl < sizeof srv->token;
        for (size_t i = 0; i < tl && ok; i++)
            ok = isalnum((unsigned char)opt->token[i]) || opt->token[i] == '-' ||
                 opt->token[i] == '_';
        if (!ok) {
            server_free(srv);
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "serve: the token must be at most 64 letters, digits, - or _");
        }
        memcpy(srv->token, opt->token, tl + 1);
    } else if (!host_is_loopback(&addr)) {
        /* reachable from other machines: a secret in the URL, as Jupyter does */
        unsigned char rnd[24];
        if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
            server_free(srv);
            return ats_error_set(err, ATS_ERR_IO, "serve: no random bytes for the token");
        }
        for (size_t i = 0; i < sizeof rnd; i++) snprintf(srv->token + 2 * i, 3, "%02x", rnd[i]);
    }
    srv->opt.adapter = NULL; /* read only here */
    ats_status st = ATS_OK;
    for (size_t k = 0; k < srv->n_models && !st; k++) {
        srv_model *m = &srv->m[k];
        /* the adapter is model A's */
        st = ats_session_open_adapted(m->name, k ? NULL : opt->adapter, &m->session, err);
        if (st) break;
        m->model = ats_session_model(m->session);
        m->tok = ats_session_tokenizer(m->session);
        m->info = ats_model_info_get(m->model);
        if (!m->tok && srv->n_models == 2)
            st = ats_error_set(err, ATS_ERR_INVALID,
                               "serve: %s is a vision model; two models are compared on a text, "
                               "so both must be text models",
                               m->name);
        if (!m->tok && m->info->patch_size <= 0)
            st = ats_error_set(err, ATS_ERR_INVALID, "serve: %s has no patch size", m->name);
        size_t max = (size_t)m->info->max_positions,
               tmax = m->tok ? ats_tokenizer_max_length(m->tok) : 0;
        if (tmax && tmax < max) max = tmax;
        if (m->tok && opt->max_tokens && opt->max_tokens < max) max = opt->max_tokens;
        m->max_tokens = max;
    }
    if (st) {
        server_free(srv);
        return st;
    }
    srv->vision = srv->m[0].tok == NULL;
    srv->body_limit = srv->opt.max_body;
    /* an image travels as base64 in a JSON body: 4 characters for every 3 bytes */
    if (srv->vision) srv->body_limit += (srv->opt.max_image + 2) / 3 * 4;

    /* MHD does not listen: the gate accepts and hands over complete requests (gate.c) */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, srv, MHD_OPTION_CONNECTION_LIMIT, srv->opt.max_conns,
        /* the gate caps each address's waiting connections; MHD's own per-address count also
         * holds connections it has answered and not yet reaped, which refused normal clients of
         * a busy address (a reset) under load */
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, srv->opt.max_conns, MHD_OPTION_CONNECTION_TIMEOUT,
        srv->opt.request_timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 << 10),
        MHD_OPTION_NOTIFY_COMPLETED, completed, srv, MHD_OPTION_UNESCAPE_CALLBACK,
        unescape_keep_nul, NULL, MHD_OPTION_END);
    if (!d) {
        server_free(srv);
        return ats_error_set(err, ATS_ERR_IO, "serve: cannot start the HTTP server");
    }
    srv->daemon = d;
    srv->port = opt->port;
    st = srv_gate_start(srv, (struct sockaddr *)&addr,
                        ipv6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in), err);
    if (st) {
        srv_gate_stop(srv);
        MHD_stop_daemon(d);
        srv->daemon = NULL;
        server_free(srv);
        if (err)
            ats_error_set(err, ATS_ERR_IO, "serve: cannot listen on %s port %d (in use?)", host,
                          opt->port);
        return ATS_ERR_IO;
    }
    *out = srv;
    return ATS_OK;
}

const char *ats_server_token(const ats_server *srv) {
    return srv ? srv->token : "";
}

int ats_server_port(const ats_server *srv) {
    return srv ? srv->port : 0;
}

int ats_server_stop_within(ats_server *srv, unsigned timeout_ms) {
    if (!srv) return 1;
    srv_gate_stop(srv); /* no new connections */
    pthread_mutex_lock(&srv->work_lock);
    srv->stopping = 1; /* queued work gives up, running work at its next step */
    pthread_cond_broadcast(&srv->work_cond);
    double end = srv_now_ms() + timeout_ms;
    while (srv->in_handler && srv_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->work_cond, &srv->work_lock, &ts);
    }
    unsigned busy = srv->in_handler;
    pthread_mutex_unlock(&srv->work_lock);
    if (busy) return 0;
    if (srv->daemon) MHD_stop_daemon(srv->daemon);
    srv->daemon = NULL;
    server_free(srv);
    return 1;
}

void ats_server_stop(ats_server *srv) {
    ats_server_stop_within(srv, ~0u);
}
