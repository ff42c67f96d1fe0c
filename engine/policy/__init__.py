"""The policy tree: loading, validation, layering and bitemporal resolution."""
