"""Python clients against chserver: clickhouse-connect over HTTP, clickhouse-driver over the
native protocol, and pyarrow reading the columnar formats. Run by TestPythonClients with
CHSERVER_HTTP and CHSERVER_NATIVE (host:port), CHSERVER_USER and CHSERVER_PASSWORD; prints one
line per check and exits 1 if one failed."""

import io
import json
import os
import sys
import time
import traceback
import urllib.request

import clickhouse_connect
import pyarrow.ipc
import pyarrow.orc
import pyarrow.parquet
from clickhouse_driver import Client

HTTP_HOST, HTTP_PORT = os.environ["CHSERVER_HTTP"].rsplit(":", 1)
NATIVE_HOST, NATIVE_PORT = os.environ["CHSERVER_NATIVE"].rsplit(":", 1)
USER, PASSWORD = os.environ["CHSERVER_USER"], os.environ["CHSERVER_PASSWORD"]
SIZES = [("one block", 1, 65536), ("two blocks", 2, 1), ("many blocks", 5000, 97)]
results = []


def check(name):
    def wrap(fn):
        start = time.monotonic()
        try:
            fn()
            results.append(True)
            print(f"ok   {name} ({time.monotonic() - start:.2f}s)")
        except Exception:  # noqa: BLE001 - every failure is reported, then counted
            results.append(False)
            print(f"FAIL {name}\n{traceback.format_exc()}")
        return fn

    return wrap


def http_raw(sql, **params):
    params["query"] = sql
    url = f"http://{HTTP_HOST}:{HTTP_PORT}/?" + urllib.parse.urlencode(params)
    req = urllib.request.Request(url, headers={"X-ClickHouse-User": USER, "X-ClickHouse-Key": PASSWORD})
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def connect_client(**kw):
    return clickhouse_connect.get_client(host=HTTP_HOST, port=int(HTTP_PORT), username=USER, password=PASSWORD, **kw)


def sql_of(rows):
    return f"SELECT number AS n, toString(number) AS s FROM numbers({rows})"


@check("clickhouse-connect: results of 1, 2 and many blocks, compression off and on")
def _():
    for compress in (False, True, "zstd", "gzip", "lz4"):
        client = connect_client(compress=compress)
        for name, rows, block in SIZES:
            r = client.query(sql_of(rows), settings={"max_block_size": block})
            assert r.row_count == rows, (compress, name, r.row_count)
            assert r.result_rows[-1] == (rows - 1, str(rows - 1)), (compress, name)
        client.close()


@check("clickhouse-connect: server-side {name:Type} parameters")
def _():
    client = connect_client()
    r = client.query("SELECT {n:UInt8} + 1, {s:String}", parameters={"n": 41, "s": "it's"})
    assert r.result_rows == [(42, "it's")], r.result_rows


