"""Streamed mini-batches from the impression table (Parquet), with a time split by ``day``.

Nothing here loads a whole split: record batches are read with ``pyarrow.dataset``
(only the needed columns, filtered by day), shuffled inside a bounded buffer, cut into
mini-batches, turned into tensors with :func:`features.tensors.build_inputs` (the same
function the gateway uses) and prefetched on a background thread.

With ``world > 1`` (DDP) every rank reads the same deterministic stream and keeps
mini-batch ``k`` iff ``k % world == rank``, only for complete rounds, so all ranks take the
same number of steps and together see exactly what one process with ``world`` times the
batch size would see.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import torch

from features.spec import FeatureSpec
from features.tensors import build_inputs

LABEL_COLUMNS = ("click", "order", "global_click", "global_order", "p_click", "p_ctcvr", "user_id")

Batch = tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]


def impression_files(data_dir: str | Path) -> list[Path]:
    """``DIR/impressions.parquet``, ``DIR/impressions/*.parquet``, or DIR itself as a file."""
    path = Path(data_dir)
    if path.is_file():
        return [path]
    single = path / "impressions.parquet"
    if single.is_file():
        return [single]
    parts = sorted((path / "impressions").glob("*.parquet"))
    if parts:
        return parts
    raise FileNotFoundError(f"no impression table under {path} (expected impressions.parquet or impressions/*.parquet)")


def open_dataset(data_dir: str | Path) -> ds.Dataset:
    return ds.dataset([str(p) for p in impression_files(data_dir)], format="parquet")


def available_days(dataset: ds.Dataset) -> list[int]:
    days: set[int] = set()
    for batch in dataset.to_batches(columns=["day"], batch_size=1 << 20):
        days.update(pc.unique(batch.column(0)).to_pylist())
    return sorted(d for d in days if d is not None)


@dataclass(frozen=True)
class TimeSplit:
    train_days: tuple[int, ...]
    valid_days: tuple[int, ...]
    test_days: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"train": list(self.train_days), "valid": list(self.valid_days), "test": list(self.test_days)}


def time_split(days: Sequence[int], valid_days: int = 1, test_days: int = 1) -> TimeSplit:
    """Train on the earliest days, validate (early stopping) on the next, test on the last."""
    days = sorted(days)
    if len(days) < 2:
        raise ValueError(f"a time split needs at least 2 days, the table has {len(days)}")
    test = tuple(days[-test_days:])
    rest = days[:-test_days]
    if len(rest) > valid_days:
        return TimeSplit(tuple(rest[:-valid_days]), tuple(rest[-valid_days:]), test)
    # too few days for a separate validation day: validate on the last training day
    return TimeSplit(tuple(rest), tuple(rest[-1:]), test)


def build_labels(batch: pa.Table | pa.RecordBatch, global_labels: str = "table") -> dict[str, torch.Tensor]:
    """Label tensors (float32 [B]) + raw user ids (GAUC) + the simulator's true probabilities.

    ``ctcvr`` = click * order. Global labels are made consistent (scenario labels imply
    global labels); missing/null global columns or ``global_labels="scenario"`` give y_g = y.
    """
    names = set(batch.schema.names)

    def col(name: str, fill: float) -> np.ndarray:
        if name not in names:
            return np.full(batch.num_rows, fill, dtype=np.float32)
        arr = batch.column(name)
        return np.array(pc.fill_null(arr.cast(pa.float32()), fill).to_numpy(zero_copy_only=False), dtype=np.float32)

    click = col("click", 0.0)
    ctcvr = click * col("order", 0.0)
    if global_labels == "scenario" or "global_click" not in names:
        g_click, g_ctcvr = click, ctcvr
    else:
        g_click = np.maximum(col("global_click", 0.0), click)
        g_ctcvr = np.maximum(g_click * col("global_order", 0.0), ctcvr)
    user = batch.column("user_id") if "user_id" in names else pa.array(np.zeros(batch.num_rows, dtype=np.int64))
    user_ids = np.array(pc.fill_null(user.cast(pa.int64()), 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    return {
        "click": torch.from_numpy(click),
        "ctcvr": torch.from_numpy(ctcvr),
        "global_click": torch.from_numpy(np.ascontiguousarray(g_click)),
        "global_ctcvr": torch.from_numpy(np.ascontiguousarray(g_ctcvr)),
        "p_click": torch.from_numpy(col("p_click", np.nan)),
        "p_ctcvr": torch.from_numpy(col("p_ctcvr", np.nan)),
        "user_id": torch.from_numpy(user_ids),
    }


def _prefetch(source: Iterator[Any], depth: int) -> Iterator[Any]:
    """Run ``source`` on a background thread, ``depth`` items ahead."""
    if depth <= 0:
        yield from source
        return
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in source:
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(done)
        except BaseException as exc:  # re-raised in the consumer
            items.put(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


class BatchStream:
    """Mini-batches ``(inputs, labels)`` of the rows whose ``day`` is in ``days``."""

    def __init__(self, data_dir: str | Path, spec: FeatureSpec, days: Sequence[int], batch_size: int, *,
                 shuffle: bool = False, seed: int = 0, shuffle_buffer: int = 100_000, rank: int = 0,
                 world: int = 1, drop_last: bool = False, sample_fraction: float = 1.0,
                 global_labels: str = "table", prefetch: int = 2, read_batch_rows: int = 32_768):
        self.dataset = open_dataset(data_dir)
        self.spec = spec
        self.days = tuple(int(d) for d in days)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.shuffle_buffer = max(shuffle_buffer, batch_size)
        self.rank = rank
        self.world = world
        self.drop_last = drop_last or world > 1
        self.sample_fraction = sample_fraction
        self.global_labels = global_labels
        self.prefetch = prefetch
        self.read_batch_rows = read_batch_rows
        present = set(self.dataset.schema.names)
        wanted = list(dict.fromkeys(spec.input_columns + LABEL_COLUMNS + ("day",)))
        self.columns = [c for c in wanted if c in present]
        self._filter = pc.field("day").isin(list(self.days))

    def count_rows(self) -> int:
        """Rows of these days (before ``sample_fraction``)."""
        return int(self.dataset.count_rows(filter=self._filter))

    def _record_batches(self) -> Iterator[pa.Table]:
        for i, rb in enumerate(self.dataset.to_batches(columns=self.columns, filter=self._filter,
                                                        batch_size=self.read_batch_rows)):
            table = pa.Table.from_batches([rb])
            if self.sample_fraction < 1.0:
                keep = np.random.default_rng([self.seed, 7919, i]).random(table.num_rows) < self.sample_fraction
                table = table.filter(pa.array(keep))
            if table.num_rows:
                yield table

    def _ordered_tables(self, epoch: int) -> Iterator[pa.Table]:
        """The epoch's rows in their final order: buffers of ``shuffle_buffer`` rows, each
        permuted (seeded by seed and epoch). The order does not depend on the batch size."""
        if not self.shuffle:
            yield from self._record_batches()
            return
        rng = np.random.default_rng([self.seed, epoch])
        pending: list[pa.Table] = []
        pending_rows = 0
        for table in self._record_batches():
            pending.append(table)
            pending_rows += table.num_rows
            if pending_rows >= self.shuffle_buffer:
                buffer = pa.concat_tables(pending).combine_chunks()
                yield buffer.take(pa.array(rng.permutation(buffer.num_rows)))
                pending, pending_rows = [], 0
        if pending:
            buffer = pa.concat_tables(pending).combine_chunks()
            yield buffer.take(pa.array(rng.permutation(buffer.num_rows)))

    def _row_chunks(self, epoch: int) -> Iterator[pa.Table]:
        """Consecutive tables of ``batch_size`` rows (the last one may be short)."""
        carry: pa.Table | None = None
        for table in self._ordered_tables(epoch):
            if carry is not None and carry.num_rows:
                table = pa.concat_tables([carry, table]).combine_chunks()
            full = table.num_rows // self.batch_size * self.batch_size
            for start in range(0, full, self.batch_size):
                yield table.slice(start, self.batch_size)
            carry = table.slice(full)
        if carry is not None and carry.num_rows:
            yield carry

    def _my_chunks(self, epoch: int) -> Iterator[pa.Table]:
        group: list[pa.Table] = []
        for chunk in self._row_chunks(epoch):
            if chunk.num_rows < self.batch_size and self.drop_last:
                continue
            group.append(chunk)
            if len(group) == self.world:
                yield group[self.rank]
                group = []
        if group and not self.drop_last:  # only possible with world == 1
            yield group[0]

    def _tensors(self, epoch: int) -> Iterator[Batch]:
        for chunk in self._my_chunks(epoch):
            yield build_inputs(self.spec, chunk), build_labels(chunk, self.global_labels)

    def epoch(self, epoch: int = 0) -> Iterator[Batch]:
        return _prefetch(self._tensors(epoch), self.prefetch)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)

    def estimated_steps(self) -> int:
        rows = self.count_rows() * self.sample_fraction
        if self.drop_last:
            return int(rows // (self.batch_size * self.world))
        return int(np.ceil(rows / self.batch_size))
