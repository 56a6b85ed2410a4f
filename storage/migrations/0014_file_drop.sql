-- File drops: a directory per library where its system leaves periodic
-- exports. file_drop is the state of each drop as `iblctl sync status` shows
-- it; file_drop_load is one row per file taken, written in the transaction
-- that loads the file, so a node that stops after the commit but before the
-- file was moved away knows on restart that it has been loaded.
CREATE TABLE file_drop (
    name            text        PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
    library         text        NOT NULL,
    directory       text        NOT NULL,
    configured      boolean     NOT NULL DEFAULT true,
    paused          boolean     NOT NULL DEFAULT false,
    last_success_at timestamptz,          -- the last file loaded
    last_file       text,
    files_loaded    bigint      NOT NULL DEFAULT 0,
    files_failed    bigint      NOT NULL DEFAULT 0,
    records_total   bigint      NOT NULL DEFAULT 0,
    errors_in_row   integer     NOT NULL DEFAULT 0,
    errors_total    bigint      NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz
);

CREATE TABLE file_drop_load (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    drop_name   text        NOT NULL REFERENCES file_drop (name) ON DELETE CASCADE,
    file        text        NOT NULL,  -- the name it had in the drop directory
    size        bigint      NOT NULL,
    mtime       bigint      NOT NULL,  -- Unix seconds
    outcome     text        NOT NULL CHECK (outcome IN ('loaded', 'failed')),
    at          timestamptz NOT NULL DEFAULT now(),
    records     bigint      NOT NULL DEFAULT 0,
    rejected    bigint      NOT NULL DEFAULT 0,
    inserted    bigint      NOT NULL DEFAULT 0,
    updated     bigint      NOT NULL DEFAULT 0,
    deleted     bigint      NOT NULL DEFAULT 0,
    first_seq   bigint      NOT NULL DEFAULT 0,
    last_seq    bigint      NOT NULL DEFAULT 0,
    message     text
);
CREATE INDEX file_drop_load_file ON file_drop_load (drop_name, file, size, mtime);
