"""Replay bags frame by frame through the node's own path and score it against the human (``lnn-control eval``).

Every image message of a bag is decoded (:func:`lnn_control.vision.decode_msg`) and handed to
:meth:`lnn_control.driver.Driver.observe` with its stamp (header stamps by default, as the nodes use), so dt, state
resets on gaps or time going backwards, and output limits follow the node's rules exactly; frames with no human
command in force are replayed too (the robot would have seen them) but not scored. The human command of a frame is
the one :mod:`lnn_control.data.pairing` gives it (the pairing config stored with the model, unless overridden).
Each Driver runs its model's own timing and crop (stored in the checkpoint) unless ``--driver-config`` gives the
nodes' parameter file (``config/drive.yaml``), read as the nodes read it: limits, timing and crops as on that robot,
with a warning naming each value that differs from a model's.

The report folder::

    metrics.json, metrics.csv   MAE, RMSE, Pearson correlation per model, bag (and "all") and output
    summary.md                  the side-by-side tables (also printed)
    predictions/<bag>.csv       per frame: stamp, human command, each model's command and dt
    plots/<bag>_outputs.png     predicted vs human commands over time, a panel per action field
    plots/<bag>_<model>_activity.png   the recurrent state (neuron activity) over time, grouped by layer
    saliency/<bag>_<model>.gif (.mp4)  input frames beside their VisualBackProp saliency (see lnn_control.report.media),
                                       for the first --saliency-bags bags

The fields scored are the models' action schema's (the models compared must share one). A constant-mean baseline
(each model's training-set mean, ``PolicyConfig.target_mean``) is scored beside the models,
so a reader sees whether a model beats it. One bad bag among several is reported and skipped unless ``--strict``.

``--live`` (needs rclpy) then plays each bag with :mod:`lnn_control.ros.player` into a real ``drive_node``
process per model, on a private local DDS domain, collects its stamped commands and compares them frame by frame
with the offline replay (``live.json``): frames the node answered, frames it missed (dropped under load), and the
largest and mean difference per output. Equal figures mean the robot's path and the replay agree.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lnn_control.command import CAR, ActionSchema, Command
from lnn_control.compare import command_stream, compare_streams
from lnn_control.data.bags import Bag, BagError, discover_bags
from lnn_control.data.pairing import PairingConfig, pair_frames
from lnn_control.driver import Driver, DriverConfig, driver_params, warn_once
from lnn_control.nn import checkpoint
from lnn_control.nn.policy import Policy
from lnn_control.paths import resolve_model
from lnn_control.replay import Frame, Output, Record, Replay, ReplayError, bag_frames
from lnn_control.report.tables import strict_json
from lnn_control.vision import ImageDecodeError, preprocess

SALIENCY_METHOD = "VisualBackProp (Bojarski et al. 2017) over the conv head's feature maps"


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class Model:
    """A loaded checkpoint and the name the report gives it."""

    name: str
    path: Path
    policy: Policy
    metadata: dict[str, Any]

    @property
    def schema(self) -> ActionSchema:
        """The action the model outputs."""
        return self.policy.config.action

    @property
    def mean(self) -> tuple[float, ...]:
        """The training-set mean of each action field (the constant baseline)."""
        return tuple(float(v) for v in self.policy.config.target_mean)

    def pairing(self) -> PairingConfig | None:
        """The pairing config the model was trained with (from the checkpoint's metadata), if recorded."""
        data = (self.metadata.get("dataset") or {}).get("pairing")
        return PairingConfig.from_dict(data) if isinstance(data, Mapping) else None


def shared_schema(models: Sequence[Model]) -> ActionSchema:
    """The action every model outputs; ``ValueError`` naming them when they differ (they cannot be compared)."""
    schemas = {m.schema for m in models}
    if len(schemas) > 1:
        kinds = ", ".join(f"{m.name}: {m.schema.name} ({', '.join(m.schema.names)})" for m in models)
        raise ValueError(f"the models output different actions ({kinds}); compare models of one action")
    return next(iter(schemas)) if schemas else CAR


def model_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names: the checkpoint stem, or ``folder/stem`` when stems repeat (``runs/a/best`` -> ``a/best``)."""
    stems = [checkpoint.paths(p)[0].with_suffix("").name for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    names = [f"{checkpoint.paths(p)[0].parent.name}/{s}" for p, s in zip(paths, stems, strict=True)]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return unique


def load_models(paths: Sequence[str | Path], names: Sequence[str] | None = None) -> list[Model]:
    """Load checkpoints (CPU, eval mode, each named as :func:`lnn_control.paths.resolve_model` reads it) with their
    names; :class:`~lnn_control.paths.ModelNotFoundError` or :class:`CheckpointError` names a missing or bad file."""
    names = list(names) if names else model_names(paths)
    if len(names) != len(paths):
        raise ValueError(f"{len(names)} names for {len(paths)} models")
    stems = [resolve_model(path) for path in paths]
    return [
        Model(name, stem, checkpoint.load(stem), checkpoint.read_config(stem).get("metadata") or {})
        for name, stem in zip(names, stems, strict=True)
    ]


# --------------------------------------------------------------------------------------------------------------------
# Replay
# --------------------------------------------------------------------------------------------------------------------


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "x"


@dataclass
class BagReplay:
    """One bag replayed through several models: per replayed frame, the human command and every model's command."""

    bag: str
    name: str
    image_topic: str
    command_topic: str
    stamps: np.ndarray
    """(N,) int64 ns of every decoded frame fed to the drivers."""
    index: np.ndarray
    """(N,) position of each frame among the image topic's messages."""
    schema: ActionSchema
    """The action the models output and the human commands are read as."""
    human: np.ndarray
    """(N, F) the action's fields of the command in force; NaN where pairing found none."""
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    """model -> (N, F) the Driver's command, limits applied."""
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    """model -> (N, O) the policy's outputs before limits."""
    dt: dict[str, np.ndarray] = field(default_factory=dict)
    activity: dict[str, np.ndarray] = field(default_factory=dict)
    events: dict[str, list[str]] = field(default_factory=dict)
    undecodable: int = 0
    pairing: dict[str, Any] = field(default_factory=dict)
    saliency: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def scored(self) -> np.ndarray:
        """Mask of the frames with a human command."""
        return ~np.isnan(self.human[:, 0])

    @property
    def times_s(self) -> np.ndarray:
        """Seconds since the first replayed frame."""
        return (self.stamps - self.stamps[0]) / 1e9 if len(self.stamps) else self.stamps.astype(float)


def make_drivers(
    models: Sequence[Model], driver_config: DriverConfig | None = None, warn: Callable[[str], None] | None = None
) -> list[Driver]:
    """A fresh :class:`Driver` per model with the nodes' settings; each model's override warning names it."""
    sink, config = warn or warn_once(), driver_config or DriverConfig()
    return [Driver(m.policy, config, warn=lambda text, n=m.name: sink(f"{n}: {text}")) for m in models]


def replay_bag(
    path: str | Path,
    models: Sequence[Model],
    pairing: PairingConfig | None = None,
    *,
    driver_config: DriverConfig | None = None,
    saliency_frames: int = 0,
    progress: bool = False,
    warn: Callable[[str], None] | None = None,
) -> BagReplay:
    """Replay one bag through a fresh :class:`Driver` per model (one decode per frame for all of them).

    ``driver_config`` (the nodes' settings, default: the models' own timing and crops) applies to every model; the
    warning about values that differ from a model's goes to ``warn`` (default: the Driver's logger), named.
    ``saliency_frames`` > 0 also renders about that many evenly spaced saliency panels per model.
    Raises BagError for a bag that cannot be replayed or has no human command to score against.
    """
    schema = shared_schema(models)
    pairing = with_schema(pairing or PairingConfig(), schema)
    replay = Replay({m.name: d for m, d in zip(models, make_drivers(models, driver_config, warn), strict=True)},
                    activity=True)
    with Bag(path) as bag:
        pairer = pair_frames(bag, pairing, decode=False)
        human_of = {p.index: p.command for p in pairer}
        if not human_of:
            raise BagError(bag.path, "no frame is paired with a human command: " + pairer.report.summary())
        topic = pairer.image_topic
        total = bag.topics[topic].count
        every = max(1, math.ceil(total / saliency_frames)) if saliency_frames > 0 else 0
        frames = bag_frames(bag, topic, pairing.stamp_source, pairing.max_pixels)
        records: list[Record] = []
        panels: dict[str, list[np.ndarray]] = {m.name: [] for m in models}
        with _progress(total, Path(path).name, progress) as bar:
            try:
                for record in replay.run(_counted(frames, bar), human_of):
                    records.append(_slim(record))
                    if every and record.index % every == 0:
                        _add_saliency(record, records[0].stamp_ns, models, replay.drivers, panels)
            except ReplayError as exc:  # a crop that does not fit this bag's frames
                raise BagError(path, str(exc), topic=topic) from exc
    if not records:
        raise BagError(path, "no frame decodes", topic=topic)
    return _bag_replay(path, topic, pairer, models, records, len(replay.undecodable), panels)


def with_schema(pairing: PairingConfig, schema: ActionSchema) -> PairingConfig:
    """``pairing`` reading the human commands as ``schema`` (the models' action)."""
    if pairing.commands.schema == schema:
        return pairing
    return dataclasses.replace(pairing, commands=dataclasses.replace(pairing.commands, action=schema.reference()))


def _short(command: Command) -> str:
    return " ".join(f"{name} {value:+.2f}" for name, value in command.as_dict().items())


def _slim(record: Record) -> Record:
    """The record without its pixels (the replay keeps every record of a bag)."""
    return Record(record.index, record.stamp_ns, np.empty(0, np.uint8), record.human, record.outputs)


def _add_saliency(
    record: Record, first_stamp_ns: int, models: Sequence[Model], drivers: Mapping[str, Driver],
    panels: dict[str, list[np.ndarray]],
) -> None:
    """A VisualBackProp panel per model of ``record``'s frame, appended to ``panels``."""
    from lnn_control.report.media import saliency_panel, visual_backprop

    t = (record.stamp_ns - first_stamp_ns) / 1e9
    hs = f"human {_short(record.human)}" if record.human else "human -"
    for model in models:
        small = preprocess(record.rgb, drivers[model.name].preprocess)
        mask = visual_backprop(model.policy.encoder, torch.from_numpy(small)[None])[0].numpy()
        lines = [f"t {t:6.2f} s  {hs}", f"{model.name}: {_short(record.outputs[model.name].command)}"]
        panels[model.name].append(saliency_panel(small, mask, lines, scale=2))


@contextlib.contextmanager
def _progress(total: int, name: str, shown: bool) -> Iterator[Any]:
    """A tqdm bar over a bag's frames (None when not ``shown``), closed on the way out."""
    if not shown:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, desc=name, unit="frame", leave=False)
    try:
        yield bar
    finally:
        bar.close()


