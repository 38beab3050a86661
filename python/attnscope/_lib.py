"""ctypes bindings over the public C headers (include/attnscope/*.h).

Structures mirror the headers field by field; their sizes are checked against the C library's at
import (ats_constant), and enum values and bounds are read from it. ctypes releases the GIL for the duration of every
foreign call, so C work runs in parallel with other Python threads."""
import ctypes
import os

import numpy as np


class AttnscopeError(RuntimeError):
    """An error reported by the attnscope C library; the message names what was wrong."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _find_library():
    env = os.environ.get("ATTNSCOPE_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(here, "libattnscope.so"),
                 os.path.join(here, "..", "..", "build", "libattnscope.so")):
        if os.path.exists(cand):
            return cand
    raise ImportError("libattnscope.so not found: install with `pip install ./python`, "
                      "or set ATTNSCOPE_LIB to a built library")


lib = ctypes.CDLL(_find_library())


def _constant(name: str) -> int:
    """A constant of the library (analysis.h, ats_constant): enum values, bounds and the sizes of
    the structures mirrored below come from the C library, not from copies here."""
    v = ctypes.c_longlong()
    if not lib.ats_constant(name.encode(), ctypes.byref(v)):
        raise ImportError(f"libattnscope has no constant {name}: the library and the package differ")
    return v.value


lib.ats_constant.restype = ctypes.c_int
lib.ats_constant.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_longlong)]
RIPS_MAX_DIM = _constant("ATS_RIPS_MAX_DIM")
RIPS_PHASES = _constant("ATS_RIPS_PHASES")

c_double_p = ctypes.POINTER(ctypes.c_double)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_uint32_p = ctypes.POINTER(ctypes.c_uint32)
c_int64_p = ctypes.POINTER(ctypes.c_int64)


class Error(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 512)]


class Diagram(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("pairs", c_double_p)]


class Matching(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("pairs", c_int64_p)]


class RipsOptions(ctypes.Structure):
    _fields_ = [
        ("max_dim", ctypes.c_int),
        ("threshold", ctypes.c_double),
        ("modulus", ctypes.c_uint),
        ("min_persistence", ctypes.c_double),
        ("ratio", ctypes.c_double),
        ("want_cocycles", ctypes.c_int),
        ("want_cycles", ctypes.c_int),
        ("n_threads", ctypes.c_int),
        ("memory_limit_gb", ctypes.c_double),
        ("cancel", ctypes.c_void_p),  # ats_cancel_fn; NULL from Python
        ("cancel_ctx", ctypes.c_void_p),
        ("collapse_edges", ctypes.c_int),
    ]


class Representative(ctypes.Structure):
    _fields_ = [("count", ctypes.c_size_t), ("vertices", c_int32_p), ("coefs", c_uint32_p)]


class RipsResult(ctypes.Structure):
    _fields_ = [
        ("max_dim", ctypes.c_int),
        ("n_points", ctypes.c_size_t),
        ("threshold", ctypes.c_double),
        ("min_value", ctypes.c_double),
        ("max_value", ctypes.c_double),
        ("dims", Diagram * (RIPS_MAX_DIM + 1)),
        ("birth_simplex", c_int64_p * (RIPS_MAX_DIM + 1)),
        ("death_simplex", c_int64_p * (RIPS_MAX_DIM + 1)),
        ("cocycles", ctypes.POINTER(Representative) * (RIPS_MAX_DIM + 1)),
        ("cycles", ctypes.POINTER(Representative)),
        ("phase_cpu_seconds", ctypes.c_double * RIPS_PHASES),
        ("phase_wall_seconds", ctypes.c_double * RIPS_PHASES),
    ]


class WassersteinOptions(ctypes.Structure):
    _fields_ = [
        ("q", ctypes.c_double),
        ("internal_p", ctypes.c_double),
        ("delta", ctypes.c_double),
        ("exact", ctypes.c_int),
        ("exact_max", ctypes.c_size_t),
    ]


class FigureMemory(ctypes.Structure):
    _fields_ = [("format", ctypes.c_int), ("data", ctypes.POINTER(ctypes.c_ubyte)),
                ("size", ctypes.c_size_t)]


class FigureOptions(ctypes.Structure):
    _fields_ = [
        ("title", ctypes.c_char_p),
        ("width", ctypes.c_double),
        ("height", ctypes.c_double),
        ("png_scale", ctypes.c_double),
        ("font", ctypes.c_char_p),
        ("memory", ctypes.POINTER(FigureMemory)),
    ]


class HeatmapOptions(ctypes.Structure):
    _fields_ = [
        ("fig", FigureOptions),
        ("row_labels", ctypes.POINTER(ctypes.c_char_p)),
        ("col_labels", ctypes.POINTER(ctypes.c_char_p)),
        ("row_title", ctypes.c_char_p),
        ("col_title", ctypes.c_char_p),
        ("value_title", ctypes.c_char_p),
        ("vmin", ctypes.c_double),
        ("vmax", ctypes.c_double),
        ("index_labels", ctypes.c_int),
    ]


class GraphOptions(ctypes.Structure):
    _fields_ = [
        ("fig", FigureOptions),
        ("labels", ctypes.POINTER(ctypes.c_char_p)),
        ("show_labels", ctypes.c_int),
    ]




def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


P = ctypes.POINTER
ats_rips_options_init = _fn("ats_rips_options_init", None, P(RipsOptions))
ats_rips_compute = _fn("ats_rips_compute", ctypes.c_int, ctypes.c_size_t, c_double_p,
                       P(RipsOptions), P(RipsResult), P(Error))
ats_rips_compute_batch = _fn("ats_rips_compute_batch", ctypes.c_int, ctypes.c_size_t,
                             P(ctypes.c_size_t), P(c_double_p), P(RipsOptions), ctypes.c_int,
                             P(RipsResult), P(Error))
ats_rips_result_free = _fn("ats_rips_result_free", None, P(RipsResult))
ats_rips_clusters = _fn("ats_rips_clusters", ctypes.c_int, ctypes.c_size_t, c_double_p,
                        ctypes.c_double, c_int32_p, P(ctypes.c_size_t), P(Error))
ats_metric_from_full = _fn("ats_metric_from_full", ctypes.c_int, ctypes.c_size_t, c_double_p,
                           ctypes.c_int, ctypes.c_char_p, c_double_p, P(Error))
ats_simplex_vertices = _fn("ats_simplex_vertices", None, ctypes.c_int64, ctypes.c_int,
                           ctypes.c_size_t, c_int32_p)
ats_bottleneck_distance = _fn("ats_bottleneck_distance", ctypes.c_int, P(Diagram), P(Diagram),
                              c_double_p, P(Matching), P(Error))
ats_wasserstein_options_init = _fn("ats_wasserstein_options_init", None, P(WassersteinOptions))
ats_wasserstein_distance = _fn("ats_wasserstein_distance", ctypes.c_int, P(Diagram), P(Diagram),
                               P(WassersteinOptions), c_double_p, P(Matching), P(Error))
ats_matching_free = _fn("ats_matching_free", None, P(Matching))
ats_figure_options_init = _fn("ats_figure_options_init", None, P(FigureOptions))
ats_figure_memory_free = _fn("ats_figure_memory_free", None, P(FigureMemory))
FIGURE_FORMATS = {f: _constant("ATS_FIGURE_" + f.upper()) for f in ("png", "svg", "pdf")}
ats_heatmap_options_init = _fn("ats_heatmap_options_init", None, P(HeatmapOptions))
ats_graph_options_init = _fn("ats_graph_options_init", None, P(GraphOptions))
ats_render_diagram = _fn("ats_render_diagram", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                         P(Diagram), c_int32_p, P(FigureOptions), P(Error))
ats_render_barcode = _fn("ats_render_barcode", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                         P(Diagram), c_int32_p, P(FigureOptions), P(Error))
ats_render_heatmap = _fn("ats_render_heatmap", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t,
                         ctypes.c_size_t, c_double_p, P(HeatmapOptions), P(Error))
ats_render_heatmap_grid = _fn("ats_render_heatmap_grid", ctypes.c_int, ctypes.c_char_p,
                              ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_size_t,
                              c_double_p, P(ctypes.c_char_p), P(HeatmapOptions), P(Error))
ats_render_skeleton_grid = _fn("ats_render_skeleton_grid", ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_size_t, c_double_p, ctypes.c_size_t, c_double_p,
                               P(GraphOptions), P(Error))
ats_render_attention_graph = _fn("ats_render_attention_graph", ctypes.c_int, ctypes.c_char_p,
                                 ctypes.c_size_t, c_double_p, ctypes.c_double, ctypes.c_int,
                                 P(GraphOptions), P(Error))
ats_layout_force = _fn("ats_layout_force", ctypes.c_int, ctypes.c_size_t, c_double_p,
                       ctypes.c_double, ctypes.c_int, ctypes.c_int, c_double_p, P(Error))


# core.h: the one writer of numbers into JSON (its rule for NaN and infinities is there)
JSON_NUMBER_MAX = _constant("ATS_JSON_NUMBER_MAX")
ATS_JSON_DEATH = _constant("ATS_JSON_DEATH")
ats_json_number_format = _fn("ats_json_number_format", ctypes.c_size_t, ctypes.c_double,
                             ctypes.c_uint, ctypes.c_char_p)


_libc = ctypes.CDLL(None)
_libc.free.argtypes = [ctypes.c_void_p]
ats_token_label = _fn("ats_token_label", ctypes.c_void_p, ctypes.c_char_p)


def token_label(token: str) -> str:
    """A token known only by its spelling shown as the library shows every token label
    (tokenizer.h, ats_token_label): "\u0120the" reads "the"."""
    p = ats_token_label(token.encode("utf-8"))
    if not p:
        raise MemoryError("ats_token_label")
    try:
        return ctypes.string_at(p).decode("utf-8", "replace")
    finally:
        _libc.free(p)


def json_number(v, flags=0):
    """The JSON text the library writes for the double v (bytes)."""
    buf = ctypes.create_string_buffer(JSON_NUMBER_MAX)
    n = ats_json_number_format(float(v), flags, buf)
    return buf.raw[:n]


def check(status, err):
    """Raises AttnscopeError carrying the library's message when status is not OK."""
    if status != 0:
        raise AttnscopeError(status, err.message.decode("utf-8", "replace"))


