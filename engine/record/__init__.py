"""A run's record on disk: the run directory and its files (engine/record/rundir.py), the typed events an
engine appends to events.jsonl (the contract between engine and dashboard: torch-free), and the lock
that keeps a second engine off a live run.

Imports only the science's leaves (engine.errors, engine.presets): every layer above may read a record.
"""
