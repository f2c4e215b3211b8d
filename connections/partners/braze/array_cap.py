"""Braze keeps at most 25 values in an array attribute by default (docs/partners/braze.md §9),
and an add past that silently drops the oldest values. In array mode every sync of a Braze
connection adds its cohort's name to the same attribute, so when more than 25 cohorts share it
a member of many of them can lose memberships. syncs/array_cap.py counts who would.
"""

BRAZE_ARRAY_CAP = 25
# Membership modes that write the cohort's name into the shared array attribute.
ARRAY_MODES = ("array", "both")
