-- Stored records (MARCXML, 2-3 KB each) are compressed with lz4 instead of
-- PostgreSQL's default pglz: it compresses several times faster at a
-- similar ratio for this text, which is most of the cost of writing a record
-- that exceeds the 2 KB TOAST threshold. Applies to values written from now
-- on; existing ones stay readable as they are.
ALTER TABLE bib_record ALTER COLUMN raw SET COMPRESSION lz4;
