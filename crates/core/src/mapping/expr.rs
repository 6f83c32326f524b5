//! Conditions and computed values in mapping files, in CEL (Common Expression
//! Language): small, side-effect free, not Turing-complete. Variables: `value`
//! (what `from` selected), `record` (the whole input) and `ctx` (the route
//! context: record_id, route, message_id, idempotency_key, timestamp...).

use std::cell::OnceCell;
use std::collections::BTreeSet;
use std::sync::Arc;

use cel::IdedExpr;
use cel::common::ast::{EntryExpr, Expr as Ast, MapExpr, StructExpr};
use serde_json::Value;

use super::native::{self, Fail, Node, Vars};

thread_local! {
    // Building CEL's standard library is far dearer than evaluating a mapping
    // expression: build it once per thread, not once per evaluation.
    static STDLIB: Arc<cel::Env> = Arc::new(cel::Env::stdlib());
}

/// The longest expression a mapping may hold.
pub const MAX_EXPR_BYTES: usize = 1000;

pub struct Expr {
    pub source: String,
    program: cel::Program,
    /// The same expression compiled to native checks, when its shape allows.
    native: Option<Node>,
    uses_record: bool,
    uses_ctx: bool,
    /// The record fields it reads (the function `record_reads` below).
    record_reads: BTreeSet<String>,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// What every expression of one mapping run sees: `record` and `ctx`. They
/// are converted to CEL values only when an expression needs CEL, at most
/// once per run (twice if some need the record and some do not): an
/// expression compiled to native checks reads the JSON in place.
pub struct Scope<'a> {
    record: Option<&'a Value>,
    ctx: &'a Value,
    with_record: OnceCell<Result<cel::Context<'static, 'static>, String>>,
    without_record: OnceCell<Result<cel::Context<'static, 'static>, String>>,
}

impl<'a> Scope<'a> {
    pub fn new(record: Option<&'a Value>, ctx: &'a Value) -> Result<Scope<'a>, String> {
        Ok(Scope {
            record,
            ctx,
            with_record: OnceCell::new(),
            without_record: OnceCell::new(),
        })
    }

    fn cel(&self, with_record: bool) -> Result<&cel::Context<'static, 'static>, String> {
        let (cell, record) = if with_record {
            (&self.with_record, self.record)
        } else {
            (&self.without_record, None)
        };
        cell.get_or_init(|| {
            let mut base = cel::Context::with_env(STDLIB.with(Arc::clone));
            if let Some(r) = record {
                base.add_variable_from_value("record", to_cel(r)?);
            }
            base.add_variable_from_value("ctx", to_cel(self.ctx)?);
            Ok(base)
        })
        .as_ref()
        .map_err(Clone::clone)
    }
}

impl Expr {
    pub fn compile(source: &str) -> Result<Expr, String> {
        // CEL's parser recurses once per operator: a long enough chain
        // (`1 + 1 + ...`, 20 kB) overflows the stack and aborts the process.
        // The longest expression in the shipped mappings is about 300 bytes.
        if source.len() > MAX_EXPR_BYTES {
            return Err(format!(
                "the expression is {} characters long; at most {MAX_EXPR_BYTES} are read",
                source.len()
            ));
        }
        let program = cel::Program::compile(source).map_err(|e| e.to_string())?;
        let refs = program.references();
        for name in refs.variables() {
            if !matches!(name, "value" | "record" | "ctx") {
                return Err(format!(
                    "unknown variable {name:?}: expressions may use value, record and ctx"
                ));
            }
        }
        let uses_record = refs.has_variable("record");
        let uses_ctx = refs.has_variable("ctx");
        let native = native::compile(program.expression());
        let record_reads = record_reads(program.expression());
        Ok(Expr {
            source: source.to_string(),
            program,
            native,
            uses_record,
            uses_ctx,
            record_reads,
        })
    }

    /// The record fields this expression reads, as JSON pointers
    /// (`/child/sex`; `""` when it reads the record whole).
    pub fn record_reads(&self) -> impl Iterator<Item = &str> {
        self.record_reads.iter().map(String::as_str)
    }

