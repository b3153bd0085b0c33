"""The PySpark backend (``--backend pyspark``): the same Ibis expressions on a Spark
session, tables as Parquet directories in the workspace's warehouse.

Imported only when a Spark engine is opened (see :mod:`tribes.engine.registry`), and
PySpark itself only when its session starts: ``tribes[spark]`` is an optional extra.
"""
