# The canonical -> OpenCRVS 2.x birth mapping of
# mappings/destinations/opencrvs/birth-notification.toml, written as a jq
# program: the reference that bench/jq-compare.sh times the gateway against.
# $cl holds the code lists (mappings/codelists/opencrvs-*.toml as JSON);
# input lines are {"record": <canonical record>, "key": <idempotency key>}.
def code($list): . as $v | $cl[$list].codes[($v|tostring)] // $cl[$list].default // error("no code in \($list)");
# A P-code deeper than a district falls back to its district (EXssdd), as the
# gateway's location list does.
def area: . as $v | $cl["opencrvs-admin-area"].codes as $a | $a[$v] // $a[$v[:6]] // error("no code in opencrvs-admin-area");
# ICAO 9303 XX codes are left out, as the mapping does.
# Membership in a list, spelled out: jq 1.6 has IN, jaq does not.
def one_of($xs): . as $v | any($xs[]; . == $v);
def stateless: if . and one_of(["XXA", "XXB", "XXC", "XXX"]) then null else . end;
def nonnull: with_entries(select(.value != null));
def ids($p): ($p.identifiers // []);
def idtype($p): if ($p.identifiers|not) then "NONE"
  elif (ids($p)|any(.scheme == "national_id")) then "NATIONAL_ID"
  elif (ids($p)|any(.scheme == "passport")) then "PASSPORT" else "NONE" end;
def nid($p): ([ids($p)[] | select(.scheme == "national_id") | .value] | first);
def passport($p): if (ids($p)|any(.scheme == "national_id")) then null
  else ([ids($p)[] | select(.scheme == "passport") | .value] | first) end;
def name($n): {firstname: $n.given_names, surname: $n.family_name} | nonnull | if . == {} then null else . end;
def place_address($p): if ($p.country|not) then null else
  {country: $p.country, addressType: (if $p.country == "EXA" then "DOMESTIC" else "INTERNATIONAL" end),
   administrativeArea: (if $p.country == "EXA" then ($p.admin_area | area) else null end)} | nonnull end;
def home_address($a): if $a then {country: "EXA", addressType: "DOMESTIC", administrativeArea: ($a | area)} else null end;

.record as $r | $r.child as $c | $c.place_of_birth as $p | $r.mother as $m | $r.father as $f | $r.informant as $i
| ($i.relationship | one_of(["mother", "father"]) | not) as $other_informant
| ($f != null and $f.residence_admin_area != null and $m.residence_admin_area != null
    and $f.residence_admin_area == $m.residence_admin_area) as $same_address
| {
  eventType: "birth",
  transactionId: .key,
  createdAtLocation: "cf1a580d-e405-5d49-93d8-20b7cc249525",
  declaration: ({
    "child.name": name($c.name // {}),
    "child.gender": ($c.sex | code("opencrvs-gender")),
    "child.dob": $c.date_of_birth,
    "child.placeOfBirth": ($p.type | code("opencrvs-place-of-birth")),
    "child.birthLocation": (if $p.type == "health_facility" then ($p.facility_code | code("opencrvs-health-facility")) else null end),
    "child.birthLocation.privateHome": (if $p.type == "home" then place_address($p) else null end),
    "child.birthLocation.other": (if ($p.type | one_of(["other", "in_transit"])) then place_address($p) else null end),
    "child.attendantAtBirth": (if ($r.attendant_at_birth // "unknown" | one_of(["other", "unknown"])) then null else ($r.attendant_at_birth | code("opencrvs-attendant-at-birth")) end),
    "child.birthType": ($r.birth_type | code("opencrvs-birth-type")),
    "child.weightAtBirth": (if $r.birth_weight then (if $r.birth_weight.unit == "g" then $r.birth_weight.value / 1000 else $r.birth_weight.value end) else null end),
    "informant.relation": ($i.relationship | code("opencrvs-informant-relation")),
    "informant.other.relation": (if $other_informant then ($i.relationship | code("opencrvs-informant-other-relation")) else null end),
    "informant.name": (if $other_informant then name($i.name // {}) else null end),
    "informant.phoneNo": $i.contact_phone,
    "informant.email": $i.contact_email,
    "mother.name": name($m.name),
    "mother.dob": $m.date_of_birth,
    "mother.dobUnknown": (if $m.age_years then true else null end),
    "mother.age": (if $m.age_years then {age: $m.age_years, asOfDateRef: "child.dob"} else null end),
    "mother.nationality": ($m.nationality | stateless),
    "mother.idType": idtype($m),
    "mother.nid": nid($m),
    "mother.passport": passport($m),
    "mother.address": home_address($m.residence_admin_area),
    "father.detailsNotAvailable": (if $f then false elif $r.father_details_not_available then true else null end),
    "father.reason": (if $r.father_details_not_available then ($r.father_details_not_available.reason | code("opencrvs-father-reason")) else null end)
  } + (if $f then {
    "father.name": name($f.name),
    "father.dob": $f.date_of_birth,
    "father.dobUnknown": (if $f.age_years then true else null end),
    "father.age": (if $f.age_years then {age: $f.age_years, asOfDateRef: "child.dob"} else null end),
    "father.nationality": ($f.nationality | stateless),
    "father.idType": idtype($f),
    "father.nid": nid($f),
    "father.passport": passport($f),
    "father.addressSameAs": (if $f.residence_admin_area then (if $same_address then "YES" else "NO" end) else null end),
    "father.address": (if $same_address then null else home_address($f.residence_admin_area) end)
  } else {} end) | nonnull)
}
