"""batt-submit: load ARC data, pick tasks, score every sample (on a cluster or locally) and write results."""
