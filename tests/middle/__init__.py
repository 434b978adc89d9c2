"""The middle layer: assets and sensors run in-process against the catalog and fakes."""
