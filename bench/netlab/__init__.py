"""The rural-link lab (`make netlab`): Dari's call page between two Chromium pages over
impaired links, inside a network namespace. See docs/benchmarks.md "Rural links"."""
