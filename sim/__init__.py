"""Development tooling: the fleet simulator, scenarios, evaluation and the development
commands (demo, evaluate, simulate). Never part of the runtime image."""
