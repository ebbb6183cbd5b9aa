"""Sessions and process plumbing: the Session interface (torch-free), a run in a thread, in an engine
process (host, job, command channel) or replayed from files; listing runs, progress lines and telemetry.

Imports the steps and the record; never the sweep layer.
"""
