"""Stream aggregates: partial aggregates per tumbling window, their records, state and reads."""
