"""The fault suite of issue 7: real process-level faults against a real Redis, real workers and batt-submit."""
