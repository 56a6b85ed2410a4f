-- Interlibrary loan (IBL). One ibl_request row per ISO 18626 transaction
-- this node takes part in: as the requester's node (role 'requester') or
-- as the supplier's (role 'supplier'). A transaction is named by the
-- requesting agency and its request id; the supplier is part of the key
-- because a request that is rerouted starts a new transaction with the next
-- lender under the same id.
--
-- ibl_event holds every message that came in or went out, written in the
-- transaction that changed the request, before the message is confirmed.
-- The request row is derived from them. `identity` is what tells a message
-- delivered twice (a peer that did not see our confirmation sends it again)
-- from a new message: its kind, header timestamp and action or reason and
-- status. A second delivery finds its identity taken and changes nothing.
CREATE TABLE ibl_request (
    id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    role                text        NOT NULL CHECK (role IN ('requester', 'supplier')),
    requesting_agency   text        NOT NULL CHECK (length(requesting_agency) BETWEEN 1 AND 50),
    request_id          text        NOT NULL CHECK (length(request_id) BETWEEN 1 AND 200),
    supplying_agency    text        NOT NULL CHECK (length(supplying_agency) BETWEEN 1 AND 50),
    supplier_request_id text,
    state               text        NOT NULL,  -- protocols/ibl_state.hpp: Sent, RequestReceived, ...
    cancel_pending      boolean     NOT NULL DEFAULT false,
    renew_pending       boolean     NOT NULL DEFAULT false,
    received            boolean     NOT NULL DEFAULT false,
    shipped_return      boolean     NOT NULL DEFAULT false,
    conditional         boolean     NOT NULL DEFAULT false,
    service_type        text        NOT NULL,
    title               text,
    author              text,
    isbn                text,
    patron_ref          text,  -- opaque: never a name or card number
    pickup              text,  -- where the patron collects it, in the requester's words
    work_id             bigint,  -- the work asked for, when the requester's node found it
    -- The requester's lenders in the order they are asked, and which one
    -- has the request now (0-based); empty on the supplier's side.
    rota                text[]  NOT NULL DEFAULT '{}',
    rota_index          integer NOT NULL DEFAULT 0,
    due_date            timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (role, requesting_agency, request_id, supplying_agency)
);
-- Request ids this node gives the requests its libraries make (IBL-1, ...).
CREATE SEQUENCE ibl_request_number;
CREATE INDEX ibl_request_open ON ibl_request (supplying_agency, role)
    WHERE state NOT IN ('RetryPossible', 'Unfilled', 'CopyCompleted', 'LoanCompleted', 'CompletedWithoutReturn',
                        'Cancelled');

CREATE TABLE ibl_event (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request     bigint      NOT NULL REFERENCES ibl_request (id) ON DELETE CASCADE,
    direction   text        NOT NULL CHECK (direction IN ('in', 'out')),
    kind        text        NOT NULL,  -- request, supplyingAgencyMessage, requestingAgencyMessage
    what        text        NOT NULL,  -- the action, or reason and status
    sent_at     timestamptz NOT NULL,  -- the header's timestamp
    identity    text        NOT NULL,
    state_after text        NOT NULL,
    body        text        NOT NULL,  -- the message as it came or went
    at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (request, direction, identity)
);
CREATE INDEX ibl_request_patron ON ibl_request (requesting_agency, patron_ref, work_id) WHERE role = 'requester';
