"""attnscope: the topology and information theory of attention in transformer models.

The C library does the work; this package passes NumPy arrays in and out (without copies where
the input is already a C-contiguous float64 array) and raises AttnscopeError with the library's
message on bad input. Every analysis accepts attention or distances from anywhere, e.g. a
PyTorch model's `outputs.attentions`."""
from ._lib import AttnscopeError
from .analysis import (Context, Divergences, Graph, Topology, compare, compare_models, context, divergence, graph,
                       head_importance, heads, report, syntax, topo)
from .figures import (plot_attention_graph, plot_barcode, plot_diagram, plot_heatmap,
                      plot_heatmap_grid, plot_skeleton)
from .kernels import check_kernel_env, kernel_path, kernel_paths, set_kernel_path, version
from .measures import (context_similarity, entropy, head_distances, head_stats, js_matrix,
                       kl_matrix)
from .model import Model, Result
from .vision import VisionImage, VisionResult, VisionRun, equivariance, vision
from .topology import (Persistence, bottleneck, clusters, layout, lower_triangle, rips,
                       rips_batch, wasserstein)

__version__ = "0.1.0"

__all__ = [
    "AttnscopeError", "Model", "Result", "Topology", "topo", "Graph", "graph", "Divergences",
    "divergence", "compare", "compare_models", "report", "Context", "context", "head_importance", "heads", "syntax",
    "vision", "equivariance", "VisionResult", "VisionImage", "VisionRun", "entropy", "kl_matrix",
    "js_matrix", "head_distances",
    "head_stats", "context_similarity", "Persistence", "rips", "rips_batch", "clusters", "lower_triangle",
    "bottleneck", "wasserstein", "layout", "plot_diagram", "plot_barcode", "plot_heatmap",
    "plot_heatmap_grid", "plot_skeleton", "plot_attention_graph", "kernel_path", "kernel_paths",
    "set_kernel_path", "check_kernel_env", "version",
]
