"""Identifiers that start with what was typed, for the member lookup.

Each identifier column is searched on its own, from its index, in index order and at most
SCAN_LIMIT rows a query, so a one-letter prefix over millions of members costs no more than a
long one. Hexadecimal and numeric identifiers (device ids, Braze and Amplitude ids) match in
either case: the prefix is tried as typed, lower-cased and upper-cased, since such ids are
stored in one case or the other (IDFA upper, GAID lower). External ids, device ids and alias
names are matched exactly as typed: partners tell "Ann" from "ann".
"""

from dataclasses import dataclass

from django.db import connection
from django.db.models import Q, QuerySet

from cohorts.models import EXTRA_IDENTIFIERS, IDENTIFIER_LABELS, CohortMember, IdType

SCAN_LIMIT = 500
# Identifiers whose letters are hexadecimal digits: their case carries no meaning.
CASE_FREE = frozenset(EXTRA_IDENTIFIERS)


@dataclass(frozen=True)
class IdentifierMatch:
    """One identifier starting with the prefix, and how many of the members read carry it."""

    name: str
    value: str
    alias_label: str
    members: int
    exact: bool

    @property
    def label(self) -> str:
        return IDENTIFIER_LABELS.get(self.name, self.name)


@dataclass(frozen=True)
class PrefixMatches:
    matches: list[IdentifierMatch]
    # A query stopped at SCAN_LIMIT rows: more identifiers start with the prefix.
    truncated: bool


def starts_with(column: str, prefix: str) -> Q:
    """`column` starts with `prefix`, in the form each database answers from its index.

    PostgreSQL: LIKE 'prefix%', served by the varchar_pattern_ops indexes whatever the
    collation. SQLite: a range (prefix <= value < prefix with its last character raised), which
    its binary-collated index serves and which is exact there; its LIKE ignores case and no
    index serves it.
    """
    if connection.vendor != "sqlite":
        return Q(**{f"{column}__startswith": prefix})
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return Q(**{f"{column}__gte": prefix, f"{column}__startswith": prefix})
    above = prefix[:-1] + chr(last + 1)
    return Q(**{f"{column}__gte": prefix, f"{column}__lt": above})


def _forms(prefix: str, column: str) -> list[str]:
    if column not in CASE_FREE:
        return [prefix]
    return list(dict.fromkeys((prefix, prefix.lower(), prefix.upper())))


def primary_query(prefix: str, types: list[str]) -> QuerySet[CohortMember, tuple[str, str, str]]:
    """Members whose primary identifier, of one of `types`, starts with `prefix`: in index
    order, bounded."""
    members = CohortMember.objects.filter(starts_with("value", prefix), id_type__in=types)
    return members.order_by("value").values_list("id_type", "alias_label", "value")[:SCAN_LIMIT]


def extra_query(name: str, prefix: str) -> QuerySet[CohortMember, str]:
    """Values of the extra identifier `name` that start with `prefix`: in index order, bounded."""
    members = CohortMember.objects.filter(starts_with(name, prefix)).order_by(name)
    return members.values_list(name, flat=True)[:SCAN_LIMIT]


def find_identifiers(prefix: str, id_type: str | None = None) -> PrefixMatches:
    """Identifiers of cohort members that start with `prefix` (one type, or any), exact matches
    first, then in order of value. A fixed number of queries, each bounded."""
    primary = [t for t in IdType.values if id_type in (None, t)]
    extras = [name for name in EXTRA_IDENTIFIERS if id_type in (None, name)]
    counts: dict[tuple[str, str, str], int] = {}
    truncated = False
    if primary:
        rows = list(primary_query(prefix, primary))
        truncated |= len(rows) == SCAN_LIMIT
        for key in rows:
            counts[key] = counts.get(key, 0) + 1
    for name in extras:
        for form in _forms(prefix, name):
            values = list(extra_query(name, form))
            truncated |= len(values) == SCAN_LIMIT
            for value in values:
                counts[(name, "", value)] = counts.get((name, "", value), 0) + 1
    folded = prefix.lower()
    matches = [
        IdentifierMatch(
            name=name,
            value=value,
            alias_label=label,
            members=count,
            exact=value == prefix or (name in CASE_FREE and value.lower() == folded),
        )
        for (name, label, value), count in counts.items()
    ]
    matches.sort(key=lambda match: (not match.exact, match.value, match.name, match.alias_label))
    return PrefixMatches(matches, truncated)
