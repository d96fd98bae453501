-- Named, versioned MQTT policies and their attachments, PostgreSQL flavour.
-- Keep in step with ../sqlite/0200_policies.sql. Documents are validated with ironroot-policy
-- before they are stored; the latest version of a policy is the one in force.

CREATE TABLE policy_policies (
    name            TEXT    NOT NULL PRIMARY KEY,
    latest_version  BIGINT  NOT NULL CHECK (latest_version >= 1),
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL
);

CREATE TABLE policy_versions (
    name        TEXT    NOT NULL REFERENCES policy_policies (name),
    version     BIGINT  NOT NULL CHECK (version >= 1),
    document    TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);

-- target_kind 'device': target is a device id; 'group': a group name.
CREATE TABLE policy_attachments (
    policy_name  TEXT    NOT NULL REFERENCES policy_policies (name),
    target_kind  TEXT    NOT NULL CHECK (target_kind IN ('device', 'group')),
    target       TEXT    NOT NULL,
    attached_at  BIGINT  NOT NULL,
    PRIMARY KEY (policy_name, target_kind, target)
);
CREATE INDEX policy_attachments_by_target ON policy_attachments (target_kind, target);