def as_double_ptr(a):
    return a.ctypes.data_as(c_double_p)


def contiguous(a, dtype=np.float64):
    """A C-contiguous array of dtype: the same memory when it already is one (no copy)."""
    return np.ascontiguousarray(a, dtype=dtype)


# ---- model runtime (model.h, tokenizer.h)

class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("arch", ctypes.c_int),
        ("model_type", ctypes.c_char_p),
        ("dir", ctypes.c_char_p),
        ("n_layers", ctypes.c_int),
        ("n_heads", ctypes.c_int),
        ("d_model", ctypes.c_int),
        ("d_head", ctypes.c_int),
        ("d_ff", ctypes.c_int),
        ("vocab_size", ctypes.c_int),
        ("max_positions", ctypes.c_int),
        ("causal", ctypes.c_int),
        ("has_lm_head", ctypes.c_int),
        ("eps", ctypes.c_float),
        ("image_size", ctypes.c_int),
        ("patch_size", ctypes.c_int),
        ("n_channels", ctypes.c_int),
        ("do_resize", ctypes.c_int),
        ("do_rescale", ctypes.c_int),
        ("do_normalize", ctypes.c_int),
        ("rescale_factor", ctypes.c_double),
        ("image_mean", ctypes.c_float * 3),
        ("image_std", ctypes.c_float * 3),
        ("n_kv_heads", ctypes.c_int),
    ]


