"""Building the translation catalogs: compile .po to .mo, extract messages, add new ones.

Run by the Makefile (`make i18n`, `make i18n-extract`, `make i18n-update`) and, for
compiling, by the test session. The application only reads the .mo files (web/i18n.py).
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import PoFileError, read_po, write_po

from web import i18n

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("server", "signaling", "web")
METHOD_MAP = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
OPTIONS = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}}
TEMPLATE = ROOT / "var" / "i18n" / "messages.pot"


class CatalogError(Exception):
    """A .po file that Babel finds malformed or inconsistent (e.g. too many plural forms)."""


def read_catalog(po: Path) -> Catalog:
    """A .po file, refused (CatalogError) when Babel finds it malformed."""
    try:
        with po.open("rb") as handle:
            return read_po(handle, locale=po.parent.parent.name, domain=po.stem, abort_invalid=True)
    except PoFileError as error:
        raise CatalogError(f"{po}: {error}") from error


def compile_catalogs(locale_dir: Path = i18n.LOCALE_DIR, force: bool = False) -> list[Path]:
    """Compile every stale .po (or every .po with force) to its .mo; the compiled ones."""
    pos = [po for locale in i18n.SUPPORTED for po in i18n.catalog_files(locale, locale_dir)]
    done = []
    for po in pos:
        if not (force or i18n.is_stale(po)):
            continue
        catalog = read_catalog(po)
        errors = [
            f"{po}:{message.lineno}: {error}"
            for message, message_errors in catalog.check()
            for error in message_errors
        ]
        if errors:
            raise CatalogError("\n".join(errors))
        # Written aside, then renamed: a server or test run starting meanwhile (or a
        # second compile) reads the old file or the new one, never half of one.
        with tempfile.NamedTemporaryFile(dir=po.parent, suffix=".mo.partial", delete=False) as out:
            # Fuzzy translations stay out, as with `pybabel compile`.
            write_mo(out, catalog, use_fuzzy=False)
        os.chmod(out.name, 0o644)  # as the .po: NamedTemporaryFile makes it 0600
        # Never older than its .po, even when the .po's time is ahead of the clock.
        made = max(time.time(), po.stat().st_mtime)
        os.utime(out.name, (made, made))
        os.replace(out.name, po.with_suffix(".mo"))
        done.append(po)
    return done


def extract_messages(root: Path = ROOT) -> Iterator[tuple[str | tuple[str, ...], str, int]]:
    """(message id or (singular, plural), file, line) for every message in our sources."""
    for source in SOURCES:
        directory = root / source
        if not directory.is_dir():
            continue
        for filename, lineno, message, _comments, _context in extract_from_dir(
            directory, METHOD_MAP, OPTIONS
        ):
            yield message, f"{source}/{filename}", lineno


def extracted_catalog(root: Path = ROOT) -> Catalog:
    """All the messages of the sources, as a template catalog (the .pot)."""
    template = Catalog(project="Dari", fuzzy=False)
    for message, where, line in extract_messages(root):
        ids = message if isinstance(message, tuple) else (message,)
        if ids and ids[0]:
            msgid = ids[:2] if len(ids) > 1 and ids[1] else ids[0]
            template.add(msgid, locations=[(where, line)])
    return template


def _key(message: Message) -> str:
    return str(message.id[0] if isinstance(message.id, (list, tuple)) else message.id)


def add_new_messages(domain: str, locale_dir: Path = i18n.LOCALE_DIR) -> dict[str, list[str]]:
    """Append the messages no catalog of a language has yet to that language's <domain>.po.

    Existing entries are left as they are (no re-wrapping, nothing marked obsolete): the
    catalogs also hold values shown through _(value) that no extractor can find.
    """
    template = extracted_catalog()
    added: dict[str, list[str]] = {}
    for locale in i18n.SUPPORTED:
        if locale == i18n.SOURCE_LOCALE:
            continue
        known = {_key(m) for po in i18n.catalog_files(locale, locale_dir) for m in read_catalog(po)}
        new = Catalog(locale=locale, domain=domain)
        for message in template:
            if message.id and _key(message) not in known:
                new.add(message.id, locations=message.locations)
        if not len(new):
            continue
        target = locale_dir / locale / "LC_MESSAGES" / f"{domain}.po"
        if not target.exists():
            raise CatalogError(f"{target} does not exist; name an existing domain")
        buffer = io.BytesIO()
        write_po(buffer, new, omit_header=True, width=100)
        with target.open("ab") as handle:
            handle.write(b"\n" + buffer.getvalue())
        added[locale] = [_key(m) for m in new if m.id]
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m web.catalogs", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    compile_ = commands.add_parser("compile", help="compile the stale .po files to .mo")
    compile_.add_argument("--force", action="store_true", help="compile every .po")
    commands.add_parser("extract", help=f"write every message of the sources to {TEMPLATE}")
    update = commands.add_parser("update", help="append new messages to a domain's .po")
    update.add_argument("domain", help="the catalog (domain) that receives them, e.g. web")
    args = parser.parse_args(argv)
    try:
        if args.command == "compile":
            for po in compile_catalogs(force=args.force):
                print(f"compiled {po.relative_to(ROOT)}")
        elif args.command == "extract":
            TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
            with TEMPLATE.open("wb") as handle:
                write_po(handle, extracted_catalog(), width=100, sort_by_file=True)
            print(f"wrote {TEMPLATE.relative_to(ROOT)}")
        else:
            for locale, messages in add_new_messages(args.domain).items():
                print(f"{locale}/{args.domain}.po: messages to translate: {len(messages)}")
    except CatalogError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
