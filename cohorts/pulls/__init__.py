"""Cohorts pulled from an Amplitude source: picked from the project's list (`services`), kept
within Amplitude's monthly download quota (`quota`), downloaded on their cadence (`run`, queued
by `dispatch`), the file read as a stream (`parse`)."""
