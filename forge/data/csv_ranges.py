"""CSV read in byte ranges: one big file is read by many Ray tasks at once.

Ray Data's CSV reader gives each file one task, so a single 5 GB file is parsed
on one core while the others wait. Here each task owns the lines that begin in
its byte range (it reads on past its end to finish its last line), as Dask and
Spark split text files. Like pyarrow's own default, this assumes no newline
inside a quoted value; a file that has one gets that row quarantined as a
malformed line, never dropped. A compressed file is one range, decompressed as
it streams.

Malformed lines travel in the data itself, as a block of their own with the
single column MALFORMED (one JSON record a line): a task on another node has no
way to write to the driver's disk, and nothing may assume one disk.
"""

from __future__ import annotations

import csv
import json
from functools import partial

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from forge.data.rows import MALFORMED

_MIN_RANGE = 4 << 20
_MAX_RANGE = 32 << 20
_TAIL = 1 << 20  # read on past the range end in steps of this, to finish its last line
_COMPRESSED = (".gz", ".bz2", ".zst", ".lz4", ".snappy", ".br", ".zip")


def splittable(files: list[str]) -> bool:
    """Byte ranges need plain text; a compressed file is read whole (by Ray's CSV reader)."""
    return not any(f.lower().endswith(_COMPRESSED) for f in files)


class CSVRanges(Datasource):
    """Every file cut into ranges of about size / (2 x CPUs), 4 to 32 MiB each.

    32 MiB bounds a task's memory whatever the file's size (64 MiB ranges were a
    tenth faster on 5M rows but took a quarter more memory).

    Args:
        files: paths on fs, each with a header line.
        malformed_path: where the tasks append malformed lines (JSON lines), for the quarantine.
    """

    def __init__(self, files: list[str], fs: pafs.FileSystem, keep_malformed: bool, cpus: int = 2):
        self.fs = fs
        self.files = [(f, fs.get_file_info(f).size) for f in files]
        self.keep_malformed = keep_malformed
        total = sum(size for _, size in self.files)
        self.range_bytes = int(min(_MAX_RANGE, max(_MIN_RANGE, total / (2 * max(cpus, 1)))))

    def ranges(self):
        """(path, start, end) of every range, file by file; an empty file has none."""
        for path, size in self.files:
            if not splittable([path]):
                yield path, 0, size  # a compressed stream has no byte offsets to cut at
                continue
            for start in range(0, size, self.range_bytes):
                yield path, start, min(size, start + self.range_bytes)

    def num_ranges(self) -> int:
        return sum(1 for _ in self.ranges())

    def read_here(self):
        """Every range's table, read in this process (the same code the Ray tasks run)."""
        columns = {}
        for path, start, end in self.ranges():
            if path not in columns:
                columns[path] = header(self.fs, path)
            # This process has the machine's cores to itself here (a Ray task has one): pyarrow parses in threads.
            yield from _read_range(self.fs, path, start, end, columns[path], self.keep_malformed, threads=True)

    def estimate_inmemory_data_size(self) -> int:
        return sum(size for _, size in self.files)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
        tasks, columns = [], {}
        for path, start, end in self.ranges():
            if path not in columns:
                columns[path] = header(self.fs, path)
            meta = BlockMetadata(num_rows=None, size_bytes=end - start, exec_stats=None, input_files=(path,))
            read = partial(_read_range, self.fs, path, start, end, columns[path], self.keep_malformed)
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def header(fs: pafs.FileSystem, path: str) -> list[str]:
    """The column names on a CSV file's first line."""
    with _open(fs, path) as f:
        head = f.read(_TAIL)
        while b"\n" not in head and (more := f.read(_TAIL)):
            head += more
    return next(csv.reader([head.split(b"\n", 1)[0].rstrip(b"\r").decode()]))


def _open(fs, path: str):
    return fs.open_input_file(path) if splittable([path]) else fs.open_input_stream(path, compression="detect")


def _read_range(fs, path: str, start: int, end: int, columns: list[str], keep_malformed: bool,
                threads: bool = False):
    """The lines that begin in [start, end) as a table of strings (empty fields null), then, if any, the
    malformed ones as a block of MALFORMED records."""
    if not splittable([path]):
        with _open(fs, path) as f:
            data = f.read()
        return _parse(data, 0, path, columns, keep_malformed, threads)
    at = max(start - 1, 0)  # from the byte before: a line begins where the previous one ended
    with fs.open_input_file(path) as f:
        f.seek(at)
        data = f.read(end - at)
        while not data.endswith(b"\n") and (more := f.read(_TAIL)):
            cut = more.find(b"\n")
            data += more if cut < 0 else more[: cut + 1]
            if cut >= 0:
                break
    # Skip the line that began before the range (in range 0: the header).
    first = data.find(b"\n") + 1
    if first == 0 or at + first >= end:
        return [pa.table({c: pa.array([], pa.string()) for c in columns})]
    return _parse(data[first:], at + first, path, columns, keep_malformed, threads)


