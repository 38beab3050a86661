"""The command-line workflows as functions, over the same library calls as the commands
(analysis.h), so that the numbers are the commands' by construction: `topo` (one head's token
topology), `graph` (one head as a graph), `divergence` (entropy, KL and JS between one head's
tokens), `compare` (two texts head by head), `heads` (distances between heads over a corpus),
`syntax` (syntactic heads against gold dependency trees), `head_importance` (gradient head
importance) and `context` (context vectors of a word in two texts, or of a phrase across a
corpus: collocations)."""
import ctypes
import json
import math
import os
from typing import Iterable, List, Optional, Sequence, Union

import numpy as np

from . import _lib as L
from .model import Model
from .topology import Persistence, _collect


def _number(v: float):
    """A number as the commands write it into JSON, read back: the float itself when finite,
    else what the library writes (core.h, ats_json_number_format: None for NaN, "inf" and
    "-inf" for infinities)."""
    return v if math.isfinite(v) else json.loads(L.json_number(v))


_DISTANCES = {k: L._constant("ATS_HEAD_" + k.upper()) for k in ("jsd", "seed", "seed_jsd", "js", "kl")}
# the seed notebook's two distance cells (analysis.h, ats_seed_distance), by their CLI names
_SEED = {False: L._constant("ATS_SEED_OFF"), True: L._constant("ATS_SEED_SQRT_JSD"),
         "sqrt-jsd": L._constant("ATS_SEED_SQRT_JSD"), "jsd": L._constant("ATS_SEED_JSD")}


class Topology:
    """One head's token topology, as `attnscope topo` writes it into result.json and js.npy:
    `tokens` (labels), `distances` [n][n] (the head's token metric), `persistence` (diagrams
    H0..dim with H1 cycles), `cycle_tokens` (the distinct tokens on each H1 cycle, in token
    order), `scales` [k], `clusters` [k][n] (single-linkage cluster of each token at each
    scale), `layout` [n][3] (force layout at the largest scale, or None)."""

    def __init__(self, tokens, distances, persistence, scales, clusters, layout):
        self.tokens: List[str] = tokens
        self.distances: np.ndarray = distances
        self.persistence: Persistence = persistence
        self.scales: np.ndarray = scales
        self.clusters: np.ndarray = clusters
        self.layout: Optional[np.ndarray] = layout
        cyc = persistence.cycles or []
        self.cycle_tokens: List[List[str]] = [
            [tokens[v] for v in sorted({int(x) for x in np.asarray(c).ravel()})] for c in cyc]

    def __repr__(self):
        counts = ", ".join(f"H{k}: {len(d)}" for k, d in enumerate(self.persistence.dims))
        return f"Topology({len(self.tokens)} tokens; {counts})"


def _attention_struct(att: np.ndarray, tokens: Optional[Sequence[str]], keep: list) -> "L.Attention":
    a = np.ascontiguousarray(att, dtype=np.float32)
    if a.ndim == 2:
        a = a[None, None]
    if a.ndim != 4 or a.shape[2] != a.shape[3]:
        raise ValueError(f"attention must be [L][H][n][n] or [n][n], not {list(att.shape)}")
    n = a.shape[2]
    # the labels a label file (--tokens) would give: "\u0120the" reads "the"
    labels = [str(i) for i in range(n)] if tokens is None else [L.token_label(str(t)) for t in tokens]
    if len(labels) != n:
        raise ValueError(f"{len(labels)} token labels for {n} tokens")
    raw = (ctypes.c_char_p * max(n, 1))(*(t.encode("utf-8") for t in labels))
    keep += [a, raw]
    s = L.Attention()
    s.L, s.H, s.n = a.shape[0], a.shape[1], n
    s.att = a.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    s.labels = ctypes.cast(raw, ctypes.POINTER(ctypes.c_char_p))
    s.name = b"attention"
    return s


def _source_attention(fn: str, source, text, tokens, truncate, n_threads, keep, held=None):
    """(ats_attention, owned): a model run on text (owned: free it with ats_attention_free), or
    attention [L][H][n][n] / [n][n] from anywhere labelled by tokens (borrowing keep's arrays).
    held=(layer, head): the model's pass keeps that head alone, [1][1][n][n] (long texts fit)."""
    if isinstance(source, Model):
        if text is None:
            raise ValueError(f"{fn}(model, text, ...): give the text")
        if tokens is not None:
            raise ValueError("tokens label attention arrays; a model's tokens come from its tokenizer")
        ro = L.RunOptions()
        L.ats_run_options_init(ctypes.byref(ro))
        ro.n_threads, ro.truncate = int(n_threads), int(truncate)
        if held:
            ro.n_layers = ro.capture_layer = held[0] + 1
            ro.capture_head = held[1] + 1
        texts = (ctypes.c_char_p * 1)(text.encode("utf-8"))
        att, err = L.Attention(), L.Error()
        L.check(L.ats_session_run(source._session, 1, texts, ctypes.byref(ro), ctypes.byref(att),
                                  ctypes.byref(err)), err)
        return att, True
    return _attention_struct(np.asarray(source), tokens, keep), False