    pub fn uses_record(&self) -> bool {
        self.uses_record
    }

    pub fn uses_ctx(&self) -> bool {
        self.uses_ctx
    }

    /// Whether this expression runs as native checks (CEL only for the
    /// values those do not model).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// Evaluate to JSON. `null` means "no value": the rule writes nothing.
    pub fn eval(&self, scope: &Scope<'_>, value: Option<&Value>) -> Result<Value, String> {
        if let Some(node) = &self.native {
            let vars = Vars::new(value, scope.record, scope.ctx);
            match node.eval(&vars) {
                Ok(v) => return Ok(v.into_json()),
                Err(Fail::Error) => return Err("the expression failed".into()),
                Err(Fail::Unsupported) => {}
            }
        }
        self.eval_cel(scope, value)
    }

    /// Evaluate with CEL itself.
    fn eval_cel(&self, scope: &Scope<'_>, value: Option<&Value>) -> Result<Value, String> {
        let base = scope.cel(self.uses_record)?;
        let result = match value {
            Some(v) => {
                let mut inner = base.new_inner_scope();
                inner.add_variable_from_value("value", to_cel(v)?);
                self.program.execute(&inner)
            }
            None => self.program.execute(base),
        };
        result
            .map_err(|e| e.to_string())?
            .json()
            .map_err(|e| e.to_string())
    }

    /// Evaluate a condition; anything but `true` is false.
    pub fn holds(&self, scope: &Scope<'_>) -> Result<bool, String> {
        if let Some(node) = &self.native {
            let vars = Vars::new(None, scope.record, scope.ctx);
            match node.eval(&vars) {
                Ok(v) => return Ok(v.is_true()),
                Err(Fail::Error) => return Err("the expression failed".into()),
                Err(Fail::Unsupported) => {}
            }
        }
        Ok(self.eval_cel(scope, None)? == Value::Bool(true))
    }
}

/// The record fields `ast` reads, as pointers (`/child/sex`;
/// `has(record.father)` reads `/father`): a field selection rooted at
/// `record` is one pointer, and `record` used any other way (passed whole,
/// indexed by a computed key) reads everything, `""`. What the
/// category check holds an expression to.
fn record_reads(ast: &IdedExpr) -> BTreeSet<String> {
    let mut reads = BTreeSet::new();
    collect_reads(ast, false, &mut reads);
    reads
}

/// `shadowed`: an enclosing macro binds the name `record` to something else.
fn collect_reads(ast: &IdedExpr, shadowed: bool, reads: &mut BTreeSet<String>) {
    if !shadowed && let Some(path) = record_path(&ast.expr) {
        reads.insert(path);
        return;
    }
    let mut walk = |e: &IdedExpr, shadowed: bool| collect_reads(e, shadowed, reads);
    match &ast.expr {
        Ast::Select(select) => walk(&select.operand, shadowed),
        Ast::Call(call) => {
            if let Some(target) = &call.target {
                walk(target, shadowed);
            }
            for arg in &call.args {
                walk(arg, shadowed);
            }
        }
        Ast::List(list) => list.elements.iter().for_each(|e| walk(e, shadowed)),
        Ast::Map(MapExpr { entries }) | Ast::Struct(StructExpr { entries, .. }) => {
            entries.iter().for_each(|entry| match &entry.expr {
                EntryExpr::MapEntry(e) => {
                    walk(&e.key, shadowed);
                    walk(&e.value, shadowed);
                }
                EntryExpr::StructField(f) => walk(&f.value, shadowed),
            })
        }
        Ast::Comprehension(c) => {
            // The range and the accumulator's start are evaluated outside the
            // macro's bindings.
            walk(&c.iter_range, shadowed);
            walk(&c.accu_init, shadowed);
            let binds_record = [Some(&c.iter_var), c.iter_var2.as_ref(), Some(&c.accu_var)]
                .into_iter()
                .flatten()
                .any(|name| name == "record");
            for inner in [&c.loop_cond, &c.loop_step, &c.result] {
                walk(inner, shadowed || binds_record);
            }
        }
        Ast::Ident(_) | Ast::Literal(_) | Ast::Unspecified => {}
    }
}

