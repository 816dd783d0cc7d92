"""Corpus-scale inference with Ray Data: the bundle loaded once per actor, batches mapped across a cluster.

    import ray, edgekd.ray
    ds = ray.data.read_csv("s3://bucket/reviews/")             # any Ray Dataset with a text column
    out = edgekd.ray.classify_dataset(ds, "bundles/sst2", text_column="review", speed=0.5)
    out.write_parquet("s3://bucket/labels/")

Each actor holds one `runtime.EdgeModel` (torch-free); Ray schedules batches onto the actors, so a
corpus larger than one machine streams through every node's cores. The output rows are the input rows
with `label`, `probability`, `exit_layer` and `uncertainty` columns added (and `prob_<label>` per class).
"""

from __future__ import annotations

import json
import os

import numpy as np


class _Classifier:
    """A Ray actor: loads the bundle once, classifies batches (dicts of numpy columns)."""

    def __init__(self, bundle: str, speed: float | None, text_column: str, batch_size: int, threads: int | None,
                 text_pair_column: str | None = None):
        import runtime

        self.model = runtime.load(bundle, threads=threads)
        self.speed = speed
        self.text_column = text_column
        self.text_pair_column = text_pair_column
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        texts = [str(t) for t in batch[self.text_column]]
        if self.text_pair_column is not None:
            texts = list(zip(texts, (str(t) for t in batch[self.text_pair_column])))
        results = self.model.classify(texts, speed=self.speed, batch_size=self.batch_size)
        out = dict(batch)
        problem = self.model.problem
        if problem == "single-label":
            out["label"] = np.array([r.label for r in results])
            out["probability"] = np.array([r.probs[r.label] for r in results], dtype=np.float32)
        elif problem == "multi-label":
            out["labels"] = np.array([",".join(r.labels) for r in results])  # comma-separated, as training files
        elif problem == "token-classification":  # each text's entities as a JSON list, as predict --file writes
            out["entities"] = np.array([json.dumps(r.entities, ensure_ascii=False) for r in results])
        else:
            out["score"] = np.array([r.score for r in results], dtype=np.float32)
        out["exit_layer"] = np.array([r.exit_layer for r in results], dtype=np.int64)
        out["uncertainty"] = np.array([r.uncertainty for r in results], dtype=np.float32)
        if problem in ("single-label", "multi-label"):
            for name in self.model.labels:
                out[f"prob_{name}"] = np.array([r.probs[name] for r in results], dtype=np.float32)
        return out


def classify_dataset(ds, bundle: str | os.PathLike, *, text_column: str = "text", speed: float | None = None,
                     actors: int | tuple[int, int] = 1, batch_size: int = 256, model_batch_size: int = 32,
                     threads_per_actor: int | None = 1, text_pair_column: str | None = None):
    """Add predictions to every row of the Ray Dataset `ds` (lazy: Ray runs it when consumed).

    A bundle of text pairs reads each row's (text_column, text_pair_column).

    `actors`: how many copies of the model (an int, or (min, max) to autoscale); each gets
    `threads_per_actor` onnxruntime threads and one CPU from Ray. `batch_size` rows go to an actor at
    once; the model runs them `model_batch_size` at a time, sorted by length, exits per row.
    """
    import runtime

    bundle = os.fspath(bundle)
    manifest = runtime.read_manifest(bundle)  # a bad path fails here, on the driver, with edgekd's message
    if manifest.text_pair and text_pair_column is None:
        raise runtime.EdgeKDError(f"{bundle} classifies text pairs: give text_pair_column= (and text_column=)")
    if text_pair_column is not None and not manifest.text_pair:
        raise runtime.EdgeKDError(f"{bundle} classifies single texts; text_pair_column= is for a bundle of pairs")
    return ds.map_batches(_Classifier, fn_constructor_args=(bundle, speed, text_column, model_batch_size,
                                                            threads_per_actor, text_pair_column),
                          batch_size=batch_size, batch_format="numpy", concurrency=actors,
                          num_cpus=threads_per_actor or 1)
