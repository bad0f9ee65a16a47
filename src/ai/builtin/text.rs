//! How the built-in analyzer reads a ticket: folded words and sentences, and the cue syntax of
//! [`super::lexicon`] matched against them.

use super::lexicon::{COMMON, DE, EN, ES, FR, Lexicon};

/// Words within which a cue's parts must follow each other (`a … b`).
const GAP: usize = 8;

/// Lowercase, without accents (`é` is `e`, `ß` is `ss`).
fn fold(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => out.push('a'),
            'ç' => out.push('c'),
            'è' | 'é' | 'ê' | 'ë' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' => out.push('i'),
            'ñ' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' => out.push('o'),
            'ù' | 'ú' | 'û' | 'ü' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ß' => out.push_str("ss"),
            'œ' => out.push_str("oe"),
            'æ' => out.push_str("ae"),
            _ => out.push(c),
        }
    }
    out
}

/// Folded words, each with the number of its sentence. `¿` is a word of its own; `.` ends a
/// sentence when a space follows it, `!`, `?`, `;` and line breaks always do. Digit groups are one
/// number (`3.000`, `10,000`).
pub(super) fn words(text: &str) -> Vec<(String, usize)> {
    sentences(text).0
}

/// [`words`], and which sentences are questions (end with `?`).
fn sentences(text: &str) -> (Vec<(String, usize)>, Vec<bool>) {
    let folded = fold(text);
    let mut out = vec![];
    let mut questions = vec![];
    let mut word = String::new();
    let mut sentence = 0;
    let mut chars = folded.chars().peekable();
    while let Some(c) = chars.next() {
        let in_number = matches!(c, '.' | ',')
            && word.chars().last().is_some_and(|p| p.is_ascii_digit())
            && chars.peek().is_some_and(char::is_ascii_digit);
        if in_number {
            continue;
        }
        if c.is_alphanumeric() {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push((std::mem::take(&mut word), sentence));
        }
        let ends = match c {
            '!' | '?' | ';' | '\n' => true,
            '.' => chars.peek().is_none_or(|n| n.is_whitespace()),
            _ => false,
        };
        if ends {
            questions.push(c == '?');
            sentence += 1;
        } else if c == '¿' {
            out.push(("¿".to_owned(), sentence));
        }
    }
    if !word.is_empty() {
        out.push((word, sentence));
    }
    questions.push(false);
    (out, questions)
}

/// One word of a cue: `stem*` is a prefix, `*stem` a suffix, `*stem*` an infix.
struct CueWord {
    core: String,
    prefix: bool,
    suffix: bool,
}

impl CueWord {
    fn matches(&self, word: &str) -> bool {
        match (self.prefix, self.suffix) {
            (false, false) => word == self.core,
            (true, false) => word.starts_with(&self.core),
            (false, true) => word.ends_with(&self.core),
            (true, true) => word.contains(&self.core),
        }
    }
}

/// The cues of a family's list.
pub(super) fn cues(list: &'static str) -> impl Iterator<Item = &'static str> {
    list.split('|').map(str::trim).filter(|c| !c.is_empty())
}

/// A cue's parts (separated by `…` in its text), each a run of words.
fn parse(cue: &str) -> Vec<Vec<CueWord>> {
    cue.split('…')
        .map(|part| {
            let mut run = vec![];
            for raw in part.split_whitespace() {
                let prefix = raw.ends_with('*');
                let suffix = raw.starts_with('*');
                let pieces = words(raw.trim_matches('*'));
                let last = pieces.len().saturating_sub(1);
                for (i, (core, _)) in pieces.into_iter().enumerate() {
                    run.push(CueWord {
                        core,
                        prefix: prefix && i == last,
                        suffix: suffix && i == 0,
                    });
                }
            }
            run
        })
        .filter(|run| !run.is_empty())
        .collect()
}

/// Where a cue was found: its first word and one past its last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Span {
    pub start: usize,
    pub end: usize,
}

