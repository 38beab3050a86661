/* The viewer's JSON API: analyze, overview, figure, info. */
#include "serve_internal.h"
#include "attnscope/analysis.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TRIANGLES 20000

/* ---- replies */

void srv_reply_error(srv_reply *r, unsigned status, const char *fmt, ...) {
    char msg[ATS_ERROR_MESSAGE_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    free(r->body);
    r->body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    r->len = r->body ? strlen(r->body) : 0;
    r->status = status;
    r->content_type = "application/json";
}

unsigned srv_status_http(ats_status st) {
    if (srv_request_refused()) return 503;
    switch (st) {
    case ATS_ERR_FORMAT:
    case ATS_ERR_INVALID:
    case ATS_ERR_RANGE:
        return 400;
    default:
        return 500;
    }
}

static void reply_fail(srv_reply *r, const ats_error *err) {
    srv_reply_error(r, srv_status_http(err->status), "%s",
                    err->message[0] ? err->message : ats_status_str(err->status));
}

static void reply_json(srv_reply *r, cJSON *doc) {
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    if (!text) {
        srv_reply_error(r, 500, "out of memory");
        return;
    }
    free(r->body);
    r->body = text;
    r->len = strlen(text);
    r->status = 200;
    r->content_type = "application/json";
}

/* ---- JSON written directly, numbers by ats_json_number_format (core.h) */

typedef struct sbuf {
    char *p;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_num(sbuf *b, double v, unsigned flags) {
    char tmp[ATS_JSON_NUMBER_MAX];
    sb_put(b, tmp, ats_json_number_format(v, flags, tmp));
}

/* A raw JSON item holding a [rows][cols] matrix (rows == 0: a flat vector of cols). */
static cJSON *raw_matrix(const double *d, const float *f, size_t rows, size_t cols) {
    sbuf b = {0};
    size_t r = rows ? rows : 1;
    if (rows) sb_put(&b, "[", 1);
    for (size_t i = 0; i < r; i++) {
        sb_put(&b, i ? ",[" : "[", i ? 2 : 1);
        for (size_t j = 0; j < cols; j++) {
            if (j) sb_put(&b, ",", 1);
            sb_num(&b, d ? d[i * cols + j] : (double)f[i * cols + j], d ? 0 : ATS_JSON_FLOAT);
        }
        sb_put(&b, "]", 1);
    }
    if (rows) sb_put(&b, "]", 1);
    cJSON *item = b.oom ? NULL : cJSON_CreateRaw(b.p);
    free(b.p);
    return item;
}

/* cJSON's own printing settles for 15 digits when they read back within an epsilon, and has
 * its own rule for NaN and infinities. */
static cJSON *exact_number(double v, unsigned flags) {
    char tmp[ATS_JSON_NUMBER_MAX];
    ats_json_number_format(v, flags, tmp);
    return cJSON_CreateRaw(tmp);
}

static cJSON *strings_json(char **s, size_t n) {
    return cJSON_CreateStringArray((const char *const *)s, (int)n);
}

/* ---- parameters */

enum { MEASURE_JSD = 0, MEASURE_JS = 1, MEASURE_KL = 2 };
static const char *const MEASURE_NAMES[] = {"jsd", "js", "kl"};

typedef struct params {
    const char *text, *text2; /* or an image file's bytes (a vision model) */
    size_t text_len, text2_len;
    char *image; /* the image's bytes decoded from base64 (owned; text points into it) */
    int model;   /* 0: model A, 1: model B ("model": 1 or 2) */
    long edges;  /* the sphere graph's edges (0: the library's default, 2n) */
    long layer, head;
    double threshold; /* NaN: not given */
    int measure;
    int max_dim;
    int which; /* 1 or 2: the text a figure shows */
    const char *stat;
} params;

/* A number from a JSON number or a numeric string (query strings). */
static int item_number(const cJSON *it, double *out) {
    if (cJSON_IsNumber(it)) {
        *out = it->valuedouble;
        return 1;
    }
    if (cJSON_IsString(it) && it->valuestring[0]) {
        errno = 0;
        char *end;
        double v = strtod(it->valuestring, &end);
        if (*end || errno == ERANGE) return 0;
        *out = v;
        return 1;
    }
    return 0;
}

static int get_long(const cJSON *req, const char *key, long lo, long hi, long dflt, long *out,
                    srv_reply *reply) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, key);
    double v;
    if (!it || cJSON_IsNull(it)) {
        if (dflt < lo) {
            srv_reply_error(reply, 400, "'%s' is required (an integer %ld..%ld)", key, lo, hi);
            return 0;
        }
        *out = dflt;
        return 1;
    }
    if (!item_number(it, &v) || !(v == floor(v)) || v < (double)lo || v > (double)hi) {
        srv_reply_error(reply, 400, "'%s' must be an integer %ld..%ld", key, lo, hi);
        return 0;
    }
    *out = (long)v;
    return 1;
}

static int get_text(const cJSON *req, const char *key, int required, const char **out,
                    srv_reply *reply) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, key);
    *out = NULL;
    if (!it || cJSON_IsNull(it) || (cJSON_IsString(it) && !required && !it->valuestring[0])) {
        if (required) srv_reply_error(reply, 400, "'%s' is required (a string)", key);
        return !required;
    }
    if (!cJSON_IsString(it)) {
        srv_reply_error(reply, 400, "'%s' must be a string", key);
        return 0;
    }
    if (!it->valuestring[0]) { /* as the command line: an empty text is no input */
        srv_reply_error(reply, 400, "'%s' is empty: give some text to analyse", key);
        return 0;
    }
    *out = it->valuestring;
    return 1;
}

/* The value of a base64 character (RFC 4648, standard alphabet), -1 for any other. */
static int b64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* The image a request carries: "image", the file's bytes (PNG, JPEG, ...) in base64 (padding
 * optional), at most the server's max_image bytes. */
