-- The joint catalogue: libraries, bibliographic records per source library,
-- works (deduplication clusters), copy-level holdings with availability, and
-- the change log every feed is built from.

CREATE TABLE library (
    isil       text        PRIMARY KEY CHECK (isil ~ '^NL-[A-Z0-9/:-]{1,13}$'),  -- canonical upper case
    name       text        NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    province   text        CHECK (province ~ '^NL-[A-Z]{2}$'),
    poi        text,                                  -- ISIL of the POI node serving it
    enabled    boolean     NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE work (
    id         bigserial   PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bib_record (
    id            bigserial   PRIMARY KEY,
    library       text        NOT NULL REFERENCES library (isil),
    local_id      text        NOT NULL CHECK (length(local_id) BETWEEN 1 AND 200),
    format        text        NOT NULL CHECK (format IN ('marcxml', 'json')),
    raw           text        NOT NULL,               -- the record as stored: canonical MARCXML or JSON
    checksum      text        NOT NULL,               -- md5 of raw: unchanged records are skipped
    title         text,
    title_key     text,
    author_key    text,
    pub_year      integer,
    language      text,
    material_type text,
    isbns         text[]      NOT NULL DEFAULT '{}',  -- ISBN-13
    issns         text[]      NOT NULL DEFAULT '{}',
    oclc          text[]      NOT NULL DEFAULT '{}',
    ppn           text[]      NOT NULL DEFAULT '{}',
    search        tsvector,
    work_id       bigint      REFERENCES work (id),
    version       integer     NOT NULL DEFAULT 1,
    deleted       boolean     NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (library, local_id)
);
CREATE INDEX bib_record_isbns ON bib_record USING gin (isbns);
CREATE INDEX bib_record_issns ON bib_record USING gin (issns);
CREATE INDEX bib_record_oclc ON bib_record USING gin (oclc);
CREATE INDEX bib_record_ppn ON bib_record USING gin (ppn);
CREATE INDEX bib_record_search ON bib_record USING gin (search);
CREATE INDEX bib_record_work ON bib_record (work_id);
CREATE INDEX bib_record_keys ON bib_record (title_key, author_key);

CREATE TABLE holding (
    id                bigserial   PRIMARY KEY,
    record_id         bigint      NOT NULL REFERENCES bib_record (id) ON DELETE CASCADE,
    library           text        NOT NULL REFERENCES library (isil),
    branch            text,
    shelfmark         text,
    barcode           text        NOT NULL,
    status            text        NOT NULL CHECK (status IN ('available', 'on_loan', 'in_transit',
                                                             'reserved', 'missing', 'not_lendable')),
    due_date          date,
    source_changed_at timestamptz,                    -- the library system's own change time
    updated_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (library, barcode)
);
CREATE INDEX holding_record ON holding (record_id);
CREATE INDEX holding_library_status ON holding (library, status);

-- Gap-free numbering: every writing transaction takes this row's lock, so
-- sequence numbers are handed out in commit order and none is ever skipped.
CREATE TABLE change_counter (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_seq  bigint  NOT NULL
);
INSERT INTO change_counter (last_seq) VALUES (0);

CREATE TABLE change_log (
    seq        bigint      PRIMARY KEY,
    changed_at timestamptz NOT NULL DEFAULT now(),
    entity     text        NOT NULL CHECK (entity IN ('record', 'holding')),
    op         text        NOT NULL CHECK (op IN ('insert', 'update', 'delete')),
    library    text        NOT NULL,
    local_id   text        NOT NULL,  -- the record's local id, or the holding's barcode
    entity_id  bigint      NOT NULL,
    version    integer
);
