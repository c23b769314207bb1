"""`dataset-qa embed`, `dataset-qa outliers` and `dataset-qa cache info|clear`: image
embeddings (kept in the content-addressed store), outliers from them, and the store itself."""

from __future__ import annotations

import sys
from pathlib import Path

from qa.cli import (
    EXIT_OK,
    EXIT_UNUSABLE,
    dataset_args,
    fraction_bar,
    ray_args,
    load_dataset,
    print_json,
    table,
    write_text_atomic,
)


def _model_args(p) -> None:
    p.add_argument("--model", default="auto",
                   help="'auto' (CLIP if its weights are on this machine, else the offline "
                        "model), 'efficientnet-lite0', or an open_clip architecture (ViT-B-32)")
    p.add_argument("--pretrained", default=None,
                   help="open_clip weights tag (default: the architecture's default; 'random' "
                        "for random weights)")
    p.add_argument("--checkpoint", default=None, help="local CLIP checkpoint file (air-gapped)")
    p.add_argument("--batch-size", type=int, default=None, help="images per forward pass")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")


def _embed(args, ds, *, objects: bool = False):
    from qa.embeddings import embed_images, embed_objects

    kw = dict(model=args.model, pretrained=args.pretrained, checkpoint=args.checkpoint,
              batch_size=args.batch_size, device=args.device,
              cached_only=getattr(args, "cached", False), ray=getattr(args, "ray", None),
              layout=getattr(args, "layout", None))
    if objects:
        return embed_objects(ds, annotator=getattr(args, "annotator", None),
                             progress=fraction_bar("embedding boxes", args.json), **kw)
    return embed_images(ds, progress=fraction_bar("embedding images", args.json), **kw)


def _summary(emb) -> dict:
    from qa.results import frame_records

    return {"model_id": emb.model_id, "model": emb.model_label, "is_clip": emb.is_clip,
            "n_embedded": len(emb), "dim": emb.dim if len(emb) else None,
            "n_computed": emb.n_computed, "n_cached": emb.n_cached,
            "n_failed": len(emb.failed), "failed": frame_records(emb.failed),
            "notes": list(emb.notes)}


def cmd_embed(args) -> int:
    from qa.embeddings import ModelError

    ds = load_dataset(args)
    try:
        results = [_embed(args, ds)]
        if args.objects:
            results.append(_embed(args, ds, objects=True))
    except ModelError as exc:
        sys.stderr.write(f"dataset-qa: error: {exc}\n")
        return EXIT_UNUSABLE
    if args.json:
        print_json({"images": _summary(results[0]),
                    **({"objects": _summary(results[1])} if args.objects else {})})
        return EXIT_OK
    w = sys.stdout.write
    w(f"model: {results[0].model_label}\n")
    for note in results[0].notes:
        w(f"  {note}\n")
    for what, emb in zip(("images", "boxes"), results):
        w(f"{what}: {len(emb):,} embedded ({emb.n_computed:,} computed, {emb.n_cached:,} from "
          f"the cache), {len(emb.failed):,} could not be embedded\n")
        for r in emb.failed.head(20).itertuples(index=False):
            w(f"  {r.file_name}: {r.reason}\n")
        if len(emb.failed) > 20:
            w(f"  ... and {len(emb.failed) - 20} more\n")
    return EXIT_OK


def cmd_outliers(args) -> int:
    from qa.embeddings import ModelError
    from qa.outliers import compute_outliers, embedding_shortfall

    ds = load_dataset(args)
    try:
        emb = _embed(args, ds)
        objects = _embed(args, ds, objects=True) if args.objects else None
    except ModelError as exc:
        sys.stderr.write(f"dataset-qa: error: {exc}\n")
        return EXIT_UNUSABLE
    _, why = embedding_shortfall(emb, ds.n_images)
    if why:
        sys.stderr.write(f"dataset-qa: error: {why}; see `dataset-qa info`\n")
        return EXIT_UNUSABLE
    res = compute_outliers(ds, emb, method=args.method, k=args.k, objects=objects)
    if args.csv:
        write_text_atomic(args.csv, res.export_frame().to_csv(index=False))
    if args.json:
        print_json(res.to_dict())
        return EXIT_OK
    w = sys.stdout.write
    m = res.metrics()
    w(f"model: {res.model_label}\n")
    w(f"{m['n_images_embedded']:,} images embedded ({emb.n_computed:,} computed, "
      f"{emb.n_cached:,} from the cache), {m['n_failed']} could not be embedded\n")
    w(f"{m['n_outliers']} outliers ({res.method}, k={res.k}, flagged above {res.fence:.3g} = "
      "Q3 + 1.5 IQR)\n")
    if len(res.flagged):
        w(table(res.flagged, ["rank", "image_id", "file_name", "split", "score"]) + "\n")
    if res.class_level:
        fc = res.flagged_class
        w(f"\n{len(fc)} per-class outliers ({res.class_level})\n")
        if len(fc):
            from qa.dataset import image_labels

            fc = fc.head(30).assign(image=fc.head(30)["image_id"].map(image_labels(ds.images)))
            w(table(fc, ["image", "ann_id", "name", "nearest_name", "excess"]) + "\n")
    for note in res.notes[1:]:
        w(f"note: {note}\n")
    if args.csv:
        w(f"wrote {args.csv}\n")
    return EXIT_OK


