"""transformers 5.24.0's common test mixins, vendored from its source distribution (see README.md)."""
