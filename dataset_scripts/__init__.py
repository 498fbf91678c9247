"""datasets builders for EMOTIC, CAER-S and BoLD, reading the owners' on-disk formats."""
