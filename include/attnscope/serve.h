/* attnscope serve: the interactive viewer's HTTP server (libmicrohttpd).
 *
 * A server holds one model and its tokenizer in memory and answers a small JSON API plus the
 * viewer page's static files:
 *
 *   GET  /, /index.html, /app.js, /style.css   the viewer (a fixed whitelist of files read from
 *                                              the web folder; nothing else is ever opened)
 *   GET  /api/info                             model name, layers, heads, max tokens, limits
 *   POST /api/analyze                          JSON {text, text2?, layer, head, threshold,
 *                                              measure: "jsd"|"js"|"kl", max_dim?} ->
 *                                              tokens, the head's attention [n][n], the measure
 *                                              matrix [n][n], persistence diagrams (as
 *                                              `attnscope rips --json`), H1 cycles by token, a
 *                                              3-D layout, the Rips complex's edges and
 *                                              triangles at the threshold, H0 clusters at the
 *                                              threshold, and for two texts the bottleneck and
 *                                              1-Wasserstein distances between their diagrams
 *   GET|POST /api/overview                     [L][H] grids of per-head summaries of a text
 *                                              (mean token entropy in bits, total H1
 *                                              persistence of the JS-distance metric; the
 *                                              latter null for texts over 128 tokens)
 *   GET|POST /api/figure/KIND.png|svg          a figure drawn by the C renderer (render.h);
 *                                              KIND is heatmap, measure, diagram, barcode,
 *                                              skeleton, graph or overview; parameters as for
 *                                              analyze (query string or JSON body), plus
 *                                              which=1|2 for the text
 *
 * Topology uses the measure symmetrised, (M + Mᵀ)/2 (KL is smoothed with ε = 1e-9 as
 * `attnscope divergence` does); with the default measure "jsd" the numbers are exactly those of
 * `attnscope topo` for the same text and head.
 *
 * Errors are JSON {"error": "message"} with status 400 (bad JSON, parameters out of range,
 * invalid UTF-8, too many tokens), 404 (unknown path), 405 (wrong method), 413 (body larger
 * than the limit) or 500. Forward passes of the most recent texts are cached (keyed by text),
 * so moving the layer, head or threshold does not run the model again. Requests are served
 * concurrently, one thread per connection; the model runs one forward pass at a time.
 *
 * The server never prints; its threads never touch signals (the caller decides how to wait and
 * when to stop). */
#ifndef ATTNSCOPE_SERVE_H
#define ATTNSCOPE_SERVE_H

#include "attnscope/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_server ats_server;

typedef struct ats_server_options {
    const char *model;      /* model directory or hub name (model.h); required */
    const char *host;       /* numeric IPv4 or IPv6 address to bind (default "127.0.0.1") */
    int port;               /* TCP port; 0 (default) lets the system choose (ats_server_port) */
    const char *web_dir;    /* folder holding index.html, app.js, style.css; required */
    int n_threads;          /* threads of a forward pass; 0 (default) leaves them as they are */
    size_t max_body;        /* largest request body in bytes (default 65536) */
    size_t max_tokens;      /* longest text in tokens; 0 (default): the model's maximum */
    unsigned max_conns;     /* simultaneous connections (default 64) */
    unsigned cache_entries; /* texts whose forward passes are kept (default 16) */
    size_t cache_bytes;     /* and at most this many bytes of their attention (default 256 MiB;
                               the text in use is kept whatever its size) */
} ats_server_options;

/* Fills the defaults above (model and web_dir NULL). */
void ats_server_options_init(ats_server_options *opt);

/* Loads the model and its tokenizer and starts listening. On success the server answers
 * requests on its own threads until ats_server_stop. Errors: the model or tokenizer cannot be
 * loaded (the model's message), a vision model (ATS_ERR_INVALID), a bad host, a web folder
 * without index.html, or a port that cannot be bound (ATS_ERR_IO). */
ats_status ats_server_start(const ats_server_options *opt, ats_server **out, ats_error *err);

/* The port the server listens on (useful after port 0). */
int ats_server_port(const ats_server *srv);

/* Stops listening, waits for the requests in progress to finish, and frees everything.
 * NULL is a no-op. */
void ats_server_stop(ats_server *srv);

#ifdef __cplusplus
}
#endif
#endif
