"""Preparation: categorical standardization, missing values, identity stitching, sessions."""
