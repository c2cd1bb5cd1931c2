"""Write the README's settings table from the settings' own declarations.

    python scripts/readme_settings.py          # rewrite the table in README.md
    python scripts/readme_settings.py --check  # exit 1 if README.md's table is out of date

The table sits between the two marker comments in README.md; it is `settings_table()` of
lighting/settings.py, the module that declares and reads every setting, so the README cannot
say a default or a meaning the code does not have (tests/unit/lighting/test_settings.py fails
when they differ).
"""

from __future__ import annotations

import sys
from pathlib import Path

from lighting.settings import settings_table

README = Path(__file__).resolve().parent.parent / "README.md"
BEGIN = "<!-- settings table: written by scripts/readme_settings.py from lighting/settings.py -->"
END = "<!-- end of settings table -->"


def with_table(readme: str, table: str) -> str:
    """`readme` with the text between the markers replaced by `table`."""
    head, begin, rest = readme.partition(BEGIN + "\n")
    _old, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"README.md lacks the markers {BEGIN!r} ... {END!r}")
    return head + begin + table + end + tail


def main(argv: list[str]) -> int:
    current = README.read_text()
    wanted = with_table(current, settings_table())
    if "--check" in argv:
        if wanted != current:
            print("README.md's settings table is out of date: run scripts/readme_settings.py")
            return 1
        return 0
    if wanted != current:
        README.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