static int get_image(ats_server *srv, const cJSON *req, params *p, srv_reply *reply) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, "image");
    if (!it || cJSON_IsNull(it)) {
        srv_reply_error(reply, 400,
                        "'image' is required: this server holds a vision model (%s), which "
                        "takes an image file (PNG, JPEG) in base64",
                        srv->m[0].info->model_type);
        return 0;
    }
    if (!cJSON_IsString(it)) {
        srv_reply_error(reply, 400, "'image' must be a string (the image file in base64)");
        return 0;
    }
    const char *s = it->valuestring;
    size_t len = strlen(s);
    while (len && s[len - 1] == '=') len--;
    if (!len) {
        srv_reply_error(reply, 400, "'image' is empty: give an image file (PNG, JPEG) in base64");
        return 0;
    }
    size_t bytes = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (len % 4 == 1) {
        srv_reply_error(reply, 400, "'image' is not base64: %zu characters cannot end a group",
                        len);
        return 0;
    }
    if (bytes > srv->opt.max_image) {
        srv_reply_error(reply, 400, "'image' is %zu bytes; this server takes at most %zu", bytes,
                        srv->opt.max_image);
        return 0;
    }
    p->image = malloc(bytes + 1);
    if (!p->image) {
        srv_reply_error(reply, 500, "out of memory");
        return 0;
    }
    size_t o = 0;
    unsigned acc = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value((unsigned char)s[i]);
        if (v < 0) {
            srv_reply_error(reply, 400,
                            "'image' is not base64: character %zu is not in its alphabet", i);
            free(p->image);
            p->image = NULL;
            return 0;
        }
        acc = acc << 6 | (unsigned)v;
        if (i % 4 == 3) {
            p->image[o++] = (char)(acc >> 16);
            p->image[o++] = (char)(acc >> 8);
            p->image[o++] = (char)acc;
            acc = 0;
        }
    }
    if (len % 4 == 2) p->image[o++] = (char)(acc >> 4);
    if (len % 4 == 3) {
        p->image[o++] = (char)(acc >> 10);
        p->image[o++] = (char)(acc >> 2);
    }
    p->image[o] = '\0';
    p->text = p->image;
    p->text_len = o;
    return 1;
}

static void params_free(params *p) {
    free(p->image);
    p->image = NULL;
}

/* The request's parameters into p (release with params_free, also after a failure). */
static int parse_params(ats_server *srv, const cJSON *req, int need_head, params *p,
                        srv_reply *reply) {
    memset(p, 0, sizeof *p);
    p->threshold = NAN;
    p->which = 1;
    if (!cJSON_IsObject(req)) {
        srv_reply_error(reply, 400, "the request must be a JSON object");
        return 0;
    }
    long v;
    if (!get_long(req, "model", 1, (long)srv->n_models, 1, &v, reply)) return 0;
    p->model = (int)v - 1;
    if (srv->vision) {
        if (cJSON_GetObjectItemCaseSensitive(req, "text") ||
            cJSON_GetObjectItemCaseSensitive(req, "text2")) {
            srv_reply_error(reply, 400,
                            "this server holds a vision model (%s): give 'image' (an image file "
                            "in base64), not a text",
                            srv->m[0].info->model_type);
            return 0;
        }
        if (!get_image(srv, req, p, reply)) return 0;
    } else {
        if (cJSON_GetObjectItemCaseSensitive(req, "image")) {
            srv_reply_error(reply, 400,
                            "this server holds a text model (%s): give 'text', not an 'image'",
                            srv->m[p->model].info->model_type);
            return 0;
        }
        if (!get_text(req, "text", 1, &p->text, reply)) return 0;
        if (!get_text(req, "text2", 0, &p->text2, reply)) return 0;
        p->text_len = strlen(p->text);
        p->text2_len = p->text2 ? strlen(p->text2) : 0;
    }
    if (!get_long(req, "edges", 0, 1L << 24, 0, &p->edges, reply)) return 0;
    const ats_model_info *info = srv->m[p->model].info;
    long L = info->n_layers, H = info->n_heads;
    if (!get_long(req, "layer", 0, L - 1, need_head ? -1 : 0, &p->layer, reply)) return 0;
    if (!get_long(req, "head", 0, H - 1, need_head ? -1 : 0, &p->head, reply)) return 0;
    if (!get_long(req, "max_dim", 0, 2, 1, &v, reply)) return 0;
    p->max_dim = (int)v;
    if (!get_long(req, "which", 1, 2, 1, &v, reply)) return 0;
    p->which = (int)v;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(req, "threshold");
    if (it && !cJSON_IsNull(it)) {
        if (!item_number(it, &p->threshold) || !isfinite(p->threshold) || p->threshold < 0) {
            srv_reply_error(reply, 400, "'threshold' must be a finite number >= 0");
            return 0;
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(req, "measure");
    if (it && !cJSON_IsNull(it)) {
        int found = 0;
        for (int k = 0; k < 3 && cJSON_IsString(it); k++)
            if (!strcmp(it->valuestring, MEASURE_NAMES[k])) {
                p->measure = k;
                found = 1;
            }
        if (!found) {
            srv_reply_error(reply, 400, "'measure' must be \"jsd\", \"js\" or \"kl\"");
            return 0;
        }
    }
    it = cJSON_GetObjectItemCaseSensitive(req, "stat");
    p->stat = "entropy";
    if (it && !cJSON_IsNull(it)) {
        if (!cJSON_IsString(it) ||
            (strcmp(it->valuestring, "entropy") && strcmp(it->valuestring, "h1"))) {
            srv_reply_error(reply, 400, "'stat' must be \"entropy\" or \"h1\"");
            return 0;
        }
        p->stat = it->valuestring;
    }
    return 1;
}

/* ---- one head of one text */

/* t's attention as the analysis layer takes it, borrowing t's arrays (never freed through it),
 * so that a head's metric is computed by the library's call, as for `attnscope topo`. */
static ats_attention text_attention(const srv_text *t) {
    ats_attention a;
    memset(&a, 0, sizeof a);
    a.L = t->L;
    a.H = t->H;
    a.n = t->n;
    a.att = t->att;
    a.labels = t->labels;
    a.name = (char *)"attention";
    return a;
}

static ats_status head_compute(ats_server *srv, const srv_text *t, const params *p, srv_head *r,
                               ats_error *err) {
    r->layer = p->layer;
    r->head = p->head;
    r->measure = p->measure;
    r->max_dim = p->max_dim;
    ats_attention a = text_attention(t);
    ats_topo_options o;
    ats_topo_options_init(&o);
    o.layer = p->layer;
    o.head = p->head;
    o.distance = p->measure == MEASURE_KL   ? ATS_HEAD_KL
                 : p->measure == MEASURE_JS ? ATS_HEAD_JS
                                            : ATS_HEAD_JSD;
    o.max_dim = p->max_dim;
    o.n_threads = 1;               /* requests run in parallel already */
    o.cancel = srv_work_cancelled; /* a client that has gone, or a stop, ends the persistence */
    o.cancel_ctx = srv;
    o.memory_limit_gb = (double)srv->opt.work_memory / (1 << 30);
    /* a 3-D layout at the median distance (the largest default scale) that does not depend on
     * the threshold, so the view stays put; the step shrinks by 0.96 an iteration from 0.2, so
     * after 120 it is below 0.002 of the layout's width, under a pixel of the view */
    o.layout_iters = t->n > 300 ? 80 : 120;
    ats_topo_result res;
    ats_status st = ats_topo(&a, &o, &res, err);
    if (st) return st;
    r->n = res.n;
    r->matrix = res.full;
    r->lower = res.lower;
    r->layout = res.layout;
    r->dmin = res.dmin;
    r->dmax = res.dmax;
    r->median = res.median;
    r->rips = res.rips;
    res.full = res.lower = res.layout = NULL;
    memset(&res.rips, 0, sizeof res.rips);
    ats_topo_result_free(&res);
    return ATS_OK;
}

/* The analysis of the request's head of text t: from t's recent heads, or computed now.
 * Release with srv_head_release. */
static ats_status head_get(ats_server *srv, srv_text *t, const params *p, srv_head **out,
                           int *cached, ats_error *err) {
    *out = NULL;
    *cached = 0;
    pthread_mutex_lock(&srv->cache_lock);
    for (size_t i = 0; i < SRV_HEADS_PER_TEXT; i++) {
        srv_head *h = t->heads[i];
        if (h && h->layer == p->layer && h->head == p->head && h->measure == p->measure &&
            h->max_dim == p->max_dim) {
            h->refs++;
            h->used = ++srv->clock;
            pthread_mutex_unlock(&srv->cache_lock);
            *out = h;
            *cached = 1;
            return ATS_OK;
        }
    }
    pthread_mutex_unlock(&srv->cache_lock);
    ats_status st = srv_work_begin(srv, err);
    if (st) return st;
    srv_head *h = calloc(1, sizeof *h);
    if (!h) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    st = head_compute(srv, t, p, h, err);
    if (st) {
        srv_head_free(h);
        return st;
    }
    pthread_mutex_lock(&srv->cache_lock);
    size_t slot = 0;
    for (size_t i = 0; i < SRV_HEADS_PER_TEXT; i++) {
        if (!t->heads[i]) {
            slot = i;
            break;
        }
        if (t->heads[i]->used < t->heads[slot]->used) slot = i;
    }
    srv_head *old = t->heads[slot];
    if (old && --old->refs == 0) srv_head_free(old);
    h->refs = 2; /* the text's and the caller's */
    h->used = ++srv->clock;
    t->heads[slot] = h;
    pthread_mutex_unlock(&srv->cache_lock);
    *out = h;
    return ATS_OK;
}

/* [[birth, death|null], ...] of a diagram, its numbers printed exactly (ats_json_number_format) */
static cJSON *pairs_json(const ats_diagram *d) {
    sbuf b = {0};
    sb_put(&b, "[", 1);
    for (size_t i = 0; i < d->count; i++) {
        sb_put(&b, i ? ",[" : "[", i ? 2 : 1);
        sb_num(&b, d->pairs[2 * i], 0);
        sb_put(&b, ",", 1);
        sb_num(&b, d->pairs[2 * i + 1], ATS_JSON_DEATH);
        sb_put(&b, "]", 1);
    }
    sb_put(&b, "]", 1);
    cJSON *out = b.oom ? cJSON_CreateArray() : cJSON_CreateRaw(b.p);
    free(b.p);
    return out;
}

/* The format of `attnscope rips --json`: n_points, threshold, and per dimension the pairs
 * (death null when essential) and, for H1, each class's cycle as [vertex, vertex, coefficient]
 * edges. */
static cJSON *diagrams_json(const ats_rips_result *res) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "n_points", (double)res->n_points);
    cJSON_AddItemToObject(doc, "threshold", exact_number(res->threshold, 0));
    cJSON *dims = cJSON_AddArrayToObject(doc, "dims");
    for (int k = 0; k <= res->max_dim; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "dim", k);
        const ats_diagram *d = &res->dims[k];
        cJSON_AddItemToObject(e, "pairs", pairs_json(d));
        if (k == 1 && res->cycles) {
            cJSON *cyc = cJSON_AddArrayToObject(e, "cycles");
            for (size_t i = 0; i < d->count; i++) {
                const ats_representative *rep = &res->cycles[i];
                cJSON *edges = cJSON_CreateArray();
                for (size_t q = 0; q < rep->count; q++) {
                    int edge[3] = {rep->vertices[2 * q], rep->vertices[2 * q + 1],
                                   (int)rep->coefs[q]};
                    cJSON_AddItemToArray(edges, cJSON_CreateIntArray(edge, 3));
                }
                cJSON_AddItemToArray(cyc, edges);
            }
        }
        cJSON_AddItemToArray(dims, e);
    }
    return doc;
}

