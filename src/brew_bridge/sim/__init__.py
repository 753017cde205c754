"""The simulators: faithful local servers standing in for each target."""
