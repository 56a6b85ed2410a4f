-- The push API: library tokens, idempotent writes and the audit log.

-- A library's API tokens. The token a library system sends is
-- "iblt_<id>_<secret>"; only the SHA-256 of the secret is kept, and the id
-- finds the row so that the comparison itself can run in constant time.
-- A library may hold several live tokens, so that rotation has no gap.
CREATE TABLE library_token (
    id          bigserial   PRIMARY KEY,
    library     text        NOT NULL REFERENCES library (isil),
    secret_hash bytea       NOT NULL CHECK (length(secret_hash) = 32),
    label       text        NOT NULL DEFAULT '' CHECK (length(label) <= 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    last_used_at timestamptz
);
CREATE INDEX library_token_library ON library_token (library) WHERE revoked_at IS NULL;

-- The first answer to a write sent with an Idempotency-Key, stored in the
-- write's own transaction: a retry gets this answer and writes nothing.
-- Keys are per library (not per token: a retry after a rotation is still a
-- retry). request_hash tells a retry from a different request under a key
-- already used.
CREATE TABLE idempotency_key (
    library      text        NOT NULL,
    key          text        NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash text        NOT NULL,
    status       integer     NOT NULL,
    content_type text        NOT NULL,
    body         text        NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (library, key)
);
CREATE INDEX idempotency_key_created ON idempotency_key (created_at);

-- Who changed what: every write through the API (by token) and every
-- administrative action (by control-socket user), in the same transaction
-- as the change itself. first_seq/last_seq: its rows in change_log.
CREATE TABLE audit_log (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    library    text,
    token_id   bigint,
    actor      text        NOT NULL,  -- "token:<id>" or "control:uid=<uid>"
    action     text        NOT NULL,  -- e.g. "PUT /v1/libraries/NL-…/records/…", "token.issue"
    detail     text        NOT NULL DEFAULT '',
    first_seq  bigint,
    last_seq   bigint
);
CREATE INDEX audit_log_library ON audit_log (library, at);

-- The feed reads change_log by seq; the status page wants each library's
-- last push without a scan.
CREATE TABLE library_push (
    library     text        PRIMARY KEY,
    pushes      bigint      NOT NULL DEFAULT 0,
    last_push_at timestamptz
);
