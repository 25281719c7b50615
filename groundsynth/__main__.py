"""`python -m groundsynth <command>`: the same command line as the `groundsynth` console script."""
import sys

from groundsynth.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
