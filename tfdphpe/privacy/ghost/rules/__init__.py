"""The built-in per-layer rules, one module per layer family (each registers itself)."""