def _counted(frames: Iterator[Frame], bar: Any) -> Iterator[Frame]:
    for frame in frames:
        if bar is not None:
            bar.update(1)
        yield frame


def _bag_replay(
    path: str | Path, topic: str, pairer: Any, models: Sequence[Model], records: Sequence[Record], undecodable: int,
    saliency: Mapping[str, list[np.ndarray]],
) -> BagReplay:
    """The per-frame records of one bag as the arrays of a :class:`BagReplay`."""
    def column(name: str, of: Callable[[Output], Any], dtype: Any) -> np.ndarray:
        return np.asarray([of(r.outputs[name]) for r in records], dtype=dtype)

    names = [m.name for m in models]
    schema = shared_schema(models)
    width = len(schema)
    nan = (math.nan,) * width
    return BagReplay(
        bag=str(path),
        name=Path(path).name,
        image_topic=topic,
        command_topic=pairer.command_topic,
        stamps=np.asarray([r.stamp_ns for r in records], dtype=np.int64),
        index=np.asarray([r.index for r in records], dtype=np.int64),
        schema=schema,
        human=np.asarray([r.human.values if r.human else nan for r in records], dtype=np.float64).reshape(-1, width),
        predictions={n: column(n, lambda o: o.command.values, np.float64).reshape(-1, width) for n in names},
        raw={n: column(n, lambda o: o.step.raw, np.float64).reshape(-1, width) for n in names},
        dt={n: column(n, lambda o: o.step.dt_s, np.float64) for n in names},
        activity={n: np.stack([r.outputs[n].activity for r in records]).astype(np.float32) for n in names},
        events={n: [f"frame {r.index}: {r.outputs[n].step.event}" for r in records if r.outputs[n].step.event]
                for n in names},
        undecodable=undecodable,
        pairing=pairer.report.to_dict(),
        saliency={n: list(saliency.get(n, [])) for n in names},
    )