class ForwardOptions(ctypes.Structure):
    _fields_ = [
        ("capture", ctypes.c_uint),
        ("n_threads", ctypes.c_int),
        ("truncate", ctypes.c_int),
        ("head_mask", ctypes.POINTER(ctypes.c_float)),
        ("n_layers", ctypes.c_int),
        ("image_height", ctypes.c_int),
        ("image_width", ctypes.c_int),
        ("no_positions", ctypes.c_int),
        ("capture_layer", ctypes.c_int),
        ("capture_head", ctypes.c_int),
        ("on_layer", ctypes.c_void_p),
        ("on_layer_ctx", ctypes.c_void_p),
        ("on_layer_bytes", ctypes.c_size_t),
    ]


class ModelInput(ctypes.Structure):
    _fields_ = [
        ("ids", c_int32_p),
        ("token_type_ids", c_int32_p),
        ("labels", c_int32_p),
        ("n", ctypes.c_size_t),
    ]


class ForwardResult(ctypes.Structure):
    _fields_ = [
        ("n_layers", ctypes.c_size_t),
        ("n_heads", ctypes.c_size_t),
        ("n_tokens", ctypes.c_size_t),
        ("d_model", ctypes.c_size_t),
        ("vocab_size", ctypes.c_size_t),
        ("n_truncated", ctypes.c_size_t),
        ("attention", ctypes.POINTER(ctypes.c_float)),
        ("scores", ctypes.POINTER(ctypes.c_float)),
        ("hidden", ctypes.POINTER(ctypes.c_float)),
        ("logits", ctypes.POINTER(ctypes.c_float)),
        ("loss", ctypes.c_double),
        ("loss_count", ctypes.c_size_t),
        ("context", ctypes.POINTER(ctypes.c_float)),
    ]


class Encoding(ctypes.Structure):
    _fields_ = [
        ("count", ctypes.c_size_t),
        ("ids", c_int32_p),
        ("tokens", ctypes.POINTER(ctypes.c_char_p)),
        ("offsets", ctypes.POINTER(ctypes.c_size_t)),
        ("special", ctypes.POINTER(ctypes.c_uint8)),
        ("word_ids", c_int32_p),
    ]


CAPTURE_ATTENTION, CAPTURE_SCORES, CAPTURE_HIDDEN, CAPTURE_LOGITS, CAPTURE_CONTEXT = (
    _constant("ATS_CAPTURE_" + k) for k in ("ATTENTION", "SCORES", "HIDDEN", "LOGITS", "CONTEXT"))

ats_model_load = _fn("ats_model_load", ctypes.c_int, ctypes.c_char_p, P(ctypes.c_void_p), P(Error))
ats_model_free = _fn("ats_model_free", None, ctypes.c_void_p)
ats_model_info_get = _fn("ats_model_info_get", P(ModelInfo), ctypes.c_void_p)
ats_forward_options_init = _fn("ats_forward_options_init", None, P(ForwardOptions))
ats_model_forward = _fn("ats_model_forward", ctypes.c_int, ctypes.c_void_p, P(ModelInput),
                        P(ForwardOptions), P(ForwardResult), P(Error))
ats_model_forward_batch = _fn("ats_model_forward_batch", ctypes.c_int, ctypes.c_void_p,
                              ctypes.c_size_t, P(ModelInput), P(ForwardOptions),
                              P(ForwardResult), P(Error))
ats_model_forward_image = _fn("ats_model_forward_image", ctypes.c_int, ctypes.c_void_p,
                              ctypes.c_char_p, P(ForwardOptions), P(ForwardResult), P(Error))
ats_forward_result_free = _fn("ats_forward_result_free", None, P(ForwardResult))
ats_backward_open = _fn("ats_backward_open", ctypes.c_int, ctypes.c_void_p, P(ctypes.c_void_p),
                        P(Error))
