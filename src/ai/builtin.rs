//! The built-in, offline analyzer and embedder: deterministic rules, no network, so that a desk works
//! out of the box (and `demo` shows real results).
//!
//! The ticket's title and description are lowercased, stripped of accents and cut into words and
//! sentences; the rules then look for cue families (lists of words and phrases, one list per
//! language, in [`lexicon`]). A ticket is read with the words shared by all languages and those of
//! its detected language (every language when it is none of English, German, French or Spanish).
//!
//! - **language**: detected by `whatlang` (ISO 639-3 code); when `whatlang` is unsure, the function
//!   words of English, German, French and Spanish decide; `und` when still unsure.
//! - **sentiment**: negative cues (frustration, anger, threats to leave, a repeated contact) against
//!   praise and thanks. A praise word after a conditional is a wish (`would be great`, `wäre
//!   super`), a bare thank-you closing a question or a request is politeness, `thanks in advance`
//!   is nothing; a negated praise word counts as negative (`not happy`), a negated negative one not
//!   at all; an intensifier (`really`, `sehr`, `vraiment`, `muy`) doubles a cue; `!!`, `??` or three
//!   shouted words in a row add a negative cue. More negative than positive is `negative`, more
//!   positive `positive`, otherwise `neutral`.
//! - **category**: each cue of a category found adds one (two when it is in the title); the highest
//!   score wins, ties going to account, then bug, billing, feature request, how-to, other. A ticket
//!   with no cue at all is a `bug` when it says something fails or does not happen (a failure word,
//!   a negation outside a question), a `how_to` when it asks a question, `other` otherwise. A
//!   question about a billing or account matter is `billing` or `account`.
//! - **priority**, following the triage rubric (first rule that applies):
//!   - `critical`: an outage (not one referred to as past: `after the outage`), a security breach,
//!     data lost (a loss word and a data word in one sentence), or many people at once (`nobody`,
//!     `all our agents`, `every request`, ten or more people counted) with something failing
//!     (a failure word, or an ability negated: `none of our agents can`);
//!   - `low` for feature requests and how-to questions;
//!   - `high` for money wrongly taken (a charge with `twice`, `still`, `instead of`, `not
//!     authorised`, …);
//!   - `low` for what the customer calls minor (`cosmetic`, `kein Drama`, `petit détail`);
//!   - `high` when this customer is blocked (`locked out`, `keine Alternative`, `je ne peux plus`)
//!     and mentions no workaround (`the web version works`, `en attendant`, `de momento`);
//!   - `low` for praise with no problem in it, a billing or account question that asks for nothing
//!     (no request, not unhappy, nothing failing), an `other` ticket that asks for nothing;
//!   - `medium` otherwise (degraded with a workaround, account or billing matters to act on).
//! - **skills**: the category's skill plus skills named by topic cues (api, mobile, databases, …).
//! - **summary**: the title, then the description's first sentence, cut to 280 characters.
//! - **suggested reply**: in the ticket's language (English otherwise): an opening for the
//!   sentiment, a sentence for critical tickets, and the category's body, which speaks only of that
//!   category (a bug reply never mentions charges).
//! - **confidence**: 0.35 + 0.05 per cue behind the decisions, at most 0.9.
//!
//! The embedder hashes words and word pairs into a fixed number of dimensions (feature hashing) and
//! normalises the vector, so texts sharing words are close under cosine similarity.
//!
//! `tests/it/analyzer.rs` measures the rules on the labelled tickets in `tests/fixtures/` (their
//! README says how they were written and labelled); change a cue, run it with `--nocapture`.

mod lexicon;
mod text;

use sha2::{Digest, Sha256};

use self::lexicon::{DE, EN, ES, FR, Replies};
use self::text::{Doc, Span, cues, overlaps, words};
use super::{Analysis, Category, SUMMARY_MAX, Sentiment};
use crate::support::TicketPriority;

/// Skills named by topic cues (any language), besides the category's own.
const SKILLS: &[(&str, &str)] = &[
    (
        "api",
        "api | webhook* | endpoint | integration | sdk | graphql",
    ),
    (
        "mobile",
        "android | ios | iphone | mobile | app store | handy | movil | telephone",
    ),
    (
        "databases",
        "database | sql | postgres | export* | import* | csv",
    ),
    (
        "security",
        "security | breach | 2fa | sso | saml | vulnerability | hacked | compromised \
         | sicherheit* | securite | seguridad | pirate*",
    ),
    ("email", "email | e-mail | smtp | inbox | newsletter"),
];

