"""The command-line workflows as functions, over the same library calls as the commands
(analysis.h), so that the numbers are the commands' by construction: `compare` (two texts head by
head), `heads` (distances between heads over a corpus) and `syntax` (syntactic heads against
gold dependency trees)."""
import ctypes
import json
import math
import os
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from . import _lib as L
from .model import Model


def _number(v: float):
    """A number as the commands write it into JSON, read back: the float itself when finite,
    else what the library writes (core.h, ats_json_number_format: None for NaN, "inf" and
    "-inf" for infinities)."""
    return v if math.isfinite(v) else json.loads(L.json_number(v))


def compare(model: Model, texts: Sequence[str], layer: Optional[int] = None,
            head: Optional[int] = None, all_heads: bool = False, seed_compat: bool = False,
            dim: int = 1, q: float = 1.0, n_threads: int = 0, truncate: bool = False) -> dict:
    """Compares two texts head by head, as `attnscope compare --json`: the persistence diagrams
    H0..dim of each head's Jensen–Shannon token metric (seed_compat: the seed notebook's
    √ scipy JS distance of softmaxed rows) and the bottleneck and q-Wasserstein distances between
    the two texts' diagrams. Returns the same content as the command's JSON:
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
    o.all_heads, o.seed_compat, o.max_dim, o.q = int(all_heads), int(seed_compat), int(dim), float(q)
    o.n_threads, o.truncate = int(n_threads), int(truncate)
    if not all_heads:
        o.layer, o.head = int(layer), int(head)
    raw = (ctypes.c_char_p * 2)(*(t.encode("utf-8") for t in texts))
    res, err = L.CompareResult(), L.Error()
    L.check(L.ats_compare(model._session, raw, ctypes.byref(o), ctypes.byref(res), ctypes.byref(err)), err)
    try:
        Ln, Hn, nd = res.L, res.H, res.n_dims
        shape = (nd, Ln, Hn)
        b = np.ctypeslib.as_array(res.bottleneck, shape=shape).copy()
        w = np.ctypeslib.as_array(res.wasserstein, shape=shape).copy()
        labels = [[res.inputs[k].labels[i].decode("utf-8", "replace") for i in range(res.inputs[k].n)]
                  for k in range(2)]
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
