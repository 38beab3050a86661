"""The token topology of a ViT's image patches (`attnscope vision`) and the permutation
equivariance of self-attention (`attnscope equivariance`), over the library calls the commands
make (ats_vision, ats_equivariance in analysis.h): the same numbers by construction."""
import ctypes
import os
from typing import List, Optional, Sequence, Union

import numpy as np

from . import _lib as L
from .figures import Figure
from .model import Model
from .topology import Persistence, _collect

_FORMATS = {v: k for k, v in L.FIGURE_FORMATS.items()}


def _figure(mem: "L.FigureMemory") -> Optional[Figure]:
    if not mem.data:
        return None
    out = Figure(ctypes.string_at(mem.data, mem.size))
    out.fmt = _FORMATS[mem.format]
    return out


def _square(lower_ptr, n: int) -> np.ndarray:
    """The symmetric [n][n] matrix of a lower triangle (row i holds d(i, 0..i-1))."""
    d = np.zeros((n, n))
    if n > 1:
        low = np.ctypeslib.as_array(lower_ptr, shape=(n * (n - 1) // 2,))
        i, j = np.tril_indices(n, -1)
        d[i, j] = low
        d[j, i] = low
    return d


class VisionRun:
    """The patch topology of one image: `distances` [n][n] (the JS distance, base 2, between
    patch tokens; [CLS] left out; patch k at grid row k // cols, column k % cols),
    `persistence` (H0, H1) and `figures` ({"diagram", "barcode", "skeleton"}: Figure bytes, or
    empty without figures)."""

    def __init__(self, run: "L.VisionRun"):
        n = run.n
        self.distances: np.ndarray = _square(run.lower, n)
        self.persistence: Persistence = _collect(run.rips, n, 1, False, False)
        self.figures = {k: f for k, i in L.VISION_FIGURES.items()
                        if (f := _figure(run.figures[i])) is not None}

    def __repr__(self):
        d = self.persistence.dims
        return f"VisionRun({len(self.distances)} patches; H0: {len(d[0])}, H1: {len(d[1])})"


class VisionImage(VisionRun):
    """One image: its VisionRun fields, `name`, `scales` (of the skeletons), `perturbed` (the
    perturbed copy's VisionRun, or None), `bottleneck` and `wasserstein` ([H0, H1] between the
    image and its copy, or None), and with sphere=True `sphere` [n][3] (patch k at point k of a
    Fibonacci sphere), `edges` [m][2] and `edge_weights` [m] (the strongest edges of the
    attention graph between patches) and `sphere_figure`."""

    def __init__(self, im: "L.VisionImage"):
        super().__init__(im.run)
        n = im.run.n
        self.name: str = im.name.decode("utf-8", "replace")
        self.scales = np.array([im.scales[i] for i in range(im.n_scales)])
        self.perturbed: Optional[VisionRun] = VisionRun(im.perturbation) if im.perturbed else None
        self.bottleneck = np.array(im.bottleneck[:]) if im.perturbed else None
        self.wasserstein = np.array(im.wasserstein[:]) if im.perturbed else None
        self.sphere = (np.ctypeslib.as_array(im.sphere, shape=(n, 3)).copy()
                       if im.sphere else None)
        m = im.n_edges
        self.edges = (np.ctypeslib.as_array(im.edges, shape=(m, 2)).astype(np.int64)
                      if im.sphere and m else (np.zeros((0, 2), np.int64) if im.sphere else None))
        self.edge_weights = (np.ctypeslib.as_array(im.edge_weights, shape=(m,)).copy()
                             if im.sphere and m else (np.zeros(0) if im.sphere else None))
        self.sphere_figure: Optional[Figure] = _figure(im.sphere_figure)


class VisionResult:
    """`images` (a VisionImage each), `height`, `width` (pixels the images ran at), `grid`
    (rows, cols of patches), `patch` (pixels), `strength` (of the perturbation),
    `frame_bottleneck` and `frame_wasserstein` ([count-1][2]: H0, H1 between images t and t+1),
    `frames_figure` (more than two images, with figures)."""

    def __init__(self, r: "L.VisionResult"):
        self.height, self.width, self.patch = r.height, r.width, r.patch
        self.grid = (r.rows, r.cols)
        self.strength = float(r.strength)
        self.images: List[VisionImage] = [VisionImage(r.images[t]) for t in range(r.count)]
        T = max(r.count - 1, 0)
        self.frame_bottleneck = (np.ctypeslib.as_array(r.frame_bottleneck, shape=(T, 2)).copy()
                                 if T else np.zeros((0, 2)))
        self.frame_wasserstein = (np.ctypeslib.as_array(r.frame_wasserstein, shape=(T, 2)).copy()
                                  if T else np.zeros((0, 2)))
        self.frames_figure: Optional[Figure] = _figure(r.frames_figure)

    def __repr__(self):
        return (f"VisionResult({len(self.images)} images, grid {self.grid[0]}x{self.grid[1]} "
                f"of {self.patch}-pixel patches)")


def vision(model: Model, images, layer: int, head: int, image_size=None,
           scales: Optional[Sequence[float]] = None, perturb: Optional[str] = None,
           strength: Optional[float] = None, sphere: bool = False, sphere_edges: int = 0,
           figures: Optional[str] = None, title: Optional[str] = None) -> VisionResult:
    """The token topology of a ViT's image patches, as `attnscope vision`: for each image (a
    file path, or uint8 pixels [H][W][3]; one or a list, the frames of a video), the JS
    distance (base 2) between the patch tokens of head (layer, head), its persistence H0/H1,
    with perturb ("noise", "blur", "occlusion"; strength as the command's --strength) the same
    for a perturbed copy and the distances between their diagrams, and between consecutive
    images the bottleneck and Wasserstein distances. image_size: H or (H, W) pixels instead of
    the model's size. sphere=True: the patches on a Fibonacci sphere with the strongest
    sphere_edges edges of the attention graph (0: 2n). figures="png"/"svg"/"pdf" draws the
    command's figures (and the sphere's) as Figure bytes."""
    if isinstance(images, (str, os.PathLike, np.ndarray)):
        images = [images]
    images = list(images)
    if not images:
        raise ValueError("vision: give at least one image")
    o = L.VisionOptions()
    L.ats_vision_options_init(ctypes.byref(o))
    o.layer, o.head = int(layer), int(head)
    if image_size is not None:
        h, w = (image_size, image_size) if np.isscalar(image_size) else image_size
        o.height, o.width = int(h), int(w)
    L.set_scales(o, scales)
    if perturb is not None:
        if perturb not in L.PERTURBATIONS or perturb == "none":
            raise ValueError("perturb is 'noise', 'blur' or 'occlusion'")
        o.perturb = L.PERTURBATIONS[perturb]
    if strength is not None:
        o.strength = float(strength)
    o.sphere, o.sphere_edges = int(sphere), int(sphere_edges)
    if figures is not None:
        if figures not in L.FIGURE_FORMATS:
            raise ValueError("figures is 'png', 'svg' or 'pdf'")
        o.figures, o.format = 1, L.FIGURE_FORMATS[figures]
    o.title = title.encode("utf-8") if title else None
    inputs, keep = (L.VisionInput * len(images))(), []
    for t, im in enumerate(images):
        if isinstance(im, np.ndarray):
            a = np.ascontiguousarray(im)
            if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
                raise ValueError(f"image {t + 1}: pixels are uint8 [H][W][3], not {a.dtype} "
                                 f"{list(a.shape)}")
            img = L.Image(a.shape[1], a.shape[0], a.ctypes.data_as(ctypes.POINTER(ctypes.c_uint8)))
            keep += [a, img]
            inputs[t].image = ctypes.pointer(img)
        else:
            inputs[t].path = os.fsencode(im)
    res, err = L.VisionResult(), L.Error()
    L.check(L.ats_vision(model._session, len(images), inputs, ctypes.byref(o), ctypes.byref(res),
                         ctypes.byref(err)), err)
    try:
        return VisionResult(res)
    finally:
        L.ats_vision_result_free(ctypes.byref(res))
        del keep


def equivariance(model: Model, text: str, seed: int = 1, figures: Optional[str] = None,
                 title: Optional[str] = None) -> dict:
    """Permutation equivariance of self-attention, as `attnscope equivariance`: the model runs
    on the text (with its special tokens) and on a random permutation P of its tokens (seed),
    with and without position embeddings. Returns equivariance.json's content: {"model_type",
    "causal", "tokens", "permutation", "max_deviation_with_positions" [L],
    "max_deviation_without_positions" [L]} (max over heads and tokens of
    |Attn(PX) - P Attn(X) P^T| per layer, NumPy arrays), and with figures="png"/"svg"/"pdf"
    "figure": the chart's Figure bytes (titled title, as --title)."""
    o = L.EquivarianceOptions()
    L.ats_equivariance_options_init(ctypes.byref(o))
    o.seed = int(seed)
    title_bytes = None if title is None else str(title).encode("utf-8")
    o.title = title_bytes
    if figures is not None:
        if figures not in L.FIGURE_FORMATS:
            raise ValueError("figures is 'png', 'svg' or 'pdf'")
        o.figures, o.format = 1, L.FIGURE_FORMATS[figures]
    res, err = L.EquivarianceResult(), L.Error()
    L.check(L.ats_equivariance(model._session, text.encode("utf-8"), ctypes.byref(o),
                               ctypes.byref(res), ctypes.byref(err)), err)
    try:
        Ln, n = res.L, res.n
        doc = {"model_type": model.info["model_type"], "causal": bool(res.causal), "tokens": int(n),
               "permutation": [int(res.permutation[k]) for k in range(n)],
               "max_deviation_with_positions":
                   np.ctypeslib.as_array(res.with_positions, shape=(Ln,)).copy(),
               "max_deviation_without_positions":
                   np.ctypeslib.as_array(res.without_positions, shape=(Ln,)).copy()}
        if figures is not None:
            doc["figure"] = _figure(res.figure)
        return doc
    finally:
        L.ats_equivariance_result_free(ctypes.byref(res))