/* Everything the viewer draws for one text at the threshold. */
static ats_status text_json(const srv_text *t, const srv_head *r, const params *p, double threshold,
                            cJSON **out, ats_error *err) {
    const ats_lower metric = {r->n, r->lower};
    size_t n = r->n;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "tokens", strings_json(t->labels, n));
    cJSON_AddItemToObject(
        o, "attention",
        raw_matrix(NULL, t->att + ((size_t)p->layer * t->H + (size_t)p->head) * n * n, n, n));
    cJSON_AddItemToObject(o, "matrix", raw_matrix(r->matrix, NULL, n, n));
    double range[3] = {r->dmin, r->dmax, r->median};
    cJSON_AddItemToObject(o, "distance_range", raw_matrix(range, NULL, 0, 2));
    cJSON_AddItemToObject(o, "distance_median", exact_number(r->median, 0));
    cJSON_AddItemToObject(o, "diagrams", diagrams_json(&r->rips));
    /* H1 classes as the tokens around their loops */
    cJSON *cycles = cJSON_AddArrayToObject(o, "cycles");
    if (r->rips.cycles) {
        for (size_t i = 0; i < r->rips.dims[1].count; i++) {
            const ats_representative *rep = &r->rips.cycles[i];
            cJSON *c = cJSON_CreateObject();
            cJSON_AddItemToObject(c, "birth", exact_number(r->rips.dims[1].pairs[2 * i], 0));
            double death = r->rips.dims[1].pairs[2 * i + 1];
            cJSON_AddItemToObject(c, "death", exact_number(death, ATS_JSON_DEATH));
            cJSON *edges = cJSON_AddArrayToObject(c, "edges");
            unsigned char *on = calloc(n, 1);
            for (size_t q = 0; q < rep->count; q++) {
                int pair[2] = {rep->vertices[2 * q], rep->vertices[2 * q + 1]};
                cJSON_AddItemToArray(edges, cJSON_CreateIntArray(pair, 2));
                if (on) on[pair[0]] = on[pair[1]] = 1;
            }
            cJSON *verts = cJSON_AddArrayToObject(c, "vertices");
            cJSON *toks = cJSON_AddArrayToObject(c, "tokens");
            for (size_t v = 0; on && v < n; v++)
                if (on[v]) {
                    cJSON_AddItemToArray(verts, cJSON_CreateNumber((double)v));
                    cJSON_AddItemToArray(toks, cJSON_CreateString(t->labels[v]));
                }
            free(on);
            cJSON_AddItemToArray(cycles, c);
        }
    }
    int32_t *labels = malloc(n * sizeof *labels);
    if (!labels) {
        cJSON_Delete(o);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    size_t n_clusters = 0;
    ats_status st = ats_rips_clusters(n, r->lower, threshold, labels, &n_clusters, err);
    if (st) {
        free(labels);
        cJSON_Delete(o);
        return st;
    }
    cJSON_AddItemToObject(o, "layout", raw_matrix(r->layout, NULL, n, 3));
    cJSON *cl = cJSON_AddObjectToObject(o, "clusters");
    cJSON_AddNumberToObject(cl, "count", (double)n_clusters);
    cJSON_AddItemToObject(cl, "labels", cJSON_CreateIntArray((const int *)labels, (int)n));
    free(labels);
    /* the Rips complex at the threshold: edges and triangles */
    sbuf eb = {0}, tb = {0};
    size_t n_edges = 0, n_tri = 0;
    int truncated = 0;
    sb_put(&eb, "[", 1);
    sb_put(&tb, "[", 1);
    char tmp[64];
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            if (!(ats_lower_at(&metric, i, j) <= threshold)) continue;
            int k = snprintf(tmp, sizeof tmp, "%s[%zu,%zu]", n_edges ? "," : "", i, j);
            sb_put(&eb, tmp, (size_t)k);
            n_edges++;
            for (size_t q = j + 1; q < n; q++) {
                if (!(ats_lower_at(&metric, i, q) <= threshold) ||
                    !(ats_lower_at(&metric, j, q) <= threshold))
                    continue;
                if (n_tri == MAX_TRIANGLES) {
                    truncated = 1;
                    continue;
                }
                k = snprintf(tmp, sizeof tmp, "%s[%zu,%zu,%zu]", n_tri ? "," : "", i, j, q);
                sb_put(&tb, tmp, (size_t)k);
                n_tri++;
            }
        }
    sb_put(&eb, "]", 1);
    sb_put(&tb, "]", 1);
    if (eb.oom || tb.oom) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    cJSON_AddItemToObject(o, "edges", st ? cJSON_CreateArray() : cJSON_CreateRaw(eb.p));
    cJSON_AddItemToObject(o, "triangles", st ? cJSON_CreateArray() : cJSON_CreateRaw(tb.p));
    cJSON_AddBoolToObject(o, "triangles_truncated", truncated);
    free(eb.p);
    free(tb.p);
    if (st) {
        cJSON_Delete(o);
        return st;
    }
    *out = o;
    return ATS_OK;
}

