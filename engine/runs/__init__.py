"""The run machinery: a run directory, the events an engine writes to it, the sessions that run and
steer an experiment (a thread, a process, a replay), the command channel and the run lock.

Imports the science (engine.presets, engine.training, engine.attacks, ...), never the sweep layer.
"""
