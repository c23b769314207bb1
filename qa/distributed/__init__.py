"""The expensive per-image work on a Ray cluster: the pixel pass, image and box embeddings,
and the near-duplicate search over their vectors. An optional extra
(``pip install 'dataset-qa[ray]'``), imported only when ``ray=`` / ``--ray`` is given.

* :func:`cluster_run` / :class:`ClusterRun` (:mod:`qa.distributed.cluster`): what
  ``embed_images(..., ray="auto")``, ``embed_objects``, ``compute_image_stats`` and the store's
  file hashing call to run on the cluster (Ray Data ``map_batches``: decoding and hashing on
  CPU tasks, the model in an actor pool, ``num_gpus`` per actor where there are GPUs).
* :class:`ClusterLayout` (:mod:`qa.distributed.layout`): the content-addressed Parquet
  layout every node writes and the local store imports from / exports to.
* :func:`find_near_duplicates_sharded` (:mod:`qa.distributed.search`): an IVF index trained
  on a sample, filled shard by shard, searched shard by shard in parallel.

See docs/scale.md for the plan at 10M and 100M images.
"""

from qa.distributed.cluster import ClusterError, ClusterRun, cluster_run, connect
from qa.distributed.layout import (
    ClusterLayout,
    LayoutError,
    export_from_store,
    import_into_store,
)

__all__ = [
    "ClusterError",
    "ClusterLayout",
    "ClusterRun",
    "LayoutError",
    "cluster_run",
    "connect",
    "export_from_store",
    "find_near_duplicates_sharded",
    "import_into_store",
]


def __getattr__(name):  # the search needs faiss: imported on use
    if name == "find_near_duplicates_sharded":
        from qa.distributed.search import find_near_duplicates_sharded

        return find_near_duplicates_sharded
    raise AttributeError(name)
