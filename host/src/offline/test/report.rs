//! The report of a run: a line per case, a diff under each failure.

use std::io::{self, Write};

use super::run::Outcome;

/// Write the report; returns how many cases failed.
pub fn report(outcomes: &[Outcome], out: &mut impl Write) -> io::Result<usize> {
    let mut failed = 0;
    for o in outcomes {
        let rule = o.got_rule.map(|r| r.name()).unwrap_or("unreported");
        if o.passed() {
            let fuel = o
                .fuel_used
                .map(|f| format!(", {f} fuel"))
                .unwrap_or_default();
            writeln!(
                out,
                "ok    {:>3} {}: {} ({rule}{fuel})",
                o.index, o.name, o.got
            )?;
            continue;
        }
        failed += 1;
        writeln!(out, "FAIL  {:>3} {}", o.index, o.name)?;
        if o.expected != o.got {
            writeln!(out, "      - expected: {}", o.expected)?;
            writeln!(out, "      + got:      {}", o.got)?;
        }
        if let Some(expected) = o.expected_rule.filter(|r| Some(*r) != o.got_rule) {
            writeln!(out, "      - rule:     {}", expected.name())?;
            writeln!(out, "      + rule:     {rule}")?;
        }
        if let Some(detail) = &o.detail {
            writeln!(out, "        ({detail})")?;
        }
    }
    writeln!(
        out,
        "{} case(s): {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    )?;
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decision::Rule;

    fn outcome(got: &str, rule: Option<Rule>) -> Outcome {
        Outcome {
            index: 2,
            name: "x.test".into(),
            expected: "passthrough:a.test:443".into(),
            got: got.into(),
            expected_rule: Some(Rule::Regex),
            got_rule: rule,
            detail: None,
            fuel_used: Some(7),
        }
    }

    #[test]
    fn failures_print_a_diff_and_count() {
        let outcomes = [
            outcome("passthrough:a.test:443", Some(Rule::Regex)),
            outcome("reject:unrecognized_name", Some(Rule::NoMatch)),
            outcome("passthrough:a.test:443", None),
        ];
        let mut text = Vec::new();
        assert_eq!(report(&outcomes, &mut text).unwrap(), 2);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("ok      2 x.test: passthrough:a.test:443 (regex, 7 fuel)"));
        assert!(text.contains(
            "      - expected: passthrough:a.test:443\n      + got:      reject:unrecognized_name\n      - rule:     regex\n      + rule:     no-match\n"
        ), "{text}");
        assert!(text.contains("      - rule:     regex\n      + rule:     unreported\n"));
        assert!(text.ends_with("3 case(s): 1 passed, 2 failed\n"));
    }
}