/* The texts of a request (text, and text2 when given); release with texts_release. */
static int texts_get(ats_server *srv, const params *p, srv_text **t, size_t *count, int *cached,
                     double *forward_ms, srv_reply *reply) {
    ats_error err;
    ats_error_clear(&err);
    const char *src[2] = {p->text, p->text2};
    size_t len[2] = {p->text_len, p->text2_len};
    *count = 0;
    *cached = 1;
    *forward_ms = 0;
    for (size_t i = 0; i < 2 && src[i]; i++) {
        int c;
        double ms;
        if (srv_text_get(srv, p->model, src[i], len[i], &t[i], &c, &ms, &err)) {
            for (size_t k = 0; k < i; k++) srv_text_release(srv, t[k]);
            srv_reply_error(reply, srv_status_http(err.status), "%s%s",
                            srv->vision ? "image: "
                            : i         ? "text2: "
                                        : "text: ",
                            err.message);
            return 0;
        }
        *cached &= c;
        *forward_ms += ms;
        *count = i + 1;
    }
    return 1;
}

static void texts_release(ats_server *srv, srv_text **t, size_t count) {
    for (size_t i = 0; i < count; i++) srv_text_release(srv, t[i]);
}

static cJSON *model_json(const ats_server *srv, int k) {
    const srv_model *sm = &srv->m[k];
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "name", sm->name);
    cJSON_AddStringToObject(m, "type", sm->info->model_type);
    cJSON_AddStringToObject(m, "input", sm->tok ? "text" : "image");
    cJSON_AddNumberToObject(m, "layers", sm->info->n_layers);
    cJSON_AddNumberToObject(m, "heads", sm->info->n_heads);
    cJSON_AddBoolToObject(m, "causal", sm->info->causal);
    cJSON_AddNumberToObject(m, "max_tokens", (double)sm->max_tokens);
    if (!sm->tok) {
        int side = sm->info->patch_size > 0 ? sm->info->image_size / sm->info->patch_size : 0;
        cJSON_AddNumberToObject(m, "image_size", sm->info->image_size);
        cJSON_AddNumberToObject(m, "patch_size", sm->info->patch_size);
        int grid[2] = {side, side};
        cJSON_AddItemToObject(m, "grid", cJSON_CreateIntArray(grid, 2));
    }
    return m;
}

void srv_api_info(ats_server *srv, srv_reply *reply) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "model", model_json(srv, 0));
    cJSON *models = cJSON_AddArrayToObject(doc, "models");
    for (size_t k = 0; k < srv->n_models; k++)
        cJSON_AddItemToArray(models, model_json(srv, (int)k));
    cJSON_AddNumberToObject(doc, "max_body", (double)srv->body_limit);
    if (srv->vision) cJSON_AddNumberToObject(doc, "max_image", (double)srv->opt.max_image);
    cJSON *ms = cJSON_AddArrayToObject(doc, "measures");
    for (int k = 0; k < 3; k++) cJSON_AddItemToArray(ms, cJSON_CreateString(MEASURE_NAMES[k]));
    reply_json(reply, doc);
    cJSON_Delete(doc);
}