def _copy(ptr, shape) -> np.ndarray:
    """A copy of the library's double array ptr[shape] (an empty array when it has no entries)."""
    return np.ctypeslib.as_array(ptr, shape=shape).copy() if all(shape) else np.zeros(shape)


def _labels_of(att) -> List[str]:
    return [att.labels[i].decode("utf-8", "replace") for i in range(att.n)]


def topo(source: Union[Model, np.ndarray], text: Optional[str] = None, layer: int = 0,
         head: int = 0, seed_compat: bool = False, distance: str = "jsd", dim: int = 2,
         threshold: Optional[float] = None, scales: Optional[Sequence[float]] = None,
         layout: bool = True, tokens: Optional[Sequence[str]] = None, truncate: bool = False,
         n_threads: int = 0) -> Topology:
    """The token topology of one head (the library's ats_topo, as `attnscope topo`): the head's
    tokens as a metric space — the Jensen–Shannon distance (base 2) between their attention rows
    (distance="jsd"), the seed notebook's √ scipy JS distance of softmaxed rows
    (seed_compat=True or distance="seed"; the notebook's first distance cell, scipy's JS distance
    itself: seed_compat="jsd" or distance="seed_jsd"), or the symmetrised JS or KL divergence
    ("js", "kl") —
    its Vietoris–Rips persistence H0..dim (threshold: largest diameter), clusters at the scales
    (default: the 10 %, 25 % and 50 % quantiles of the distances) and a 3-D layout.
    source is a Model (then give text) or attention [L][H][n][n] or [n][n] computed anywhere
    (then tokens may label it)."""
    if seed_compat:
        if seed_compat not in _SEED:
            raise ValueError("seed_compat is True, 'sqrt-jsd' or 'jsd'")
        distance = "seed_jsd" if seed_compat == "jsd" else "seed"
    if distance not in _DISTANCES:
        raise ValueError(f"distance must be one of {sorted(_DISTANCES)}, not {distance!r}")
    o = L.TopoOptions()
    L.ats_topo_options_init(ctypes.byref(o))
    o.layer, o.head, o.distance, o.max_dim = int(layer), int(head), _DISTANCES[distance], int(dim)
    if threshold is not None:
        o.threshold = float(threshold)
    L.set_scales(o, scales)
    if not layout:
        o.layout_iters = 0
    o.n_threads = int(n_threads)
    err, keep = L.Error(), []
    held = (o.layer, o.head) if isinstance(source, Model) and o.layer >= 0 and o.head >= 0 else None
    att, own = _source_attention("topo", source, text, tokens, truncate, n_threads, keep, held)
    if held:  # the pass kept that head alone: [1][1][n][n]
        o.layer = o.head = 0
    res = L.TopoResult()
    try:
        L.check(L.ats_topo(ctypes.byref(att), ctypes.byref(o), ctypes.byref(res), ctypes.byref(err)), err)
        n = res.n
        labels = _labels_of(att)
        dist = np.ctypeslib.as_array(res.full, shape=(n, n)).copy() if n else np.zeros((0, 0))
        pers = _collect(res.rips, n, int(dim), True, False)
        k = res.n_scales
        sc = np.array([res.scales[i] for i in range(k)])
        cl = (np.ctypeslib.as_array(res.clusters, shape=(k, n)).copy() if n
              else np.zeros((k, 0), np.int32))
        lay = np.ctypeslib.as_array(res.layout, shape=(n, 3)).copy() if res.layout and n else None
        return Topology(labels, dist, pers, sc, cl, lay)
    finally:
        L.ats_topo_result_free(ctypes.byref(res))
        if own:
            L.ats_attention_free(ctypes.byref(att))


def _compare_arrays(res, shape):
    """Copies of a compare result's bottleneck and wasserstein arrays and its inputs' labels."""
    b = np.ctypeslib.as_array(res.bottleneck, shape=shape).copy()
    w = np.ctypeslib.as_array(res.wasserstein, shape=shape).copy()
    labels = [[res.inputs[k].labels[i].decode("utf-8", "replace") for i in range(res.inputs[k].n)]
              for k in range(2)]
    return b, w, labels


