"""python-tuf 7's ngclient.Updater against a repository (the oracle for `ironroot ota repo`).

usage: ota_tuf_client.py METADATA_URL TARGETS_URL TRUSTED_ROOT WORKDIR TARGET_NAME

Refreshes, downloads TARGET_NAME and prints {"path", "sha256", "custom", "versions"} as JSON;
exits non-zero (with the exception) if python-tuf refuses anything.
"""

import hashlib
import json
import os
import sys

from tuf.ngclient import Updater

metadata_url, targets_url, trusted_root, work, name = sys.argv[1:6]
meta = os.path.join(work, "metadata")
dl = os.path.join(work, "download")
os.makedirs(meta, exist_ok=True)
os.makedirs(dl, exist_ok=True)
with open(trusted_root, "rb") as f:
    root = f.read()
updater = Updater(meta, metadata_url, dl, targets_url, bootstrap=root)
updater.refresh()
info = updater.get_targetinfo(name)
if info is None:
    sys.exit(f"target {name} not found")
path = updater.download_target(info)
with open(path, "rb") as f:
    data = f.read()
ts = updater._trusted_set
print(json.dumps({
    "path": path,
    "sha256": hashlib.sha256(data).hexdigest(),
    "custom": info.custom,
    "versions": {"root": ts.root.version, "timestamp": ts.timestamp.version,
                 "snapshot": ts.snapshot.version, "targets": ts.targets.version},
}))
