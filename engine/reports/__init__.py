"""Reports of finished runs and sweeps: report.md, figures, TensorBoard export, verdict tables.
Read from run and sweep directories; called by the CLI and by the engine's sweep."""
