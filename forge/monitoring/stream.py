"""One pass over a current-data file into `Bins` and a uniform row sample: in this process with Arrow for local
files (no cluster to start, memory bounded by the few batches read ahead), through Ray Data for object-store URIs."""

from __future__ import annotations

import concurrent.futures
import os

import numpy as np
import pandas as pd
import pyarrow as pa

from forge.data.readahead import ReadAhead
from forge.features.bins import Bins

SAMPLE_ROWS = 20_000
BATCH_ROWS = 262_144


class Reservoir:
    """A uniform sample of at most `size` rows of a stream: the rows with the smallest random keys."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.rng = size, np.random.default_rng(seed)
        self.keys = np.empty(0)
        self.tables: list[pa.Table] = []

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        keys = self.rng.random(batch.num_rows)
        if len(self.keys) >= self.size:
            keep = np.flatnonzero(keys < self.keys.max())
            if not len(keep):
                return
            batch, keys = batch.take(pa.array(keep)), keys[keep]
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        all_keys = np.r_[self.keys, keys]
        merged = pa.concat_tables([*self.tables, table], promote_options="permissive")
        if len(all_keys) > self.size:
            best = np.argpartition(all_keys, self.size - 1)[: self.size]
            merged, all_keys = merged.take(pa.array(best)), all_keys[best]
        self.keys, self.tables = all_keys, [merged]

    def frame(self) -> pd.DataFrame:
        return pa.concat_tables(self.tables).to_pandas() if self.tables else pd.DataFrame()


def read_ahead(path: str | None) -> ReadAhead | None:
    """A local Parquet file's batches, read ahead (forge/data/readahead.py); None for anything else, which the
    pass reads itself (a CSV needs the reference's types, known only once the champion is resolved)."""
    from forge.data.formats import format_of

    if not path or "://" in path or not os.path.isfile(path) or format_of(path) != "parquet":
        return None

    def read():
        import pyarrow.dataset as pads

        return pads.dataset(path, format="parquet").to_batches(batch_size=BATCH_ROWS)

    return ReadAhead(read)


def _arrow_dataset(path: str, fmt: str, ref: Bins):
    import pyarrow.csv as pacsv
    import pyarrow.dataset as pads

    if fmt != "csv":
        return pads.dataset(path, format=fmt)
    # Typed from the reference, not guessed per block: a column that looked like ints in the first block and
    # held a float later failed the read.
    types = {c: pa.float64() for c in ref.numeric} | {c: pa.string() for c in ref.categorical}
    options = pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
    return pads.dataset(path, format=pads.CsvFileFormat(convert_options=options))


def bin_local(path: str, fmt: str, ref: Bins, extra: list[str], sample_rows: int = SAMPLE_ROWS,
              seed: int = 0, ahead: ReadAhead | None = None) -> tuple[Bins, pd.DataFrame]:
    """(the file binned on the reference's edges, a uniform sample of its rows) from one Arrow pass.

    Args:
        ahead: the file's batches, already being read (`read_ahead(path)`).
    """
    wanted = list(dict.fromkeys([*ref.numeric, *ref.categorical, *extra]))
    if ahead is not None:
        batches = ahead.batches(wanted)
    else:
        dataset = _arrow_dataset(path, fmt, ref)
        batches = dataset.to_batches(columns=[c for c in wanted if c in dataset.schema.names], batch_size=BATCH_ROWS)
    cur, sample = ref.empty_like(), Reservoir(sample_rows, seed)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 2, thread_name_prefix="forge-bins") as pool:
        for batch in batches:
            cur.add(batch, pool)  # each column binned once, by one thread: no shared counts
            sample.add(batch)
    return cur, sample.frame()


def _bin_batch(batch: pa.Table, ref_json: str, sample_frac: float, seed: int) -> dict:
    """Ray Data UDF: one batch -> its bins (as JSON) and its share of the row sample.

    A task, not an actor: an actor would hold a CPU for the whole pass, and beside a Serve replica on a 2-CPU
    machine the pass's other tasks then waited for a CPU for ever.
    """
    cur = Bins.from_json(ref_json).empty_like()
    cur.add(batch)
    keep = np.random.default_rng(seed + batch.num_rows).random(batch.num_rows) < sample_frac
    rows = batch.filter(pa.array(keep)).to_pandas().to_json(orient="split", index=False)
    return {"bins": [cur.to_json()], "sample": [rows]}


def bin_ray(path: str, ref: Bins, sample_rows: int = SAMPLE_ROWS, seed: int = 0) -> tuple[Bins, pd.DataFrame]:
    """As `bin_local`, streamed through Ray Data (remote URIs: the read is spread over the cluster)."""
    import io

    from forge.monitoring.window import read_current

    ds = read_current(path)
    frac = min(1.0, sample_rows / max(ds.count(), 1) * 1.2)
    parts = ds.map_batches(_bin_batch, fn_kwargs={"ref_json": ref.to_json(), "sample_frac": frac, "seed": seed},
                           batch_format="pyarrow").take_all()
    cur = ref.empty_like()
    for p in parts:
        cur.merge(Bins.from_json(p["bins"]))
    frames = [pd.read_json(io.StringIO(p["sample"]), orient="split") for p in parts]
    sample = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return cur, sample.sample(min(sample_rows, len(sample)), random_state=seed) if len(sample) else sample
