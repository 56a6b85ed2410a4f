-- Node-to-node synchronisation: where this node stands in each peer's change
-- feed. The cursor is updated in the transaction that applies the changes it
-- covers, so a crash repeats at most one page, and repeating it changes nothing.
CREATE TABLE sync_peer (
    name            text        PRIMARY KEY,
    url             text        NOT NULL,
    peer_isil       text        NOT NULL,             -- the peer node's ISIL
    direction       text        NOT NULL CHECK (direction IN ('aggregate', 'follow')),
    cursor          bigint      NOT NULL DEFAULT 0,   -- the peer's last change applied here
    peer_head       bigint      NOT NULL DEFAULT 0,   -- the peer's head when last asked
    configured      boolean     NOT NULL DEFAULT true,
    paused          boolean     NOT NULL DEFAULT false,
    last_success_at timestamptz,                      -- the last page applied (or the last empty long-poll)
    last_change_at  timestamptz,                      -- the peer's commit time of the last change applied
    changes_total   bigint      NOT NULL DEFAULT 0,   -- change rows read
    records_total   bigint      NOT NULL DEFAULT 0,   -- record states applied
    refused_total   bigint      NOT NULL DEFAULT 0,   -- record states of libraries the peer does not serve
    errors_in_row   integer     NOT NULL DEFAULT 0,
    errors_total    bigint      NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz
);
