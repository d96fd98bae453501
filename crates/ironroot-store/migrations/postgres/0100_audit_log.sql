-- ironroot audit log (crate ironroot-audit), PostgreSQL flavour. Keep in step with
-- ../sqlite/0100_audit_log.sql. The tables hold the Merkle log; nothing in them is trusted:
-- `ironroot audit verify` recomputes every hash and checks every signed checkpoint.

-- One row per log entry: its position and its canonical event bytes (the RFC 6962 leaf).
CREATE TABLE audit_leaves (
    idx   BIGINT NOT NULL PRIMARY KEY,
    data  BYTEA  NOT NULL
);

-- Stored tree hashes: tile (level, idx) covers tree level 8*level nodes 256*idx..256*idx+255
-- and holds every complete node of the 8 levels above them (see ironroot-audit's tile module).
-- A tile only grows; the partial tile on the right edge is rewritten by each batch.
CREATE TABLE audit_tiles (
    level BIGINT NOT NULL,
    idx   BIGINT NOT NULL,
    data  BYTEA  NOT NULL,
    PRIMARY KEY (level, idx)
);

-- One signed checkpoint (C2SP signed note) per committed batch, all kept, so any two can be
-- proven consistent. size = number of entries the checkpoint covers.
CREATE TABLE audit_checkpoints (
    size  BIGINT NOT NULL PRIMARY KEY,
    note  TEXT   NOT NULL
);

-- Tiles are hashes: incompressible. Store them out of line without trying to compress them.
ALTER TABLE audit_tiles ALTER COLUMN data SET STORAGE EXTERNAL;
