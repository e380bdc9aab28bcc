"""The ``graphrec`` command line: a thin shell over :mod:`graphrec.runs`."""
from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from pathlib import Path

EXAMPLES = """\
examples:
  graphrec datasets                               # what is known, where it is looked for, what is present
  graphrec models                                 # registered models and their paper defaults
  graphrec fit --model lightgcn --data gowalla    # train with the paper's settings, select on validation
  graphrec fit --model lightgcn --data gowalla --protocol paper --epochs 1000
  graphrec fit --model lightgcn --data gowalla --set train.batch_size=8192 --set train.lr=0.005
  graphrec fit --resume runs/lightgcn-gowalla-20261123-101500   # continue exactly where it stopped
  graphrec fit --model lightgcn --data gowalla --set sampling.mode=sampled --set "sampling.fanouts=[5,5,5]"
  graphrec fit --model lightgcn --data yelp2018 --config examples/configs/lightgcn-large-graph.yaml   # linear epochs
  graphrec fit --model lightgcn --data gowalla --node-encoder convnext_atto --images item_images/
  graphrec fit --model latte --data acm --split 20 && graphrec explain --checkpoint runs/<run>/best.pt --plot betas.png
  graphrec fit --model gcnii --data cora --nproc 2 --parallel pipe --chunks 4 --set model.num_layers=16
  graphrec fit --model gcnii --data cora --config examples/configs/gcnii-cora-pipe.yaml   # the same, as a file
  graphrec fit --model lightgcn --data gowalla --nproc 2 --parallel ddp
  graphrec eval --checkpoint runs/<run>/best.pt --split test
  graphrec recommend --checkpoint runs/<run>/best.pt --user 42 -k 10

data: --data-dir > $GRAPHREC_DATA > ~/.cache/graphrec, one folder per dataset (e.g. <root>/gowalla/train.txt);
missing files are downloaded from the dataset's public origin and checked against published checksums.
"""

