-- ironroot registry, SQLite flavour. Keep in step with ../postgres/0001_registry.sql.
-- STRICT tables: SQLite rejects values of the wrong type instead of storing them.

CREATE TABLE devices (
    id          TEXT    NOT NULL PRIMARY KEY,
    state       TEXT    NOT NULL CHECK (state IN ('manufactured', 'provisioned', 'active',
                                                  'quarantined', 'revoked', 'decommissioned')),
    owner       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX devices_state ON devices (state, id);
CREATE INDEX devices_owner ON devices (owner, id) WHERE owner IS NOT NULL;

CREATE TABLE groups (
    name        TEXT    NOT NULL PRIMARY KEY,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE device_groups (
    device_id   TEXT    NOT NULL REFERENCES devices (id),
    group_name  TEXT    NOT NULL REFERENCES groups (name),
    PRIMARY KEY (device_id, group_name)
) STRICT, WITHOUT ROWID;
CREATE INDEX device_groups_by_group ON device_groups (group_name, device_id);

CREATE TABLE device_attributes (
    device_id   TEXT    NOT NULL REFERENCES devices (id),
    key         TEXT    NOT NULL,
    value       TEXT    NOT NULL,
    PRIMARY KEY (device_id, key)
) STRICT, WITHOUT ROWID;

CREATE TABLE certificates (
    serial             TEXT    NOT NULL PRIMARY KEY,
    fingerprint        TEXT    NOT NULL UNIQUE,
    device_id          TEXT    REFERENCES devices (id),
    kind                     TEXT    NOT NULL CHECK (kind IN ('operational', 'factory', 'server', 'operator')),
    issuer             TEXT    NOT NULL,
    subject            TEXT    NOT NULL,
    not_before         INTEGER NOT NULL,
    not_after          INTEGER NOT NULL,
    status             TEXT    NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
    issued_at          INTEGER NOT NULL,
    revoked_at         INTEGER,
    revocation_reason  TEXT,
    der                BLOB    NOT NULL,
    CHECK (not_before <= not_after),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
) STRICT;
CREATE INDEX certificates_by_device ON certificates (device_id, issued_at);
CREATE INDEX certificates_revoked ON certificates (serial) WHERE status = 'revoked';
CREATE INDEX certificates_expiry ON certificates (not_after) WHERE status <> 'revoked';

-- Change feed. SQLite has one writer at a time, so `seq` order is commit order and a reader
-- polling `seq > cursor` never skips a row.
CREATE TABLE changes (
    seq         INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL,
    item        TEXT    NOT NULL,
    changed_at  INTEGER NOT NULL
) STRICT;
