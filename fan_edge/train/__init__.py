"""Training: losses per mode, the loop, checkpoints."""
