"""Figures from the C renderer (cairo + pango) as bytes: PNG, SVG or PDF.

Each function returns a `Figure`, a bytes object that Jupyter shows inline; write it to a file
with `open(path, "wb").write(fig)`."""
import ctypes
from typing import Optional, Sequence

import numpy as np

from . import _lib as L
from .topology import Persistence, lower_triangle


class Figure(bytes):
    """Encoded figure bytes; `fmt` is "png", "svg" or "pdf". Displays inline in Jupyter."""

    fmt = "png"

    def _repr_png_(self):
        return bytes(self) if self.fmt == "png" else None

    def _repr_svg_(self):
        return bytes(self).decode("utf-8") if self.fmt == "svg" else None


def _render(fmt: str, fig: "L.FigureOptions", draw) -> Figure:
    """Draws into memory (ats_figure_options.memory): no temporary file. fig is the figure
    options inside the options draw passes."""
    if fmt not in L.FIGURE_FORMATS:
        raise ValueError("fmt must be 'png', 'svg' or 'pdf'")
    mem = L.FigureMemory()
    mem.format = L.FIGURE_FORMATS[fmt]
    fig.memory = ctypes.pointer(mem)
    err = L.Error()
    try:
        L.check(draw(b"figure." + fmt.encode(), ctypes.byref(err)), err)
        out = Figure(ctypes.string_at(mem.data, mem.size))
    finally:
        fig.memory = None
        L.ats_figure_memory_free(ctypes.byref(mem))
    out.fmt = fmt
    return out


def _fig_options(title: Optional[str], width: float = 0, height: float = 0,
                 png_scale: float = 2.0) -> L.FigureOptions:
    opt = L.FigureOptions()
    L.ats_figure_options_init(ctypes.byref(opt))
    opt.title = title.encode("utf-8") if title else None
    opt.width, opt.height, opt.png_scale = float(width), float(height), float(png_scale)
    return opt


def _labels(labels: Optional[Sequence[str]], n: int):
    if labels is None:
        return None, None
    if len(labels) != n:
        raise L.AttnscopeError(3, f"{len(labels)} labels for {n} rows/columns")
    enc = [str(s).encode("utf-8") for s in labels]
    return (ctypes.c_char_p * n)(*enc), enc


def _diagrams(diagrams, dims):
    if isinstance(diagrams, Persistence):
        arrays = list(diagrams.dims)
    elif isinstance(diagrams, np.ndarray) and diagrams.ndim == 2:
        arrays = [diagrams]
    else:
        arrays = list(diagrams)
    if dims is None:
        dims = list(range(len(arrays)))
    keep = [np.ascontiguousarray(np.asarray(a, dtype=np.float64).reshape(-1, 2)) for a in arrays]
    structs = (L.Diagram * len(keep))(*[L.Diagram(a.shape[0], L.as_double_ptr(a)) for a in keep])
    d = (ctypes.c_int32 * len(keep))(*dims)
    return structs, d, keep


def plot_diagram(diagrams, dims: Optional[Sequence[int]] = None, title: Optional[str] = None,
                 fmt: str = "png") -> Figure:
    """Persistence diagram of a Persistence (all dimensions) or a list of [m][2] arrays."""
    s, d, keep = _diagrams(diagrams, dims)
    opt = _fig_options(title)
    return _render(fmt, opt, lambda p, e: L.ats_render_diagram(p, len(keep), s, d, ctypes.byref(opt), e))


def plot_barcode(diagrams, dims: Optional[Sequence[int]] = None, title: Optional[str] = None,
                 fmt: str = "png") -> Figure:
    """Barcode of a Persistence or a list of [m][2] arrays."""
    s, d, keep = _diagrams(diagrams, dims)
    opt = _fig_options(title)
    return _render(fmt, opt, lambda p, e: L.ats_render_barcode(p, len(keep), s, d, ctypes.byref(opt), e))


def _heat_options(title, row_labels, col_labels, vmin, vmax, value_title, rows, cols, row_title, col_title):
    opt = L.HeatmapOptions()
    L.ats_heatmap_options_init(ctypes.byref(opt))
    opt.fig = _fig_options(title)
    rl, keep_r = _labels(row_labels, rows)
    cl, keep_c = _labels(col_labels, cols)
    opt.row_labels, opt.col_labels = rl, cl
    opt.vmin = float(vmin) if vmin is not None else 0.0
    opt.vmax = float(vmax) if vmax is not None else 0.0
    opt.value_title = value_title.encode() if value_title else None
    opt.row_title = row_title.encode() if row_title else None
    opt.col_title = col_title.encode() if col_title else None
    return opt, (rl, cl, keep_r, keep_c)


