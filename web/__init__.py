"""Web client: templates, static files, translations and the shared rendering."""
