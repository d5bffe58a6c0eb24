"""The manifest: reading CSV/JSONL, rows and splits, tasks and their targets, and DataError."""
