//! `cordon policy validate|test`: check a policy set before it is applied; `cordon policy
//! adopt`: make a folder's rules those of a deployment of several gateways.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use cordon_policy::{CaseFile, CategoryTable, DEFAULT_POLICIES, DEFAULT_SCHEMA, PolicyEngine, run_cases};

use crate::cli::PolicyCommand;

pub fn run(command: PolicyCommand) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match command {
        PolicyCommand::Validate { policies, schema } => {
            let engine = load(policies.as_deref(), schema.as_deref())?;
            writeln!(
                stdout,
                "ok: {} policies validate against the schema; sha256 {}",
                engine.policy_ids().len(),
                engine.hash()
            )?;
        }
        PolicyCommand::Test { file, policies, schema } => {
            let engine = load(policies.as_deref(), schema.as_deref())?;
            let text = fs::read_to_string(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
            let cases = CaseFile::parse(&text).map_err(|error| anyhow::anyhow!("`{}`: {error}", file.display()))?.cases;
            let outcomes = run_cases(&engine, &CategoryTable::default(), &cases);
            let mut failed = 0;
            for outcome in &outcomes {
                let (verdict, detail) = match (&outcome.failure, &outcome.decision) {
                    (None, Some(decision)) => {
                        ("pass", format!("{} by {}", outcome.expected, decision.policies.join(", ")))
                    }
                    (Some(failure), _) => {
                        failed += 1;
                        ("FAIL", failure.clone())
                    }
                    (None, None) => ("pass", String::new()),
                };
                writeln!(stdout, "{verdict}  {}  ({detail})", outcome.name)?;
            }
            writeln!(stdout, "{} passed, {failed} failed", outcomes.len() - failed)?;
            if failed > 0 {
                bail!("{failed} of {} policy cases in `{}` failed", outcomes.len(), file.display());
            }
        }
        PolicyCommand::Adopt { data } => {
            let (before, after) = cordon_gateway::DataDir::new(&data)
                .adopt_rules(std::sync::Arc::new(cordon_gateway::SystemClock))
                .map_err(|error| anyhow::anyhow!("`{}`: {error}", data.display()))?;
            writeln!(
                stdout,
                "the deployment's rules are now `{}`'s (digest {after}; they were {}): restart each gateway with them",
                data.display(),
                before.as_deref().unwrap_or("not recorded")
            )?;
        }
    }
    Ok(())
}

fn load(policies: Option<&Path>, schema: Option<&Path>) -> anyhow::Result<PolicyEngine> {
    let read = |path: Option<&Path>, default: &str| -> anyhow::Result<String> {
        match path {
            Some(path) => fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display())),
            None => Ok(default.to_string()),
        }
    };
    Ok(PolicyEngine::load(&read(policies, DEFAULT_POLICIES)?, &read(schema, DEFAULT_SCHEMA)?)?)
}
