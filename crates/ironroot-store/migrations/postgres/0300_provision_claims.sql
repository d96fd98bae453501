-- Provisioning (ironroot-server), PostgreSQL flavour. Keep in step with ../sqlite/0300_provision_claims.sql.

-- One-time claim tokens. Only the SHA-256 of the token is stored; the token itself is shown to
-- the operator once. A token is bound either to one device (quota 1) or to a group (quota n).
CREATE TABLE provision_claims (
    token_hash  TEXT    NOT NULL PRIMARY KEY,
    device_id   TEXT,
    group_name  TEXT,
    quota       BIGINT NOT NULL CHECK (quota >= 1),
    used        BIGINT  NOT NULL DEFAULT 0,
    created_by  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL,
    CHECK ((device_id IS NULL) <> (group_name IS NULL)),
    CHECK (used <= quota)
);
CREATE INDEX provision_claims_expiry ON provision_claims (expires_at);

-- Rotations waiting to retire the previous certificate: after the grace period, or when the
-- device first uses the new certificate, whichever comes first.
CREATE TABLE provision_rotations (
    old_serial  TEXT    NOT NULL PRIMARY KEY,
    new_serial  TEXT    NOT NULL,
    device_id   TEXT    NOT NULL,
    retire_at   BIGINT  NOT NULL
);
CREATE INDEX provision_rotations_new ON provision_rotations (new_serial);
CREATE INDEX provision_rotations_due ON provision_rotations (retire_at);
