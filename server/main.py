"""The ASGI entry point for uvicorn: `server.main:app`."""

import gc

from server.app import create_app

app = create_app()

# Everything made so far (modules, the app, its routes, schemas and mappers: some
# 200,000 objects) lives as long as the process. Out of the collector's sight, a full
# collection walks only what came later, mostly the connections' objects: with
# thousands of sockets open, each such pass otherwise also walks this whole set again.
gc.freeze()
