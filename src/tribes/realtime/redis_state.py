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

import collections
import json
import math
import os
from dataclasses import dataclass
from typing import Any

from tribes.config import RealtimeConfig
from tribes.errors import DependencyError, TribesError
from tribes.realtime.rules import decode

# The commit of one batch. Its effects are grouped by customer: each customer's state
# carries a version, and a customer whose state changed since it was read (another
# consumer applied events of theirs meanwhile), or one of whose due timers is gone, is
# left out whole (state, timers, seen marks, triggers, acknowledgements of their
# messages); the rest is applied. The answer lists the customers left out (indexes into
# the key section, from 1), for the consumer to apply again from fresh reads.
#
# ARGV[1]: JSON header (names, settings and the length of each section); then the
# sections, flat (no JSON to decode: a batch's payload is large):
#   keys      n[1] x (state key, version read)
#   fired     n[2] x (timer member, customer)            customer = index into keys
#   states    n[3] x (customer, ttl ms, field, value, ...)  h.sf field/value items each
#   cancel    n[4] x (timer member, customer)
#   schedule  n[5] x (timer member, due, customer)
#   seen      n[6] event ids, then their n[6] customers  (0: belongs to no customer)
#   out       n[7] x (customer, recent list key, recent JSON, field, value, ...)  h.of items
#   ack       n[8] message ids, then their n[8] customers (0: belongs to no customer)
COMMIT = """
local h = cjson.decode(ARGV[1])
local n = h.n
local failed, nfailed = {}, 0
for i = 1, n[1] do
  local v = redis.call('HGET', ARGV[2 * i], 'v')
  if (tonumber(v) or 0) ~= tonumber(ARGV[2 * i + 1]) then
    failed[i] = true; nfailed = nfailed + 1
  end
end
local pos = 2 + 2 * n[1]
local fired = pos
for i = 0, n[2] - 1 do
  local at = fired + 2 * i
  local c = tonumber(ARGV[at + 1])
  if not failed[c] and not redis.call('ZSCORE', h.timers, ARGV[at]) then
    failed[c] = true; nfailed = nfailed + 1
  end
end
local function ok(c)
  return nfailed == 0 or not failed[tonumber(c)]
end
for i = 0, n[2] - 1 do
  local at = fired + 2 * i
  if ok(ARGV[at + 1]) then redis.call('ZREM', h.timers, ARGV[at]) end
end
pos = fired + 2 * n[2]
local stride = 2 + h.sf
for i = 0, n[3] - 1 do
  local at = pos + stride * i
  if ok(ARGV[at]) then
    local key = ARGV[2 * tonumber(ARGV[at])]
    redis.call('HSET', key, unpack(ARGV, at + 2, at + 1 + h.sf))
    redis.call('PEXPIRE', key, ARGV[at + 1])
  end
end
pos = pos + stride * n[3]
for i = 0, n[4] - 1 do
  local at = pos + 2 * i
  if ok(ARGV[at + 1]) then redis.call('ZREM', h.timers, ARGV[at]) end
end
pos = pos + 2 * n[4]
for i = 0, n[5] - 1 do
  local at = pos + 3 * i
  if ok(ARGV[at + 2]) then redis.call('ZADD', h.timers, ARGV[at + 1], ARGV[at]) end
end
pos = pos + 3 * n[5]
-- the ids (or message ids) of a section whose customers were not left out
local function kept(first, count)
  local out = {}
  for i = 0, count - 1 do
    if ok(ARGV[first + count + i]) then out[#out + 1] = ARGV[first + i] end
  end
  return out
end
local seen = pos
local nseen = n[6]
if nfailed == 0 then
  for i = 0, nseen - 1, 1000 do
    redis.call('SADD', h.seen_key, unpack(ARGV, seen + i, seen + math.min(i + 999, nseen - 1)))
  end
else
  local ids = kept(seen, nseen)
  nseen = #ids
  for i = 1, nseen, 1000 do
    redis.call('SADD', h.seen_key, unpack(ids, i, math.min(i + 999, nseen)))
  end
end
if nseen > 0 and redis.call('EXPIRETIME', h.seen_key) < h.seen_expire then
  redis.call('EXPIREAT', h.seen_key, h.seen_expire)
end
pos = seen + 2 * n[6]
stride = 3 + h.of
for i = 0, n[7] - 1 do
  local at = pos + stride * i
  if ok(ARGV[at]) then
    redis.call('XADD', h.output, 'MAXLEN', '~', h.maxlen, '*', unpack(ARGV, at + 3, at + 2 + h.of))
    if h.recent > 0 then
      redis.call('LPUSH', ARGV[at + 1], ARGV[at + 2])
      redis.call('LTRIM', ARGV[at + 1], 0, h.recent - 1)
      redis.call('PEXPIRE', ARGV[at + 1], h.state_ttl)
    end
  end
end
pos = pos + stride * n[7]
if h.clock_ts > 0 then
  local cur = tonumber(redis.call('HGET', h.clock, 'ts')) or 0
  if h.clock_ts > cur then
    redis.call('HSET', h.clock, 'ts', h.clock_ts_s, 'wall', h.wall)
  end
end
local nack = n[8]
if nfailed == 0 then
  for i = 0, nack - 1, 1000 do
    redis.call('XACK', h.input, h.group, unpack(ARGV, pos + i, pos + math.min(i + 999, nack - 1)))
  end
else
  local ids = kept(pos, nack)
  for i = 1, #ids, 1000 do
    redis.call('XACK', h.input, h.group, unpack(ids, i, math.min(i + 999, #ids)))
  end
end
local out = {}
for c, _ in pairs(failed) do out[#out + 1] = c end
return out
"""


