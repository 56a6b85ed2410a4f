-- How works (deduplication clusters) came to be: every creation, merge of two
-- works and move of a record from one work to another, for review and undo.
CREATE TABLE work_event (
    id        bigserial   PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT now(),
    kind      text        NOT NULL CHECK (kind IN ('create', 'merge', 'move')),
    record_id bigint,                 -- for 'move' and 'create'
    from_work bigint,                 -- merged away, or left by the record
    to_work   bigint      NOT NULL
);
CREATE INDEX work_event_to ON work_event (to_work);

-- The match keys of every live record ('isbn', 'issn', 'oclc', 'ppn', 'tay'
-- = title|author|year|material), kept beside bib_record so that finding the
-- works a record shares a key with is a plain index join.
CREATE TABLE record_key (
    kind      text   NOT NULL,
    val       text   NOT NULL,
    record_id bigint NOT NULL REFERENCES bib_record (id) ON DELETE CASCADE,
    PRIMARY KEY (kind, val, record_id)
);
CREATE INDEX record_key_record ON record_key (record_id);
