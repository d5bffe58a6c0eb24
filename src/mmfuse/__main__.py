"""``python -m mmfuse`` is the ``mmfuse`` command."""

from mmfuse.cli import main

if __name__ == "__main__":
    main()
