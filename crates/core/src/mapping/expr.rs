//! Conditions and computed values in mapping files, in CEL (Common Expression
//! Language): small, side-effect free, not Turing-complete. Variables: `value`
//! (what `from` selected), `record` (the whole input) and `ctx` (the route
//! context: record_id, route, message_id, idempotency_key, timestamp...).

use std::sync::Arc;

use serde_json::Value;

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
    uses_record: bool,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// What every expression of one mapping run sees: `record` and `ctx`,
/// converted to CEL once per run; each evaluation adds only its `value`.
pub struct Scope {
    base: cel::Context<'static, 'static>,
}

impl Scope {
    pub fn new(record: Option<&Value>, ctx: &Value) -> Result<Scope, String> {
        let mut base = cel::Context::with_env(STDLIB.with(Arc::clone));
        if let Some(r) = record {
            base.add_variable_from_value("record", to_cel(r)?);
        }
        base.add_variable_from_value("ctx", to_cel(ctx)?);
        Ok(Scope { base })
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
        Ok(Expr {
            source: source.to_string(),
            program,
            uses_record,
        })
    }

    pub fn uses_record(&self) -> bool {
        self.uses_record
    }

    /// Evaluate to JSON. `null` means "no value": the rule writes nothing.
    pub fn eval(&self, scope: &Scope, value: Option<&Value>) -> Result<Value, String> {
        let result = match value {
            Some(v) => {
                let mut inner = scope.base.new_inner_scope();
                inner.add_variable_from_value("value", to_cel(v)?);
                self.program.execute(&inner)
            }
            None => self.program.execute(&scope.base),
        };
        result
            .map_err(|e| e.to_string())?
            .json()
            .map_err(|e| e.to_string())
    }

    /// Evaluate a condition; anything but `true` is false.
    pub fn holds(&self, scope: &Scope) -> Result<bool, String> {
        Ok(self.eval(scope, None)? == Value::Bool(true))
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
                let scope = Scope::new(None, &serde_json::json!({})).unwrap();
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
