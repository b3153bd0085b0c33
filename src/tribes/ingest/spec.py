"""What each kind of input becomes: target columns, how they are parsed, their spellings.

A :class:`KindSpec` drives the generic staging step; adding a column to a kind means
adding one :class:`FieldSpec` here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# id:       identifier, pseudonymized with HMAC-SHA256 before storage
# ts:       timestamp, parsed to UTC
# text:     free text, trimmed, null markers -> null
# snake:    categorical normalized to lower snake_case (Add To Cart -> add_to_cart)
# place:    location categorical standardized against reference data (NY -> New York)
# float/int/bool: parsed numbers and booleans
FieldKind = Literal["id", "ts", "text", "snake", "place", "float", "int", "bool"]


@dataclass(frozen=True)
class FieldSpec:
    name: str
    kind: FieldKind
    aliases: tuple[str, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class KindSpec:
    """One kind of input (events, customers, consents) and the table it loads into."""

    kind: str
    table: str
    fields: tuple[FieldSpec, ...]
    id_fields: tuple[str, ...] = ()  # at least one must be present on a row (E_NO_ID)
    key: str = "event_id"
    extra: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]


EVENTS = KindSpec(
    kind="events",
    table="events",
    fields=(
        FieldSpec("event_id", "text", ("eventid", "event_uuid", "message_id", "messageid",
                                       "uuid", "event_key", "hit_id")),
        FieldSpec("ts", "ts", ("timestamp", "event_time", "eventtime", "event_timestamp",
                               "time", "datetime", "date_time", "occurred_at", "created_at",
                               "event_date", "date", "sent_at", "received_at"), required=True),
        FieldSpec("event_type", "snake", ("event_name", "eventname", "event", "type",
                                          "action", "event_action", "activity")),
        FieldSpec("customer_id", "id", ("user_id", "userid", "customer", "customerid",
                                        "customer_no", "member_id", "memberid", "account_id",
                                        "client_id", "uid", "user")),
        FieldSpec("anonymous_id", "id", ("anonymousid", "anon_id", "cookie_id", "cookieid",
                                         "cookie", "visitor_id", "visitorid", "ga_client_id")),
        FieldSpec("device_id", "id", ("deviceid", "device_uuid", "install_id", "installid",
                                      "idfa", "gaid", "advertising_id", "app_instance_id")),
        FieldSpec("session_id", "id", ("sessionid", "session", "visit_id", "visitid")),
        FieldSpec("channel", "snake", ("utm_medium", "medium", "traffic_source",
                                       "marketing_channel", "acquisition_channel")),
        FieldSpec("device", "snake", ("device_type", "devicetype", "device_category",
                                      "platform", "os")),
        FieldSpec("country", "place", ("country_code", "countrycode", "country_name", "nation")),
        FieldSpec("region", "place", ("state", "province", "state_code", "region_name",
                                      "county")),
        FieldSpec("city", "place", ("town", "city_name", "locality")),
        FieldSpec("product_id", "text", ("productid", "sku", "item_id", "itemid", "product",
                                         "product_sku", "article_id")),
        FieldSpec("category", "text", ("product_category", "item_category", "categoryname",
                                       "category_name", "department")),
        FieldSpec("order_id", "text", ("orderid", "transaction_id", "transactionid",
                                       "order_number", "order_no", "receipt_id", "invoice_no")),
        FieldSpec("amount", "float", ("revenue", "value", "order_value", "total", "price_total",
                                      "sales", "amount_usd", "total_amount", "order_total")),
        FieldSpec("quantity", "int", ("qty", "units", "quantity_ordered", "items", "item_count")),
    ),
    id_fields=("customer_id", "anonymous_id", "device_id"),
    key="event_id",
)

CUSTOMERS = KindSpec(
    kind="customers",
    table="customers",
    fields=(
        FieldSpec("customer_id", "id", ("user_id", "userid", "customer", "customerid",
                                        "customer_no", "member_id", "member_no", "account_id",
                                        "client_id", "uid"), required=True),
        FieldSpec("signup_ts", "ts", ("signup_date", "signup", "signed_up_at", "created_at",
                                      "registered_at", "registration_date", "join_date",
                                      "first_seen")),
        FieldSpec("country", "place", ("country_code", "countrycode", "country_name")),
        FieldSpec("region", "place", ("state", "province", "state_code", "region_name")),
        FieldSpec("city", "place", ("town", "city_name", "locality")),
        FieldSpec("age", "int", ("customer_age", "age_years")),
        FieldSpec("birth_year", "int", ("year_of_birth", "birthyear", "yob")),
        FieldSpec("age_band", "text", ("age_group", "ageband", "age_range")),
        FieldSpec("gender", "snake", ("sex",)),
    ),
    id_fields=("customer_id",),
    key="customer_id",
)

CONSENTS = KindSpec(
    kind="consents",
    table="consents",
    fields=(
        FieldSpec("customer_id", "id", ("user_id", "userid", "customer", "customerid",
                                        "member_id", "member_no", "account_id", "uid"),
                  required=True),
        FieldSpec("purpose", "snake", ("consent_type", "consent_purpose", "scope", "type")),
        FieldSpec("granted", "bool", ("consent", "value", "status", "opt_in", "optin",
                                      "consent_given", "given", "allowed"), required=True),
        FieldSpec("ts", "ts", ("timestamp", "updated_at", "created_at", "date", "time",
                               "recorded_at", "consent_ts", "consent_date"), required=True),
    ),
    id_fields=("customer_id",),
    key="consent_id",
)

KINDS: dict[str, KindSpec] = {s.kind: s for s in (EVENTS, CUSTOMERS, CONSENTS)}

# the quarantine reason codes, in the order they are checked (a row gets the first)
REASONS: dict[str, str] = {
    "E_MALFORMED": "the record could not be parsed (wrong number of fields, bad quoting, "
    "not a JSON object)",
    "E_HEADER": "the header line again inside the data (files concatenated into one)",
    "E_NO_ID": "no identifier at all (customer_id, anonymous_id, device_id all empty)",
    "E_TS_MISSING": "timestamp is empty",
    "E_TS_PARSE": "timestamp could not be parsed",
    "E_TS_FUTURE": "timestamp is later than now + ingest.future_tolerance",
    "E_TS_RANGE": "timestamp is earlier than ingest.min_ts",
    "E_NO_EVENT_TYPE": "event type is empty and no --event-type was given",
    "E_EVENT_TYPE": "event type is not in the ingest.event_types whitelist",
    "E_AMOUNT": "amount is not a number, or a purchase has no valid non-negative amount",
    "E_QUANTITY": "quantity is not a whole number",
    "E_VALUE": "a value could not be parsed as its column's type",
    "E_CONSENT_VALUE": "consent value is not a recognizable yes/no",
    "E_MISSING_VALUE": "a column whose missing-value policy is 'drop' is empty",
    "E_ERASED": "a row of a person erased with tribes forget (the row is not kept)",
}
