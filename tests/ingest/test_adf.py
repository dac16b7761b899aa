"""The ADF/XML lead reader: one row per prospect, flat string columns, refusals collected and
named by file, document and element, never quoting a contact detail."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cjm_ml.ingest.adf import ERROR_LINES, AdfError, read_adf
from cjm_ml.simulation import SimulationConfig, simulate
from cjm_ml.simulation.assumptions import load_assumptions
from cjm_ml.simulation.exports import ADF_LEADS, write_raw_exports

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>\n<?adf version="1.0"?>\n'
#: A full lead: two ids, a wanted car and a trade-in, an address, a comment, a salesperson.
FULL = """<adf>
 <prospect status="new">
  <id sequence="1" source="dealer-crm">L-1</id>
  <id sequence="2" source="web-visitor">v-9</id>
  <requestdate>2025-03-09T02:30:00</requestdate>
  <vehicle interest="trade-in" status="used">
   <year>2015</year><make>Honda</make><model>Civic</model><odometer>91000</odometer>
  </vehicle>
  <vehicle interest="buy" status="new">
   <year>2025</year><make>Ford</make><model>Escape</model><trim>ST-Line</trim>
   <vin>ZZZFAKE0000000001</vin><stock>F123</stock>
   <price type="quote" currency="USD">31900</price>
  </vehicle>
  <customer>
   <contact primarycontact="1">
    <name part="first">Zoë</name>
    <name part="last">O'Brien</name>
    <email>zoe.obrien@example.com</email>
    <phone type="cellphone">201-555-0101</phone>
    <phone type="voice">201-555-0102</phone>
    <address type="home">
     <street line="1">1 Main St</street><street line="2">Apt 2</street>
     <city>Newark</city><regioncode>NJ</regioncode><postalcode>07102</postalcode>
     <country>US</country>
    </address>
   </contact>
   <comments>Call after 5 &amp; ask for Zoë</comments>
  </customer>
  <vendor>
   <id source="dms">S1</id>
   <vendorname>Summit Ford &amp; Sons</vendorname>
   <contact><name part="full">Sam Seller</name></contact>
  </vendor>
  <provider>
   <id source="autotrader">AT-77</id>
   <name part="full">autotrader</name>
   <service>Third-party listing</service>
   <url>https://www.example.net/listing</url>
  </provider>
 </prospect>
</adf>
"""
#: A bare lead: a full name only, no vehicle, an id without a source, in a namespace.
BARE = """<ADF xmlns="urn:example:adf">
 <Prospect>
  <id>P-2</id>
  <requestdate> 2025-11-02T01:30:00-05:00 </requestdate>
  <customer><contact><name>Ann Lee</name><email>ann.lee@example.org</email></contact></customer>
  <vendor><vendorname>Bayview Chevrolet</vendorname></vendor>
  <provider><name>Website</name><service></service></provider>
 </Prospect>
</ADF>
"""
#: Two prospects in one document, the second re-sent; a comment holding "</adf>".
TWO = """<adf>
 <!-- split safely: </adf> here ends nothing -->
 <prospect status="new">
  <id source="dealer-crm">L-3</id><requestdate>2025-06-01T09:00:00</requestdate>
  <vehicle><vin>ZZZFAKE0000000003</vin></vehicle>
  <customer><contact><phone>(201) 555-0103</phone></contact></customer>
 </prospect>
 <prospect status="resend">
  <id source="dealer-crm">L-4</id><requestdate>2025-06-01T09:05:00</requestdate>
  <customer><contact><name part="first">Bo</name></contact></customer>
 </prospect>
