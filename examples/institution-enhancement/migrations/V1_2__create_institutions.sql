-- One row per record_id: the consumer upserts on it, so a redelivered record never adds a row.
CREATE TABLE IF NOT EXISTS institution_enhancement.institutions (
    record_id            TEXT        PRIMARY KEY,
    batch_id             UUID        NOT NULL,
    ingested_at          TIMESTAMPTZ NOT NULL,
    institution_id       TEXT        NOT NULL,
    name                 TEXT        NOT NULL,
    normalized_name      TEXT        NOT NULL,
    institution_type     TEXT        NOT NULL,
    routing_number       CHAR(9)     NOT NULL,
    routing_class        TEXT        NOT NULL,
    fed_district         SMALLINT,
    servicing_fed_office TEXT,
    country              CHAR(2)     NOT NULL,
    state                CHAR(2),
    city                 TEXT,
    swift_bic            TEXT,
    website_domain       TEXT,
    total_assets_usd     BIGINT,
    source_topic         TEXT        NOT NULL,
    source_partition     INTEGER     NOT NULL,
    source_offset        BIGINT      NOT NULL,
    first_processed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_processed_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivery_count       INTEGER     NOT NULL DEFAULT 1
);

CREATE INDEX IF NOT EXISTS institutions_routing_number_idx
    ON institution_enhancement.institutions (routing_number);
CREATE INDEX IF NOT EXISTS institutions_batch_id_idx
    ON institution_enhancement.institutions (batch_id);