static void analyze_params(ats_server *srv, const params *pp, srv_reply *reply) {
    double t0 = srv_now_ms();
    params p = *pp;
    srv_text *t[2];
    size_t count;
    int cached;
    double fwd;
    if (!texts_get(srv, &p, t, &count, &cached, &fwd, reply)) return;
    ats_error err;
    ats_error_clear(&err);
    srv_head *hr[2] = {NULL, NULL};
    ats_status st = ATS_OK;
    int heads_cached = 1;
    double t1 = srv_now_ms();
    for (size_t i = 0; i < count && !st; i++) {
        int c;
        st = head_get(srv, t[i], &p, &hr[i], &c, &err);
        heads_cached &= c;
    }
    double head_ms = srv_now_ms() - t1;
    double threshold = st || isnan(p.threshold) ? (hr[0] ? hr[0]->median : 0) : p.threshold;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "model", model_json(srv, p.model));
    cJSON_AddNumberToObject(doc, "layer", (double)p.layer);
    cJSON_AddNumberToObject(doc, "head", (double)p.head);
    cJSON_AddStringToObject(doc, "measure", MEASURE_NAMES[p.measure]);
    cJSON_AddItemToObject(doc, "threshold", exact_number(threshold, 0));
    cJSON *texts = cJSON_AddArrayToObject(doc, "texts");
    for (size_t i = 0; i < count && !st; i++) {
        cJSON *o = NULL;
        st = text_json(t[i], hr[i], &p, threshold, &o, &err);
        if (!st) cJSON_AddItemToArray(texts, o);
    }
    if (!st && count == 2) {
        cJSON *cmp = cJSON_AddObjectToObject(doc, "comparison");
        cJSON *dims = cJSON_AddArrayToObject(cmp, "dims");
        ats_wasserstein_options wo;
        ats_wasserstein_options_init(&wo);
        for (int d = 0; d <= p.max_dim && !st; d++) {
            double b = NAN, w = NAN;
            st =
                ats_bottleneck_distance(&hr[0]->rips.dims[d], &hr[1]->rips.dims[d], &b, NULL, &err);
            if (!st)
                st = ats_wasserstein_distance(&hr[0]->rips.dims[d], &hr[1]->rips.dims[d], &wo, &w,
                                              NULL, &err);
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "dim", d);
            cJSON_AddItemToObject(e, "bottleneck", exact_number(b, 0));
            cJSON_AddItemToObject(e, "wasserstein", exact_number(w, 0));
            cJSON_AddItemToArray(dims, e);
        }
    }
    for (size_t i = 0; i < count; i++) srv_head_release(srv, hr[i]);
    texts_release(srv, t, count);
    if (st) {
        cJSON_Delete(doc);
        reply_fail(reply, &err);
        return;
    }
    cJSON *timing = cJSON_AddObjectToObject(doc, "timing");
    cJSON_AddBoolToObject(timing, "cached", cached);
    cJSON_AddNumberToObject(timing, "forward_ms", fwd);
    cJSON_AddBoolToObject(timing, "head_cached", heads_cached);
    cJSON_AddNumberToObject(timing, "head_ms", head_ms);
    cJSON_AddNumberToObject(timing, "total_ms", srv_now_ms() - t0);
    reply_json(reply, doc);
    cJSON_Delete(doc);
}

void srv_api_analyze(ats_server *srv, const cJSON *req, srv_reply *reply) {
    params p;
    if (parse_params(srv, req, 1, &p, reply)) analyze_params(srv, &p, reply);
    params_free(&p);
}

/* ---- overview: a summary of every head */

#define OVERVIEW_H1_MAX_TOKENS 128

static ats_status overview_compute(ats_server *srv, srv_text *t, ats_error *err) {
    pthread_mutex_lock(&srv->cache_lock);
    int done = t->ov_entropy != NULL;
    pthread_mutex_unlock(&srv->cache_lock);
    if (done) return ATS_OK;
    size_t L = t->L, H = t->H, n = t->n, heads = L * H, m = n * (n - 1) / 2;
    int want_h1 = n <= OVERVIEW_H1_MAX_TOKENS; /* L·H JS matrices cost L·H·n³ */
    size_t nh = want_h1 ? heads : 1;
    double *ent = malloc(heads * n * sizeof *ent), *ov_e = calloc(heads, sizeof *ov_e),
           *ov_h = calloc(nh, sizeof *ov_h), *full = malloc(n * n * sizeof *full),
           *lowers = malloc(nh * (m ? m : 1) * sizeof *lowers);
    const double **lp = malloc(nh * sizeof *lp);
    size_t *ns = malloc(nh * sizeof *ns);
    ats_rips_result *res = calloc(nh, sizeof *res);
    ats_status st = srv_work_begin(srv, err);
    if (!st && (!ent || !ov_e || !ov_h || !full || !lowers || !lp || !ns || !res))
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_attn all;
    memset(&all, 0, sizeof all);
    all.dtype = ATS_F32;
    all.data = t->att;
    all.L = L;
    all.H = H;
    all.n = n;
    all.source = "attention";
    ats_attention a = text_attention(t);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.normalize = 1;
    mo.n_threads = 1;
    if (!st) st = ats_entropy_compute(&all, &mo, ent, err);
    for (size_t k = 0; k < heads && !st; k++) {
        double s = 0;
        for (size_t i = 0; i < n; i++) s += ent[k * n + i];
        ov_e[k] = s / (double)n;
        if (!want_h1) continue;
        if (k % H == 0) st = srv_work_begin(srv, err); /* still wanted? */
        if (!st) st = ats_head_metric(&a, k / H, k % H, 0, 0.0, 1, full, lowers + k * m, err);
        lp[k] = lowers + k * m;
        ns[k] = n;
    }
    if (!st && want_h1) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = 1;
        ro.cancel = srv_work_cancelled;
        ro.cancel_ctx = srv;
        ro.memory_limit_gb = (double)srv->opt.work_memory / (1 << 30);
        st = ats_rips_compute_batch(heads, ns, lp, &ro, 1, res, NULL);
        if (st) ats_error_set(err, st, "persistence of a head failed");
    }
    for (size_t k = 0; k < heads && !st && want_h1; k++) {
        double s = 0;
        const ats_diagram *d = &res[k].dims[1];
        for (size_t i = 0; i < d->count; i++)
            if (isfinite(d->pairs[2 * i + 1])) s += d->pairs[2 * i + 1] - d->pairs[2 * i];
        ov_h[k] = s;
    }
    for (size_t k = 0; res && k < nh; k++) ats_rips_result_free(&res[k]);
    free(res);
    free(ns);
    free(lp);
    free(lowers);
    free(full);
    free(ent);
    if (!st) {
        pthread_mutex_lock(&srv->cache_lock);
        if (!t->ov_entropy) {
            t->ov_entropy = ov_e;
            ov_e = NULL;
            if (want_h1) {
                t->ov_h1 = ov_h;
                ov_h = NULL;
            }
        }
        pthread_mutex_unlock(&srv->cache_lock);
    }
    free(ov_e);
    free(ov_h);
    return st;
}