</adf>
"""
COLUMNS = [
    "source_file",
    "document",
    "prospect",
    "prospect_status",
    "id_dealer-crm",
    "id_web-visitor",
    "id",
    "request_date",
    "vehicle_interest",
    "vehicle_status",
    "vehicle_year",
    "vehicle_make",
    "vehicle_model",
    "vehicle_trim",
    "vehicle_vin",
    "vehicle_stock",
    "vehicle_odometer",
    "vehicle_price",
    "vehicle_price_type",
    "vehicle_price_currency",
    "trade_in_year",
    "trade_in_make",
    "trade_in_model",
    "trade_in_vin",
    "trade_in_odometer",
    "contact_first_name",
    "contact_last_name",
    "contact_full_name",
    "contact_email",
    "contact_phone",
    "contact_phone_type",
    "contact_street",
    "contact_city",
    "contact_region",
    "contact_postal_code",
    "contact_country",
    "customer_comments",
    "vendor_id",
    "vendor_name",
    "vendor_contact_name",
    "provider_id",
    "provider_name",
    "provider_service",
    "provider_url",
]
#: The three documents' rows: the values present (everything else missing).
ROWS: list[dict[str, object]] = [
    {
        "prospect": 1,
        "prospect_status": "new",
        "id_dealer-crm": "L-1",
        "id_web-visitor": "v-9",
        "request_date": "2025-03-09T02:30:00",
        "vehicle_interest": "buy",
        "vehicle_status": "new",
        "vehicle_year": "2025",
        "vehicle_make": "Ford",
        "vehicle_model": "Escape",
        "vehicle_trim": "ST-Line",
        "vehicle_vin": "ZZZFAKE0000000001",
        "vehicle_stock": "F123",
        "vehicle_price": "31900",
        "vehicle_price_type": "quote",
        "vehicle_price_currency": "USD",
        "trade_in_year": "2015",
        "trade_in_make": "Honda",
        "trade_in_model": "Civic",
        "trade_in_odometer": "91000",
        "contact_first_name": "Zoë",
        "contact_last_name": "O'Brien",
        "contact_email": "zoe.obrien@example.com",
        "contact_phone": "201-555-0101",
        "contact_phone_type": "cellphone",
        "contact_street": "1 Main St",
        "contact_city": "Newark",
        "contact_region": "NJ",
        "contact_postal_code": "07102",
        "contact_country": "US",
        "customer_comments": "Call after 5 & ask for Zoë",
        "vendor_id": "S1",
        "vendor_name": "Summit Ford & Sons",
        "vendor_contact_name": "Sam Seller",
        "provider_id": "AT-77",
        "provider_name": "autotrader",
        "provider_service": "Third-party listing",
        "provider_url": "https://www.example.net/listing",
    },
    {
        "prospect": 1,
        "id": "P-2",
        "request_date": "2025-11-02T01:30:00-05:00",
        "contact_full_name": "Ann Lee",
        "contact_email": "ann.lee@example.org",
        "vendor_name": "Bayview Chevrolet",
        "provider_name": "Website",
    },
    {
        "prospect": 1,
        "prospect_status": "new",
        "id_dealer-crm": "L-3",
        "request_date": "2025-06-01T09:00:00",
        "vehicle_vin": "ZZZFAKE0000000003",
        "contact_phone": "(201) 555-0103",
    },
    {
        "prospect": 2,
        "prospect_status": "resend",
        "id_dealer-crm": "L-4",
        "request_date": "2025-06-01T09:05:00",
        "contact_first_name": "Bo",
    },
]
#: Contact values no error message may hold.
CONTACTS = ("Zoë", "O'Brien", "zoe.obrien", "201-555-0101", "Ann Lee", "ann.lee", "555-0103")


def _present(table: pd.DataFrame) -> list[dict[str, object]]:
    """Each row's present values, without where it came from."""
    rows = table.drop(columns=["source_file", "document"]).to_dict("records")
    return [{k: v for k, v in row.items() if not pd.isna(v)} for row in rows]


def _refusal(paths: list[Path]) -> str:
    with pytest.raises(AdfError) as caught:
        read_adf(paths)
    message = str(caught.value)
    assert not [c for c in CONTACTS if c in message]
    return message


