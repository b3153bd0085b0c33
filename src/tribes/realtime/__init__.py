"""Real time (DESIGN §7): Redis Streams in, online state and segments, rules, triggers out.

``consumer.py`` runs the loop, ``events.py`` checks messages as ingest would, ``rules.py``
applies the rules, ``online.py`` assigns segments online, ``redis_state.py`` keeps the state in
Redis, ``sink.py`` lands the events in the events table and ``webhooks.py`` delivers.
"""
