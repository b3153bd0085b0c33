"""Analysis: journeys, cohorts, trends and anomalies (DESIGN §4), computed in the engine."""
