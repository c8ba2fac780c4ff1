"""``python -m fakewatch`` = the ``fakewatch`` console script."""
import sys

from fakewatch.cli import main

if __name__ == "__main__":
    sys.exit(main())
