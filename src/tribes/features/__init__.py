"""Customer features (DESIGN §5): one row per customer, computed in the engine."""
