"""The steps of a run: the experiment (baseline, teacher, soft labels, student, surrogate), the attack
phase (JSMA), the C&W phase and the verdict phase, with the RunContext they share and the Control that
pauses, stops and re-tempers them.

Imports the science, the attacks, the masking package and the record; never the sessions that drive it.
"""