PROTOCOL_HELP = ("validation (default): select the epoch on a seeded per-user validation split carved out of "
                 "train, report test once at that checkpoint. paper: no validation, evaluate test every "
                 "eval_every epochs and report the best (the original LightGCN protocol; for comparing with "
                 "published numbers only).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graphrec", description="Graph and recommendation learning on PyTorch.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    fit = sub.add_parser("fit", help="train a model on a dataset", epilog=EXAMPLES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Train a registered model on a registered dataset. Results, checkpoints, "
                                     "metrics.jsonl, summary.json and curves.png go to the run folder.")
    fit.add_argument("--model", help="model name (see `graphrec models`)")
    fit.add_argument("--data", help="dataset name (see `graphrec datasets`)")
    fit.add_argument("--data-dir", help="folder holding <dataset>/ folders (default: $GRAPHREC_DATA or ~/.cache/graphrec)")
    fit.add_argument("--config", help="YAML file of settings by section (train, sampling, parallel, encoder, model), "
                                      "e.g. {train: {lr: 0.001}, model: {num_layers: 3}}")
    fit.add_argument("--set", dest="overrides", action="append", metavar="SECTION.KEY=VALUE",
                     help="override one setting, e.g. --set train.lr=0.001 --set model.num_layers=2 --set "
                          "parallel.chunks=8 (repeatable; the flags below are shortcuts for these)")
    fit.add_argument("--protocol", choices=["validation", "paper"], help=PROTOCOL_HELP)
    fit.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    fit.add_argument("--seed", type=int, help="shortcut for --set train.seed=N")
    fit.add_argument("--split", help="node classification split (shortcut for --set train.split=...): public, random, "
                                     "stratified, or a labels-per-class count the dataset ships (ACM: 20, 40, 60)")
    fit.add_argument("--device", help="cpu or cuda[:N] (shortcut for --set train.device=...)")
    fit.add_argument("--out", default="runs", help="folder for new run folders (default: runs/)")
    fit.add_argument("--run-dir", help="exact run folder to use instead of a new timestamped one")
    fit.add_argument("--resume", metavar="RUN_DIR",
                     help="continue the run in RUN_DIR from its last.pt, exactly; --epochs, --config and --set may "
                          "change the safe settings (graphrec.config.RESUME_SAFE_KEYS: epochs, lr and its schedule, "
                          "eval_every, patience, time limit, device, threads), each logged as a resume_override "
                          "event in metrics.jsonl; other settings are fixed by the run")
    fit.add_argument("--runs", type=int, default=1, metavar="N",
                     help="train N times with seeds seed..seed+N-1 (one sub-folder each) and print the mean and "
                          "std of the test metrics; written to <run folder>/runs_summary.json")
    fit.add_argument("--node-encoder", metavar="NAME",
                     help="image backbone for node features (encoder.name; graphrec.encoders: native "
                          "unireplknet_*/vanillanet_*/simplenet*, or any timm model with `pip install graphrec[vision]`), "
                          "e.g. convnext_atto; needs --images. Recommenders: item image features; node "
                          "classification: [x, images]")
    fit.add_argument("--images", metavar="PATH",
                     help="node images (encoder.images): a folder of files named by node id (<id>.png, ...) or a "
                          "CSV/TSV of node,path")
    fit.add_argument("--node-encoder-mode", choices=["frozen", "end_to_end"],
                     help="encoder.mode: frozen (default: encode once, cached on disk) or end_to_end (train the "
                          "backbone)")
    fit.add_argument("--nproc", type=int, metavar="N",
                     help="parallel.nproc: start N ranks on this machine (gloo on CPU, NCCL with --device cuda); the "
                          "same as torchrun --nproc-per-node N -m graphrec fit ... (graphrec.parallel)")
    fit.add_argument("--parallel", choices=["pipe", "graph", "hybrid", "ddp"],
                     help="parallel.mode: pipe: GNNPipe layer pipeline; graph: METIS partitions + halo exchange; "
                          "hybrid: stages x partitions; ddp: data-parallel recommenders (see graphrec/parallel)")
    fit.add_argument("--stages", type=int, help="parallel.stages, --parallel hybrid: pipeline stages (ranks / stages "
                                                 "partitions each)")
    fit.add_argument("--chunks", type=int, help="parallel.chunks, --parallel pipe/hybrid: graph chunks in the pipeline "
                                                 "(default 4)")
    fit.add_argument("--warmup-epochs", type=int, help="parallel.warmup_epochs, --parallel pipe/hybrid: first epochs "
                                                        "exact (one chunk)")
    fit.add_argument("--no-staleness", action="store_true",
                     help="parallel.staleness=false, --parallel pipe/hybrid: one chunk, no historical embeddings "
                          "(exact)")

    ev = sub.add_parser("eval", help="evaluate a checkpoint",
                        description="Recompute ranking metrics of a saved model on a split.")
    ev.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a run")
    ev.add_argument("--split", default="test", choices=["valid", "test"])
    ev.add_argument("--data-dir")

    rec = sub.add_parser("recommend", help="top-k items for a user (or every user) from a checkpoint",
                         description="Print a user's top-k items, excluding items the user already interacted with; "
                                     "--all writes every user's to a Parquet file (user, rank, item, score), streaming "
                                     "in user batches whose memory --max-memory-mb bounds. Example: graphrec recommend "
                                     "--checkpoint runs/<run>/best.pt --all --out recs.parquet -k 20")
    rec.add_argument("--checkpoint", required=True)
    who = rec.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", action="append",
                     help="the user's id as the dataset writes it (its own id, not graphrec's internal index; for "
                          "the LightGCN-format files: the id in train.txt); repeatable")
    who.add_argument("--all", action="store_true", help="every user, to the Parquet file --out")
    rec.add_argument("--out", help="with --all: the Parquet file to write")
    rec.add_argument("--max-memory-mb", type=float, default=512.0,
                     help="with --all: memory bound of one user batch's scores and results (default 512)")
    rec.add_argument("-k", type=positive_int, default=10,
                     help="items per user (at most the number of items; default 10)")
    rec.add_argument("--data-dir")

    xp = sub.add_parser("explain", help="LATTE's relation weights (beta) per node type and layer, from a checkpoint",
                        description="Print the learned relation weights beta of a heterogeneous model (LATTE), mean "
                                    "and std over the nodes of each type, per layer, on the whole graph; --plot saves "
                                    "the figure. Example: graphrec explain --checkpoint runs/<run>/best.pt --plot b.png")
    xp.add_argument("--checkpoint", required=True, help="best.pt or last.pt of a run")
    xp.add_argument("--plot", help="save a bar chart of the weights to this PNG")
    xp.add_argument("--json", dest="json_out", help="also write the weights as JSON to this file")
    xp.add_argument("--data-dir")

    ds = sub.add_parser("datasets", help="list known datasets and whether their files are present")
    ds.add_argument("--data-dir")
    ds.add_argument("--verify", action="store_true", help="check present files against published checksums")

    sub.add_parser("models", help="list registered models and their defaults")
    return parser


