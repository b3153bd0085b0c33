"""Segmentation models: preprocessing, clustering, k selection, stability, assignment."""
