"""The consumer scaffold behind ``neotool-new``: name rules (``names.py``), the templates of a minimal
standard-shaped package (``templates/``, shipped as package data) and the writer that fills them (``render.py``).
"""