def cmd_cache_info(args) -> int:
    from qa.store import default_store

    st = default_store()
    info = st.info()
    if args.json:
        from qa.results import frame_records

        print_json({"path": str(st.path), "bytes": _size(st.path), "entries": frame_records(info)})
        return EXIT_OK
    w = sys.stdout.write
    w(f"store: {st.path} ({_size(st.path) / 1e6:.1f} MB)\n")
    w((info.to_string(index=False) if len(info) else "(empty)") + "\n")
    return EXIT_OK


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())


def cmd_cache_clear(args) -> int:
    from qa.embeddings import ModelError, resolve_model
    from qa.store import default_store

    model = args.model
    if model and "/" not in model:  # a friendly name: the model_id it stands for
        try:
            model = resolve_model(model, pretrained=args.pretrained).model_id
        except ModelError as exc:
            sys.stderr.write(f"dataset-qa: error: {exc}\n")
            return EXIT_UNUSABLE
    n = default_store().clear(model=model)
    what = f"vectors of {model}" if model else "everything"
    if args.json:
        print_json({"cleared": what, "entries": n})
    else:
        sys.stdout.write(f"cleared {what}: {n:,} entries\n")
    return EXIT_OK


def _exchange(args, direction: str) -> int:
    from qa.distributed.layout import ClusterLayout, export_from_store, import_into_store
    from qa.store import default_store

    layout = ClusterLayout(args.layout)
    fn = import_into_store if direction == "import" else export_from_store
    if direction == "import":
        done = fn(layout, default_store(), model=args.model, kind=args.kind)
    else:
        done = fn(default_store(), layout, model=args.model, kind=args.kind)
    if args.json:
        print_json({direction: done, "layout": layout.uri})
        return EXIT_OK
    w = sys.stdout.write
    for name, n in done.items():
        w(f"{direction}ed {n:,} entries of {name}\n")
    if not done:
        w(f"nothing to {direction}\n")
    return EXIT_OK


def cmd_cache_import(args) -> int:
    return _exchange(args, "import")


def cmd_cache_export(args) -> int:
    return _exchange(args, "export")


def cmd_cache_compact(args) -> int:
    from qa.distributed.layout import RECORDS, VECTORS, ClusterLayout

    layout = ClusterLayout(args.layout)
    done = {name: layout.compact(table, name) for table in (VECTORS, RECORDS)
            for name in layout.names(table)}
    if args.json:
        print_json({"parts_removed": done, "layout": layout.uri})
    else:
        for name, n in done.items():
            sys.stdout.write(f"{name}: {n:,} parts merged away\n")
    return EXIT_OK


def register(sub) -> None:
    from qa.outliers import DEFAULT_K, METHODS

    embed = sub.add_parser("embed", help="embed every image (kept in the cache; re-runs are "
                                         "instant)")
    dataset_args(embed)
    _model_args(embed)
    embed.add_argument("--objects", action="store_true",
                       help="also embed the labelled boxes (for per-class outliers)")
    embed.add_argument("--annotator", default=None, help="whose boxes (default: most labels)")
    ray_args(embed)
    embed.set_defaults(func=cmd_embed)

    out = sub.add_parser("outliers", help="images unlike the rest, and labels far from their "
                                          "class")
    dataset_args(out)
    _model_args(out)
    out.add_argument("--method", choices=METHODS, default="knn")
    out.add_argument("--k", type=int, default=DEFAULT_K, help="neighbours")
    out.add_argument("--objects", action="store_true",
                     help="embed the labelled boxes too and report per-class outliers")
    out.add_argument("--annotator", default=None, help="whose boxes (default: most labels)")
    out.add_argument("--cached", action="store_true",
                     help="use only vectors already in the cache (compute nothing)")
    out.add_argument("--csv", default=None, help="write the flagged images to this CSV file")
    out.set_defaults(func=cmd_outliers)

    cache = sub.add_parser("cache", help="the embeddings cache: info | clear")
    csub = cache.add_subparsers(dest="cache_command", required=True)
    info = csub.add_parser("info", help="what the cache holds and where")
    info.add_argument("--json", action="store_true")
    info.set_defaults(func=cmd_cache_info)
    clear = csub.add_parser("clear", help="delete cached vectors (of one model, or everything)")
    clear.add_argument("--model", default=None,
                       help="a model_id or name (efficientnet-lite0, ViT-B-32); default: all")
    clear.add_argument("--pretrained", default=None)
    clear.add_argument("--json", action="store_true")
    clear.set_defaults(func=cmd_cache_clear)
    for name, fn, what in (("import", cmd_cache_import, "copy a cluster layout's results into "
                                                        "this machine's cache"),
                           ("export", cmd_cache_export, "copy this machine's cache into a "
                                                        "cluster layout")):
        c = csub.add_parser(name, help=what)
        c.add_argument("layout", help="the layout: a folder or URI (s3://..., gs://...)")
        c.add_argument("--model", default=None, help="only the vectors of this model_id")
        c.add_argument("--kind", default=None, help="only the records of this kind "
                                                    "(e.g. imagestats/v2)")
        c.add_argument("--json", action="store_true")
        c.set_defaults(func=fn)
    comp = csub.add_parser("compact", help="rewrite a cluster layout's many small parts as "
                                           "few large ones, without repeated keys")
    comp.add_argument("layout", help="the layout: a folder or URI")
    comp.add_argument("--json", action="store_true")
    comp.set_defaults(func=cmd_cache_compact)
