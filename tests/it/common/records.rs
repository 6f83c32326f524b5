//! Generated canonical birth notifications for property tests: varied scripts,
//! awkward characters, every optional shape, values drawn from realistic pools
//! and from the edges of what the canonical schema allows.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::TestRunner;
use serde_json::{Map, Value, json};

/// A script with sample names in it and their Latin forms.
type Names = (
    &'static str,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
);

/// (script, given names, family names, Latin given, Latin family)
const NAMES: &[Names] = &[
    (
        "Latn",
        &[
            "Amina",
            "Jean-Luc",
            "Zoë",
            "Seán",
            "Ben & Jerry",
            "<b>Ana</b>",
        ],
        &["O'Brien", "Ndiaye", "Müller", "D'Souza"],
        &[],
        &[],
    ),
    (
        "Cyrl",
        &["Анастасия", "Олег"],
        &["Шевченко", "Іваненко"],
        &["Anastasiia", "Oleh"],
        &["Shevchenko", "Ivanenko"],
    ),
    (
        "Arab",
        &["فاطمة", "عبد الله"],
        &["الحسن", "حداد"],
        &["Fatima", "Abdullah"],
        &["Al-Hassan", "Haddad"],
    ),
    (
        "Beng",
        &["রহিমা", "আমিনুল"],
        &["বেগম", "ইসলাম"],
        &["Rahima", "Aminul"],
        &["Begum", "Islam"],
    ),
    ("Ethi", &["ሊያ"], &["ሃብተ"], &["Liya"], &["Habte"]),
];

fn name() -> impl Strategy<Value = Value> {
    (
        0..NAMES.len(),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(i, g, f, with_family)| {
            let (script, given, family, given_latin, family_latin) = NAMES[i];
            let gi = g.index(given.len());
            let fi = f.index(family.len());
            let mut n = Map::new();
            n.insert("given_names".into(), json!(given[gi]));
            if with_family {
                n.insert("family_name".into(), json!(family[fi]));
            }
            n.insert("script".into(), json!(script));
            if !given_latin.is_empty() {
                n.insert(
                    "given_names_latin".into(),
                    json!(given_latin[gi.min(given_latin.len() - 1)]),
                );
                if with_family {
                    n.insert(
                        "family_name_latin".into(),
                        json!(family_latin[fi.min(family_latin.len() - 1)]),
                    );
                }
            }
            Value::Object(n)
        })
}

/// An Examplia national id: 9 digits and a Luhn check digit.
fn national_id() -> impl Strategy<Value = String> {
    (100_000_000u64..999_999_999).prop_map(|n| {
        let digits: Vec<u32> = n
            .to_string()
            .chars()
            .map(|c| c.to_digit(10).unwrap())
            .collect();
        let sum: u32 = digits
            .iter()
            .rev()
            .enumerate()
            .map(|(i, d)| {
                if i % 2 == 0 {
                    let x = d * 2;
                    if x > 9 { x - 9 } else { x }
                } else {
                    *d
                }
            })
            .sum();
        format!("{n}{}", (10 - sum % 10) % 10)
    })
}

fn identifiers() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!([])),
        national_id()
            .prop_map(|id| json!([{"scheme": "national_id", "value": id, "issuer": "EXA"}])),
        (100_000_000u64..999_999_999)
            .prop_map(|n| json!([{"scheme": "passport", "value": n.to_string(), "issuer": "SYR"}])),
        (1_000_000_u64..9_999_999).prop_map(|n| json!([
            {"scheme": "unhcr_individual", "value": format!("EXA-26-{n}")},
            {"scheme": "unhcr_case", "value": format!("EXA-26C{n}")}
        ])),
    ]
}

fn parent(nationalities: &'static [&'static str]) -> impl Strategy<Value = Value> {
    (
        name(),
        prop::sample::select(nationalities),
        identifiers(),
        any::<bool>(),
        16i64..50,
    )
        .prop_map(|(name, nationality, ids, by_date, age)| {
            let mut p = Map::new();
            p.insert("name".into(), name);
            if by_date {
                p.insert(
                    "date_of_birth".into(),
                    json!(format!("{}-03-14", 2026 - age)),
                );
            } else {
                p.insert("age_years".into(), json!(age));
            }
            p.insert("nationality".into(), json!(nationality));
            if ids.as_array().is_some_and(|a| !a.is_empty()) {
                p.insert("identifiers".into(), ids);
            }
            p.insert("residence_admin_area".into(), json!("EX0409012"));
            Value::Object(p)
        })
}