ats_backward_close = _fn("ats_backward_close", None, ctypes.c_void_p)
ats_backward_run = _fn("ats_backward_run", ctypes.c_int, ctypes.c_void_p, P(ModelInput), ctypes.c_int,
                       P(ctypes.c_float), P(ctypes.c_double), P(Error))
ats_tokenizer_load = _fn("ats_tokenizer_load", ctypes.c_int, ctypes.c_char_p, P(ctypes.c_void_p),
                         P(Error))
ats_tokenizer_free = _fn("ats_tokenizer_free", None, ctypes.c_void_p)
ats_tokenizer_encode = _fn("ats_tokenizer_encode", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                           ctypes.c_size_t, ctypes.c_int, P(Encoding), P(Error))
ats_encoding_free = _fn("ats_encoding_free", None, P(Encoding))


# ---- measures (measure.h)

class Attn(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("L", ctypes.c_size_t),
        ("H", ctypes.c_size_t),
        ("n", ctypes.c_size_t),
        ("source", ctypes.c_char_p),
    ]


class MeasureOpts(ctypes.Structure):
    _fields_ = [
        ("base", ctypes.c_int),
        ("eps", ctypes.c_double),
        ("normalize", ctypes.c_int),
        ("sum_tol", ctypes.c_double),
        ("seed_compat", ctypes.c_int),
        ("n_threads", ctypes.c_int),
        ("max_error", ctypes.c_double),
    ]


class Vectors(ctypes.Structure):
    _fields_ = [
        ("dtype", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("batch", ctypes.c_size_t),
        ("m", ctypes.c_size_t),
        ("d", ctypes.c_size_t),
        ("source", ctypes.c_char_p),
    ]


class TokenRoles(ctypes.Structure):
    _fields_ = [
        ("cls", P(ctypes.c_size_t)), ("n_cls", ctypes.c_size_t),
        ("sep", P(ctypes.c_size_t)), ("n_sep", ctypes.c_size_t),
        ("punct", P(ctypes.c_size_t)), ("n_punct", ctypes.c_size_t),
        ("cols", P(ctypes.c_size_t)), ("n_cols", ctypes.c_size_t),
        ("freq", c_double_p),
    ]


DTYPE_F32, DTYPE_F64 = _constant("ATS_F32"), _constant("ATS_F64")
STAT_COUNT = _constant("ATS_STAT_COUNT")

ats_measure_opts_init = _fn("ats_measure_opts_init", None, P(MeasureOpts))
ats_entropy_compute = _fn("ats_entropy_compute", ctypes.c_int, P(Attn), P(MeasureOpts), c_double_p,
                          P(Error))
ats_divergence_compute = _fn("ats_divergence_compute", ctypes.c_int, P(Attn), ctypes.c_int,
                             P(MeasureOpts), c_double_p, P(Error))
ats_headdist_new = _fn("ats_headdist_new", ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t,
                       ctypes.c_int, ctypes.c_int, P(MeasureOpts), P(ctypes.c_void_p), P(Error))
ats_headdist_add = _fn("ats_headdist_add", ctypes.c_int, ctypes.c_void_p, P(Attn), P(Error))
ats_headdist_result = _fn("ats_headdist_result", ctypes.c_int, ctypes.c_void_p, c_double_p, P(Error))
ats_headdist_free = _fn("ats_headdist_free", None, ctypes.c_void_p)
ats_headstats_new = _fn("ats_headstats_new", ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t,
                        P(MeasureOpts), P(ctypes.c_void_p), P(Error))
ats_headstats_add = _fn("ats_headstats_add", ctypes.c_int, ctypes.c_void_p, P(Attn), P(TokenRoles),
                        P(Error))
ats_headstats_result = _fn("ats_headstats_result", ctypes.c_int, ctypes.c_void_p, c_double_p, P(Error))
ats_headstats_free = _fn("ats_headstats_free", None, ctypes.c_void_p)
ats_head_stat_name = _fn("ats_head_stat_name", ctypes.c_char_p, ctypes.c_int)
ats_context_compute = _fn("ats_context_compute", ctypes.c_int, P(Vectors), P(Vectors), ctypes.c_int,
                          ctypes.c_int, c_double_p, P(Error))


class _Owner:
    """Frees C memory when the last NumPy view of it is gone."""

    def __init__(self, free_fn, arg):
        self.free_fn, self.arg = free_fn, arg

    def __del__(self):
        self.free_fn(self.arg)


def view(ptr, shape, ctype, owner):
    """A NumPy view of C memory (no copy) that keeps `owner` (which frees it) alive."""
    count = int(np.prod(shape))
    if count == 0 or not ptr:
        return np.zeros(shape, dtype=np.dtype(ctype))
    buf = (ctype * count).from_address(ctypes.addressof(ptr.contents))
    buf._owner = owner
    return np.frombuffer(buf, dtype=np.dtype(ctype)).reshape(shape)


# ---- analysis workflows (analysis.h)

class RunOptions(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int), ("truncate", ctypes.c_int),
                ("want_hidden", ctypes.c_int), ("n_layers", ctypes.c_int),
                ("capture_layer", ctypes.c_int), ("capture_head", ctypes.c_int),
                ("on_layer", ctypes.c_void_p), ("on_layer_ctx", ctypes.c_void_p),
                ("on_layer_bytes", ctypes.c_size_t)]


