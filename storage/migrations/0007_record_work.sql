-- Which work a record belongs to moves from bib_record into a narrow table
-- of its own. A bulk load can then write each new record's row once, by
-- COPY, before its work is known, and merging two works rewrites small rows
-- instead of whole records. A deleted record belongs to no work.
CREATE TABLE record_work (
    record_id bigint PRIMARY KEY,  -- bib_record.id; records are never hard-deleted
    work_id   bigint NOT NULL
);
INSERT INTO record_work (record_id, work_id)
SELECT id, work_id FROM bib_record WHERE work_id IS NOT NULL AND NOT deleted;
CREATE INDEX record_work_work ON record_work (work_id);
ALTER TABLE bib_record DROP COLUMN work_id;
DELETE FROM work w WHERE NOT EXISTS (SELECT 1 FROM record_work r WHERE r.work_id = w.id);

-- The search vector is computed by the server from the row, so that a row
-- written by COPY gets it too.
ALTER TABLE bib_record DROP COLUMN search;
ALTER TABLE bib_record ADD COLUMN search tsvector GENERATED ALWAYS AS
    (to_tsvector('simple'::regconfig, coalesce(title, '') || ' ' || coalesce(author_key, ''))) STORED;
CREATE INDEX bib_record_search ON bib_record USING gin (search);

-- Copies are written by the merge alone (storage/merge.cpp), always for a
-- record of that merge and its library, and records are never removed. The
-- foreign keys guarded nothing the merge does not, yet cost two trigger
-- calls per copy on a load, more than writing the copy itself. The same
-- holds for record_work, whose works the merge creates and empties itself.
-- The integration tests check that no copy or work link points nowhere.
ALTER TABLE holding DROP CONSTRAINT holding_record_id_fkey;
ALTER TABLE holding DROP CONSTRAINT holding_library_fkey;

-- A library is disabled, never deleted or renamed: its ISIL is in the
-- change log, in other nodes' copies and in loan requests. With that made a
-- rule of the table, bib_record.library needs no foreign key, whose check
-- ran once per record written (a sixth of the time a load spent on
-- bib_record).
CREATE FUNCTION library_is_permanent() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'library % cannot be deleted or get another ISIL; disable it instead', OLD.isil
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER library_permanent_delete BEFORE DELETE ON library
    FOR EACH ROW EXECUTE FUNCTION library_is_permanent();
CREATE TRIGGER library_permanent_isil BEFORE UPDATE OF isil ON library
    FOR EACH ROW WHEN (OLD.isil IS DISTINCT FROM NEW.isil) EXECUTE FUNCTION library_is_permanent();
ALTER TABLE bib_record DROP CONSTRAINT bib_record_library_fkey;

-- MARC records are stored as ISO 2709 in UTF-8 (a third of their MARCXML
-- size); only those too long for ISO 2709 stay MARCXML. Existing rows keep
-- their format until they next change.
ALTER TABLE bib_record DROP CONSTRAINT bib_record_format_check;
ALTER TABLE bib_record ADD CONSTRAINT bib_record_format_check CHECK (format IN ('iso2709', 'marcxml', 'json'));
