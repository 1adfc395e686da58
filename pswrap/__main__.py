"""``python -m pswrap`` is the ``pswrap`` command."""

from pswrap.cli import main

if __name__ == "__main__":
    main()
