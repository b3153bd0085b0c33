"""The real-time state in Redis: key names, reads, and the one atomic commit per batch.

Keys (``<p>`` = ``[realtime] prefix``):

* ``<p>:c:<customer_key>``: hash, the customer's running state (rules.py), with a TTL;
* ``<p>:rt:<customer_key>``: list, the customer's newest triggers (for the API);
* ``<p>:seen:<day>``: set, ids of the events applied that day (UTC, processing time); the
  sets of the last ``seen_ttl`` are checked, so an event sent again is never applied twice;
* ``<p>:timers``: sorted set, timer -> due time (event time, epoch seconds);
* ``<p>:clock``: hash, the watermark (newest event time) and the wall time it was seen.

A batch's effects (state, seen marks, timers, triggers on the output stream and the
acknowledgement of its messages) are applied by one Lua script, atomically, and only if
no state it read has changed since (optimistic concurrency: each state carries a version
``v``): a consumer that dies mid-batch leaves nothing half-done, and two consumers never
overwrite each other's updates.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

from tribes.config import RealtimeConfig
from tribes.errors import DependencyError, TribesError

COMMIT = """
local p = cjson.decode(ARGV[1])
for i, c in ipairs(p.check) do
  local v = redis.call('HGET', c[1], 'v')
  if (tonumber(v) or 0) ~= c[2] then return 0 end
end
for i, m in ipairs(p.fired) do
  if not redis.call('ZSCORE', p.timers, m[1]) then return 0 end
end
for i, m in ipairs(p.fired) do redis.call('ZREM', p.timers, m[1]) end
for i, s in ipairs(p.states) do
  redis.call('HSET', s[1], unpack(s[2]))
  redis.call('PEXPIRE', s[1], s[3])
