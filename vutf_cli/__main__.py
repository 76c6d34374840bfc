"""Allow ``python -m vutf_cli``."""

from vutf_cli.cli.app import main

if __name__ == "__main__":
    main()
