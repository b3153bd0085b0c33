"""Segmentation models: preprocessing, clustering, k selection, stability, assignment.

The package itself stays light (the command line reads its names for ``--help``); the
modules that fit models import scikit-learn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tribes.lazy import lazy_names
from tribes.models.method_names import CLUSTERING, METHODS
from tribes.models.personas import (
    OVERRIDE_FIELDS,
    build_personas,
    personas_built_at,
    set_overrides,
    stored_personas,
)
from tribes.models.validate import RETENTION_DAYS, validate_segments

if TYPE_CHECKING:
    from tribes.models.clv.churn import compare_churn
    from tribes.models.clv.clv_stage import fit_clv, last_fit, models_of, score_clv, validate_clv
    from tribes.models.membership import MembershipRefresh, apply_version, refresh_memberships
    from tribes.models.methods import (
        DENSITY,
        SEGMENTERS,
        AgglomerativeSegmenter,
        DBSCANSegmenter,
        GaussianMixtureSegmenter,
        HDBSCANSegmenter,
        KMeansSegmenter,
        Segmenter,
        stored_segments,
    )
    from tribes.models.movement import Migration, migration
    from tribes.models.segmentation import (
        Prepared,
        SegmentReport,
        choose_k,
        fit_method,
        prepare,
        refit_note,
        run_segmentation,
        sample_customers,
        stability_warning,
    )

# served on first use: their modules import SciPy and scikit-learn
_LAZY = {
    "compare_churn": "tribes.models.clv.churn",
    "fit_clv": "tribes.models.clv.clv_stage",
    "last_fit": "tribes.models.clv.clv_stage",
    "models_of": "tribes.models.clv.clv_stage",
    "score_clv": "tribes.models.clv.clv_stage",
    "validate_clv": "tribes.models.clv.clv_stage",
    "MembershipRefresh": "tribes.models.membership",
    "apply_version": "tribes.models.membership",
    "refresh_memberships": "tribes.models.membership",
    "Migration": "tribes.models.movement",
    "migration": "tribes.models.movement",
    "AgglomerativeSegmenter": "tribes.models.methods",
    "DBSCANSegmenter": "tribes.models.methods",
    "DENSITY": "tribes.models.methods",
    "GaussianMixtureSegmenter": "tribes.models.methods",
    "HDBSCANSegmenter": "tribes.models.methods",
    "KMeansSegmenter": "tribes.models.methods",
    "SEGMENTERS": "tribes.models.methods",
    "Segmenter": "tribes.models.methods",
    "stored_segments": "tribes.models.methods",
    "Prepared": "tribes.models.segmentation",
    "SegmentReport": "tribes.models.segmentation",
    "choose_k": "tribes.models.segmentation",
    "fit_method": "tribes.models.segmentation",
    "prepare": "tribes.models.segmentation",
    "refit_note": "tribes.models.segmentation",
    "run_segmentation": "tribes.models.segmentation",
    "sample_customers": "tribes.models.segmentation",
    "stability_warning": "tribes.models.segmentation",
}

__all__ = [
    "CLUSTERING",
    "DENSITY",
    "METHODS",
    "OVERRIDE_FIELDS",
    "RETENTION_DAYS",
    "SEGMENTERS",
    "AgglomerativeSegmenter",
    "DBSCANSegmenter",
    "GaussianMixtureSegmenter",
    "HDBSCANSegmenter",
    "KMeansSegmenter",
    "MembershipRefresh",
    "Migration",
    "Prepared",
    "SegmentReport",
    "Segmenter",
    "apply_version",
    "build_personas",
    "choose_k",
    "compare_churn",
    "fit_clv",
    "fit_method",
    "last_fit",
    "migration",
    "models_of",
    "personas_built_at",
    "prepare",
    "refit_note",
    "refresh_memberships",
    "run_segmentation",
    "sample_customers",
    "score_clv",
    "set_overrides",
    "stability_warning",
    "stored_personas",
    "stored_segments",
    "validate_clv",
    "validate_segments",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY)