/// `record.a.b` (or `has(record.a.b)`) as `/a/b`; `record` alone as `""`.
fn record_path(expr: &Ast) -> Option<String> {
    match expr {
        Ast::Ident(name) if name == "record" => Some(String::new()),
        Ast::Select(select) => {
            let parent = record_path(&select.operand.expr)?;
            Some(format!("{parent}/{}", select.field))
        }
        _ => None,
    }
}

pub fn to_cel(value: &Value) -> Result<cel::Value, String> {
    cel::to_value(value).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_the_record_fields_it_reads() {
        let reads = |source: &str| -> Vec<String> {
            Expr::compile(source)
                .unwrap()
                .record_reads()
                .map(str::to_string)
                .collect()
        };
        assert_eq!(
            reads(
                "has(record.father) && record.father.residence_admin_area == record.mother.residence_admin_area"
            ),
            [
                "/father",
                "/father/residence_admin_area",
                "/mother/residence_admin_area"
            ]
        );
        // A list read by a macro is read whole; the element is not the record.
        assert_eq!(
            reads("record.mother.identifiers.exists(value, value.scheme == 'passport')"),
            ["/mother/identifiers"]
        );
        assert!(reads("value.unit == 'g' ? 1 : ctx.attempt").is_empty());
        // The record passed whole, or indexed by a computed key: everything.
        assert_eq!(reads("size(record) > 3"), [""]);
        assert_eq!(reads("record['child'].sex == 'female'"), [""]);
        // A macro that binds the name `record` shadows it inside.
        assert_eq!(
            reads("record.incidents.exists(record, record.gbv)"),
            ["/incidents"]
        );
    }

    #[test]
    fn computes_from_value_record_and_ctx() {
        let e = Expr::compile("value.unit == 'kg' ? int(value.value * 1000.0) : int(value.value)")
            .unwrap();
        let ctx = json!({"route": "r"});
        let scope = Scope::new(None, &ctx).unwrap();
        let v = json!({"value": 3.25, "unit": "kg"});
        assert_eq!(e.eval(&scope, Some(&v)).unwrap(), json!(3250));
        let record = json!({"father": {"x": 1}});
        let cond = Expr::compile("has(record.father) && ctx.route == 'r'").unwrap();
        assert!(cond.uses_record());
        assert!(
            cond.holds(&Scope::new(Some(&record), &ctx).unwrap())
                .unwrap()
        );
    }

    #[test]
    fn unknown_variables_and_syntax_errors_are_refused_at_compile_time() {
        assert!(Expr::compile("secret + 1").unwrap_err().contains("secret"));
        assert!(Expr::compile("value +").is_err());
    }
}

/// Expressions of every shape and length (#13): compiled or refused, never a
/// stack overflow, within the time bound.
#[cfg(test)]
mod tests_arbitrary {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;

    /// `n` repetitions of one construct, each nesting the parse one level deeper.
    fn chained(form: usize, n: usize) -> String {
        match form % 12 {
            0 => vec!["1"; n].join(" + "),
            1 => vec!["true"; n].join(" && "),
            2 => vec!["false"; n].join(" || "),
            3 => format!("value{}", ".a".repeat(n)),
            4 => format!("{}1{}", "int(".repeat(n), ")".repeat(n)),
            5 => format!("{}1", "-".repeat(n)),
            6 => format!("{}true", "!".repeat(n)),
            7 => format!("{}1{}", "(".repeat(n), ")".repeat(n)),
            8 => format!("{}1{}", "[".repeat(n), "]".repeat(n)),
            9 => format!("{}1", "true ? 1 : ".repeat(n)),
            10 => format!("value{}", "[0]".repeat(n)),
            _ => vec!["1"; n].join(" * "),
        }
    }

    #[test]
    fn a_long_chain_is_refused_not_a_stack_overflow() {
        // Overflowed the stack in the CEL parser (a mapping file aborted
        // `config check` instead of naming its line).
        let e = Expr::compile(&chained(0, 5000)).unwrap_err();
        assert!(e.contains("characters"), "{e}");
    }