class Graph:
    """One head as a weighted graph, as `attnscope graph` writes it: `tokens` (labels),
    `weights` [n][n] (the weights drawn: the head, or a causal head made symmetric),
    `symmetrized` (the graph is undirected), `edges` [m][3] (i, j, weight) of the edges drawn,
    `figure` (a Figure, when one was asked for)."""

    def __init__(self, tokens, weights, symmetrized, edges, figure):
        self.tokens: List[str] = tokens
        self.weights: np.ndarray = weights
        self.symmetrized: bool = symmetrized
        self.edges: List[tuple] = edges
        self.figure = figure

    def __repr__(self):
        kind = "undirected" if self.symmetrized else "directed"
        return f"Graph({len(self.tokens)} tokens, {len(self.edges)} {kind} edges)"


class Divergences:
    """Entropy, KL and JS between the tokens of one head, as `attnscope divergence` writes them:
    `tokens`, `entropy` [n], `kl` [n][n], `js` [n][n], `units` ({"kl", "js", "entropy"}: "bits"
    or "nats"), `figures` ({"kl", "js", "entropy"}: Figure, when asked for)."""

    def __init__(self, tokens, entropy, kl, js, units, figures):
        self.tokens: List[str] = tokens
        self.entropy: np.ndarray = entropy
        self.kl: np.ndarray = kl
        self.js: np.ndarray = js
        self.units: dict = units
        self.figures: dict = figures

    def __repr__(self):
        return f"Divergences({len(self.tokens)} tokens)"


def _figure_request(fmt: Optional[str], fig: "L.FigureOptions", title: Optional[str], keep: list):
    """Points fig at a new FigureMemory in format fmt (None: no figure); returns it or None."""
    if fmt is None:
        return None
    if fmt not in L.FIGURE_FORMATS:
        raise ValueError("figure must be 'png', 'svg' or 'pdf'")
    mem = L.FigureMemory()
    mem.format = L.FIGURE_FORMATS[fmt]
    fig.memory = ctypes.pointer(mem)
    if title:
        t = title.encode("utf-8")
        keep.append(t)
        fig.title = t
    keep.append(mem)
    return mem


def _figure_bytes(mem, fmt):
    from .figures import Figure
    out = Figure(ctypes.string_at(mem.data, mem.size))
    out.fmt = fmt
    L.ats_figure_memory_free(ctypes.byref(mem))
    return out


def graph(source: Union[Model, np.ndarray], text: Optional[str] = None, layer: int = 0,
          head: int = 0, min_weight: float = 0.05, directed: bool = False,
          seed_compat: bool = False, tokens: Optional[Sequence[str]] = None,
          figure: Optional[str] = None, title: Optional[str] = None, truncate: bool = False,
          n_threads: int = 0) -> Graph:
    """One head's attention as a weighted graph (the library's ats_head_graph, as `attnscope
    graph`): edges of weight >= min_weight; a causal head is made symmetric and undirected, as
    (A + A^T)/2 or with seed_compat=True as the seed notebook does (its lower triangle copied
    up), unless directed=True. figure="png"|"svg"|"pdf" also draws it (Graph.figure).
    source is a Model (then give text) or attention [L][H][n][n] or [n][n] (then tokens may
    label it)."""
    o = L.HeadGraphOptions()
    L.ats_head_graph_options_init(ctypes.byref(o))
    o.layer, o.head, o.min_weight = int(layer), int(head), float(min_weight)
    o.directed, o.seed_compat = int(directed), int(seed_compat)
    keep = []
    mem = _figure_request(figure, o.fig, title, keep)
    if mem is not None:
        o.figure = b"graph." + figure.encode()
    att, own = _source_attention("graph", source, text, tokens, truncate, n_threads, keep)
    res, err = L.HeadGraphResult(), L.Error()
    try:
        L.check(L.ats_head_graph(ctypes.byref(att), ctypes.byref(o), ctypes.byref(res),
                                 ctypes.byref(err)), err)
        w = _copy(res.weights, (res.n, res.n))
        edges = [(int(res.edges[2 * k]), int(res.edges[2 * k + 1])) for k in range(res.n_edges)]
        edges = [(i, j, float(w[i, j])) for i, j in edges]
        fig = _figure_bytes(mem, figure) if mem is not None else None
        return Graph(_labels_of(att), w, bool(res.symmetrized), edges, fig)
    finally:
        L.ats_head_graph_result_free(ctypes.byref(res))
        if own:
            L.ats_attention_free(ctypes.byref(att))


