//! Speech recognition behind a trait, and the grammars the engine's `Listen` commands become.
//!
//! The default engine is CMU PocketSphinx from Debian ([`pocketsphinx`], an FFI module of our
//! own): one JSGF grammar per `ask`, made from its intents' example phrases, with a branch of
//! common short words ("garbage") so that off-topic speech is heard as no intent and asked
//! again instead of being forced into the nearest intent; the dictionary is cut to the
//! grammar's words, so a decoder starts in milliseconds. A remote engine (an HTTP or WebSocket
//! speech service) fits behind the same trait.

use std::collections::BTreeSet;

use crate::engine::Grammar;
use crate::intent::words;

/// What a recogniser heard.
#[derive(Debug, Clone, PartialEq)]
pub struct Heard {
    /// The words (empty: nothing it could match).
    pub text: String,
    /// 0..1.
    pub confidence: f32,
}

/// Why recognition failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsrError {
    /// Grammar words the dictionary does not know.
    UnknownWords(Vec<String>),
    /// The engine refused (its message).
    Engine(String),
}

impl std::fmt::Display for AsrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownWords(w) => write!(f, "words not in the dictionary: {}", w.join(", ")),
            Self::Engine(m) => write!(f, "speech recogniser: {m}"),
        }
    }
}

impl std::error::Error for AsrError {}

/// A speech recogniser for one call: a grammar, then audio until the end of an utterance.
pub trait Recognizer: Send {
    /// Starts listening with `grammar`.
    fn start(&mut self, grammar: &Grammar) -> Result<(), AsrError>;
    /// Feeds 16-bit mono audio at `rate`; returns what was heard once the caller stops talking.
    fn feed(&mut self, pcm: &[i16], rate: u32) -> Result<Option<Heard>, AsrError>;
    /// Ends the utterance now (the audio ended) and returns what was heard.
    fn finish(&mut self) -> Result<Heard, AsrError>;
}

/// Short words that callers say around and instead of intents (ASR.md's garbage loop).
pub const GARBAGE: &[&str] = &[
    "the", "a", "what", "how", "when", "why", "who", "do", "does", "you", "your", "we", "they",
    "it", "is", "are", "was", "be", "have", "has", "can", "could", "will", "about", "there",
    "this", "that", "for", "with", "on", "in", "at", "of", "and", "or", "not", "so", "just",
    "okay", "well", "like", "get", "go", "know", "see", "good", "new", "time", "thing", "some",
    "all", "out", "up", "if", "he", "she", "us", "them", "been", "by", "from",
];

const DIGITS: [&str; 10] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
];

/// A JSGF grammar for `grammar` and the words it uses.
pub fn jsgf(grammar: &Grammar, garbage: bool) -> (String, BTreeSet<String>) {
    let mut used = BTreeSet::new();
    let mut rules = Vec::new();
    let mut top = Vec::new();
    let phrase = |text: &str, used: &mut BTreeSet<String>| -> String {
        let ws = words(text);
        used.extend(ws.iter().cloned());
        ws.join(" ")
    };
    match grammar {
        Grammar::Intents(intents) => {
            for (i, (_, examples)) in intents.iter().enumerate() {
                let alts: BTreeSet<String> = examples
                    .iter()
                    .map(|e| phrase(e, &mut used))
                    .filter(|p| !p.is_empty())
                    .collect();
                if alts.is_empty() {
                    continue;
                }
                rules.push(format!(
                    "<i{i}> = {};",
                    alts.into_iter().collect::<Vec<_>>().join(" | ")
                ));
                top.push(format!("<i{i}>"));
            }
            if garbage {
                used.extend(GARBAGE.iter().map(|w| (*w).to_owned()));
                rules.push(format!("<g> = {};", GARBAGE.join(" | ")));
                rules.push("<garbage> = <g>+;".to_owned());
                top.push("<garbage>".to_owned());
            }
        }
        Grammar::Digits => {
            used.extend(DIGITS.iter().map(|w| (*w).to_owned()));
            rules.push(format!("<digit> = {};", DIGITS.join(" | ")));
            top.push("<digit>+".to_owned());
        }
        Grammar::YesNo => {
            for w in ["yes", "yeah", "correct", "right", "no", "nope", "wrong"] {
                used.insert(w.to_owned());
            }
            top.push("yes | yeah | correct | right | no | nope | wrong".to_owned());
        }
    }
    let mut g = format!(
        "#JSGF V1.0;\ngrammar crest;\npublic <top> = {};\n",
        top.join(" | ")
    );
    for r in rules {
        g.push_str(&r);
        g.push('\n');
    }
    (g, used)
}

/// The lines of `dict` (a CMU pronouncing dictionary) for `words`, alternates included;
/// the words it lacks are returned apart.
pub fn prune_dict(dict: &str, words: &BTreeSet<String>) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut found = BTreeSet::new();
    for line in dict.lines() {
        let Some(head) = line.split_whitespace().next() else {
            continue;
        };
        let base = head.split('(').next().unwrap_or(head);
        if words.contains(base) {
            found.insert(base.to_owned());
            out.push_str(line);
            out.push('\n');
        }
    }
    let missing = words.difference(&found).cloned().collect();
    (out, missing)
}

/// 8 kHz to 16 kHz by linear interpolation (enough for the recogniser, ASR.md).
pub fn upsample_2x(pcm: &[i16], out: &mut Vec<i16>) {
    for (i, &s) in pcm.iter().enumerate() {
        let next = pcm.get(i + 1).copied().unwrap_or(s);
        out.push(s);
        out.push(((i32::from(s) + i32::from(next)) / 2) as i16);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammars_and_dictionary() {
        let g = Grammar::Intents(vec![
            (
                "order".into(),
                vec!["Where is my order?".into(), "track my package".into()],
            ),
            ("agent".into(), vec!["operator".into()]),
        ]);
        let (text, used) = jsgf(&g, true);
        assert!(
            text.contains("public <top> = <i0> | <i1> | <garbage>;"),
            "{text}"
        );
        assert!(
            text.contains("<i0> = track my package | where is my order;"),
            "{text}"
        );
        assert!(used.contains("operator") && used.contains("okay"));
        let (d, _) = jsgf(&Grammar::Digits, false);
        assert!(d.contains("public <top> = <digit>+;"));
        let dict = "operator AA P ER EY T ER\nwhere W EH R\nwhere(2) HH W EH R\nwhen W EH N\n";
        let want: BTreeSet<String> = ["where", "operator", "frobnicate"].map(String::from).into();
        let (pruned, missing) = prune_dict(dict, &want);
        assert_eq!(pruned.lines().count(), 3);
        assert_eq!(missing, ["frobnicate"]);
        let mut up = Vec::new();
        upsample_2x(&[0, 100, 200], &mut up);
        assert_eq!(up, [0, 50, 100, 150, 200, 200]);
    }
}
