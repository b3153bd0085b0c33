"""tribes: behavioral customer segmentation, from raw events to segments that act."""

__version__ = "0.1.0"
