/* attnscope serve: the interactive viewer on http://127.0.0.1:PORT/. */
#include "cli.h"
#include "attnscope/serve.h"

#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char SERVE_USAGE[] =
    "usage: attnscope serve --model M [--model M2] [--port P] [--host ADDR] [--web DIR]\n"
    "                       [--threads N] [--max-tokens N] [--max-body BYTES]\n"
    "                       [--max-image BYTES] [--allow-host H[,H...]] [--queue N]\n"
    "                       [--work-memory MIB]\n"
    "                       [--request-timeout S] [--max-client-conns N] [--token T]\n\n"
    "Serves the interactive viewer and its JSON API (see include/attnscope/serve.h) on\n"
    "http://ADDR:P/, holding model M (a directory, a HuggingFace-cache name or a GGUF file)\n"
    "in memory.\n"
    "A vision model (ViT) takes an image (PNG, JPEG) instead of texts: the page uploads it, shows\n"
    "each head's attention between [CLS] and the patches p(row,col), the topology, and the\n"
    "attention graph of the patches on a Fibonacci sphere (as vision --sphere; /api/sphere).\n"
    "Two text models (--model A --model B) add a view that compares one text across them:\n"
    "every head of A against every head of B by bottleneck and Wasserstein distance (as\n"
    "compare --model A --model B; /api/compare), a click on a cell showing both heads.\n"
    "Stops on SIGINT or SIGTERM (exit 0) within a second: queued work is dropped, and work\n"
    "still running after 0.25 s is abandoned.\n\n"
    "  --port P          TCP port (default 8765; 0 lets the system choose; the URL is printed)\n"
    "  --host ADDR       numeric address to bind (default 127.0.0.1: this machine only)\n"
    "  --web DIR         the viewer's files (default: web/ beside the executable's folder)\n"
    "  --threads N       one forward pass at a time with N threads (default: single-threaded\n"
    "                    forward passes, as many at once as there are cores)\n"
    "  --max-tokens N    longest text in tokens (default: the model's maximum)\n"
    "  --max-body BYTES  largest request body (default 65536)\n"
    "  --max-image BYTES largest image file a request may carry (vision model; default 4 MiB;\n"
    "                    larger images get 400)\n"
    "  --adapter DIR     a PEFT LoRA adapter merged into the model at load\n"
    "  --allow-host H    host names (or name:port) requests may address besides the bound\n"
    "                    address and localhost, for deliberate remote use; any other Host\n"
    "                    header, or an Origin naming another site, gets 403\n"
    "  --queue N         heavy requests (forward pass or analysis) that may wait for a free\n"
    "                    slot (default 8); more get 503 with Retry-After\n"
    "  --work-memory MIB memory one head's persistence computation may take (default 1024);\n"
    "                    a request estimated to need more gets 400 with the estimate\n"
    "  --request-timeout S  seconds a client has to send its request (default 10; then 408)\n"
    "  --max-client-conns N connections one address may hold while sending (default 64)\n"
    "  --token T         a secret every request must carry (?token=T, then a cookie); by\n"
    "                    default a random one when ADDR is not loopback, none on loopback;\n"
    "                    the printed URL includes it\n";

static sem_t stop_sem;
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
    stop_signal = sig;
    sem_post(&stop_sem);
}

/* web/ next to the executable's folder (build/attnscope -> web/), or inside it. */
static int find_web_dir(char *out, size_t size) {
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k <= 0) return 0;
    exe[k] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return 0;
    *slash = '\0';
    const char *rel[] = {"/../web", "/web", "/../share/attnscope/web"};
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        char index[PATH_MAX + 64];
        snprintf(out, size, "%s%s", exe, rel[i]);
        snprintf(index, sizeof index, "%s/index.html", out);
        if (access(index, R_OK) == 0) return 1;
    }
    return 0;
}