static void overview_params(ats_server *srv, const params *pp, srv_reply *reply) {
    double t0 = srv_now_ms();
    params p = *pp;
    p.text2 = NULL;
    srv_text *t[2];
    size_t count;
    int cached;
    double fwd;
    if (!texts_get(srv, &p, t, &count, &cached, &fwd, reply)) return;
    ats_error err;
    ats_error_clear(&err);
    if (overview_compute(srv, t[0], &err)) {
        texts_release(srv, t, count);
        reply_fail(reply, &err);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "layers", (double)t[0]->L);
    cJSON_AddNumberToObject(doc, "heads", (double)t[0]->H);
    cJSON_AddItemToObject(doc, "tokens", strings_json(t[0]->labels, t[0]->n));
    cJSON_AddItemToObject(doc, "entropy", raw_matrix(t[0]->ov_entropy, NULL, t[0]->L, t[0]->H));
    cJSON_AddItemToObject(doc, "h1_persistence",
                          t[0]->ov_h1 ? raw_matrix(t[0]->ov_h1, NULL, t[0]->L, t[0]->H)
                                      : cJSON_CreateNull());
    cJSON_AddNumberToObject(doc, "h1_max_tokens", OVERVIEW_H1_MAX_TOKENS);
    texts_release(srv, t, count);
    cJSON *timing = cJSON_AddObjectToObject(doc, "timing");
    cJSON_AddBoolToObject(timing, "cached", cached);
    cJSON_AddNumberToObject(timing, "forward_ms", fwd);
    cJSON_AddNumberToObject(timing, "total_ms", srv_now_ms() - t0);
    reply_json(reply, doc);
    cJSON_Delete(doc);
}

void srv_api_overview(ats_server *srv, const cJSON *req, srv_reply *reply) {
    params p;
    if (parse_params(srv, req, 0, &p, reply)) overview_params(srv, &p, reply);
    params_free(&p);
}

/* ---- a vision model: the attention graph of the patches on a sphere (ats_vision) */

/* ats_vision on the request's image and head, with the sphere graph (and its figure in format
 * when figures). */
static ats_status sphere_run(ats_server *srv, const params *p, int figures,
                             ats_figure_format format, ats_vision_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_image img;
    ats_status st = ats_image_decode(p->text, p->text_len, "the image", &img, err);
    if (st) return st;
    char title[96];
    snprintf(title, sizeof title, "layer %ld head %ld", p->layer, p->head);
    ats_vision_options o;
    ats_vision_options_init(&o);
    o.layer = p->layer;
    o.head = p->head;
    o.sphere = 1;
    o.sphere_edges = (size_t)p->edges;
    o.figures = figures;
    o.format = format;
    o.title = title;
    ats_vision_input in = {NULL, &img, "image"};
    st = srv_work_begin(srv, err);
    if (!st && srv->opt.n_threads <= 0) omp_set_num_threads(1); /* as the forward passes */
    if (!st) st = ats_vision(srv->m[0].session, 1, &in, &o, res, err);
    ats_image_free(&img);
    return st;
}

/* A request's key for the kept answers: the endpoint, the numbers that change the answer and
 * the input's bytes (malloc'd, *len bytes). */
static char *memo_key(const char *what, const params *p, long extra, size_t *len) {
    char head[160];
    int k = snprintf(head, sizeof head, "%s %d %ld %ld %ld %ld %zu %zu|", what, p->model, p->layer,
                     p->head, p->edges, extra, p->text_len, p->text2_len);
    size_t n = (size_t)k + p->text_len + p->text2_len;
    char *key = malloc(n + 1);
    if (!key) return NULL;
    memcpy(key, head, (size_t)k);
    memcpy(key + k, p->text, p->text_len);
    if (p->text2) memcpy(key + (size_t)k + p->text_len, p->text2, p->text2_len);
    *len = n;
    return key;
}

/* Answers a request from the kept answers: 1 when it did. */
static int memo_reply(ats_server *srv, const char *key, size_t key_len, srv_reply *reply) {
    size_t len;
    char *body = key ? srv_memo_get(srv, key, key_len, &len) : NULL;
    if (!body) return 0;
    free(reply->body);
    reply->body = body;
    reply->len = len;
    reply->status = 200;
    reply->content_type = "application/json";
    return 1;
}

static void reply_json_kept(ats_server *srv, srv_reply *reply, cJSON *doc, const char *key,
                            size_t key_len) {
    reply_json(reply, doc);
    if (key && reply->status == 200) srv_memo_put(srv, key, key_len, reply->body, reply->len);
}

/* {"pairs": [[birth, death|null]], "dim"} of H0 and H1, as vision.json */
static cJSON *vision_dims_json(const ats_rips_result *r) {
    cJSON *dims = cJSON_CreateArray();
    for (int k = 0; k <= r->max_dim && k < 2; k++) {
        cJSON *e = cJSON_CreateObject();
        const ats_diagram *d = &r->dims[k];
        cJSON_AddItemToObject(e, "pairs", pairs_json(d));
        cJSON_AddNumberToObject(e, "dim", k);
        cJSON_AddItemToArray(dims, e);
    }
    return dims;
}

void srv_api_sphere(ats_server *srv, const cJSON *req, srv_reply *reply) {
    double t0 = srv_now_ms();
    params p;
    size_t key_len = 0;
    char *key = NULL;
    if (!parse_params(srv, req, 1, &p, reply)) goto done;
    key = memo_key("sphere", &p, 0, &key_len);
    if (memo_reply(srv, key, key_len, reply)) goto done;
    ats_error err;
    ats_error_clear(&err);
    ats_vision_result res;
    if (sphere_run(srv, &p, 0, ATS_FIGURE_PNG, &res, &err)) {
        ats_vision_result_free(&res);
        reply_fail(reply, &err);
        goto done;
    }
    /* the fields of `attnscope vision --sphere`'s vision.json, for the one image */
    const ats_vision_image *im = &res.images[0];
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "layer", (double)p.layer);
    cJSON_AddNumberToObject(doc, "head", (double)p.head);
    cJSON_AddNumberToObject(doc, "height", res.height);
    cJSON_AddNumberToObject(doc, "width", res.width);
    int grid[2] = {res.rows, res.cols};
    cJSON_AddItemToObject(doc, "grid", cJSON_CreateIntArray(grid, 2));
    cJSON *ij = cJSON_CreateObject();
    cJSON_AddStringToObject(ij, "image", im->name);
    cJSON_AddItemToObject(ij, "dims", vision_dims_json(&im->run.rips));
    cJSON_AddItemToObject(ij, "scales", raw_matrix(im->scales, NULL, 0, im->n_scales));
    cJSON *sp = cJSON_AddObjectToObject(ij, "sphere");
    cJSON_AddItemToObject(sp, "points", raw_matrix(im->sphere, NULL, im->run.n, 3));
    sbuf b = {0};
    sb_put(&b, "[", 1);
    for (size_t e = 0; e < im->n_edges; e++) {
        char tmp[64];
        int k = snprintf(tmp, sizeof tmp, "%s[%zu,%zu,", e ? "," : "", im->edges[2 * e],
                         im->edges[2 * e + 1]);
        sb_put(&b, tmp, (size_t)k);
        sb_num(&b, im->edge_weights[e], 0);
        sb_put(&b, "]", 1);
    }
    sb_put(&b, "]", 1);
    cJSON_AddItemToObject(sp, "edges", b.oom ? NULL : cJSON_CreateRaw(b.p));
    free(b.p);
    cJSON *imgs = cJSON_AddArrayToObject(doc, "images");
    cJSON_AddItemToArray(imgs, ij);
    /* the viewer's labels of the patches (the sphere's point k is patch k, [CLS] left out) */
    cJSON *labels = cJSON_AddArrayToObject(doc, "patches");
    for (size_t k = 0; k < im->run.n; k++) {
        char lab[48];
        snprintf(lab, sizeof lab, "p(%zu,%zu)", k / (size_t)res.cols, k % (size_t)res.cols);
        cJSON_AddItemToArray(labels, cJSON_CreateString(lab));
    }
    ats_vision_result_free(&res);
    cJSON_AddNumberToObject(doc, "ms", srv_now_ms() - t0);
    reply_json_kept(srv, reply, b.oom ? NULL : doc, key, key_len);
    cJSON_Delete(doc);
