-- Match keys become one text each ("isbn:9789023466024",
-- "tay:avonden|reve|1947|book"), computed by the loader
-- (protocols::MatchKeys), and are found through a 64-bit hash of the text:
-- a bigint index is smaller and cheaper to keep up than a two-column text
-- one. Joins compare the text as well, so a hash collision cannot join two
-- works. The table is derived data; it is rebuilt here from bib_record with
-- the same rules as MatchKeys.
DROP TABLE record_key;
CREATE TABLE record_key (
    khash     bigint NOT NULL,
    key       text   NOT NULL,
    record_id bigint NOT NULL
);
INSERT INTO record_key (khash, key, record_id)
SELECT DISTINCT hashtextextended(k.key, 0), k.key, b.id
FROM bib_record b CROSS JOIN LATERAL (
    SELECT 'isbn:' || x FROM unnest(b.isbns) x
    UNION ALL SELECT 'issn:' || x FROM unnest(b.issns) x
    UNION ALL SELECT 'oclc:' || x FROM unnest(b.oclc) x
    UNION ALL SELECT 'ppn:' || x FROM unnest(b.ppn) x
    UNION ALL SELECT 'tay:' || b.title_key || '|' || b.author_key || '|' || b.pub_year || '|' || b.material_type
) k(key)
WHERE NOT b.deleted AND k.key IS NOT NULL;
CREATE INDEX record_key_hash ON record_key (khash);
CREATE INDEX record_key_record ON record_key (record_id);