def plot_heatmap(matrix: np.ndarray, row_labels: Optional[Sequence[str]] = None,
                 col_labels: Optional[Sequence[str]] = None, title: Optional[str] = None,
                 vmin: Optional[float] = None, vmax: Optional[float] = None,
                 value_title: Optional[str] = None, row_title: Optional[str] = "query",
                 col_title: Optional[str] = "key", fmt: str = "png") -> Figure:
    """Heatmap of a matrix [rows][cols] (an attention head, a JS matrix) with token labels."""
    m = np.ascontiguousarray(np.asarray(matrix, dtype=np.float64))
    if m.ndim != 2:
        raise L.AttnscopeError(3, f"heatmap needs a matrix [rows][cols], got shape {m.shape}")
    opt, keep = _heat_options(title, row_labels, col_labels, vmin, vmax, value_title,
                              m.shape[0], m.shape[1], row_title, col_title)
    return _render(fmt, opt.fig, lambda p, e: L.ats_render_heatmap(p, m.shape[0], m.shape[1],
                                                           L.as_double_ptr(m), ctypes.byref(opt), e))


def plot_heatmap_grid(tensor: np.ndarray, title: Optional[str] = None,
                      vmin: Optional[float] = None, vmax: Optional[float] = None,
                      value_title: Optional[str] = None, fmt: str = "png") -> Figure:
    """All heads at once: tensor [L][H][n][m] as an L × H grid with one colour scale."""
    t = np.ascontiguousarray(np.asarray(tensor, dtype=np.float64))
    if t.ndim != 4:
        raise L.AttnscopeError(3, f"heatmap grid needs [L][H][n][m], got shape {t.shape}")
    opt, keep = _heat_options(title, None, None, vmin, vmax, value_title, 0, 0, None, None)
    return _render(fmt, opt.fig, lambda p, e: L.ats_render_heatmap_grid(
        p, t.shape[0], t.shape[1], t.shape[2], t.shape[3], L.as_double_ptr(t), None,
        ctypes.byref(opt), e))


def _graph_options(title, labels, n, show_labels=True):
    opt = L.GraphOptions()
    L.ats_graph_options_init(ctypes.byref(opt))
    opt.fig = _fig_options(title)
    lab, keep = _labels(labels, n)
    opt.labels = lab
    opt.show_labels = int(show_labels)
    return opt, (lab, keep)


def plot_skeleton(distances: np.ndarray, scales, labels: Optional[Sequence[str]] = None,
                  title: Optional[str] = None, fmt: str = "png") -> Figure:
    """The Rips 1-skeleton of a distance matrix [n][n] at one scale or several (a list)."""
    d = np.asarray(distances)
    n = d.shape[0]
    lower = lower_triangle(d)
    sc = np.ascontiguousarray(np.atleast_1d(np.asarray(scales, dtype=np.float64)))
    opt, keep = _graph_options(title, labels, n)
    return _render(fmt, opt.fig, lambda p, e: L.ats_render_skeleton_grid(
        p, n, L.as_double_ptr(lower), sc.shape[0], L.as_double_ptr(sc), ctypes.byref(opt), e))


def plot_attention_graph(attention: np.ndarray, labels: Optional[Sequence[str]] = None,
                         min_weight: float = 0.05, symmetrize: bool = False,
                         title: Optional[str] = None, fmt: str = "png") -> Figure:
    """Attention [n][n] as a weighted graph on a circle (edges of weight >= min_weight)."""
    a = np.ascontiguousarray(np.asarray(attention, dtype=np.float64))
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise L.AttnscopeError(3, f"attention must be [n][n], got shape {a.shape}")
    opt, keep = _graph_options(title, labels, a.shape[0])
    return _render(fmt, opt.fig, lambda p, e: L.ats_render_attention_graph(
        p, a.shape[0], L.as_double_ptr(a), float(min_weight), int(symmetrize), ctypes.byref(opt), e))
