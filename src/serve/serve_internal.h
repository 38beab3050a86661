/* Internals of the viewer server: the server handle, the cache of forward passes, the API. */
#ifndef ATS_SERVE_INTERNAL_H
#define ATS_SERVE_INTERNAL_H

#include "attnscope/core.h"
#include "attnscope/model.h"
#include "attnscope/serve.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <semaphore.h>

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

/* One text's forward pass, shared by the requests that use it (reference counted). */
typedef struct srv_text {
    char *text; /* the UTF-8 text, NUL-terminated */
    size_t len;
    size_t L, H, n;
    float *att;    /* [L][H][n][n] */
    size_t bytes;  /* of att */
    char **labels; /* [n] what each token covers in the text ("[CLS]" for specials) */
    int causal;    /* the model is causal */
    /* the overview grids, computed on first request (under the cache lock) */
    double *ov_entropy; /* [L][H] mean row entropy, bits; NULL until computed */
    double *ov_h1;      /* [L][H] total finite H1 persistence of the JS-distance metric */
    srv_head *heads[SRV_HEADS_PER_TEXT]; /* recently analysed heads (under the cache lock) */
    unsigned refs;                       /* requests using it, plus one while it is in the cache */
    unsigned long long used;
} srv_text;

struct ats_server {
    void *daemon; /* struct MHD_Daemon * */
    ats_model *model;
    ats_tokenizer *tok;
    const ats_model_info *info;
    char *model_name;
    char *web_dir;
    char *bound_host;  /* the numeric address bound, as given */
    char *allow_hosts; /* opt.allow_hosts, copied; NULL: none */
    ats_server_options opt;
    size_t max_tokens;
    int port;
    sem_t forward_slots;         /* forward passes that may run at once */
    pthread_mutex_t cache_lock;  /* the cache and reference counts */
    pthread_mutex_t render_lock; /* cairo/pango figures one at a time */
    srv_text **cache;            /* [opt.cache_entries] */
    size_t cache_count;
    unsigned long long clock;
};

/* The text's forward pass, from the cache or computed now (*cached says which; *forward_ms the
 * time of the forward pass, 0 when cached). Release with srv_text_release. Errors: invalid
 * UTF-8, an empty text, too many tokens (ATS_ERR_INVALID / ATS_ERR_RANGE). */
ats_status srv_text_get(ats_server *srv, const char *text, size_t len, srv_text **out, int *cached,
                        double *forward_ms, ats_error *err);
void srv_text_release(ats_server *srv, srv_text *t);
/* Drops one reference to a head analysis (under the cache lock), freeing it at zero. */
void srv_head_release(ats_server *srv, srv_head *h);
/* Frees a head analysis (no references left). */
void srv_head_free(srv_head *h);
/* Empties the cache (at shutdown, when no request is running). */
void srv_cache_clear(ats_server *srv);

/* Milliseconds of a monotonic clock. */
double srv_now_ms(void);

/* An HTTP answer: status and a malloc'd body. */
typedef struct srv_reply {
    unsigned status;
    char *body;
    size_t len;
    const char *content_type;
} srv_reply;

/* Fills reply with {"error": message} and the status. */
void srv_reply_error(srv_reply *r, unsigned status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The HTTP status for a failed library call: 400 for bad input, 500 otherwise. */
unsigned srv_status_http(ats_status st);

/* The API. req is a JSON object of parameters (from the body, or built from the query string
 * with every value a string). Each fills reply (a JSON body, or figure bytes). */
void srv_api_info(ats_server *srv, srv_reply *reply);
void srv_api_analyze(ats_server *srv, const cJSON *req, srv_reply *reply);
void srv_api_overview(ats_server *srv, const cJSON *req, srv_reply *reply);
void srv_api_figure(ats_server *srv, const char *kind, const char *format, const cJSON *req,
                    srv_reply *reply);

#endif
