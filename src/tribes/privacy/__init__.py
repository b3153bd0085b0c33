"""Privacy by default: pseudonymized identifiers, PII handling and consent."""
