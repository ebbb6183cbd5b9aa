"""defdistill engine: defensive distillation (Papernot et al. 2016) and JSMA, headless.

The flow is preset -> Session -> engine thread -> events -> {dashboard, run log}.
Nothing here imports the dashboard.
"""

__version__ = "0.1.0"
