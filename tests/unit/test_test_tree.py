"""The test tree itself: pytest (rootdir imports, no __init__.py) refuses two test files
with the same basename, which would stop `make test` at collection."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parents[1]


def test_no_two_test_modules_share_a_basename():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
