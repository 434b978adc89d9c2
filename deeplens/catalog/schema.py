"""Schema migrations for the catalog, applied in order and recorded in ``schema_version``.

The catalog lives in its own PostgreSQL schema (``deeplens``) so that it can share a database
with Dagster's storage without name clashes.
"""

from __future__ import annotations

import logging

import psycopg

log = logging.getLogger(__name__)

SCHEMA = "deeplens"

MIGRATIONS: list[str] = [
    # 1: tenants, images, outbox, embeddings
    """
    CREATE TABLE deeplens.tenants (
        tenant_id        text PRIMARY KEY,
        name             text NOT NULL,
        api_key_hash     text NOT NULL UNIQUE,
        model            text NOT NULL,
        collection_alias text NOT NULL,
        created_at       timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE deeplens.images (
        image_id              uuid PRIMARY KEY,
        tenant_id             text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        sha256                text NOT NULL,
        blob_key              text NOT NULL,
        file_name             text NOT NULL,
        content_type          text NOT NULL,
        file_size             bigint NOT NULL,
        width                 integer NOT NULL,
        height                integer NOT NULL,
        uploaded_by           text,
        metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
        status                text NOT NULL,
        failure_reason        text,
        event_id              uuid NOT NULL,
        correlation_id        uuid NOT NULL,
        uploaded_at           timestamptz NOT NULL DEFAULT now(),
        processing_started_at timestamptz,
        embedded_at           timestamptz,
        indexed_at            timestamptz,
        updated_at            timestamptz NOT NULL DEFAULT now(),
        UNIQUE (tenant_id, sha256)
    );
    CREATE INDEX images_tenant_status ON deeplens.images (tenant_id, status);
    CREATE TABLE deeplens.outbox (
        id         bigserial PRIMARY KEY,
        topic      text NOT NULL,
        key        text NOT NULL,
        payload    jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at    timestamptz
    );
    CREATE INDEX outbox_unsent ON deeplens.outbox (id) WHERE sent_at IS NULL;
    CREATE TABLE deeplens.embeddings (
        image_id      uuid NOT NULL REFERENCES deeplens.images ON DELETE CASCADE,
        model         text NOT NULL,
        model_version text NOT NULL,
        vector        bytea NOT NULL,
        created_at    timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (image_id, model)
    );
    -- Wake-ups: the outbox relay listens on deeplens_outbox, WebSocket status pushes on
    -- deeplens_image (payload: the image id).
    CREATE FUNCTION deeplens.notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('deeplens_outbox', ''); RETURN NULL; END $$;
    CREATE TRIGGER outbox_notify AFTER INSERT ON deeplens.outbox
        FOR EACH STATEMENT EXECUTE FUNCTION deeplens.notify_outbox();
    CREATE FUNCTION deeplens.notify_image() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('deeplens_image', NEW.image_id::text); RETURN NULL; END $$;
    CREATE TRIGGER image_notify AFTER UPDATE OF status, embedded_at ON deeplens.images
        FOR EACH ROW EXECUTE FUNCTION deeplens.notify_image();
    """,
    # 2: a deleted tenant is announced on deeplens_tenant (payload: its id), so that every API
    # process forgets the tenant's cached key at once.
    """
    CREATE FUNCTION deeplens.notify_tenant_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('deeplens_tenant', OLD.tenant_id); RETURN NULL; END $$;
    CREATE TRIGGER tenant_deleted_notify AFTER DELETE ON deeplens.tenants
        FOR EACH ROW EXECUTE FUNCTION deeplens.notify_tenant_deleted();
    """,
    # 3: healing. An image remembers the run that took it up, and while infrastructure faults
    # are retried its attempts, last error and next attempt; run workers beat a heart; a reindex
    # keeps the collection it replaced for a while.
    """
    ALTER TABLE deeplens.images
        ADD COLUMN run_id          text,
        ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
        ADD COLUMN last_error      text,
        ADD COLUMN retry_since     timestamptz,
        ADD COLUMN next_attempt_at timestamptz;
    CREATE INDEX images_retry_due ON deeplens.images (next_attempt_at)
        WHERE status = 'retrying';
    CREATE INDEX images_waiting ON deeplens.images (updated_at)
        WHERE status IN ('uploaded', 'queued', 'processing');
    CREATE INDEX images_run ON deeplens.images (run_id) WHERE run_id IS NOT NULL;
    CREATE TABLE deeplens.run_heartbeats (
        run_id     text PRIMARY KEY,
        tenant_id  text,
        host       text NOT NULL,
        pid        integer NOT NULL,
        started_at timestamptz NOT NULL DEFAULT now(),
        beat_at    timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE deeplens.retired_collections (
        collection  text PRIMARY KEY,
        tenant_id   text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        alias       text NOT NULL,
        replaced_by text NOT NULL,
        retired_at  timestamptz NOT NULL DEFAULT now()
    );
    """,
    # 4: duplicate groups. Each image's vector is hashed (the exact tier: the same picture in
    # another file gives the same vector); pairs of images more similar than the tenant's
    # threshold are edges (the near tier); groups are the edges' connected components.
    """
    ALTER TABLE deeplens.images
        ADD COLUMN vector_sha256 text,
        ADD COLUMN grouped_at    timestamptz;
    CREATE INDEX images_ungrouped ON deeplens.images (tenant_id)
        WHERE status = 'completed' AND grouped_at IS NULL;
    CREATE INDEX images_vectors ON deeplens.images (tenant_id, vector_sha256)
        WHERE vector_sha256 IS NOT NULL;
    ALTER TABLE deeplens.tenants ADD COLUMN near_duplicate_threshold real;
    CREATE TABLE deeplens.duplicate_edges (
        tenant_id text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        a         uuid NOT NULL REFERENCES deeplens.images ON DELETE CASCADE,
        b         uuid NOT NULL REFERENCES deeplens.images ON DELETE CASCADE,
        score     real NOT NULL,
        PRIMARY KEY (a, b)
    );
    CREATE INDEX duplicate_edges_b ON deeplens.duplicate_edges (b);
    CREATE TABLE deeplens.duplicate_groups (
        tenant_id text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        tier      text NOT NULL,
        group_no  integer NOT NULL,
        image_id  uuid NOT NULL REFERENCES deeplens.images ON DELETE CASCADE,
        score     real NOT NULL,
        size      integer NOT NULL,
        PRIMARY KEY (tenant_id, tier, group_no, image_id)
    );
    """,
    # 5: the front door. A tenant has several API keys (each with an id, a label, read-only or
    # not, when it was last used); a revoked key's tenant is announced on deeplens_tenant so
    # that every API process forgets the tenant's cached keys. A tenant has limits (null: none)
    # and its usage, kept by triggers: an insert over the quota is refused (SQLSTATE DLQ01).
    """
    CREATE TABLE deeplens.api_keys (
        key_id       text PRIMARY KEY,
        tenant_id    text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        key_hash     text NOT NULL UNIQUE,
        label        text NOT NULL,
        read_only    boolean NOT NULL DEFAULT false,
        created_at   timestamptz NOT NULL DEFAULT now(),
        last_used_at timestamptz
    );
    CREATE INDEX api_keys_tenant ON deeplens.api_keys (tenant_id);
    INSERT INTO deeplens.api_keys (key_id, tenant_id, key_hash, label, created_at)
        SELECT 'key_' || substr(md5(api_key_hash), 1, 16), tenant_id, api_key_hash,
               'created with the tenant', created_at
        FROM deeplens.tenants;
    ALTER TABLE deeplens.tenants DROP COLUMN api_key_hash;
    CREATE FUNCTION deeplens.notify_key_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('deeplens_tenant', OLD.tenant_id); RETURN NULL; END $$;
    CREATE TRIGGER api_key_revoked_notify AFTER DELETE ON deeplens.api_keys
        FOR EACH ROW EXECUTE FUNCTION deeplens.notify_key_revoked();

    ALTER TABLE deeplens.tenants
        ADD COLUMN uploads_per_second  integer,
        ADD COLUMN searches_per_second integer,
        ADD COLUMN reads_per_second    integer,
        ADD COLUMN max_images          bigint,
        ADD COLUMN max_bytes           bigint,
        ADD COLUMN image_count         bigint NOT NULL DEFAULT 0,
        ADD COLUMN byte_count          bigint NOT NULL DEFAULT 0;
    UPDATE deeplens.tenants t SET
        image_count = u.images, byte_count = u.bytes
    FROM (SELECT tenant_id, count(*) AS images, sum(file_size) AS bytes
          FROM deeplens.images GROUP BY tenant_id) u
    WHERE u.tenant_id = t.tenant_id;
    CREATE FUNCTION deeplens.count_usage() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        over text;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            UPDATE deeplens.tenants SET
                image_count = image_count + 1, byte_count = byte_count + NEW.file_size
            WHERE tenant_id = NEW.tenant_id
            RETURNING CASE
                WHEN image_count > max_images THEN format('%s images', max_images)
                WHEN byte_count > max_bytes THEN format('%s bytes', max_bytes)
            END INTO over;
            IF over IS NOT NULL THEN
                RAISE EXCEPTION 'tenant % is over its quota of %', NEW.tenant_id, over
                    USING ERRCODE = 'DLQ01';
            END IF;
        ELSE
            UPDATE deeplens.tenants SET
                image_count = image_count - 1, byte_count = byte_count - OLD.file_size
            WHERE tenant_id = OLD.tenant_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER images_usage AFTER INSERT OR DELETE ON deeplens.images
        FOR EACH ROW EXECUTE FUNCTION deeplens.count_usage();
    CREATE FUNCTION deeplens.notify_limits_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN PERFORM pg_notify('deeplens_tenant', NEW.tenant_id); RETURN NULL; END $$;
    CREATE TRIGGER tenant_limits_notify AFTER UPDATE OF
        uploads_per_second, searches_per_second, reads_per_second, max_images, max_bytes
        ON deeplens.tenants FOR EACH ROW EXECUTE FUNCTION deeplens.notify_limits_changed();
    """,
    # 6: observability. An outbox row keeps the Kafka headers it is published with (the W3C
    # trace context of the request or run that wrote it); /metrics reads the images indexed
    # in the recent past, and the outcomes of runs that ended, which the reconciler records
    # as it clears their heartbeats.
    """
    ALTER TABLE deeplens.outbox ADD COLUMN headers jsonb;
    CREATE INDEX images_indexed_at ON deeplens.images (indexed_at) WHERE indexed_at IS NOT NULL;
    CREATE TABLE deeplens.run_outcomes (
        run_id     text PRIMARY KEY,
        tenant_id  text,
        outcome    text NOT NULL,
        started_at timestamptz NOT NULL,
        ended_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX run_outcomes_ended ON deeplens.run_outcomes (ended_at);
    """,
    # 7: models. A tenant holds several models' indexes (the seeds' MaxCollectionsPerTenant):
    # `tenant_models` lists them, with the version each live index was built with and the state
    # of its last build; `tenants.model` / `collection_alias` name the one that serves search by
    # default, and a change of it is announced on deeplens_tenant. Embeddings are kept per model
    # version until that version is retired, and carry the lineage of the index that holds them
    # (the run, the physical collection, when).
    """
    CREATE TABLE deeplens.tenant_models (
        tenant_id      text NOT NULL REFERENCES deeplens.tenants ON DELETE CASCADE,
        model          text NOT NULL,
        alias          text NOT NULL,
        state          text NOT NULL DEFAULT 'pending',
        model_version  text,
        collection     text,
        candidate      text,
        serve_when_verified boolean NOT NULL DEFAULT false,
        last_check     jsonb,
        added_at       timestamptz NOT NULL DEFAULT now(),
        built_at       timestamptz,
        PRIMARY KEY (tenant_id, model)
    );
    INSERT INTO deeplens.tenant_models (tenant_id, model, alias, state, added_at, built_at)
        SELECT tenant_id, model, collection_alias, 'ready', created_at, created_at
        FROM deeplens.tenants;
    ALTER TABLE deeplens.embeddings DROP CONSTRAINT embeddings_pkey;
    ALTER TABLE deeplens.embeddings ADD PRIMARY KEY (image_id, model, model_version);
    ALTER TABLE deeplens.embeddings
        ADD COLUMN run_id     text,
        ADD COLUMN collection text,
        ADD COLUMN indexed_at timestamptz;
    CREATE TRIGGER tenant_serving_notify AFTER UPDATE OF model, collection_alias
        ON deeplens.tenants FOR EACH ROW EXECUTE FUNCTION deeplens.notify_limits_changed();
    """,
]


def migrate(conn: psycopg.Connection) -> int:
    """Bring the catalog schema up to date; returns the schema version. Safe to run concurrently."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('deeplens.migrate'))")
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version ("
            " version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        row = conn.execute(
            f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version"
        ).fetchone()
        current = int(row[0]) if row else 0
        for version, sql in enumerate(MIGRATIONS, start=1):
            if version <= current:
                continue
            log.info("applying catalog migration %d", version)
            conn.execute(sql)
            conn.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (version,))
            current = version
    return current