done:
    free(key);
    params_free(&p);
}

static void sphere_figure(ats_server *srv, const char *format, const params *p, srv_reply *reply) {
    if (!srv->vision) {
        srv_reply_error(reply, 404, "the sphere figure needs a vision model");
        return;
    }
    ats_error err;
    ats_error_clear(&err);
    ats_vision_result res;
    memset(&res, 0, sizeof res);
    /* the work slot first: waiting in the queue while holding the renderer would stall every
     * figure behind this one */
    ats_status st = srv_work_begin(srv, &err);
    if (!st) {
        pthread_mutex_lock(&srv->render_lock);
        st = sphere_run(srv, p, 1, !strcmp(format, "png") ? ATS_FIGURE_PNG : ATS_FIGURE_SVG, &res,
                        &err);
        pthread_mutex_unlock(&srv->render_lock);
    }
    if (st) {
        ats_vision_result_free(&res);
        reply_fail(reply, &err);
        return;
    }
    ats_figure_memory *mem = &res.images[0].sphere_figure;
    free(reply->body);
    reply->body = (char *)mem->data;
    reply->len = mem->size;
    mem->data = NULL;
    mem->size = 0;
    reply->status = 200;
    reply->content_type = !strcmp(format, "png") ? "image/png" : "image/svg+xml";
    ats_vision_result_free(&res);
}

/* ---- two models: every head of A against every head of B (ats_compare_models) */

/* {"0": [[...]], ...}: a [rows][cols] matrix per dimension, as compare.json */
static cJSON *models_dims_json(const double *v, size_t nd, size_t rows, size_t cols) {
    cJSON *o = cJSON_CreateObject();
    for (size_t d = 0; d < nd; d++) {
        char key[32];
        snprintf(key, sizeof key, "%zu", d);
        cJSON_AddItemToObject(o, key, raw_matrix(v + d * rows * cols, NULL, rows, cols));
    }
    return o;
}

void srv_api_compare(ats_server *srv, const cJSON *req, srv_reply *reply) {
    double t0 = srv_now_ms();
    params p;
    size_t key_len = 0;
    char *key = NULL;
    if (!parse_params(srv, req, 0, &p, reply)) goto done;
    /* the head, model and which of a figure play no part: every head of both */
    p.layer = p.head = p.which = 0;
    p.model = 0;
    key = memo_key("compare", &p, p.max_dim, &key_len);
    if (memo_reply(srv, key, key_len, reply)) goto done;
    ats_error err;
    ats_error_clear(&err);
    ats_compare_options o;
    ats_compare_options_init(&o);
    o.all_heads = 1;
    o.max_dim = p.max_dim;
    o.n_threads = srv->opt.n_threads > 0 ? srv->opt.n_threads : 1;
    /* the text through both models, or text through A and text2 through B (as the CLI) */
    const char *texts[2] = {p.text, p.text2 ? p.text2 : p.text};
    for (size_t k = 0; k < 2; k++) { /* refused as the cached passes refuse them */
        size_t n = 0;
        ats_encoding enc;
        memset(&enc, 0, sizeof enc);
        ats_status st =
            ats_tokenizer_encode(srv->m[k].tok, texts[k], strlen(texts[k]), 1, &enc, &err);
        n = enc.count;
        ats_encoding_free(&enc);
        if (!st && n > srv->m[k].max_tokens)
            st = ats_error_set(&err, ATS_ERR_RANGE,
                               "the text gives %zu tokens; this server takes at most %zu", n,
                               srv->m[k].max_tokens);
        if (st) {
            srv_reply_error(reply, srv_status_http(st), "model %c: %s", k ? 'B' : 'A', err.message);
            goto done;
        }
    }
    ats_compare_models_result r;
    ats_status st = srv_work_begin(srv, &err);
    if (!st && srv->opt.n_threads <= 0) omp_set_num_threads(1);
    if (!st)
        st = ats_compare_models(srv->m[0].session, srv->m[1].session, texts, &o, &r, &err);
    else
        memset(&r, 0, sizeof r);
    if (st) {
        ats_compare_models_result_free(&r);
        reply_fail(reply, &err);
        goto done;
    }
    size_t rows = r.L[0] * r.H[0], cols = r.L[1] * r.H[1];
    cJSON *doc = cJSON_CreateObject(), *ms = cJSON_AddArrayToObject(doc, "models");
    for (size_t k = 0; k < 2; k++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "model", srv->m[k].info->dir);
        cJSON_AddNumberToObject(m, "layers", (double)r.L[k]);
        cJSON_AddNumberToObject(m, "heads", (double)r.H[k]);
        cJSON_AddItemToArray(ms, m);
    }
    cJSON_AddItemToObject(doc, "bottleneck", models_dims_json(r.bottleneck, r.n_dims, rows, cols));
    cJSON_AddItemToObject(doc, "wasserstein",
                          models_dims_json(r.wasserstein, r.n_dims, rows, cols));
    cJSON_AddItemToObject(doc, "q", exact_number(o.q, 0));
    cJSON_AddItemToObject(doc, "tokens_a", strings_json(r.inputs[0].labels, r.inputs[0].n));
    cJSON_AddItemToObject(doc, "tokens_b", strings_json(r.inputs[1].labels, r.inputs[1].n));
    ats_compare_models_result_free(&r);
    cJSON_AddNumberToObject(doc, "ms", srv_now_ms() - t0);
    reply_json_kept(srv, reply, doc, key, key_len);
    cJSON_Delete(doc);
done:
    free(key);
    params_free(&p);
}

/* ---- figures drawn by the C renderer */

static const char *const FIGURE_KINDS[] = {"heatmap",  "measure", "diagram",  "barcode",
                                           "skeleton", "graph",   "overview", "sphere"};

