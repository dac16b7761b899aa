"""The ``cjm`` command line: one module per command, registered on the app in ``main``."""
