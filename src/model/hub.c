/* Model resolution from a directory or the HuggingFace cache layout. */
#include "attnscope/hub.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The hub cache root, following huggingface_hub's environment variables. */
static char *cache_root(void) {
    const char *v = getenv("HF_HUB_CACHE");
    if (v && *v) return strdup(v);
    v = getenv("HF_HOME");
    if (v && *v) return ats_path_join(v, "hub");
    v = getenv("XDG_CACHE_HOME");
    if (v && *v) return ats_path_join(v, "huggingface/hub");
    v = getenv("HOME");
    if (v && *v) return ats_path_join(v, ".cache/huggingface/hub");
    return NULL;
}

ats_status ats_model_resolve(const char *name, char **dir, ats_error *err) {
    *dir = NULL;
    if (!name || !*name) return ats_error_set(err, ATS_ERR_INVALID, "model: empty model name");
    struct stat sb;
    /* a file: a GGUF model (ats_model_load and ats_tokenizer_load read it as one) */
    if (is_dir(name) || (stat(name, &sb) == 0 && S_ISREG(sb.st_mode))) {
        *dir = strdup(name);
        return *dir ? ATS_OK : ats_error_set(err, ATS_ERR_NOMEM, "model: out of memory");
    }
    /* "org/name" -> "models--org--name"; a name may not climb out of the cache */
    if (strstr(name, "..") || name[0] == '/')
        return ats_error_set(err, ATS_ERR_IO, "model '%s': no such directory", name);
    char *root = cache_root();
    if (!root)
        return ats_error_set(err, ATS_ERR_IO,
                             "model '%s': not a directory and no HuggingFace cache is known "
                             "(set HF_HOME)",
                             name);
    size_t len = strlen(name);
    char *repo = malloc(len * 2 + 16);
    if (!repo) {
        free(root);
        return ats_error_set(err, ATS_ERR_NOMEM, "model: out of memory");
    }
    strcpy(repo, "models--");
    char *w = repo + 8;
    for (const char *p = name; *p; p++) {
        if (*p == '/') {
            *w++ = '-';
            *w++ = '-';
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    char *base = ats_path_join(root, repo);
    char *snapshots = base ? ats_path_join(base, "snapshots") : NULL;
    char *found = NULL;
    if (snapshots) {
        /* refs/main names the revision; otherwise take the newest snapshot */
        char *ref_path = ats_path_join(base, "refs/main");
        FILE *fp = ref_path ? fopen(ref_path, "r") : NULL;
        char rev[128];
        if (fp && fgets(rev, sizeof rev, fp)) {
            rev[strcspn(rev, "\r\n")] = '\0';
            char *cand = ats_path_join(snapshots, rev);
            if (cand && is_dir(cand))
                found = cand;
            else
                free(cand);
        }
        if (fp) fclose(fp);
        free(ref_path);
        if (!found) {
            DIR *d = opendir(snapshots);
            time_t best = 0;
            struct dirent *de;
            while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.') continue;
                char *cand = ats_path_join(snapshots, de->d_name);
                struct stat st;
                if (cand && stat(cand, &st) == 0 && S_ISDIR(st.st_mode) &&
                    (!found || st.st_mtime > best)) {
                    free(found);
                    found = cand;
                    best = st.st_mtime;
                } else {
                    free(cand);
                }
            }
            if (d) closedir(d);
        }
    }
    ats_status status = ATS_OK;
    if (found)
        *dir = found;
    else
        status = ats_error_set(err, ATS_ERR_IO,
                               "model '%s': not a directory, and not in the HuggingFace cache "
                               "(looked in %s)",
                               name, snapshots ? snapshots : root);
    free(root);
    free(repo);
    free(base);
    free(snapshots);
    return status;
}

/* ---- download from the hub ($HF_ENDPOINT/<repo>/resolve/<revision>/<file>) */

#ifdef ATS_HAVE_CURL
#include <curl/curl.h>
#include <dlfcn.h>

/* libcurl is opened when a download starts, not linked: it and the TLS stack under it are 30
 * shared libraries that every other command would load for nothing (9 ms and 3.5 MB at each
 * start). The handle stays open for the process; dlopen counts its references. */
typedef struct curl_api {
    CURL *(*easy_init)(void);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    void (*easy_cleanup)(CURL *);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} curl_api;

static int curl_api_open(curl_api *api) {
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) return 0;
    /* POSIX: a void * from dlsym converts to a function pointer */
    *(void **)&api->easy_init = dlsym(h, "curl_easy_init");
    *(void **)&api->easy_setopt = dlsym(h, "curl_easy_setopt");
    *(void **)&api->easy_perform = dlsym(h, "curl_easy_perform");
    *(void **)&api->easy_getinfo = dlsym(h, "curl_easy_getinfo");
    *(void **)&api->easy_strerror = dlsym(h, "curl_easy_strerror");
    *(void **)&api->easy_cleanup = dlsym(h, "curl_easy_cleanup");
    *(void **)&api->slist_append = dlsym(h, "curl_slist_append");
    *(void **)&api->slist_free_all = dlsym(h, "curl_slist_free_all");
    return api->easy_init && api->easy_setopt && api->easy_perform && api->easy_getinfo &&
           api->easy_strerror && api->easy_cleanup && api->slist_append && api->slist_free_all;
}

