/* attnscope serve: the interactive viewer's HTTP server (libmicrohttpd).
 *
 * A server holds one model and its tokenizer in memory and answers a small JSON API plus the
 * viewer page's static files:
 *
 *   GET  /, /index.html, /app.js, /style.css   the viewer (a fixed whitelist of files read from
 *                                              the web folder; nothing else is ever opened)
 *   GET  /api/info                             {"model": {name, type, input ("text" or
 *                                              "image"), layers, heads, causal, max_tokens;
 *                                              image models: image_size, patch_size, grid
 *                                              [rows, cols]}, "models" (model A, and B when
 *                                              there are two), "max_body", "max_image" (an
 *                                              image model), "measures"}
 *   POST /api/analyze                          a JSON body of parameters (below) ->
 *        {"model", "layer", "head", "measure", "threshold" (the one used),
 *         "texts": [one object per text: "tokens" [n] (the text each token covers),
 *                   "attention" [n][n] (the head's, float32 values), "matrix" [n][n] (the
 *                   measure), "distance_range" [min, max] and "distance_median" of the
 *                   symmetrised measure, "diagrams" (as `attnscope rips --json`: n_points,
 *                   threshold, dims [{dim, pairs [[birth, death|null]], cycles (H1)}]),
 *                   "cycles" [{birth, death, edges, vertices, tokens}] (H1 classes by token),
 *                   "layout" [n][3] (ats_layout_force at the median distance; independent of
 *                   the threshold), "clusters" {count, labels [n]} (H0 at the threshold),
 *                   "edges" [[i, j]] and "triangles" [[i, j, k]] (i < j < k) of the Rips
 *                   complex at the threshold (at most 20000 triangles; "triangles_truncated")],
 *         "comparison" (two texts): {"dims": [{dim, bottleneck, wasserstein}]} (q = 1,
 *                   internal L-inf, as `attnscope compare`),
 *         "timing": {cached, forward_ms, head_cached, head_ms, total_ms}}
 *   GET|POST /api/overview                     {"layers", "heads", "tokens", "entropy" [L][H]
 *                                              (mean token entropy, bits), "h1_persistence"
 *                                              [L][H] (total finite H1 persistence of the
 *                                              JS-distance metric; null for texts over
 *                                              "h1_max_tokens" = 128 tokens), "timing"}
 *   GET|POST /api/figure/KIND.png|svg          a figure drawn by the C renderer (render.h);
 *                                              KIND is heatmap, measure, diagram, barcode,
 *                                              skeleton, graph, overview or (an image model)
 *                                              sphere: ats_vision's sphere graph figure
 *   POST /api/sphere                           an image model: image, layer, head, edges ->
 *        the fields of `attnscope vision --sphere`'s vision.json for the one image (layer,
 *        head, height, width, grid, images: [{image: "image", dims, scales, sphere: {points
 *        [n][3], edges [[i, j, weight]]}}]) by ats_vision, and "patches" (the label of each
 *        point: p(row,col)); kept, so asking again costs nothing
 *   POST /api/compare                          two models: text (through both), or text
 *        through A and text2 through B, and max_dim -> the fields of `attnscope compare
 *        --model A --model B --json` by ats_compare_models: "models" [{model, layers, heads}],
 *        "bottleneck" and "wasserstein" {"0": [L_A·H_A][L_B·H_B], ...} (head l·H + h; q = 1),
 *        "q", "tokens_a", "tokens_b"; kept, as the sphere
 *
 * Parameters (a JSON object in a POST body, or the query string of a GET, where numbers are
 * decimal strings): text (UTF-8, required), text2 (optional, compared with text), layer and
 * head (0-based, required by analyze and by figures of one head), threshold (finite, >= 0;
 * default the median distance), measure ("jsd" JS distance, default; "js" JS divergence; "kl"
 * KL divergence smoothed by 1e-9; all base 2), max_dim (0..2, default 1), which (1 or 2: the
 * text a figure shows), stat ("entropy" or "h1": the overview figure's grid), model (1 or 2:
 * the model whose head analyze, overview and figures show; default 1), edges (the sphere
 * graph's strongest edges kept; default 0: 2n). An image model takes image (the file's bytes,
 * PNG or JPEG, in base64; at most max_image bytes) instead of text and text2: its tokens are
 * [CLS] and the patches, labelled p(row,col), and the topology is that of all of them, as for
 * a text's tokens.
 *
 * Topology uses the measure symmetrised, (M + Mᵀ)/2; with the default measure "jsd" the
 * numbers are exactly those of `attnscope topo` for the same text and head. Numbers are
 * written by ats_json_number_format (core.h): 17 significant digits (9 for float32 attention),
 * so they read back exactly; NaN null, an infinite distance "inf", an essential death null.
 *
 * Errors are JSON {"error": "message"} with status 400 (bad JSON, parameters out of range,
 * invalid UTF-8, too many tokens, a malformed request line, an image that is not base64, too
 * large or not decodable, a text for an image model or an image for a text model), 403 (a foreign
 * Host or Origin, a missing token), 404 (unknown path), 405 (wrong method), 408 (the request did
 * not arrive within request_timeout), 413 (body larger than the limit), 429 (too many connections
 * from one address), 503 with Retry-After (the queue of heavy work is full, or the server is
 * stopping) or 500. /api/sphere and /api/compare are heavy work as well (the same queue, 503
 * and checks). Forward passes of the most recent texts and images are cached (keyed by model
 * and bytes),
 * so moving the layer, head or threshold does not run the model again, and so are each text's
 * most recent head analyses, so moving the threshold redoes only the complex. Requests are served
 * concurrently, one thread per connection; see n_threads for the forward passes.
 *
 * The server never prints; its threads never touch signals (the caller decides how to wait and
 * when to stop). */