# --------------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------------


def error_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Frames, MAE, RMSE and Pearson correlation (NaN when either side is constant) of two 1-D arrays."""
    pred, truth = np.asarray(pred, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    n = len(truth)
    if n == 0:
        return {"frames": 0, "mae": math.nan, "rmse": math.nan, "corr": math.nan}
    err = pred - truth
    corr = math.nan
    if n > 1 and np.std(pred) > 1e-12 and np.std(truth) > 1e-12:
        corr = float(np.corrcoef(pred, truth)[0, 1])
    return {
        "frames": int(n),
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(math.sqrt(np.mean(err**2))),
        "corr": corr,
    }


def baselines(models: Sequence[Model]) -> dict[str, tuple[float, ...]]:
    """Constant-mean baselines: one ``baseline (training mean)`` when the models share it, else one per model."""
    means = {m.name: m.mean for m in models}
    if len(set(means.values())) == 1:
        return {"baseline (training mean)": next(iter(means.values()))}
    return {f"baseline (mean of {name})": mean for name, mean in means.items()}


def score(replays: Sequence[BagReplay], models: Sequence[Model]) -> list[dict[str, Any]]:
    """Metric rows (model, bag, output, frames, mae, rmse, corr) per bag and over all bags ("all")."""
    rows: list[dict[str, Any]] = []
    fields = shared_schema(models).names
    bases = baselines(models)

    def predictions(replay: BagReplay, name: str) -> np.ndarray:
        if name in bases:
            return np.tile(np.asarray(bases[name], dtype=np.float64), (len(replay.stamps), 1))
        return replay.predictions[name]

    for name in [m.name for m in models] + list(bases):
        for o, output in enumerate(fields):
            pooled_pred, pooled_truth = [], []
            for replay in replays:
                mask = replay.scored
                pred, truth = predictions(replay, name)[mask, o], replay.human[mask, o]
                pooled_pred.append(pred)
                pooled_truth.append(truth)
                rows.append({"model": name, "bag": replay.name, "output": output, **error_metrics(pred, truth)})
            if len(replays) > 1:
                rows.append(
                    {"model": name, "bag": "all", "output": output,
                     **error_metrics(np.concatenate(pooled_pred), np.concatenate(pooled_truth))}
                )
    return rows


def side_by_side(
    rows: Sequence[Mapping[str, Any]], bag: str, fields: Sequence[str]
) -> tuple[list[str], list[list[object]]]:
    """One table for ``bag`` (or "all"): a row per model, MAE / RMSE / corr per output (``fields``) side by side."""
    header = ["model", "frames"]
    for output in fields:
        header += [f"{output} MAE", f"{output} RMSE", f"{output} corr"]
    table: dict[str, list[object]] = {}
    for row in rows:
        if row["bag"] != bag:
            continue
        line = table.setdefault(row["model"], [row["model"], row["frames"]] + [math.nan] * (3 * len(fields)))
        o = list(fields).index(row["output"])
        line[2 + 3 * o : 5 + 3 * o] = [row["mae"], row["rmse"], row["corr"]]
    return header, list(table.values())


# --------------------------------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class EvalResult:
    """What :func:`evaluate_bags` wrote and found."""

    out: Path
    rows: list[dict[str, Any]]
    replays: list[BagReplay]
    skipped: list[dict[str, str]]
    text: str


def evaluate_bags(
    models: Sequence[Model],
    bags: Sequence[str | Path],
    out: str | Path,
    *,
    pairing: PairingConfig | None = None,
    driver_config: DriverConfig | None = None,
    strict: bool = False,
    plots: bool = True,
    saliency_frames: int = 120,
    saliency_bags: int = 1,
    progress: bool = False,
) -> EvalResult:
    """Replay ``bags`` through ``models`` and write the report folder ``out`` (see the module doc).

    ``pairing`` defaults to the first model's training pairing. Saliency videos are made for the first
    ``saliency_bags`` bags (about ``saliency_frames`` frames each). A bag that cannot be replayed is reported in the
    result's ``skipped`` (with ``strict``, its BagError is raised instead); no usable bag at all raises BagError.
    """
    from lnn_control.report.tables import markdown_table, text_table

    out = Path(out)
    schema = shared_schema(models)
    if pairing is None:
        pairing = next((p for p in (m.pairing() for m in models) if p is not None), PairingConfig())
    pairing = with_schema(pairing, schema)
    driver_config = driver_config or DriverConfig()
    warn = warn_once(lambda text: print(f"eval: warning: {text}", file=sys.stderr))
    replays: list[BagReplay] = []
    skipped: list[dict[str, str]] = []
    for bag in discover_bags(bags):
        try:
            with_saliency = plots and len(replays) < saliency_bags
            replays.append(
                replay_bag(bag, models, pairing, driver_config=driver_config,
                           saliency_frames=saliency_frames if with_saliency else 0, progress=progress, warn=warn)
            )
        except (BagError, ImageDecodeError) as exc:
            if strict:
                raise
            print(f"eval: skipping bag: {exc}", file=sys.stderr)
            skipped.append({"bag": str(bag), "error": str(exc)})
    if not replays:
        raise BagError(", ".join(str(b) for b in bags), "no bag could be replayed: " +
                       "; ".join(s["error"] for s in skipped))
    names: dict[str, int] = {}
    for replay in replays:  # two bags with one folder name get distinct file names
        names[replay.name] = names.get(replay.name, 0) + 1
        if names[replay.name] > 1:
            replay.name = f"{replay.name}_{names[replay.name]}"
    rows = score(replays, models)
    out.mkdir(parents=True, exist_ok=True)
    bases = baselines(models)

    # tables
    parts = []
    scopes = (["all"] if len(replays) > 1 else []) + [r.name for r in replays]
    for scope in scopes:
        header, table = side_by_side(rows, scope, schema.names)
        parts.append((scope, header, table))
    text = "\n\n".join(
        (f"all {len(replays)} bags" if scope == "all" else f"bag {scope}") + "\n" + text_table(h, t)
        for scope, h, t in parts
    )
    markdown = "\n\n".join(
        (f"### All {len(replays)} bags" if scope == "all" else f"### {scope}") + "\n\n" + markdown_table(h, t)
        for scope, h, t in parts
    )
    (out / "summary.md").write_text(
        "# Offline replay evaluation\n\nCommands from `Driver.observe` on every frame, scored on frames with a human "
        f"command in force (pairing tolerance {pairing.tolerance_s:g} s, {pairing.stamp_source} stamps). "
        "Baseline: the training set's mean, constant.\n\n" + markdown + "\n", encoding="utf-8"
    )
    with (out / "metrics.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["model", "bag", "output", "frames", "mae", "rmse", "corr"])
        writer.writeheader()
        writer.writerows(rows)
    document = {
        "models": {
            m.name: {
                "path": str(m.path),
                "core": m.policy.config.core,
                "parameters": m.policy.parameter_counts(),
                "target_mean": list(m.policy.config.target_mean),
                "timing": driver_config.timing(m.policy.config.timing).to_dict(),
                "preprocess": asdict(driver_config.preprocess(m.policy.config.preprocess)),
            }
            for m in models
        },
        "action": schema.to_dict(),
        "driver_config": driver_params(driver_config),
        "baselines": {k: list(v) for k, v in bases.items()},
        "pairing": pairing.to_dict(),
        "bags": [
            {
                "bag": r.bag, "name": r.name, "image_topic": r.image_topic, "command_topic": r.command_topic,
                "frames_replayed": int(len(r.stamps)), "frames_scored": int(r.scored.sum()),
                "undecodable": r.undecodable, "pairing": r.pairing,
                "events": {k: v[:20] for k, v in r.events.items()},
            }
            for r in replays
        ],
        "skipped": skipped,
        "saliency": SALIENCY_METHOD,
        "metrics": rows,
    }
    (out / "metrics.json").write_text(json.dumps(strict_json(document), indent=2) + "\n", encoding="utf-8")
    for replay in replays:
        _write_predictions(out / "predictions" / f"{_safe(replay.name)}.csv", replay, models)
    if plots:
        for replay in replays:
            _draw(out, replay, models, bases)
    return EvalResult(out, rows, replays, skipped, text)


def _write_predictions(path: Path, replay: BagReplay, models: Sequence[Model]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fields = replay.schema.names
    header = ["index", "stamp_ns"] + [f"human_{f}" for f in fields]
    for m in models:
        header += [f"{m.name}_{f}" for f in fields] + [f"{m.name}_dt_s"]
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for i in range(len(replay.stamps)):
            row: list[object] = [int(replay.index[i]), int(replay.stamps[i])]
            row += ["" if math.isnan(v) else f"{v:.6g}" for v in replay.human[i]]
            for m in models:
                row += [f"{v:.6g}" for v in replay.predictions[m.name][i]] + [f"{replay.dt[m.name][i]:.6g}"]
            writer.writerow(row)


def _draw(out: Path, replay: BagReplay, models: Sequence[Model], bases: Mapping[str, tuple[float, ...]]) -> None:
    from lnn_control.report import media, plots

    stem = _safe(replay.name)
    times = replay.times_s
    plots.plot_outputs(
        out / "plots" / f"{stem}_outputs.png", times, replay.human, replay.predictions, bases, replay.schema,
        title=f"{replay.name}: {replay.image_topic} -> commands vs {replay.command_topic}",
    )
    for m in models:
        tag = f"{stem}_{_safe(m.name)}"
        groups = plots.neuron_groups(m.policy)
        if groups and replay.activity[m.name].shape[1]:
            plots.plot_activity(
                out / "plots" / f"{tag}_activity.png", times, replay.activity[m.name], groups,
                replay.predictions[m.name][:, 0], title=f"{m.name} ({m.policy.config.core}) on {replay.name}",
            )
        panels = replay.saliency.get(m.name) or []
        if panels:
            period = np.median(np.diff(replay.stamps)) / 1e9 if len(replay.stamps) > 1 else 0.05
            every = max(1, math.ceil(len(replay.stamps) / max(1, len(panels))))
            fps = 1.0 / max(1e-3, period * every)
            media.write_gif(panels, out / "saliency" / f"{tag}.gif", fps)
            media.write_video(panels, out / "saliency" / f"{tag}.mp4", fps)


# --------------------------------------------------------------------------------------------------------------------
# Live: the same bags through running nodes
# --------------------------------------------------------------------------------------------------------------------


def compare_live(replay: BagReplay, model: str, live: Mapping[int, Sequence[float]]) -> dict[str, Any]:
    """A live run's commands against the offline replay of the same model on the same bag, matched by stamp."""
    fields = replay.schema.names
    offline = command_stream(zip(replay.stamps.tolist(), replay.predictions[model].tolist(), strict=True),
                             replay.schema)
    diff = compare_streams(offline, command_stream(live.items(), replay.schema), fields=fields)
    missing = set(diff.only_a)
    stamps = replay.stamps.tolist()
    frames = [i for i, s in enumerate(stamps) if s in missing]
    row: dict[str, Any] = {"model": model, "bag": replay.name, "frames": len(stamps),
                           "live_commands": len(stamps) - len(frames), "missing": len(frames), "missing_frames": frames}
    for output in fields:
        row[f"max_abs_{output}"] = diff.fields[output].max_abs
        row[f"mean_abs_{output}"] = diff.fields[output].mean_abs
    return row


