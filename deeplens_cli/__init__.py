"""The `deeplens` command."""