def positive_int(text: str) -> int:
    """argparse type of counts such as ``-k``: a whole number >= 1, with a message that says so."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # --nproc relaunches the same command
    if args.command is None:
        parser.print_help()
        return 0
    from graphrec.train.trainer import NonFiniteLossError

    # The library's own error types (ConfigError, DeviceUnavailableError, dataset errors and input
    # checks are ValueErrors or KeyErrors; CheckpointError and a failed parallel run RuntimeErrors)
    # and the operating system's (OSError: file system full, read-only, missing) end in one line;
    # anything else is a bug and keeps its traceback.
    try:
        return COMMANDS[args.command](args)
    except (KeyError, ValueError, RuntimeError, NonFiniteLossError, OSError) as error:
        print(f"graphrec: error: {error_message(error)}", file=sys.stderr)
        return 2


def error_message(error: BaseException) -> str:
    """One line for the user: the error's own message, an OSError said in words with its path."""
    if isinstance(error, OSError) and error.errno is not None:
        where = f": {error.filename}" if error.filename and str(error.filename) not in str(error.strerror) else ""
        advice = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system",
                  errno.EACCES: "permission denied", errno.EPERM: "permission denied"}.get(error.errno)
        text = str(error.strerror)
        if advice and advice not in text.lower():
            text = f"{advice} ({text})"
        message = f"{text}{where}"
        if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            message += "; choose a writable folder (--run-dir or --out)"
    else:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split())