/// (sentiment, cues behind it)
fn sentiment(doc: &Doc, request: bool) -> (Sentiment, usize) {
    let weight = |span: &Span| {
        if doc.preceded_by(span.start, |l| l.intensifier, 2) {
            2
        } else {
            1
        }
    };
    let mut negative = 0;
    let mut positive = 0;
    for span in doc.spans(|l| l.negative) {
        if !doc.preceded_by(span.start, |l| l.negator, 3) {
            negative += weight(&span);
        }
    }
    let polite = doc.spans(|l| l.thanks_polite);
    let thanks: Vec<Span> = doc
        .spans(|l| l.thanks)
        .into_iter()
        .filter(|s| !overlaps(s, &polite))
        .collect();
    positive += thanks.len();
    for span in doc.spans(|l| l.positive) {
        if doc.preceded_by(span.start, |l| l.conditional, 3) {
            continue;
        }
        if doc.preceded_by(span.start, |l| l.negator, 3) {
            negative += 1;
        } else {
            positive += weight(&span);
        }
    }
    // A bare thank-you closing a question or a request is politeness.
    if !doc.question && !request {
        positive += doc
            .spans(|l| l.thanks_plain)
            .iter()
            .filter(|s| !overlaps(s, &polite) && !overlaps(s, &thanks))
            .count();
    }
    negative += usize::from(doc.shouting);
    let sentiment = match negative.cmp(&positive) {
        std::cmp::Ordering::Greater => Sentiment::Negative,
        std::cmp::Ordering::Less => Sentiment::Positive,
        std::cmp::Ordering::Equal => Sentiment::Neutral,
    };
    (sentiment, negative + positive)
}

/// (category, its score). With no cue at all: `bug` when something is said not to work (a failure
/// word, or a negation outside a question), else `how_to` for a question, else `other`.
fn category(doc: &Doc, signals: &Signals) -> (Category, usize) {
    // In tie-break order: when a ticket speaks as much of money as of a failure, it is a bug.
    let scores = [
        (Category::Account, doc.score(|l| l.account)),
        (Category::Bug, doc.score(|l| l.bug)),
        (Category::Billing, doc.score(|l| l.billing)),
        (Category::FeatureRequest, doc.score(|l| l.feature_request)),
        (Category::HowTo, doc.score(|l| l.how_to)),
        (Category::Other, doc.score(|l| l.other)),
    ];
    let best = scores.into_iter().fold((Category::Other, 0), |best, cur| {
        if cur.1 > best.1 { cur } else { best }
    });
    if best.1 > 0 {
        return best;
    }
    let negation =
        (0..doc.words.len()).any(|i| !doc.questions[doc.sentence[i]] && doc.is(i, |l| l.negator));
    if signals.problem || negation {
        (Category::Bug, 0)
    } else if doc.question {
        (Category::HowTo, 0)
    } else {
        (Category::Other, 0)
    }
}

/// What decides the priority.
struct Signals {
    critical: bool,
    money_wrongly_taken: bool,
    blocked: bool,
    workaround: bool,
    minor: bool,
    problem: bool,
}

impl Signals {
    fn read(doc: &Doc) -> Self {
        let outage = doc
            .spans(|l| l.outage)
            .iter()
            .any(|s| !doc.preceded_by(s.start, |l| l.past, 2));
        let data_lost = doc.spans(|l| l.loss).iter().any(|s| {
            let sentence = doc.sentence[s.start];
            (0..doc.words.len())
                .filter(|&i| doc.sentence[i] == sentence)
                .any(|i| doc.is(i, |l| l.data))
        });
        let many = doc.has(|l| l.scale) || doc.counted_people();
        let unable = doc.spans(|l| l.ability).iter().any(|s| {
            doc.preceded_by(s.start, |l| l.negator, 8) || doc.followed_by(s.end, |l| l.negator, 3)
        });
        let failing = doc.has(|l| l.failure) || unable;
        let workaround = doc.spans(|l| l.workaround).iter().any(|s| {
            !doc.preceded_by(s.start, |l| l.negator, 2) && !doc.followed_by(s.end, |l| l.negator, 1)
        });
        let blocked = doc.has(|l| l.blocking);
        Self {
            critical: outage || doc.has(|l| l.breach) || data_lost || (many && failing),
            money_wrongly_taken: doc.has(|l| l.charge) && doc.has(|l| l.wrong_charge),
            blocked,
            workaround,
            minor: doc.has(|l| l.minor),
            // A problem referred to as past (`after the outage`) is none.
            problem: failing
                || blocked
                || doc
                    .spans(|l| l.bug)
                    .iter()
                    .any(|s| !doc.preceded_by(s.start, |l| l.past, 2)),
        }
    }
}

