"""Braze keeps a bounded number of values in an array attribute (docs/partners/braze.md §9):
25 by default in its developer guide, raisable to 100, and up to 500 on its newer data-types
page. An add past the bound drops the oldest values. In array mode every sync of a Braze
connection adds its cohort's name to the same attribute, so with more cohorts than the bound a
member of many of them would silently lose memberships.

The workspace's bound is a connection setting (`array_cap`, the conservative 25 unless the
admin read another in Braze's dashboard). syncs/array_cap.py refuses a sync that would make more
cohorts share the attribute than that; the engine (syncs/engine/array_cap.py) never sends an
add that would overflow a member's array.
"""

DEFAULT_ARRAY_CAP = 25
# The most any Braze page documents (custom attributes, Arrays).
MAX_ARRAY_CAP = 500
# Membership modes that write the cohort's name into the shared array attribute.
ARRAY_MODES = ("array", "both")
# Where an admin reads the workspace's own bound.
WHERE_TO_READ_THE_CAP = (
    "Braze's developer guide says 25 unless raised (older pages: up to 100); its newer data "
    "types page says up to 500. Read the workspace's own value in Braze's dashboard under Data "
    "Settings > Custom Attributes, where an array attribute's maximum length is set."
)
