"""Training, sampling and checkpoints: importable functions under thin command-line entry points."""
