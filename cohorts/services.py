"""Cohort services: every change runs in a transaction that also writes its audit entry.

Members are only ever written through `cohorts.membership`; these functions validate what a person
typed, call it, and record who did what.
"""

import re

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from cohorts import membership
from cohorts.membership import ChangeCounts, Identity
from cohorts.models import MAX_IDENTIFIER_LENGTH, Cohort, CsvUpload, IdType
from core import audit

# ---------------------------------------------------------------------------------------------
# Cohorts in the dashboard: create, rename, change members by pasting identifiers, delete.
# ---------------------------------------------------------------------------------------------

MAX_PASTED_IDENTIFIERS = 10_000
_SEPARATORS = re.compile(r"[,\s]+")


def _clean_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Enter a name."})
    if len(name) > 255:
        raise ValidationError({"name": "A cohort name has at most 255 characters."})
    return name


def _check_identifier(value: str, what: str) -> str | None:
    """Why `value` cannot be an identifier, or None when it can."""
    if len(value) > MAX_IDENTIFIER_LENGTH:
        return f"{what} is longer than {MAX_IDENTIFIER_LENGTH} characters"
    # Invisible characters copied from a spreadsheet would make an identity that never matches.
    if not value.isprintable():
        return f"{what} contains an invisible or control character"
    return None


def parse_identifiers(text: str) -> list[str]:
    """Pasted identifiers: one per line or separated by commas or spaces, blanks dropped."""
    values: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for value in _SEPARATORS.split(line):
            if not value:
                continue
            problem = _check_identifier(value, f"{value[:20]!r}")
            if problem:
                raise ValidationError({"text": f"Line {number}: {problem}."})
            values.append(value)
            if len(values) > MAX_PASTED_IDENTIFIERS:
                raise ValidationError(
                    {
                        "text": f"Line {number}: more than {MAX_PASTED_IDENTIFIERS:,} identifiers "
                        "in one paste. Paste fewer at a time, or upload a CSV."
                    }
                )
    if not values:
        raise ValidationError({"text": "Paste at least one identifier."})
    return values


def _clean_alias_label(id_type: str, alias_label: str) -> str:
    if id_type not in IdType.values:
        raise ValidationError({"id_type": f"Unknown identifier type {id_type!r}."})
    if id_type != IdType.USER_ALIAS:
        return ""  # the label is part of an alias's identity only
    label = alias_label.strip()
    if not label:
        raise ValidationError({"alias_label": "User aliases need their alias label."})
    problem = _check_identifier(label, "The alias label")
    if problem:
        raise ValidationError({"alias_label": f"{problem}."})
    return label


def create_cohort(*, name: str, actor: User | None, ip: str | None = None) -> Cohort:
    """A manual cohort, empty until members are pasted or uploaded."""
    with transaction.atomic():
        cohort = Cohort.objects.create(
            name=_clean_name(name), source=Cohort.Source.MANUAL, created_by=actor
        )
        audit.record(
            actor=actor,
            action="cohort.created",
            target=cohort,
            details={"source": cohort.source},
            ip=ip,
        )
    return cohort


def rename_cohort(*, cohort: Cohort, name: str, actor: User | None, ip: str | None = None) -> None:
    if cohort.source == Cohort.Source.PARTNER:
        raise ValidationError(
            f"{cohort.name} is named by its partner ({cohort.get_partner_display()}): "
            "rename it there and the next push renames it here."
        )
    new_name = _clean_name(name)
    if new_name == cohort.name:
        return
    old_name = cohort.name
    with transaction.atomic():
        Cohort.objects.filter(pk=cohort.pk).update(name=new_name)
        membership.record_change(cohort.pk, ChangeCounts(), renamed=True)
        cohort.name = new_name
        audit.record(
            actor=actor,
            action="cohort.renamed",
            target=cohort,
            details={"from": old_name, "to": new_name},
            ip=ip,
        )
    cohort.refresh_from_db(fields=["updated_at"])


def change_members(
    *,
    cohort: Cohort,
    id_type: str,
    alias_label: str,
    text: str,
    remove: bool,
    actor: User | None,
    ip: str | None = None,
) -> ChangeCounts:
    """Add (or remove) pasted identifiers. Invalid input changes nothing.

    The audit entry keeps the counts, never the identifiers.
    """
    cohort.refuse_manual_changes()
    label = _clean_alias_label(id_type, alias_label)
    values = parse_identifiers(text)
    identities = [Identity(id_type, value, label) for value in values]
    with transaction.atomic():
        if remove:
            counts = membership.apply_changes(cohort.pk, remove=identities)
        else:
            counts = membership.apply_changes(cohort.pk, add=identities)
        audit.record(
            actor=actor,
            action="cohort.members_removed" if remove else "cohort.members_added",
            target=cohort,
            details={
                "id_type": id_type,
                "pasted": len(values),
                "added": counts.added,
                "removed": counts.removed,
                "ignored": counts.ignored,
            },
            ip=ip,
        )
    cohort.refresh_from_db(fields=["member_count", "updated_at"])
    return counts


def _refuse_delete(cohort: Cohort, sync_names: list[str]) -> ValidationError:
    listed = ", ".join(sync_names)
    used_by = "1 sync uses" if len(sync_names) == 1 else f"{len(sync_names)} syncs use"
    return ValidationError(
        f"{cohort.name} cannot be deleted: {used_by} it ({listed}). "
        "Delete those syncs or point them at another cohort first."
    )


FINISHED_UPLOADS = (CsvUpload.Status.SUCCEEDED, CsvUpload.Status.FAILED)


def _sync_names(cohort: Cohort) -> list[str]:
    # Through the relation: cohorts know that syncs send them, not what a sync is.
    return list(cohort.syncs.values_list("name", flat=True))


def delete_cohort(*, cohort: Cohort, actor: User | None, ip: str | None = None) -> None:
    """Delete a cohort with its members and history; refused while any sync uses it."""
    pk = cohort.pk
    try:
        with transaction.atomic():
            names = _sync_names(cohort)
            if names:
                raise _refuse_delete(cohort, names)
            if cohort.uploads.exclude(status__in=FINISHED_UPLOADS).exists():
                raise ValidationError(
                    f"{cohort.name} cannot be deleted while a CSV upload is being applied to it; "
                    "try again when it has finished."
                )
            audit.record(
                actor=actor,
                action="cohort.deleted",
                target=cohort,
                details={
                    "name": cohort.name,
                    "source": cohort.source,
                    "member_count": cohort.member_count,
                },
                ip=ip,
            )
            cohort.delete()
    except (ProtectedError, IntegrityError):
        # A sync was created between the check and the delete: the foreign key refused it.
        cohort.pk = pk
        names = _sync_names(cohort)
        if not names:
            raise
        raise _refuse_delete(cohort, names) from None
