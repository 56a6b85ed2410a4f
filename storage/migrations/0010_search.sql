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