    #[test]
    fn every_chain_at_the_longest_length_read_compiles_or_is_refused() {
        for form in 0..12 {
            let n = (1..)
                .take_while(|n| chained(form, *n).len() <= MAX_EXPR_BYTES)
                .last()
                .unwrap_or(1);
            if let Ok(e) = Expr::compile(&chained(form, n)) {
                let ctx = serde_json::json!({});
                let scope = Scope::new(None, &ctx).unwrap();
                let _ = e.eval(&scope, Some(&serde_json::json!({"a": [1]})));
            }
        }
    }

    proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(64))]

        #[test]
        fn any_chain_compiles_or_is_refused(form in 0usize..12, n in prop_oneof![1usize..1000, 1usize..6000]) {
            let source = chained(form, n);
            let start = Instant::now();
            if let Ok(e) = Expr::compile(&source) {
                let ctx = serde_json::json!({"route": "r"});
                let scope = Scope::new(None, &ctx).unwrap();
                let _ = e.eval(&scope, Some(&serde_json::json!({"a": [1]})));
            }
            prop_assert!(start.elapsed() < Duration::from_secs(2), "{form} x {n}");
        }

        #[test]
        fn any_text_compiles_or_is_refused(source in any::<String>()) {
            let _ = Expr::compile(&source);
        }
    }
}

/// The native form of every expression in `mappings/` agrees with CEL on
/// arbitrary records and values, and every expression of the common shapes
/// is compiled to it.
#[cfg(test)]
mod tests_agree {
    use proptest::prelude::*;
    use serde_json::{Map, json};

    use super::*;

