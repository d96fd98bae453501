-- Named, versioned MQTT policies and their attachments, SQLite flavour.
-- Keep in step with ../postgres/0200_policies.sql. Documents are validated with ironroot-policy
-- before they are stored; the latest version of a policy is the one in force.

CREATE TABLE policy_policies (
    name            TEXT    NOT NULL PRIMARY KEY,
    latest_version  INTEGER NOT NULL CHECK (latest_version >= 1),
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
) STRICT;

CREATE TABLE policy_versions (
    name        TEXT    NOT NULL REFERENCES policy_policies (name),
    version     INTEGER NOT NULL CHECK (version >= 1),
    document    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (name, version)
) STRICT;

-- target_kind 'device': target is a device id; 'group': a group name.
CREATE TABLE policy_attachments (
    policy_name  TEXT    NOT NULL REFERENCES policy_policies (name),
    target_kind  TEXT    NOT NULL CHECK (target_kind IN ('device', 'group')),
    target       TEXT    NOT NULL,
    attached_at  INTEGER NOT NULL,
    PRIMARY KEY (policy_name, target_kind, target)
) STRICT, WITHOUT ROWID;
CREATE INDEX policy_attachments_by_target ON policy_attachments (target_kind, target);
