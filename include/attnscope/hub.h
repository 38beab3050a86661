/* attnscope hub: where a model lives. A model is named either by a directory in HuggingFace
 * layout (config.json, weights, tokenizer files) or by a hub name ("org/name" or "name") that
 * is resolved from the HuggingFace cache:
 *     $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub,
 *     else ~/.cache/huggingface/hub
 *     /models--org--name/refs/main holds the revision; snapshots/<revision>/ is the directory
 * (the newest snapshot when refs/main is missing). */
#ifndef ATTNSCOPE_HUB_H
#define ATTNSCOPE_HUB_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

/* Resolves name_or_path to a model directory. *dir is malloc'd (free with free()). A path that
 * exists as a directory is returned as is, and so is a regular file (a GGUF model: the loaders
 * read the file itself). Fails with ATS_ERR_IO and a message listing where it
 * looked when nothing is found. */
ats_status ats_model_resolve(const char *name_or_path, char **dir, ats_error *err);

/* Downloads a model by hub name ("org/name") with libcurl from $HF_ENDPOINT (default
 * https://huggingface.co; $HF_TOKEN is sent as a bearer token) into the cache layout above:
 * config.json and the weights (model.safetensors, else pytorch_model.bin) are required, the
 * tokenizer and preprocessor files are fetched where the model has them. Files go to a private
 * folder that is renamed to snapshots/<commit> (X-Repo-Commit, else the revision) when complete,
 * and refs/<revision> names it. revision NULL = "main". *dir is malloc'd. Without libcurl at
 * build time it fails with ATS_ERR_IO. */
ats_status ats_model_download(const char *name, const char *revision, char **dir, ats_error *err);

/* ats_model_resolve, then (for a name, unless $HF_HUB_OFFLINE is set) ats_model_download: what
 * ats_model_load uses. */
ats_status ats_model_locate(const char *name_or_path, char **dir, ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
