"""No module under ``minitvm/`` is over 700 lines (docs/architecture.md, "Layers")."""
from pathlib import Path

MAX_LINES = 700
PACKAGE = Path(__file__).resolve().parent.parent / "minitvm"


def test_no_module_over_700_lines():
    sizes = {p.relative_to(PACKAGE.parent).as_posix(): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    too_long = {name: n for name, n in sorted(sizes.items()) if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines (split them by job): {too_long}"