# Everything a batch needs, in one round trip: which events were applied before (the
# positions of those among the ids), the watermark, the timers due by it (with
# h.only: only those of the customers given), and the state of every customer
# involved. ARGV[1]: JSON header; then h.nseen event ids, then the customer keys.
READ = """
local h = cjson.decode(ARGV[1])
local ns = h.nseen
local k0 = 2 + ns
local seen = {}
for j, b in ipairs(h.buckets) do
  if redis.call('EXISTS', b) == 1 then
    for i = 0, ns - 1, 1000 do
      local last = math.min(i + 999, ns - 1)
      local hit = redis.call('SMISMEMBER', b, unpack(ARGV, 2 + i, 2 + last))
      for x = 1, #hit do
        if hit[x] == 1 then seen[#seen + 1] = i + x end
      end
    end
  end
end
local clock = redis.call('HMGET', h.clock, 'ts', 'wall')
local cts, cwall = tonumber(clock[1]) or 0, tonumber(clock[2]) or 0
local wm = 0
if h.max_ts > 0 then
  wm = math.max(cts, h.max_ts)
elseif cts > 0 then
  wm = cts + math.max(h.wall - cwall, 0)
end
local due = {}
if wm > 0 and not h.only then
  due = redis.call('ZRANGEBYSCORE', h.timers, '-inf', string.format('%.6f', wm),
                   'WITHSCORES', 'LIMIT', 0, h.limit)
end
local keys, index, listed = {}, {}, {}
for i = 1, #due, 2 do listed[due[i]] = true end
-- an overdue timer of a customer of the batch is applied, whatever the LIMIT: looked up
-- when the LIMIT cut the list (or with h.only, which reads no list)
local rules = {}
if wm > 0 and (h.only or #due >= 2 * h.limit) then rules = {'cart|', 'churn|'} end
for i = k0, #ARGV do
  local k = ARGV[i]
  if not index[k] then
    index[k] = true; keys[#keys + 1] = k
    for j, rule in ipairs(rules) do
      local m = rule .. k
      local s = redis.call('ZSCORE', h.timers, m)
      if s and tonumber(s) <= wm and not listed[m] then
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
  local s = redis.call('HMGET', h.prefix .. k, 'v', 's', 't')
  states[i] = {s[1] or '', s[2] or '', s[3] or ''}
end
local erased = {}
if #keys > 0 and redis.call('EXISTS', h.erased) == 1 then
  for i = 1, #keys, 1000 do
    local hit = redis.call('SMISMEMBER', h.erased, unpack(keys, i, math.min(i + 999, #keys)))
    for x = 1, #hit do
      if hit[x] == 1 then erased[#erased + 1] = keys[i + x - 1] end
    end
  end
end
return {seen, string.format('%.6f', wm), due, keys, states, erased}
"""


REDIS_ENV = "TRIBES_REDIS_URL"


def _pack(conn: Any, args: list[Any]) -> list[bytes]:
    """A command in the Redis protocol: by hiredis (C, some five times faster on a large
    commit) when installed, else by the client."""
    try:
        import hiredis
    except ImportError:  # pragma: no cover - hiredis comes with tribes[stream]
        return list(conn.pack_command(*args))
    return [hiredis.pack_command(tuple(args))]


def redis_url(cfg: RealtimeConfig, option: str | None = None) -> str:
    """The Redis to use: ``option`` (--redis), else ``TRIBES_REDIS_URL``, else
    ``[realtime] redis``."""
    return option or os.environ.get(REDIS_ENV) or cfg.redis


def connect_redis(url: str, *, timeout: float = 30.0, connect_timeout: float | None = None) -> Any:
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


