"""ConfigError: a setting normlab refuses, in one line: the key, the value, what is allowed."""


class ConfigError(ValueError):
    """A config that cannot run. Every one reads ``<key>=<value>[ <context>]; allowed: <...>``."""


def require(ok: bool, key: str, value, allowed: str, context: str = "") -> None:
    """Raise ConfigError ``key=value context; allowed: allowed`` unless `ok`."""
    if not ok:
        shown = "null" if value is None else getattr(value, "name", value)
        raise ConfigError(f"{key}={shown}{' ' + context if context else ''}; allowed: {allowed}")