/// A ticket, read.
pub(super) struct Doc {
    pub words: Vec<String>,
    pub sentence: Vec<usize>,
    /// Whether each sentence is a question.
    pub questions: Vec<bool>,
    /// Words before this index are the title's.
    pub title_end: usize,
    pub lexicons: Vec<&'static Lexicon>,
    /// The text asks a question (a `?`).
    pub question: bool,
    /// `!!`, `??`, `?!` or three shouted words in a row (`THIS IS UNACCEPTABLE`).
    pub shouting: bool,
}

pub(super) type Family = fn(&Lexicon) -> &'static str;

impl Doc {
    pub fn new(title: &str, description: &str, language: &str) -> Self {
        let (mut all, mut questions) = sentences(title);
        let title_end = all.len();
        let offset = questions.len();
        let (more, more_questions) = sentences(description);
        all.extend(more.into_iter().map(|(w, s)| (w, s + offset)));
        questions.extend(more_questions);
        let raw = format!("{title}\n{description}");
        // Three capitalised words in a row, not one acronym (`SAML`, `HTTP`) here and there.
        let shouted = |w: &&str| {
            w.chars().filter(|c| c.is_alphabetic()).count() >= 3
                && w.chars().all(|c| !c.is_lowercase())
        };
        let shouting = ["!!", "??", "?!"].iter().any(|s| raw.contains(s))
            || raw
                .split_whitespace()
                .collect::<Vec<_>>()
                .windows(3)
                .any(|w| w.iter().all(shouted));
        let lexicons = match language {
            "eng" => vec![&COMMON, &EN],
            "deu" => vec![&COMMON, &DE],
            "fra" => vec![&COMMON, &FR],
            "spa" => vec![&COMMON, &ES],
            _ => vec![&COMMON, &EN, &DE, &FR, &ES],
        };
        let (words, sentence) = all.into_iter().unzip();
        Self {
            words,
            sentence,
            questions,
            title_end,
            lexicons,
            question: raw.contains('?'),
            shouting,
        }
    }

    /// Where the run of cue words starts at `at`, if it does (within one sentence).
    fn run_at(&self, run: &[CueWord], at: usize) -> Option<usize> {
        let end = at + run.len();
        if end > self.words.len() {
            return None;
        }
        let same = self.sentence[at] == self.sentence[end - 1];
        (same
            && run
                .iter()
                .zip(&self.words[at..end])
                .all(|(c, w)| c.matches(w)))
        .then_some(end)
    }

    /// Every place `cue` is found.
    pub fn find(&self, cue: &str) -> Vec<Span> {
        let parts = parse(cue);
        let Some((first, rest)) = parts.split_first() else {
            return vec![];
        };
        let mut found = vec![];
        for start in 0..self.words.len() {
            let Some(mut end) = self.run_at(first, start) else {
                continue;
            };
            let mut whole = true;
            for run in rest {
                let next = (end..=end + GAP)
                    .filter(|&at| {
                        at < self.words.len() && self.sentence[at] == self.sentence[start]
                    })
                    .find_map(|at| self.run_at(run, at));
                match next {
                    Some(e) => end = e,
                    None => {
                        whole = false;
                        break;
                    }
                }
            }
            if whole {
                found.push(Span { start, end });
            }
        }
        found
    }

    /// The cues of `family` (exclusions, `!phrase`, left out).
    fn cues(&self, family: Family) -> impl Iterator<Item = &'static str> + '_ {
        self.lexicons
            .iter()
            .flat_map(move |l| cues(family(l)))
            .filter(|c| !c.starts_with('!'))
    }

    /// Where each cue of `family` is found, outside the family's exclusions.
    fn found(&self, family: Family) -> Vec<Vec<Span>> {
        let excluded: Vec<Span> = self
            .lexicons
            .iter()
            .flat_map(|l| cues(family(l)))
            .filter_map(|c| c.strip_prefix('!'))
            .flat_map(|c| self.find(c))
            .collect();
        self.cues(family)
            .map(|c| {
                let mut spans = self.find(c);
                spans.retain(|s| !overlaps(s, &excluded));
                spans
            })
            .filter(|spans| !spans.is_empty())
            .collect()
    }