class Attention(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("n", ctypes.c_size_t),
        ("att", ctypes.POINTER(ctypes.c_float)), ("hidden", ctypes.POINTER(ctypes.c_float)),
        ("d", ctypes.c_size_t), ("labels", ctypes.POINTER(ctypes.c_char_p)),
        ("name", ctypes.c_char_p),
    ]


class CompareOptions(ctypes.Structure):
    _fields_ = [
        ("all_heads", ctypes.c_int), ("layer", ctypes.c_long), ("head", ctypes.c_long),
        ("seed_compat", ctypes.c_int), ("max_dim", ctypes.c_int), ("q", ctypes.c_double),
        ("max_error", ctypes.c_double), ("n_threads", ctypes.c_int), ("truncate", ctypes.c_int),
        ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p),
    ]


class CompareResult(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("n_dims", ctypes.c_size_t),
        ("bottleneck", c_double_p), ("wasserstein", c_double_p), ("inputs", Attention * 2),
    ]


class CompareModelsResult(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t * 2), ("H", ctypes.c_size_t * 2), ("n_dims", ctypes.c_size_t),
        ("bottleneck", c_double_p), ("wasserstein", c_double_p), ("inputs", Attention * 2),
    ]


TOPO_MAX_SCALES = _constant("ATS_TOPO_MAX_SCALES")


def set_scales(o, scales) -> None:
    """o.scales and o.n_scales (topo, vision and context options) from a sequence, or nothing when
    scales is None (the library's default scales)."""
    if scales is None:
        return
    if not 0 < len(scales) <= TOPO_MAX_SCALES:
        raise ValueError(f"give 1 to {TOPO_MAX_SCALES} scales")
    o.n_scales = len(scales)
    for i, v in enumerate(scales):
        o.scales[i] = float(v)



class TopoOptions(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("distance", ctypes.c_int),
        ("max_dim", ctypes.c_int), ("threshold", ctypes.c_double), ("n_scales", ctypes.c_size_t),
        ("scales", ctypes.c_double * TOPO_MAX_SCALES), ("layout_iters", ctypes.c_int),
        ("points", ctypes.c_char_p), ("n_threads", ctypes.c_int),
        ("cancel", ctypes.c_void_p), ("cancel_ctx", ctypes.c_void_p),
        ("memory_limit_gb", ctypes.c_double),
    ]


class TopoResult(ctypes.Structure):
    _fields_ = [
        ("n", ctypes.c_size_t), ("full", c_double_p), ("lower", c_double_p),
        ("dmin", ctypes.c_double), ("dmax", ctypes.c_double), ("median", ctypes.c_double),
        ("rips", RipsResult), ("n_scales", ctypes.c_size_t),
        ("scales", ctypes.c_double * TOPO_MAX_SCALES), ("clusters", c_int32_p),
        ("n_clusters", ctypes.c_size_t * TOPO_MAX_SCALES), ("layout", c_double_p),
    ]


class CorpusSource(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("data", ctypes.c_void_p), ("size", ctypes.c_size_t),
                ("jsonl", ctypes.c_int)]


HEADS_COUNT = _constant("ATS_HEADS_COUNT")

class HeadsOptions(ctypes.Structure):
    _fields_ = [
        ("clark", ctypes.c_int), ("max_lines", ctypes.c_size_t), ("max_tokens", ctypes.c_size_t),
        ("skip_long", ctypes.c_int), ("chunk_lines", ctypes.c_size_t), ("n_threads", ctypes.c_int),
        ("stats", ctypes.c_int), ("rank", ctypes.c_int), ("n_procs", ctypes.c_int),
        ("exchange", ctypes.c_void_p), ("exchange_ctx", ctypes.c_void_p),
        ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p),
    ]


class HeadsResult(ctypes.Structure):
    _fields_ = [
        ("N", ctypes.c_size_t), ("D", c_double_p), ("stats", c_double_p),
        ("counts", ctypes.c_ulonglong * HEADS_COUNT),
        ("first_empty", ctypes.c_size_t), ("first_badutf", ctypes.c_size_t),
        ("first_badjson", ctypes.c_size_t), ("first_huge", ctypes.c_size_t),
    ]


class ReportOptions(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("title", ctypes.c_char_p),
        ("model_name", ctypes.c_char_p), ("format", ctypes.c_int),
        ("svg_max_bytes", ctypes.c_size_t), ("truncate", ctypes.c_int), ("n_threads", ctypes.c_int),
        ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p),
    ]


class ReportResult(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("tokens", ctypes.c_size_t * 2),
        ("cut", ctypes.c_size_t * 2), ("figures", ctypes.c_size_t),
        ("png_fallback", ctypes.c_size_t), ("bytes", ctypes.c_size_t),
    ]


class SyntaxOptions(ctypes.Structure):
    _fields_ = [("max_sentences", ctypes.c_size_t), ("n_threads", ctypes.c_int),
                ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p)]


class SyntaxResult(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("sentences", ctypes.c_size_t),
        ("skipped", ctypes.c_size_t), ("arcs", ctypes.c_size_t), ("unmapped", ctypes.c_size_t),
        ("R", ctypes.c_size_t), ("names", ctypes.POINTER(ctypes.c_char_p)),
        ("count", ctypes.POINTER(ctypes.c_size_t)), ("correct", ctypes.POINTER(ctypes.c_size_t)),
        ("best_head", ctypes.POINTER(ctypes.c_size_t)), ("accuracy", c_double_p),
        ("baseline_offset", ctypes.POINTER(ctypes.c_long)), ("baseline_accuracy", c_double_p),
    ]


