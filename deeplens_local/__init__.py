"""DeepLens on one machine without servers: the embedded stack behind `deeplens up`, the local
Qdrant server, synthetic images and model tools. Used by `deeplens up`, the tests and the bench;
production code never imports it (an import contract in pyproject.toml checks that)."""
