-- The same logical table as migrations/V1_2__create_institutions.sql, in SQLite types.
CREATE TABLE IF NOT EXISTS institutions (
    record_id            TEXT    PRIMARY KEY,
    batch_id             TEXT    NOT NULL,
    ingested_at          TEXT    NOT NULL,  -- ISO 8601 UTC with microseconds: sorts as time
    institution_id       TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    normalized_name      TEXT    NOT NULL,
    institution_type     TEXT    NOT NULL,
    routing_number       TEXT    NOT NULL,
    routing_class        TEXT    NOT NULL,
    fed_district         INTEGER,
    servicing_fed_office TEXT,
    country              TEXT    NOT NULL,
    state                TEXT,
    city                 TEXT,
    swift_bic            TEXT,
    website_domain       TEXT,
    total_assets_usd     INTEGER,
    source_topic         TEXT    NOT NULL,
    source_partition     INTEGER NOT NULL,
    source_offset        INTEGER NOT NULL,
    first_processed_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    last_processed_at    TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    delivery_count       INTEGER NOT NULL DEFAULT 1
);

CREATE INDEX IF NOT EXISTS institutions_routing_number_idx ON institutions (routing_number);
CREATE INDEX IF NOT EXISTS institutions_batch_id_idx ON institutions (batch_id);
