-- Device reports, SQLite flavour. Keep in step with ../postgres/0500_report_boot.sql.

-- The latest boot report of each device: what secure boot decided (running firmware, its
-- security counter, the measured-boot PCR) as the device sent it over mutual TLS. The full
-- report is kept as JSON; the audit log holds the history.
CREATE TABLE report_boot (
    device_id         TEXT    NOT NULL PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    reported_at       INTEGER  NOT NULL,
    firmware_version  TEXT,
    security_counter  INTEGER  NOT NULL,
    pcr               TEXT    NOT NULL,
    trial             INTEGER  NOT NULL,
    refused           INTEGER  NOT NULL,
    report            TEXT    NOT NULL
) STRICT;
CREATE INDEX report_boot_version ON report_boot (firmware_version);