ats_session_open = _fn("ats_session_open", ctypes.c_int, ctypes.c_char_p, P(ctypes.c_void_p),
                       P(Error))
ats_session_open_adapted = _fn("ats_session_open_adapted", ctypes.c_int, ctypes.c_char_p,
                               ctypes.c_char_p, P(ctypes.c_void_p), P(Error))
ats_session_close = _fn("ats_session_close", None, ctypes.c_void_p)
ats_session_model = _fn("ats_session_model", ctypes.c_void_p, ctypes.c_void_p)
ats_session_tokenizer = _fn("ats_session_tokenizer", ctypes.c_void_p, ctypes.c_void_p)
ats_compare_options_init = _fn("ats_compare_options_init", None, P(CompareOptions))
ats_compare = _fn("ats_compare", ctypes.c_int, ctypes.c_void_p, P(ctypes.c_char_p),
                  P(CompareOptions), P(CompareResult), P(Error))
ats_compare_result_free = _fn("ats_compare_result_free", None, P(CompareResult))
ats_compare_models = _fn("ats_compare_models", ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                         P(ctypes.c_char_p), P(CompareOptions), P(CompareModelsResult), P(Error))
ats_compare_models_result_free = _fn("ats_compare_models_result_free", None,
                                     P(CompareModelsResult))
ats_report_options_init = _fn("ats_report_options_init", None, P(ReportOptions))
ats_report_run = _fn("ats_report_run", ctypes.c_int, ctypes.c_void_p, P(ctypes.c_char_p),
                     ctypes.c_char_p, P(ReportOptions), P(ReportResult), P(Error))
ats_run_options_init = _fn("ats_run_options_init", None, P(RunOptions))
ats_session_run = _fn("ats_session_run", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t,
                      P(ctypes.c_char_p), P(RunOptions), P(Attention), P(Error))
ats_attention_free = _fn("ats_attention_free", None, P(Attention))
ats_topo_options_init = _fn("ats_topo_options_init", None, P(TopoOptions))
ats_topo = _fn("ats_topo", ctypes.c_int, P(Attention), P(TopoOptions), P(TopoResult), P(Error))
ats_topo_result_free = _fn("ats_topo_result_free", None, P(TopoResult))
DIVFIG_COUNT = _constant("ATS_DIVFIG_COUNT")


class HeadGraphOptions(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("min_weight", ctypes.c_double),
        ("directed", ctypes.c_int), ("seed_compat", ctypes.c_int), ("figure", ctypes.c_char_p),
        ("fig", FigureOptions),
    ]


class HeadGraphResult(ctypes.Structure):
    _fields_ = [("n", ctypes.c_size_t), ("symmetrized", ctypes.c_int), ("weights", c_double_p),
                ("n_edges", ctypes.c_size_t), ("edges", ctypes.POINTER(ctypes.c_size_t))]


class HeadDivergencesOptions(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("base", ctypes.c_int),
        ("eps", ctypes.c_double), ("seed_compat", ctypes.c_int), ("n_threads", ctypes.c_int),
        ("figures", ctypes.c_char_p * DIVFIG_COUNT), ("fig", FigureOptions * DIVFIG_COUNT),
    ]


class HeadDivergencesResult(ctypes.Structure):
    _fields_ = [("n", ctypes.c_size_t), ("entropy", c_double_p), ("kl", c_double_p),
                ("js", c_double_p), ("units", ctypes.c_char_p * DIVFIG_COUNT)]


ats_head_graph_options_init = _fn("ats_head_graph_options_init", None, P(HeadGraphOptions))
ats_head_graph = _fn("ats_head_graph", ctypes.c_int, P(Attention), P(HeadGraphOptions),
                     P(HeadGraphResult), P(Error))
ats_head_graph_result_free = _fn("ats_head_graph_result_free", None, P(HeadGraphResult))
ats_head_divergences_options_init = _fn("ats_head_divergences_options_init", None,
                                        P(HeadDivergencesOptions))
ats_head_divergences = _fn("ats_head_divergences", ctypes.c_int, P(Attention),
                           P(HeadDivergencesOptions), P(HeadDivergencesResult), P(Error))
ats_head_divergences_result_free = _fn("ats_head_divergences_result_free", None,
                                       P(HeadDivergencesResult))
ats_corpus_source_init = _fn("ats_corpus_source_init", None, P(CorpusSource))
ats_heads_options_init = _fn("ats_heads_options_init", None, P(HeadsOptions))
ats_heads_corpus = _fn("ats_heads_corpus", ctypes.c_int, P(ctypes.c_void_p), ctypes.c_size_t,
                       P(CorpusSource), P(HeadsOptions), P(HeadsResult), P(Error))
ats_heads_result_free = _fn("ats_heads_result_free", None, P(HeadsResult))
ats_syntax_options_init = _fn("ats_syntax_options_init", None, P(SyntaxOptions))
ats_syntax_run = _fn("ats_syntax_run", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                     P(SyntaxOptions), P(SyntaxResult), P(Error))
ats_syntax_result_free = _fn("ats_syntax_result_free", None, P(SyntaxResult))


