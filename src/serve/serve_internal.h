/* Internals of the viewer server: the server handle, the cache of forward passes, the API. */
#ifndef ATS_SERVE_INTERNAL_H
#define ATS_SERVE_INTERNAL_H

#include "attnscope/analysis.h"
#include "attnscope/core.h"
#include "attnscope/model.h"
#include "attnscope/serve.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/socket.h>

#include "attnscope/rips.h"

/* The analysis of one head of one text under one measure, which does not depend on the
 * threshold: cached with its text so that moving the threshold slider redoes only the complex. */
typedef struct srv_head {
    long layer, head;
    int measure, max_dim;
    size_t n;
    double *matrix; /* [n][n] the measure */
    double *lower;  /* [n(n-1)/2] the symmetrised measure, the metric of the Rips filtration */
    double *layout; /* [n][3] force layout at the median distance */
    double dmin, dmax, median;
    ats_rips_result rips; /* H0..H(max_dim), with H1 cycles */
    unsigned refs;
    unsigned long long used;
} srv_head;

#define SRV_HEADS_PER_TEXT 6

/* One input's forward pass, shared by the requests that use it (reference counted): a text,
 * or for a vision model the bytes of an image file. */
typedef struct srv_text {
    int model;  /* 0: model A, 1: model B (srv->m) */
    char *text; /* the UTF-8 text (or the image file's bytes), NUL-terminated */
    size_t len;
    size_t L, H, n;
    float *att;    /* [L][H][n][n] */
    size_t bytes;  /* of att */
    char **labels; /* [n] what each token covers in the text ("[CLS]" for specials); for an
                      image "[CLS]" and "p(r,c)", the patch at grid row r, column c */
    int causal;    /* the model is causal */
    /* the overview grids, computed on first request (under the cache lock) */
    double *ov_entropy; /* [L][H] mean row entropy, bits; NULL until computed */
    double *ov_h1;      /* [L][H] total finite H1 persistence of the JS-distance metric */
    srv_head *heads[SRV_HEADS_PER_TEXT]; /* recently analysed heads (under the cache lock) */
    unsigned refs;                       /* requests using it, plus one while it is in the cache */
    unsigned long long used;
} srv_text;

/* A model the server holds: a session (analysis.h) and what is borrowed from it. */
typedef struct srv_model {
    ats_session *session;
    ats_model *model;
    ats_tokenizer *tok; /* NULL for a vision model */
    const ats_model_info *info;
    char *name;        /* as given on the command line */
    size_t max_tokens; /* longest text in tokens */
} srv_model;

/* Answers kept whole (/api/sphere, /api/compare): the request's key (its endpoint, parameters
 * and input bytes) and the JSON body, the least recently used dropped beyond SRV_MEMO_ENTRIES
 * or SRV_MEMO_BYTES. */
#define SRV_MEMO_ENTRIES 16
#define SRV_MEMO_BYTES   ((size_t)64 << 20)
typedef struct srv_memo {
    char *key, *body;
    size_t key_len, body_len;
    unsigned long long used;
} srv_memo;

struct ats_server {
    void *daemon;      /* struct MHD_Daemon * */
    srv_model m[2];    /* model A, and model B when n_models is 2 */
    size_t n_models;   /* 1 or 2 */
    int vision;        /* model A is a ViT: requests carry images, not texts */
    size_t body_limit; /* the largest request body: max_body, plus an image's base64 (vision) */
    char *web_dir;
    char *bound_host;  /* the numeric address bound, as given */
    char *allow_hosts; /* opt.allow_hosts, copied; NULL: none */
    ats_server_options opt;
    size_t max_tokens;
    int port;
    /* the gate (gate.c): the listening socket, its thread, and a pipe that wakes it to stop */
    int listen_fd;
    int gate_wake[2];
    pthread_t gate_thread;
    int gate_running;
    char token[65]; /* required on every request when not empty (opt.token or random) */
    /* heavy work (forward passes, analyses): at most work_slots run at once and opt.queue
     * wait; the rest are refused with 503 (srv_work_begin) */
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    unsigned work_slots, work_running, work_waiting;
    unsigned in_handler;         /* requests being answered (under work_lock) */
    int stopping;                /* ats_server_stop has begun (under work_lock) */
    pthread_mutex_t cache_lock;  /* the cache and reference counts */
    pthread_mutex_t render_lock; /* cairo/pango figures one at a time */
    srv_text **cache;            /* [opt.cache_entries] */
    size_t cache_count;
    srv_memo memo[SRV_MEMO_ENTRIES]; /* under the cache lock */
    unsigned long long clock;
};