int ats_cmd_serve(int argc, char **argv) {
    ats_server_options opt;
    ats_server_options_init(&opt);
    opt.port = 8765;
    char web[PATH_MAX + 32];
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(SERVE_USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!v) return ats_cli_usage_error("serve", "unknown option or missing value: '%s'", s);
        if (!strcmp(s, "--model")) {
            if (opt.model2) return ats_cli_usage_error("serve", "at most two --model");
            if (opt.model)
                opt.model2 = v;
            else
                opt.model = v;
        } else if (!strcmp(s, "--host")) {
            opt.host = v;
        } else if (!strcmp(s, "--allow-host")) {
            opt.allow_hosts = v;
        } else if (!strcmp(s, "--web")) {
            opt.web_dir = v;
        } else if (!strcmp(s, "--port")) {
            if (!ats_cli_parse_long(v, 0, 65535, &x))
                return ats_cli_usage_error("serve", "--port needs 0..65535");
            opt.port = (int)x;
        } else if (!strcmp(s, "--threads")) {
            if (!ats_cli_parse_long(v, 0, 1024, &x))
                return ats_cli_usage_error("serve", "--threads needs 0..1024");
            opt.n_threads = (int)x;
        } else if (!strcmp(s, "--max-tokens")) {
            if (!ats_cli_parse_long(v, 2, 1 << 20, &x))
                return ats_cli_usage_error("serve", "--max-tokens needs an integer >= 2");
            opt.max_tokens = (size_t)x;
        } else if (!strcmp(s, "--max-body")) {
            if (!ats_cli_parse_long(v, 1024, 1L << 30, &x))
                return ats_cli_usage_error("serve", "--max-body needs 1024..2^30 bytes");
            opt.max_body = (size_t)x;
        } else if (!strcmp(s, "--max-image")) {
            if (!ats_cli_parse_long(v, 1024, 1L << 30, &x))
                return ats_cli_usage_error("serve", "--max-image needs 1024..2^30 bytes");
            opt.max_image = (size_t)x;
        } else if (!strcmp(s, "--work-memory")) {
            if (!ats_cli_parse_long(v, 16, 1L << 30, &x))
                return ats_cli_usage_error("serve", "--work-memory needs 16..2^30 MiB");
            opt.work_memory = (size_t)x << 20;
        } else if (!strcmp(s, "--queue")) {
            if (!ats_cli_parse_long(v, 0, 100000, &x))
                return ats_cli_usage_error("serve", "--queue needs 0..100000");
            opt.queue = (unsigned)x;
        } else if (!strcmp(s, "--request-timeout")) {
            if (!ats_cli_parse_long(v, 1, 3600, &x))
                return ats_cli_usage_error("serve", "--request-timeout needs 1..3600 seconds");
            opt.request_timeout = (unsigned)x;
        } else if (!strcmp(s, "--max-client-conns")) {
            if (!ats_cli_parse_long(v, 1, 100000, &x))
                return ats_cli_usage_error("serve", "--max-client-conns needs 1..100000");
            opt.max_conns_per_client = (unsigned)x;
        } else if (!strcmp(s, "--token")) {
            opt.token = v;
        } else {
            return ats_cli_usage_error("serve", "unknown option '%s' (see --help)", s);
        }
        i++;
    }
    if (!opt.model) return ats_cli_usage_error("serve", "--model M is required");
    opt.adapter = ats_cli_adapter();
    if (!opt.web_dir) {
        if (!find_web_dir(web, sizeof web))
            return ats_cli_usage_error("serve", "cannot find the viewer's files; give --web DIR");
        opt.web_dir = web;
    }
    /* SIGINT and SIGTERM may be delivered to any thread (OpenBLAS starts its threads before
     * main, so blocking them here would not cover those): the handler only posts a semaphore
     * (async-signal-safe) and the main thread stops the server. */
    if (sem_init(&stop_sem, 0, 0) != 0)
        return ats_cli_usage_error("serve", "cannot create a semaphore");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    ats_server *srv = NULL;
    ats_error err;
    ats_error_clear(&err);
#ifdef __GLIBC__
    /* glibc raises its mmap threshold as large blocks are freed; the forward passes' and
     * analyses' buffers then come from the per-thread arenas, which keep them: with a thread per
     * connection the server grew to twice its working memory (bench/serve_load's heavy clients,
     * 30 s: 937 MB against 459 MB with this). A fixed threshold maps every block over 1 MiB and
     * gives it back when it is freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    if (ats_server_start(&opt, &srv, &err)) return ats_cli_fail(&err);
    const char *host = opt.host ? opt.host : "127.0.0.1";
    int v6 = strchr(host, ':') != NULL;
    const char *token = ats_server_token(srv);
    printf("attnscope serve: %s%s%s on http://%s%s%s:%d/%s%s\n", opt.model,
           opt.model2 ? " and " : "", opt.model2 ? opt.model2 : "", v6 ? "[" : "", host,
           v6 ? "]" : "", ats_server_port(srv), token[0] ? "?token=" : "", token);
    fflush(stdout);
    while (sem_wait(&stop_sem) != 0 && errno == EINTR) {
    }
    const char *name = stop_signal == SIGINT ? "SIGINT" : "SIGTERM";
    /* a persistence computation stops within milliseconds (the server's ats_cancel_fn); a
     * forward pass is not interrupted midway: what is still running after a quarter of a second
     * is abandoned with the process (its answer would be thrown away), so a stop takes under a
     * second */
    if (!ats_server_stop_within(srv, 250)) {
        fprintf(stderr, "attnscope serve: stopped (%s; work in progress abandoned)\n", name);
        fflush(NULL);
        _exit(ATS_EXIT_OK);
    }
    sem_destroy(&stop_sem);
    fprintf(stderr, "attnscope serve: stopped (%s)\n", name);
    return ATS_EXIT_OK;
}