@check("clickhouse-connect: insert, then read back (Arrow)")
def _():
    client = connect_client()
    db = f"py_{os.getpid()}"
    client.command(f"CREATE DATABASE IF NOT EXISTS {db}")
    try:
        client.command(f"CREATE TABLE {db}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
        client.insert(f"{db}.t", [[i, f"v{i}"] for i in range(3000)], column_names=["n", "s"])
        assert client.query(f"SELECT count() FROM {db}.t").result_rows == [(3000,)]
        table = client.query_arrow(f"SELECT n, s FROM {db}.t ORDER BY n", settings={"max_block_size": 100})
        assert table.num_rows == 3000 and table.column("s")[2999].as_py() == "v2999"
    finally:
        client.command(f"DROP DATABASE IF EXISTS {db}")


@check("pyarrow reads Parquet, Arrow, ArrowStream and ORC answers of 1, 2 and many blocks")
def _():
    for name, rows, block in SIZES:
        readers = {
            "Parquet": lambda b: pyarrow.parquet.read_table(io.BytesIO(b)),
            "Arrow": lambda b: pyarrow.ipc.open_file(pyarrow.BufferReader(b)).read_all(),
            "ArrowStream": lambda b: pyarrow.ipc.open_stream(pyarrow.BufferReader(b)).read_all(),
            "ORC": lambda b: pyarrow.orc.ORCFile(io.BytesIO(b)).read(),
        }
        for fmt, read in readers.items():
            table = read(http_raw(sql_of(rows) + " FORMAT " + fmt, max_block_size=block))
            assert table.num_rows == rows, (fmt, name, table.num_rows)
            assert table.column_names == ["n", "s"], (fmt, table.column_names)


@check("JSON answers are one document (json.loads) whatever the number of blocks")
def _():
    for name, rows, block in SIZES:
        for fmt in ("JSON", "JSONCompact", "JSONStrings"):
            doc = json.loads(http_raw(sql_of(rows) + " FORMAT " + fmt, max_block_size=block))
            assert doc["rows"] == rows and len(doc["data"]) == rows, (fmt, name)


@check("clickhouse-driver: results of 1, 2 and many blocks, with progress, compression off and on")
def _():
    for compression in (False, "lz4", "zstd"):
        client = Client(NATIVE_HOST, port=int(NATIVE_PORT), user=USER, password=PASSWORD, compression=compression)
        for name, rows, block in SIZES:
            got = client.execute(sql_of(rows), settings={"max_block_size": block})
            assert len(got) == rows and got[-1] == (rows - 1, str(rows - 1)), (compression, name)
        progress = client.execute_with_progress(sql_of(5000), settings={"max_block_size": 97})
        seen = list(progress)
        assert seen, "Progress packets"
        assert len(progress.get_result()) == 5000
        client.disconnect()


@check("clickhouse-driver: server-side parameters, insert, errors with codes")
def _():
    client = Client(NATIVE_HOST, port=int(NATIVE_PORT), user=USER, password=PASSWORD)
    got = client.execute("SELECT {n:UInt8} + 1", {"n": 41}, settings={"server_side_params": True})
    assert got == [(42,)], got
    db = f"pyd_{os.getpid()}"
    client.execute(f"CREATE DATABASE IF NOT EXISTS {db}")
    try:
        client.execute(f"CREATE TABLE {db}.t (n UInt32, s String) ENGINE = MergeTree ORDER BY n")
        client.execute(f"INSERT INTO {db}.t (n, s) VALUES", [(i, str(i)) for i in range(1000)])
        assert client.execute(f"SELECT count() FROM {db}.t") == [(1000,)]
    finally:
        client.execute(f"DROP DATABASE IF EXISTS {db}")
    try:
        client.execute("SELECT * FROM nosuch_table")
        raise AssertionError("no error")
    except Exception as e:  # noqa: BLE001
        assert getattr(e, "code", None) == 60, e


@check("clickhouse-driver: a client that times out before the first block stops its query within a second")
def _():
    tag = f"py_cancel_{os.getpid()}"
    client = Client(NATIVE_HOST, port=int(NATIVE_PORT), user=USER, password=PASSWORD, send_receive_timeout=1)
    try:
        client.execute(f"SELECT count() AS {tag} FROM system.numbers")
        raise AssertionError("no timeout")
    except Exception as e:  # noqa: BLE001
        assert "timed out" in str(e).lower() or "timeout" in str(e).lower(), e
    client.disconnect()
    watcher = connect_client()
    running = f"SELECT count() FROM system.processes WHERE position(query, '{tag}') > 0 AND position(query, 'system.processes') = 0"
    start = time.monotonic()
    while watcher.command(running) != 0:
        assert time.monotonic() - start < 1.0, "still running a second after the client left"
        time.sleep(0.02)
    print(f"     stopped within {time.monotonic() - start:.3f}s after the client left")


@check("clickhouse-connect: a timed-out HTTP query is stopped")
def _():
    tag = f"py_http_cancel_{os.getpid()}"
    client = connect_client(send_receive_timeout=1)
    try:
        client.query(f"SELECT count() AS {tag} FROM system.numbers")
        raise AssertionError("no timeout")
    except Exception as e:  # noqa: BLE001
        assert "timed out" in str(e).lower() or "timeout" in str(e).lower(), e
    watcher = connect_client()
    running = f"SELECT count() FROM system.processes WHERE position(query, '{tag}') > 0 AND position(query, 'system.processes') = 0"
    start = time.monotonic()
    while watcher.command(running) != 0:
        assert time.monotonic() - start < 1.0, "still running a second after the client left"
        time.sleep(0.02)


passed, failed = results.count(True), results.count(False)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