def _parse(data: bytes, offset: int, path: str, columns: list[str], keep_malformed: bool,
           threads: bool = False) -> list[pa.Table]:
    """CSV text (no header) that begins at byte offset of path, as a table of strings [+ a MALFORMED block]."""
    if offset == 0:  # the file's start: skip its header line
        data = data[data.find(b"\n") + 1:] if b"\n" in data else b""
        offset = None  # line numbers count from the header
    records: list[dict] = []
    invalid: dict[str, tuple[str, int]] = {}
    handler = MalformedLines(records if keep_malformed else None, path, offset or 0, header=offset is None,
                             invalid=invalid)
    try:  # pyarrow checks UTF-8 as it reads: a check of the whole range first cost 0.1 s per 150 MB
        table = _read_strings(data, columns, handler, threads)
    except pa.ArrowInvalid:  # bad bytes in a field, or on a malformed line (the handler never sees its text)
        records.clear()
        data, found = _without_invalid_utf8(data)
        invalid.update(found)  # the handler holds this dict: it reports the marked lines as malformed
        table = _read_strings(data, columns, handler, threads)
    if threads and records:  # pyarrow numbers no row it parsed in threads: read again in order, for the numbers
        records.clear()
        table = _read_strings(data, columns, handler, False)
    if not records:
        return [table]
    return [table, pa.table({MALFORMED: pa.array([json.dumps(r) for r in records], pa.string())})]


def _read_strings(data: bytes, columns: list[str], handler, threads: bool) -> pa.Table:
    return pacsv.read_csv(
        pa.py_buffer(data),
        read_options=pacsv.ReadOptions(column_names=columns, use_threads=threads),
        parse_options=pacsv.ParseOptions(invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns}, strings_can_be_null=True),
    )


def _without_invalid_utf8(data: bytes) -> tuple[bytes, dict[str, tuple[str, int]]]:
    """Lines that are not UTF-8 swapped for a one-field marker that pyarrow reports as malformed (a string column
    of bad bytes failed the whole read task); {marker: (the line, bad bytes replaced; where they began)}."""
    try:
        data.decode("utf-8")
        return data, {}
    except UnicodeDecodeError:
        pass
    lines, invalid = data.split(b"\n"), {}
    for i, line in enumerate(lines):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            marker = f"__forge_invalid_utf8_{i}__"
            invalid[marker] = (line.decode("utf-8", errors="replace"), e.start)
            lines[i] = marker.encode()
    return b"\n".join(lines), invalid


def head(fs: pafs.FileSystem, path: str, rows: int) -> pa.Table:
    """The first rows of a CSV file, read here (no Ray task): enough to infer a schema from."""
    if not splittable([path]):
        with _open(fs, path) as f:
            data = f.read(_MIN_RANGE)
        data = data[: data.rfind(b"\n") + 1]
        return _parse(data, 0, path, header(fs, path), False)[0].slice(0, rows)
    return _read_range(fs, path, 0, _MIN_RANGE, header(fs, path), False)[0].slice(0, rows)


class MalformedLines:
    """pyarrow's invalid_row_handler: records a malformed line, then skips it; nothing is dropped silently.

    The line number pyarrow gives counts from offset, the byte where the parsed
    text began in file; with header, the text began after the header line.
    """

    def __init__(self, records: list | None, file: str | None, offset: int, header: bool = False,
                 invalid: dict[str, tuple[str, int]] | None = None):
        self.records, self.file, self.offset, self.header = records, file, offset, header
        self.invalid = invalid if invalid is not None else {}

    def __call__(self, row) -> str:
        if self.records is None:  # a pass that only looks (schema inference): the validation pass records them
            return "skip"
        number = None if row.number is None else row.number + (1 if self.header else 0)
        if row.text in self.invalid:
            raw, at = self.invalid[row.text]
            self.records.append({"file": self.file, "offset": self.offset, "number": number, "raw": raw,
                                 "reason": f"invalid UTF-8 at byte {at} of the line"})
            return "skip"
        self.records.append({"file": self.file, "offset": self.offset, "number": number, "raw": row.text,
                             "reason": f"malformed CSV line: expected {row.expected_columns} columns, "
                                       f"got {row.actual_columns}"})
        return "skip"


def line_numbers(fs: pafs.FileSystem | None, records: list[dict]) -> list[dict]:
    """Malformed-line records with their 1-based line number in their file (one pass over each file's prefix)."""
    fs = fs or pafs.LocalFileSystem()
    out = []
    by_file: dict[str, list[dict]] = {}
    for r in records:
        by_file.setdefault(r["file"], []).append(r)
    for file, recs in by_file.items():
        before = {0: 0}
        offsets = sorted({r["offset"] for r in recs} - {0})
        if offsets:
            newlines, pos = 0, 0
            with fs.open_input_file(file) as f:
                for off in offsets:
                    while pos < off:
                        chunk = f.read(min(8 << 20, off - pos))
                        newlines += chunk.count(b"\n")
                        pos += len(chunk)
                    before[off] = newlines
        for r in recs:
            line = None if r["number"] is None else before[r["offset"]] + r["number"]
            out.append({"line": line, "reason": r["reason"], "raw": r["raw"]})
    return out
