"""``python -m mmfuse`` is the ``mmfuse`` command."""

from mmfuse.main import main

if __name__ == "__main__":
    main()
