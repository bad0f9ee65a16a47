//! The price rule of an analysis: what a model's run costs in credits (`DESKGRAPH_AI_PRICES`). The
//! full price is held when the analysis is requested (`request.rs`) and what the run used is
//! captured when it finishes (`handlers.rs`), through billing's ledger.

use std::collections::HashMap;

use anyhow::Context as _;

/// Credits an analysis by `model` costs: held in full when requested, charged by use when done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    pub credits: i64,
    /// One credit per this many tokens (at most `credits`); flat `credits` when `None`.
    pub tokens_per_credit: Option<u64>,
}

impl Price {
    /// What to charge for a run that used `tokens` (unknown for the built-in analyzer).
    pub fn charge(self, tokens: Option<u64>) -> i64 {
        match (self.tokens_per_credit, tokens) {
            (Some(per), Some(tokens)) if per > 0 => {
                let used = i64::try_from(tokens.div_ceil(per)).unwrap_or(i64::MAX);
                used.clamp(1, self.credits)
            }
            _ => self.credits,
        }
    }
}

/// Prices per model, parsed from `DESKGRAPH_AI_PRICES`.
#[derive(Debug, Clone)]
pub struct Prices {
    by_model: HashMap<String, Price>,
    fallback: Price,
}

impl Prices {
    pub fn parse(spec: &str) -> anyhow::Result<Self> {
        let mut by_model = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (model, price) = entry
                .split_once('=')
                .with_context(|| format!("DESKGRAPH_AI_PRICES: `{entry}` is not model=credits"))?;
            let (credits, per) = match price.split_once(':') {
                Some((c, t)) => (c, Some(t)),
                None => (price, None),
            };
            let credits: i64 = credits
                .trim()
                .parse()
                .ok()
                .filter(|c| *c > 0)
                .with_context(|| {
                    format!(
                        "DESKGRAPH_AI_PRICES: the credits of `{entry}` must be a positive integer"
                    )
                })?;
            let tokens_per_credit = per
                .map(|t| t.trim().parse::<u64>().ok().filter(|t| *t > 0))
                .map(|t| {
                    t.with_context(|| {
                        format!("DESKGRAPH_AI_PRICES: the tokens of `{entry}` must be a positive integer")
                    })
                })
                .transpose()?;
            by_model.insert(
                model.trim().to_owned(),
                Price {
                    credits,
                    tokens_per_credit,
                },
            );
        }
        let fallback = by_model.get("*").copied().unwrap_or(Price {
            credits: 5,
            tokens_per_credit: Some(1000),
        });
        Ok(Self { by_model, fallback })
    }

    pub fn of(&self, model: &str) -> Price {
        self.by_model.get(model).copied().unwrap_or(self.fallback)
    }
}

impl Prices {
    /// One flat price for every model.
    pub fn flat(credits: i64) -> Self {
        Self {
            by_model: HashMap::new(),
            fallback: Price {
                credits,
                tokens_per_credit: None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_parse_flat_and_per_token_and_fall_back() {
        let p = Prices::parse("builtin=1, gpt-4o=10:500 ,*=3").expect("valid");
        assert_eq!(p.of("builtin").charge(None), 1);
        assert_eq!(p.of("gpt-4o").charge(Some(501)), 2);
        assert_eq!(
            p.of("gpt-4o").charge(Some(100_000)),
            10,
            "capped at the hold"
        );
        assert_eq!(p.of("gpt-4o").charge(Some(0)), 1, "at least one credit");
        assert_eq!(p.of("other").charge(Some(1)), 3);
        for bad in ["builtin", "x=0", "x=-1", "x=1:0", "x=a"] {
            assert!(Prices::parse(bad).is_err(), "{bad}");
        }
    }
}
