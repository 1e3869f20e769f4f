"""The agent killed with SIGKILL at random points, over and over: the job still completes, each item stored once.

    python bench/agentkill.py --kills 20

A real ``hwlut serve`` (SQLite) and a small onnxruntime job of FBNet-32
(``--entries`` entries, a fast loose protocol). Each round starts ``hwlut
agent --once`` and SIGKILLs it after a random 0.5-5 s (or lets it finish when
the job is done); after ``--kills`` kills an agent runs to the end. Then the
database is read: the job complete, one LUT entry per work item, none twice.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hwlut.cli.supervisor import local_server  # noqa: E402
from lut_store import Store  # noqa: E402
from lutclient import HwlutClient  # noqa: E402
from searchspace import fbnet_space  # noqa: E402

FAST = {
    "target_rel_ci": 0.2, "time_cap_s": 0.1, "warmup_s": 0.05, "slice_s": 0.01, "sentinel_slice_s": 0.005,
    "min_passes": 1, "min_runs_per_pass": 3, "warmup_runs": 2,
}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--entries", type=int, default=24)
    args = ap.parse_args()
    rng = random.Random(17)
    keys = [e.key for e in fbnet_space(32).distinct_entries()[: args.entries]]
    with tempfile.TemporaryDirectory() as folder, local_server(Path(folder)) as (url, admin, _proc):
        with HwlutClient(url, token=admin) as client:
            token = client.create_device("box")["token"]
        with HwlutClient(url, token=token) as client:
            job = client.create_job(
                "box", resolution=32, runtime="onnxruntime", threads=1, options={"protocol": FAST}, entries=keys
            )
        cmd = [sys.executable, "-c", "from hwlut.cli import main; main()", "agent", "--server", url]
        cmd += ["--token", token, "--once", "--batch", "2"]
        kills = rounds = 0
        started = time.monotonic()
        while rounds < 3 * args.kills + 5:  # bounded, even if an agent keeps finding nothing to do
            rounds += 1
            agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
            try:
                status = agent.wait(timeout=rng.uniform(0.5, 5.0) if kills < args.kills else 600)
            except subprocess.TimeoutExpired:
                agent.send_signal(signal.SIGKILL)
                agent.wait()
                kills += 1
                continue
            with HwlutClient(url, token=token) as client:
                progress = client.job(job["id"])["progress"]
            if progress["done"] == progress["total"] or kills >= args.kills:
                break
        with HwlutClient(url, token=token) as client:
            final = client.job(job["id"])
        store = Store(f"sqlite:///{Path(folder) / 'hwlut.db'}")
        from sqlalchemy import text

        with store.transaction() as session:
            counts = dict(
                session.execute(
                    text("SELECT work_item_id, COUNT(*) FROM lut_entries WHERE job_id = :j GROUP BY work_item_id"),
                    {"j": job["id"]},
                ).all()
            )
            query = text("SELECT id FROM work_items WHERE job_id = :j")
            items = set(session.execute(query, {"j": job["id"]}).scalars())
        store.dispose()
    print(f"bench/agentkill.py: {args.entries} entries, {kills} agents killed, {time.monotonic() - started:.0f} s")
    print(f"job {final['status']}, progress {final['progress']}, last agent exit status {status}")
    twice = [i for i, n in counts.items() if n > 1]
    missing = items - set(counts)
    print(f"items {len(items)}, with an entry {len(counts)}, stored twice {len(twice)}, without one {len(missing)}")
    ok = final["status"] == "complete" and not twice and not missing
    print("OK: the job completed, each item stored once" if ok else "FAILED")


if __name__ == "__main__":
    main()
