"""Segmentation models: preprocessing, clustering, k selection, stability, assignment.

The package itself stays light (the command line reads its names for ``--help``); the
modules that fit models import scikit-learn.
"""

# the clustering methods, each an estimator class in tribes.models.methods.SEGMENTERS (a
# test keeps the two equal), then the rule-based RFM segments
CLUSTERING = ("kmeans", "gmm", "agglomerative", "dbscan", "hdbscan")
METHODS = (*CLUSTERING, "rfm")