#ifndef ATTNSCOPE_SERVE_H
#define ATTNSCOPE_SERVE_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_server ats_server;

typedef struct ats_server_options {
    const char *model;       /* model directory or hub name (model.h); required */
    const char *host;        /* numeric IPv4 or IPv6 address to bind (default "127.0.0.1") */
    int port;                /* TCP port; 0 (default) lets the system choose (ats_server_port) */
    const char *web_dir;     /* folder holding index.html, app.js, style.css; required */
    int n_threads;           /* 0 (default): forward passes are single-threaded and up to one
                                per core run at once (requests are concurrent); this sets
                                OpenBLAS to one thread, process-wide, at start (model.h).
                                N > 0: one forward pass at a time, with N threads */
    size_t max_body;         /* largest request body in bytes (default 65536) */
    size_t max_tokens;       /* longest text in tokens; 0 (default): the model's maximum */
    unsigned max_conns;      /* simultaneous connections (default 512, each a thread that idles
                                until its request is complete: slow clients cannot starve the
                                others; lowered to what the open-file limit allows) */
    unsigned cache_entries;  /* texts whose forward passes are kept (default 16) */
    size_t cache_bytes;      /* and at most this many bytes of their attention (default 256 MiB;
                                the text in use is kept whatever its size) */
    const char *allow_hosts; /* comma-separated host names (or name:port) that requests may
                                address besides the bound address and localhost, for deliberate
                                remote use; NULL (default): none. Every other Host, and an Origin
                                naming another host, gets 403: a web page the user visits
                                cannot reach the viewer (DNS rebinding, cross-site requests) */
    const char *adapter;     /* a PEFT LoRA adapter directory merged into the model at load
                                (ats_model_load_adapted, model.h); NULL (default): none */
    unsigned max_conns_per_client; /* connections one client address may hold while sending
                                      its request (default 64; more get 429) */
    unsigned request_timeout;      /* seconds a client has to send its whole request line,
                                      headers and body (default 10; then 408 and closed), so
                                      slow clients (slowloris) cannot hold connections */
    unsigned queue;                /* heavy requests (a forward pass or an analysis not in the
                                      cache) that may wait while the work slots (see
                                      n_threads) are busy (default 8); more get 503 with
                                      Retry-After. Queued work whose client has gone is dropped,
                                      running work stops at its next step */
    const char *token;             /* a secret every request must carry (?token=T in the URL, a
                                      cookie the page then gets, or "Authorization: token T");
                                      NULL (default): a random one when host is not a loopback
                                      address, none on loopback (ats_server_token). "" : none */
    const char *model2;            /* a second text model ("model B"), compared with model
                                      (/api/compare) and selected by "model": 2; NULL (default):
                                      none. Both must be text models; the adapter is model's */
    size_t max_image;              /* largest image a request may carry, in bytes of the file
                                      (a vision model; default 4 MiB): the body limit of a
                                      vision model's server is max_body plus its base64 */
    size_t work_memory;            /* bytes one head's persistence computation may take
                                      (default 1 GiB): a request estimated to need more gets
                                      400 with the estimate, so that the server's memory stays
                                      under the model + cache_bytes + kept answers + this much
                                      per work slot */
} ats_server_options;

/* Fills the defaults above (model and web_dir NULL). */
void ats_server_options_init(ats_server_options *opt);

/* Loads the model (and model2) with its tokenizer (ats_session_open_adapted, analysis.h) and
 * starts listening. On success the server answers requests on its own threads until
 * ats_server_stop. Errors: a model or tokenizer cannot be loaded (the model's message), a vision
 * model as one of two models (ATS_ERR_INVALID), a bad host, a web folder without index.html, or
 * a port that cannot be bound (ATS_ERR_IO). */
ats_status ats_server_start(const ats_server_options *opt, ats_server **out, ats_error *err);

/* The port the server listens on (useful after port 0). */
int ats_server_port(const ats_server *srv);

/* The token requests need ("" when none), to print in the URL as ?token=... */
const char *ats_server_token(const ats_server *srv);

/* Stops listening, drops queued work, tells running work to stop at its next step, waits for
 * the requests in progress to finish, and frees everything. NULL is a no-op. */
void ats_server_stop(ats_server *srv);

/* As ats_server_stop, but waits at most timeout_ms for the requests in progress (a forward
 * pass or a persistence computation is not interrupted midway). Returns 1 when everything
 * stopped and srv was freed; 0 when some request still runs: srv is then left as it is, for a
 * process that is about to exit anyway (`attnscope serve` on SIGTERM). */
int ats_server_stop_within(ats_server *srv, unsigned timeout_ms);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
