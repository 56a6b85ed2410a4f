-- OAI-PMH: each record's place in the list a harvester pages through. A
-- record is listed at its last change, to the record or to one of its
-- copies (the marc21 format carries the copies' availability), so it is
-- (library, record local id) with the change's sequence number and time.
-- A trigger on change_log keeps it, so that every writer (loads, pushes,
-- harvests, file drops, peer feeds) does without knowing. Rows are never
-- removed: deleted records stay listed as deleted (deletedRecord persistent).
CREATE TABLE oai_item (
    library  text        NOT NULL,
    local_id text        NOT NULL,
    seq      bigint      NOT NULL,  -- the change_log seq of the last change
    stamp    timestamptz NOT NULL,  -- when it was written, under the catalogue's write lock
    PRIMARY KEY (library, local_id)
);
CREATE INDEX oai_item_seq ON oai_item (seq);
CREATE INDEX oai_item_library_seq ON oai_item (library, seq);
CREATE INDEX oai_item_stamp ON oai_item (stamp);

-- The statement's start, not now(): change_log rows are written after the
-- catalogue's write lock is taken (change_counter), so a later commit always
-- has later stamps, and a list by stamp is in the same order as by seq.
-- Rows go in in seq order: a list reads them in that order, and a bulk
-- load's rows in hash order cost a page read per item (measured: 59 ms a
-- page of 500 at 1,000,000 records).
CREATE FUNCTION oai_item_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO oai_item (library, local_id, seq, stamp)
    SELECT library, rid, max(seq), statement_timestamp()
      FROM (SELECT library, CASE WHEN entity = 'record' THEN local_id ELSE record_local_id END AS rid, seq
              FROM oai_new_changes) c
     WHERE rid IS NOT NULL
     GROUP BY library, rid
     ORDER BY 3
    ON CONFLICT (library, local_id) DO UPDATE SET seq = EXCLUDED.seq, stamp = EXCLUDED.stamp
     WHERE oai_item.seq < EXCLUDED.seq;
    RETURN NULL;
END $$;

CREATE TRIGGER change_log_oai AFTER INSERT ON change_log
    REFERENCING NEW TABLE AS oai_new_changes
    FOR EACH STATEMENT EXECUTE FUNCTION oai_item_touch();

-- What is there already: each record at its last change still logged, or
-- at its own last update when its changes were pruned.
INSERT INTO oai_item (library, local_id, seq, stamp)
SELECT b.library, b.local_id, coalesce(c.seq, 0), coalesce(c.changed_at, b.updated_at)
  FROM bib_record b
  LEFT JOIN (SELECT DISTINCT ON (library, rid) library, rid, seq, changed_at
               FROM (SELECT library, CASE WHEN entity = 'record' THEN local_id ELSE record_local_id END AS rid,
                            seq, changed_at FROM change_log) x
              WHERE rid IS NOT NULL
              ORDER BY library, rid, seq DESC) c ON c.library = b.library AND c.rid = b.local_id;
