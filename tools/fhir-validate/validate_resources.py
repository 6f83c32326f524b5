#!/usr/bin/env python3
"""Check FHIR R4 documents with fhir.resources 6.4.0 (R4 4.0.1 models at the
top level of the package: `fhir.resources.bundle.Bundle`; 6.5.0+ are R4B/R5).

For each NAME.json (and its XML form NAME.xml beside it):
  1. parse the JSON with the R4 models (cardinality, types, unknown elements);
  2. parse the XML with the same models (namespace, element names, values);
  3. the XML and the JSON parse to the same resource;
  4. the XML, canonicalised (C14N 2.0), equals fhir.resources' own `.xml()`
     of the JSON, canonicalised: this checks element ORDER, which the
     library's XML parser itself does not check.
Usage: validate_resources.py NAME.json...   Exit 1 when any check fails.
"""

import json
import pathlib
import sys
from decimal import Decimal

import fhir.resources
from fhir.resources.bundle import Bundle
from lxml import etree

FHIR_NS = "http://hl7.org/fhir"

if fhir.resources.__fhir_version__ != "4.0.1":
    sys.exit(f"fhir.resources {fhir.resources.__version__} is not FHIR R4 4.0.1")


def canonical(xml_bytes):
    """C14N 2.0 of the document, whitespace-only text dropped (the library
    pretty-prints), and the decimal in valueQuantity/value as a
    number: the library writes the JSON 3120 as 3120.0, the same decimal."""
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(xml_bytes, parser)
    for element in root.iterfind(f".//{{{FHIR_NS}}}valueQuantity/{{{FHIR_NS}}}value"):
        element.set("value", str(Decimal(element.get("value")).normalize()))
    # The library writes the UTC offset of an instant as +00:00 where the JSON
    # said Z: the same instant (FHIR allows both), so compare them as one.
    for element in root.iter():
        value = element.get("value")
        if value and len(value) > 19 and value[10:11] == "T" and value.endswith("+00:00"):
            element.set("value", value[:-6] + "Z")
    return etree.tostring(root, method="c14n2", strip_text=True)


def check(json_path):
    problems = []
    data = json.loads(json_path.read_text(encoding="utf-8"))
    from_json = Bundle.parse_obj(data)
    xml_path = json_path.with_suffix(".xml")
    if not xml_path.exists():
        return [f"{xml_path} is missing"]
    ours = xml_path.read_bytes()
    from_xml = Bundle.parse_raw(ours, content_type="text/xml")
    if from_xml.dict() != from_json.dict():
        problems.append("the XML does not parse to the same Bundle as the JSON")
    reference = from_json.xml(pretty_print=False).encode("utf-8")
    if canonical(ours) != canonical(reference):
        a, b = canonical(ours).decode(), canonical(reference).decode()
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        problems.append(
            "the XML differs from fhir.resources' serialisation at character "
            f"{at}: ours ...{a[max(0, at - 80):at + 80]}... reference ...{b[max(0, at - 80):at + 80]}..."
        )
    return problems


def main(paths):
    failures = 0
    for p in map(pathlib.Path, paths):
        try:
            problems = check(p)
        except Exception as e:  # a validation error from the models is a finding
            problems = [f"{type(e).__name__}: {e}"]
        if problems:
            failures += 1
            print(f"INVALID {p}: " + " | ".join(problems))
        else:
            print(f"valid {p} (JSON, XML, XML == JSON, XML order == fhir.resources)")
    print("all valid" if failures == 0 else f"{failures} invalid")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