_DIVFIGS = {k: L._constant("ATS_DIVFIG_" + k.upper()) for k in ("kl", "js", "entropy")}


def divergence(source: Union[Model, np.ndarray], text: Optional[str] = None, layer: int = 0,
               head: int = 0, base=2, eps: float = 1e-9, seed_compat: bool = False,
               tokens: Optional[Sequence[str]] = None, figures: Optional[str] = None,
               title: Optional[str] = None, truncate: bool = False,
               n_threads: int = 0) -> Divergences:
    """Entropy of each token's attention row and the KL (smoothed by eps) and JS matrices
    between the tokens of one head (the library's ats_head_divergences, as `attnscope
    divergence`), base 2 or "e"; seed_compat=True: the seed notebook's (softmaxed rows; entropy
    and JS in nats, JS being scipy's JS distance; KL sum p (log2(p + 1e-9) - log2(q + 1e-9))).
    figures="png"|"svg"|"pdf" also draws the three heatmaps (Divergences.figures). source as
    graph()."""
    if base not in (2, "2", "e"):
        raise ValueError("base is 2 or 'e'")
    o = L.HeadDivergencesOptions()
    L.ats_head_divergences_options_init(ctypes.byref(o))
    o.layer, o.head, o.eps, o.seed_compat = int(layer), int(head), float(eps), int(seed_compat)
    o.base = L._constant("ATS_BASE_E") if base == "e" else L._constant("ATS_BASE_2")
    o.n_threads = int(n_threads)
    keep, mems = [], {}
    for k, i in _DIVFIGS.items():
        mems[k] = _figure_request(figures, o.fig[i], title, keep)
        if mems[k] is not None:
            o.figures[i] = f"{k}.{figures}".encode()
    att, own = _source_attention("divergence", source, text, tokens, truncate, n_threads, keep)
    res, err = L.HeadDivergencesResult(), L.Error()
    try:
        L.check(L.ats_head_divergences(ctypes.byref(att), ctypes.byref(o), ctypes.byref(res),
                                       ctypes.byref(err)), err)
        n = res.n
        ent, kl, js = _copy(res.entropy, (n,)), _copy(res.kl, (n, n)), _copy(res.js, (n, n))
        units = {k: res.units[i].decode() for k, i in _DIVFIGS.items()}
        figs = {k: _figure_bytes(m, figures) for k, m in mems.items() if m is not None}
        return Divergences(_labels_of(att), ent, kl, js, units, figs)
    finally:
        L.ats_head_divergences_result_free(ctypes.byref(res))
        if own:
            L.ats_attention_free(ctypes.byref(att))


def compare(model: Model, texts: Sequence[str], layer: Optional[int] = None,
            head: Optional[int] = None, all_heads: bool = False, seed_compat: bool = False,
            dim: int = 1, q: float = 1.0, n_threads: int = 0, truncate: bool = False) -> dict:
    """Compares two texts head by head, as `attnscope compare --json`: the persistence diagrams
    H0..dim of each head's Jensen–Shannon token metric (seed_compat: the seed notebook's
    √ scipy JS distance of softmaxed rows) and the bottleneck and q-Wasserstein distances between
    the two texts' diagrams (seed_compat="jsd": the notebook's first distance cell, scipy's JS
    distance itself, as --seed-distance jsd). Returns the same content as the command's JSON:
    {"bottleneck": {"0": x, "1": y}, "wasserstein": {...}, "q", "layer", "head", "tokens_a",
    "tokens_b"}, each value a number ("inf" for an infinite one, None for NaN) for one head, or
    an [L][H] list of those with all_heads=True (and no "layer", "head")."""
    texts = list(texts)
    if len(texts) != 2:
        raise ValueError("compare takes exactly two texts")
    if all_heads == (layer is not None) or (layer is None) != (head is None):
        raise ValueError("give layer and head, or all_heads=True")
    o = L.CompareOptions()
    L.ats_compare_options_init(ctypes.byref(o))
    if seed_compat not in _SEED:
        raise ValueError("seed_compat is False, True, 'sqrt-jsd' or 'jsd'")
    o.all_heads, o.seed_compat, o.max_dim, o.q = int(all_heads), _SEED[seed_compat], int(dim), float(q)
    o.n_threads, o.truncate = int(n_threads), int(truncate)
    if not all_heads:
        o.layer, o.head = int(layer), int(head)
    raw = (ctypes.c_char_p * 2)(*(t.encode("utf-8") for t in texts))
    res, err = L.CompareResult(), L.Error()
    L.check(L.ats_compare(model._session, raw, ctypes.byref(o), ctypes.byref(res), ctypes.byref(err)), err)
    try:
        Ln, Hn, nd = res.L, res.H, res.n_dims
        b, w, labels = _compare_arrays(res, (nd, Ln, Hn))
    finally:
        L.ats_compare_result_free(ctypes.byref(res))

    def per_dim(v):
        if all_heads:
            return {str(d): [[_number(float(x)) for x in row] for row in v[d]] for d in range(nd)}
        return {str(d): _number(float(v[d, layer, head])) for d in range(nd)}

    doc = {"bottleneck": per_dim(b), "wasserstein": per_dim(w), "q": float(q)}
    if not all_heads:
        doc["layer"], doc["head"] = int(layer), int(head)
    doc["tokens_a"], doc["tokens_b"] = labels
    return doc


