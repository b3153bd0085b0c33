"""Segmentation models: preprocessing, clustering, k selection, stability, assignment.

The package itself stays light (the command line reads its names for ``--help``); the
modules that fit models import scikit-learn.
"""

METHODS = ("kmeans", "gmm", "agglomerative", "dbscan", "hdbscan", "rfm")
