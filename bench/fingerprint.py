"""Fingerprint cost against a plain count: 1 M rows in PostgreSQL.

A throwaway database gets ``orders`` (id primary key, customer_id, status, total, note)
with ROWS rows; then, each best of REPEAT, the time of ``SELECT count(*) FROM orders`` and
of the ``fingerprint`` source over 4 columns (row checksum plus one per column), and the
ratio. The database is dropped at the end.

    .venv/bin/python bench/fingerprint.py [ROWS] [--admin postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

from backout.kernel.options import Context
from backout.probes.fingerprint import FingerprintOptions, FingerprintSource

REPEAT = 3
COLUMNS = ["customer_id", "status", "total", "note"]


def best(call: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=int, default=1_000_000)
    parser.add_argument("--admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    name = f"backout_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{args.admin.rsplit('/', 1)[0]}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, "
                "status text, total numeric(10, 2) NOT NULL, note text)"
            )
            conn.execute(
                "INSERT INTO orders SELECT i, i %% 20000, "
                "(ARRAY['new','paid','shipped'])[i %% 3 + 1], (i %% 9999) / 100.0, "
                "CASE WHEN i %% 7 = 0 THEN NULL ELSE 'n' || i END "
                "FROM generate_series(1, %s) AS i",
                (args.rows,),
            )
            conn.execute("VACUUM ANALYZE orders")

            def count() -> object:
                return conn.execute("SELECT count(*) FROM orders").fetchone()

            plain = best(count)
        source = FingerprintSource()
        options = FingerprintOptions(url=url, tables={"orders": COLUMNS})
        ctx = Context(Path("."), 600.0)
        printed = best(lambda: source.read(options, ctx))
    finally:
        with psycopg.connect(args.admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"rows: {args.rows:,}  (best of {REPEAT})")
    print(f"SELECT count(*):              {plain * 1000:9.1f} ms")
    print(f"fingerprint, {len(COLUMNS)} columns + row: {printed * 1000:9.1f} ms")
    print(f"ratio fingerprint / count:    {printed / plain:9.1f}x")
    print(f"fingerprint per row:          {printed / args.rows * 1e6:9.2f} µs")


if __name__ == "__main__":
    main()
