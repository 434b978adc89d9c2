"""Qdrant's REST endpoints, one router per resource."""
