"""The real-time state in Redis: key names, reads, and the one atomic commit per batch.

Keys (``<p>`` = ``[realtime] prefix``):

* ``<p>:c:<customer_key>``: hash, the customer's running state (rules.py), with a TTL;
* ``<p>:rt:<customer_key>``: list, the customer's newest triggers (for the API);
* ``<p>:seen:<event_id>``: an event already applied (redelivery never applies it twice);
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
from dataclasses import dataclass
from typing import Any

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
for i, e in ipairs(p.seen) do
  if redis.call('EXISTS', e) == 1 then return 0 end
end
for i, m in ipairs(p.fired) do redis.call('ZREM', p.timers, m[1]) end
for i, s in ipairs(p.states) do
  redis.call('HSET', s[1], unpack(s[2]))
  redis.call('PEXPIRE', s[1], p.state_ttl)
end
for i, m in ipairs(p.cancel) do redis.call('ZREM', p.timers, m) end
for i, z in ipairs(p.schedule) do redis.call('ZADD', p.timers, z[2], z[1]) end
for i, e in ipairs(p.seen) do redis.call('SET', e, '1', 'PX', p.seen_ttl) end
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


def connect(url: str) -> Any:
    """A Redis client (``tribes[stream]``), checked with a PING."""
    try:
        import redis
    except ImportError:
        raise DependencyError("tribes stream needs the Redis client: "
                              "pip install 'tribes[stream]'", code="E_DEPENDENCY") from None
    client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=30,
                                  health_check_interval=30)
    try:
        client.ping()
    except redis.RedisError as exc:
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

    def seen(self, event_id: str) -> str:
        return f"{self.prefix}:seen:{event_id}"

    @property
    def timers(self) -> str:
        return f"{self.prefix}:timers"

    @property
    def clock(self) -> str:
        return f"{self.prefix}:clock"

    @property
    def meta(self) -> str:
        return f"{self.prefix}:meta"


class Store:
    """Reads and the atomic commit over one Redis client."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.r = client
        self.keys = Keys(prefix)
        self._commit = client.register_script(COMMIT)

    def seen(self, event_ids: list[str]) -> set[str]:
        if not event_ids:
            return set()
        vals = self.r.mget([self.keys.seen(e) for e in event_ids])
        return {e for e, v in zip(event_ids, vals, strict=True) if v is not None}

    def read_states(self, keys: list[str]) -> dict[str, dict[str, str]]:
        if not keys:
            return {}
        pipe = self.r.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(self.keys.state(k))
        return dict(zip(keys, pipe.execute(), strict=True))

    def due(self, until: float, limit: int) -> list[tuple[str, float]]:
        got = self.r.zrangebyscore(self.keys.timers, "-inf", until, start=0, num=limit,
                                   withscores=True)
        return [(m, float(s)) for m, s in got]

    def clock(self) -> tuple[float, float]:
        c = self.r.hgetall(self.keys.clock)
        return float(c.get("ts", 0.0)), float(c.get("wall", 0.0))

    def commit(self, payload: dict[str, Any]) -> bool:
        return bool(self._commit(args=[json.dumps(payload, separators=(",", ":"))]))

    def forget(self, customer_keys: list[str]) -> int:
        """Erasure: delete the customers' state, recent triggers and timers."""
        pipe = self.r.pipeline(transaction=True)
        for k in customer_keys:
            pipe.delete(self.keys.state(k), self.keys.recent(k))
            pipe.zrem(self.keys.timers, f"cart|{k}", f"churn|{k}")
        res = pipe.execute()
        return sum(int(x) for x in res[0::2])

    def recent_triggers(self, customer_key: str, limit: int = 20) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.r.lrange(self.keys.recent(customer_key), 0,
                                                     limit - 1)]

    def state(self, customer_key: str) -> dict[str, str]:
        return dict(self.r.hgetall(self.keys.state(customer_key)))