def live_evaluation(
    models: Sequence[Model], replays: Sequence[BagReplay], out: Path, *, driver_config: DriverConfig,
    rate: float = 1.0,
) -> str:
    """Play every replayed bag into a ``drive_node`` per model; write ``live.json``; the comparison table."""
    from lnn_control.report.tables import text_table
    from lnn_control.ros.player import live_commands  # rclpy: only here

    params = driver_params(driver_config)
    rows = []
    for model in models:
        for replay in replays:
            run = live_commands(replay.bag, model.path, rate=rate, driver_params=params, schema=model.schema)
            rows.append(compare_live(replay, model.name, run.commands))
            if not run.commands:
                tail = "\n".join(run.node_log.splitlines()[-15:])
                print(f"eval --live: drive_node published no command for {replay.name}; its log ends:\n{tail}",
                      file=sys.stderr)
            elif run.missing:
                shown = ", ".join(str(s) for s in run.missing[:10]) + (", ..." if len(run.missing) > 10 else "")
                print(f"eval --live: drive_node answered {run.frames_played - len(run.missing)} of "
                      f"{run.frames_played} frames of {replay.name} before the timeout; not answered: {shown}",
                      file=sys.stderr)
    (out / "live.json").write_text(json.dumps(strict_json(rows), indent=2) + "\n", encoding="utf-8")
    header = ["model", "bag", "frames", "live_commands", "missing"]
    for output in shared_schema(models).names:
        header += [f"max_abs_{output}", f"mean_abs_{output}"]
    return text_table(header, [[r[h] for h in header] for r in rows], digits=6)
