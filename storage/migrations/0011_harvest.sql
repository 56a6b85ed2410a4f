-- SRU harvesting: one row per source, with the cursor of the run in progress.
-- The cursor moves in the same transaction as the records of each page, so
-- a node killed mid-run resumes at the first page it had not committed.

CREATE TABLE harvest_source (
    name            text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    library         text        NOT NULL,  -- not a foreign key: a source may name a library not yet registered
    url             text        NOT NULL,
    configured      boolean     NOT NULL DEFAULT true,  -- false: no longer in the config; state kept
    paused          boolean     NOT NULL DEFAULT false,
    run_requested   boolean     NOT NULL DEFAULT false,  -- iblctl sync run: due now
    full_requested  boolean     NOT NULL DEFAULT false,  -- ... as a full run
    allow_mass_delete boolean   NOT NULL DEFAULT false,  -- ... whose deletions may exceed max_delete_percent

    -- The run in progress (run_kind NULL: none). since: the lower bound of
    -- an incremental run (the start of the last successful run).
    run_kind        text        CHECK (run_kind IN ('full', 'incremental')),
    run_started_at  timestamptz,
    run_since       timestamptz,
    next_position   bigint,
    run_total       bigint,     -- numberOfRecords of the last page read
    run_records     bigint      NOT NULL DEFAULT 0,  -- records applied in this run
    run_rejected    bigint      NOT NULL DEFAULT 0,

    last_success_at timestamptz,  -- when the last run completed
    last_run_from   timestamptz,  -- when that run started: the next incremental run's since
    last_full_at    timestamptz,
    last_page_at    timestamptz,
    records_total   bigint      NOT NULL DEFAULT 0,  -- records applied by all runs
    errors_total    bigint      NOT NULL DEFAULT 0,
    errors_in_row   integer     NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz
);

-- The local ids a full run has seen so far: at its end, the library's live
-- records not among them are deleted.
CREATE TABLE harvest_seen (
    source   text NOT NULL REFERENCES harvest_source (name) ON DELETE CASCADE,
    local_id text NOT NULL,
    PRIMARY KEY (source, local_id)
);