def test_a_folder_gives_one_row_per_prospect_with_flat_string_columns(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(DECLARATION + FULL, encoding="utf-8")
    (tmp_path / "b.XML").write_text(BARE, encoding="utf-8")
    (tmp_path / "c.xml").write_text(DECLARATION + TWO, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a lead", encoding="utf-8")
    table = read_adf([tmp_path])
    assert list(table.columns) == COLUMNS
    assert _present(table) == ROWS
    assert table["source_file"].tolist() == [
        str(tmp_path / n) for n in ["a.xml", "b.XML", "c.xml", "c.xml"]
    ]
    assert table["document"].tolist() == [1, 1, 1, 1]
    assert table["document"].dtype == "int64"
    assert table["prospect"].dtype == "int64"
    assert (table.drop(columns=["document", "prospect"]).dtypes == "string").all()


def test_one_file_of_many_documents_is_split_after_each_adf(tmp_path: Path) -> None:
    latin = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n' + FULL).encode("iso-8859-1")
    many = tmp_path / "batch.xml"
    many.write_bytes(latin + b"\n\n" + BARE.encode() + (DECLARATION + TWO).encode("iso-8859-1"))
    table = read_adf([many])
    assert _present(table) == ROWS
    assert table["document"].tolist() == [1, 2, 3, 3]
    assert set(table["source_file"]) == {str(many)}


def test_utf16_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    path = tmp_path / "wide.xml"
    path.write_bytes(('<?xml version="1.0" encoding="UTF-16"?>\n' + BARE).encode("utf-16"))
    assert _present(read_adf([path])) == [ROWS[1]]


def test_the_simulators_adf_export_gives_each_lead_once_plus_its_resent_copies(
    tmp_path: Path,
) -> None:
    group = simulate(SimulationConfig(rooftops=2, customers=300, seed=5))
    settings = load_assumptions().exports.model_copy(update={"duplicate_row_share": 0.2})
    adf = write_raw_exports(group, tmp_path / "raw", settings)["adf"]
    table = read_adf([adf])
    leads = group.events[group.events["event_type"].isin(list(ADF_LEADS))]
    resent = table.drop(columns="document").duplicated()
    assert resent.sum() > 0
    assert set(table.loc[resent, "source_file"]) == {str(adf / "third_party_leads.xml")}
    assert len(table) - resent.sum() == len(leads)
    assert table.loc[~resent, "id_dealer-crm"].is_unique
    service = table["provider_service"].value_counts().to_dict()
    third_party = int((leads["event_type"] == "lead_third_party").sum())
    assert service == {
        "Website form": len(leads) - third_party,
        "Third-party listing": third_party + int(resent.sum()),
    }
    assert table["request_date"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d").all()


def test_a_document_that_is_not_xml_is_named_with_where_it_breaks(tmp_path: Path) -> None:
    path = tmp_path / "leads.xml"
    broken = FULL.replace("</email>", "</mail>")
    path.write_text(DECLARATION + TWO + DECLARATION + broken, encoding="utf-8")
    assert _refusal([path]) == (
        f"1 problem in the ADF input:\n- {path}, document 2: not XML (mismatched tag at line 34,"
        " column 36)"
    )


def test_a_truncated_last_document_is_not_xml(tmp_path: Path) -> None:
    path = tmp_path / "leads.xml"
    path.write_text(TWO + FULL[:200], encoding="utf-8")
    assert _refusal([path]) == (
        f"1 problem in the ADF input:\n- {path}, document 2: not XML (unclosed token at"
        " line 18, column 3)"
    )


def test_a_document_without_prospect_or_requestdate_is_refused(tmp_path: Path) -> None:
    no_date = FULL.replace("<requestdate>2025-03-09T02:30:00</requestdate>", "")
    empty_date = BARE.replace(" 2025-11-02T01:30:00-05:00 ", " ")
    (tmp_path / "a.xml").write_text(no_date, encoding="utf-8")
    (tmp_path / "b.xml").write_text(
        "<adf><customer/></adf>" + empty_date + "<lead><prospect/></lead>", encoding="utf-8"
    )
    assert _refusal([tmp_path]) == (
        "4 problems in the ADF input:\n"
        f"- {tmp_path / 'a.xml'}, document 1, element <prospect> 1: no <requestdate>\n"
        f"- {tmp_path / 'b.xml'}, document 1, element <adf>: no <prospect>\n"
        f"- {tmp_path / 'b.xml'}, document 2, element <prospect> 1: no <requestdate>\n"
        f"- {tmp_path / 'b.xml'}, document 3: root element <lead>, expected <adf>"
    )


def test_doctype_and_entity_declarations_are_refused_before_parsing(tmp_path: Path) -> None:
    laughs = (
        '<?xml version="1.0"?>\n<!DOCTYPE adf [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>\n'
    )
    external = '<!DOCTYPE adf SYSTEM "http://example.com/adf.dtd">\n'
    path = tmp_path / "evil.xml"
    path.write_text(laughs + FULL.replace("Honda", "&lol2;") + external + BARE, encoding="utf-8")
    refused = "<!DOCTYPE> or <!ENTITY> declaration refused (no DTDs)"
    assert _refusal([path]) == (
        f"2 problems in the ADF input:\n- {path}, document 1: {refused}\n"
        f"- {path}, document 2: {refused}"
    )


def test_paths_that_hold_no_documents_are_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "blank.xml").write_text(" \n", encoding="utf-8")
    (tmp_path / "latin.xml").write_bytes(b"<adf>\n<prospect>Zo\xeb</prospect></adf>")
    (tmp_path / "odd.xml").write_text('<?xml version="1.0" encoding="x-nope"?><adf/>')
    paths = [tmp_path / n for n in ("missing.xml", "empty", "blank.xml", "latin.xml", "odd.xml")]
    assert _refusal(paths) == (
        "5 problems in the ADF input:\n"
        f"- {paths[0]}: no such file or folder\n"
        f"- {paths[1]}: no .xml files in this folder\n"
        f"- {paths[2]}: empty, no <adf> document\n"
        f"- {paths[3]}, line 2: not utf-8 text (byte 19)\n"
        f"- {paths[4]}: unknown encoding 'x-nope' in its XML declaration"
    )
    assert _refusal([]) == "1 problem in the ADF input:\n- no ADF file or folder given"


def test_refusals_are_collected_over_all_files_and_capped(tmp_path: Path) -> None:
    for n in range(ERROR_LINES + 5):
        (tmp_path / f"lead{n:02d}.xml").write_text(FULL.replace("</adf>", ""), encoding="utf-8")
    (tmp_path / "good.xml").write_text(BARE, encoding="utf-8")
    message = _refusal([tmp_path])
    lines = message.splitlines()
    assert lines[0] == f"{ERROR_LINES + 5} problems in the ADF input:"
    first = tmp_path / "lead00.xml"
    assert lines[1] == f"- {first}, document 1: not XML (no element found at line 42, column 1)"
    assert len(lines) == 1 + ERROR_LINES + 1
    assert lines[-1] == "- and 5 more"
