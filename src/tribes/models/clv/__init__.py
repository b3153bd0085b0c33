"""Customer lifetime value: buy-till-you-die purchase models, the Gamma-Gamma spend model,
the engine-side purchase summary they are fitted on, and churn risk."""
