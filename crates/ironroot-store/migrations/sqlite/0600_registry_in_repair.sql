-- Registry: the `in_repair` device state (returned for repair). Keep in step with
-- ../postgres/0600_registry_in_repair.sql. Numbered after the report tables (0500) because it
-- must carry their rows across (see the migrations README).
--
-- SQLite cannot change a CHECK constraint in place, so `devices` is rebuilt inside this
-- migration's transaction. Foreign keys are deferred to the commit, which checks every
-- reference to the new table again (a row lost in the copy fails the whole migration).
-- Dropping `devices` cascades into `report_boot` (ON DELETE CASCADE): its rows are saved first
-- and put back.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE keep_devices AS SELECT * FROM devices;
CREATE TEMP TABLE keep_report_boot AS SELECT * FROM report_boot;

DROP TABLE devices;
CREATE TABLE devices (
    id          TEXT    NOT NULL PRIMARY KEY,
    state       TEXT    NOT NULL CHECK (state IN ('manufactured', 'provisioned', 'active',
                                                  'quarantined', 'in_repair', 'revoked',
                                                  'decommissioned')),
    owner       TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;
INSERT INTO devices (id, state, owner, created_at, updated_at)
    SELECT id, state, owner, created_at, updated_at FROM keep_devices;
CREATE INDEX devices_state ON devices (state, id);
CREATE INDEX devices_owner ON devices (owner, id) WHERE owner IS NOT NULL;

DELETE FROM report_boot;
INSERT INTO report_boot SELECT * FROM keep_report_boot;

DROP TABLE keep_devices;
DROP TABLE keep_report_boot;
