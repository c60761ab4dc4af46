"""``python -m bridge``: the same as ``kitplay-bridge``."""

from .main import main

main()