static ats_status figure_draw(ats_server *srv, const char *kind, const char *path, const params *p,
                              srv_text *t, ats_figure_memory *mem, ats_error *err) {
    char title[256];
    if (!strcmp(kind, "overview")) {
        ats_status st = overview_compute(srv, t, err);
        if (st) return st;
        int h1 = !strcmp(p->stat, "h1");
        if (h1 && !t->ov_h1)
            return ats_error_set(err, ATS_ERR_RANGE,
                                 "total H1 persistence of every head is computed for texts of "
                                 "at most %d tokens",
                                 OVERVIEW_H1_MAX_TOKENS);
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        ho.fig.memory = mem;
        snprintf(title, sizeof title, "%s of every head",
                 h1 ? "total H1 persistence" : "mean token entropy");
        ho.fig.title = title;
        ho.row_title = "layer";
        ho.col_title = "head";
        ho.index_labels = 1;
        ho.value_title = h1 ? "JS distance" : "bits";
        return ats_render_heatmap(path, t->L, t->H, h1 ? t->ov_h1 : t->ov_entropy, &ho, err);
    }
    size_t n = t->n;
    const char *const *labels = (const char *const *)t->labels;
    if (!strcmp(kind, "heatmap") || !strcmp(kind, "graph")) {
        double *a = malloc(n * n * sizeof *a);
        if (!a) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        const float *src = t->att + ((size_t)p->layer * t->H + (size_t)p->head) * n * n;
        for (size_t i = 0; i < n * n; i++) a[i] = src[i];
        ats_status st;
        if (!strcmp(kind, "heatmap")) {
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.memory = mem;
            snprintf(title, sizeof title, "attention, layer %ld head %ld", p->layer, p->head);
            ho.fig.title = title;
            ho.row_labels = ho.col_labels = labels;
            ho.row_title = "query";
            ho.col_title = "key";
            ho.value_title = "attention";
            st = ats_render_heatmap(path, n, n, a, &ho, err);
        } else {
            ats_graph_options go;
            ats_graph_options_init(&go);
            go.fig.memory = mem;
            snprintf(title, sizeof title, "attention graph, layer %ld head %ld", p->layer, p->head);
            go.fig.title = title;
            go.labels = labels;
            st = ats_render_attention_graph(path, n, a, 0.05, t->causal, &go, err);
        }
        free(a);
        return st;
    }
    srv_head *hr = NULL;
    int cached;
    ats_status st = head_get(srv, t, p, &hr, &cached, err);
    if (!st) {
        double threshold = isnan(p->threshold) ? hr->median : p->threshold;
        int dims[3] = {0, 1, 2};
        ats_figure_options fo;
        ats_figure_options_init(&fo);
        fo.memory = mem;
        fo.title = title;
        if (!strcmp(kind, "measure")) {
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.memory = mem;
            snprintf(title, sizeof title, "%s, layer %ld head %ld",
                     p->measure == MEASURE_KL   ? "KL divergence"
                     : p->measure == MEASURE_JS ? "Jensen–Shannon divergence"
                                                : "Jensen–Shannon distance",
                     p->layer, p->head);
            ho.fig.title = title;
            ho.row_labels = ho.col_labels = labels;
            ho.row_title = "token i";
            ho.col_title = "token j";
            ho.value_title = "bits";
            st = ats_render_heatmap(path, n, n, hr->matrix, &ho, err);
        } else if (!strcmp(kind, "diagram")) {
            snprintf(title, sizeof title, "persistence diagram, layer %ld head %ld", p->layer,
                     p->head);
            st = ats_render_diagram(path, (size_t)p->max_dim + 1, hr->rips.dims, dims, &fo, err);
        } else if (!strcmp(kind, "barcode")) {
            snprintf(title, sizeof title, "barcode, layer %ld head %ld", p->layer, p->head);
            st = ats_render_barcode(path, (size_t)p->max_dim + 1, hr->rips.dims, dims, &fo, err);
        } else {
            ats_graph_options go;
            ats_graph_options_init(&go);
            go.fig.memory = mem;
            snprintf(title, sizeof title, "Rips complex at %.4g, layer %ld head %ld", threshold,
                     p->layer, p->head);
            go.fig.title = title;
            go.labels = labels;
            st = ats_render_skeleton(path, n, hr->lower, threshold, &go, err);
        }
    }
    srv_head_release(srv, hr);
    return st;
}

static void figure_params(ats_server *srv, const char *kind, const char *format, const params *pp,
                          srv_reply *reply) {
    params p = *pp;
    if (p.which == 2 && !p.text2) {
        srv_reply_error(reply, 400, "'which' is 2 but there is no 'text2'");
        return;
    }
    if (!strcmp(kind, "sphere")) {
        sphere_figure(srv, format, &p, reply);
        return;
    }
    if (p.which == 2) {
        p.text = p.text2;
        p.text_len = p.text2_len;
    }
    p.text2 = NULL;
    srv_text *t[2];
    size_t count;
    int cached;
    double fwd;
    if (!texts_get(srv, &p, t, &count, &cached, &fwd, reply)) return;
    ats_error err;
    ats_error_clear(&err);
    /* drawn into memory: no temporary file */
    ats_figure_memory mem = {!strcmp(format, "png") ? ATS_FIGURE_PNG : ATS_FIGURE_SVG, NULL, 0};
    char path[32];
    snprintf(path, sizeof path, "figure.%s", format);
    pthread_mutex_lock(&srv->render_lock);
    ats_status st = figure_draw(srv, kind, path, &p, t[0], &mem, &err);
    pthread_mutex_unlock(&srv->render_lock);
    texts_release(srv, t, count);
    if (st) {
        ats_figure_memory_free(&mem);
        reply_fail(reply, &err);
        return;
    }
    char *data = (char *)mem.data;
    size_t len = mem.size;
    free(reply->body);
    reply->body = data;
    reply->len = len;
    reply->status = 200;
    reply->content_type = !strcmp(format, "png") ? "image/png" : "image/svg+xml";
}

void srv_api_figure(ats_server *srv, const char *kind, const char *format, const cJSON *req,
                    srv_reply *reply) {
    int known = 0;
    for (size_t k = 0; k < sizeof FIGURE_KINDS / sizeof FIGURE_KINDS[0]; k++)
        if (!strcmp(kind, FIGURE_KINDS[k])) known = 1;
    if (!known) {
        srv_reply_error(reply, 404,
                        "unknown figure '%s' (heatmap, measure, diagram, barcode, skeleton, "
                        "graph, overview, sphere)",
                        kind);
        return;
    }
    if (strcmp(format, "png") && strcmp(format, "svg")) {
        srv_reply_error(reply, 404, "figures are .png or .svg, not .%s", format);
        return;
    }
    params p;
    if (parse_params(srv, req, strcmp(kind, "overview") != 0, &p, reply))
        figure_params(srv, kind, format, &p, reply);
    params_free(&p);
}
