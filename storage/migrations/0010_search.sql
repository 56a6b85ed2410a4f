-- Search over SRU (storage/search.cpp). The loader folds the words of each
-- searchable index (protocols::SearchTextOf): title, creator, subject,
-- publisher. They go into one search vector, weighted by index (A title,
-- B creator, C subject, D publisher), so that one GIN index serves every
-- word index: "title=x" asks for x:A, a search on all indexes for x.
-- The folded text is kept too, for what the vector cannot answer: masks
-- inside a word and exact (==) matches of a whole value.
-- Records loaded before this migration have none of it until they are
-- loaded again; their vector falls back to the title and author keys.
ALTER TABLE bib_record ADD COLUMN s_title text, ADD COLUMN s_creator text, ADD COLUMN s_subject text,
    ADD COLUMN s_publisher text;
DROP INDEX bib_record_search;
ALTER TABLE bib_record DROP COLUMN search;
ALTER TABLE bib_record ADD COLUMN search tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, coalesce(s_title, title_key, '')), 'A') ||
    setweight(to_tsvector('simple'::regconfig, coalesce(s_creator, author_key, '')), 'B') ||
    setweight(to_tsvector('simple'::regconfig, coalesce(s_subject, '')), 'C') ||
    setweight(to_tsvector('simple'::regconfig, coalesce(s_publisher, '')), 'D')) STORED;
-- Partial: every search excludes deleted records, and with the condition
-- in the index a bitmap scan need not read the table to check it.
CREATE INDEX bib_record_search ON bib_record USING gin (search) WHERE NOT deleted;

-- Ranges on the publication year and the last change (dc.date,
-- rec.lastModificationDate), and sorting by author.
CREATE INDEX bib_record_year ON bib_record (pub_year);
CREATE INDEX bib_record_updated ON bib_record (updated_at);
CREATE INDEX bib_record_author ON bib_record (author_key);
-- A record's own identifier without its library (dc.identifier, rec.identifier).
CREATE INDEX bib_record_local_id ON bib_record (local_id);

-- Subject headings for scan (dc.subject): one row per heading of each live
-- record, kept by statement-level triggers, so that a COPY of a million
-- records adds its headings in one set-based statement rather than row by
-- row. A record's headings are the values of s_subject (" | " between them).
CREATE TABLE record_subject (
    heading   text   NOT NULL,
    record_id bigint NOT NULL
);
CREATE INDEX record_subject_heading ON record_subject (heading);
CREATE INDEX record_subject_record ON record_subject (record_id);

CREATE FUNCTION record_subject_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO record_subject (heading, record_id)
    SELECT DISTINCT h, n.id FROM new_rows n, regexp_split_to_table(n.s_subject, ' \| ') h
    WHERE NOT n.deleted AND h <> '';
    RETURN NULL;
END $$;

CREATE FUNCTION record_subject_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Only records whose headings or deletion changed (most updates of a
    -- record keep both, and a version bump touches neither).
    DELETE FROM record_subject r USING old_rows o JOIN new_rows n ON n.id = o.id
    WHERE r.record_id = o.id
      AND (o.s_subject IS DISTINCT FROM n.s_subject OR o.deleted IS DISTINCT FROM n.deleted);
    INSERT INTO record_subject (heading, record_id)
    SELECT DISTINCT h, n.id FROM new_rows n JOIN old_rows o ON o.id = n.id,
        regexp_split_to_table(n.s_subject, ' \| ') h
    WHERE NOT n.deleted AND h <> ''
      AND (o.s_subject IS DISTINCT FROM n.s_subject OR o.deleted IS DISTINCT FROM n.deleted);
    RETURN NULL;
END $$;

CREATE TRIGGER bib_record_subject_added AFTER INSERT ON bib_record
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_subject_added();
CREATE TRIGGER bib_record_subject_changed AFTER UPDATE ON bib_record
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION record_subject_changed();
