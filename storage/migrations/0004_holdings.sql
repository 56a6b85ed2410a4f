-- Copies get a version, bumped on every change like a record's, and the
-- change log names the record a copy belongs to, so that a feed consumer can
-- place a copy's change without another lookup (and still can after the
-- copy is gone).
ALTER TABLE holding ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE change_log ADD COLUMN record_local_id text;

-- How a library's MARC loads carry copies: a preset (marc21, koha, sirsi) or
-- a spec (see docs/formats.md). 'none': loads leave copies alone, for
-- libraries that send availability through the API only.
ALTER TABLE library ADD COLUMN holdings_mapping text NOT NULL DEFAULT 'none'
    CHECK (length(holdings_mapping) BETWEEN 1 AND 1000);

-- record_key is derived data that only the load path writes, and records are
-- never hard-deleted; the foreign key cost a trigger call per key on large
-- loads and guarded nothing.
ALTER TABLE record_key DROP CONSTRAINT record_key_record_id_fkey;
