-- Which node this database belongs to. Every iblsyncd of the network can share
-- one PostgreSQL cluster (the demo does), so a daemon pointed at another
-- node's database must refuse to start instead of mixing two catalogues.
CREATE TABLE node_identity (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    role       text        NOT NULL CHECK (role IN ('poi', 'national')),
    isil       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
