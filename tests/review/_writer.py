"""A separate process that writes decisions (the concurrency and kill tests start it).

    python tests/review/_writer.py URL REVIEWER N [batch]

Opens the store, prints "ready", waits for a line on stdin (the start signal), then writes N
decisions one transaction each, half on keys shared with the other writer, and
prints each committed decision's uid on its own line (flushed), so the parent knows what
must be in the database. With ``batch``, every 10th write is instead an import of
BATCH_ROWS decisions in one transaction (all or none must survive a kill).
"""

import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pandas as pd

from qa.review.store import ReviewStore

BATCH_ROWS = 200


def main() -> None:
    url, reviewer, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    batch = len(sys.argv) > 4 and sys.argv[4] == "batch"
    st = ReviewStore(url)
    print("ready", flush=True)
    sys.stdin.readline()  # the start signal: both writers begin together
    for i in range(n):
        if batch and i % 10 == 9:
            tag = uuid.uuid4().hex
            rows = pd.DataFrame({
                "decision_uid": [f"{tag}-{j}" for j in range(BATCH_ROWS)],
                "item_key": [f"batch-{j}" for j in range(BATCH_ROWS)],
                "status": "fixed", "reviewer": reviewer, "note": f"batch {tag}",
                "decided_at": time.time()})
            st.import_decisions(rows)
            print(f"batch {tag}", flush=True)
            continue
        key = f"shared-{i // 2}" if i % 2 else f"{reviewer}-{i}"
        uid = st.decide(key, "confirmed" if i % 3 else "not_an_issue", reviewer=reviewer,
                        note=f"#{i}")
        print(uid, flush=True)


if __name__ == "__main__":
    main()
