"""Synthetic, messy, multi-source behavioural data with planted segments and defects.

Usage
-----
>>> from pathlib import Path
>>> from tribes.synth import SynthConfig, generate
>>> manifest = generate(SynthConfig(out=Path("data"), customers=20000, days=180, seed=7))
... # doctest: +SKIP

``generate(cfg, progress=None)`` simulates customers in chunks of
``cfg.chunk_customers`` and appends each chunk to already-open writers, so memory
is bounded by the chunk size (200k customers / ~10M events stay well below
2 GiB).  ``progress(done_customers, total_customers)`` is called after every
chunk.  All randomness comes from NumPy generators seeded with ``cfg.seed``
(one stream per chunk); no wall-clock time is used and gzip headers carry
``mtime=0``, so the same seed and config give byte-identical files.  Numbered
``web-*``/``app-*`` files left over from an earlier run in ``out`` are deleted.

Files written under ``cfg.out``
-------------------------------
``web/web-NNN.csv.gz`` (or ``web/web-NNN.parquet`` with ``web_format="parquet"``)
    Web clickstream, time-ordered within a chunk.  A file holds whole chunks and
    a new one starts before a chunk that would push it past
    ``web_rows_per_file`` rows or when it already holds half of the chunks (so
    there are at least two files once there are two chunks).  One header per
    CSV file, no quoting.  Columns (all strings; empty field = missing in CSV,
    null in Parquet): ``timestamp, event_name, cookie_id, user_id, page_url,
    product_id, category, utm_medium, device_type, country, state, city, email,
    ip``.

    * ``timestamp``: ~85% ``2026-03-04T10:15:02Z``, ~8% the same instant with an
      offset (``2026-03-04T12:15:02+02:00``), ~7% epoch milliseconds
      (``1772619302000``).  Whole seconds.
    * ``event_name``: ``page_view``/``Page View``/``pageView``,
      ``product_view``/``Product View``, ``add_to_cart``/``Add To Cart``,
      ``remove_from_cart``, ``begin_checkout``, ``login``, ``search``.  No
      purchases (they are in ``purchases.parquet``).
    * ``cookie_id`` (``ck_`` + 16 hex) on every normal row; ``user_id``
      (``C0000001``) from the session's ``login`` row on; the login row also
      carries the raw ``email`` (deliberate PII).  A person has 1–3 devices and
      a quarter of them get a new cookie mid-period (cookie churn).  Every
      cookie logs in during its first session, so all cookies can be stitched.
    * ``utm_medium`` (per session, spelled per row): organic, paid_search,
      email, social, direct, referral in mixed spellings (``Organic``,
      ``Paid Search``, ``(direct)`` …); ``device_type`` desktop/mobile/tablet in
      mixed case; ``country``/``state``/``city`` with inconsistent spellings
      (``US``/``USA``/``United States``/``u.s.a.``; ``NY``/``N.Y.``/``new york``;
      ``CA``/``California``/``ca`` …; ``Canada``, ``GB``/``United Kingdom``,
      ``DE``/``Germany`` with empty state); ~3% rows without geo.
``app/app-NNN.jsonl.gz``
    One JSON object per line: ``eventId`` (UUID-shaped, unique except planted
    duplicates), ``eventTime`` (epoch ms, integer), ``eventName`` (``app_open``,
    ``screen_view``, ``product_view``, ``add_to_cart``, ``remove_from_cart``,
    ``begin_checkout``, ``login``, ``search``), ``installId`` (``in_`` + 16 hex;
    0–2 installs per person), ``userId`` (null until the install's first login,
    then the customer id), ``platform`` (``ios``/``android``), ``screen``,
    ``productId``, ``category`` (null when not applicable).  Only
    ``loyal_high_spenders``, ``bargain_hunters``, ``lapsing_buyers`` (some) and
    ``support_heavy`` (all) use the app.  File rolling as for web.
``purchases.parquet``
    Every order line (web, app, store), one row group per chunk:
    ``sold_at`` timestamp[us, tz=UTC], ``member_no`` (customer id), ``order_id``
    (``O`` + 11 digits; 1–3 lines share id and ``sold_at``), ``amount``
    float64 (line value), ``quantity`` int64, ``product_id``, ``category``,
    ``channel`` (``web``/``app``/``store``), ``store_id`` (``S001``…, null unless
    store).  Online orders happen 10–150 s after the session's
    ``begin_checkout`` event, i.e. inside the session.
``support.csv``
    ``ticket_id, created, customer_id, contact_channel, topic`` with ``created``
    formatted ``%d/%m/%Y %H:%M`` (day first).
``customers.csv``
    ``customer_id, email, first_name, last_name, phone, signup_date, country,
    state, city, age, gender``; messy geo spellings as above, ~6–7% missing
    country/state/city/age/gender, ``signup_date`` ISO date (may precede the
    period), phones in four formats.
``consents.csv``
    ``customer_id, purpose, granted, ts``: an ``analytics`` grant at signup
    (99% of customers), a ``marketing`` record (95%), and for ~3% a later
    ``analytics`` opt-out row.  ``granted`` is spelled ``yes/no``,
    ``true/false``, ``1/0`` or ``granted/denied``; ``ts`` is ISO-8601 UTC.
``ground_truth.csv``
    ``customer_id, segment`` for every customer.
``manifest.json``
    ``config`` (without ``out``), ``period``, ``files``, ``rows`` (data rows per
    file kind, defect rows included), ``events`` (web + app + purchase lines +
    support), ``orders``, ``analytics_opt_outs``, ``segments`` (planted sizes)
    and ``defects``::

        {"web": {"E_TS_PARSE": n, "E_NO_ID": n, "E_TS_FUTURE": n},
         "app": {"duplicates": n}, "purchases": {"E_AMOUNT": n}}

Planted segments (shares of ``customers``)
------------------------------------------
Typical values at ``days=180`` (per customer; drawn with noise):

``loyal_high_spenders`` 14%
    Active from the first days to the last 4 days, ~10 sessions of ~6 events,
    ~10 orders with AOV ~270, cart abandonment ~0, some app and store orders.
``bargain_hunters`` 18%
    ~7 sessions of ~10 events (mostly product views, ~10 min), ~4 orders with
    AOV ~30, cart abandonment ~0.4.
``window_shoppers`` 22%
    ~6 long sessions (~18 min, 200 s between events), a cart in most of them,
    (almost) no orders, cart abandonment ~1, web only.
``new_explorers`` 18%
    First activity after 82% of the period, ~3 sessions across 6–9
    categories, at most one order (usually one), web only.
``lapsing_buyers`` 18%
    ~6 short sessions and ~5 orders early on; activity ends before 55% of the
    period (nothing in the last 40%).
``support_heavy`` 10%
    App-first users (~85% of sessions in the app), ~3 orders, 4+ support
    contacts (~8).

Events per customer average ~54 (web + app + purchase lines + support), so
200k customers give ~10.7M events.

Planted defects (disjoint rows, one problem each)
-------------------------------------------------
About ``defect_rate`` (default 0.2%) of rows per kind: web rows with
unparseable timestamp text (``E_TS_PARSE``, never empty), web rows without
``cookie_id``/``user_id``/``email`` (``E_NO_ID``), web rows shifted five years
into the future (``E_TS_FUTURE``), app events re-delivered shortly after with
the same ``eventId`` and identical content (``duplicates``, 1.5x the rate) and
purchase lines with negative amount (``E_AMOUNT``).  ``login`` and
``begin_checkout`` rows are never damaged.  Every other row is valid: it has an
id, a parseable timestamp inside ``[start, start + days)`` and an event name;
purchase amounts are positive.
"""

from tribes.synth.config import SynthConfig
from tribes.synth.generator import generate

__all__ = ["SynthConfig", "generate"]
