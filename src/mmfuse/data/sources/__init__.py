"""Where samples come from besides a hand-written manifest: generated datasets."""
