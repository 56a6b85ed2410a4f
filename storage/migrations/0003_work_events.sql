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
