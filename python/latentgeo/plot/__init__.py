"""Pictures of 2-d latent spaces (matplotlib, optional: ``pip install latentgeo[plot]``).

Every function draws on ``ax`` (a new figure when None) and returns the Axes (its Figure is
``ax.figure``); none calls ``show()``.

The functions live by job in ``latent`` (magnification and latent-code maps), ``curve_plots``
(curves, points at equal arc length, decoded images) and ``connection_plots`` (curvature maps,
exponential-map fans); ``common`` holds what they share.
"""

from .connection_plots import curvature_grid, plot_curvature, plot_exp_fan
from .curve_plots import plot_curves, plot_decoded_curves, points_at_equal_arc_length
from .latent import magnification_grid, plot_latent, plot_magnification

__all__ = [
    "plot_magnification",
    "plot_curves",
    "plot_latent",
    "magnification_grid",
    "points_at_equal_arc_length",
    "plot_decoded_curves",
    "curvature_grid",
    "plot_curvature",
    "plot_exp_fan",
]
