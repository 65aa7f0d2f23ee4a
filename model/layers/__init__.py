"""Building blocks of the ranking models (all TorchScript-compatible)."""
