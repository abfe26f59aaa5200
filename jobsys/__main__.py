"""``python -m jobsys``: the same as the `jobsys` command."""

from jobsys.cli import main

if __name__ == "__main__":
    main()