def compare_models(model_a: Model, model_b: Model, text: Union[str, Sequence[str]],
                   layer: Optional[int] = None, head: Optional[int] = None,
                   seed_compat: Union[bool, str] = False, dim: int = 1, q: float = 1.0, n_threads: int = 0,
                   truncate: bool = False) -> dict:
    """Compares a text across two models, as `attnscope compare --model A --model B --json`:
    every head of model_a against every head of model_b (the models may differ in layers, heads
    and tokenizer), by the bottleneck and q-Wasserstein distances between the persistence
    diagrams H0..dim of the heads' Jensen–Shannon token metrics. text: one text for both models,
    or a pair (model_a's, model_b's). layer and head: that one head of each model only.
    seed_compat as for compare.
    Returns the command's JSON content: {"models": [{"model", "layers", "heads"}, ...],
    "bottleneck": {"0": M, ...}, "wasserstein": {...}, "q", ("layer", "head"), "tokens_a",
    "tokens_b"}, each M an [L_A*H_A][L_B*H_B] list (row l*H_A + h is head (l, h) of model_a;
    "inf" for an infinite distance), or one number with layer and head."""
    texts = [text, text] if isinstance(text, str) else list(text)
    if len(texts) != 2 or not all(isinstance(t, str) for t in texts):
        raise ValueError("compare_models takes one text or a pair of texts")
    if (layer is None) != (head is None):
        raise ValueError("give both layer and head, or neither")
    o = L.CompareOptions()
    L.ats_compare_options_init(ctypes.byref(o))
    if seed_compat not in _SEED:
        raise ValueError("seed_compat is False, True, 'sqrt-jsd' or 'jsd'")
    o.all_heads, o.seed_compat, o.max_dim, o.q = int(layer is None), _SEED[seed_compat], int(dim), float(q)
    o.n_threads, o.truncate = int(n_threads), int(truncate)
    if layer is not None:
        o.layer, o.head = int(layer), int(head)
    raw = (ctypes.c_char_p * 2)(*(t.encode("utf-8") for t in texts))
    res, err = L.CompareModelsResult(), L.Error()
    L.check(L.ats_compare_models(model_a._session, model_b._session, raw, ctypes.byref(o),
                                 ctypes.byref(res), ctypes.byref(err)), err)
    try:
        LH = [(res.L[t], res.H[t]) for t in range(2)]
        shape = (res.n_dims, LH[0][0] * LH[0][1], LH[1][0] * LH[1][1])
        b, w, labels = _compare_arrays(res, shape)
    finally:
        L.ats_compare_models_result_free(ctypes.byref(res))

    def per_dim(v):
        if layer is None:
            return {str(d): [[_number(float(x)) for x in row] for row in v[d]] for d in range(shape[0])}
        i, j = layer * LH[0][1] + head, layer * LH[1][1] + head
        return {str(d): _number(float(v[d, i, j])) for d in range(shape[0])}

    doc = {"models": [{"model": m.info["dir"], "layers": LH[t][0],
                       "heads": LH[t][1]} for t, m in enumerate((model_a, model_b))],
           "bottleneck": per_dim(b), "wasserstein": per_dim(w), "q": float(q)}
    if layer is not None:
        doc["layer"], doc["head"] = int(layer), int(head)
    doc["tokens_a"], doc["tokens_b"] = labels
    return doc