    /// Every place a cue of `family` is found.
    pub fn spans(&self, family: Family) -> Vec<Span> {
        let mut spans: Vec<Span> = self.found(family).into_iter().flatten().collect();
        spans.sort_by_key(|s| (s.start, s.end));
        spans.dedup();
        spans
    }

    pub fn has(&self, family: Family) -> bool {
        !self.found(family).is_empty()
    }

    /// A category's score: one per cue found, two when found in the title.
    pub fn score(&self, family: Family) -> usize {
        self.found(family)
            .iter()
            .map(|spans| {
                if spans.iter().any(|s| s.start < self.title_end) {
                    2
                } else {
                    1
                }
            })
            .sum()
    }

    /// Whether one of the `within` words before `at` (in its sentence) is a cue word of `family`.
    pub fn preceded_by(&self, at: usize, family: Family, within: usize) -> bool {
        (at.saturating_sub(within)..at)
            .filter(|&i| self.sentence[i] == self.sentence[at])
            .any(|i| self.is(i, family))
    }

    /// Whether one of the `within` words from `at` on (in the sentence of `at - 1`) is a cue word of
    /// `family`.
    pub fn followed_by(&self, at: usize, family: Family, within: usize) -> bool {
        let Some(sentence) = at.checked_sub(1).map(|i| self.sentence[i]) else {
            return false;
        };
        (at..(at + within).min(self.words.len()))
            .filter(|&i| self.sentence[i] == sentence)
            .any(|i| self.is(i, family))
    }

    /// Whether word `i` is a one-word cue of `family`.
    pub fn is(&self, i: usize, family: Family) -> bool {
        self.cues(family)
            .filter_map(|c| {
                let parts = parse(c);
                (parts.len() == 1 && parts[0].len() == 1)
                    .then(|| parts.into_iter().flatten().next())
            })
            .flatten()
            .any(|w| w.matches(&self.words[i]))
    }

    /// Ten or more people counted (`60 agents`, `150 Kollegen`, `3.000 clientes`).
    pub fn counted_people(&self) -> bool {
        (0..self.words.len()).any(|i| {
            self.words[i].parse::<u32>().is_ok_and(|n| n >= 10)
                && self.followed_by(i + 1, |l| l.people, 2)
        })
    }
}

pub(super) fn overlaps(span: &Span, others: &[Span]) -> bool {
    others
        .iter()
        .any(|o| span.start < o.end && o.start < span.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cues_match_whole_words_stems_gaps_and_folded_accents() {
        let doc = |text: &str| Doc::new(text, "", "und");
        // Whole words: `bad` is not in `badge`.
        assert!(doc("my badge").find("bad").is_empty());
        assert_eq!(doc("my badge").find("badge").len(), 1);
        // Stems inside German compounds, and accents folded on both sides.
        assert_eq!(doc("Rechnungskopie für Q2").find("*rechnung*").len(), 1);
        assert_eq!(doc("Où puis-je télécharger").find("ou puis-je").len(), 1);
        assert_eq!(doc("No puedo descargar").find("no puedo").len(), 1);
        // A gap within one sentence, not across two.
        assert_eq!(
            doc("Ich kann seit gestern nicht arbeiten.")
                .find("kann … nicht arbeiten")
                .len(),
            1
        );
        assert!(
            doc("Ich kann. Heute nicht arbeiten.")
                .find("kann … nicht arbeiten")
                .is_empty()
        );
        // An exclusion: `plan` is billing, `to plan` is not.
        assert!(
            doc("We need to plan our staffing")
                .spans(|l| l.billing)
                .is_empty()
        );
        assert!(
            !doc("Which plan includes the API?")
                .spans(|l| l.billing)
                .is_empty()
        );
        // Digit groups are one number.
        assert_eq!(words("3.000 clientes")[0].0, "3000");
    }
}
