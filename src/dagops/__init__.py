"""dagops: the library behind tasks.py, the runtime image and the tests."""

__version__ = "0.1.0"
