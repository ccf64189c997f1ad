"""harbor-cache: a pull-through cache for container images and Maven repositories."""

__version__ = "0.1.0"
