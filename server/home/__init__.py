"""Each role's home page, the language switch and the static files every page links to."""