/* The text's forward pass, from the cache or computed now (*cached says which; *forward_ms the
 * time of the forward pass, 0 when cached). Release with srv_text_release. Errors: invalid
 * UTF-8, an empty text, too many tokens (ATS_ERR_INVALID / ATS_ERR_RANGE). */
ats_status srv_text_get(ats_server *srv, int model, const char *text, size_t len, srv_text **out,
                        int *cached, double *forward_ms, ats_error *err);
void srv_text_release(ats_server *srv, srv_text *t);
/* Drops one reference to a head analysis (under the cache lock), freeing it at zero. */
void srv_head_release(ats_server *srv, srv_head *h);
/* Frees a head analysis (no references left). */
void srv_head_free(srv_head *h);
/* Empties the cache and the kept answers (at shutdown, when no request is running). */
void srv_cache_clear(ats_server *srv);
/* A copy of the answer kept for key[key_len] (malloc'd, *len bytes), or NULL. */
char *srv_memo_get(ats_server *srv, const char *key, size_t key_len, size_t *len);
/* Keeps a copy of body[len] as the answer for key[key_len] (nothing when out of memory). */
void srv_memo_put(ats_server *srv, const char *key, size_t key_len, const char *body, size_t len);

/* The gate (gate.c): binds addr, then accepts connections on its own thread and hands each to
 * MHD (srv->daemon) once its request has arrived. */
ats_status srv_gate_start(ats_server *srv, const struct sockaddr *addr, socklen_t alen,
                          ats_error *err);
/* Stops the gate's thread and closes the listening socket (connections not handed over are
 * closed). */
void srv_gate_stop(ats_server *srv);

/* Heavy work (server.c). A request's thread calls srv_work_begin before each heavy step (a
 * forward pass, a head's analysis, a layer of the overview): the first call claims one of the
 * work slots, kept until the request ends, waiting in the bounded queue when all are taken;
 * every call checks that the work is still wanted. Errors (the request is then answered 503
 * with Retry-After, see srv_status_http): the queue is full, the server is stopping, or the
 * client has closed its connection (ATS_ERR_RANGE, naming which). Outside a request (no
 * connection on this thread) it does nothing. */
ats_status srv_work_begin(ats_server *srv, ats_error *err);
/* An ats_cancel_fn (core.h) for the heavy work of the request this thread is answering (ctx:
 * the server): 1 when the server is stopping or the client has closed its connection, and the
 * request is then answered 503 like a refused one. Outside a request, 0. */
int srv_work_cancelled(void *ctx);
/* 1 when srv_work_begin refused the request this thread is answering. */
int srv_request_refused(void);

/* Milliseconds of a monotonic clock. */
double srv_now_ms(void);

/* An HTTP answer: status and a malloc'd body. */
typedef struct srv_reply {
    unsigned status;
    char *body;
    size_t len;
    const char *content_type;
    char cookie[192]; /* a Set-Cookie value, when not empty */
} srv_reply;

/* Fills reply with {"error": message} and the status. */
void srv_reply_error(srv_reply *r, unsigned status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The HTTP status for a failed library call: 503 when srv_work_begin refused this thread's
 * request, else 400 for bad input, 500 otherwise. */
unsigned srv_status_http(ats_status st);

/* The API. req is a JSON object of parameters (from the body, or built from the query string
 * with every value a string). Each fills reply (a JSON body, or figure bytes). */
void srv_api_info(ats_server *srv, srv_reply *reply);
void srv_api_analyze(ats_server *srv, const cJSON *req, srv_reply *reply);
void srv_api_overview(ats_server *srv, const cJSON *req, srv_reply *reply);
void srv_api_figure(ats_server *srv, const char *kind, const char *format, const cJSON *req,
                    srv_reply *reply);
/* A vision model: the attention graph of the image's patches on a Fibonacci sphere (ats_vision),
 * as `attnscope vision --sphere` writes it in vision.json. */
void srv_api_sphere(ats_server *srv, const cJSON *req, srv_reply *reply);
/* Two models: every head of A against every head of B on one text (ats_compare_models), as
 * `attnscope compare --model A --model B --json` writes it. */
void srv_api_compare(ats_server *srv, const cJSON *req, srv_reply *reply);

#endif
