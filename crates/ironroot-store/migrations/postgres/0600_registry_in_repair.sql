-- Registry: the `in_repair` device state (returned for repair). Keep in step with
-- ../sqlite/0600_registry_in_repair.sql (which has to rebuild the table; here the CHECK
-- constraint is replaced in place).
ALTER TABLE devices DROP CONSTRAINT devices_state_check;
ALTER TABLE devices ADD CONSTRAINT devices_state_check
    CHECK (state IN ('manufactured', 'provisioned', 'active', 'quarantined', 'in_repair',
                     'revoked', 'decommissioned'));
