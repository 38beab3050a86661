/* The server's cache of forward passes: the most recently used texts, keyed by their bytes. */
#include "serve_internal.h"
#include "attnscope/vision.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double srv_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

void srv_head_free(srv_head *h) {
    if (!h) return;
    free(h->matrix);
    free(h->lower);
    free(h->layout);
    ats_rips_result_free(&h->rips);
    free(h);
}

void srv_head_release(ats_server *srv, srv_head *h) {
    if (!h) return;
    pthread_mutex_lock(&srv->cache_lock);
    unsigned left = --h->refs;
    pthread_mutex_unlock(&srv->cache_lock);
    if (left == 0) srv_head_free(h);
}

/* Drops the text's references to its heads; called with the cache lock held, as requests may
 * still hold references of their own. */
static void text_detach_heads_locked(srv_text *t) {
    for (size_t i = 0; i < SRV_HEADS_PER_TEXT; i++) {
        if (t->heads[i] && --t->heads[i]->refs == 0) srv_head_free(t->heads[i]);
        t->heads[i] = NULL;
    }
}

/* Frees a text nobody references any more (its heads detached). */
static void text_free(srv_text *t) {
    if (!t) return;
    free(t->text);
    free(t->att);
    if (t->labels)
        for (size_t i = 0; i < t->n; i++) free(t->labels[i]);
    free(t->labels);
    free(t->ov_entropy);
    free(t->ov_h1);
    free(t);
}

static char *dup_bytes(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* The tokens of a text (ids, and the labels into t), checked against the model's length. */
static ats_status text_tokens(const srv_model *m, const char *text, size_t len, srv_text *t,
                              ats_encoding *enc, ats_error *err) {
    ats_status st = ats_tokenizer_encode(m->tok, text, len, 1, enc, err);
    if (st) return st;
    if (enc->count < 2)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "the text gives %zu token%s; the analysis needs at least 2",
                             enc->count, enc->count == 1 ? "" : "s");
    if (enc->count > m->max_tokens)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "the text gives %zu tokens; this server takes at most %zu", enc->count,
                             m->max_tokens);
    t->labels = calloc(enc->count, sizeof *t->labels);
    if (!t->labels) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    st = ats_token_labels(enc, text, t->labels, err);
    if (!st) t->n = enc->count;
    return st;
}

/* An image file's bytes decoded and preprocessed as the model's ViTImageProcessor does
 * (pixels [C][S][S], malloc'd), and the labels of its tokens: "[CLS]", then "p(r,c)". */
static ats_status image_pixels(const srv_model *m, const char *bytes, size_t len, srv_text *t,
                               float **pixels, ats_error *err) {
    ats_image img;
    ats_status st = ats_image_decode(bytes, len, "the image", &img, err);
    if (st) return st;
    ats_image_prep prep;
    ats_model_image_prep(m->model, &prep);
    size_t S = (size_t)prep.size, C = (size_t)m->info->n_channels,
           side = m->info->patch_size > 0 ? S / (size_t)m->info->patch_size : 0;
    size_t count = C * S * S;
    *pixels = malloc((count ? count : 1) * sizeof **pixels);
    t->n = side * side + 1;
    t->labels = calloc(t->n, sizeof *t->labels);
    if (!*pixels || !t->labels) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st) st = ats_image_preprocess(&img, &prep, *pixels, err);
    for (size_t k = 0; !st && k < t->n; k++) {
        char buf[48];
        if (k)
            snprintf(buf, sizeof buf, "p(%zu,%zu)", (k - 1) / side, (k - 1) % side);
        else
            snprintf(buf, sizeof buf, "[CLS]");
        if (!(t->labels[k] = strdup(buf))) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    ats_image_free(&img);
    return st;
}

