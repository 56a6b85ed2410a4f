-- IBL between nodes. A message for a library another POI node serves is
-- written to ibl_event (direction 'out') and queued here in the same
-- transaction; the node's outbox worker POSTs it to that node's /iso18626
-- until the node confirms it. Messages about one request go in the order
-- they were written: a later one waits until the earlier ones are
-- confirmed or refused.
CREATE TABLE ibl_outbox (
    event         bigint      PRIMARY KEY REFERENCES ibl_event (id) ON DELETE CASCADE,
    request       bigint      NOT NULL REFERENCES ibl_request (id) ON DELETE CASCADE,
    node          text        NOT NULL,  -- ISIL of the node it goes to ([[ibl_peer]] isil)
    agency        text        NOT NULL,  -- the library it is for
    attempts      integer     NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    delivered_at  timestamptz,           -- the peer confirmed it (messageStatus OK)
    refused       text,                  -- the peer's ERROR confirmation; never sent again
    last_error    text,                  -- why the last try failed (no confirmation)
    last_error_at timestamptz
);
CREATE INDEX ibl_outbox_pending ON ibl_outbox (request, event) WHERE delivered_at IS NULL AND refused IS NULL;

-- A request moved on to the next lender (after an Unfilled, a refusal or no
-- answer in time) starts a new transaction under the same request id: a new
-- requester row for the new lender. The old one points to it, so that late
-- messages from the old lender still find their own transaction.
ALTER TABLE ibl_request ADD COLUMN superseded_by bigint REFERENCES ibl_request (id);

-- What a lender asks for supplying (offeredCosts, as "2.50 EUR") and the
-- conditions of the loan (loanCondition, as shipped), on both sides.
ALTER TABLE ibl_request ADD COLUMN offered_cost text, ADD COLUMN loan_condition text;
-- The barcode of the copy the lender shipped (deliveryInfo itemId), for the
-- transport manifest.
ALTER TABLE ibl_request ADD COLUMN item_id text;

-- Accounting: one row per transaction of this node's libraries that ended
-- with the item back (loan) or lost (CompletedWithoutReturn), with the
-- tariff in force when it ended ([[ibl_tariff]]); a later tariff change
-- does not alter it. The monthly statement per library is read from here.
CREATE TABLE ibl_charge (
    id                 bigint        GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    requesting_agency  text          NOT NULL,
    request_id         text          NOT NULL,
    supplying_agency   text          NOT NULL,
    kind               text          NOT NULL CHECK (kind IN ('loan', 'lost')),
    requester_province text,
    lender_province    text,
    amount             numeric(10,2) NOT NULL,
    tariff             text          NOT NULL,  -- the tariff that matched, or 'none'
    completed_at       timestamptz   NOT NULL DEFAULT now(),
    UNIQUE (requesting_agency, request_id, supplying_agency)
);
CREATE INDEX ibl_charge_month ON ibl_charge (completed_at);

-- Closures: a library that lends does not, from `starts` through `ends`
-- (Dutch days): holidays, a move, its own pause. It is not asked then.
CREATE TABLE ibl_closure (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    library    text        NOT NULL REFERENCES library (isil),
    starts     date        NOT NULL,
    ends       date        NOT NULL CHECK (ends >= starts),
    reason     text        NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ibl_closure_library ON ibl_closure (library, ends);

-- Material types a library does not lend through IBL (iblctl ibl lends);
-- e-books and other electronic resources are never lent (no item travels).
CREATE TABLE ibl_not_lent (
    library       text NOT NULL REFERENCES library (isil),
    material_type text NOT NULL,
    PRIMARY KEY (library, material_type)
);

-- The requester's deadline for the current lender's first answer: a lender
-- that has not answered by then is passed over for the next one.
ALTER TABLE ibl_request ADD COLUMN answer_by timestamptz;
CREATE INDEX ibl_request_answer_by ON ibl_request (answer_by) WHERE answer_by IS NOT NULL;
