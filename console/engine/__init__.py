"""The headless core: scheduling, leadership, decisions, snapshots."""