static ats_status text_compute(ats_server *srv, int model, const char *text, size_t len,
                               srv_text **out, double *forward_ms, ats_error *err) {
    const srv_model *m = &srv->m[model];
    srv_text *t = calloc(1, sizeof *t);
    if (!t) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_encoding enc;
    memset(&enc, 0, sizeof enc);
    float *pixels = NULL;
    t->model = model;
    t->text = dup_bytes(text, len);
    t->len = len;
    t->causal = m->info->causal;
    ats_status st = t->text ? ATS_OK : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st)
        st = m->tok ? text_tokens(m, text, len, t, &enc, err)
                    : image_pixels(m, text, len, t, &pixels, err);
    if (!st) {
        ats_forward_options fo;
        ats_forward_options_init(&fo);
        fo.capture = ATS_CAPTURE_ATTENTION;
        /* default: OpenBLAS was set to one thread at start; OpenMP's count is per thread */
        fo.n_threads = srv->opt.n_threads > 0 ? srv->opt.n_threads : 0;
        if (srv->opt.n_threads <= 0) omp_set_num_threads(1);
        ats_model_input in = {enc.ids, NULL, NULL, enc.count};
        ats_forward_result res;
        memset(&res, 0, sizeof res);
        double t0 = srv_now_ms();
        st = srv_work_begin(srv, err); /* a slot, kept until the request ends */
        if (!st)
            st = pixels ? ats_model_forward_pixels(m->model, pixels, &fo, &res, err)
                        : ats_model_forward(m->model, &in, &fo, &res, err);
        *forward_ms = srv_now_ms() - t0;
        if (!st) {
            t->L = res.n_layers;
            t->H = res.n_heads;
            t->att = res.attention;
            t->bytes = t->L * t->H * t->n * t->n * sizeof(float);
            res.attention = NULL;
            if (res.n_tokens != t->n)
                st = ats_error_set(err, ATS_ERR_INVALID, "the model returned %zu of %zu tokens",
                                   res.n_tokens, t->n);
        }
        ats_forward_result_free(&res);
    }
    free(pixels);
    ats_encoding_free(&enc);
    if (st) {
        text_free(t);
        return st;
    }
    *out = t;
    return ATS_OK;
}

static srv_text *cache_find(ats_server *srv, int model, const char *text, size_t len) {
    for (size_t i = 0; i < srv->cache_count; i++) {
        srv_text *t = srv->cache[i];
        if (t->model == model && t->len == len && !memcmp(t->text, text, len)) return t;
    }
    return NULL;
}

ats_status srv_text_get(ats_server *srv, int model, const char *text, size_t len, srv_text **out,
                        int *cached, double *forward_ms, ats_error *err) {
    *out = NULL;
    *cached = 0;
    *forward_ms = 0;
    pthread_mutex_lock(&srv->cache_lock);
    srv_text *t = cache_find(srv, model, text, len);
    if (t) {
        t->refs++;
        t->used = ++srv->clock;
        pthread_mutex_unlock(&srv->cache_lock);
        *out = t;
        *cached = 1;
        return ATS_OK;
    }
    pthread_mutex_unlock(&srv->cache_lock);

    srv_text *fresh = NULL;
    ats_status st = text_compute(srv, model, text, len, &fresh, forward_ms, err);
    if (st) return st;

    pthread_mutex_lock(&srv->cache_lock);
    t = cache_find(srv, model, text, len); /* another request may have computed it meanwhile */
    if (t) {
        t->refs++;
        t->used = ++srv->clock;
        pthread_mutex_unlock(&srv->cache_lock);
        text_free(fresh);
        *out = t;
        return ATS_OK;
    }
    size_t bytes = fresh->L * fresh->H * fresh->n * fresh->n * sizeof(float);
    for (size_t i = 0; i < srv->cache_count; i++) bytes += srv->cache[i]->bytes;
    /* evict the least recently used while over the count or the byte budget */
    while (srv->cache_count &&
           (srv->cache_count == srv->opt.cache_entries || bytes > srv->opt.cache_bytes)) {
        size_t lru = 0;
        for (size_t i = 1; i < srv->cache_count; i++)
            if (srv->cache[i]->used < srv->cache[lru]->used) lru = i;
        srv_text *old = srv->cache[lru];
        srv->cache[lru] = srv->cache[--srv->cache_count];
        bytes -= old->bytes;
        if (--old->refs == 0) {
            text_detach_heads_locked(old);
            text_free(old);
        }
    }
    fresh->refs = 2; /* the cache's and the caller's */
    fresh->used = ++srv->clock;
    srv->cache[srv->cache_count++] = fresh;
    pthread_mutex_unlock(&srv->cache_lock);
    *out = fresh;
    return ATS_OK;
}