typedef struct fetch {
    FILE *fp;
    char commit[64];
} fetch;

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    fetch *f = ud;
    return fwrite(p, size, n, f->fp);
}

/* remembers X-Repo-Commit: the revision's commit names the snapshot folder */
static size_t on_header(char *p, size_t size, size_t n, void *ud) {
    fetch *f = ud;
    size_t len = size * n;
    const char *key = "x-repo-commit:";
    size_t kl = strlen(key);
    if (len > kl && !strncasecmp(p, key, kl)) {
        const char *v = p + kl;
        while (*v == ' ' && v < p + len) v++;
        size_t k = 0;
        while (v < p + len && k + 1 < sizeof f->commit &&
               ((*v >= '0' && *v <= '9') || (*v >= 'a' && *v <= 'f')))
            f->commit[k++] = *v++;
        f->commit[k] = '\0';
    }
    return len;
}

/* GET url into path (via path.part, renamed on success). *http receives the status (0 when
 * the transfer itself failed). */
static ats_status get_file(const curl_api *api, CURL *c, const char *url, const char *path,
                           long *http, fetch *f, ats_error *err) {
    size_t pl = strlen(path);
    char *part = malloc(pl + 6);
    if (!part) return ats_error_set(err, ATS_ERR_NOMEM, "download: out of memory");
    memcpy(part, path, pl);
    memcpy(part + pl, ".part", 6);
    f->fp = fopen(part, "wb");
    if (!f->fp) {
        ats_status rc =
            ats_error_set(err, ATS_ERR_IO, "%s: cannot write: %s", part, strerror(errno));
        free(part);
        return rc;
    }
    api->easy_setopt(c, CURLOPT_URL, url);
    CURLcode cc = api->easy_perform(c);
    int wrote = fclose(f->fp) == 0;
    *http = 0;
    api->easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
    ats_status rc = ATS_OK;
    if (cc != CURLE_OK)
        rc = ats_error_set(err, ATS_ERR_IO, "download %s: %s", url, api->easy_strerror(cc));
    else if (*http != 200)
        rc = ats_error_set(err, ATS_ERR_IO, "download %s: HTTP %ld", url, *http);
    else if (!wrote || rename(part, path) != 0)
        rc = ats_error_set(err, ATS_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    if (rc) remove(part);
    free(part);
    return rc;
}

ats_status ats_model_download(const char *name, const char *revision, char **dir, ats_error *err) {
    *dir = NULL;
    if (!revision || !*revision) revision = "main";
    int slashes = 0;
    for (const char *p = name; *p; p++) {
        int ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                 *p == '-' || *p == '_' || *p == '.' || *p == '/';
        slashes += *p == '/';
        if (!ok) return ats_error_set(err, ATS_ERR_INVALID, "model '%s': not a hub name", name);
    }
    for (const char *p = revision; *p; p++)
        if (*p == '/' || *p == '\\')
            return ats_error_set(err, ATS_ERR_INVALID, "revision '%s': not allowed", revision);
    if (!*name || slashes > 1 || name[0] == '/' || name[0] == '.' || strstr(name, ".."))
        return ats_error_set(err, ATS_ERR_INVALID, "model '%s': not a hub name", name);
    curl_api api_s;
    const curl_api *api = &api_s;
    if (!curl_api_open(&api_s))
        return ats_error_set(err, ATS_ERR_IO,
                             "model '%s': cannot download: libcurl (libcurl.so.4) is not installed",
                             name);
    const char *endpoint = getenv("HF_ENDPOINT");
    if (!endpoint || !*endpoint) endpoint = "https://huggingface.co";
    size_t el = strlen(endpoint);
    while (el > 0 && endpoint[el - 1] == '/') el--;
    char *root = cache_root();
    if (!root)
        return ats_error_set(err, ATS_ERR_IO, "model '%s': no HuggingFace cache (set HF_HOME)",
                             name);
    size_t cap = strlen(root) + strlen(name) * 2 + strlen(revision) + el + 512;
    char *base = malloc(cap), *url = malloc(cap), *path = malloc(cap), *tmpdir = malloc(cap);
    CURL *c = api->easy_init();
    ats_status rc = ATS_OK;
    fetch f = {0};
    if (!base || !url || !path || !tmpdir || !c) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "download: out of memory");
        goto done;
    }
    /* <root>/models--org--name */
    int w = snprintf(base, cap, "%s/models--", root);
    for (const char *p = name; *p; p++) {
        if (*p == '/')
            w += snprintf(base + w, cap - (size_t)w, "--");
        else
            base[w++] = *p;
    }
    base[w] = '\0';
    /* files land in a private folder first, renamed to snapshots/<commit> once complete */
    snprintf(tmpdir, cap, "%s/.download-%ld", base, (long)getpid());
    if ((rc = ats_dir_create(tmpdir, err))) goto done;
    api->easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    api->easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    api->easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
    api->easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    api->easy_setopt(c, CURLOPT_WRITEDATA, &f);
    api->easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    api->easy_setopt(c, CURLOPT_HEADERDATA, &f);
    api->easy_setopt(c, CURLOPT_USERAGENT, "attnscope/0.1");
    struct curl_slist *hdr = NULL;
    const char *token = getenv("HF_TOKEN");
    if (token && *token) {
        char auth[1024];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdr = api->slist_append(hdr, auth);
        api->easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    }
    /* config.json and the weights are required; the rest is fetched where the model has it */
    static const char *const FILES[] = {"config.json",
                                        "model.safetensors",
                                        "pytorch_model.bin",
                                        "tokenizer.json",
                                        "tokenizer_config.json",
                                        "special_tokens_map.json",
                                        "vocab.txt",
                                        "vocab.json",
                                        "merges.txt",
                                        "preprocessor_config.json"};
    int have_weights = 0;
    char commit[64] = "";
    for (size_t i = 0; i < sizeof FILES / sizeof FILES[0]; i++) {
        const char *file = FILES[i];
        if (!strcmp(file, "pytorch_model.bin") && have_weights) continue;
        snprintf(url, cap, "%.*s/%s/resolve/%s/%s", (int)el, endpoint, name, revision, file);
        snprintf(path, cap, "%s/%s", tmpdir, file);
        long http;
        f.commit[0] = '\0';
        ats_error e;
        rc = get_file(api, c, url, path, &http, &f, &e);
        int required = i == 0 || !strcmp(file, "pytorch_model.bin");
        if (rc) {
            if (http == 404 && !required) {
                rc = ATS_OK;
                continue;
            }
            rc = ats_error_set(err, rc, "model '%s': %s", name, e.message);
            goto done;
        }
        if (i == 0 && f.commit[0]) snprintf(commit, sizeof commit, "%s", f.commit);
        if (!strcmp(file, "model.safetensors") || !strcmp(file, "pytorch_model.bin"))
            have_weights = 1;
    }
    /* snapshots/<commit or revision>, refs/<revision> */
    const char *snap = commit[0] ? commit : revision;
    snprintf(path, cap, "%s/snapshots", base);
    if ((rc = ats_dir_create(path, err))) goto done;
    snprintf(path, cap, "%s/snapshots/%s", base, snap);
    if (is_dir(path)) { /* another download won: replace it */
        DIR *d = opendir(path);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char *fp = ats_path_join(path, de->d_name);
            if (fp) remove(fp);
            free(fp);
        }
        if (d) closedir(d);
        rmdir(path);
    }
    if (rename(tmpdir, path) != 0) {
        rc = ats_error_set(err, ATS_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    snprintf(url, cap, "%s/refs", base);
    ats_error ignored; /* refs/ only names the commit for other tools; the snapshot is in place */
    ats_dir_create(url, &ignored);
    snprintf(url, cap, "%s/refs/%s", base, revision);
    FILE *rf = fopen(url, "w");
    if (rf) {
        fputs(snap, rf);
        fclose(rf);
    }
    *dir = strdup(path);
    if (!*dir) rc = ats_error_set(err, ATS_ERR_NOMEM, "download: out of memory");
    api->slist_free_all(hdr);
done:
    if (rc && tmpdir && is_dir(tmpdir)) {
        DIR *d = opendir(tmpdir);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.') continue;
            char *fp = ats_path_join(tmpdir, de->d_name);
            if (fp) remove(fp);
            free(fp);
        }
        if (d) closedir(d);
        rmdir(tmpdir);
        rmdir(base); /* only when empty: a model that was never there leaves nothing */
    }
    if (c) api->easy_cleanup(c);
    free(root);
    free(base);
    free(url);
    free(path);
    free(tmpdir);
    return rc;
}
#else
ats_status ats_model_download(const char *name, const char *revision, char **dir, ats_error *err) {
    (void)revision;
    *dir = NULL;
    return ats_error_set(err, ATS_ERR_IO,
                         "model '%s': attnscope was built without libcurl, so it cannot download",
                         name);
}
#endif

ats_status ats_model_locate(const char *name, char **dir, ats_error *err) {
    ats_error local;
    ats_status rc = ats_model_resolve(name, dir, &local);
    if (rc == ATS_OK || !name || !*name || name[0] == '/' || name[0] == '.') {
        if (rc) ats_error_set(err, rc, "%s", local.message);
        return rc;
    }
    const char *offline = getenv("HF_HUB_OFFLINE");
    if (offline && *offline && strcmp(offline, "0")) {
        return ats_error_set(err, rc, "%s (HF_HUB_OFFLINE is set, so no download)", local.message);
    }
    ats_error dl;
    rc = ats_model_download(name, NULL, dir, &dl);
    if (rc) return ats_error_set(err, rc, "%s; download failed: %s", local.message, dl.message);
    return ATS_OK;
}