fn priority(
    signals: &Signals,
    category: Category,
    sentiment: Sentiment,
    question: bool,
    request: bool,
) -> TicketPriority {
    if signals.critical {
        return TicketPriority::Critical;
    }
    if matches!(category, Category::FeatureRequest | Category::HowTo) {
        return TicketPriority::Low;
    }
    if signals.money_wrongly_taken {
        return TicketPriority::High;
    }
    if signals.minor {
        return TicketPriority::Low;
    }
    if signals.blocked && !signals.workaround {
        return TicketPriority::High;
    }
    if sentiment == Sentiment::Positive && !signals.problem {
        return TicketPriority::Low;
    }
    // A question about a billing or account matter that asks for nothing to be done is a how-to.
    let asks = request || sentiment == Sentiment::Negative;
    match category {
        Category::Billing | Category::Account if question && !asks && !signals.problem => {
            TicketPriority::Low
        }
        Category::Other if !asks => TicketPriority::Low,
        _ => TicketPriority::Medium,
    }
}

/// ISO 639-3 code of the text's language, `und` when unsure. When `whatlang` is unsure (short
/// texts full of product words: `Wie exportiere ich Tickets als CSV?`), the function words of
/// English, German, French and Spanish decide, if at least two of one language outnumber the others.
pub fn detect_language(text: &str) -> String {
    let info = whatlang::detect(text);
    if let Some(info) = info.as_ref().filter(|i| i.is_reliable()) {
        return info.lang().code().to_owned();
    }
    let words = words(text);
    let mut votes: Vec<(usize, &str)> = [(&EN, "eng"), (&DE, "deu"), (&FR, "fra"), (&ES, "spa")]
        .into_iter()
        .map(|(lexicon, code)| {
            let n = words
                .iter()
                .filter(|(w, _)| cues(lexicon.stopwords).any(|s| s == w))
                .count();
            (n, code)
        })
        .collect();
    votes.sort_by_key(|v| std::cmp::Reverse(v.0));
    if votes[0].0 >= 2 && votes[0].0 > votes[1].0 {
        return votes[0].1.to_owned();
    }
    match info {
        Some(info) if text.split_whitespace().count() >= 4 => info.lang().code().to_owned(),
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
    let raw = format!("{title}\n{description}");
    let language = detect_language(&raw);
    let doc = Doc::new(title, description, &language);

    let request = doc.has(|l| l.request);
    let (sentiment, sentiment_cues) = sentiment(&doc, request);
    let signals = Signals::read(&doc);
    let (category, category_score) = category(&doc, &signals);
    let priority = priority(&signals, category, sentiment, doc.question, request);

    let mut skills: Vec<String> = vec![category.skill().to_owned()];
    for (skill, list) in SKILLS {
        let named = cues(list).any(|c| !doc.find(c).is_empty());
        if named && !skills.iter().any(|s| s == skill) {
            skills.push((*skill).to_owned());
        }
    }

    let sentence = first_sentence(description);
    let summary = if sentence.is_empty() {
        clip(title.trim(), SUMMARY_MAX)
    } else {
        clip(&format!("{} — {sentence}", title.trim()), SUMMARY_MAX)
    };

    let priority_cues = [
        signals.critical,
        signals.money_wrongly_taken,
        signals.blocked,
        signals.workaround,
        signals.minor,
    ]
    .into_iter()
    .filter(|s| *s)
    .count();
    let cues = sentiment_cues + category_score + priority_cues;
    let confidence = (0.35 + 0.05 * cues as f64).min(0.9);

    Analysis {
        priority,
        category,
        skills,
        sentiment,
        suggested_reply: reply(&language, category, sentiment, priority),
        language,
        summary,
        confidence,
        prompt_tokens: None,
        completion_tokens: None,
    }
}

/// The reply template in the ticket's language (English when it is not one the templates know).
fn reply(
    language: &str,
    category: Category,
    sentiment: Sentiment,
    priority: TicketPriority,
) -> String {
    let r: &Replies = match language {
        "deu" => &lexicon::REPLIES_DE,
        "fra" => &lexicon::REPLIES_FR,
        "spa" => &lexicon::REPLIES_ES,
        _ => &lexicon::REPLIES_EN,
    };
    let opening = match sentiment {
        Sentiment::Negative => r.opening_negative,
        Sentiment::Positive => r.opening_positive,
        Sentiment::Neutral => r.opening_neutral,
    };
    let body = match category {
        Category::Billing => r.billing,
        Category::Bug => r.bug,
        Category::Account => r.account,
        Category::FeatureRequest => r.feature_request,
        Category::HowTo => r.how_to,
        Category::Other => r.other,
    };
    if priority == TicketPriority::Critical {
        format!("{opening} {} {body}", r.urgent)
    } else {
        format!("{opening} {body}")
    }
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
        assert_eq!(d.category, Category::Account);
        assert_eq!(d.priority, TicketPriority::High);
    }

    #[test]
    fn a_praise_word_after_a_conditional_is_a_wish_and_a_negated_one_is_a_complaint() {
        let wish = analyze(
            "Dark mode",
            "It would be great to have a dark mode for the night shift.",
        );
        assert_eq!(wish.sentiment, Sentiment::Neutral);
        assert_eq!(wish.category, Category::FeatureRequest);
        assert_eq!(wish.priority, TicketPriority::Low);
        let wunsch = analyze("Idee", "Ein dunkles Design wäre super für die Spätschicht.");
        assert_eq!(wunsch.sentiment, Sentiment::Neutral);
        let unhappy = analyze(
            "New editor",
            "Honestly I am not impressed with the new reply editor.",
        );
        assert_eq!(unhappy.sentiment, Sentiment::Negative);
        // A closing thank-you after a question is politeness, a thank-you on its own is praise.
        assert_eq!(
            analyze("HT ou TTC ?", "Le prix affiché est-il HT ou TTC ? Merci.").sentiment,
            Sentiment::Neutral
        );
        assert_eq!(
            analyze(
                "Danke",
                "Seit wir euch nutzen, läuft unser Support viel ruhiger. Danke!"
            )
            .sentiment,
            Sentiment::Positive
        );
    }

    #[test]
    fn priorities_follow_the_rubric() {
        // A past outage mentioned in a thank-you is no outage.
        let thanks = analyze(
            "Merci",
            "Merci beaucoup pour le remboursement accordé après la panne, très apprécié !",
        );
        assert_ne!(thanks.priority, TicketPriority::Critical);
        assert_eq!(thanks.sentiment, Sentiment::Positive);
        // A handful of users is not "many".
        let seats = analyze(
            "Invite fails",
            "We have 3 users and inviting a fourth fails with 'Seat limit reached'.",
        );
        assert_ne!(seats.priority, TicketPriority::Critical);
        // Many people and a failure: critical, in any language.
        let all = analyze(
            "Nadie puede entrar",
            "Ninguno de nuestros 60 agentes puede iniciar sesión desde esta mañana.",
        );
        assert_eq!(all.priority, TicketPriority::Critical);
        assert_eq!(all.category, Category::Account);
        // Blocked, unless there is a workaround.
        let blocked = analyze(
            "Replies not sent",
            "Our replies are stuck in the outbox and there is no other way to answer customers.",
        );
        assert_eq!(blocked.priority, TicketPriority::High);
        let workaround = analyze(
            "App crashes",
            "The iOS app crashes every time I open a ticket. The web version works in the meantime.",
        );
        assert_eq!(workaround.priority, TicketPriority::Medium);
        // What the customer calls minor is low.
        assert_eq!(
            analyze(
                "Typo",
                "The settings page says 'Setings'. Cosmetic, no rush."
            )
            .priority,
            TicketPriority::Low
        );
    }

    #[test]
    fn replies_speak_the_tickets_language_and_category() {
        let de = analyze(
            "Doppelte Abbuchung",
            "Uns wurde der Beitrag im April zweimal abgebucht. Bitte erstatten Sie den zweiten Betrag.",
        );
        assert_eq!(de.category, Category::Billing);
        assert!(
            de.suggested_reply.starts_with("Guten Tag"),
            "{}",
            de.suggested_reply
        );
        assert!(
            de.suggested_reply.contains("Abrechnung"),
            "{}",
            de.suggested_reply
        );
        let bug = analyze(
            "Webhook signature verification failed",
            "Every invoice.paid webhook is rejected with 'signature verification failed'.",
        );
        assert_eq!(bug.category, Category::Bug);
        assert!(
            !bug.suggested_reply.contains("charge"),
            "{}",
            bug.suggested_reply
        );
    }

    #[test]
    fn unsure_language_detection_falls_back_to_function_words() {
        assert_eq!(
            detect_language(
                "Wie exportiere ich Tickets als CSV?\nHallo, wie bekomme ich alle Tickets als CSV heraus?"
            ),
            "deu"
        );
        assert_eq!(detect_language("ok"), "und");
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
