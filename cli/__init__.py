"""luxflow's command line: one module per command group, assembled by `cli.main.run`.

A command group is a function that adds its sub-commands to the parser; each sub-command
sets `run(args, settings) -> exit status`. The runtime groups live here; the development
groups (demo, evaluate, simulate, bench) live with the tooling they need (`sim/`,
`benchmarks/`) and are added by the composition root when those packages are installed.
"""
