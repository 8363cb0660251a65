"""The package version (read by setuptools and by ``modelotel.__version__``).

Example:
    >>> import modelotel
    >>> modelotel.__version__ == __version__
    True
"""

__version__ = "0.1.0.dev0"