def report(model: Model, texts: Sequence[str], out_dir: Union[str, os.PathLike],
           layer: Optional[int] = None, head: Optional[int] = None, title: Optional[str] = None,
           format: str = "svg", truncate: bool = False, n_threads: int = 0) -> dict:
    """Writes `attnscope report`'s page for two texts into out_dir/index.html (the folder is
    made when missing): one offline HTML page with every head compared and the chosen head
    (default: the one whose H1 diagrams differ most) in detail. format is "svg" or "png" (an SVG
    figure too large for the page is embedded as PNG either way). Returns {"path", "layer",
    "head", "tokens": [a, b], "cut": [a, b] (tokens cut off with truncate=True), "figures",
    "png_fallback", "bytes"}."""
    texts = list(texts)
    if len(texts) != 2:
        raise ValueError("report takes exactly two texts")
    if (layer is None) != (head is None):
        raise ValueError("give both layer and head, or neither")
    formats = {f: L.FIGURE_FORMATS[f] for f in ("svg", "png")}
    if format not in formats:
        raise ValueError(f"format is 'svg' or 'png', not {format!r}")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(os.fspath(out_dir), "index.html")
    o = L.ReportOptions()
    L.ats_report_options_init(ctypes.byref(o))
    if layer is not None:
        o.layer, o.head = int(layer), int(head)
    keep = [title.encode("utf-8")] if title is not None else []
    if keep:
        o.title = keep[0]
    o.format, o.truncate, o.n_threads = formats[format], int(truncate), int(n_threads)
    raw = (ctypes.c_char_p * 2)(*(t.encode("utf-8") for t in texts))
    res, err = L.ReportResult(), L.Error()
    L.check(L.ats_report_run(model._session, raw, os.fsencode(path), ctypes.byref(o),
                             ctypes.byref(res), ctypes.byref(err)), err)
    return {"path": path, "layer": res.layer, "head": res.head, "tokens": list(res.tokens),
            "cut": list(res.cut), "figures": res.figures, "png_fallback": res.png_fallback,
            "bytes": res.bytes}


def _corpus_source(lines):
    """(ats_corpus_source, the buffer it points into): a corpus file's path, or texts in memory."""
    src = L.CorpusSource()
    L.ats_corpus_source_init(ctypes.byref(src))
    keep = None
    if isinstance(lines, (str, os.PathLike)):
        src.path = os.fsencode(lines)
    else:
        keep = ctypes.create_string_buffer(b"".join(t.encode("utf-8") + b"\n" for t in lines))
        src.path, src.data, src.size = b"lines", ctypes.addressof(keep), len(keep) - 1
    return src, keep


def head_importance(model: Model, lines: Union[Iterable[str], str, os.PathLike],
                    normalize: bool = False, max_lines: int = 0, max_tokens: int = 0,
                    n_threads: int = 0) -> dict:
    """Head importance from gradients, as `attnscope importance`: {"texts", "loss", "importance"
    [L, H]}, importance = mean over the texts of |dL/dxi_h| (Michel et al. 2019; L the mean
    next-token cross-entropy of a text, xi_h a gate on head h's output), one forward and one
    backward pass a text (causal LMs: GPT-2, Llama, Mistral, Qwen2). lines as heads();
    normalize=True divides each layer's importances by their L2 norm."""
    src, keep = _corpus_source(lines)
    o = L.ImportanceOptions()
    L.ats_importance_options_init(ctypes.byref(o))
    o.max_lines, o.max_tokens = int(max_lines), int(max_tokens)
    o.normalize, o.n_threads = int(normalize), int(n_threads)
    res, err = L.ImportanceResult(), L.Error()
    L.check(L.ats_head_importance(model._session, ctypes.byref(src), ctypes.byref(o),
                                  ctypes.byref(res), ctypes.byref(err)), err)
    try:
        imp = np.ctypeslib.as_array(res.importance, shape=(res.L, res.H)).copy()
        return {"texts": int(res.texts), "loss": float(res.loss), "importance": imp}
    finally:
        L.ats_importance_result_free(ctypes.byref(res))
        del keep


def heads(model: Union[Model, Sequence[Model]], lines: Union[Iterable[str], str, os.PathLike],
          clark: bool = False, max_lines: int = 0, max_tokens: int = 0, skip_long: bool = False,
          chunk_lines: int = 64, n_threads: int = 0) -> np.ndarray:
    """The distance between every two attention heads summed over a corpus, as `attnscope heads
    --output D.npy`: float64 [L·H, L·H], head l·H + h; D(a, b) = Σ over lines and tokens of
    √JS(A_a[t], A_b[t]) (base 2), or with clark=True Σ JS of rows smoothed as 0.001/n + 0.999·a.
    lines: the texts (read as a file holding them, one a line, would be: empty and invalid lines
    are skipped, JSONL objects with "text" are read when the first line starts with '{'), or the
    path of a corpus file. Two models (a pair) give D over both models' heads on the words both
    cover. The other options are the command's (--max-lines, --max-tokens, --skip-long,
    --chunk-lines, --threads)."""
    models = list(model) if isinstance(model, (list, tuple)) else [model]
    src, keep = _corpus_source(lines)
    o = L.HeadsOptions()
    L.ats_heads_options_init(ctypes.byref(o))
    o.clark, o.max_lines, o.max_tokens, o.skip_long = int(clark), int(max_lines), int(max_tokens), int(skip_long)
    o.chunk_lines, o.n_threads = int(chunk_lines), int(n_threads)
    sessions = (ctypes.c_void_p * len(models))(*(m._session for m in models))
    res, err = L.HeadsResult(), L.Error()
    L.check(L.ats_heads_corpus(sessions, len(models), ctypes.byref(src), ctypes.byref(o),
                               ctypes.byref(res), ctypes.byref(err)), err)
    try:
        return np.ctypeslib.as_array(res.D, shape=(res.N, res.N)).copy()
    finally:
        L.ats_heads_result_free(ctypes.byref(res))
        del keep


