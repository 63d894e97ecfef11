"""The operator's console: status views of a state file (status.py), their text form (text.py),
the local HTTP API and dashboard (server.py, dashboard.html) and the Prometheus metrics (metrics.py).
Everything here reads the state file; the only writes are operator actions (engine/live/controls.py)."""
