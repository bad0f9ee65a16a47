//! The built-in, offline analyzer and embedder: deterministic rules, no network, so that a desk works
//! out of the box (and `demo` shows real results). The rules are documented in the README.
//!
//! - language: detected by `whatlang` (ISO 639-3 code; `und` when unsure or the text is too short);
//! - sentiment: counts of negative and positive cue words (an exclamation-heavy or shouting text counts
//!   one more negative cue);
//! - category: the category whose cue words match most (`other` when none match);
//! - priority: `critical` for outage, security and data-loss cues; `high` for blocking or urgent cues
//!   or a negative text about billing; `low` for questions and feature requests; `medium` otherwise;
//! - skills: the category's skill plus skills named by topic cues (api, mobile, databases, …);
//! - summary: the title, then the description's first sentence, cut to 280 characters;
//! - suggested reply: a template for the category;
//! - confidence: 0.35 + 0.1 per matched cue, at most 0.9.
//!
//! The embedder hashes words and word pairs into a fixed number of dimensions (feature hashing) and
//! normalises the vector, so texts sharing words are close under cosine similarity.

use sha2::{Digest, Sha256};

use super::{Analysis, Category, SUMMARY_MAX, Sentiment};
use crate::support::TicketPriority;

const NEGATIVE: &[&str] = &[
    "angry",
    "annoyed",
    "awful",
    "bad",
    "broken",
    "cancel",
    "disappointed",
    "frustrated",
    "furious",
    "hate",
    "horrible",
    "poor",
    "ridiculous",
    "terrible",
    "unacceptable",
    "unhappy",
    "useless",
    "worst",
    "still not",
    "again",
];
const POSITIVE: &[&str] = &[
    "appreciate",
    "awesome",
    "excellent",
    "glad",
    "great",
    "happy",
    "love",
    "nice",
    "perfect",
    "thank",
    "thanks",
    "wonderful",
];

const CATEGORIES: &[(Category, &[&str])] = &[
    (
        Category::Billing,
        &[
            "billing",
            "charge",
            "charged",
            "credit card",
            "invoice",
            "payment",
            "price",
            "receipt",
            "refund",
            "subscription",
            "vat",
        ],
    ),
    (
        Category::Bug,
        &[
            "broken",
            "bug",
            "crash",
            "crashes",
            "doesn't work",
            "does not work",
            "error",
            "exception",
            "fails",
            "failed",
            "not working",
            "500",
        ],
    ),
    (
        Category::Account,
        &[
            "2fa",
            "account",
            "locked out",
            "log in",
            "login",
            "password",
            "reset",
            "sign in",
            "sso",
        ],
    ),
    (
        Category::FeatureRequest,
        &[
            "feature request",
            "would be nice",
            "would love",
            "suggestion",
            "please add",
            "add support",
            "wish",
        ],
    ),
    (
        Category::HowTo,
        &[
            "how do i",
            "how can i",
            "how to",
            "where can i",
            "is it possible",
            "documentation",
        ],
    ),
];

const CRITICAL: &[&str] = &[
    "outage",
    "down for everyone",
    "is down",
    "data loss",
    "lost data",
    "security",
    "breach",
    "hacked",
    "vulnerability",
    "production is down",
];
const HIGH: &[&str] = &[
    "urgent",
    "asap",
    "immediately",
    "blocked",
    "blocking",
    "cannot",
    "can't",
    "unable",
    "charged twice",
    "double charged",
];

const SKILLS: &[(&str, &[&str])] = &[
    ("api", &["api", "webhook", "endpoint", "integration", "sdk"]),
    (
        "mobile",
        &["android", "ios", "iphone", "mobile", "app store"],
    ),
    (
        "databases",
        &["database", "sql", "postgres", "export", "import"],
    ),
    (
        "security",
        &["security", "breach", "2fa", "sso", "vulnerability"],
    ),
    ("email", &["email", "smtp", "inbox", "newsletter"]),
];

fn hits(text: &str, cues: &[&str]) -> usize {
    cues.iter().filter(|cue| contains_cue(text, cue)).count()
}

/// Whole-word (or whole-phrase) match on lowercase text.
fn contains_cue(text: &str, cue: &str) -> bool {
    text.match_indices(cue).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + cue.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// ISO 639-3 code of the text's language, `und` when unsure.
pub fn detect_language(text: &str) -> String {
    match whatlang::detect(text) {
        Some(info) if info.is_reliable() || text.split_whitespace().count() >= 4 => {
            info.lang().code().to_owned()
        }
        _ => "und".to_owned(),
    }
}

/// Cuts `text` to at most `max` characters, on a character boundary, marking the cut with `…`.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

fn first_sentence(text: &str) -> &str {
    let text = text.trim();
    let end = text
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?' | '\n')
                && text[i + c.len_utf8()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(text.len(), |(i, c)| i + c.len_utf8());
    &text[..end]
}

pub fn analyze(title: &str, description: &str) -> Analysis {
    let text = format!("{title}\n{description}").to_lowercase();
    let raw = format!("{title}\n{description}");

    let shouting = raw.matches('!').count() >= 3
        || raw
            .split_whitespace()
            .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_uppercase()))
            .count()
            >= 2;
    let negative = hits(&text, NEGATIVE) + usize::from(shouting);
    let positive = hits(&text, POSITIVE);
    let sentiment = if negative > positive {
        Sentiment::Negative
    } else if positive > negative {
        Sentiment::Positive
    } else {
        Sentiment::Neutral
    };

    let (category, category_hits) = CATEGORIES
        .iter()
        .map(|(c, cues)| (*c, hits(&text, cues)))
        .filter(|(_, n)| *n > 0)
        // Most hits wins; ties go to the earlier (more specific) category.
        .fold((Category::Other, 0), |best, cur| {
            if cur.1 > best.1 { cur } else { best }
        });

    let critical = hits(&text, CRITICAL);
    let high = hits(&text, HIGH);
    let priority = if critical > 0 {
        TicketPriority::Critical
    } else if high > 0 || (category == Category::Billing && sentiment == Sentiment::Negative) {
        TicketPriority::High
    } else if matches!(category, Category::HowTo | Category::FeatureRequest) {
        TicketPriority::Low
    } else {
        TicketPriority::Medium
    };

    let mut skills: Vec<String> = vec![category.skill().to_owned()];
    for (skill, cues) in SKILLS {
        if hits(&text, cues) > 0 && !skills.iter().any(|s| s == skill) {
            skills.push((*skill).to_owned());
        }
    }

    let sentence = first_sentence(description);
    let summary = if sentence.is_empty() {
        clip(title.trim(), SUMMARY_MAX)
    } else {
        clip(&format!("{} — {sentence}", title.trim()), SUMMARY_MAX)
    };

    let cues = negative + positive + category_hits + critical + high;
    let confidence = (0.35 + 0.1 * cues as f64).min(0.9);

    Analysis {
        priority,
        category,
        skills,
        sentiment,
        language: detect_language(&raw),
        summary,
        suggested_reply: reply(category, sentiment),
        confidence,
        prompt_tokens: None,
        completion_tokens: None,
    }
}

