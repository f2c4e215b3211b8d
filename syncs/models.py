"""Cohorts, syncs and runs arrive with the cohorts-in and sync-engine issues."""
