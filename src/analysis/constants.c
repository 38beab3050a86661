/* The library's constants by name, for bindings: Python reads its enum values, array bounds and
 * the sizes of the structures it mirrors from here at import, so that a header change cannot
 * leave a silently wrong copy behind. */
#include "attnscope/analysis.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/tokenizer.h"
#include "attnscope/vision.h"

#include <string.h>

typedef struct constant {
    const char *name;
    long long value;
} constant;

#define C(x)                                                                                       \
    { #x, (long long)(x) }
#define SIZE(t)                                                                                    \
    { "sizeof(" #t ")", (long long)sizeof(t) }

static const constant CONSTANTS[] = {
    /* bounds */
    C(ATS_RIPS_MAX_DIM),
    C(ATS_RIPS_PHASES),
    C(ATS_JSON_NUMBER_MAX),
    C(ATS_TOPO_MAX_SCALES),
    C(ATS_HEADS_COUNT),
    C(ATS_STAT_COUNT),
    C(ATS_ERROR_MESSAGE_MAX),
    C(ATS_NPY_MAX_DIMS),
    C(ATS_KERNEL_PATH_COUNT),
    /* enum values */
    C(ATS_JSON_FLOAT),
    C(ATS_JSON_DEATH),
    C(ATS_F32),
    C(ATS_F64),
    C(ATS_I32),
    C(ATS_I64),
    C(ATS_FIGURE_PNG),
    C(ATS_FIGURE_SVG),
    C(ATS_FIGURE_PDF),
    C(ATS_BASE_2),
    C(ATS_BASE_E),
    C(ATS_DIV_KL),
    C(ATS_DIV_JS),
    C(ATS_DIV_JSD),
    C(ATS_COSINE_SIMILARITY),
    C(ATS_COSINE_DISTANCE),
    C(ATS_EUCLIDEAN),
    C(ATS_HEAD_JSD),
    C(ATS_HEAD_SEED),
    C(ATS_HEAD_JS),
    C(ATS_HEAD_KL),
    C(ATS_HEAD_SEED_JSD),
    C(ATS_SEED_OFF),
    C(ATS_SEED_SQRT_JSD),
    C(ATS_SEED_JSD),
    C(ATS_DIVFIG_KL),
    C(ATS_DIVFIG_JS),
    C(ATS_DIVFIG_ENTROPY),
    C(ATS_DIVFIG_COUNT),
    C(ATS_ARCH_VIT),
    C(ATS_CAPTURE_ATTENTION),
    C(ATS_CAPTURE_SCORES),
    C(ATS_CAPTURE_HIDDEN),
    C(ATS_CAPTURE_LOGITS),
    C(ATS_PERTURB_NONE),
    C(ATS_PERTURB_NOISE),
    C(ATS_PERTURB_BLUR),
    C(ATS_PERTURB_OCCLUSION),
    C(ATS_VISION_DIAGRAM),
    C(ATS_VISION_BARCODE),
    C(ATS_VISION_SKELETON),
    C(ATS_CAPTURE_CONTEXT),
    C(ATS_CONTEXT_EMBEDDINGS),
    /* the structures the Python bindings mirror */
    SIZE(ats_error),
    SIZE(ats_diagram),
    SIZE(ats_matching),
    SIZE(ats_rips_options),
    SIZE(ats_representative),
    SIZE(ats_rips_result),
    SIZE(ats_wasserstein_options),
    SIZE(ats_figure_memory),
    SIZE(ats_figure_options),
    SIZE(ats_heatmap_options),
    SIZE(ats_graph_options),
    SIZE(ats_model_info),
    SIZE(ats_forward_options),
    SIZE(ats_model_input),
    SIZE(ats_forward_result),
    SIZE(ats_encoding),
    SIZE(ats_attn),
    SIZE(ats_measure_opts),
    SIZE(ats_vectors),
    SIZE(ats_token_roles),
    SIZE(ats_run_options),
    SIZE(ats_attention),
    SIZE(ats_compare_options),
    SIZE(ats_compare_result),
    SIZE(ats_compare_models_result),
    SIZE(ats_report_options),
    SIZE(ats_report_result),
    SIZE(ats_topo_options),
    SIZE(ats_topo_result),
    SIZE(ats_head_graph_options),
    SIZE(ats_head_graph_result),
    SIZE(ats_head_divergences_options),
    SIZE(ats_head_divergences_result),
    SIZE(ats_corpus_source),
    SIZE(ats_heads_options),
    SIZE(ats_heads_result),
    SIZE(ats_syntax_options),
    SIZE(ats_syntax_result),
    SIZE(ats_importance_options),
    SIZE(ats_importance_result),
    SIZE(ats_image),
    SIZE(ats_vision_input),
    SIZE(ats_vision_options),
    SIZE(ats_vision_run),
    SIZE(ats_vision_image),
    SIZE(ats_vision_result),
    SIZE(ats_equivariance_options),
    SIZE(ats_equivariance_result),
    SIZE(ats_context_options),
    SIZE(ats_context_similarity_result),
    SIZE(ats_context_result),
};

int ats_constant(const char *name, long long *value) {
    for (size_t i = 0; name && i < sizeof CONSTANTS / sizeof CONSTANTS[0]; i++)
        if (!strcmp(name, CONSTANTS[i].name)) {
            if (value) *value = CONSTANTS[i].value;
            return 1;
        }
    return 0;
}

const char *ats_constant_name(size_t i) {
    return i < sizeof CONSTANTS / sizeof CONSTANTS[0] ? CONSTANTS[i].name : NULL;
}
