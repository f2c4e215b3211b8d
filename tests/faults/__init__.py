"""Faults the sync engine must survive: workers killed mid-run, a partner that throttles, fails
or refuses the credentials, and a second dispatcher. Helpers in simulator.py, fixtures in
conftest.py."""
