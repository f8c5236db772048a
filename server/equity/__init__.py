"""The equity view: time to consult by region, specialty, urgency and week (aggregates only)."""