end
for i, m in ipairs(p.cancel) do redis.call('ZREM', p.timers, m) end
for i, z in ipairs(p.schedule) do redis.call('ZADD', p.timers, z[2], z[1]) end
for i = 1, #p.seen, 1000 do
  redis.call('SADD', p.seen_key, unpack(p.seen, i, math.min(i + 999, #p.seen)))
end
if #p.seen > 0 and redis.call('EXPIRETIME', p.seen_key) < p.seen_expire then
  redis.call('EXPIREAT', p.seen_key, p.seen_expire)
end
for i, t in ipairs(p.out) do
  redis.call('XADD', p.output, 'MAXLEN', '~', p.maxlen, '*', unpack(t[2]))
  if p.recent > 0 then
    redis.call('LPUSH', t[1], t[3])
    redis.call('LTRIM', t[1], 0, p.recent - 1)
    redis.call('PEXPIRE', t[1], p.state_ttl)
  end
end
if p.clock_ts > 0 then
  local cur = tonumber(redis.call('HGET', p.clock, 'ts')) or 0
  if p.clock_ts > cur then
    redis.call('HSET', p.clock, 'ts', p.clock_ts_s, 'wall', p.wall)
  end
end
for i = 1, #p.ack, 1000 do
  redis.call('XACK', p.input, p.group, unpack(p.ack, i, math.min(i + 999, #p.ack)))
end
return 1
"""


# everything a batch needs, in one round trip: which events were applied before, the
# watermark, the timers due by it, and the state of every customer involved
READ = """
local p = cjson.decode(ARGV[1])
local seen_flags = {}
for i = 1, #p.seen do seen_flags[i] = 0 end
for j, b in ipairs(p.buckets) do
  for i = 1, #p.seen, 1000 do
    local hit = redis.call('SMISMEMBER', b, unpack(p.seen, i, math.min(i + 999, #p.seen)))
    for h = 1, #hit do
      if hit[h] == 1 then seen_flags[i + h - 1] = 1 end
    end
  end
end
local clock = redis.call('HMGET', p.clock, 'ts', 'wall')
local cts, cwall = tonumber(clock[1]) or 0, tonumber(clock[2]) or 0
local wm = 0
if p.max_ts > 0 then
  wm = math.max(cts, p.max_ts)
elseif cts > 0 then
  wm = cts + math.max(p.wall - cwall, 0)
end
local due = {}
if wm > 0 then
  due = redis.call('ZRANGEBYSCORE', p.timers, '-inf', string.format('%.6f', wm),
                   'WITHSCORES', 'LIMIT', 0, p.limit)
end
local keys, index, listed = {}, {}, {}
for i = 1, #due, 2 do listed[due[i]] = true end
for i, k in ipairs(p.keys) do
  if not index[k] then
    index[k] = true; keys[#keys + 1] = k
    -- an overdue timer of a customer of the batch is applied, whatever the LIMIT
    for j, rule in ipairs({'cart|', 'churn|'}) do
      local m = rule .. k
      local s = redis.call('ZSCORE', p.timers, m)
      if s and wm > 0 and tonumber(s) <= wm and not listed[m] then
        due[#due + 1] = m; due[#due + 1] = s; listed[m] = true
      end
    end
  end
end
for i = 1, #due, 2 do
  local k = string.sub(due[i], string.find(due[i], '|', 1, true) + 1)
  if not index[k] then index[k] = true; keys[#keys + 1] = k end
end
local states = {}
for i, k in ipairs(keys) do
  local s = redis.call('HMGET', p.prefix .. k, 'v', 's', 't')
  states[i] = {s[1] or '', s[2] or '', s[3] or ''}
end
local erased = {}
if #keys > 0 and redis.call('EXISTS', p.erased) == 1 then
  for i = 1, #keys, 1000 do
    local hit = redis.call('SMISMEMBER', p.erased, unpack(keys, i, math.min(i + 999, #keys)))
    for h = 1, #hit do
      if hit[h] == 1 then erased[#erased + 1] = keys[i + h - 1] end
    end
  end
end
return {seen_flags, string.format('%.6f', wm), due, keys, states, erased}
"""


REDIS_ENV = "TRIBES_REDIS_URL"


def redis_url(cfg: RealtimeConfig, option: str | None = None) -> str:
    """The Redis to use: ``option`` (--redis), else ``TRIBES_REDIS_URL``, else
    ``[realtime] redis``."""
    return option or os.environ.get(REDIS_ENV) or cfg.redis


def connect(url: str, *, timeout: float = 30.0, connect_timeout: float | None = None) -> Any:
    """A Redis client (``tribes[stream]``), checked with a PING."""
    try:
        import redis
    except ImportError:
        raise DependencyError("tribes stream needs the Redis client: "
                              "pip install 'tribes[stream]'", code="E_DEPENDENCY") from None
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=timeout,
                                  socket_connect_timeout=connect_timeout,
                                  health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        raise TribesError(f"cannot reach Redis at {redacted(url)}: {exc}; start it (e.g. "
                          "redis-server --port 6379) or pass --redis URL",
                          code="E_REDIS") from None
    return client


def redacted(url: str) -> str:
    """The URL without a password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


@dataclass(frozen=True)
class Keys:
    prefix: str

    def state(self, key: str) -> str:
        return f"{self.prefix}:c:{key}"

    def recent(self, key: str) -> str:
        return f"{self.prefix}:rt:{key}"

    def seen(self, day: int) -> str:
        """The set of event ids applied on ``day`` (days since 1970-01-01, UTC)."""
        return f"{self.prefix}:seen:{day}"

    @property
    def timers(self) -> str:
        return f"{self.prefix}:timers"

    @property
    def clock(self) -> str:
        return f"{self.prefix}:clock"

    @property
    def erased(self) -> str:
        """Set of erased customer keys (tribes forget): the stream ignores them at once."""
        return f"{self.prefix}:erased"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"


class Store:
    """Reads and the atomic commit over one Redis client."""

    def __init__(self, client: Any, prefix: str, *, seen_ttl_s: float = 7 * 86400) -> None:
        self.r = client
        self.keys = Keys(prefix)
        self.seen_ttl_s = seen_ttl_s
        self.seen_days = max(1, math.ceil(seen_ttl_s / 86400))
        self._commit = client.register_script(COMMIT)
        self._read = client.register_script(READ)
        self._conn: Any = None
        self._reader: Any = None
        self._commit_sha = ""
        self._payload = ""

    def read_batch(self, event_ids: list[str], customer_keys: list[str], *, max_ts: float,
                   wall: float, limit: int) -> tuple[set[str], float,
                                                     list[tuple[str, float]],
                                                     dict[str, dict[str, str | None]],
                                                     set[str]]:
        """(event ids applied before, watermark, due timers, states of the customers of
        the events and of the due timers) in one round trip. The watermark is the newest
        event time; with no events it goes on with the clock since the last one."""
        today = int(wall // 86400)
        buckets = [self.keys.seen(today - d) for d in range(self.seen_days + 1)]
        payload = {"seen": event_ids, "buckets": buckets, "keys": customer_keys,
                   "max_ts": max_ts, "wall": wall, "limit": limit, "clock": self.keys.clock,
                   "timers": self.keys.timers, "prefix": f"{self.keys.prefix}:c:",
                   "erased": self.keys.erased}
        flags, wm, due, keys, states, erased = self._read(
            args=[json.dumps(payload, separators=(",", ":"))])
        seen = {e for e, f in zip(event_ids, flags, strict=True) if f}
        pairs = [(due[i], float(due[i + 1])) for i in range(0, len(due), 2)]
        raw = {k: {"v": s[0] or None, "s": s[1] or None, "t": s[2] or None}
               for k, s in zip(keys, states, strict=True)}
        return seen, float(wm), pairs, raw, set(erased)

    def due(self, until: float, limit: int) -> list[tuple[str, float]]:
        got = self.r.zrangebyscore(self.keys.timers, "-inf", until, start=0, num=limit,
                                   withscores=True)
        return [(m, float(s)) for m, s in got]

    def clock(self) -> tuple[float, float]:
        c = self.r.hgetall(self.keys.clock)
        return float(c.get("ts", 0.0)), float(c.get("wall", 0.0))

    def read_group(self, group: str, consumer: str, stream: str, start: str, count: int,
                   block_ms: int | None) -> list[tuple[str, list[str]]]:
        """XREADGROUP, its reply left as it comes (id, [field, value, ...]): parsing it
        into dicts costs more than the rest of reading."""
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", stream, start]
        if self._reader is None:
            self._reader = self.r.connection_pool.get_connection()
        try:
            self._reader.send_command(*args)
            reply = self._reader.read_response()
        except Exception:
            self._reader.disconnect()
            raise
        if not reply:
            return []
        # RESP3 answers a map {stream: entries}, RESP2 a list [[stream, entries]]
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        return [(i, f) for i, f in entries if f]

    def send_commit(self, payload: dict[str, Any]) -> None:
        """Send the commit on a connection of its own and return at once; its answer is
        read by :meth:`commit_result` (one commit in flight at a time)."""
        if self._conn is None:
            self._conn = self.r.connection_pool.get_connection()
            self._commit_sha = self.r.script_load(COMMIT)
        self._payload = json.dumps(payload, separators=(",", ":"))
        self._conn.send_command("EVALSHA", self._commit_sha, 0, self._payload)

    def commit_result(self) -> bool:
        """Whether the commit sent last was applied (False: a state changed meanwhile)."""
        import redis

        assert self._conn is not None
        try:
            return bool(self._conn.read_response())
        except redis.exceptions.NoScriptError:  # Redis restarted: scripts are gone
            self._commit_sha = self.r.script_load(COMMIT)
            return bool(self._commit(args=[self._payload]))
        except Exception:
            self._conn.disconnect()
            raise

    def close(self) -> None:
        for name in ("_conn", "_reader"):
            conn = getattr(self, name)
            if conn is not None:
                self.r.connection_pool.release(conn)
                setattr(self, name, None)

    def forget(self, customer_keys: list[str], *, output_stream: str) -> dict[str, int]:
        """Erasure: the customers' state, recent triggers, timers, their triggers on the
        output stream and pending webhook retries."""
        wanted = set(customer_keys)
        pipe = self.r.pipeline(transaction=True)
        pipe.sadd(self.keys.erased, *customer_keys)
        for k in customer_keys:
            pipe.delete(self.keys.state(k), self.keys.recent(k))
            pipe.zrem(self.keys.timers, f"cart|{k}", f"churn|{k}")
        res = pipe.execute()[1:]
        out = {"keys": sum(int(x) for x in res[0::2]), "timers": sum(int(x) for x in res[1::2]),
               "triggers": 0, "retries": 0}
        start = "-"
        while True:  # the output stream, in chunks (erasure is rare; streams are capped)
            chunk = self.r.xrange(output_stream, min=start, count=5000)
            hit = [i for i, f in chunk if f.get("customer_key") in wanted]
            if hit:
                out["triggers"] += int(self.r.xdel(output_stream, *hit))
            if len(chunk) < 5000:
                break
            start = "(" + chunk[-1][0]
        retry = f"{self.keys.prefix}:wh:retry"
        for entry in self.r.zrange(retry, 0, -1):
            if json.loads(entry).get("trigger", {}).get("customer_key") in wanted:
                out["retries"] += int(self.r.zrem(retry, entry))
        return out

    def recent_triggers(self, customer_key: str, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(self.keys.recent(customer_key), 0,
                                                     limit - 1)]

    def state(self, customer_key: str) -> dict[str, Any] | None:
        """The customer's online state (rules.py fields), None without one."""
        from tribes.realtime.rules import decode

        raw = self.r.hmget(self.keys.state(customer_key), "v", "s", "t")
        return decode({"v": raw[0], "s": raw[1], "t": raw[2]}) if raw[1] else None
