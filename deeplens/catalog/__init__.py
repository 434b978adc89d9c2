"""The catalog: tenants, images, the outbox and stored embeddings, in PostgreSQL (plain SQL)."""
