-- Lookups by ISBN, ISSN, OCLC number and PPN go through record_key, which
-- holds every live record's identifiers as match keys ('isbn:978...'), hashed
-- and B-tree indexed, for deduplication anyway. The four GIN indexes on the
-- arrays answered the same questions a second time and were a quarter of the
-- cost of loading a record.
DROP INDEX bib_record_isbns;
DROP INDEX bib_record_issns;
DROP INDEX bib_record_oclc;
DROP INDEX bib_record_ppn;