def check_run_dir(path: Path) -> None:
    """A run folder must be a folder (or creatable as one) where this user may write."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"the run folder {path} is a file, not a folder: pass a folder "
                                                "path to --run-dir (or --out)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(errno.ENOTDIR, f"the run folder {path} is under {parent}, which is a "
                                                        "file: pass a folder path to --run-dir (or --out)")
            target = path if path.exists() else parent
            if not os.access(target, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"cannot write the run folder {path}: {target} is read-only "
                                                    "or not yours", str(target))
            return


def _fit(args) -> int:
    from graphrec.config import ConfigError, apply_resume_overrides, build_run_config, load_yaml, parse_overrides
    from graphrec import runs
    from graphrec.train.runlock import check_resumable, run_files

    if args.resume:
        run_dir = Path(args.resume)
        check_run_dir(run_dir)
        if not (run_dir / "config.yaml").is_file():
            raise ConfigError(f"{run_dir} is not a run folder (no config.yaml): pass the folder a `graphrec fit` "
                              "wrote, e.g. runs/lightgcn-gowalla-<date>")
        resume = (run_dir / "last.pt").exists() or (run_dir / "parallel" / "last.json").exists()
        if not resume:
            if run_files(run_dir):   # files without their checkpoint: starting over would mix two runs
                check_resumable(run_dir, run_dir / "last.pt")
            print(f"no checkpoint in {run_dir} yet: starting that run from the beginning", file=sys.stderr)
        overrides = parse_overrides(args.overrides)
        overrides.update(flag_overrides(args))   # --nproc: the same run on another number of ranks
        config, changes = apply_resume_overrides(load_yaml(run_dir / "config.yaml"), args.config, overrides)
        if changes:
            from graphrec.train.runlog import RunLog

            log = RunLog(run_dir)
            for change in changes:
                print(f"resume: {change.key} {change.old!r} -> {change.new!r}", file=sys.stderr)
                log.log(event="resume_override", key=change.key, old=change.old, new=change.new)
            log.write_config(config.to_dict())
        if args.data_dir:
            config.data_dir = args.data_dir
    else:
        if not args.model or not args.data:
            raise ValueError("fit needs --model and --data (or --resume RUN_DIR); see `graphrec fit --help`")
        overrides = parse_overrides(args.overrides)
        overrides.update(flag_overrides(args))
        config = build_run_config(args.model, args.data, args.data_dir, args.config, overrides)
        run_dir = Path(args.run_dir) if args.run_dir else runs.default_run_dir(config, args.out)
        check_run_dir(run_dir)
        resume = False
    print(f"run folder: {run_dir}", file=sys.stderr)
    if config.parallel.enabled or (args.resume and (run_dir / "parallel" / "parallel.json").exists()):
        from graphrec.parallel.fit import cli_fit

        return cli_fit(args, config, run_dir, resume, args.argv)
    if args.runs != 1:
        return _fit_many(args, config, run_dir)
    trainer, summary = runs.fit(config, run_dir, resume=resume)
    if summary["status"] == "interrupted":
        print(f"stopped; resume with: graphrec fit --resume {run_dir}", file=sys.stderr)
        return 130
    print(json.dumps({k: summary[k] for k in ("status", "protocol", "best_epoch", "monitor", "results",
                                               "baseline", "train_seconds") if k in summary}, indent=2))
    return 0


#: ``graphrec fit`` flag -> the setting it is a shortcut for
FLAG_SETTINGS = {
    "protocol": "train.protocol", "epochs": "train.epochs", "seed": "train.seed", "device": "train.device",
    "split": "train.split",
    "node_encoder": "encoder.name", "images": "encoder.images", "node_encoder_mode": "encoder.mode",
    "parallel": "parallel.mode", "nproc": "parallel.nproc", "stages": "parallel.stages", "chunks": "parallel.chunks",
    "warmup_epochs": "parallel.warmup_epochs",
}


def flag_overrides(args) -> dict:
    """The settings the given shortcut flags stand for (they win over --config and --set)."""
    out = {key: getattr(args, flag) for flag, key in FLAG_SETTINGS.items() if getattr(args, flag, None) is not None}
    if getattr(args, "no_staleness", False):
        out["parallel.staleness"] = False
    return out


def _fit_many(args, config, run_dir) -> int:
    from graphrec import runs
    from graphrec.train.runlock import check_resumable, run_files

    if args.resume:
        raise ValueError("--runs cannot be combined with --resume; resume one seed's folder instead")
    result = runs.fit_many(config, args.runs, run_dir)
    print(json.dumps({k: result[k] for k in ("status", "model", "data", "runs", "seeds", "aggregate",
                                             "wall_seconds")}, indent=2))
    for split in ("test", "valid"):
        metrics = result["aggregate"].get(split, {})
        if metrics:
            shown = [f"{m} {v['mean'] * 100:.2f} ± {v['std'] * 100:.2f}" for m, v in metrics.items()
                     if m in ("accuracy", "macro_f1", "micro_f1")] or \
                    [f"{m} {v['mean']:.4f} ± {v['std']:.4f}" for m, v in metrics.items()]
            print(f"{split} over {result['runs']} seeds: " + ", ".join(shown))
            break
    return 130 if result["status"] == "interrupted" else 0


def _eval(args) -> int:
    from graphrec import runs

    model, task, _ = runs.load_trained(args.checkpoint, args.data_dir)
    print(json.dumps({"split": args.split, "protocol": task.describe().get("protocol"),
                      **task.evaluate(model, args.split)}, indent=2))
    return 0


def _recommend(args) -> int:
    from graphrec import runs
    from graphrec.metrics.ranking import top_k_items
    from graphrec.models import get_model_entry
    from graphrec.train import load_checkpoint

    state = load_checkpoint(args.checkpoint)
    name = state.get("run_config", {}).get("model")
    task_name = get_model_entry(name).task
    if task_name != "recommendation":
        raise ValueError(f"checkpoint {args.checkpoint} is for {name}, a {task_name.replace('_', '-')} model: "
                         "recommend needs a recommender's checkpoint (see `graphrec models`); use `graphrec eval`")
    model, task, _ = runs.load_trained(state, args.data_dir)
    graph = task.graph
    k = args.k
    if k > graph.num_items:
        print(f"graphrec: warning: -k {k} is more than the {graph.num_items} items of {graph.name}: showing at "
              f"most {graph.num_items}", file=sys.stderr)
        k = graph.num_items
    users_emb, items_emb = model.embeddings()
    known = graph.known_interactions("train", "valid")
    if args.all:
        from graphrec.recommend_all import write_recommendations

        if not args.out:
            raise ValueError("recommend --all writes a Parquet file: pass --out recs.parquet")
        report = write_recommendations(args.out, users_emb, items_emb, k, known, user_ids=graph.user_map,
                                       item_ids=graph.item_map, max_memory_mb=args.max_memory_mb)
        print(json.dumps({"out": str(report.path), "users": report.users, "rows": report.rows,
                          "seconds": round(report.seconds, 3), "users_per_s": round(report.users_per_s, 1),
                          "items_scored_per_s": round(report.items_per_s(graph.num_items))}))
        return 0
    users = _user_indices(graph, args.user)
    items, scores = top_k_items(users_emb, items_emb, k, known, users)
    for user, row_items, row_scores in zip(args.user, items, scores):
        found = row_items >= 0   # fewer unseen items than k: the short row ends there (strict JSON, no -inf)
        row_items, row_scores = row_items[found], row_scores[found]
        names = graph.item_map.to_ids(row_items) if graph.item_map is not None else row_items
        print(json.dumps({"user": user, "items": [str(n) if graph.item_map else int(n) for n in names],
                          "scores": [round(float(s), 5) for s in row_scores]}, allow_nan=False))
    return 0


def _user_indices(graph, users: list[str]) -> list[int]:
    """The dataset's own user ids (as typed) -> graphrec's row indices, or an error naming the unknown ones."""
    if graph.user_map is not None:   # ids typed on the command line are text; a dataset's may be numbers
        as_numbers = [int(u) if u.lstrip("-").isdigit() else u for u in users]
        for candidate in (users, as_numbers):
            try:
                return graph.user_map.to_index(candidate).tolist()
            except KeyError as error:
                problem = error.args[0]
        raise ValueError(f"{problem} in {graph.name}: --user takes the dataset's own user ids")
    out = []
    for user in users:
        if not user.isdigit() or not 0 <= int(user) < graph.num_users:
            raise ValueError(f"unknown user id {user!r} in {graph.name}: its user ids are 0..{graph.num_users - 1} "
                             "(the ids in its train.txt); --user takes the dataset's own user ids")
        out.append(int(user))
    return out


def _datasets(args) -> int:
    from graphrec.loaders import available_datasets, get_dataset_spec, resolve_data_root

    print(f"data root: {resolve_data_root(args.data_dir)}  (--data-dir > $GRAPHREC_DATA > ~/.cache/graphrec)")
    names = available_datasets()
    width = max(len(n) for n in names) + 2
    print(f"{'name':<{width}}{'task':<28}{'present':<9}{'folder'}")
    for name in names:
        spec = get_dataset_spec(name)
        present = spec.is_present(args.data_dir)
        status = "yes" if present else "no"
        if present and args.verify:
            try:
                spec.verify(args.data_dir)
                status = "verified"
            except ValueError:
                status = "BAD-SUM"
        print(f"{name:<{width}}{spec.task:<28}{status:<9}{spec.folder(args.data_dir)}")
        if spec.description:
            print(f"{'':<{width}}{spec.description}; files: {', '.join(spec.files) or '(generated)'}")
    return 0


def _models(args) -> int:
    import dataclasses

    from graphrec.models import available_models, get_model_entry
    from graphrec.recipes import RECIPES, Recipe

    for name in available_models():
        entry = get_model_entry(name)
        recipe = RECIPES.get(name, Recipe())
        print(f"{name}  [{entry.task}]  {entry.description}")
        fields = ", ".join(f"{f.name}={_field_default(f)!r}" for f in dataclasses.fields(entry.config_cls))
        print(f"    model: {fields or '(no hyper-parameters)'}")
        for section, values in recipe.paper.items():
            print(f"    {section}: {', '.join(f'{k}={v!r}' for k, v in values.items())}")
        if recipe.new_data:
            values = [f"{s}.{k}={v!r}" for s, settings in recipe.new_data.items() for k, v in settings.items()]
            print(f"    on new data (not {', '.join(recipe.paper_data)}): {', '.join(values)}")
        for dataset, sections in recipe.datasets.items():
            values = [f"{s}.{k}={v!r}" for s, settings in sections.items() for k, v in settings.items()]
            print(f"    on {dataset}: {', '.join(values)}")
    return 0


def _field_default(spec):
    import dataclasses

    return spec.default_factory() if spec.default is dataclasses.MISSING else spec.default


def _explain(args) -> int:
    from graphrec.explain import explain_checkpoint, format_relation_weights

    weights = explain_checkpoint(args.checkpoint, args.data_dir, args.plot)
    print(format_relation_weights(weights))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(weights, indent=2) + "\n")
    if args.plot:
        print(f"plot: {args.plot}", file=sys.stderr)
    return 0


COMMANDS = {"explain": _explain, "fit": _fit, "eval": _eval, "recommend": _recommend, "datasets": _datasets, "models": _models}

if __name__ == "__main__":
    raise SystemExit(main())
