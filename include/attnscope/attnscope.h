/* attnscope: the topology and information theory of attention in transformer models.
 * This header includes every module's public header. */
#ifndef ATTNSCOPE_H
#define ATTNSCOPE_H

#include "attnscope/analysis.h"
#include "attnscope/core.h"
#include "attnscope/diagram.h"
#include "attnscope/gguf.h"
#include "attnscope/hub.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/serve.h"
#include "attnscope/tokenizer.h"
#include "attnscope/vision.h"

#endif
