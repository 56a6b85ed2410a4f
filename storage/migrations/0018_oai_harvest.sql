-- OAI-PMH harvest sources next to SRU ones. An OAI-PMH list is paged by
-- resumption tokens, not positions: next_position counts the pages of the
-- run, and the token that asks for the next one is kept with it, in the
-- transaction that applies the page before it.
ALTER TABLE harvest_source
    ADD COLUMN protocol       text NOT NULL DEFAULT 'sru' CHECK (protocol IN ('sru', 'oai')),
    ADD COLUMN oai_token      text,  -- asks for page next_position; NULL: the list's first request
    ADD COLUMN oai_from       text,  -- the `from` the run's list was asked with; NULL: none
    ADD COLUMN oai_run_latest text,  -- the latest datestamp this run applied
    ADD COLUMN oai_latest     text;  -- the latest datestamp of the completed runs: the next run's `from`
