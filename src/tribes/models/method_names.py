"""The names of the segmentation methods, kept apart from the estimators: the command line
lists them for ``--help`` without importing scikit-learn."""

# the clustering methods, each an estimator class in tribes.models.methods.SEGMENTERS (a
# test keeps the two equal), then the rule-based RFM segments
CLUSTERING = ("kmeans", "gmm", "agglomerative", "dbscan", "hdbscan")
METHODS = (*CLUSTERING, "rfm")
