"""breedscope's first-party plugins. Each module registers through the ``breedscope``
entry-point group, exactly as a third-party plugin does."""
