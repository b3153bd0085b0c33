"""Statistics shared by several stages: pure functions over NumPy arrays (and the scaling
transform, applied back as Ibis expressions). Nothing here reads or writes a table."""

from tribes.stats.ab import (
    benjamini_hochberg,
    bootstrap_diff,
    cuped,
    heterogeneity,
    holm,
    newcombe,
    srm,
    two_proportion_p,
    welch,
    wilson,
)
from tribes.stats.clusters import silhouette
from tribes.stats.drift import (
    FeatureDrift,
    ShareShift,
    aged,
    feature_drift,
    profile,
    share_shift,
)
from tribes.stats.knee import knee_eps
from tribes.stats.scaling import Transform, fit_transform
from tribes.stats.threads import single_threaded

__all__ = [
    "FeatureDrift",
    "ShareShift",
    "Transform",
    "aged",
    "benjamini_hochberg",
    "bootstrap_diff",
    "cuped",
    "feature_drift",
    "fit_transform",
    "heterogeneity",
    "holm",
    "knee_eps",
    "newcombe",
    "profile",
    "share_shift",
    "silhouette",
    "single_threaded",
    "srm",
    "two_proportion_p",
    "welch",
    "wilson",
]
