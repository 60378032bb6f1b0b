"""From a corpus on disk to training batches: read and clean, tokenize, prepare a run dir, batch."""
