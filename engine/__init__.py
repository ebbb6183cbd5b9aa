"""defdistill engine: defensive distillation (Papernot et al. 2016) and JSMA, headless.

The flow is preset -> Session -> engine thread -> events -> {dashboard, run log}.
Nothing here imports the dashboard.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `from engine import judge` (engine/masking/judge_model.py) imports torch when asked for, not before:
    # the dashboard imports engine.client without torch
    if name in ("judge", "Judgement", "JudgeError"):
        from engine.masking import judge_model

        return getattr(judge_model, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