def syntax(model: Model, conllu: Union[str, os.PathLike], max_sentences: int = 0,
           n_threads: int = 0) -> dict:
    """Which heads attend from a dependent word to its gold syntactic head (Clark et al. 2019,
    section 4), as `attnscope syntax --json`, over the trees of a CoNLL-U file (the first
    max_sentences sentences, skipped ones included; 0: all). Returns the command's JSON content:
    {"sentences", "skipped", "arcs", "unmapped_arcs", "layers", "heads", "relations": {name:
    {"count", "best_head": [l, h], "accuracy", "baseline_offset", "baseline_accuracy",
    "head_correct": [L][H]}}}, the relations by decreasing count. The definitions (words,
    word-level attention, ties, baseline) are those of analysis.h."""
    o = L.SyntaxOptions()
    L.ats_syntax_options_init(ctypes.byref(o))
    o.max_sentences, o.n_threads = int(max_sentences), int(n_threads)
    res, err = L.SyntaxResult(), L.Error()
    L.check(L.ats_syntax_run(model._session, os.fsencode(conllu), ctypes.byref(o),
                             ctypes.byref(res), ctypes.byref(err)), err)
    try:
        Ln, Hn, R = res.L, res.H, res.R
        correct = np.ctypeslib.as_array(res.correct, shape=(max(R, 1), Ln, Hn))
        rels = {}
        for q in range(R):
            b = res.best_head[q]
            rels[res.names[q].decode("utf-8")] = {
                "count": int(res.count[q]), "best_head": [b // Hn, b % Hn],
                "accuracy": float(res.accuracy[q]), "baseline_offset": int(res.baseline_offset[q]),
                "baseline_accuracy": float(res.baseline_accuracy[q]),
                "head_correct": correct[q].tolist()}
        return {"sentences": res.sentences, "skipped": res.skipped, "arcs": res.arcs,
                "unmapped_arcs": res.unmapped, "layers": Ln, "heads": Hn, "relations": rels}
    finally:
        L.ats_syntax_result_free(ctypes.byref(res))


class Context:
    """A phrase's context vectors across the lines of a corpus (`attnscope context --phrase`;
    definitions in analysis.h): `lines` and `line_numbers` (1-based) of the C contexts, `words`
    (k), at the chosen unit `vectors` [C][D], `distances` [C][C] (cosine), `word_distances`
    [C][k][k], `persistence`, `scales` and `clusters` [n_scales][C] (H0 cluster of each
    context), `mean_similarity`, `single_cluster_scale`; at every unit `hidden_vectors`
    [L+1][C][d] (0: embeddings), `head_vectors` [L][H][C][d_head], `hidden_word_vectors`
    [L+1][C][k][d], `head_word_vectors` [L][H][C][k][d_head] and the summaries `by_hidden_state`
    and `by_head` (dicts of "mean_cosine_similarity", "single_cluster_scale", "word_distance",
    [L+1] and [L][H])."""

    def __repr__(self):
        return f"Context({len(self.lines)} contexts, {self.words} words; {self.persistence!r})"


def _context_options(layer, head, max_contexts, dim, scales, truncate, n_threads):
    o = L.ContextOptions()
    L.ats_context_options_init(ctypes.byref(o))
    o.layer = L.CONTEXT_EMBEDDINGS if layer == "embeddings" else int(layer)
    o.head = -1 if head is None else int(head)
    o.max_contexts, o.max_dim = int(max_contexts), int(dim)
    L.set_scales(o, scales)
    o.truncate, o.n_threads = int(truncate), int(n_threads)
    return o


def context(model: Model, lines: Union[Iterable[str], str, os.PathLike, None] = None,
            phrase: Optional[str] = None, layer: Union[int, str] = 0, head: Optional[int] = None,
            texts: Optional[Sequence[str]] = None, word: Optional[str] = None,
            max_contexts: int = 200, dim: int = 1, scales: Optional[Sequence[float]] = None,
            truncate: bool = False, n_threads: int = 0):
    """Context vectors, as `attnscope context` (the library's ats_context_run and
    ats_context_similarity; the definitions are in analysis.h).

    Phrase mode, context(model, lines, phrase, layer, head=None): the phrase's vectors in every
    line that contains it (lines: the texts, or a corpus file's path) at transformer layer
    `layer` (0..L-1, its output; "embeddings" for the embeddings) or at head `head` of that
    layer (the head's context vector softmax(Q Kᵀ/√d_head) V); returns a Context.

    Word mode, context(model, texts=[a, b], word=w): the cosine similarity of the word's vectors
    in the two texts, {"hidden": [L+1] (embeddings first), "heads": [L][H]} as NumPy arrays —
    the numbers of context.json's cosine_similarity_by_layer / _by_head."""
    o = _context_options(layer, head, max_contexts, dim, scales, truncate, n_threads)
    err = L.Error()
    if word is not None:
        if phrase is not None or lines is not None or texts is None or len(texts) != 2:
            raise ValueError("word mode is context(model, texts=[a, b], word=w)")
        tx = (ctypes.c_char_p * 2)(*(t.encode("utf-8") for t in texts))
        res = L.ContextSimilarityResult()
        L.check(L.ats_context_similarity(model._session, tx, word.encode("utf-8"), ctypes.byref(o),
                                         ctypes.byref(res), ctypes.byref(err)), err)
        try:
            return {"hidden": np.ctypeslib.as_array(res.hidden, shape=(res.L + 1,)).copy(),
                    "heads": (np.ctypeslib.as_array(res.heads, shape=(res.L, res.H)).copy()
                              if res.L else np.zeros((0, res.H)))}
        finally:
            L.ats_context_similarity_result_free(ctypes.byref(res))
    if phrase is None or lines is None or texts is not None:
        raise ValueError("phrase mode is context(model, lines, phrase, layer, head=None)")
    src, keep = _corpus_source(lines)
    res = L.ContextResult()
    L.check(L.ats_context_run(model._session, ctypes.byref(src), phrase.encode("utf-8"),
                              ctypes.byref(o), ctypes.byref(res), ctypes.byref(err)), err)
    try:
        Ln, Hn, C, k, d, dh, D = res.L, res.H, res.contexts, res.words, res.d, res.d_head, res.dim

        def arr(ptr, shape, ctype=ctypes.c_double):
            n = int(np.prod(shape))
            return (np.ctypeslib.as_array(ctypes.cast(ptr, ctypes.POINTER(ctype)), shape=(n,))
                    .reshape(shape).copy() if n else np.zeros(shape))

        f = ctypes.c_float
        c = Context()
        c.lines = [res.lines[i].decode("utf-8") for i in range(C)]
        c.line_numbers = [int(res.line_no[i]) for i in range(C)]
        c.words = k
        c.vectors = arr(res.vectors, (C, D), f)
        c.distances = arr(res.distances, (C, C))
        c.word_distances = arr(res.word_distances, (C, k, k))
        c.mean_similarity = res.mean_similarity
        c.single_cluster_scale = res.single_cluster_scale
        c.persistence = _collect(res.rips, C, res.rips.max_dim, False, False)
        c.scales = np.array(res.scales[:res.n_scales])
        c.clusters = arr(res.clusters, (res.n_scales, C), ctypes.c_int32)
        c.hidden_vectors = arr(res.hidden_vectors, (Ln + 1, C, d), f)
        c.head_vectors = arr(res.head_vectors, (Ln, Hn, C, dh), f)
        c.hidden_word_vectors = arr(res.hidden_word_vectors, (Ln + 1, C, k, d), f)
        c.head_word_vectors = arr(res.head_word_vectors, (Ln, Hn, C, k, dh), f)
        c.by_hidden_state = {
            "mean_cosine_similarity": arr(res.hidden_similarity, (Ln + 1,)),
            "single_cluster_scale": arr(res.hidden_merge, (Ln + 1,)),
            "word_distance": arr(res.hidden_word_distance, (Ln + 1,))}
        c.by_head = {
            "mean_cosine_similarity": arr(res.head_similarity, (Ln, Hn)),
            "single_cluster_scale": arr(res.head_merge, (Ln, Hn)),
            "word_distance": arr(res.head_word_distance, (Ln, Hn))}
        return c
    finally:
        L.ats_context_result_free(ctypes.byref(res))
        del keep