    /// Every `expr` and `when` in the shipped mapping files.
    fn shipped_expressions() -> Vec<String> {
        fn walk(dir: &std::path::Path, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    collect(&toml::from_str(&text).unwrap(), out);
                }
            }
        }
        fn collect(value: &toml::Value, out: &mut Vec<String>) {
            match value {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match (k.as_str(), v) {
                            ("expr" | "when", toml::Value::String(s)) => out.push(s.clone()),
                            _ => collect(v, out),
                        }
                    }
                }
                toml::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../mappings");
        let mut out = Vec::new();
        walk(&root, &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Field names and string literals an expression mentions: what an
    /// arbitrary record is built from, so that its paths exist often.
    fn vocabulary(source: &str) -> (Vec<String>, Vec<String>) {
        let mut fields: Vec<String> = source
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
            .flat_map(|w| w.split('.'))
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_alphanumeric() || c == '_'))
            .map(str::to_string)
            .collect();
        fields.sort();
        fields.dedup();
        let literals: Vec<String> = source
            .split('\'')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        (fields, literals)
    }

    fn json_of(fields: Vec<String>, literals: Vec<String>) -> impl Strategy<Value = Value> {
        let mut words = literals;
        words.extend(["", "x", "XXA-2", "other"].map(String::from));
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (0u64..10_000).prop_map(Value::from),
            prop_oneof![-1e4..1e4f64, Just(0.0), Just(0.5)].prop_map(Value::from),
            proptest::sample::select(words).prop_map(Value::from),
        ];
        let fields = std::sync::Arc::new(fields);
        leaf.prop_recursive(4, 48, 6, move |inner| {
            let fields = fields.clone();
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::vec(
                    (proptest::sample::select((*fields).clone()), inner),
                    0..6
                )
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
            ]
        })
    }

    fn object_of(fields: Vec<String>, literals: Vec<String>) -> impl Strategy<Value = Value> {
        proptest::collection::vec(
            (
                proptest::sample::select(fields.clone()),
                json_of(fields, literals),
            ),
            0..8,
        )
        .prop_map(|entries| Value::Object(entries.into_iter().collect()))
    }

    #[test]
    fn every_expression_of_the_common_shapes_is_compiled_to_native_checks() {
        let expressions = shipped_expressions();
        assert!(expressions.len() >= 60, "{} expressions", expressions.len());
        let mut native = 0;
        for source in &expressions {
            let e = Expr::compile(source).unwrap();
            // size() and string() are left to CEL (exists and filter are compiled).
            let cel_only = ["size(", "string("].iter().any(|f| source.contains(f));
            assert_eq!(e.is_native(), !cel_only, "{source}");
            native += usize::from(e.is_native());
        }
        assert!(native >= 60, "{native} native");
    }

    #[test]
    fn exists_and_filter_over_identifier_lists_are_decided_natively_as_cel_decides() {
        let ctx = json!({});
        let scope = Scope::new(None, &ctx).unwrap();
        let sources = [
            "value.exists(value, value.scheme == 'national_id') ? value.filter(value, value.scheme == 'national_id')[0].value : null",
            "!value.exists(value, value.scheme == 'national_id') && value.exists(value, value.scheme == 'passport') ? value.filter(value, value.scheme == 'passport')[0].value : null",
            "value.filter(value, value.scheme == 'passport').exists(value, value.value == 'P1')",
        ];
        let values = [
            json!([{"scheme": "passport", "value": "P1"}, {"scheme": "national_id", "value": "N1"}]),
            json!([{"scheme": "passport", "value": "P1"}]),
            json!([]),
            json!([{"scheme": "other", "value": "O"}, {"scheme": "national_id", "value": "N2"}]),
        ];
        for source in sources {
            let e = Expr::compile(source).unwrap();
            let node = e.native.as_ref().expect(source);
            for value in &values {
                let native = node.eval(&Vars::new(Some(value), None, &ctx));
                let native = native.map(super::native::V::into_json).expect(source);
                assert_eq!(
                    Ok(native),
                    e.eval_cel(&scope, Some(value)),
                    "{source} on {value}"
                );
            }
        }
        // A predicate that is not a bool on some item: CEL decides.
        let e = Expr::compile("value.exists(value, value.scheme)").unwrap();
        let vars_value = json!([{"scheme": "a"}]);
        let vars = Vars::new(Some(&vars_value), None, &ctx);
        assert!(matches!(
            e.native.as_ref().unwrap().eval(&vars),
            Err(Fail::Unsupported)
        ));
    }

    #[test]
    fn native_checks_and_cel_agree_on_arbitrary_records_for_every_shipped_expression() {
        use proptest::test_runner::{Config, TestRunner};
        let ctx = json!({"route": "r", "record_id": "0190", "timestamp": "2026-01-01T00:00:00Z"});
        let mut compared = 0;
        let decided = std::cell::Cell::new(0u32);
        let total = std::cell::Cell::new(0u32);
        for source in shipped_expressions() {
            let e = Expr::compile(&source).unwrap();
            let Some(node) = &e.native else { continue };
            let (fields, literals) = vocabulary(&source);
            let strategy = (
                object_of(fields.clone(), literals.clone()),
                proptest::option::of(json_of(fields, literals)),
            );
            let mut runner = TestRunner::new(Config {
                cases: 200,
                failure_persistence: None,
                ..Config::default()
            });
            runner
                .run(&strategy, |(record, value)| {
                    let value = value.filter(|v| !v.is_null());
                    let vars = Vars::new(value.as_ref(), Some(&record), &ctx);
                    let scope = Scope::new(Some(&record), &ctx).unwrap();
                    let by_cel = e.eval_cel(&scope, value.as_ref());
                    total.set(total.get() + 1);
                    if !matches!(node.eval(&vars), Err(Fail::Unsupported)) {
                        decided.set(decided.get() + 1);
                    }
                    match node.eval(&vars) {
                        Ok(v) => prop_assert_eq!(Ok(v.into_json()), by_cel, "{}", source),
                        Err(Fail::Error) => {
                            prop_assert!(by_cel.is_err(), "{}: CEL gives {:?}", source, by_cel)
                        }
                        Err(Fail::Unsupported) => {}
                    }
                    Ok(())
                })
                .unwrap();
            compared += 1;
        }
        assert!(compared >= 60, "{compared} expressions compared");
        // Most cases are decided natively, so the comparison means something.
        let (decided, total) = (decided.get(), total.get());
        println!("{decided} of {total} cases decided natively");
        assert!(
            decided * 10 >= total * 6,
            "{decided} of {total} decided natively"
        );
    }
}
