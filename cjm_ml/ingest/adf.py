"""The ADF/XML lead reader: ADF 1.0 lead documents in, one row per prospect out.

ADF (Auto-lead Data Format, ``<?adf version="1.0"?>``) is how websites and third-party
listings send leads to a dealer. ``read_adf(paths)`` reads a folder of ``.xml`` files, or files
that each hold one or many ``<adf>`` documents (concatenated, each possibly with its own XML
declaration: such a file is not well-formed XML as a whole, so it is split after each
``</adf>`` that ends a document, and each document is parsed on its own).

**Columns** (every value a string, as written and trimmed, empty -> missing; times are left as
written, naive or not: a mapping converts them with the rooftop's time zone):

- ``source_file`` (the path as given or found in the folder), ``document`` (1-based number of
  the ``<adf>`` document in its file, an integer), ``prospect`` (1-based number of the
  ``<prospect>`` in its document, an integer), ``prospect_status`` (``new``, ``resend``).
- ``id_<source>``: each ``<prospect><id source="...">``, the source as written (``id`` when it
  has none; the first of a source when repeated). These columns follow the documents.
- ``request_date``: ``<requestdate>``.
- ``vehicle_*``: the first ``<vehicle>`` not offered as a trade-in: ``interest``, ``status``,
  ``year``, ``make``, ``model``, ``trim``, ``vin``, ``stock``, ``odometer``, ``price``,
  ``price_type``, ``price_currency``.
- ``trade_in_*``: the first ``<vehicle interest="trade-in">``: ``year``, ``make``, ``model``,
  ``vin``, ``odometer``.
- ``contact_*``: ``<customer><contact>`` (personal data, to be hashed at ingest):
  ``first_name``, ``last_name``, ``full_name`` (``part="full"`` or no part), ``email``,
  ``phone`` and ``phone_type`` (the first phone), ``street`` (the first line), ``city``,
  ``region``, ``postal_code``, ``country``; ``customer_comments`` (free text, may hold anything).
- ``vendor_id``, ``vendor_name``, ``vendor_contact_name``: the rooftop and its salesperson.
- ``provider_id``, ``provider_name``, ``provider_service``, ``provider_url``: the lead source.

Element names are matched without namespace and case. Nothing is fetched: no DTD, no external
entity; a document with a ``<!DOCTYPE`` or ``<!ENTITY`` declaration is refused before parsing
(the standard library's expat, entity expansion never reached).

**Refusals** are collected over all files and raised together as one ``AdfError`` (the first
``ERROR_LINES`` listed, the rest counted; nothing returned): a path that is missing, a folder
without ``.xml`` files, a file that cannot be read or decoded, a document that is not XML, is
not ``<adf>``, has no ``<prospect>``, or a prospect without ``<requestdate>``. Each names the
file, the document number and the element; none quotes a value, so no contact detail reaches an
error or a log.
"""

from __future__ import annotations

import codecs
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

#: How many refusals an ``AdfError`` lists before it counts the rest.
ERROR_LINES = 20
#: Columns before the ``id_<source>`` columns, and after them.
LEADING_COLUMNS: tuple[str, ...] = ("source_file", "document", "prospect", "prospect_status")
#: (column, path from the element, attribute or None for the text), by part of the prospect.
_VEHICLE: tuple[tuple[str, str, str | None], ...] = (
    ("interest", ".", "interest"),
    ("status", ".", "status"),
    ("year", "year", None),
    ("make", "make", None),
    ("model", "model", None),
    ("trim", "trim", None),
    ("vin", "vin", None),
    ("stock", "stock", None),
    ("odometer", "odometer", None),
    ("price", "price", None),
    ("price_type", "price", "type"),
    ("price_currency", "price", "currency"),
)
_TRADE_IN: tuple[tuple[str, str, str | None], ...] = (
    ("year", "year", None),
    ("make", "make", None),
    ("model", "model", None),
    ("vin", "vin", None),
    ("odometer", "odometer", None),
)
_CONTACT: tuple[tuple[str, str, str | None], ...] = (
    ("first_name", "name[@part='first']", None),
    ("last_name", "name[@part='last']", None),
    ("email", "email", None),
    ("phone", "phone", None),
    ("phone_type", "phone", "type"),
    ("street", "address/street", None),
    ("city", "address/city", None),
    ("region", "address/regioncode", None),
    ("postal_code", "address/postalcode", None),
    ("country", "address/country", None),
)
_PARTIES: tuple[tuple[str, str, str | None], ...] = (
    ("customer_comments", "customer/comments", None),
    ("vendor_id", "vendor/id", None),
    ("vendor_name", "vendor/vendorname", None),
    ("vendor_contact_name", "vendor/contact/name", None),
    ("provider_id", "provider/id", None),
    ("provider_name", "provider/name", None),
    ("provider_service", "provider/service", None),
    ("provider_url", "provider/url", None),
)
TRAILING_COLUMNS: tuple[str, ...] = (
    "request_date",
    *(f"vehicle_{c}" for c, _, _ in _VEHICLE),
    *(f"trade_in_{c}" for c, _, _ in _TRADE_IN),
    *(f"contact_{c}" for c, _, _ in _CONTACT[:2]),
    "contact_full_name",
    *(f"contact_{c}" for c, _, _ in _CONTACT[2:]),
    *(c for c, _, _ in _PARTIES),
)
_TRADE_IN_INTERESTS = frozenset({"trade-in", "tradein", "trade_in", "trade in"})