fn reply(category: Category, sentiment: Sentiment) -> String {
    let opening = if sentiment == Sentiment::Negative {
        "Hello, I'm sorry for the trouble this is causing you."
    } else {
        "Hello, thanks for reaching out."
    };
    let body = match category {
        Category::Billing => {
            "I'm looking into your billing question now and will confirm the charges on your account shortly."
        }
        Category::Bug => {
            "I've passed the details to our engineers. Could you tell us the steps that lead to the problem, and when it started?"
        }
        Category::Account => {
            "For your security, please confirm the email address on the account and I'll help you regain access."
        }
        Category::FeatureRequest => {
            "I've shared your suggestion with our product team, who review every request."
        }
        Category::HowTo => {
            "Here is how to do that — and I'm happy to walk you through it if anything is unclear."
        }
        Category::Other => "I'm looking into this and will get back to you shortly.",
    };
    format!("{opening} {body}")
}

/// Dimensions of the built-in embedding.
pub const EMBEDDING_DIMENSIONS: usize = 256;

/// Feature-hashed bag of words and word pairs, L2-normalised.
pub fn embed(text: &str) -> Vec<f32> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .collect();
    let mut v = vec![0f32; EMBEDDING_DIMENSIONS];
    let mut add = |feature: &str, weight: f32| {
        let digest = Sha256::digest(feature.as_bytes());
        let bucket = usize::from(u16::from_le_bytes([digest[0], digest[1]])) % EMBEDDING_DIMENSIONS;
        let sign = if digest[2] & 1 == 0 { 1.0 } else { -1.0 };
        v[bucket] += sign * weight;
    };
    for w in &words {
        add(w, 1.0);
    }
    for pair in words.windows(2) {
        add(&format!("{} {}", pair[0], pair[1]), 0.5);
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_pick_priority_category_sentiment_and_language() {
        let a = analyze(
            "Production is down",
            "Our whole team gets a 500 error on every page since 9:00. This is unacceptable!",
        );
        assert_eq!(a.priority, TicketPriority::Critical);
        assert_eq!(a.category, Category::Bug);
        assert_eq!(a.sentiment, Sentiment::Negative);
        assert_eq!(a.language, "eng");

        let b = analyze(
            "Charged twice",
            "I was charged twice for my subscription this month, please refund one payment.",
        );
        assert_eq!(b.category, Category::Billing);
        assert_eq!(b.priority, TicketPriority::High);
        assert_eq!(b.skills[0], "billing");

        let c = analyze(
            "Question",
            "How do I export my tickets to CSV? Thanks, love the product.",
        );
        assert_eq!(c.category, Category::HowTo);
        assert_eq!(c.priority, TicketPriority::Low);
        assert_eq!(c.sentiment, Sentiment::Positive);
        assert!(c.skills.contains(&"databases".to_owned()), "{:?}", c.skills);

        let d = analyze(
            "Passwort vergessen",
            "Ich kann mich nicht mehr anmelden, bitte helfen Sie mir schnell mit meinem Konto.",
        );
        assert_eq!(d.language, "deu");
        // Cues are whole words: "bad" does not match inside "badge".
        assert_eq!(hits("my badge", NEGATIVE), 0);
    }

    #[test]
    fn summaries_fit_and_the_analysis_is_deterministic() {
        let long = "word ".repeat(200);
        let a = analyze("A title", &long);
        assert!(a.summary.chars().count() <= SUMMARY_MAX);
        assert!(a.summary.ends_with('…'));
        let b = analyze("A title", &long);
        assert_eq!(a, b);
        assert!((0.0..=1.0).contains(&a.confidence));
        assert_eq!(
            analyze("Hi", "First. Second.").summary,
            "Hi — First.",
            "the first sentence"
        );
    }

    #[test]
    fn embeddings_are_unit_vectors_closer_for_texts_sharing_words() {
        let a = embed("cannot reset my password on the login page");
        let b = embed("password reset link on the login page is broken");
        let c = embed("invoice shows the wrong VAT amount");
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert_eq!(a.len(), EMBEDDING_DIMENSIONS);
        assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
        assert!(
            dot(&a, &b) > dot(&a, &c) + 0.2,
            "{} vs {}",
            dot(&a, &b),
            dot(&a, &c)
        );
        assert_eq!(a, embed("cannot reset my password on the login page"));
    }
}