void srv_text_release(ats_server *srv, srv_text *t) {
    if (!t) return;
    pthread_mutex_lock(&srv->cache_lock);
    unsigned left = --t->refs;
    if (left == 0) text_detach_heads_locked(t);
    pthread_mutex_unlock(&srv->cache_lock);
    if (left == 0) text_free(t);
}

void srv_cache_clear(ats_server *srv) {
    pthread_mutex_lock(&srv->cache_lock);
    for (size_t i = 0; i < srv->cache_count; i++)
        if (--srv->cache[i]->refs == 0) {
            text_detach_heads_locked(srv->cache[i]);
            text_free(srv->cache[i]);
        }
    srv->cache_count = 0;
    for (size_t i = 0; i < SRV_MEMO_ENTRIES; i++) {
        free(srv->memo[i].key);
        free(srv->memo[i].body);
        memset(&srv->memo[i], 0, sizeof srv->memo[i]);
    }
    pthread_mutex_unlock(&srv->cache_lock);
}

char *srv_memo_get(ats_server *srv, const char *key, size_t key_len, size_t *len) {
    char *copy = NULL;
    pthread_mutex_lock(&srv->cache_lock);
    for (size_t i = 0; i < SRV_MEMO_ENTRIES; i++) {
        srv_memo *e = &srv->memo[i];
        if (e->key && e->key_len == key_len && !memcmp(e->key, key, key_len)) {
            e->used = ++srv->clock;
            if ((copy = malloc(e->body_len + 1))) {
                memcpy(copy, e->body, e->body_len + 1);
                *len = e->body_len;
            }
            break;
        }
    }
    pthread_mutex_unlock(&srv->cache_lock);
    return copy;
}

void srv_memo_put(ats_server *srv, const char *key, size_t key_len, const char *body, size_t len) {
    if (key_len + len > SRV_MEMO_BYTES) return;
    char *k = dup_bytes(key, key_len), *b = dup_bytes(body, len);
    if (!k || !b) {
        free(k);
        free(b);
        return;
    }
    pthread_mutex_lock(&srv->cache_lock);
    size_t total = key_len + len;
    for (size_t i = 0; i < SRV_MEMO_ENTRIES; i++)
        total += srv->memo[i].key_len + srv->memo[i].body_len;
    for (;;) { /* the least recently used goes while there is no room */
        size_t lru = SRV_MEMO_ENTRIES, empty = SRV_MEMO_ENTRIES;
        for (size_t i = 0; i < SRV_MEMO_ENTRIES; i++) {
            if (!srv->memo[i].key) {
                if (empty == SRV_MEMO_ENTRIES) empty = i;
            } else if (lru == SRV_MEMO_ENTRIES || srv->memo[i].used < srv->memo[lru].used)
                lru = i;
        }
        if (empty < SRV_MEMO_ENTRIES && total <= SRV_MEMO_BYTES) {
            srv->memo[empty] = (srv_memo){k, b, key_len, len, ++srv->clock};
            break;
        }
        srv_memo *e = &srv->memo[lru];
        total -= e->key_len + e->body_len;
        free(e->key);
        free(e->body);
        memset(e, 0, sizeof *e);
    }
    pthread_mutex_unlock(&srv->cache_lock);
}
