"""The one error local_directus raises on purpose."""


class LocalDirectusError(Exception):
    """Installing, starting or stopping a local Directus failed."""
