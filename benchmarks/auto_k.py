"""Compare the number of clusters that ``-k auto`` chooses with the number of classes.

Each labelled folder (class = top-level sub-folder) is embedded into the
feature store in ``--cache`` (or read from it), and
:func:`eclu.autok.select_n_clusters` chooses k from 2 to 30 with every
criterion, on the raw embeddings as ``eclu cluster -k auto`` does. The table
shows the chosen k per folder, backbone and criterion, with the seconds the
choice took.

Usage::

    python benchmarks/auto_k.py --folder ../shared/data/cifar10-test \\
        --folder ../shared/data/flowers12 --backbones efficientnet_lite0,efficientnet_lite2
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# Idle OpenMP threads (PyTorch, scikit-learn, FAISS) otherwise spin, which
# slows every side many times over on a machine busier than its cores.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _machine import describe_machine  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--folder", type=Path, action="append", help="labelled folder (repeatable)")
    parser.add_argument("--backbones", default="efficientnet_lite0", help="comma-separated backbone names")
    parser.add_argument("--engine", choices=("torch", "onnx"), default="onnx", help="inference engine (default: onnx)")
    parser.add_argument("--crop-pct", type=float, help="centre-crop share in place of the backbone's own")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "eclu-cache",
        help="feature store folder, reused across runs (default: TMP/eclu-cache)",
    )
    args = parser.parse_args(argv)
    folders = args.folder or [SHARED / "cifar10-test", SHARED / "flowers12"]

    from eclu.autok import K_CRITERIA, select_n_clusters
    from eclu.backbones import load_backbone
    from eclu.embed import embed_entries
    from eclu.scan import scan_folder
    from eclu.store import FeatureStore

    print(f"machine: {describe_machine()}")
    print("| folder | classes | backbone | criterion | chosen k | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for folder in folders:
        entries = scan_folder(folder)
        classes = len({entry.path.split("/")[0] for entry in entries})
        for name in args.backbones.split(","):
            backbone = load_backbone(name, crop_pct=args.crop_pct)
            store = FeatureStore(args.cache, backbone.identity(args.engine))
            records = embed_entries(entries, backbone, store, engine=args.engine)
            store.refresh()
            X = store.get([record.sha256 for record in records if record.status == "ok"])
            for criterion in K_CRITERIA:
                started = time.perf_counter()
                chosen = select_n_clusters(X, 30, criterion=criterion).n_clusters
                seconds = time.perf_counter() - started
                print(f"| {folder.name} | {classes} | {name} | {criterion} | {chosen} | {seconds:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
