"""``python -m breedscope.cli``."""

from breedscope.cli import main

main()
