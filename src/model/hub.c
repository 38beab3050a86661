/* Model resolution from a directory or the HuggingFace cache layout. */
#include "attnscope/hub.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static char *join(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s) return NULL;
    memcpy(s, a, la);
    s[la] = '/';
    memcpy(s + la + 1, b, lb + 1);
    return s;
}

/* The hub cache root, following huggingface_hub's environment variables. */
static char *cache_root(void) {
    const char *v = getenv("HF_HUB_CACHE");
    if (v && *v) return strdup(v);
    v = getenv("HF_HOME");
    if (v && *v) return join(v, "hub");
    v = getenv("XDG_CACHE_HOME");
    if (v && *v) return join(v, "huggingface/hub");
    v = getenv("HOME");
    if (v && *v) return join(v, ".cache/huggingface/hub");
    return NULL;
}

ats_status ats_model_resolve(const char *name, char **dir, ats_error *err) {
    *dir = NULL;
    if (!name || !*name) return ats_error_set(err, ATS_ERR_INVALID, "model: empty model name");
    if (is_dir(name)) {
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
    char *base = join(root, repo);
    char *snapshots = base ? join(base, "snapshots") : NULL;
    char *found = NULL;
    if (snapshots) {
        /* refs/main names the revision; otherwise take the newest snapshot */
        char *ref_path = join(base, "refs/main");
        FILE *fp = ref_path ? fopen(ref_path, "r") : NULL;
        char rev[128];
        if (fp && fgets(rev, sizeof rev, fp)) {
            rev[strcspn(rev, "\r\n")] = '\0';
            char *cand = join(snapshots, rev);
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
                char *cand = join(snapshots, de->d_name);
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
