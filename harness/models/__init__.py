"""Model shapes: presets, Hugging Face checkpoints, and what a model costs in bytes and memory."""