class RedisState:
    """Reads and the atomic commit over one Redis client."""

    def __init__(self, client: Any, prefix: str, *, seen_ttl_s: float = 7 * 86400) -> None:
        self.r = client
        self.keys = Keys(prefix)
        self.seen_ttl_s = seen_ttl_s
        self.seen_days = max(1, math.ceil(seen_ttl_s / 86400))
        self._scripts = {"commit": client.register_script(COMMIT),
                         "read": client.register_script(READ)}
        self._conn: Any = None  # the batch connection: reads and commits, in order
        self._sent: collections.deque[tuple[str, list[Any], Any]] = collections.deque()
        self._reader: Any = None

    # the batch connection: scripts sent one after the other, answers read in order (a
    # read sent after a commit sees what the commit wrote)
    def _send(self, name: str, args: list[Any], parse: Any) -> None:
        script = self._scripts[name]
        if self._conn is None:
            self._conn = self.r.connection_pool.get_connection()
            for sc in self._scripts.values():
                sc.sha = self.r.script_load(sc.script)
        try:
            self._conn.send_packed_command(_pack(self._conn, ["EVALSHA", script.sha, 0,
                                                              *args]))
        except Exception:
            self._conn.disconnect()
            self._sent.clear()
            raise
        self._sent.append((name, args, parse))

    def _answer(self) -> Any:
        import redis

        name, args, parse = self._sent.popleft()
        try:
            reply = self._conn.read_response()
        except redis.exceptions.NoScriptError:  # Redis restarted: scripts are gone
            reply = self._scripts[name](args=args)  # loads it again
        except Exception:
            self._conn.disconnect()
            self._sent.clear()
            raise
        return parse(reply)

    def read_batch(self, event_ids: list[str], customer_keys: list[str], *, max_ts: float,
                   wall: float, limit: int, only: bool = False
                   ) -> tuple[set[str], float, list[tuple[str, float]],
                              dict[str, dict[str, str | None]], set[str]]:
        """(event ids applied before, watermark, due timers, states of the customers of
        the events and of the due timers) in one round trip. The watermark is the newest
        event time; with no events it goes on with the clock since the last one. With
        ``only``, the due timers of ``customer_keys`` alone."""
        assert not self._sent, "read the answer of the commit first"
        self.send_read(event_ids, customer_keys, max_ts=max_ts, wall=wall, limit=limit,
                       only=only)
        result: Any = self._answer()
        return result

    def send_read(self, event_ids: list[str], customer_keys: list[str], *, max_ts: float,
                  wall: float, limit: int, only: bool = False) -> None:
        """:meth:`read_batch` sent, its answer read by :meth:`answer`: sent after a
        commit, it is answered after it and sees what it wrote."""
        today = int(wall // 86400)
        buckets = [self.keys.seen(today - d) for d in range(self.seen_days + 1)]
        header = {"nseen": len(event_ids), "buckets": buckets, "max_ts": max_ts,
                  "wall": wall, "limit": limit, "clock": self.keys.clock, "only": only,
                  "timers": self.keys.timers, "prefix": f"{self.keys.prefix}:c:",
                  "erased": self.keys.erased}

        def parse(reply: Any) -> Any:
            hits, wm, due, keys, states, erased = reply
            seen = {event_ids[i - 1] for i in hits}
            pairs = [(due[i], float(due[i + 1])) for i in range(0, len(due), 2)]
            raw = {k: {"v": s[0] or None, "s": s[1] or None, "t": s[2] or None}
                   for k, s in zip(keys, states, strict=True)}
            return seen, float(wm), pairs, raw, set(erased)

        self._send("read", [json.dumps(header, separators=(",", ":")), *event_ids,
                            *customer_keys], parse)

    def answer(self) -> Any:
        """The answer of the oldest script sent and not yet answered."""
        return self._answer()

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
        self.send_read_group(group, consumer, stream, start, count, block_ms)
        return self.read_group_reply()

    def send_read_group(self, group: str, consumer: str, stream: str, start: str,
                        count: int, block_ms: int | None) -> None:
        """:meth:`read_group` without waiting: the reply is read by
        :meth:`read_group_reply` (one read in flight at a time)."""
        args: list[Any] = ["XREADGROUP", "GROUP", group, consumer, "COUNT", count]
        if block_ms is not None:
            args += ["BLOCK", block_ms]
        args += ["STREAMS", stream, start]
        if self._reader is None:
            self._reader = self.r.connection_pool.get_connection()
        try:
            self._reader.send_command(*args)
        except Exception:
            self._reader.disconnect()
            raise

    def read_group_reply(self) -> list[tuple[str, list[str]]]:
        assert self._reader is not None
        try:
            reply = self._reader.read_response()
        except Exception:
            self._reader.disconnect()
            raise
        if not reply:
            return []
        # RESP3 answers a map {stream: entries}, RESP2 a list [[stream, entries]]
        entries = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
        return [(i, f) for i, f in entries if f]

    def send_commit(self, header: dict[str, Any], sections: list[Any]) -> None:
        """Send a batch's commit (``COMMIT``: the header and the flat sections) and return
        at once; its answer is read by :meth:`commit_result` (or :meth:`answer`)."""
        self._send("commit", [json.dumps(header, separators=(",", ":")), *sections],
                   lambda reply: [int(x) for x in reply])

    def commit_result(self) -> list[int]:
        """The customers (indexes into the key section, from 1) left out of the commit
        sent last because their state changed meanwhile; empty: all applied."""
        assert self._sent and self._sent[0][0] == "commit"
        result: list[int] = self._answer()
        return result

    def in_flight(self) -> int:
        """Scripts sent and not yet answered."""
        return len(self._sent)

    def close(self) -> None:
        if self._sent and self._conn is not None:  # answers never read: not reusable
            self._conn.disconnect()
            self._sent.clear()
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
        raw = self.r.hmget(self.keys.state(customer_key), "v", "s", "t")
        return decode({"v": raw[0], "s": raw[1], "t": raw[2]}) if raw[1] else None
