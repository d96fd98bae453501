-- ironroot registry, PostgreSQL flavour. Keep in step with ../sqlite/0001_registry.sql.

CREATE TABLE devices (
    id          TEXT   NOT NULL PRIMARY KEY,
    state       TEXT   NOT NULL CHECK (state IN ('manufactured', 'provisioned', 'active',
                                                 'quarantined', 'revoked', 'decommissioned')),
    owner       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX devices_state ON devices (state, id);
CREATE INDEX devices_owner ON devices (owner, id) WHERE owner IS NOT NULL;

CREATE TABLE groups (
    name        TEXT   NOT NULL PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

CREATE TABLE device_groups (
    device_id   TEXT   NOT NULL REFERENCES devices (id),
    group_name  TEXT   NOT NULL REFERENCES groups (name),
    PRIMARY KEY (device_id, group_name)
);
CREATE INDEX device_groups_by_group ON device_groups (group_name, device_id);

CREATE TABLE device_attributes (
    device_id   TEXT   NOT NULL REFERENCES devices (id),
    key         TEXT   NOT NULL,
    value       TEXT   NOT NULL,
    PRIMARY KEY (device_id, key)
);

CREATE TABLE certificates (
    serial             TEXT   NOT NULL PRIMARY KEY,
    fingerprint        TEXT   NOT NULL UNIQUE,
    device_id          TEXT   REFERENCES devices (id),
    kind                     TEXT   NOT NULL CHECK (kind IN ('operational', 'factory', 'server', 'operator')),
    issuer             TEXT   NOT NULL,
    subject            TEXT   NOT NULL,
    not_before         BIGINT NOT NULL,
    not_after          BIGINT NOT NULL,
    status             TEXT   NOT NULL CHECK (status IN ('active', 'superseded', 'revoked')),
    issued_at          BIGINT NOT NULL,
    revoked_at         BIGINT,
    revocation_reason  TEXT,
    der                BYTEA  NOT NULL,
    CHECK (not_before <= not_after),
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL AND revocation_reason IS NOT NULL))
);
CREATE INDEX certificates_by_device ON certificates (device_id, issued_at);
CREATE INDEX certificates_revoked ON certificates (serial) WHERE status = 'revoked';
CREATE INDEX certificates_expiry ON certificates (not_after) WHERE status <> 'revoked';

-- Change feed. Transactions could take `seq` values in one order and commit in another, which
-- would let a reader polling `seq > cursor` skip a row that commits late. So every INSERT into
-- `changes` first takes a transaction-level advisory lock (trigger below, before `seq` is drawn),
-- held until the transaction has committed and become visible: change rows become visible in
-- `seq` order, as on SQLite. The store writes its change rows just before COMMIT, so the lock is
-- held only for that insert and the commit. NOTIFY wakes listeners as soon as a change commits.
CREATE TABLE changes (
    seq         BIGSERIAL NOT NULL PRIMARY KEY,
    kind        TEXT      NOT NULL,
    item        TEXT      NOT NULL,
    changed_at  BIGINT    NOT NULL
);

CREATE FUNCTION ironroot_lock_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- 0x69726f6e726f6f74 = 'ironroot'
    PERFORM pg_advisory_xact_lock(7598258041484439412);
    RETURN NULL;
END;
$$;
CREATE TRIGGER changes_serialize BEFORE INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION ironroot_lock_changes();

CREATE FUNCTION ironroot_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('ironroot_changes', NEW.kind || ':' || NEW.item);
    RETURN NULL;
END;
$$;
CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH ROW EXECUTE FUNCTION ironroot_notify_change();
