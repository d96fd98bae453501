"""Builds a TUF repository with python-tuf 7's Metadata API (the oracle for `ironroot ota client`).

usage: ota_tuf_repo.py OUT

OUT/metadata: 1.root.json, 2.root.json (root rotated to a new ECDSA key, signed by old and new),
1.targets.json (fw.bin, with custom fields, and a delegation "boards" for board-a/*),
1.boards.json, 1.snapshot.json, timestamp.json; consistent snapshot.
OUT/targets: SHA256.fw.bin and board-a/SHA256.fw.bin. Keys: Ed25519 and ECDSA P-256 mixed.
Prints the target bytes' SHA-256 as JSON.
"""

import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

out = sys.argv[1]
meta_dir = os.path.join(out, "metadata")
targets_dir = os.path.join(out, "targets")
os.makedirs(os.path.join(targets_dir, "board-a"), exist_ok=True)
os.makedirs(meta_dir, exist_ok=True)
expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)

keys = {
    "root": CryptoSigner.generate_ed25519(),
    "targets": CryptoSigner.generate_ecdsa(),
    "snapshot": CryptoSigner.generate_ed25519(),
    "timestamp": CryptoSigner.generate_ecdsa(),
}
new_root_key = CryptoSigner.generate_ecdsa()
boards_key = CryptoSigner.generate_ed25519()


def write(md, name):
    md.to_file(os.path.join(meta_dir, name), JSONSerializer(compact=False))


root = Metadata(Root(expires=expires, consistent_snapshot=True))
for role, signer in keys.items():
    root.signed.add_key(signer.public_key, role)
root.sign(keys["root"])
write(root, "1.root.json")

# Rotation 1 -> 2: a new root key, signed by the old (threshold of v1) and the new (v2).
root.signed.revoke_key(keys["root"].public_key.keyid, "root")
root.signed.add_key(new_root_key.public_key, "root")
root.signed.version = 2
root.signatures.clear()
root.sign(keys["root"], append=True)
root.sign(new_root_key, append=True)
write(root, "2.root.json")

fw = bytes((i * 31 + 7) % 251 for i in range(50_000))
board_fw = b"board-a firmware \x00\xff" * 100
fw_hash = hashlib.sha256(fw).hexdigest()
with open(os.path.join(targets_dir, f"{fw_hash}.fw.bin"), "wb") as f:
    f.write(fw)
board_hash = hashlib.sha256(board_fw).hexdigest()
with open(os.path.join(targets_dir, "board-a", f"{board_hash}.fw.bin"), "wb") as f:
    f.write(board_fw)

targets = Metadata(Targets(expires=expires))
tf = TargetFile.from_data("fw.bin", fw, ["sha256", "sha512"])
tf.unrecognized_fields["custom"] = {"version": "1.2.0", "security_counter": 3, "hardware_class": "board-a"}
targets.signed.targets["fw.bin"] = tf
boards_role = DelegatedRole("boards", [], 1, True, paths=["board-a/*"])
targets.signed.delegations = Delegations(keys={}, roles={"boards": boards_role})
targets.signed.add_key(boards_key.public_key, "boards")
targets.sign(keys["targets"])
write(targets, "1.targets.json")

boards = Metadata(Targets(expires=expires))
boards.signed.targets["board-a/fw.bin"] = TargetFile.from_data("board-a/fw.bin", board_fw, ["sha256"])
boards.sign(boards_key)
write(boards, "1.boards.json")

snapshot = Metadata(Snapshot(expires=expires))
snapshot.signed.meta["targets.json"] = MetaFile(version=1)
snapshot.signed.meta["boards.json"] = MetaFile(version=1)
snapshot.sign(keys["snapshot"])
write(snapshot, "1.snapshot.json")
snap_bytes = open(os.path.join(meta_dir, "1.snapshot.json"), "rb").read()

timestamp = Metadata(Timestamp(expires=expires))
timestamp.signed.snapshot_meta = MetaFile(version=1, length=len(snap_bytes), hashes={"sha256": hashlib.sha256(snap_bytes).hexdigest()})
timestamp.sign(keys["timestamp"])
write(timestamp, "timestamp.json")

print(json.dumps({"fw.bin": fw_hash, "board-a/fw.bin": board_hash}))
