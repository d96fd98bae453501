-- ironroot audit log (crate ironroot-audit), SQLite flavour. Keep in step with
-- ../postgres/0100_audit_log.sql. The tables hold the Merkle log; nothing in them is trusted:
-- `ironroot audit verify` recomputes every hash and checks every signed checkpoint.

-- One row per log entry: its position and its canonical event bytes (the RFC 6962 leaf).
-- INTEGER PRIMARY KEY makes idx the rowid: appends go to the end of the b-tree.
CREATE TABLE audit_leaves (
    idx   INTEGER NOT NULL PRIMARY KEY,
    data  BLOB    NOT NULL
) STRICT;

-- Stored tree hashes: tile (level, idx) covers tree level 8*level nodes 256*idx..256*idx+255
-- and holds every complete node of the 8 levels above them (see ironroot-audit's tile module).
-- A tile only grows; the partial tile on the right edge is rewritten by each batch.
CREATE TABLE audit_tiles (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    data  BLOB    NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT;

-- One signed checkpoint (C2SP signed note) per committed batch, all kept, so any two can be
-- proven consistent. size = number of entries the checkpoint covers.
CREATE TABLE audit_checkpoints (
    size  INTEGER NOT NULL PRIMARY KEY,
    note  TEXT    NOT NULL
) STRICT;
