"""The simulators: faithful local servers standing in for each target."""

__all__: list[str] = []  # nothing here: each target's simulator is its own subpackage
