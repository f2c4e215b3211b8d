"""The project's RQ queues pointed at one Redis, for the tests' settings."""

QUEUES = ("default", "runs")


def queues_at(url: str, timeout: int = 60) -> dict[str, dict[str, object]]:
    """Both of the project's RQ queues on the Redis at `url`: `runs` and `default`."""
    return {name: {"URL": url, "DEFAULT_TIMEOUT": timeout} for name in QUEUES}
