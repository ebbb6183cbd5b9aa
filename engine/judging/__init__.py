"""`defdistill-engine judge`: any PyTorch model judged in one command, through an ordinary run."""
