"""Real time (DESIGN §7): Redis Streams in, online state and segments, rules, triggers out.

``consumer.py`` runs the loop, ``events.py`` checks messages as ingest would, ``rules.py``
applies the rules, ``online.py`` assigns segments online, ``redis_state.py`` keeps the state in
Redis, ``sink.py`` lands the events in the events table and ``webhooks.py`` delivers.
"""

from tribes.realtime.consumer import Consumer
from tribes.realtime.live import Live
from tribes.realtime.redis_state import RedisState, connect_redis, redis_url
from tribes.realtime.rules import RULES
from tribes.realtime.simulation import read_messages, simulate
from tribes.realtime.webhooks import dead_letter, deadletters, registry, replay

__all__ = [
    "RULES",
    "Consumer",
    "Live",
    "RedisState",
    "connect_redis",
    "dead_letter",
    "deadletters",
    "read_messages",
    "redis_url",
    "registry",
    "replay",
    "simulate",
]