class ImportanceOptions(ctypes.Structure):
    _fields_ = [("max_lines", ctypes.c_size_t), ("max_tokens", ctypes.c_size_t),
                ("normalize", ctypes.c_int), ("n_threads", ctypes.c_int),
                ("progress", ctypes.c_void_p), ("progress_ctx", ctypes.c_void_p)]


class ImportanceResult(ctypes.Structure):
    _fields_ = [("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("texts", ctypes.c_size_t),
                ("skipped", ctypes.c_size_t), ("truncated", ctypes.c_size_t),
                ("loss", ctypes.c_double), ("importance", c_double_p)]


ats_importance_options_init = _fn("ats_importance_options_init", None, P(ImportanceOptions))
ats_head_importance = _fn("ats_head_importance", ctypes.c_int, ctypes.c_void_p, P(CorpusSource),
                          P(ImportanceOptions), P(ImportanceResult), P(Error))
ats_importance_result_free = _fn("ats_importance_result_free", None, P(ImportanceResult))


class Image(ctypes.Structure):
    _fields_ = [("width", ctypes.c_int), ("height", ctypes.c_int),
                ("rgb", ctypes.POINTER(ctypes.c_uint8))]


class VisionInput(ctypes.Structure):
    _fields_ = [("path", ctypes.c_char_p), ("image", ctypes.POINTER(Image)),
                ("name", ctypes.c_char_p)]


class VisionOptions(ctypes.Structure):
    _fields_ = [
        ("layer", ctypes.c_long), ("head", ctypes.c_long), ("height", ctypes.c_int),
        ("width", ctypes.c_int), ("n_scales", ctypes.c_size_t),
        ("scales", ctypes.c_double * TOPO_MAX_SCALES), ("perturb", ctypes.c_int),
        ("strength", ctypes.c_double), ("sphere", ctypes.c_int),
        ("sphere_edges", ctypes.c_size_t), ("figures", ctypes.c_int), ("format", ctypes.c_int),
        ("title", ctypes.c_char_p),
    ]


class VisionRun(ctypes.Structure):
    _fields_ = [("n", ctypes.c_size_t), ("lower", c_double_p), ("rips", RipsResult),
                ("figures", FigureMemory * 3)]


class VisionImage(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p), ("run", VisionRun), ("n_scales", ctypes.c_size_t),
        ("scales", ctypes.c_double * TOPO_MAX_SCALES), ("perturbed", ctypes.c_int),
        ("perturbation", VisionRun), ("bottleneck", ctypes.c_double * 2),
        ("wasserstein", ctypes.c_double * 2), ("sphere", c_double_p),
        ("n_edges", ctypes.c_size_t), ("edges", ctypes.POINTER(ctypes.c_size_t)),
        ("edge_weights", c_double_p), ("sphere_figure", FigureMemory),
    ]


class VisionResult(ctypes.Structure):
    _fields_ = [
        ("height", ctypes.c_int), ("width", ctypes.c_int), ("rows", ctypes.c_int),
        ("cols", ctypes.c_int), ("patch", ctypes.c_int), ("strength", ctypes.c_double),
        ("count", ctypes.c_size_t), ("images", ctypes.POINTER(VisionImage)),
        ("frame_bottleneck", c_double_p), ("frame_wasserstein", c_double_p),
        ("frames_figure", FigureMemory),
    ]


PERTURBATIONS = {k: _constant("ATS_PERTURB_" + k.upper())
                 for k in ("none", "noise", "blur", "occlusion")}
VISION_FIGURES = {k: _constant("ATS_VISION_" + k.upper())
                  for k in ("diagram", "barcode", "skeleton")}


class EquivarianceOptions(ctypes.Structure):
    _fields_ = [("seed", ctypes.c_long), ("figures", ctypes.c_int), ("format", ctypes.c_int),
                ("title", ctypes.c_char_p)]


class EquivarianceResult(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t), ("n", ctypes.c_size_t), ("causal", ctypes.c_int),
        ("permutation", ctypes.POINTER(ctypes.c_size_t)), ("with_positions", c_double_p),
        ("without_positions", c_double_p), ("figure", FigureMemory),
    ]


ats_vision_options_init = _fn("ats_vision_options_init", None, P(VisionOptions))
ats_vision = _fn("ats_vision", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, P(VisionInput),
                 P(VisionOptions), P(VisionResult), P(Error))
ats_vision_result_free = _fn("ats_vision_result_free", None, P(VisionResult))
ats_equivariance_options_init = _fn("ats_equivariance_options_init", None, P(EquivarianceOptions))
ats_equivariance = _fn("ats_equivariance", ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p,
                       P(EquivarianceOptions), P(EquivarianceResult), P(Error))
ats_equivariance_result_free = _fn("ats_equivariance_result_free", None, P(EquivarianceResult))
# ---- context vectors (analysis.h)

CONTEXT_EMBEDDINGS = _constant("ATS_CONTEXT_EMBEDDINGS")


