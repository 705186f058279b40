"""pyinfra operation modules recorded instead of run, for the roles' wiring tests."""


class RecordedOp:
    """What an operation returns, as far as the roles read it: its name and did_change()."""

    def __init__(self, name: str, changed: bool):
        self.name, self.changed = name, changed

    def did_change(self) -> bool:
        return self.changed


class Recorder:
    """Stands in for a pyinfra operations module: records each call; ops named in `changed` report a change."""

    def __init__(self, calls: list, prefix: str, changed: set):
        self.calls, self.prefix, self.changed = calls, prefix, changed

    def __getattr__(self, name):
        return lambda **kwargs: self(f"{self.prefix}.{name}", **kwargs)

    def __call__(self, operation, /, **kwargs):
        self.calls.append((operation, kwargs))
        return RecordedOp(kwargs["name"], kwargs["name"] in self.changed)
