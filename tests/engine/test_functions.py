import hashlib
import hmac

import ibis
from hypothesis import given, settings
from hypothesis import strategies as st

from tribes.engine import connect
from tribes.engine.functions import hmac_sha256_hex, hmac_sha256_py, md5_hex


@settings(max_examples=30, deadline=None)
@given(values=st.lists(st.text(min_size=0, max_size=40).filter(lambda s: "\x00" not in s),
                       min_size=1, max_size=20),
       key=st.binary(min_size=1, max_size=100))
def test_engine_hmac_equals_python_hmac(values: list[str], key: bytes) -> None:
    engine = connect(None)
    t = ibis.memtable({"v": values})
    got = engine.execute(t.mutate(h=hmac_sha256_hex(t.v, key, 64)))
    for v, h in zip(got["v"], got["h"], strict=True):
        assert h == hmac.new(key, v.encode(), hashlib.sha256).hexdigest()
        assert hmac_sha256_py(v, key, 32) == h[:32]


def test_hmac_of_null_is_null_and_md5_matches_hashlib() -> None:
    engine = connect(None)
    t = ibis.memtable({"v": ["a", None, "ü"]}, schema={"v": "string"})
    got = engine.execute(t.mutate(h=hmac_sha256_hex(t.v, b"k"), m=md5_hex(t.v)))
    assert got["h"].isna().tolist() == [False, True, False]
    assert got["m"][2] == hashlib.md5("ü".encode()).hexdigest()


def test_delete_statement_deletes_matching_rows_only() -> None:
    engine = connect(None)
    engine.con.create_table("x", ibis.memtable({"a": [1, 2, 3], "b": ["p", "q", "r"]}))
    keep = ibis.memtable({"b": ["q"]})
    x = engine.table("x")
    engine.delete_where("x", x.b.isin(keep.b) | (x.a == 3))
    assert engine.execute(engine.table("x"))["a"].tolist() == [1]


def test_transaction_rolls_back_on_error() -> None:
    engine = connect(None)
    engine.con.create_table("x", schema=ibis.schema({"a": "int64"}))
    try:
        with engine.transaction():
            engine.insert("x", ibis.memtable({"a": [1, 2]}))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert int(engine.scalar(engine.table("x").count())) == 0


def test_engine_never_downloads_extensions_and_bounds_memory(tmp_path) -> None:
    from tribes.config import EngineConfig

    engine = connect(tmp_path, EngineConfig(memory_limit="1GB", threads=1))
    row = engine.con.raw_sql(
        "SELECT current_setting('autoinstall_known_extensions'), "
        "current_setting('memory_limit'), current_setting('threads'), "
        "current_setting('TimeZone')"
    ).fetchone()
    assert row[0] is False
    assert row[1].replace(" ", "") in ("1GB", "953.6MiB")
    assert row[2] == 1 and row[3] == "UTC"
    engine.close()