/// (place, date fields of the child)
fn birth_shape() -> impl Strategy<Value = (Value, Map<String, Value>)> {
    prop_oneof![
        (0u32..24, 0u32..60).prop_map(|(h, m)| {
            let mut d = Map::new();
            d.insert("date_of_birth".into(), json!("2026-10-21"));
            d.insert("time_of_birth".into(), json!(format!("{h:02}:{m:02}:00")));
            (json!({"type": "health_facility", "facility_code": "HF-040907", "admin_area": "EX0409012", "country": "EXA"}), d)
        }),
        Just({
            let mut d = Map::new();
            d.insert("date_of_birth".into(), json!("2026-10-20"));
            (json!({"type": "home", "admin_area": "EX0409012", "country": "EXA"}), d)
        }),
        Just({
            let mut d = Map::new();
            d.insert("estimated_year_of_birth".into(), json!(2026));
            d.insert("estimate_reason".into(), json!("born_in_transit"));
            (json!({"type": "in_transit", "description": "On the road from the border"}), d)
        }),
        (0i64..12).prop_map(|months| {
            let mut d = Map::new();
            d.insert("estimated_age_months".into(), json!(months));
            d.insert("estimate_reason".into(), json!("undocumented_birth"));
            (json!({"type": "home", "admin_area": "EX0409012", "country": "EXA"}), d)
        }),
    ]
}

fn weight() -> impl Strategy<Value = Value> {
    prop_oneof![
        (600u32..5200).prop_map(|g| json!({"value": g, "unit": "g"})),
        (6u32..52).prop_map(|dg| json!({"value": f64::from(dg) / 10.0, "unit": "kg"})),
    ]
}

prop_compose! {
    pub fn birth_notification()(
        child_name in proptest::option::of(name()),
        sex in prop::sample::select(&["male", "female", "other", "unknown"][..]),
        (place, dates) in birth_shape(),
        plurality in prop_oneof![Just(("single", 1)), (1i64..=2).prop_map(|o| ("twin", o)), (1i64..=3).prop_map(|o| ("triplet", o))],
        weight in proptest::option::of(weight()),
        attendant in prop::sample::select(&["doctor", "nurse", "midwife", "traditional_birth_attendant", "none", "unknown"][..]),
        mother in parent(&["EXA", "XXA", "XXB", "XXC", "SYR", "SSD", "UKR", "BGD"]),
        father in proptest::option::of(parent(&["EXA", "DNK", "SYR", "XXB"])),
        father_reason in prop::sample::select(&["not_recorded", "unknown_to_informant", "withheld", "deceased", "separated"][..]),
        informant in prop::sample::select(&["mother", "father", "other_family", "health_worker", "social_worker"][..]),
        version in 1i64..4,
        legal_basis in proptest::option::of(prop::sample::select(&["legal_obligation", "public_task", "vital_interest"][..])),
    ) -> Value {
        let mut child = Map::new();
        if let Some(n) = child_name { child.insert("name".into(), n); }
        child.insert("sex".into(), json!(sex));
        child.extend(dates);
        child.insert("place_of_birth".into(), place);
        let mut r = Map::new();
        r.insert("record_type".into(), json!("birth-notification"));
        r.insert("record_version".into(), json!(version));
        r.insert("notified_at".into(), json!("2026-10-22T09:12:05+02:00"));
        r.insert("notifier".into(), json!({"agency_code": "MOH", "system_name": "Maternity EMR", "facility_code": "HF-040907"}));
        r.insert("child".into(), Value::Object(child));
        r.insert("birth_type".into(), json!(plurality.0));
        r.insert("birth_order".into(), json!(plurality.1));
        if let Some(w) = weight { r.insert("birth_weight".into(), w); }
        r.insert("attendant_at_birth".into(), json!(attendant));
        r.insert("mother".into(), mother);
        let has_father = father.is_some();
        match father {
            Some(f) => { r.insert("father".into(), f); }
            None => { r.insert("father_details_not_available".into(), json!({"reason": father_reason})); }
        }
        let informant = if informant == "father" && !has_father { "mother" } else { informant };
        r.insert("informant".into(), json!({"relationship": informant, "contact_phone": "+292445550163"}));
        if let Some(b) = legal_basis { r.insert("legal_basis".into(), json!(b)); }
        r.insert("maternal_health_notes".into(), json!("CANARY-HEALTH-NOTE never leaves"));
        r.insert("mother_mhpss_screening".into(), json!({"instrument": "epds", "screened_on": "2026-10-22", "score": 13, "positive": true, "referred": true}));
        Value::Object(r)
    }
}

/// `n` records from a strategy, reproducibly (a fixed seed).
pub fn sample<S: Strategy>(strategy: S, n: usize) -> Vec<S::Value> {
    let mut runner = TestRunner::deterministic();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(&mut runner)
                .expect("strategy yields")
                .current()
        })
        .collect()
}
