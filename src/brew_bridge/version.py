"""The package version, in a module of its own: the parts read it (the User-Agent) without
importing the public API, which imports them."""

__version__ = "0.1.0"