class ContextOptions(ctypes.Structure):
    _fields_ = [("layer", ctypes.c_long), ("head", ctypes.c_long), ("max_contexts", ctypes.c_size_t),
                ("max_dim", ctypes.c_int), ("n_scales", ctypes.c_size_t),
                ("scales", ctypes.c_double * TOPO_MAX_SCALES), ("truncate", ctypes.c_int),
                ("n_threads", ctypes.c_int)]


class ContextSimilarityResult(ctypes.Structure):
    _fields_ = [("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("hidden", c_double_p),
                ("heads", c_double_p)]


_f = ctypes.POINTER(ctypes.c_float)


class ContextResult(ctypes.Structure):
    _fields_ = [
        ("L", ctypes.c_size_t), ("H", ctypes.c_size_t), ("d", ctypes.c_size_t),
        ("d_head", ctypes.c_size_t), ("contexts", ctypes.c_size_t), ("words", ctypes.c_size_t),
        ("line_no", ctypes.POINTER(ctypes.c_size_t)), ("lines", ctypes.POINTER(ctypes.c_char_p)),
        ("hidden_vectors", _f), ("head_vectors", _f), ("hidden_word_vectors", _f),
        ("head_word_vectors", _f), ("hidden_similarity", c_double_p), ("hidden_merge", c_double_p),
        ("hidden_word_distance", c_double_p), ("head_similarity", c_double_p),
        ("head_merge", c_double_p), ("head_word_distance", c_double_p),
        ("dim", ctypes.c_size_t), ("vectors", _f), ("distances", c_double_p),
        ("word_distances", c_double_p), ("mean_similarity", ctypes.c_double),
        ("single_cluster_scale", ctypes.c_double), ("rips", RipsResult),
        ("n_scales", ctypes.c_size_t), ("scales", ctypes.c_double * TOPO_MAX_SCALES),
        ("clusters", c_int32_p), ("n_clusters", ctypes.c_size_t * TOPO_MAX_SCALES),
    ]


ats_context_options_init = _fn("ats_context_options_init", None, P(ContextOptions))
ats_context_similarity = _fn("ats_context_similarity", ctypes.c_int, ctypes.c_void_p,
                             P(ctypes.c_char_p), ctypes.c_char_p, P(ContextOptions),
                             P(ContextSimilarityResult), P(Error))
ats_context_similarity_result_free = _fn("ats_context_similarity_result_free", None,
                                         P(ContextSimilarityResult))
ats_context_run = _fn("ats_context_run", ctypes.c_int, ctypes.c_void_p, P(CorpusSource),
                      ctypes.c_char_p, P(ContextOptions), P(ContextResult), P(Error))
ats_context_result_free = _fn("ats_context_result_free", None, P(ContextResult))


# The structures above mirror the headers field by field: their sizes must be the library's.
_MIRRORS = {
    Error: "ats_error", Diagram: "ats_diagram", Matching: "ats_matching",
    RipsOptions: "ats_rips_options", Representative: "ats_representative",
    RipsResult: "ats_rips_result", WassersteinOptions: "ats_wasserstein_options",
    FigureMemory: "ats_figure_memory", FigureOptions: "ats_figure_options",
    HeatmapOptions: "ats_heatmap_options", GraphOptions: "ats_graph_options",
    ModelInfo: "ats_model_info", ForwardOptions: "ats_forward_options",
    ModelInput: "ats_model_input", ForwardResult: "ats_forward_result", Encoding: "ats_encoding",
    Attn: "ats_attn", MeasureOpts: "ats_measure_opts", Vectors: "ats_vectors",
    TokenRoles: "ats_token_roles", RunOptions: "ats_run_options", Attention: "ats_attention",
    CompareOptions: "ats_compare_options", CompareResult: "ats_compare_result",
    CompareModelsResult: "ats_compare_models_result",
    ReportOptions: "ats_report_options", ReportResult: "ats_report_result",
    TopoOptions: "ats_topo_options", TopoResult: "ats_topo_result",
    HeadGraphOptions: "ats_head_graph_options", HeadGraphResult: "ats_head_graph_result",
    HeadDivergencesOptions: "ats_head_divergences_options",
    HeadDivergencesResult: "ats_head_divergences_result",
    CorpusSource: "ats_corpus_source", HeadsOptions: "ats_heads_options",
    HeadsResult: "ats_heads_result", SyntaxOptions: "ats_syntax_options",
    SyntaxResult: "ats_syntax_result", ImportanceOptions: "ats_importance_options",
    ImportanceResult: "ats_importance_result", Image: "ats_image",
    VisionInput: "ats_vision_input", VisionOptions: "ats_vision_options",
    VisionRun: "ats_vision_run", VisionImage: "ats_vision_image",
    VisionResult: "ats_vision_result", EquivarianceOptions: "ats_equivariance_options",
    EquivarianceResult: "ats_equivariance_result",
    ImportanceResult: "ats_importance_result", ContextOptions: "ats_context_options",
    ContextSimilarityResult: "ats_context_similarity_result", ContextResult: "ats_context_result",
}
for _cls, _name in _MIRRORS.items():
    if ctypes.sizeof(_cls) != _constant(f"sizeof({_name})"):
        raise ImportError(f"{_cls.__name__} has {ctypes.sizeof(_cls)} bytes but {_name} has "
                          f"{_constant(f'sizeof({_name})')}: the package and the library differ")
