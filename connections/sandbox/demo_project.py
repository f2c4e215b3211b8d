"""The simulated Amplitude project of the demo (`partner_sandbox --demo-project`, which `make
run` starts): made-up users, the same on every start, so the cohort `seed_demo` pulls from it is
downloaded for real by the worker rather than written into the database by the seed.

The simulator keeps nothing between starts; seeding here on each start is what makes the demo
source answer like the project it was connected to. Its members carry two user properties
(`plan`, `country`), as Amplitude's file does when properties are asked for.
"""

from __future__ import annotations

from connections.sandbox.state import JsonDict, SandboxState

DEMO_AMPLITUDE_COHORT_ID = "demo-trial-users"
DEMO_AMPLITUDE_COHORT_NAME = "Demo: trial users (Amplitude)"
# A second cohort nobody pulls yet: the source page offers it once its list is read.
DEMO_AMPLITUDE_OTHER_COHORT_ID = "demo-power-users"
DEMO_AMPLITUDE_OTHER_COHORT_NAME = "Demo: power users (Amplitude)"
DEMO_AMPLITUDE_PROPERTIES = ("plan", "country")

PLANS = ("trial", "starter", "pro")
COUNTRIES = ("US", "DE", "FR", "BR", "JP")
# demo-user-0400 ... 0639: the first hundred are also in the demo's "lapsed buyers" cohort, so
# a Braze profile of the demo carries both cohorts.
TRIAL_USERS = range(400, 640)
# Amplitude lists anonymous users without a user_id: a pull skips and counts them.
ANONYMOUS_TRIAL_USERS = 8
POWER_USERS = range(600, 640)


def _user(n: int) -> JsonDict:
    return {
        "amplitude_id": str(90_000_000 + n),
        "user_id": f"demo-user-{n:04d}",
        "plan": PLANS[n % len(PLANS)],
        "country": COUNTRIES[n % len(COUNTRIES)],
    }


def trial_users() -> list[JsonDict]:
    anonymous = [
        {"amplitude_id": str(80_000_000 + n), "user_id": "", "plan": "trial", "country": "US"}
        for n in range(ANONYMOUS_TRIAL_USERS)
    ]
    return [_user(n) for n in TRIAL_USERS] + anonymous


def seed_demo_project(state: SandboxState) -> None:
    """List the demo project's cohorts, with their members, in the simulator."""
    state.seed_amplitude_cohort(DEMO_AMPLITUDE_COHORT_ID, DEMO_AMPLITUDE_COHORT_NAME, trial_users())
    state.seed_amplitude_cohort(
        DEMO_AMPLITUDE_OTHER_COHORT_ID,
        DEMO_AMPLITUDE_OTHER_COHORT_NAME,
        [_user(n) for n in POWER_USERS],
    )