#: Where one document ends: ``</adf>`` followed by markup (a tag, declaration, comment) or the
#: end of the file, so a ``</adf>`` inside a comment or CDATA section that goes on splits nothing.
_DOCUMENT_END = re.compile(r"</adf\s*>(?=\s*(?:<[?!A-Za-z_]|\Z))", re.IGNORECASE)
_DECLARATION = re.compile(r"<\?xml\s[^>]*\?>")
_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")
_REFUSED = re.compile(r"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
_NON_TEXT = re.compile(r"\S")


class AdfError(ValueError):
    """ADF input ``read_adf`` refuses: every refusal found, one per line (capped), each naming
    file, document and element, never a value."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"- {p}" for p in self.problems[:ERROR_LINES])
        more = len(self.problems) - ERROR_LINES
        rest = f"\n- and {more:,} more" if more > 0 else ""
        count = len(self.problems)
        super().__init__(
            f"{count} problem{'s' if count > 1 else ''} in the ADF input:\n{shown}{rest}"
        )


@dataclass(frozen=True)
class _Document:
    """One ``<adf>`` document's text, where it sits in its file."""

    source_file: str
    number: int
    first_line: int
    text: str


def read_adf(paths: Sequence[Path]) -> pd.DataFrame:
    """One row per ``<prospect>`` of the ADF documents in ``paths`` (files, or folders read for
    their ``*.xml`` files in name order), in file and document order, with the columns the
    module docstring lists. Refuses bad input with one ``AdfError`` listing every problem."""
    problems: list[str] = []
    rows: list[dict[str, object]] = []
    files = _files(paths, problems)
    for document in _documents(files, problems):
        rows.extend(_prospects(document, problems))
    if problems:
        raise AdfError(problems)
    ids = list(dict.fromkeys(k for row in rows for k in row if k == "id" or k.startswith("id_")))
    columns = [*LEADING_COLUMNS, *ids, *TRAILING_COLUMNS]
    table = pd.DataFrame.from_records(rows, columns=columns)
    text = [c for c in columns if c not in ("document", "prospect")]
    table[text] = table[text].astype("string")
    table[["document", "prospect"]] = table[["document", "prospect"]].astype("int64")
    log.info("read %d ADF prospects from %d files", len(table), len(files))
    return table


def _files(paths: Sequence[Path], problems: list[str]) -> list[Path]:
    """The files to read: each file given, and each folder's ``*.xml`` files by name."""
    files: list[Path] = []
    if not paths:
        problems.append("no ADF file or folder given")
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".xml" and p.is_file())
            if not found:
                problems.append(f"{path}: no .xml files in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(f"{path}: no such file or folder")
    return files


def _documents(files: Sequence[Path], problems: list[str]) -> Iterator[_Document]:
    """Each file's ``<adf>`` documents (1-based), split after the ``</adf>`` ending each."""
    for path in files:
        text = _decoded(path, problems)
        if text is None:
            continue
        start, line, number = 0, 1, 0
        for end in [m.end() for m in _DOCUMENT_END.finditer(text)] + [len(text)]:
            piece = text[start:end]
            lead = _NON_TEXT.search(piece)
            if lead is not None:
                number += 1
                first = line + piece.count("\n", 0, lead.start())
                yield _Document(str(path), number, first, piece[lead.start() :])
            line += piece.count("\n")
            start = end
        if number == 0:
            problems.append(f"{path}: empty, no <adf> document")


def _decoded(path: Path, problems: list[str]) -> str | None:
    """The file's text, decoded by its byte-order mark or XML declaration (UTF-8 otherwise),
    without XML declarations; None (and a problem) when it cannot be read or decoded."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot be read ({type(exc).__name__})")
        return None
    encoding = "utf-8"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif data.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif (declared := _ENCODING.match(data)) is not None:
        encoding = declared.group(1).decode("ascii")
    try:
        text = data.decode(encoding)
    except LookupError:
        problems.append(f"{path}: unknown encoding {encoding[:40]!r} in its XML declaration")
        return None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.append(f"{path}, line {line}: not {encoding} text (byte {exc.start + 1})")
        return None
    return _DECLARATION.sub("", text)


def _prospects(document: _Document, problems: list[str]) -> list[dict[str, object]]:
    """The document's prospects as rows; none (and a problem) when it is refused."""
    where = f"{document.source_file}, document {document.number}"
    if _REFUSED.search(document.text):
        problems.append(f"{where}: <!DOCTYPE> or <!ENTITY> declaration refused (no DTDs)")
        return []
    try:
        root = ET.fromstring(document.text)
    except ET.ParseError as exc:
        problems.append(f"{where}: not XML ({_parse_error(exc, document.first_line)})")
        return []
    for element in root.iter():
        if isinstance(element.tag, str):
            element.tag = element.tag.rpartition("}")[2].lower()
    if root.tag != "adf":
        problems.append(f"{where}: root element <{root.tag[:40]}>, expected <adf>")
        return []
    prospects = root.findall("prospect")
    if not prospects:
        problems.append(f"{where}, element <adf>: no <prospect>")
    rows = []
    for number, prospect in enumerate(prospects, start=1):
        row = _prospect_row(prospect)
        if row.get("request_date") is None:
            problems.append(f"{where}, element <prospect> {number}: no <requestdate>")
        row.update(source_file=document.source_file, document=document.number, prospect=number)
        rows.append(row)
    return rows


def _parse_error(exc: ET.ParseError, first_line: int) -> str:
    """Expat's reason, and where in the file (expat never quotes the text)."""
    line, column = exc.position
    reason = str(exc).split(":")[0]
    return f"{reason} at line {first_line + line - 1}, column {column + 1}"


def _prospect_row(prospect: ET.Element) -> dict[str, object]:
    """A prospect's values by column (missing ones left out)."""
    row: dict[str, object] = {"prospect_status": _value(prospect, ".", "status")}
    for element in prospect.findall("id"):
        source = (element.get("source") or "").strip()
        column = f"id_{source}" if source else "id"
        if column not in row:
            row[column] = _value(element, ".", None)
    row["request_date"] = _value(prospect, "requestdate", None)
    vehicles = prospect.findall("vehicle")
    trade_ins = [v for v in vehicles if _is_trade_in(v)]
    wanted = [v for v in vehicles if not _is_trade_in(v)]
    if wanted:
        row.update(_fields(wanted[0], _VEHICLE, "vehicle_"))
    if trade_ins:
        row.update(_fields(trade_ins[0], _TRADE_IN, "trade_in_"))
    contact = prospect.find("customer/contact")
    if contact is not None:
        row.update(_fields(contact, _CONTACT, "contact_"))
        full = [n for n in contact.findall("name") if n.get("part", "full").lower() == "full"]
        row["contact_full_name"] = _value(full[0], ".", None) if full else None
    row.update(_fields(prospect, _PARTIES, ""))
    return row


def _is_trade_in(vehicle: ET.Element) -> bool:
    return (vehicle.get("interest") or "").strip().lower() in _TRADE_IN_INTERESTS


def _fields(
    element: ET.Element, fields: tuple[tuple[str, str, str | None], ...], prefix: str
) -> dict[str, object]:
    return {prefix + column: _value(element, path, attribute) for column, path, attribute in fields}


def _value(element: ET.Element, path: str, attribute: str | None) -> str | None:
    """The trimmed text (or attribute) of the first element at ``path``; None when missing
    or empty."""
    found = element if path == "." else element.find(path)
    if found is None:
        return None
    raw = found.get(attribute) if attribute is not None else "".join(found.itertext())
    value = raw.strip() if raw else ""
    return value or None
