"""Temperature sweeps on top of runs: plan, run (locally or on Ray), collect, figures, report.

Imports the run machinery and the science; nothing below imports this layer.
"""
